# shellcheck shell=bash
# The e2e cluster's real node: containerd + runc + CNI from Debian's packages, kubelet and
# kube-proxy built with the control plane, cluster DNS (CoreDNS built from its Go module into a
# local image). Sourced by cluster.sh, which owns the settings, the PKI helpers and the process
# helpers this file uses (start, wait_until, sign, write_kubeconfig, kubectl_, log, die, fail).
#
# The node's address is the gateway of its pod bridge, so that pods reach the API server (the
# `kubernetes` Service's endpoint), the kubelet and each other without any address outside this
# machine. Nothing is pulled: the sandbox (pause) and CoreDNS images are built here and imported.

NODE_NAME=meshctl-e2e-node
NODE_BRIDGE=mesh-e2e0
NODE_CIDR=10.88.0.0/16
NODE_IP=10.88.0.1
DNS_SERVICE_IP=10.96.0.10
KUBELET_PORT=${MESHCTL_E2E_KUBELET_PORT:-10250}
KUBELET_HEALTHZ_PORT=${MESHCTL_E2E_KUBELET_HEALTHZ_PORT:-10248}
KUBE_PROXY_HEALTHZ_PORT=${MESHCTL_E2E_KUBE_PROXY_HEALTHZ_PORT:-10256}
KUBE_PROXY_METRICS_PORT=${MESHCTL_E2E_KUBE_PROXY_METRICS_PORT:-10249}
# kwok's nodes stay for the scale and fault tests; the taint keeps their pods off the real node
# unless a test asks for it. `MESHCTL_E2E_NODES=real` (the demo) starts no kwok node and no taint.
REAL_NODE_TAINT=meshctl.dev/real-node
REAL_NODE_LABEL=meshctl.dev/node=real
NODES_MODE=${MESHCTL_E2E_NODES:-kwok+real}

COREDNS_VERSION=v1.12.4       # must match e2e/coredns/go.mod
PAUSE_IMAGE=meshctl.dev/e2e/pause:3.10   # what scripts/images.sh --only pause names it
COREDNS_IMAGE=meshctl.dev/e2e/coredns:${COREDNS_VERSION#v}
# The demo profile's Prometheus, built here (the upstream image cannot be pulled here):
# `meshctl install --set addons.prometheus.image=$PROMETHEUS_IMAGE`. Version: e2e/prometheus/go.mod
# (module v0.305.0 is Prometheus 3.5.0, what the profile's upstream image runs).
PROMETHEUS_IMAGE=meshctl.dev/e2e/prometheus:3.5.0
NODE_PACKAGES=(containerd runc containernetworking-plugins conntrack iptables)
CNI_BIN_DIR=/usr/lib/cni

NODE=$STATE_DIR/node
CONTAINERD_SOCK=$NODE/containerd.sock
# The sysctls the node needs changed; `down` puts back what they were.
NODE_SYSCTLS=(net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1)

ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# ------------------------------------------------------------- packages ---
node_packages_ok() {
  command -v containerd >/dev/null && command -v runc >/dev/null && command -v ctr >/dev/null &&
    command -v conntrack >/dev/null && command -v iptables-restore >/dev/null &&
    [[ -x $CNI_BIN_DIR/bridge && -x $CNI_BIN_DIR/host-local && -x $CNI_BIN_DIR/loopback ]]
}

node_install_packages() {
  node_packages_ok && return 0
  command -v apt-get >/dev/null ||
    die "the real node needs ${NODE_PACKAGES[*]} (Debian package names); install them and run again"
  log "installing the real node's runtime from Debian's packages: ${NODE_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${NODE_PACKAGES[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "${NODE_PACKAGES[@]}" >/dev/null; } ||
    die "could not install ${NODE_PACKAGES[*]} with apt-get; install them by hand and run again"
  node_packages_ok || die "installed ${NODE_PACKAGES[*]} but containerd/runc/CNI plugins are still missing"
}

# --------------------------------------------------------------- images ---
INFRA_IMAGES=$CACHE_ROOT/images-node

node_images_stamp() {
  cat "$E2E_DIR/coredns/go.mod" "$E2E_DIR/coredns/go.sum" "$E2E_DIR/coredns/main.go" \
    "$E2E_DIR/prometheus/go.mod" "$E2E_DIR/prometheus/go.sum" \
    "$E2E_DIR/node/pause.c" "$E2E_DIR/../scripts/oci.py" "$E2E_DIR/../scripts/images.sh" | sha256sum | cut -c1-16
}

node_images_ok() {
  [[ -f $INFRA_IMAGES/.stamp && "$(cat "$INFRA_IMAGES/.stamp")" == "$(node_images_stamp)" &&
    -f $INFRA_IMAGES/pause.tar && -f $INFRA_IMAGES/coredns.tar && -f $INFRA_IMAGES/prometheus.tar ]]
}

# Builds the sandbox (pause) and CoreDNS images the node needs, once per change of their sources.
node_build_images() {
  if node_images_ok; then
    log "node images up to date in $INFRA_IMAGES"
    return 0
  fi
  local tmp t=$SECONDS
  mkdir -p "$CACHE_ROOT"
  tmp=$(mktemp -d "$CACHE_ROOT/.node-images.XXXXXX")
  log "building the node images: pause (scripts/images.sh) and CoreDNS $COREDNS_VERSION (Go module)"
  mkdir -p "$tmp/coredns-root/etc/coredns"
  "$E2E_DIR/../scripts/images.sh" --only pause --out "$tmp" >&2 ||
    { rm -rf "$tmp"; die "building the pause image failed (above)"; }
  (cd "$E2E_DIR/coredns" && CGO_ENABLED=0 with_heartbeat "building coredns" \
    go build -mod=readonly -buildvcs=false -trimpath -ldflags "-s -w" -o "$tmp/coredns-root/coredns" .) ||
    { rm -rf "$tmp"; die "building CoreDNS from e2e/coredns failed (log above)"; }
  python3 "$E2E_DIR/../scripts/oci.py" --rootfs "$tmp/coredns-root" --ref "$COREDNS_IMAGE" \
    --entrypoint /coredns --cmd=-conf --cmd=/etc/coredns/Corefile --user 65532:65532 \
    --out "$tmp/coredns.tar" >&2
  build_prometheus_image "$tmp" ||
    { rm -rf "$tmp"; die "building the Prometheus image from e2e/prometheus failed (above)"; }
  rm -rf "$tmp/coredns-root"
  node_images_stamp >"$tmp/.stamp"
  rm -rf "$INFRA_IMAGES"
  mv "$tmp" "$INFRA_IMAGES"
  log "node images ready in $((SECONDS - t))s"
}

# build_prometheus_image DIR: DIR/prometheus.tar, the Prometheus server built from its Go module
# (e2e/prometheus) as user nobody. Debian's package cannot serve: it is built without the
# Kubernetes service discovery that the demo profile's scrape configuration uses.
build_prometheus_image() {
  local dir=$1 root=$1/prometheus-root
  mkdir -p "$root/bin" "$root/etc" "$root/prometheus"
  (cd "$E2E_DIR/prometheus" && CGO_ENABLED=0 with_heartbeat "building prometheus" \
    go build -mod=readonly -buildvcs=false -trimpath -ldflags "-s -w" -o "$root/bin/prometheus" \
    github.com/prometheus/prometheus/cmd/prometheus) || return 1
  printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 0777 "$root/prometheus"
  python3 "$E2E_DIR/../scripts/oci.py" --rootfs "$root" --ref "$PROMETHEUS_IMAGE" \
    --entrypoint /bin/prometheus --user 65534:65534 --workdir /prometheus --out "$dir/prometheus.tar" >&2
  rm -rf "$root"
}

# import_images ARCHIVE...: into the node's containerd, where the kubelet finds them (nothing is
# pulled: every pod on the real node must use an image imported here).
import_images() {
  local a
  for a in "$@"; do
    [[ -f $a ]] || die "no image archive at $a"
    ctr_ images import --no-unpack=false "$a" >/dev/null ||
      die "containerd refused the image archive $a"
    log "  imported $(basename "$a")"
  done
}

# ---------------------------------------------------------------- sysctl ---
node_set_sysctls() {
  local kv key
  : >"$NODE/sysctl.saved"
  for kv in "${NODE_SYSCTLS[@]}"; do
    key=${kv%%=*}
    echo "$key=$(sysctl -n "$key")" >>"$NODE/sysctl.saved"
    sysctl -q -w "$kv" >/dev/null || die "could not set $kv (the node needs root)"
  done
}

node_restore_sysctls() {
  [[ -f $NODE/sysctl.saved ]] || return 0
  local kv
  while read -r kv; do sysctl -q -w "$kv" >/dev/null 2>&1 || log "could not restore $kv"; done <"$NODE/sysctl.saved"
  rm -f "$NODE/sysctl.saved"
}

# ------------------------------------------------------------------ pki ---
node_pki() {
  ( umask 077
    sign kubelet "system:node:$NODE_NAME" system:nodes "extendedKeyUsage=clientAuth"
    sign kubelet-serving "system:node:$NODE_NAME" system:nodes "extendedKeyUsage=serverAuth
subjectAltName=DNS:$NODE_NAME,IP:$NODE_IP"
    sign kube-proxy system:kube-proxy "" "extendedKeyUsage=clientAuth"
  )
  write_kubeconfig "$NODE/kubelet.kubeconfig" kubelet kubelet
  write_kubeconfig "$NODE/kube-proxy.kubeconfig" kube-proxy kube-proxy
}

# --------------------------------------------------------------- network ---
node_network() {
  # The first `ip netns add` on a host makes /run/netns a mount point of its own. Done after
  # containerd pinned a pod's network namespace there (the netns tests do it mid-run), that mount
  # hides the pod's, and `down` can no longer delete it; done first, every later one lands inside.
  ip netns add meshctl-e2e-init 2>/dev/null && ip netns del meshctl-e2e-init
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge || die "could not create the bridge $NODE_BRIDGE (needs root)"
  fi
  ip addr replace "$NODE_IP/${NODE_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
}

node_remove_network() {
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  # Pod network namespaces the CNI plugin made and a crashed runtime left.
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do ip netns del "$ns" 2>/dev/null || true; done
}

# iptables rules kube-proxy and the kubelet wrote (KUBE-*): removed on `down`, leaving every
# other rule as it was.
node_remove_iptables() {
  local save restore
  for save in iptables-save ip6tables-save; do
    restore=${save/save/restore}
    command -v "$save" >/dev/null || continue
    local dump
    dump=$("$save" 2>/dev/null) || continue
    grep -q 'KUBE-' <<<"$dump" || continue
    grep -v -e '^:KUBE-' -e '-j KUBE-' -e '^-A KUBE-' <<<"$dump" | "$restore" 2>/dev/null ||
      log "could not remove the KUBE-* rules with $restore"
  done
}

# ---------------------------------------------------------------- config ---
node_write_config() {
  mkdir -p "$NODE/cni/net.d" "$NODE/cni/ipam" "$NODE/containerd" "$NODE/kubelet" "$NODE/run"
  cat >"$NODE/cni/net.d/10-meshctl-e2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "meshctl-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE/cni/ipam",
        "ranges": [[{"subnet": "$NODE_CIDR", "rangeStart": "10.88.0.10", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
  # restrict_oom_score_adj: as root without CAP_SYS_RESOURCE (this VM), runc cannot lower a
  # process's oom_score_adj and fails every sandbox ("can't get final child's PID from pipe").
  cat >"$NODE/containerd/config.toml" <<EOF
version = 2
root = "$NODE/containerd/root"
state = "$NODE/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$NODE/cni/net.d"
EOF
  local taints=""
  [[ $NODES_MODE == real ]] || taints="registerWithTaints:
- {key: $REAL_NODE_TAINT, value: \"true\", effect: NoSchedule}"
  cat >"$NODE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$DNS_SERVICE_IP]
podCIDR: $NODE_CIDR
maxPods: 110
serializeImagePulls: false
# Every image here is imported, never pulled: the kubelet must not collect one as unused.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
staticPodPath: ""
$taints
EOF
  # conntrack limits left alone (0): setting them needs CAP_SYS_RESOURCE this VM does not give,
  # and `down` must leave the host's sysctls as they were.
  cat >"$NODE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $NODE_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# ------------------------------------------------------------- processes ---
node_probe() {
  case $1 in
    containerd) ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 ;;
    kubelet) [[ "$(curl -fsS --max-time 3 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz")" == ok ]] ;;
    kube-proxy) curl -fsS --max-time 3 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" >/dev/null ;;
  esac
}

real_node_ready() {
  [[ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

dns_ready() {
  [[ "$(kubectl_ get deployment coredns -n kube-system -o jsonpath='{.status.availableReplicas}' 2>/dev/null)" == 1 ]]
}

# Starts containerd, the kubelet, kube-proxy and CoreDNS, after the control plane is up (and
# after cmd_up made the bridge and set the sysctls, before the API server).
node_up() {
  node_pki
  node_write_config

  start_system containerd "$(command -v containerd)" --config "$NODE/containerd/config.toml" --log-level warn
  wait_until containerd "containerd's socket" node_probe containerd
  import_images "$INFRA_IMAGES/pause.tar" "$INFRA_IMAGES/coredns.tar" "$INFRA_IMAGES/prometheus.tar"

  start kubelet \
    --config="$NODE/kubelet/config.yaml" \
    --kubeconfig="$NODE/kubelet.kubeconfig" \
    --root-dir="$NODE/kubelet/root" \
    --cert-dir="$NODE/kubelet/pki" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" \
    --node-labels="$REAL_NODE_LABEL" \
    --v=1
  start kube-proxy --config="$NODE/kube-proxy.yaml" --v=1
  wait_until kubelet "kubelet /healthz" node_probe kubelet
  wait_until kubelet "node $NODE_NAME to become Ready" real_node_ready
  wait_until kube-proxy "kube-proxy /healthz" node_probe kube-proxy

  sed -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" \
    -e "s|@REAL_NODE_TAINT@|$REAL_NODE_TAINT|g" "$E2E_DIR/node/coredns.yaml" | kubectl_ apply -f - >/dev/null
  wait_until kubelet "cluster DNS (CoreDNS on $NODE_NAME)" dns_ready
}

# Kills the pods' containers while containerd still answers; stop_all then stops the processes
# and node_cleanup_host undoes what the node changed on the host.
node_down() {
  [[ -d $NODE ]] || return 0
  if is_running containerd; then
    local t
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  fi
}

# Once every process is gone: the mounts, network namespaces, bridge, iptables rules, sysctls
# and cgroups the node left on the host.
node_cleanup_host() {
  [[ -d $NODE ]] || return 0
  # containerd's shims outlive containerd; they are ours when they run under our state dir.
  local pid
  for pid in $(pgrep -f "containerd-shim.*-address $CONTAINERD_SOCK" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  local m
  for m in $(awk -v d="$NODE" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
  node_remove_network
  node_remove_iptables
  node_restore_sysctls
  node_remove_cgroups
}

# The kubelet's pod cgroups (kubepods under every v1 hierarchy), empty once the pods are gone.
node_remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}
