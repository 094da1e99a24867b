#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and component tests, CRD drift.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Build products live outside the clone so that CI runs and developers share them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "CRD drift"
cargo run --quiet --locked -p meshctl-crds --bin crdgen -- --check

step "cargo test"
cargo test --workspace --locked
