"""The client examples of examples/ run against a served gateway, as a portal developer would run them
(docs/integration.md, "Client examples"): tokens by secret and by private_key_jwt (ES256 and RS256), cached;
verify, lookup and household; the attestation checked offline; problems reported and not retried.

Java runs with the JDK's defaults, so every request it sends offers an h2c upgrade; the gateway must keep its
body (docs/security.md, "Slow clients"; docs/deploy.md). A second run goes through a proxy that injects a 503 with
`Retry-After` and a 401 `invalid_token`: each example retries the first after waiting, renews its token after the
second, and retries nothing else.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from tests.examples.conftest import (
    LANGUAGES,
    Language,
    Portal,
    Run,
    language_params,
    require_runtime,
    run_example,
)

HEAD = "052068000108"  # persona large_household_head: a household of eight (docs/personas.md)
GRANTED_FIELDS = len(RESIDENT_FIELDS) - len(SENSITIVE_FIELDS)  # the client's grant: "*"


def audit_events(portal: Portal, request_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(portal.database) as connection:
        rows = connection.execute(
            "SELECT action, outcome FROM audit_events WHERE request_id = ? ORDER BY seq", (request_id,)
        ).fetchall()
    return [(action, outcome) for action, outcome in rows]


def assert_ran(run: Run) -> None:
    assert run.returncode == 0, "\n".join([*run.lines, run.stderr[-3000:]])
    assert run.lines[-1] == "done"


@pytest.mark.slow
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
@pytest.mark.parametrize("language", language_params())
def test_the_example_runs_against_the_gateway(
    language: Language, alg: str, portal: Portal, tmp_path: Path
) -> None:
    require_runtime(language)

    run = run_example(language, portal.environment(alg), tmp_path)

    assert_ran(run)
    assert run.lines[0] == f"gateway: {portal.url} issuer={portal.url}"
    # One token per credential, reused by every call that follows (cached until shortly before expiry).
    assert run.starting("token: method=client_secret_basic ") == [
        "token: method=client_secret_basic fetched expires_in=300",
        "token: method=client_secret_basic fetched=1 used=5",
    ]
    assert run.starting("token: method=private_key_jwt ") == [
        f"token: method=private_key_jwt alg={alg} fetched expires_in=300",
        "token: method=private_key_jwt fetched=1 used=2",
    ]
    verifies = [run.fields(line) for line in run.starting("verify: ")]
    assert [(v["match"], v["reason"]) for v in verifies] == [("true", "null"), ("true", "null")]

    # The attestation was checked against a key the gateway publishes.
    [attestation] = [run.fields(line) for line in run.starting("attestation: ")]
    jwks = httpx.get(portal.url + "/.well-known/jwks.json").json()
    assert attestation["kid"] in {key["kid"] for key in jwks["keys"]}
    assert attestation["match"] == "true"
    assert attestation["input_hash"] == "checked"  # recomputed from the values sent: what a dossier keeps

    [lookup] = [run.fields(line) for line in run.starting("lookup: ")]
    assert (lookup["fields"], lookup["source"]) == (str(GRANTED_FIELDS), "mock_csdlqg")
    [household] = [run.fields(line) for line in run.starting("household: ")]
    assert household["members"] == "8"

    # Final problems are reported with their code and request id, and not retried.
    problems = [run.fields(line) for line in run.starting("problem: ")]
    assert [(p["status"], p["code"], p["retried"]) for p in problems] == [
        ("404", "not_found", "0"),
        ("422", "invalid_personal_id", "0"),
    ]
    assert problems[1]["errors"] == "body.personal_id"
    assert not run.starting("retry: ")

    # The request ids the example chose reached the audit log: what a portal quotes to support.
    assert audit_events(portal, verifies[0]["request_id"]) == [("citizen.verify", "allowed")]
    assert audit_events(portal, lookup["request_id"]) == [("citizen.read", "allowed")]
    assert audit_events(portal, problems[0]["request_id"]) == [("citizen.read", "allowed")]  # not_found
    assert audit_events(portal, verifies[1]["request_id"]) == [("citizen.verify", "allowed")]


@dataclass
class Seen:
    method: str
    path: str
    at: float
    authorization: str
    upgrade: str


@dataclass
class FaultProxy:
    """Forwards to the gateway, except: the first verify is answered 503 `upstream_unavailable` with
    `Retry-After: 1`, the first lookup 401 `invalid_token`; with ``tamper``, instead, every verification answer's
    attestation has its claims changed (its signature no longer holds)."""

    upstream: str
    tamper: bool = False
    seen: list[Seen] = field(default_factory=list)
    injected: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    HOP_BY_HOP = frozenset(
        {
            "connection",
            "upgrade",
            "http2-settings",
            "keep-alive",
            "transfer-encoding",
            "host",
            "content-length",
        }
    )

    def answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        request_id = handler.headers.get("X-Request-Id", "proxy")
        with self.lock:
            self.seen.append(
                Seen(
                    method,
                    handler.path,
                    time.monotonic(),
                    handler.headers.get("Authorization", ""),
                    handler.headers.get("Upgrade", ""),
                )
            )
            fault = None
            for path, status, code in (
                ("/v1/citizens/verify", 503, "upstream_unavailable"),
                ("/v1/citizens/lookup", 401, "invalid_token"),
            ):
                if handler.path == path and path not in self.injected and not self.tamper:
                    self.injected.add(path)
                    fault = (status, code)
        if fault is not None:
            status, code = fault
            problem = {
                "type": "about:blank",
                "title": code,
                "status": status,
                "code": code,
                "request_id": request_id,
            }
            headers = {"Content-Type": "application/problem+json", "X-Request-Id": request_id}
            headers |= (
                {"Retry-After": "1"}
                if status == 503
                else {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
            self.send(handler, status, headers, json.dumps(problem).encode())
            return
        forwarded = {k: v for k, v in handler.headers.items() if k.lower() not in self.HOP_BY_HOP}
        response = httpx.request(
            method, self.upstream + handler.path, headers=forwarded, content=body, timeout=30
        )
        headers = {k: v for k, v in response.headers.items() if k.lower() not in self.HOP_BY_HOP}
        content = response.content
        if self.tamper and handler.path == "/v1/citizens/verify" and response.status_code == 200:
            answer = response.json()
            header, claims, signature = answer["attestation"].split(".")
            changed = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
            changed["dossier_id"] = "HS-FORGED-0001"
            encoded = base64.urlsafe_b64encode(json.dumps(changed).encode()).rstrip(b"=").decode()
            answer["attestation"] = f"{header}.{encoded}.{signature}"
            content = json.dumps(answer).encode()
        self.send(handler, response.status_code, headers, content)

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def requests(self, method: str, path: str) -> list[Seen]:
        with self.lock:
            return [seen for seen in self.seen if (seen.method, seen.path) == (method, path)]


@contextmanager
def proxy_in_front(proxy: FaultProxy) -> Iterator[str]:

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            proxy.answer(self, "GET")

        def do_POST(self) -> None:
            proxy.answer(self, "POST")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.slow
@pytest.mark.parametrize("language", language_params())
def test_the_example_retries_what_may_be_retried_and_nothing_else(
    language: Language, portal: Portal, tmp_path: Path
) -> None:
    require_runtime(language)
    proxy = FaultProxy(portal.url)

    with proxy_in_front(proxy) as url:
        run = run_example(language, portal.environment("ES256", url=url), tmp_path)

    assert_ran(run)
    # The 503 was retried once, after the Retry-After it carried.
    assert run.starting("retry: ") == ["retry: status=503 code=upstream_unavailable wait_s=1 attempt=1"]
    first, second, *_ = proxy.requests("POST", "/v1/citizens/verify")
    assert second.at - first.at >= 1.0
    # The 401 made it fetch a new token (once) and repeat the lookup with it.
    assert run.starting("token: method=client_secret_basic fetched=")[0].startswith(
        "token: method=client_secret_basic fetched=2 "
    )
    lookups = proxy.requests("POST", "/v1/citizens/lookup")
    assert len(lookups) == 3  # the refused one, its repeat with the new token, the cancelled ID (not retried)
    assert lookups[0].authorization != lookups[1].authorization
    # Nothing else was repeated: two verifies for the first check, one refused (422), one with private_key_jwt.
    assert len(proxy.requests("POST", "/v1/citizens/verify")) == 4
    assert len(proxy.requests("POST", "/oauth2/token")) == 3  # secret twice (after the 401), key once
    assert [run.fields(line)["code"] for line in run.starting("problem: ")] == [
        "not_found",
        "invalid_personal_id",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("language", language_params())
def test_the_example_refuses_an_attestation_whose_signature_does_not_hold(
    language: Language, portal: Portal, tmp_path: Path
) -> None:
    require_runtime(language)

    with proxy_in_front(FaultProxy(portal.url, tamper=True)) as url:
        run = run_example(language, portal.environment("ES256", url=url), tmp_path)

    assert run.returncode != 0
    assert not run.starting("attestation: ")
    assert "bad signature" in run.stderr + "\n".join(run.lines)  # PHP's CLI prints uncaught errors on stdout
    assert run.starting("verify: match=true")  # it got that far, and stopped there


def test_every_language_is_tested() -> None:
    """The examples the suite runs are those in examples/ (C# is checked for syntax: test_csharp.py)."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    runnable = {
        path.parent.name for path in examples.glob("*/*") if path.suffix in {".mjs", ".java", ".php", ".py"}
    }
    assert runnable == set(LANGUAGES)


def test_the_readmes_key_commands_make_a_jwk_set_of_the_public_key(tmp_path: Path) -> None:
    """examples/README.md: the key pair and the JWK Set a portal hands its administrator."""
    require_runtime(LANGUAGES["node"])
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not available")
    readme = (Path(__file__).resolve().parents[2] / "examples" / "README.md").read_text(encoding="utf-8")
    [block] = [
        b for b in re.findall(r"^```bash\n(.*?)^```", readme, re.DOTALL | re.MULTILINE) if "genpkey" in b
    ]

    subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, check=True, capture_output=True)

    private = serialization.load_pem_private_key((tmp_path / "portal-key.pem").read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    [jwk] = json.loads((tmp_path / "portal-jwks.json").read_text())["keys"]
    expected = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    assert {name: jwk[name] for name in ("kty", "crv", "x", "y")} == {
        name: expected[name] for name in ("kty", "crv", "x", "y")
    }
    assert (jwk["kid"], jwk["alg"], "d" in jwk) == ("portal-key-1", "ES256", False)
