#!/usr/bin/env bash
# Local Kubernetes cluster for meshctl's e2e tests and demo: control plane, kwok nodes, one real node.
#
#   e2e/cluster.sh build       build (or reuse cached) etcd, kube-apiserver, kube-controller-manager,
#                              kube-scheduler, kubectl, kubelet, kube-proxy, kwok, the node's images
#   e2e/cluster.sh up          build if needed, start everything, wait until usable
#   e2e/cluster.sh status      report component health; exit 0 only when healthy
#   e2e/cluster.sh kubeconfig  print the admin kubeconfig path
#   e2e/cluster.sh down        stop everything and remove the state directory
#   e2e/cluster.sh bindir      print the directory holding the built binaries
#   e2e/cluster.sh restart-apiserver  stop kube-apiserver and start it again, same flags
#                                     (after APISERVER_DOWN_SECONDS, default 0)
#   e2e/cluster.sh kubectl ARGS...  run the built kubectl against the cluster
#   e2e/cluster.sh load-images ARCHIVE...  import image archives into the real node's containerd
#   e2e/cluster.sh ctr ARGS...      run ctr against the real node's containerd (namespace k8s.io)
#
# See e2e/README.md for environment variables, ports and timings.
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---------------------------------------------------------------- versions ---
K8S_VERSION=v1.34.4           # must match e2e/k8s/go.mod
KWOK_VERSION=v0.7.0
# Bump when the way binaries are built changes, to invalidate caches.
BUILD_RECIPE=1

# ---------------------------------------------------------------- settings ---
CACHE_ROOT=${MESHCTL_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshctl-e2e}
BIN_DIR=$CACHE_ROOT/bin-$K8S_VERSION
STATE_DIR=${MESHCTL_E2E_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshctl-e2e/cluster}

ETCD_CLIENT_PORT=${MESHCTL_E2E_ETCD_PORT:-12379}
ETCD_PEER_PORT=${MESHCTL_E2E_ETCD_PEER_PORT:-12380}
APISERVER_PORT=${MESHCTL_E2E_APISERVER_PORT:-16443}
KCM_PORT=${MESHCTL_E2E_KCM_PORT:-16257}
SCHEDULER_PORT=${MESHCTL_E2E_SCHEDULER_PORT:-16259}
KWOK_PORT=${MESHCTL_E2E_KWOK_PORT:-16250}      # kwok's fake kubelet API (port-forward) + /healthz
UP_TIMEOUT=${MESHCTL_E2E_UP_TIMEOUT:-120}     # seconds per wait step

SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
SA_ISSUER=https://kubernetes.default.svc.cluster.local

CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
NODE_COMPONENTS=(containerd kubelet kube-proxy)
COMPONENTS=("${CONTROL_PLANE[@]}" "${NODE_COMPONENTS[@]}")
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok)
# Main packages built from e2e/k8s (one `go build`, so shared packages compile once).
K8S_PKGS=(
  ./cmd/etcd
  k8s.io/kubernetes/cmd/kube-apiserver
  k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kube-scheduler
  k8s.io/kubernetes/cmd/kubectl
  k8s.io/kubernetes/cmd/kubelet
  k8s.io/kubernetes/cmd/kube-proxy
)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------- build ---
etcd_version() {
  awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$E2E_DIR/k8s/go.mod"
}

# Everything that determines the produced binaries. A different stamp means
# the cached binaries are stale and get rebuilt.
build_stamp() {
  local h
  h=$(cat "$E2E_DIR/k8s/go.mod" "$E2E_DIR/k8s/go.sum" "$E2E_DIR/k8s/cmd/etcd/main.go" | sha256sum | cut -c1-16)
  printf 'k8s=%s etcd=%s kwok=%s recipe=%s inputs=%s\n' \
    "$K8S_VERSION" "$(etcd_version)" "$KWOK_VERSION" "$BUILD_RECIPE" "$h"
}

binaries_ok() {
  [[ -f $BIN_DIR/.stamp ]] || return 1
  [[ "$(cat "$BIN_DIR/.stamp")" == "$(build_stamp)" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x $BIN_DIR/$b ]] || return 1; done
}

# Prints a progress line every 60s while a long build step runs. The ticker
# writes to stderr only and kills its own sleep when stopped, so it neither
# delays the step's end nor holds a caller's stdout pipe open.
with_heartbeat() {
  local what=$1; shift
  local start=$SECONDS
  ( s=
    trap 'kill $s 2>/dev/null; exit 0' TERM
    while :; do
      sleep 60 & s=$!
      wait "$s"
      log "  ... still $what ($((SECONDS - start))s)"
    done ) >&2 &
  local hb=$! rc=0
  "$@" || rc=$?
  kill "$hb" 2>/dev/null || true
  wait "$hb" 2>/dev/null || true
  return "$rc"
}

cmd_build() {
  node_install_packages
  build_binaries
  node_build_images
}

build_binaries() {
  if binaries_ok; then
    log "binaries up to date in $BIN_DIR ($(build_stamp | cut -d' ' -f1-3))"
    return 0
  fi
  command -v go >/dev/null || die "go is required to build the e2e cluster binaries"
  export CGO_ENABLED=0   # static binaries; no C toolchain needed
  mkdir -p "$CACHE_ROOT"
  local tmp t0=$SECONDS t
  tmp=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT     # a failed build leaves nothing behind

  local major=${K8S_VERSION#v}; major=${major%%.*}
  local minor=${K8S_VERSION#v"$major".}; minor=${minor%%.*}
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done

  log "go: $(go version)"
  log "[1/3] downloading Go modules for k8s $K8S_VERSION + etcd $(etcd_version) (GOMODCACHE=$(go env GOMODCACHE))"
  t=$SECONDS
  local n
  n=$(cd "$E2E_DIR/k8s" && with_heartbeat "downloading modules" \
    go list -mod=readonly -deps -f '{{with .Module}}{{.Path}}{{end}}' "${K8S_PKGS[@]}" | sort -u | wc -l)
  log "      $n modules ready in $((SECONDS - t))s"

  log "[2/3] building etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy"
  t=$SECONDS
  (cd "$E2E_DIR/k8s" && with_heartbeat "building kubernetes" \
    go build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp/" "${K8S_PKGS[@]}")
  log "      built in $((SECONDS - t))s"

  log "[3/3] building kwok $KWOK_VERSION (own module graph)"
  t=$SECONDS
  (cd "$tmp" && export GOFLAGS=-buildvcs=false GOBIN="$tmp" && with_heartbeat "building kwok" \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
  log "      built in $((SECONDS - t))s"

  build_stamp > "$tmp/.stamp"
  rm -rf "$BIN_DIR"
  mv "$tmp" "$BIN_DIR"
  trap - EXIT
  chmod 755 "$BIN_DIR"
  log "binaries ready in $BIN_DIR (total $((SECONDS - t0))s)"
}

# ------------------------------------------------------------- state dir ---
PKI=$STATE_DIR/pki
RUN=$STATE_DIR/run
LOGS=$STATE_DIR/logs
KUBECONFIG_PATH=$STATE_DIR/kubeconfig
STATE_MARKER=$STATE_DIR/.meshctl-e2e-cluster

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig="$KUBECONFIG_PATH" "$@"; }

# shellcheck source=e2e/node.sh
source "$E2E_DIR/node.sh"

pid_of() { [[ -f $RUN/$1.pid ]] && cat "$RUN/$1.pid"; }

# True when the component's recorded pid is alive and still runs our binary.
is_running() {
  local pid
  pid=$(pid_of "$1" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  local exe
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ ${exe%" (deleted)"} == */"$1" ]]
}

curl_pki() { curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"; }

probe() {
  case $1 in
    etcd) curl -fsS --max-time 3 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"' ;;
    kube-apiserver) [[ "$(curl_pki "https://127.0.0.1:$APISERVER_PORT/readyz")" == ok ]] ;;
    kube-controller-manager) [[ "$(curl -ksS --max-time 3 "https://127.0.0.1:$KCM_PORT/healthz")" == ok ]] ;;
    kube-scheduler) [[ "$(curl -ksS --max-time 3 "https://127.0.0.1:$SCHEDULER_PORT/healthz")" == ok ]] ;;
    kwok) [[ "$(curl_pki "https://127.0.0.1:$KWOK_PORT/healthz")" == ok ]] ;;
    containerd|kubelet|kube-proxy) node_probe "$1" ;;
  esac
}

# All fake nodes Ready, initialised by OUR node stage (its osImage marker):
# kwok silently falls back to built-in stages if e2e/kwok/stages.yaml has none.
nodes_ready() {
  real_node_ready || return 1
  [[ $NODES_MODE == real ]] && return 0
  local want have
  want=$(grep -c '^kind: Node' "$E2E_DIR/kwok/node.yaml")
  have=$(kubectl_ get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}/{.status.nodeInfo.osImage}{"\n"}{end}' \
    2>/dev/null | grep -c '^True/meshctl-e2e kwok node$') || true
  [[ $have -ge $want ]]
}

healthy() {
  [[ -f $STATE_MARKER && -x $BIN_DIR/kubectl ]] || return 1
  [[ "$(cat "$STATE_DIR/nodes-mode" 2>/dev/null)" == "$NODES_MODE" ]] || return 1
  local c
  for c in "${COMPONENTS[@]}"; do is_running "$c" && probe "$c" || return 1; done
  nodes_ready
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --------------------------------------------------------------------- pki ---
# sign NAME CN ORG EXT: EC P-256 key + certificate signed by the cluster CA
# (or by the CA named in $CA).
sign() {
  local name=$1 cn=$2 org=$3 ext=$4 subj ca=${CA:-ca}
  subj="/CN=$cn"; [[ -n $org ]] && subj="/O=$org$subj"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" "$ext" > "$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
    -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

gen_pki() {
  mkdir -p "$PKI"
  ( umask 077
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=meshctl-e2e-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt" 2>/dev/null
    local server="extendedKeyUsage=serverAuth" client="extendedKeyUsage=clientAuth"
    sign apiserver kube-apiserver "" "$server
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_IP"
    sign kwok-serving kwok "" "$server
subjectAltName=DNS:localhost,IP:127.0.0.1"
    sign admin meshctl-e2e-admin system:masters "$client"
    sign apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "$client"
    sign kube-controller-manager system:kube-controller-manager "" "$client"
    sign kube-scheduler system:kube-scheduler "" "$client"
    sign kwok system:kwok-controller system:masters "$client"
    # Front proxy (aggregation layer): own CA + the apiserver's proxy client cert.
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/front-proxy-ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=meshctl-e2e-front-proxy-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/front-proxy-ca.crt" 2>/dev/null
    CA=front-proxy-ca sign front-proxy-client front-proxy-client "" "$client"
    # Service-account token signing key pair.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
    openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  )
}

# write_kubeconfig FILE USER CERT_NAME
write_kubeconfig() {
  ( umask 077
    cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: meshctl-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$3.crt")
    client-key-data: $(base64 -w0 < "$PKI/$3.key")
contexts:
- name: meshctl-e2e
  context:
    cluster: meshctl-e2e
    user: $2
    namespace: default
current-context: meshctl-e2e
EOF
  )
}

# --------------------------------------------------------------- processes ---
# start NAME ARGS...: run $BIN_DIR/NAME detached (own session), log + pid file.
start() {
  local name=$1; shift
  log "starting $name"
  # Not a process-group leader here, so setsid execs in place and $! is the pid.
  # fd 9 is the state lock: daemons must not inherit it.
  setsid "$BIN_DIR/$name" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! > "$RUN/$name.pid"
}

# start_system NAME PATH ARGS...: like start, for a binary the system provides (containerd).
start_system() {
  local name=$1 path=$2; shift 2
  log "starting $name ($path)"
  setsid "$path" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! > "$RUN/$name.pid"
}

FAILED_COMPONENT=
fail() {
  local comp=$1; shift
  log "ERROR: $*"
  if [[ -n $comp && -f $LOGS/$comp.log ]]; then
    log "---- last 40 lines of $LOGS/$comp.log ----"
    tail -n 40 "$LOGS/$comp.log" >&2 || true
    log "---- end of $comp.log ----"
  fi
  FAILED_COMPONENT=$comp
  exit 1
}

# wait_until COMPONENT DESCRIPTION CMD...: poll CMD, fail fast if COMPONENT dies.
wait_until() {
  local comp=$1 what=$2; shift 2
  local deadline=$((SECONDS + UP_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [[ -f $RUN/$comp.pid ]] && ! is_running "$comp"; then
      fail "$comp" "$comp exited while waiting for $what"
    fi
    (( SECONDS < deadline )) || fail "$comp" "timed out after ${UP_TIMEOUT}s waiting for $what"
    sleep 0.2
  done
  log "  ok: $what"
}

stop_all() {
  node_down
  local c pid pids=() names=()
  for c in "${COMPONENTS[@]}"; do
    if is_running "$c"; then
      pid=$(pid_of "$c"); pids+=("$pid"); names+=("$c")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  (( ${#pids[@]} )) || return 0
  log "stopping ${names[*]}"
  local deadline=$((SECONDS + 15)) alive
  while :; do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    (( ${#alive[@]} )) || break
    if (( SECONDS >= deadline )); then
      log "killing ${alive[*]} after 15s"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$RUN"/*.pid
}

# stop_all, then undo what the real node changed on the host (mounts, bridge, rules, sysctls).
stop_and_clean() {
  stop_all
  node_cleanup_host
}

remove_state() {
  [[ -e $STATE_DIR ]] || return 0
  [[ -f $STATE_MARKER ]] || die "refusing to delete $STATE_DIR: it is not a meshctl e2e state directory"
  rm -rf "$STATE_DIR"
}

lock() {
  mkdir -p "$(dirname "$STATE_DIR")"
  exec 9>"$STATE_DIR.lock"
  flock -w 900 9 || die "could not lock $STATE_DIR.lock"
}

# --------------------------------------------------------------- commands ---
on_up_exit() {
  local rc=$?
  (( rc == 0 )) && return 0
  [[ -n $FAILED_COMPONENT ]] || log "ERROR: up failed (exit $rc)"
  stop_and_clean
  log "cluster stopped; state and logs kept in $STATE_DIR until '$0 down'"
}

cmd_up() {
  lock
  if healthy; then
    log "cluster already up and healthy"
    echo "$KUBECONFIG_PATH"
    return 0
  fi
  cmd_build
  if [[ -e $STATE_DIR ]]; then
    log "cleaning up stale cluster state in $STATE_DIR"
    stop_and_clean
    remove_state
  fi
  local p
  for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
    port_busy "$p" && die "port 127.0.0.1:$p is already in use (another cluster? see MESHCTL_E2E_*_PORT in e2e/README.md)"
  done

  local t0=$SECONDS
  mkdir -p "$STATE_DIR" "$RUN" "$LOGS" "$STATE_DIR/kwok"
  mkdir -m 700 "$STATE_DIR/etcd"
  touch "$STATE_MARKER"
  echo "$NODES_MODE" >"$STATE_DIR/nodes-mode"
  trap on_up_exit EXIT
  # The node's address must exist before the API server advertises it as the `kubernetes`
  # Service's endpoint.
  mkdir -p "$NODE"
  node_set_sysctls
  node_network

  gen_pki
  write_kubeconfig "$KUBECONFIG_PATH" meshctl-e2e-admin admin
  local c
  for c in kube-controller-manager kube-scheduler kwok; do
    write_kubeconfig "$STATE_DIR/$c.kubeconfig" "$c" "$c"
  done

  start etcd \
    --name=e2e \
    --data-dir="$STATE_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --unsafe-no-fsync=true \
    --log-level=warn
  wait_until etcd "etcd /health" probe etcd

  start kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address=0.0.0.0 \
    --advertise-address="$NODE_IP" \
    --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction,PodNodeSelector,PodTolerationRestriction \
    --allow-privileged=true \
    --service-account-issuer="$SA_ISSUER" \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --profiling=false \
    --v=1
  wait_until kube-apiserver "kube-apiserver /readyz" probe kube-apiserver

  # --node-monitor-grace-period: kwok's nodes miss heartbeats while a test keeps kube-apiserver
  # down; marked NotReady, their pods would lose readiness for good (kwok does not restore it).
  start kube-controller-manager \
    --kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --cert-dir="$STATE_DIR/kube-controller-manager" \
    --leader-elect=false \
    '--controllers=*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --node-monitor-grace-period=10m \
    --profiling=false \
    --v=1
  start kube-scheduler \
    --kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$SCHEDULER_PORT" \
    --cert-dir="$STATE_DIR/kube-scheduler" \
    --leader-elect=false \
    --profiling=false \
    --v=1

  # kwok serves PortForward/ClusterPortForward from the apiserver (see kwok/crds.yaml).
  kubectl_ apply -f "$E2E_DIR/kwok/crds.yaml" >/dev/null
  wait_until kube-apiserver "kwok CRDs to be established" \
    kubectl_ wait --for=condition=Established --timeout=5s \
      crd/portforwards.kwok.x-k8s.io crd/clusterportforwards.kwok.x-k8s.io
  KWOK_WORKDIR="$STATE_DIR/kwok" start kwok \
    --kubeconfig="$STATE_DIR/kwok.kubeconfig" \
    --config="$E2E_DIR/kwok/stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 \
    --node-port="$KWOK_PORT" \
    --server-address="127.0.0.1:$KWOK_PORT" \
    --tls-cert-file="$PKI/kwok-serving.crt" \
    --tls-private-key-file="$PKI/kwok-serving.key" \
    --cidr=10.244.0.1/16 \
    --node-lease-duration-seconds=40 \
    --enable-crds=PortForward,ClusterPortForward
  [[ $NODES_MODE == real ]] || kubectl_ apply -f "$E2E_DIR/kwok/node.yaml" >/dev/null

  wait_until kube-controller-manager "kube-controller-manager /healthz" probe kube-controller-manager
  wait_until kube-scheduler "kube-scheduler /healthz" probe kube-scheduler
  wait_until kwok "kwok /healthz" probe kwok
  node_up
  wait_until kwok "the nodes to become Ready" nodes_ready
  wait_until kube-controller-manager "service account default/default" \
    kubectl_ get serviceaccount default -n default

  trap - EXIT
  log "cluster up in $((SECONDS - t0))s; kubeconfig: $KUBECONFIG_PATH"
  echo "$KUBECONFIG_PATH"
}

cmd_down() {
  lock
  stop_and_clean
  remove_state
  log "cluster down"
}

cmd_status() {
  local c ok=0 pid
  for c in "${COMPONENTS[@]}"; do
    if is_running "$c"; then
      pid=$(pid_of "$c")
      if probe "$c"; then printf '%-25s running (pid %s), healthy\n' "$c" "$pid"
      else printf '%-25s running (pid %s), NOT healthy\n' "$c" "$pid"; ok=1; fi
    else
      printf '%-25s not running\n' "$c"; ok=1
    fi
  done
  if [[ -f $KUBECONFIG_PATH ]] && probe kube-apiserver; then
    printf '%-25s ok\n' "apiserver /readyz"
    kubectl_ get nodes -o wide 2>&1 || ok=1
    nodes_ready || { echo "fake nodes are not all Ready"; ok=1; }
  else
    printf '%-25s not ok\n' "apiserver /readyz"; ok=1
  fi
  printf 'kubeconfig: %s\nstate:      %s\nbinaries:   %s\n' "$KUBECONFIG_PATH" "$STATE_DIR" "$BIN_DIR"
  if (( ok == 0 )); then echo "cluster is healthy"; else echo "cluster is NOT healthy"; fi
  return "$ok"
}

cmd_kubeconfig() {
  echo "$KUBECONFIG_PATH"
  [[ -f $KUBECONFIG_PATH ]] || { log "note: cluster is not up ($KUBECONFIG_PATH does not exist)"; return 1; }
}

# For fault tests: clients must ride out an API server that goes away and comes back.
cmd_restart_apiserver() {
  lock
  is_running kube-apiserver || die "kube-apiserver is not running; start the cluster with '$0 up'"
  local pid args=()
  pid=$(pid_of kube-apiserver)
  # The flags it runs with, minus argv[0], so the restart is exactly the same server.
  mapfile -d '' -t args < "/proc/$pid/cmdline"
  log "stopping kube-apiserver (pid $pid)"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS < deadline )) || { kill -KILL "$pid" 2>/dev/null || true; break; }
    sleep 0.2
  done
  # Tests of what happens while the API server is away keep it down a while.
  if [[ ${APISERVER_DOWN_SECONDS:-0} -gt 0 ]]; then
    log "kube-apiserver stays down for ${APISERVER_DOWN_SECONDS}s"
    sleep "$APISERVER_DOWN_SECONDS"
  fi
  start kube-apiserver "${args[@]:1}"
  wait_until kube-apiserver "kube-apiserver /readyz" probe kube-apiserver
  log "kube-apiserver restarted"
}

# -------------------------------------------------------------------- main ---
usage() {
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  [[ $# -ge 1 ]] || usage
  if [[ $1 == load-images ]]; then
    shift
    [[ $# -ge 1 ]] || usage
    is_running containerd || die "the real node is not running; start the cluster with '$0 up'"
    import_images "$@"
    return 0
  fi
  if [[ $1 == ctr ]]; then
    shift
    is_running containerd || die "the real node is not running; start the cluster with '$0 up'"
    ctr_ "$@"
    return
  fi
  if [[ $1 == kubectl ]]; then
    shift
    [[ -x $BIN_DIR/kubectl ]] || die "kubectl is not built yet: run '$0 build'"
    exec "$BIN_DIR/kubectl" --kubeconfig="$KUBECONFIG_PATH" "$@"
  fi
  [[ $# -eq 1 ]] || usage
  case $1 in
    build) cmd_build ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kubeconfig) cmd_kubeconfig ;;
    bindir) echo "$BIN_DIR" ;;
    restart-apiserver) cmd_restart_apiserver ;;
    *) usage ;;
  esac
}

main "$@"; exit  # one line: a script edited while it runs is not read again
