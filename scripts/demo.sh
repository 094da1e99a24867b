#!/usr/bin/env bash
# The main job on a fresh machine: a real local Kubernetes cluster (e2e/cluster.sh), the
# operator running as a local process against it, and `meshctl install --profile demo`.
# Usage: scripts/demo.sh [extra meshctl install flags]   install (idempotent)
#        scripts/demo.sh down                            stop the operator and the cluster
#
# kwok fakes pods, so the Deployments that install applies never run a process: the local
# mesh-operator started here holds the leader Lease and does the reconciling, and a local meshd
# stands in for the meshd pod, at that pod's IP (added to lo), so that the API server's calls to
# the injection and validation webhooks reach it and `meshctl proxy-status` / `dashboard
# controlz` work (through a kwok PortForward to its debug port).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/target}"
state="${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/demo"
mkdir -p "$state"
pidfile="$state/mesh-operator.pid"
meshd_pidfile="$state/meshd.pid"
mesh_ns=mesh-system

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [[ ${1:-} == down ]]; then
  for p in "$pidfile" "$meshd_pidfile"; do
    if running "$p"; then kill "$(cat "$p")"; fi
    rm -f "$p"
  done
  if [[ -f $state/meshd.ip ]]; then
    ip addr del "$(cat "$state/meshd.ip")/32" dev lo 2>/dev/null || true
    rm -f "$state/meshd.ip"
  fi
  e2e/cluster.sh down
  exit 0
fi

echo "==> local cluster" >&2
e2e/cluster.sh up >/dev/null
kubeconfig="$(e2e/cluster.sh kubeconfig)"

echo "==> building meshctl, mesh-operator and meshd" >&2
cargo build --quiet --locked -p meshctl -p meshctl-operator -p meshd
bin="$CARGO_TARGET_DIR/debug"

if ! running "$pidfile"; then
  echo "==> starting mesh-operator (log: $state/mesh-operator.log)" >&2
  setsid "$bin/mesh-operator" --kubeconfig "$kubeconfig" --metrics-addr 127.0.0.1:19090 \
    >"$state/mesh-operator.log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
fi

echo "==> meshctl install --profile demo" >&2
KUBECONFIG="$kubeconfig" "$bin/meshctl" install --profile demo -y "$@"

kubectl() { e2e/cluster.sh kubectl "$@"; }
if ! running "$meshd_pidfile"; then
  echo "==> starting meshd at its pod's address (log: $state/meshd.log)" >&2
  pod_ip=""
  for _ in $(seq 60); do
    pod_ip=$(kubectl get endpoints meshd -n "$mesh_ns" -o jsonpath='{.subsets[0].addresses[0].ip}' 2>/dev/null || true)
    [[ -n $pod_ip ]] && break
    sleep 1
  done
  [[ -n $pod_ip ]] || { echo "error: meshd's pod never got an endpoint in $mesh_ns" >&2; exit 1; }
  ip addr replace "$pod_ip/32" dev lo
  echo "$pod_ip" >"$state/meshd.ip"
  files="$state/meshd-files"
  mkdir -p "$files/inject"
  kubectl get configmap mesh-sidecar-injector -n "$mesh_ns" -o jsonpath='{.data.values}' >"$files/inject/values"
  kubectl get configmap mesh-sidecar-injector -n "$mesh_ns" -o jsonpath='{.data.config}' >"$files/inject/config"
  kubectl get configmap mesh -n "$mesh_ns" -o jsonpath='{.data.mesh}' >"$files/mesh"
  # The rendered Deployment's own flags, with the mounted files and listen addresses made local.
  mapfile -t args < <(kubectl get deployment meshd -n "$mesh_ns" \
    -o go-template='{{range (index .spec.template.spec.containers 0).args}}{{.}}{{"\n"}}{{end}}' |
    grep -v -e '^--mesh-config=' -e '^--inject-config=')
  POD_NAMESPACE="$mesh_ns" setsid "$bin/meshd" "${args[@]}" --kubeconfig "$kubeconfig" \
    --mesh-config="$files/mesh" --inject-config="$files/inject" \
    --webhook-addr="$pod_ip:15017" --grpc-tls-addr="$pod_ip:15012" --grpc-addr=127.0.0.1:15010 \
    --debug-addr=127.0.0.1:18080 --monitoring-addr=127.0.0.1:15014 \
    >"$state/meshd.log" 2>&1 </dev/null &
  echo $! >"$meshd_pidfile"
  for _ in $(seq 30); do
    curl -fsS http://127.0.0.1:18080/ready >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS http://127.0.0.1:18080/ready >/dev/null || {
    tail -20 "$state/meshd.log" >&2
    echo "error: meshd did not become ready (log above)" >&2
    exit 1
  }
  pod=$(kubectl get pods -n "$mesh_ns" -l app=meshd -o jsonpath='{.items[0].metadata.name}')
  kubectl apply -f - >/dev/null <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: PortForward
metadata: {name: $pod, namespace: $mesh_ns}
spec:
  forwards:
  - ports: [8080]
    target: {address: 127.0.0.1, port: 18080}
EOF
fi
echo "==> ready: pods in namespaces labelled istio-injection=enabled get the sidecar; meshctl proxy-status lists the connected proxies" >&2
echo "KUBECONFIG=$kubeconfig; e2e/cluster.sh kubectl get meshinstalls -A; scripts/demo.sh down to stop" >&2
