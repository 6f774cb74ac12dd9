#!/usr/bin/env bash
# Serves the gateway on http://127.0.0.1:8787 with the local workerd runtime.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# The request log's schema, in wrangler's local SQLite (idempotent).
CI=true wrangler d1 migrations apply DB --local
exec wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" "$@"
