"""Exit 2 with a one-line hint when ``--host``:``--port`` is already taken (``make run`` checks this first,
so it never prints curl commands that would reach whatever already listens there)."""

from __future__ import annotations

import argparse
import socket
import sys


def port_taken(host: str, port: int) -> bool:
    """True when something accepts connections on ``host``:``port`` or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bind:
        try:
            bind.bind((host, port))
        except OSError:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if not 0 < args.port < 65536:
        sys.exit(f"make run: PORT={args.port} is not a TCP port")
    if port_taken(args.host, args.port):
        print(
            f"make run: port {args.port} on {args.host} is already in use; "
            f"stop what listens there or pick another: make run PORT={args.port + 1}",
            file=sys.stderr,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
