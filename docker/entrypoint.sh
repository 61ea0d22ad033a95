#!/usr/bin/env bash
# The container's entrypoint: migrate the gateway's database, then serve.
#
# With DANCU_PROFILE=dev (the default) it first does what `make run` does: seed the mock national database,
# register the demo purposes and client once (var/demo_client.json), create the two demo console operators once
# (var/demo_operators.json), print how to call it and how to sign in, and serve a sandbox (DANCU_SANDBOX=true unless
# set otherwise: portals rehearse upstream faults, docs/integration.md section 10). A test runs this
# script beside `make run` and compares the commands, so keep the two in step.
#
# Variables of this script (not gateway settings): HOST (0.0.0.0), PORT (8000), WORKERS (1) for
# `dancu serve`; COUNT (20000) residents for the dev seed; DEMO=0 skips the dev seed and demo client;
# MIGRATE=0 skips `dancu db upgrade` (replicas, when a one-off job migrates before a rollout).
# Arguments are passed on to `dancu serve` (e.g. `--access-log`, `--log-level debug`).
set -euo pipefail

HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
WORKERS="${WORKERS:-1}"
COUNT="${COUNT:-20000}"
DEMO_PURPOSE="DEMO-1.000001"
DEMO_STATS_PURPOSE="DEMO-TK.000001"
PERSONA="052068000108"
APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

mkdir -p var
if [[ "${MIGRATE:-1}" != "0" ]]; then
  dancu db upgrade
fi

if [[ "${DANCU_PROFILE:-dev}" == "dev" && "${DEMO:-1}" != "0" ]]; then
  mock-csdlqg seed --count "$COUNT"
  if [[ ! -s var/demo_client.json ]]; then
    dancu purposes add --code "$DEMO_PURPOSE" --title "Thủ tục minh họa (demo)" \
      --legal-basis "Luật Căn cước 2023, Điều 10" 2>/dev/null || true
    dancu purposes add --code "$DEMO_STATS_PURPOSE" --title "Thống kê dân số phục vụ quản lý (demo)" \
      --legal-basis "Luật Thống kê 2015, Điều 3" 2>/dev/null || true
    dancu clients create --name "Cổng dịch vụ công minh họa (demo)" \
      --scopes citizen.verify,citizen.read,household.read,stats.read --fields '*' --provinces 52 \
      --purposes "$DEMO_PURPOSE,$DEMO_STATS_PURPOSE" --verify-details --json > var/demo_client.json.tmp
    mv var/demo_client.json.tmp var/demo_client.json
  fi
  if [[ ! -s var/demo_operators.json ]]; then
    (
      umask 077
      {
        dancu operators create --username quantri --display-name "Quản trị viên minh họa (demo)" \
          --roles admin,approver --json
        dancu operators create --username kiemtoan --display-name "Kiểm toán viên minh họa (demo)" \
          --roles auditor,analyst --json
      } > var/demo_operators.json.tmp
    )
    mv var/demo_operators.json.tmp var/demo_operators.json
  fi
  export DANCU_SANDBOX="${DANCU_SANDBOX:-true}"
  python "$APP_DIR/scripts/demo_hint.py" --port "$PORT" --purpose "$DEMO_PURPOSE" --persona "$PERSONA" \
    --count "$COUNT" --stats-purpose "$DEMO_STATS_PURPOSE" --sandbox "$DANCU_SANDBOX"
fi

exec dancu serve --host "$HOST" --port "$PORT" --workers "$WORKERS" "$@"
