#!/usr/bin/env python3
"""Writes a one-layer container image archive from a root filesystem directory.

The archive holds both an OCI image layout (oci-layout, index.json, blobs/sha256/...) and
Docker's manifest.json, as `docker save` has written since Docker 25, so `ctr images import`,
`docker load`, `podman load`, `kind load image-archive` and `skopeo copy oci-archive:` all take
it. Every byte is a function of the inputs (file contents, modes, the options and
SOURCE_DATE_EPOCH): no build host timestamps, owners or names leak in, so two builds of the
same tree give the same digests.

Usage:
  oci.py --rootfs DIR --ref ghcr.io/meshctl/meshd:0.1.0 --entrypoint /usr/local/bin/meshd
         [--cmd ARG ...] [--user 1337:1337] [--env K=V ...] [--workdir /] [--label k=v ...]
         --out FILE.tar

Prints `REF DIGEST SIZE bytes, UNCOMPRESSED bytes uncompressed` (the manifest digest, the
archive's size and the layer's uncompressed size); exits 1 with a message on bad input.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import stat
import sys
import tarfile

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# The reference grammar of the distribution spec, without digests: the tag is what the
# profiles render and what loaders name the image by.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
REF_RE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*):(?P<tag>[\w][\w.-]{{0,127}})$"
)


class BadInput(Exception):
    """Input the user can fix; reported without a traceback."""


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value):
    # Sorted keys and no whitespace: the digest must not depend on dict order or formatting.
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def source_date_epoch():
    raw = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        epoch = int(raw)
    except ValueError:
        raise BadInput(f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds") from None
    if epoch < 0:
        raise BadInput(f"SOURCE_DATE_EPOCH={raw!r} is negative")
    return epoch


def parse_ref(ref):
    """Splits a tagged reference; a reference without a domain is left as given."""
    m = REF_RE.match(ref)
    if not m:
        raise BadInput(
            f"--ref {ref!r} is not a tagged image reference (want e.g. ghcr.io/meshctl/meshd:0.1.0)"
        )
    return m.group("tag")


def parse_pairs(pairs, flag):
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"{flag} {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def check_user(user):
    if user is None:
        return
    if not re.fullmatch(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)?", user):
        raise BadInput(f"--user {user!r} is not USER[:GROUP] (e.g. 1337:1337)")


def resolve_in_rootfs(rootfs, path, hops=0):
    """The host path `path` names inside the image, following symlinks the way the runtime will
    (absolute targets are relative to the rootfs, never the build host's /)."""
    if hops > 40:
        raise BadInput(f"too many symlinks resolving {path} in the rootfs")
    current = rootfs
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            current = os.path.dirname(current) if current != rootfs else rootfs
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            target = os.readlink(candidate)
            rest = "/".join(parts[i + 1 :])
            if target.startswith("/"):
                joined = target + "/" + rest
            else:
                joined = os.path.relpath(current, rootfs) + "/" + target + "/" + rest
            return resolve_in_rootfs(rootfs, "/" + joined, hops + 1)
        current = candidate
    return current


def check_entrypoint(rootfs, entrypoint):
    if not entrypoint.startswith("/"):
        raise BadInput(f"--entrypoint {entrypoint!r} must be an absolute path inside the rootfs")
    host = resolve_in_rootfs(rootfs, entrypoint)
    if not os.path.isfile(host):
        raise BadInput(f"--entrypoint {entrypoint} is not a file in the rootfs {rootfs}")
    if not os.stat(host).st_mode & 0o111:
        raise BadInput(f"--entrypoint {entrypoint} in the rootfs {rootfs} is not executable")


def layer_entries(rootfs):
    """Every path under rootfs, relative and sorted, so the walk order of the host file system
    never shows in the layer."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            entries.append(os.path.relpath(full, rootfs).replace(os.sep, "/"))
    entries.sort()
    return entries


def build_layer(rootfs, mtime):
    """The uncompressed layer tar: owners root, no user or group names (the image's
    /etc/passwd, not the build host's, gives names), one fixed mtime, modes kept."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel in layer_entries(rootfs):
            full = os.path.join(rootfs, rel)
            st = os.lstat(full)
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(full)
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                # Hard links become copies: which name came first is an accident of the walk.
                info.size = st.st_size
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                raise BadInput(f"{full}: not a file, directory or symlink; images carry no device nodes, FIFOs or sockets")
    return buf.getvalue()


def gzip_bytes(data):
    # mtime=0 and an empty file name keep the gzip header free of build-time facts.
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return out.getvalue()


def rfc3339(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_config(args, diff_id, epoch):
    config = {"Entrypoint": [args.entrypoint]}
    if args.cmd:
        config["Cmd"] = list(args.cmd)
    if args.user:
        config["User"] = args.user
    env = parse_pairs(args.env, "--env")
    # Runtimes add no PATH of their own to an image that sets none; the iptables tools the
    # proxy image runs are looked up through it.
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    config["Env"] = [f"{k}={v}" for k, v in env.items()]
    if args.workdir:
        config["WorkingDir"] = args.workdir
    labels = parse_pairs(args.label, "--label")
    if labels:
        config["Labels"] = labels
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": rfc3339(epoch),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": rfc3339(epoch), "created_by": "scripts/oci.py"}],
    }


def descriptor(media_type, data, **extra):
    d = {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
    d.update(extra)
    return d


def blob_path(digest):
    return "blobs/sha256/" + digest.split(":", 1)[1]


def build_archive(args):
    """Returns (archive bytes, manifest digest, uncompressed layer size)."""
    rootfs = os.path.abspath(args.rootfs)
    if not os.path.isdir(rootfs):
        raise BadInput(f"--rootfs {args.rootfs}: no such directory")
    tag = parse_ref(args.ref)
    check_entrypoint(rootfs, args.entrypoint)
    check_user(args.user)
    if args.workdir and not args.workdir.startswith("/"):
        raise BadInput(f"--workdir {args.workdir!r} must be absolute")
    epoch = source_date_epoch()

    layer = build_layer(rootfs, epoch)
    layer_gz = gzip_bytes(layer)
    config = canonical_json(image_config(args, sha256(layer), epoch))
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": descriptor(MEDIA_CONFIG, config),
            "layers": [descriptor(MEDIA_LAYER, layer_gz)],
        }
    )
    manifest_digest = sha256(manifest)
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                descriptor(
                    MEDIA_MANIFEST,
                    manifest,
                    annotations={
                        # containerd and podman name the image by the full reference; the OCI
                        # annotation holds only the tag, as the image-layout spec has it.
                        "io.containerd.image.name": args.ref,
                        "org.opencontainers.image.ref.name": tag,
                    },
                    platform={"architecture": "amd64", "os": "linux"},
                )
            ],
        }
    )
    docker_manifest = canonical_json(
        [
            {
                "Config": blob_path(sha256(config)),
                "RepoTags": [args.ref],
                "Layers": [blob_path(sha256(layer_gz))],
            }
        ]
    )
    oci_layout = canonical_json({"imageLayoutVersion": "1.0.0"})

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(name, data=None):
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

        add("blobs")
        add("blobs/sha256")
        # Blobs first: a streaming importer has every blob stored when it reaches the index.
        for blob in (layer_gz, config, manifest):
            add(blob_path(sha256(blob)), blob)
        add("oci-layout", oci_layout)
        add("index.json", index)
        add("manifest.json", docker_manifest)
    return out.getvalue(), manifest_digest, len(layer)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Write a reproducible one-layer OCI + docker-archive image from a rootfs directory."
    )
    p.add_argument("--rootfs", required=True, help="directory that becomes the image's /")
    p.add_argument("--ref", required=True, help="full tagged reference, e.g. ghcr.io/meshctl/meshd:0.1.0")
    p.add_argument("--entrypoint", required=True, help="absolute path of the entrypoint inside the rootfs")
    p.add_argument(
        "--cmd", nargs="+", action="extend", default=[], metavar="ARG",
        help="default arguments (Cmd); one starting with - as --cmd=-x",
    )
    p.add_argument("--user", help="USER[:GROUP] the container runs as")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--workdir", default="/")
    p.add_argument("--label", action="append", default=[], metavar="k=v")
    p.add_argument("--out", required=True, help="archive to write")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        archive, digest, uncompressed = build_archive(args)
        out_dir = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(out_dir):
            raise BadInput(f"--out {args.out}: directory {out_dir} does not exist")
        # Write then rename: a loader never sees half an archive under the final name.
        tmp = args.out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(archive)
        os.replace(tmp, args.out)
    except BadInput as e:
        print(f"oci.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"oci.py: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.ref} {digest} {len(archive)} bytes, {uncompressed} bytes uncompressed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
