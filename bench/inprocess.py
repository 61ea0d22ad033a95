"""The gateway's own cost and latency per request, driven in process: the ASGI app called directly, N at once.

Usage: .venv/bin/python bench/inprocess.py [verify|read|batch] [--count 20000] [--requests 8000] [--rounds 4]
       [--concurrency 64]

No HTTP server and no wrk: what is left is the gateway's own code, so figures move less with the machine's
noise than the harness's, and a stall of the event loop shows up in the latency figures undiluted. It seeds a
mock of ``--count`` residents and a gateway database (SQLite, WAL) in a temporary directory, registers a portal
with the harness's grant, obtains a token, then sends ``--requests`` requests per round, ``--concurrency`` in
flight, with the harness's bodies. Per round it prints CPU µs per request (``time.process_time()``: every
thread of this process), wall µs per request, requests (identities) per second, p50 / p99 / max latency,
and the garbage collections of that round. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

Message = dict[str, Any]


class Driver:
    """Calls an ASGI app the way a server would, one request at a time per caller."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # a server says "disconnect" only when the client goes away
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw += [(b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": raw,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        await self.app(scope, receive, send)
        return status, b"".join(chunks)


def prepare(work: Path, count: int) -> tuple[dict[str, str], dict[str, str], list[dict[str, object]]]:
    """Seed the mock, migrate and register in ``work``; the environment, the portal and a resident sample."""
    mock_db = work / "mock.db"
    subprocess.run(
        [
            str(harness.BIN / "mock-csdlqg"),
            "seed",
            "--count",
            str(count),
            "--database-url",
            f"sqlite:///{mock_db}",
            "-q",
        ],
        check=True,
    )
    env = {
        "BENCH_CWD": str(work),
        "DANCU_DATABASE_URL": f"sqlite:///{work / 'dancu.db'}",
        "MOCK_CSDLQG_DATABASE_URL": f"sqlite:///{mock_db}",
        "DANCU_KEYS__ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "DANCU_AUDIT__SUBJECT_KEYS": "b1:" + base64.b64encode(os.urandom(32)).decode(),
        "DANCU_AUDIT__CHECKPOINT_KEY_FILE": str(work / "keys" / "checkpoint.pem"),
        "DANCU_AUDIT__CHECKPOINT_DIR": str(work / "checkpoints"),
        "DANCU_ISSUER": "http://127.0.0.1",
    }
    full = {**os.environ, **env}
    full.pop("DANCU_REDIS_URL", None)
    portal, _auditor = harness.register(full)
    return env, portal, harness.residents(mock_db, 2000)


def bodies(kind: str, sample: list[dict[str, object]]) -> tuple[str, list[bytes], int]:
    """The path, the request bodies and the identities per request of ``kind`` (the harness's)."""
    verify = [
        {"personal_id": r["soDinhDanh"], "full_name": r["hoVaTen"], "date_of_birth": r["ngaySinh"]}
        for r in sample
    ]
    if kind == "read":
        return (
            "/v1/citizens/lookup",
            [json.dumps({"personal_id": r["soDinhDanh"]}).encode() for r in sample],
            1,
        )
    if kind == "batch":
        batches = [
            json.dumps({"items": verify[i : i + 100]}, ensure_ascii=False).encode()
            for i in range(0, 1000, 100)
        ]
        return "/v1/citizens/verify/batch", batches, 100
    return "/v1/citizens/verify", [json.dumps(v, ensure_ascii=False).encode() for v in verify], 1


async def measure(args: argparse.Namespace, portal: dict[str, str], sample: list[dict[str, object]]) -> None:
    from app.main import create_app  # after the environment is set: the settings come from it

    app = create_app()
    driver = Driver(app)
    collections: list[tuple[int, float]] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collections.append((info["generation"], time.perf_counter() - started[0]))

    async with app.router.lifespan_context(app):
        basic = base64.b64encode(f"{portal['client_id']}:{portal['client_secret']}".encode()).decode()
        form = {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"}
        status, answer = await driver.call("POST", "/oauth2/token", form, b"grant_type=client_credentials")
        if status != 200:
            raise SystemExit(f"token: {status}")
        headers = {
            "Authorization": "Bearer " + json.loads(answer)["access_token"],
            "X-Purpose": harness.PURPOSE,
            "Content-Type": "application/json",
        }
        path, payloads, unit = bodies(args.kind, sample)
        requests = max(1, args.requests // unit)
        gc.callbacks.append(on_gc)
        for round_ in range(1, args.rounds + 1):
            pending = iter(range(requests))
            latencies: list[float] = []
            collections.clear()

            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(
                *(
                    caller(driver, path, headers, payloads, pending, latencies)
                    for _ in range(args.concurrency)
                )
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            latencies.sort()
            full = [seconds for generation, seconds in collections if generation == 2]
            print(
                f"{args.kind} round {round_}: {cpu / requests * 1e6:,.0f} µs CPU/request, "
                f"{wall / requests * 1e6:,.0f} µs wall/request, {requests * unit / wall:,.0f} identities/s; "
                f"latency p50 {latencies[len(latencies) // 2] * 1e3:.1f} ms, "
                f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.1f} ms, max {latencies[-1] * 1e3:.1f} ms; "
                f"{len(collections)} collections, {len(full)} full ({max(full, default=0) * 1e3:.1f} ms at most)",
                flush=True,
            )
        gc.callbacks.remove(on_gc)


async def caller(
    driver: Driver,
    path: str,
    headers: dict[str, str],
    payloads: list[bytes],
    pending: Iterator[int],
    latencies: list[float],
) -> None:
    """Take the next request number from ``pending`` until none is left; time each request."""
    for i in pending:
        began = time.perf_counter()
        code, body = await driver.call("POST", path, headers, payloads[i % len(payloads)])
        latencies.append(time.perf_counter() - began)
        if code != 200:
            raise SystemExit(f"{path}: {code} {body[:200]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", nargs="?", default="verify", choices=("verify", "read", "batch"))
    parser.add_argument("--count", type=int, default=20_000, help="residents in the mock")
    parser.add_argument("--requests", type=int, default=8_000, help="identities per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dancu-inprocess-") as directory:
        work = Path(directory)
        env, portal, sample = prepare(work, args.count)
        os.environ.update(env)
        os.environ.pop("DANCU_REDIS_URL", None)
        import uvloop

        uvloop.run(measure(args, portal, sample))


if __name__ == "__main__":
    main()
