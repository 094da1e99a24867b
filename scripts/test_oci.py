#!/usr/bin/env python3
"""Tests of scripts/oci.py: reproducible archives whose blobs match their descriptors.

Run: python3 -m pytest scripts/test_oci.py   or   python3 scripts/test_oci.py
"""

import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
import unittest

# No __pycache__ left in scripts/ by a test run.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci  # noqa: E402

REF = "ghcr.io/meshctl/meshd:0.1.0"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_archive(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


class OciTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.rootfs = os.path.join(self.tmp.name, "rootfs")
        os.makedirs(os.path.join(self.rootfs, "usr/local/bin"))
        os.makedirs(os.path.join(self.rootfs, "etc"))
        os.makedirs(os.path.join(self.rootfs, "tmp"))
        os.chmod(os.path.join(self.rootfs, "tmp"), 0o1777)
        self.write("usr/local/bin/meshd", b"#!/bin/false\n", 0o755)
        self.write("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\n", 0o644)
        os.symlink("meshd", os.path.join(self.rootfs, "usr/local/bin/alias"))

    def write(self, rel, data, mode):
        path = os.path.join(self.rootfs, rel)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    def build(self, name, *extra, rootfs=None):
        out = os.path.join(self.tmp.name, name)
        argv = [
            "--rootfs", rootfs or self.rootfs, "--ref", REF,
            "--entrypoint", "/usr/local/bin/meshd", "--cmd", "serve",
            "--user", "1337:1337", "--env", "A=b", "--label", "k=v", "--out", out, *extra,
        ]
        archive, manifest_digest, _ = oci.build_archive(oci.parse_args(argv))
        with open(out, "wb") as f:
            f.write(archive)
        return out, manifest_digest

    def test_same_rootfs_same_bytes(self):
        a, da = self.build("a.tar")
        # Another walk order and other timestamps on the host must not matter.
        os.utime(os.path.join(self.rootfs, "etc/passwd"), (1, 1))
        b, db = self.build("b.tar")
        self.assertEqual(da, db)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())

    def test_changed_file_changes_digest(self):
        _, before = self.build("a.tar")
        self.write("etc/passwd", b"root:x:0:0::/:/sbin/nologin\n", 0o644)
        _, after = self.build("b.tar")
        self.assertNotEqual(before, after)

    def test_changed_mode_changes_digest(self):
        _, before = self.build("a.tar")
        os.chmod(os.path.join(self.rootfs, "etc/passwd"), 0o600)
        _, after = self.build("b.tar")
        self.assertNotEqual(before, after)

    def test_blobs_match_descriptors(self):
        path, manifest_digest = self.build("a.tar")
        files = read_archive(path)
        for name, data in files.items():
            if name.startswith("blobs/sha256/"):
                self.assertEqual(name.rsplit("/", 1)[1], hashlib.sha256(data).hexdigest(), name)

        self.assertEqual(json.loads(files["oci-layout"]), {"imageLayoutVersion": "1.0.0"})
        index = json.loads(files["index.json"])
        (desc,) = index["manifests"]
        self.assertEqual(desc["digest"], manifest_digest)
        self.assertEqual(desc["annotations"]["io.containerd.image.name"], REF)
        self.assertEqual(desc["annotations"]["org.opencontainers.image.ref.name"], "0.1.0")
        manifest = files[oci.blob_path(desc["digest"])]
        self.assertEqual(desc["size"], len(manifest))
        self.assertEqual(digest(manifest), manifest_digest)

        manifest = json.loads(manifest)
        config_bytes = files[oci.blob_path(manifest["config"]["digest"])]
        self.assertEqual(manifest["config"]["size"], len(config_bytes))
        (layer_desc,) = manifest["layers"]
        layer_gz = files[oci.blob_path(layer_desc["digest"])]
        self.assertEqual(layer_desc["size"], len(layer_gz))

        (docker,) = json.loads(files["manifest.json"])
        self.assertEqual(docker["RepoTags"], [REF])
        self.assertEqual(docker["Config"], oci.blob_path(manifest["config"]["digest"]))
        self.assertEqual(docker["Layers"], [oci.blob_path(layer_desc["digest"])])

        config = json.loads(config_bytes)
        self.assertEqual(config["architecture"], "amd64")
        self.assertEqual(config["os"], "linux")
        self.assertEqual(config["config"]["Entrypoint"], ["/usr/local/bin/meshd"])
        self.assertEqual(config["config"]["Cmd"], ["serve"])
        self.assertEqual(config["config"]["User"], "1337:1337")
        self.assertIn("A=b", config["config"]["Env"])
        self.assertEqual(config["config"]["Labels"], {"k": "v"})
        self.assertEqual(config["rootfs"]["diff_ids"], [digest(gzip.decompress(layer_gz))])

    def test_layer_entries(self):
        path, _ = self.build("a.tar")
        files = read_archive(path)
        manifest = json.loads(files[oci.blob_path(json.loads(files["index.json"])["manifests"][0]["digest"])])
        layer = gzip.decompress(files[oci.blob_path(manifest["layers"][0]["digest"])])
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        self.assertEqual(names, sorted(names))
        by_name = {m.name: m for m in members}
        self.assertTrue(by_name["usr/local/bin"].isdir())
        self.assertEqual(by_name["tmp"].mode, 0o1777)
        self.assertEqual(by_name["usr/local/bin/meshd"].mode, 0o755)
        self.assertTrue(by_name["usr/local/bin/alias"].issym())
        self.assertEqual(by_name["usr/local/bin/alias"].linkname, "meshd")
        for m in members:
            self.assertEqual((m.uid, m.gid, m.uname, m.gname, m.mtime), (0, 0, "", "", 0), m.name)

    def test_source_date_epoch(self):
        os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
        self.addCleanup(os.environ.pop, "SOURCE_DATE_EPOCH")
        path, _ = self.build("a.tar")
        with tarfile.open(path) as tar:
            self.assertTrue(all(m.mtime == 1700000000 for m in tar.getmembers()))

    def test_bad_input(self):
        cases = [
            ({"rootfs": os.path.join(self.tmp.name, "missing")}, "no such directory"),
            ({"entrypoint": "/usr/local/bin/nope"}, "not a file in the rootfs"),
            ({"entrypoint": "/etc/passwd"}, "not executable"),
            ({"ref": "ghcr.io/meshctl/meshd"}, "not a tagged image reference"),
            ({"env": "NOEQUALS"}, "not KEY=VALUE"),
        ]
        for change, message in cases:
            with self.subTest(change=change):
                argv = {
                    "rootfs": self.rootfs, "ref": REF, "entrypoint": "/usr/local/bin/meshd",
                    "out": os.path.join(self.tmp.name, "x.tar"),
                }
                argv.update(change)
                flat = [x for k, v in argv.items() for x in (f"--{k}", v)]
                with self.assertRaises(oci.BadInput) as ctx:
                    oci.build_archive(oci.parse_args(flat))
                self.assertIn(message, str(ctx.exception))

    def test_entrypoint_symlink_resolves_inside_rootfs(self):
        # An absolute link target means the image's /, never the build host's.
        os.symlink("/usr/local/bin/meshd", os.path.join(self.rootfs, "entry"))
        self.build("a.tar", "--entrypoint", "/entry")
        os.symlink("/bin/sh", os.path.join(self.rootfs, "host-sh"))
        with self.assertRaises(oci.BadInput):
            self.build("b.tar", "--entrypoint", "/host-sh")

    def test_main_prints_one_line(self):
        out = os.path.join(self.tmp.name, "m.tar")
        buf = io.StringIO()
        stdout, sys.stdout = sys.stdout, buf
        try:
            rc = oci.main(["--rootfs", self.rootfs, "--ref", REF, "--entrypoint",
                           "/usr/local/bin/meshd", "--out", out])
        finally:
            sys.stdout = stdout
        self.assertEqual(rc, 0)
        ref, manifest_digest, size = buf.getvalue().split()[:3]
        self.assertEqual(ref, REF)
        self.assertTrue(manifest_digest.startswith("sha256:"))
        self.assertEqual(int(size), os.path.getsize(out))
        self.assertFalse(stat.S_ISLNK(os.lstat(out).st_mode))


if __name__ == "__main__":
    unittest.main()
