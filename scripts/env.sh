# Sourced by the other scripts: where tools and build output live. Both sit
# outside the clone so that fresh clones (and CI runs) reuse them.
export PORTAL_CACHE="${PORTAL_CACHE:-$HOME/.cache/patient-portal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PORTAL_CACHE/target}"
export PORTAL_TOOLS="$PORTAL_CACHE/tools"
export PATH="$PORTAL_TOOLS/bin:$HOME/.cargo/bin:$PATH"
# Versions pinned here and in app/Cargo.toml.
export WASM_BINDGEN_VERSION=0.2.130
export BINARYEN_VERSION=132.0.0
export TERSER_VERSION=5.51.4
# axe-core: the accessibility rules the e2e test `accessibility` runs in each view
# (injected over CDP, never part of the app).
export AXE_CORE_VERSION=4.14.1
# The release WASM is built with a pinned nightly: rebuilding std with
# immediate-abort panics and no Debug formatting takes about a tenth off the
# brotli bundle (see scripts/build-app). Everything else builds on stable.
export WASM_TOOLCHAIN=nightly-2026-10-30
