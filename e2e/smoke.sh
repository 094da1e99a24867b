#!/usr/bin/env bash
# Smoke test of the e2e cluster: brings it up (if needed) and checks that
# Deployments, Jobs, pod deletion, CRDs and kwok port-forwarding work.
# Leaves the cluster running; use `e2e/cluster.sh down` to stop it.
# Prints a final "N passed, N failed" line; exits non-zero on any failure.
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBECONFIG=$("$E2E_DIR/cluster.sh" up)
export KUBECONFIG
KUBECTL=$("$E2E_DIR/cluster.sh" bindir)/kubectl
[[ -x $KUBECTL ]] || { echo "kubectl not found" >&2; exit 1; }
k() { "$KUBECTL" "$@"; }

NS=smoke-$$
PF_PORT=${SMOKE_PF_TARGET_PORT:-18080}
LOCAL_PORT=${SMOKE_PF_LOCAL_PORT:-19090}
passed=0 failed=0
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  k delete crd widgets.smoke.meshctl.dev --wait=false >/dev/null 2>&1 || true
  rm -rf "${SRV_DIR:-}"
}
trap cleanup EXIT

check() {
  local name=$1; shift
  local t=$SECONDS
  if "$@"; then
    echo "ok   - $name ($((SECONDS - t))s)"; passed=$((passed + 1))
  else
    echo "FAIL - $name ($((SECONDS - t))s)"; failed=$((failed + 1))
  fi
}

# retry SECONDS CMD...: succeed as soon as CMD does.
retry() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || return 1
    sleep 0.3
  done
}

k create namespace "$NS" >/dev/null
retry 30 k get serviceaccount default -n "$NS"

deployment_ready() {
  k create deployment web -n "$NS" --image=example.invalid/web:1 --replicas=3 >/dev/null &&
  k rollout status deployment/web -n "$NS" --timeout=60s >/dev/null &&
  [[ $(k get pods -n "$NS" -l app=web -o jsonpath='{range .items[*]}{.status.phase}/{.status.conditions[?(@.type=="Ready")].status}/{.spec.nodeName}{"\n"}{end}' |
       grep -c '^Running/True/kwok-node-') -eq 3 ]]
}
check "deployment pods become Running and Ready on fake nodes" deployment_ready

no_web_pods() { [[ -z $(k get pods -n "$NS" -l app=web -o name) ]]; }
deployment_deleted() {
  k delete deployment web -n "$NS" --wait=false >/dev/null && retry 60 no_web_pods
}
check "deleting the deployment removes its pods" deployment_deleted

job_completes() {
  k create job once -n "$NS" --image=example.invalid/batch:1 -- /bin/true >/dev/null &&
  k wait --for=condition=Complete job/once -n "$NS" --timeout=60s >/dev/null &&
  [[ $(k get pods -n "$NS" -l job-name=once -o jsonpath='{.items[0].status.phase}') == Succeeded ]]
}
check "job completes (pod Succeeded)" job_completes

crd_works() {
  k apply -f - >/dev/null <<'EOF' &&
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.smoke.meshctl.dev}
spec:
  group: smoke.meshctl.dev
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
EOF
  k wait --for=condition=Established crd/widgets.smoke.meshctl.dev --timeout=30s >/dev/null &&
  retry 30 k apply -n "$NS" -f - <<'EOF' &&
apiVersion: smoke.meshctl.dev/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
EOF
  [[ $(k get widget w1 -n "$NS" -o jsonpath='{.spec.size}') == 3 ]]
}
check "CRD + custom resource" crd_works

port_forward_works() {
  command -v python3 >/dev/null || { echo "  (python3 missing, skipping)"; return 0; }
  SRV_DIR=$(mktemp -d)
  echo "hello from the host" > "$SRV_DIR/index.html"
  (cd "$SRV_DIR" && exec timeout 120 python3 -m http.server "$PF_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
  pids+=($!)
  k run echo -n "$NS" --image=example.invalid/echo:1 --port=8080 >/dev/null &&
  k wait --for=condition=Ready pod/echo -n "$NS" --timeout=30s >/dev/null &&
  k apply -f - >/dev/null <<EOF &&
apiVersion: kwok.x-k8s.io/v1alpha1
kind: PortForward
metadata: {name: echo, namespace: $NS}
spec:
  forwards:
  - ports: [8080]
    target: {address: 127.0.0.1, port: $PF_PORT}
EOF
  { "$KUBECTL" port-forward -n "$NS" pod/echo "$LOCAL_PORT:8080" >/dev/null 2>&1 & pids+=($!); } &&
  retry 20 curl -fsS --max-time 2 "http://127.0.0.1:$LOCAL_PORT/index.html" &&
  [[ $(curl -fsS --max-time 2 "http://127.0.0.1:$LOCAL_PORT/index.html") == "hello from the host" ]]
}
check "kubectl port-forward to a fake pod reaches a host server (kwok PortForward)" port_forward_works

check "cluster status healthy" "$E2E_DIR/cluster.sh" status >/dev/null

echo "$passed passed, $failed failed"
(( failed == 0 ))
