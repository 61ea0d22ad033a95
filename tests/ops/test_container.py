"""The container: ``docker/entrypoint.sh`` does what ``make run`` does, and the Dockerfile builds a non-root image
with a health check. There is no Docker engine here: the entrypoint is run by bash, the Dockerfile is parsed."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import PROJECT_ROOT

ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
VENV_BIN = Path(sys.executable).parent

# A stand-in for each command: records its name and arguments (shell-quoted, one call a line); `clients
# create --json` and `operators create --json` answer like the real ones; a `db upgrade` fails when FAIL_MIGRATIONS is set.
FAKE = """#!/usr/bin/env bash
printf '%q ' "$(basename "$0")" "$@" >> "$CALLS"; echo >> "$CALLS"
if [[ "$1 $2" == "db upgrade" && -n "${FAIL_MIGRATIONS:-}" ]]; then exit 1; fi
if [[ "$1 $2" == "clients create" ]]; then echo '{"client_id": "demo", "client_secret": "s"}'; fi
if [[ "$1 $2" == "operators create" ]]; then echo "{\"username\": \"$4\", \"initial_password\": \"p\"}"; fi
"""

Call = list[str]


def environment(**values: str) -> dict[str, str]:
    """This process's environment without gateway settings or entrypoint variables, plus ``values``."""
    own = {"HOST", "PORT", "WORKERS", "COUNT", "DEMO", "MIGRATE", "CALLS", "FAIL_MIGRATIONS"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith(("DANCU_", "MOCK_CSDLQG_")) or name in own)
    }
    return {**env, **values}


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    """A directory of fake ``dancu``, ``mock-csdlqg`` and ``python`` commands."""
    directory = tmp_path / "fakes"
    directory.mkdir()
    for name in ("dancu", "mock-csdlqg", "python"):
        (directory / name).write_text(FAKE)
        (directory / name).chmod(0o755)
    return directory


def calls(path: Path) -> list[Call]:
    return [shlex.split(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_make(fakes: Path, workdir: Path) -> list[Call]:
    """``make run`` with the fakes as its virtualenv, its install step skipped; the calls it made."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    workdir.mkdir(exist_ok=True)
    log = workdir / "calls"
    log.unlink(missing_ok=True)
    makefile = str(PROJECT_ROOT / "Makefile")
    subprocess.run(
        [
            make,
            "--no-print-directory",
            "-o",
            "install",
            "-f",
            makefile,
            "run",
            f"BIN={fakes}",
            "PORT=8123",
            "COUNT=50",
        ],
        cwd=workdir,
        env=environment(CALLS=str(log)),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return calls(log)


def test_make_run_stops_before_anything_when_the_port_is_taken(fakes: Path, tmp_path: Path) -> None:
    # README: `make run PORT=...`; a busy port is said at once, before any command or curl hint is printed.
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    log = tmp_path / "calls"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                make,
                "--no-print-directory",
                "-o",
                "install",
                "-f",
                str(PROJECT_ROOT / "Makefile"),
                "run",
                f"BIN={fakes}",
                f"PORT={port}",
            ],
            cwd=tmp_path,
            env=environment(CALLS=str(log)),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode != 0
    assert done.stdout == ""
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"make run PORT={port + 1}" in done.stderr
    assert calls(log) == []


def run_entrypoint(
    fakes: Path, workdir: Path, *args: str, check: bool = True, **values: str
) -> tuple[subprocess.CompletedProcess[str], list[Call]]:
    workdir.mkdir(exist_ok=True)
    log = workdir / "calls"
    log.unlink(missing_ok=True)
    env = environment(CALLS=str(log), **{"PORT": "8123", "COUNT": "50", **values})
    env["PATH"] = f"{fakes}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        cwd=workdir,
        env=env,
        check=check,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, calls(log)


def comparable(made: list[Call]) -> list[Call]:
    """The calls with the demo hint script named relative to the project, as `make` names it."""
    return [
        [
            str(Path(arg).relative_to(PROJECT_ROOT)) if arg.startswith(str(PROJECT_ROOT)) else arg
            for arg in call
        ]
        for call in made
    ]


def assert_same_as_make(by_make: list[Call], by_entrypoint: list[Call]) -> None:
    assert by_make[-1][:2] == ["dancu", "serve"]
    assert comparable(by_entrypoint[:-1]) == by_make[:-1]
    serve = by_entrypoint[-1]
    assert serve[:2] == ["dancu", "serve"]
    options = dict(zip(serve[2::2], serve[3::2], strict=True))
    assert options.items() >= dict(zip(by_make[-1][2::2], by_make[-1][3::2], strict=True)).items()
    assert options["--host"] == "0.0.0.0"  # noqa: S104 - in a container the gateway listens on its interface


def test_the_entrypoint_runs_the_commands_of_make_run(fakes: Path, tmp_path: Path) -> None:
    by_make = run_make(fakes, tmp_path / "make")
    _, by_entrypoint = run_entrypoint(fakes, tmp_path / "container")

    assert [call[:2] for call in by_make] == [
        ["dancu", "db"],
        ["mock-csdlqg", "seed"],
        ["dancu", "purposes"],
        ["dancu", "purposes"],
        ["dancu", "clients"],
        ["dancu", "operators"],
        ["dancu", "operators"],
        ["python", "scripts/demo_hint.py"],
        ["dancu", "serve"],
    ]
    assert_same_as_make(by_make, by_entrypoint)
    assert (
        json.loads((tmp_path / "container" / "var" / "demo_client.json").read_text())["client_id"] == "demo"
    )

    # The second start finds the demo client and operators and makes no others, like `make run` again.
    by_make = run_make(fakes, tmp_path / "make")
    _, by_entrypoint = run_entrypoint(fakes, tmp_path / "container")
    assert [call[0:2] for call in by_make] == [
        ["dancu", "db"],
        ["mock-csdlqg", "seed"],
        ["python", "scripts/demo_hint.py"],
        ["dancu", "serve"],
    ]
    assert_same_as_make(by_make, by_entrypoint)


def test_in_prod_the_entrypoint_only_migrates_and_serves(fakes: Path, tmp_path: Path) -> None:
    _, made = run_entrypoint(
        fakes, tmp_path / "prod", "--access-log", DANCU_PROFILE="prod", PORT="9000", WORKERS="4"
    )

    assert made == [
        ["dancu", "db", "upgrade"],
        ["dancu", "serve", "--host", "0.0.0.0", "--port", "9000", "--workers", "4", "--access-log"],  # noqa: S104
    ]


def test_migrate_0_leaves_the_migrations_to_a_one_off_job(fakes: Path, tmp_path: Path) -> None:
    _, made = run_entrypoint(fakes, tmp_path / "replica", DANCU_PROFILE="prod", MIGRATE="0")

    assert [call[:2] for call in made] == [["dancu", "serve"]]


def test_demo_0_skips_the_demo_in_dev(fakes: Path, tmp_path: Path) -> None:
    _, made = run_entrypoint(fakes, tmp_path / "plain", DEMO="0")

    assert [call[:2] for call in made] == [["dancu", "db"], ["dancu", "serve"]]


def test_a_failed_migration_stops_the_container(fakes: Path, tmp_path: Path) -> None:
    done, made = run_entrypoint(fakes, tmp_path / "broken", check=False, FAIL_MIGRATIONS="1")

    assert done.returncode != 0
    assert made == [["dancu", "db", "upgrade"]]


def test_the_entrypoint_works_with_the_real_commands(tmp_path: Path) -> None:
    """For real, in a temporary directory: migrations, a small seed, the demo client; only `serve` is a stub."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "dancu").write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == serve ]]; then printf \'%q \' "$@" > "$CALLS"; exit 0; fi\n'
        f'exec {shlex.quote(str(VENV_BIN / "dancu"))} "$@"\n'
    )
    (stubs / "dancu").chmod(0o755)
    work = tmp_path / "real"
    work.mkdir()
    env = environment(CALLS=str(work / "serve"), PORT="8765", COUNT="20")
    env["PATH"] = os.pathsep.join([str(stubs), str(VENV_BIN), env["PATH"]])

    first = subprocess.run(
        # Generous: about ten fresh interpreters importing the gateway, on a CI machine that may be loaded.
        ["bash", str(ENTRYPOINT)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    client = json.loads((work / "var" / "demo_client.json").read_text())
    assert set(client) == {"client_id", "client_secret"}
    operators = [json.loads(line) for line in (work / "var" / "demo_operators.json").read_text().splitlines()]
    assert [operator["username"] for operator in operators] == ["quantri", "kiemtoan"]
    assert "/console/" in first.stdout
    assert (work / "var" / "dancu.db").stat().st_size > 0
    assert (work / "var" / "mock_csdlqg.db").stat().st_size > 0
    assert "http://127.0.0.1:8765/v1/citizens/verify" in first.stdout
    assert shlex.split((work / "serve").read_text()) == [
        "serve",
        "--host",
        "0.0.0.0",  # noqa: S104
        "--port",
        "8765",
        "--workers",
        "1",
    ]


# --- the Dockerfile ---------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, rest = whole.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in parsed:
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def test_the_image_is_built_in_two_stages_from_python_311_slim(dockerfile: list[tuple[str, str]]) -> None:
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in dockerfile
    builder, runtime = stages(dockerfile)
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert any(kind == "COPY" and args.startswith("--from=builder ") for kind, args in runtime)
    # Nothing is built in the runtime stage: no compiler, no pip install.
    assert not any(kind == "RUN" and "pip install" in args for kind, args in runtime)


def test_the_image_runs_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    runtime = stages(dockerfile)[-1]
    users = [args for kind, args in runtime if kind == "USER"]

    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0", ""}
    assert int(user) >= 1000
    # Every instruction after USER runs unprivileged: none switches back.
    after = runtime[[kind for kind, _ in runtime].index("USER") :]
    assert not any(kind == "RUN" for kind, _ in after)


def test_the_image_checks_its_health_on_healthz(dockerfile: list[tuple[str, str]]) -> None:
    checks = [args for kind, args in stages(dockerfile)[-1] if kind == "HEALTHCHECK"]

    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--interval=" in options
    assert "/healthz" in command
    assert json.loads(command)[0] == "python"  # exec form; the slim image has no curl


def test_the_entrypoint_is_the_script(dockerfile: list[tuple[str, str]]) -> None:
    runtime = stages(dockerfile)[-1]
    (entrypoint,) = [json.loads(args) for kind, args in runtime if kind == "ENTRYPOINT"]

    assert entrypoint == ["/opt/dancu/docker/entrypoint.sh"]
    assert ("COPY", "docker/entrypoint.sh ./docker/entrypoint.sh") in dockerfile
    assert ("WORKDIR", "/opt/dancu") in stages(dockerfile)[0]
    assert ("COPY", "--from=builder /opt/dancu /opt/dancu") in runtime
    assert os.access(ENTRYPOINT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=False).returncode == 0


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secrets(
    dockerfile: list[tuple[str, str]],
) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything is left out unless named below

    def included(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                verdict = negated
        return verdict

    sources = [
        source
        for kind, args in dockerfile
        if kind == "COPY" and not args.startswith("--from=")
        for source in args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert included(source.rstrip("/")), source
    for secret in (".env", "var/keys/checkpoint.pem", "var/dancu.db", ".venv/bin/python", ".git/config"):
        assert not included(secret), secret
