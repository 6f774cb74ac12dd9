#!/usr/bin/env bash
# Benchmarks (bench/*.mjs): builds once, then runs each against local servers on loopback.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build.sh
export GATEWAY_SKIP_BUILD=1
node bench/gateway.mjs "$@"
node bench/keys.mjs
