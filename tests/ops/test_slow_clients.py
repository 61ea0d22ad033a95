"""A served gateway (`dancu serve`, a real process) against slow clients and h2c upgrade offers
(docs/security.md, "Slow clients"; docs/deploy.md).

- a connection that never completes its request headers is closed once DANCU_HEADER_TIMEOUT_SECONDS pass;
- a request body that stalls that long is answered 408 `request_timeout` and the connection closed;
- a body that keeps arriving, however slowly, is not cut;
- a POST that offers `Upgrade: h2c` (curl --http2, Java's HttpClient) keeps its body.

The timeout is set to 1 s here; each test polls for up to 10 s for the outcome and asserts the outcome.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.cli import upgrade_database
from tests.harness import VENV_BIN, gateway_environment, seeded_mock, served

TIMEOUT_SECONDS = 1
POLL_FOR = 10.0


@dataclass(frozen=True)
class Served:
    url: str
    client_id: str
    client_secret: str

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def basic(self) -> str:
        return base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("slow-clients")
    database_url = f"sqlite:///{work / 'dancu.db'}"
    upgrade_database(database_url)
    environment = gateway_environment(
        database_url,
        seeded_mock(tmp_path_factory, "slow-clients-mock"),
        DANCU_HEADER_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
    )
    admin = json.loads(
        subprocess.run(
            [str(VENV_BIN / "dancu"), "bootstrap-admin", "--name", "Quản trị", "--json"],
            env=environment,
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    with served(environment, Path(work)) as url:
        yield Served(url, admin["client_id"], admin["client_secret"])


def connect(gateway: Served, payload: bytes) -> socket.socket:
    sock = socket.create_connection(gateway.address, timeout=5)
    sock.sendall(payload)
    return sock


def read_until_closed(sock: socket.socket, deadline: float) -> bytes | None:
    """Everything the gateway sends until it closes the connection; None if it is still open at ``deadline``."""
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            return None
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def test_connections_that_never_finish_their_headers_are_closed(gateway: Served) -> None:
    started = time.monotonic()
    sockets = [
        connect(gateway, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: aaaa"),  # half a header line
        connect(gateway, b"POST /v1/citizens/verify HTTP/1.1\r\n"),  # a request line, nothing more
        connect(gateway, b""),  # nothing at all
        *(connect(gateway, b"GET /healthz HTTP/1.1\r\nHo") for _ in range(20)),
    ]
    try:
        outcomes = [read_until_closed(sock, started + POLL_FOR) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

    assert [outcome is not None for outcome in outcomes] == [True] * len(sockets)  # all closed by the gateway
    assert all(outcome == b"" for outcome in outcomes)  # closed without an answer


def test_a_stalled_body_is_408_and_the_connection_closed(gateway: Served) -> None:
    started = time.monotonic()
    sock = connect(
        gateway,
        b"POST /oauth2/token HTTP/1.1\r\nHost: gateway\r\nAccept-Language: vi\r\nX-Request-Id: slow-1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ng",
    )
    try:
        answer = read_until_closed(sock, started + POLL_FOR)
    finally:
        sock.close()

    assert answer is not None, "the gateway kept the connection open"
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])}
    assert lines[0] == "HTTP/1.1 408 Request Timeout"
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["x-request-id"] == "slow-1"
    assert headers["x-content-type-options"] == "nosniff"
    problem = json.loads(body)
    assert (problem["status"], problem["code"], problem["request_id"]) == (408, "request_timeout", "slow-1")
    assert problem["title"] == "Hết thời gian chờ yêu cầu"


def test_a_body_that_keeps_arriving_is_not_cut(gateway: Served) -> None:
    body = b"grant_type=client_credentials"
    sock = connect(
        gateway,
        b"POST /oauth2/token HTTP/1.1\r\nHost: gateway\r\nAuthorization: Basic "
        + gateway.basic().encode()
        + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode(),
    )
    try:
        # Three times the timeout in all, never more than a quarter of it between two pieces.
        for index in range(12):
            sock.sendall(body[index * 3 : index * 3 + 3] if index < 11 else body[33:])
            time.sleep(TIMEOUT_SECONDS / 4)
        answer = read_until_closed(sock, time.monotonic() + POLL_FOR)
    finally:
        sock.close()

    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert b'"access_token"' in answer


@pytest.mark.parametrize("split", [False, True], ids=["one-packet", "body-later"])
def test_an_h2c_upgrade_offer_keeps_the_body(gateway: Served, split: bool) -> None:
    body = b"grant_type=client_credentials"
    head = (
        b"POST /oauth2/token HTTP/1.1\r\nHost: gateway\r\nAuthorization: Basic "
        + gateway.basic().encode()
        + b"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    sock = connect(gateway, head if split else head + body)
    try:
        if split:
            time.sleep(0.2)
            sock.sendall(body)
        deadline = time.monotonic() + POLL_FOR
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            chunk = sock.recv(65536) if readable else b""
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()

    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert b'"access_token"' in answer
    assert b"101 Switching" not in answer


def test_keep_alive_requests_still_work_one_after_another(gateway: Served) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    sock = connect(gateway, request)
    try:
        answers = []
        for _ in range(3):
            received = b""
            while b"\r\n\r\n" not in received or not received.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, "closed early"
                received += chunk
            answers.append(received)
            sock.sendall(request)
    finally:
        sock.close()

    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)
