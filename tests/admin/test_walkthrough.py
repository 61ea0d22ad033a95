"""docs/admin.md runs as written: its `bash` blocks, in order, in one shell, against a real gateway.

The shell starts `dancu serve` in the background in a temporary directory (on a migrated database and the
seeded mock), runs the blocks before the restart marker, restarts the gateway with
DANCU_ADMIN__REQUIRE_APPROVAL=true, and runs the rest. The page's own `export VAR="${VAR:-default}"` lines keep
the values set here. Afterwards the database must hold what the page says happened.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from tests.harness import free_port, gateway_environment

DOC = Path(__file__).resolve().parents[2] / "docs" / "admin.md"
RESTART_MARKER = (
    "<!-- walkthrough: the test restarts the gateway here with DANCU_ADMIN__REQUIRE_APPROVAL=true -->"
)
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.DOTALL | re.MULTILINE)
# Generous: the page runs about a dozen `dancu` commands (each a fresh interpreter importing the gateway) and
# starts the gateway twice; on a loaded CI machine each of those can take many seconds.
TIMEOUT_SECONDS = 600
START_SECONDS = 120


def bash_blocks(markdown: str) -> list[str]:
    return [match.group(1) for match in BASH_BLOCK.finditer(markdown)]


def start_gateway(extra: str = "") -> str:
    return f"""
{extra} dancu serve --port "$PORT" >>gateway.log 2>&1 &
GATEWAY_PID=$!
deadline=$((SECONDS + {START_SECONDS}))
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 || [ "$SECONDS" -ge "$deadline" ]; do
  kill -0 "$GATEWAY_PID" 2>/dev/null || break  # it exited: the check below fails with its log
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null
"""


def script(markdown: str) -> str:
    before, marker, after = markdown.partition(RESTART_MARKER)
    assert marker, "docs/admin.md lost its restart marker"
    steps = [
        "set -euo pipefail",
        "trap 'kill $GATEWAY_PID 2>/dev/null || true' EXIT",
        start_gateway(),
        *(f"echo '--- block {n}'\n{block}" for n, block in enumerate(bash_blocks(before))),
        'kill "$GATEWAY_PID"; wait "$GATEWAY_PID" || true',
        start_gateway("DANCU_ADMIN__REQUIRE_APPROVAL=true"),
        *(f"echo '--- approval block {n}'\n{block}" for n, block in enumerate(bash_blocks(after))),
    ]
    return "\n".join(steps)


def rows(database: Path, query: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query, parameters).fetchall()


def test_the_page_has_enough_to_run() -> None:
    markdown = DOC.read_text(encoding="utf-8")
    blocks = bash_blocks(markdown)

    assert len(blocks) >= 10
    assert all("\t" not in block for block in blocks)
    # Bilingual: every numbered step has a Vietnamese title next to its English one.
    headings = re.findall(r"^## \d+\. (.+)$", markdown, re.MULTILINE)
    assert len(headings) >= 8
    assert all(" / " in heading for heading in headings)


def test_the_walkthrough_runs_as_written(sqlite_url: str, mock_db: str, tmp_path: Path) -> None:
    port = free_port()
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    environment = gateway_environment(
        sqlite_url, mock_db, PORT=str(port), GATEWAY=f"http://127.0.0.1:{port}", HOME=str(tmp_path)
    )
    # dancu serve derives its issuer from --host/--port, as an operator's deployment would.
    environment.pop("DANCU_ISSUER")
    process = subprocess.Popen(
        ["bash", "-c", script(DOC.read_text(encoding="utf-8"))],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the shell and the gateway it started: its own process group
        output, _ = process.communicate()
    log = output.decode(errors="replace")
    gateway_log = (
        (tmp_path / "gateway.log").read_text(errors="replace") if (tmp_path / "gateway.log").exists() else ""
    )
    assert process.returncode == 0, f"{log}\n--- gateway log\n{gateway_log[-3000:]}"

    portal_id = json.loads((tmp_path / "portal.json").read_text())["client_id"]
    [(scopes, provinces, fields)] = rows(
        database, "SELECT scopes, provinces, fields FROM grants WHERE client_id = ?", portal_id
    )
    assert json.loads(scopes) == ["citizen.verify", "citizen.read"]
    assert json.loads(provinces) == ["52", "79"]
    assert json.loads(fields) == ["full_name", "date_of_birth", "current_address"]
    assert rows(database, "SELECT status FROM clients WHERE client_id = ?", portal_id) == [("active",)]

    admin_id = json.loads((tmp_path / "admin.json").read_text())["client_id"]
    admin2_id = json.loads((tmp_path / "admin2.json").read_text())["client_id"]
    events = rows(database, "SELECT action, actor FROM audit_events WHERE action LIKE 'admin.%' ORDER BY seq")
    assert ("admin.purpose.create", admin_id) in events
    assert ("admin.client.create", admin_id) in events
    assert ("admin.client.update", admin_id) in events  # the suspension
    assert ("admin.client.update", "cli") in events  # the reinstatement
    assert ("admin.client.secret_rotate", "cli") in events
    assert ("admin.key.rotate", "cli") in events
    assert events[-3:] == [
        ("admin.change.request", admin_id),
        ("admin.change.approve", admin2_id),
        ("admin.grant.replace", admin2_id),
    ]
    assert rows(
        database, "SELECT action FROM audit_events WHERE action = 'citizen.verify' AND outcome = 'allowed'"
    )

    # No secret the page handled ever reached the audit log.
    details = str(rows(database, "SELECT detail FROM audit_events"))
    for name in ("admin.json", "admin2.json", "portal.json", "portal-rotated.json"):
        assert json.loads((tmp_path / name).read_text())["client_secret"] not in details
