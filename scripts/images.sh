#!/usr/bin/env bash
# Builds the product's container images as archives, without a Docker daemon or a registry:
# static binaries from cargo, a minimal root filesystem each, and scripts/oci.py to write an
# archive that ctr, docker, podman and kind all load. Reproducible: the same sources give the
# same digests (see docs/images.md).
# Usage: scripts/images.sh [--out DIR] [--hub HUB] [--tag TAG] [--only NAME...]
#        scripts/images.sh --check-reproducible [--only NAME...]   build twice, compare digests
# Names: mesh-operator meshd mesh-proxy sample pause (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd -P)"
# Modes of the directories and files made here end up in the layers.
umask 022

all_images=(mesh-operator meshd mesh-proxy sample pause)
out="${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/images"
hub="ghcr.io/meshctl"
tag=""
only=()
check=0

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }
die() {
  echo "error: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --hub) hub="${2:?--hub needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --only)
      shift
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do only+=("$1"); shift; done
      [ ${#only[@]} -gt 0 ] || die "--only needs at least one of: ${all_images[*]}"
      ;;
    --check-reproducible) check=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; echo >&2; die "unknown argument: $1" ;;
  esac
done
[ ${#only[@]} -gt 0 ] || only=("${all_images[@]}")
for name in "${only[@]}"; do
  case " ${all_images[*]} " in
    *" $name "*) ;;
    *) die "unknown image $name (want: ${all_images[*]})" ;;
  esac
done

# The profiles render ${hub}/NAME:${tag} with the workspace version as the default tag.
if [ -z "$tag" ]; then
  tag="$(awk '/^\[workspace\.package\]/ {s = 1; next} /^\[/ {s = 0}
    s && $1 == "version" {gsub(/"/, "", $3); print $3; exit}' Cargo.toml)"
  [ -n "$tag" ] || die "no version under [workspace.package] in Cargo.toml; pass --tag"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshctl/target}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Anything the layers carry with a time on it gets this one; 0 unless the caller pins another.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
triple="x86_64-unknown-linux-gnu"

# apt_install PACKAGE...: Debian packages this script needs; `apt-get update` only if the
# install fails, since it is slow and usually not needed.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  echo "installing $* (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

# need TOOL PACKAGE WHY: TOOL on PATH, installed from PACKAGE if missing and possible.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ -n "$2" ] && apt_install "$2" && command -v "$1" >/dev/null 2>&1; then return 0; fi
  die "$1 not found ($3); install it${2:+ (Debian: apt-get install $2)} and run again"
}

wants() { case " ${only[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

need python3 python3 "writes the image archives"
need file file "checks that the binaries are static"
if wants mesh-operator || wants meshd || wants mesh-proxy || wants sample; then
  need cargo "" "Rust builds the binaries; install it with rustup"
  # Static glibc binaries link libc.a, which comes with the C toolchain.
  need cc gcc "links the static binaries"
  [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || apt_install libc6-dev ||
    die "libc.a missing (static linking); install it (Debian: apt-get install libc6-dev)"
fi
wants pause && need gcc gcc "compiles the pause container"
wants mesh-proxy && need iptables-restore iptables "the proxy image carries iptables for its init container"

work="$(mktemp -d "${TMPDIR:-/tmp}/meshctl-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Sources, the registry and the target dir are named the same in every build, whichever clone
# and home directory it runs from: panics and debug info embed paths. Later prefixes win in
# rustc, so the target dir (possibly inside the clone) comes last. The encoded form keeps a
# path with spaces in one piece.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rustflags=(
  -C target-feature=+crt-static
  "--remap-path-prefix=$cargo_home=/cargo"
  "--remap-path-prefix=$root=/meshctl"
  "--remap-path-prefix=$CARGO_TARGET_DIR=/target"
)
CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${rustflags[*]}")"
export CARGO_ENCODED_RUSTFLAGS
unset RUSTFLAGS

# cargo_build PACKAGE BINARY PROFILE: prints the binary's path. One package per cargo run: the
# features cargo unifies across packages built together would otherwise make a binary depend
# on which other images were asked for.
cargo_build() {
  local pkg="$1" bin="$2" profile="$3" dir
  echo "building $bin (cargo, $profile)…" >&2
  cargo build --locked --quiet --target "$triple" --profile "$profile" -p "$pkg" --bin "$bin" >&2
  dir="$profile"
  [ "$profile" = dev ] && dir=debug
  local path="$CARGO_TARGET_DIR/$triple/$dir/$bin"
  check_static "$path"
  echo "$path"
}

check_static() {
  local desc
  desc="$(file -b "$1")"
  case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "$1 is not static: $desc" ;;
  esac
  if ldd "$1" >/dev/null 2>&1 && ! ldd "$1" 2>&1 | grep -q 'statically linked'; then
    die "$1 needs shared libraries: $(ldd "$1" | tr '\n' ' ')"
  fi
}

# base_rootfs DIR USER UID: the users the image knows, a world-writable /tmp and the
# name-service order (static glibc has files and dns built in; the kubelet mounts /etc/hosts
# and /etc/resolv.conf).
base_rootfs() {
  local dir="$1" user="$2" uid="$3"
  mkdir -p "$dir/etc" "$dir/tmp" "$dir/usr/local/bin"
  chmod 1777 "$dir/tmp"
  {
    echo "root:x:0:0:root:/root:/sbin/nologin"
    [ "$uid" = 0 ] || echo "$user:x:$uid:$uid:$user:/nonexistent:/sbin/nologin"
  } >"$dir/etc/passwd"
  {
    echo "root:x:0:"
    [ "$uid" = 0 ] || echo "$user:x:$uid:"
  } >"$dir/etc/group"
  echo "hosts: files dns" >"$dir/etc/nsswitch.conf"
  chmod 0644 "$dir/etc/passwd" "$dir/etc/group" "$dir/etc/nsswitch.conf"
}

# copy_host ROOTFS PATH: the host's PATH into the rootfs at the same path, recreating every
# symlink on the way (ldd names libraries through /lib → usr/lib and the loader through /lib64).
copy_host() {
  local rootfs="$1" path="$2" prefix="" i cur target rest next
  local -a parts
  IFS=/ read -ra parts <<<"${path#/}"
  for ((i = 0; i < ${#parts[@]}; i++)); do
    [ -n "${parts[i]}" ] || continue
    cur="$prefix/${parts[i]}"
    if [ -L "$cur" ]; then
      target="$(readlink "$cur")"
      if [ ! -e "$rootfs$cur" ] && [ ! -L "$rootfs$cur" ]; then
        mkdir -p "$rootfs$prefix"
        ln -s "$target" "$rootfs$cur"
      fi
      rest="$(IFS=/; echo "${parts[*]:i+1}")"
      case "$target" in /*) next="$target" ;; *) next="$prefix/$target" ;; esac
      # $prefix holds no symlinks (checked above), so resolving .. by text is exact.
      copy_host "$rootfs" "$(realpath -ms "$next${rest:+/$rest}")"
      return
    fi
    prefix="$cur"
  done
  [ -f "$path" ] || die "$path: not a file on this host"
  mkdir -p "$rootfs$(dirname "$path")"
  [ -e "$rootfs$path" ] || cp --preserve=mode "$path" "$rootfs$path"
}

# copy_with_libs ROOTFS FILE...: the files and every shared library they load, the loader too.
copy_with_libs() {
  local rootfs="$1" f lib
  shift
  for f in "$@"; do
    copy_host "$rootfs" "$f"
    while read -r lib; do
      copy_host "$rootfs" "$lib"
    done < <(ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
  done
}

# The extensions xtables dlopens for the rules proxy/src/iptables/rules.rs writes (owner, tcp,
# comment, REDIRECT, standard for RETURN and chain jumps), and the common ones an
# `iptables-save` of the pod's nat table may meet.
xtables_extensions=(standard tcp udp owner comment REDIRECT mark MARK conntrack multiport)

iptables_rootfs() {
  local rootfs="$1" multi=/usr/sbin/xtables-nft-multi xt=/usr/lib/x86_64-linux-gnu/xtables ext
  # nft, not legacy: what Debian 12 and current nodes use; iptables-legacy rules in a pod
  # whose node uses nft would be invisible to the node's tools.
  [ -x "$multi" ] || die "$multi missing; install iptables (apt-get install iptables)"
  local -a files=("$multi")
  for ext in "${xtables_extensions[@]}"; do
    [ -f "$xt/libxt_$ext.so" ] || die "$xt/libxt_$ext.so missing (iptables package incomplete?)"
    files+=("$xt/libxt_$ext.so")
  done
  copy_with_libs "$rootfs" "${files[@]}"
  # xtables-nft-multi picks the tool by argv[0].
  for tool in iptables iptables-restore iptables-save; do
    ln -sfn xtables-nft-multi "$rootfs/usr/sbin/$tool"
  done
}

# The init container's own test: the rules the injector's default arguments ask for load in a
# fresh network namespace, with nothing but the image's files (and the /dev a runtime mounts).
check_capture() {
  local rootfs="$1" saved test="$work/capture-test"
  if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null 2>&1; then
    echo "  (not root or no unshare: skipped loading the capture rules in the image)" >&2
    return 0
  fi
  rm -rf "$test"
  cp -a "$rootfs" "$test"
  mkdir "$test/dev"
  # shellcheck disable=SC2016 # $1 is the inner shell's, the rootfs passed after the script.
  saved="$(unshare -n -m sh -c '
    mount --bind /dev "$1/dev" &&
    chroot "$1" /usr/local/bin/mesh-proxy iptables --outbound-port=15001 --inbound-port=15006 \
      --proxy-uid=1337 --proxy-gid=1337 --include-outbound-ranges="*" \
      --include-inbound-ports="*" --exclude-inbound-ports=15090,15021,15020 >&2 &&
    chroot "$1" /usr/sbin/iptables-save -t nat' sh "$test")" ||
    die "mesh-proxy iptables failed inside the image's rootfs (output above)"
  if ! grep -q -- '-A MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN' <<<"$saved" ||
    ! grep -q -- '-A MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001' <<<"$saved"; then
    die "the capture rules loaded in the image are not the expected ones:"$'\n'"$saved"
  fi
  echo "  capture rules load inside the image ($(grep -c '^-A ' <<<"$saved") rules)" >&2
}

# archive NAME REF ROOTFS ENTRYPOINT USER [CMD...]: prints oci.py's line.
archive() {
  local name="$1" ref="$2" rootfs="$3" entrypoint="$4" user="$5"
  shift 5
  local -a cmd=()
  [ $# -eq 0 ] || cmd=(--cmd "$@")
  python3 scripts/oci.py --rootfs "$rootfs" --ref "$ref" --entrypoint "$entrypoint" \
    --user "$user" --workdir / "${cmd[@]}" \
    --label "org.opencontainers.image.title=$name" \
    --label "org.opencontainers.image.version=${ref##*:}" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    --out "$dest/$name.tar"
}

# rust_image NAME PACKAGE BINARY PROFILE USER UID [CMD...]
rust_image() {
  local name="$1" pkg="$2" bin="$3" profile="$4" user="$5" uid="$6" path rootfs
  shift 6
  path="$(cargo_build "$pkg" "$bin" "$profile")"
  rootfs="$work/$name"
  rm -rf "$rootfs"
  base_rootfs "$rootfs" "$user" "$uid"
  install -m 0755 "$path" "$rootfs/usr/local/bin/$bin"
  if [ "$name" = mesh-proxy ]; then
    iptables_rootfs "$rootfs"
    # DestinationRule tls SIMPLE without caCertificates verifies against the system roots
    # (proxy/src/tls/upstream.rs); mesh traffic uses the mesh's own.
    local cas=/etc/ssl/certs/ca-certificates.crt
    [ -f "$cas" ] || apt_install ca-certificates || die "$cas missing (apt-get install ca-certificates)"
    mkdir -p "$rootfs/etc/ssl/certs"
    install -m 0644 "$cas" "$rootfs$cas"
    check_capture "$rootfs"
  fi
  archive "$name" "$hub/$name:$tag" "$rootfs" "/usr/local/bin/$bin" "$uid:$uid" "$@"
}

pause_image() {
  local rootfs="$work/pause"
  echo "building pause (gcc -static)…" >&2
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  gcc -static -Os -s -Wall -Wextra -o "$rootfs/pause" e2e/node/pause.c
  check_static "$rootfs/pause"
  archive pause "meshctl.dev/e2e/pause:3.10" "$rootfs" /pause 65535:65535
}

# build_all DIR RESULTS: every selected image into DIR, oci.py's lines into RESULTS.
build_all() {
  dest="$1"
  local results="$2" name line
  mkdir -p "$dest"
  : >"$results"
  for name in "${only[@]}"; do
    case "$name" in
      # The uids are the ones the rendered pods run as: the operator's Deployment
      # (operator/src/controller/manifests.rs), meshd's (operator/src/render/controlplane.rs,
      # 1337 as istiod), the sidecar's and gateways' (inject/src/sidecar.rs). The init
      # container runs the same proxy image as root.
      mesh-operator) line="$(rust_image mesh-operator meshctl-operator mesh-operator release nonroot 65532)" ;;
      meshd) line="$(rust_image meshd meshd meshd release istio-proxy 1337 serve)" ;;
      mesh-proxy) line="$(rust_image mesh-proxy mesh-proxy mesh-proxy release-proxy istio-proxy 1337 run)" ;;
      sample) line="$(rust_image mesh-sample mesh-sample mesh-sample release nonroot 65532)" ;;
      pause) line="$(pause_image)" ;;
    esac
    echo "$line"
    echo "$line" >>"$results"
  done
}

# table RESULTS: ref, archive, compressed and uncompressed size.
table() {
  local ref size uncompressed
  printf '\n%-40s %-50s %9s %17s\n' IMAGE ARCHIVE "SIZE (MB)" "UNCOMPRESSED (MB)"
  while read -r ref _ size _ uncompressed _; do
    local name="${ref%:*}"
    name="${name##*/}"
    printf '%-40s %-50s %9s %17s\n' "$ref" "$dest/$name.tar" \
      "$(awk -v b="$size" 'BEGIN {printf "%.1f", b / 1e6}')" \
      "$(awk -v b="${uncompressed%,}" 'BEGIN {printf "%.1f", b / 1e6}')"
  done <"$1"
}

if [ "$check" = 0 ]; then
  build_all "$out" "$work/results"
  table "$work/results"
  exit 0
fi

# Reproducibility: a second build after touching every source cargo compiles here (so the
# workspace crates really are compiled again), into another directory; the digests must match.
echo "==> first build, into $out" >&2
build_all "$out" "$work/first.results"
echo "==> second build (sources touched), into a scratch directory" >&2
# Only the sources of the images asked for, so that a check of the small ones does not make every
# later build in this clone compile the workspace again.
touched=()
for name in "${only[@]}"; do
  case "$name" in
    sample) touched+=(sample) ;;
    pause) ;;
    *) touched+=(proxy proxy-config agent xds controlplane operator crds inject profiles) ;;
  esac
done
if [ ${#touched[@]} -gt 0 ]; then
  find "${touched[@]}" -type f \( -name '*.rs' -o -name '*.proto' -o -name '*.yaml' \) -exec touch {} +
fi
build_all "$work/second" "$work/second.results"
if ! diff <(awk '{print $1, $2}' "$work/first.results") <(awk '{print $1, $2}' "$work/second.results") >&2; then
  die "the two builds differ (first <, second >): not reproducible"
fi
for name in "${only[@]}"; do
  [ "$name" = sample ] && name=mesh-sample
  cmp "$out/$name.tar" "$work/second/$name.tar" >&2 || die "$name.tar differs between the builds"
done
echo "reproducible: both builds gave byte-identical archives with these manifest digests"
awk '{print "  " $1, $2}' "$work/first.results"
