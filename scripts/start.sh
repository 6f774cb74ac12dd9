#!/usr/bin/env bash
# Serves the gateway on http://127.0.0.1:8787 (PORT) with the local workerd runtime.
# Local development only: a random ADMIN_TOKEN goes into .dev.vars when it has none (nothing
# there is ever overwritten), and the built-in demo upstream is on unless .dev.vars sets
# DEMO_UPSTREAM. A banner says where everything is once the gateway answers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
PORT="${PORT:-8787}"
DEV_VARS="$ROOT/.dev.vars"
if ! grep -qs '^ADMIN_TOKEN=' "$DEV_VARS"; then
  token="local-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  # Append on a line of its own, after whatever the file already holds.
  if [ -s "$DEV_VARS" ] && [ -n "$(tail -c1 "$DEV_VARS")" ]; then echo >> "$DEV_VARS"; fi
  printf 'ADMIN_TOKEN=%s\n' "$token" >> "$DEV_VARS"
  echo "start: wrote a random local ADMIN_TOKEN to .dev.vars (the dashboard's sign-in token)"
fi
vars=()
if ! grep -qs '^DEMO_UPSTREAM=' "$DEV_VARS"; then
  vars+=(--var DEMO_UPSTREAM:true)
fi
# The request log's schema, in wrangler's local SQLite (idempotent).
CI=true wrangler d1 migrations apply DB --local
wrangler dev --ip 127.0.0.1 --port "$PORT" ${vars[@]+"${vars[@]}"} "$@" &
child=$!
trap 'kill "$child" 2>/dev/null || true' INT TERM EXIT
node "$ROOT/scripts/banner.mjs" "http://127.0.0.1:$PORT" "$DEV_VARS" || true
wait "$child"
