"""Print how to call the gateway with the demo client `make run` created (var/demo_client.json), and how to
sign in to the console as its two demo operators (var/demo_operators.json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", default="8000")
    parser.add_argument("--purpose", required=True)
    parser.add_argument("--persona", required=True)
    parser.add_argument("--count", default="20000")
    parser.add_argument("--stats-purpose", default="DEMO-TK.000001")
    parser.add_argument("--sandbox", default="false", help="DANCU_SANDBOX of the gateway it starts")
    args = parser.parse_args()
    client = json.loads(Path("var/demo_client.json").read_text())
    base = f"http://127.0.0.1:{args.port}"
    auth = f'-H "Authorization: Bearer $TOKEN" -H "X-Purpose: {args.purpose}" -H "Content-Type: application/json"'
    verify = json.dumps(
        {"personal_id": args.persona, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"},
        ensure_ascii=False,
    )
    lookup = json.dumps(
        {"personal_id": args.persona, "fields": ["full_name", "date_of_birth", "current_address"]}
    )
    print(
        f"""
dancu-gateway is starting on {base} over the embedded mock ({args.count} residents + the personas of
docs/personas.md). Demo client in var/demo_client.json: purpose {args.purpose}, provinces 52. Try:

  TOKEN=$(curl -s -u {client["client_id"]}:{client["client_secret"]} -d grant_type=client_credentials \\
      {base}/oauth2/token | python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])')
  curl -s -X POST {base}/v1/citizens/verify {auth} \\
      -d '{verify}'
  curl -s -X POST {base}/v1/citizens/lookup {auth} \\
      -d '{lookup}'
  curl -s -X POST {base}/v1/citizens/household {auth} \\
      -d '{{"personal_id": "{args.persona}"}}'

Population statistics (scope stats.read, statistical purpose {args.stats_purpose}; docs/statistics.md):
  curl -s -X POST {base}/v1/statistics/population -H "Authorization: Bearer $TOKEN" \\
      -H "X-Purpose: {args.stats_purpose}" -H "Content-Type: application/json" \\
      -d '{{"province": "52", "group_by": ["age_group", "sex"]}}'
  (a client made by an earlier `make run` lacks stats.read: delete var/demo_client.json to make a new one)
"""
    )
    if args.sandbox.strip().lower() in ("1", "true", "yes", "on"):
        print(
            f"""Sandbox (DANCU_SANDBOX=true; make run SANDBOX=false turns it off): rehearse an upstream failure with
X-Sandbox-Fault (status=503, malformed, latency=3000...; docs/integration.md section 10):
  curl -s -X POST {base}/v1/citizens/verify {auth} \\
      -H "X-Sandbox-Fault: status=503" -d '{verify}'
"""
        )
    print(operators_hint(base))


def operators_hint(base: str) -> str:
    """The console's URL and the demo operators' logins (their initial passwords, valid until the first login
    changes them)."""
    path = Path("var/demo_operators.json")
    if not path.is_file():
        return ""
    logins = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    roles = {"quantri": "admin + approver", "kiemtoan": "auditor + analyst"}
    lines = [
        f"  {o['username']:<9} {o['initial_password']}   ({roles.get(o['username'], '')})" for o in logins
    ]
    return (
        f"Console (bảng điều khiển): {base}/console/ . Demo operators, initial passwords (changed at the first\n"
        "login; `dancu operators reset-password quantri` prints a new one):\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
