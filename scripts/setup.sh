#!/usr/bin/env bash
# Idempotent: installs only what is missing. Safe to run before every start and test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

command -v cargo >/dev/null || { echo "setup: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup: node and npm are required" >&2; exit 1; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

installed_version() { "$1" --version 2>/dev/null | awk '{print $NF}' || true; }

if [ "$(installed_version "$HOME/.cargo/bin/wasm-bindgen")" != "$WASM_BINDGEN_VERSION" ]; then
  echo "setup: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (compiles for a while, once)"
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force
fi
if [ "$(installed_version "$HOME/.cargo/bin/worker-build")" != "$WORKER_BUILD_VERSION" ]; then
  echo "setup: installing worker-build $WORKER_BUILD_VERSION (compiles for a while, once)"
  cargo install worker-build --version "=$WORKER_BUILD_VERSION" --force
fi

# A node_modules that links to another checkout (the start test's scratch clone) is that
# checkout's to install: `npm ci` here would empty it.
if [ -L node_modules ]; then
  :
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund
fi
