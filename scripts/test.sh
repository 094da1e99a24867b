#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and component tests, CRD drift, then the e2e
# tests against a real local Kubernetes cluster (built from source on first use; see e2e/README.md).
# Usage: scripts/test.sh            everything
#        scripts/test.sh --no-e2e   without the cluster
set -euo pipefail
cd "$(dirname "$0")/.."

run_e2e=1
[ "${1:-}" = "--no-e2e" ] && run_e2e=0

# Build products live outside the clone so that CI runs and developers share them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental state would double the target dir's size for no gain in a one-shot run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s [%s]\n' "$*" "$(date +%H:%M:%S)"; }

step "toolchain"
for tool in cargo go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found; install it (Rust via rustup, Go 1.24+) and run again" >&2
    exit 1
  fi
done
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version
go version
# mesh-proxy's capture tests load real iptables rules into network namespaces.
if ! command -v iptables-restore >/dev/null 2>&1; then
  echo "installing iptables (Debian package) for the capture tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q iptables >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q iptables >/dev/null; } || {
    echo "error: iptables is missing and could not be installed; install it (apt-get install iptables)" >&2
    exit 1
  }
fi
iptables --version

if [ "$run_e2e" = 1 ]; then
  # The cluster build is the slowest step of a cold run: start it now, beside the Rust build.
  step "building the e2e cluster in the background"
  cluster_log="$(mktemp)"
  e2e/cluster.sh build >"$cluster_log" 2>&1 &
  cluster_build=$!
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "CRD drift"
cargo run --quiet --locked -p meshctl-crds --bin crdgen -- --check

step "cargo test"
cargo test --workspace --locked --exclude meshctl-e2e

step "image archive writer (scripts/oci.py)"
python3 scripts/test_oci.py

# Two builds of the same sources give the same digests: checked on every run for the sample app
# and pause (the same build and archive path as every image, a fraction of the time); for all
# images with MESHCTL_CHECK_IMAGES=1 (minutes more; docs/images.md).
step "images: reproducible"
reproducible_out="$(mktemp -d)"
if [ "${MESHCTL_CHECK_IMAGES:-0}" = 1 ]; then
  scripts/images.sh --check-reproducible --out "$reproducible_out"
else
  scripts/images.sh --check-reproducible --only sample pause --out "$reproducible_out"
fi
rm -rf "$reproducible_out"

[ "$run_e2e" = 1 ] || exit 0

step "e2e: cluster"
if ! wait "$cluster_build"; then
  cat "$cluster_log" >&2
  echo "error: building the e2e cluster failed (log above)" >&2
  exit 1
fi
tail -n 3 "$cluster_log"
# A cluster a developer already had running is left running; one started here is stopped.
if ! e2e/cluster.sh status >/dev/null 2>&1; then
  trap 'e2e/cluster.sh down >/dev/null 2>&1 || true' EXIT
fi
e2e/cluster.sh up >/dev/null
MESHCTL_E2E_KUBECONFIG="$(e2e/cluster.sh kubeconfig)"
export MESHCTL_E2E_KUBECONFIG

step "e2e: images for the real node"
# The real node's pods run the images built from this workspace, imported, never pulled.
images_dir="${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/images"
scripts/images.sh --out "$images_dir"
e2e/cluster.sh load-images "$images_dir"/{mesh-operator,meshd,mesh-proxy,mesh-sample}.tar

step "e2e: tests"
# The e2e tests run the real binaries: meshctl; mesh-operator and meshd as local processes for
# the tests on kwok's nodes (kwok only fakes the pods) and as pods on the real node
# (`real_node.rs`); mesh-proxy in network namespaces standing in for the pods of the mesh test,
# and as the sidecars and gateways of the real node.
cargo build --locked -p meshctl -p meshctl-operator -p meshd -p mesh-proxy
cargo test --locked -p meshctl-operator --features e2e --test controller_e2e
cargo test --locked -p meshctl-e2e
