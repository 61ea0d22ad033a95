"""Process helpers for the benchmarks: a free port, a command that must succeed, a server for a ``with`` block, and
a command run while sampling its process tree's memory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    """``args``'s standard output; SystemExit with the end of its standard error when it fails."""
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


@contextmanager
def serving(args: Sequence[str], env: dict[str, str], cwd: Path, url: str) -> Iterator[None]:
    """The server ``args`` for the ``with`` block, once ``url`` answers 200 (within 120 s)."""
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[0]} did not start")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(10)


@dataclass(frozen=True)
class RunResult:
    seconds: float
    peak_tree_rss_mib: float
    returncode: int


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(root: int) -> int:
    """Resident memory of a process and all its descendants, in KiB (Linux /proc)."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _rss_kib(pid)
        stack.extend(_children(pid))
    return total


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None) -> RunResult:
    """Run ``cmd`` to completion; wall time from start to exit and the peak summed RSS of its tree."""
    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kib(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return RunResult(seconds, peak / 1024, code)


# ------------------------------------------------------------------ servers measured by bench/harness.py

TICKS = os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """``root`` and every live descendant (children are listed per thread: a worker may fork from any)."""
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                stack.extend(int(p) for p in (task / "children").read_text().split())
    return out


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and its live descendants (a process that exits takes its share along)."""
    total = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def server_workers(root: int) -> list[int]:
    """The processes that serve requests: uvicorn's spawned workers under ``--workers N``, else ``root``."""
    workers = [pid for pid in descendants(root)[1:] if "spawn_main" in _cmdline(pid)]
    return workers or [root]


def status_mib(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` size field (``VmRSS``: resident now, ``VmHWM``: peak resident) in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
