# Sourced by the other scripts: pinned tool versions and worker-build's overrides, so
# nothing is downloaded from outside the package registries.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export WRANGLER_SEND_METRICS=false
# worker-build must match the `worker` crate; wasm-bindgen-cli must match `wasm-bindgen` exactly.
lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}
WORKER_BUILD_VERSION="$(lock_version worker)"
WASM_BINDGEN_VERSION="$(lock_version wasm-bindgen)"
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
if command -v wasm-opt >/dev/null 2>&1; then
  export WASM_OPT_BIN="$(command -v wasm-opt)"
fi
