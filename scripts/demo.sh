#!/usr/bin/env bash
# The main job on a fresh machine: a real local Kubernetes cluster (e2e/cluster.sh), the
# operator running as a local process against it, and `meshctl install --profile demo`.
# Usage: scripts/demo.sh [extra meshctl install flags]   install (idempotent)
#        scripts/demo.sh down                            stop the operator and the cluster
#
# kwok fakes pods, so the operator Deployment that install applies never runs a process; the
# local mesh-operator started here holds the leader Lease and does the reconciling.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/target}"
state="${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/demo"
mkdir -p "$state"
pidfile="$state/mesh-operator.pid"

operator_running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [[ ${1:-} == down ]]; then
  if operator_running; then kill "$(cat "$pidfile")"; fi
  rm -f "$pidfile"
  e2e/cluster.sh down
  exit 0
fi

echo "==> local cluster" >&2
e2e/cluster.sh up >/dev/null
kubeconfig="$(e2e/cluster.sh kubeconfig)"

echo "==> building meshctl and mesh-operator" >&2
cargo build --quiet --locked -p meshctl -p meshctl-operator
bin="$CARGO_TARGET_DIR/debug"

if ! operator_running; then
  echo "==> starting mesh-operator (log: $state/mesh-operator.log)" >&2
  setsid "$bin/mesh-operator" --kubeconfig "$kubeconfig" --metrics-addr 127.0.0.1:19090 \
    >"$state/mesh-operator.log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
fi

echo "==> meshctl install --profile demo" >&2
KUBECONFIG="$kubeconfig" "$bin/meshctl" install --profile demo -y "$@"
echo "KUBECONFIG=$kubeconfig; e2e/cluster.sh kubectl get meshinstalls -A; scripts/demo.sh down to stop" >&2
