#!/usr/bin/env bash
# Builds the Worker into build/ (wrangler's [build] command).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
# The test runner builds once, then starts several `wrangler dev` instances on that build.
if [ "${GATEWAY_SKIP_BUILD:-}" = "1" ] && [ -f build/index.js ]; then
  exit 0
fi
exec worker-build --release
