#!/usr/bin/env python3
"""Pack layers into an OCI image layout, for the image-scan benchmark. Stdlib only.

    oci-pack.py OUT_DIR --tag TAG [--level N] LAYER...

LAYER is one of
    tar:PATH                        an existing tar file (e.g. mmdebstrap output)
    random:SIZE[:seed=N][:level=N]  a generated tar of poorly-compressible files
                                    (SIZE in bytes, or with a K/M/G suffix, powers of 2)

Every layer becomes one gzip blob (`application/vnd.oci.image.layer.v1.tar+gzip`), written in
a single streaming pass that hashes the tar (the config's diff_id) and the gzip stream (the
manifest digest) as it goes, so a 1 GB layer never sits in memory or on disk uncompressed.

The output is deterministic: fixed timestamps, gzip header mtime 0, seeded random data. Two
images that share an input layer therefore share its blob, so the registry stores it once.

A JSON summary (digests and sizes of every blob) is printed on stdout.
"""

import argparse
import hashlib
import json
import os
import random
import sys
import tarfile
import zlib

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
# A fixed date keeps digests reproducible across builds.
CREATED = "2024-01-01T00:00:00Z"
EPOCH = 1704067200
CHUNK = 1 << 20


class BlobWriter:
    """Writes a blob to a temporary file under blobs/sha256 while hashing it, then renames
    it to its digest (content addressing makes a half-written blob impossible to mistake
    for a good one)."""

    def __init__(self, layout):
        self.dir = os.path.join(layout, "blobs", "sha256")
        os.makedirs(self.dir, exist_ok=True)
        self.tmp = os.path.join(self.dir, ".partial-%d" % os.getpid())
        self.f = open(self.tmp, "wb")
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, b):
        if b:
            self.f.write(b)
            self.h.update(b)
            self.size += len(b)

    def finish(self):
        self.f.close()
        hexd = self.h.hexdigest()
        os.replace(self.tmp, os.path.join(self.dir, hexd))
        return "sha256:" + hexd, self.size


def write_blob(layout, data):
    w = BlobWriter(layout)
    w.write(data)
    return w.finish()


class GzipLayerSink:
    """File-like sink for a tar stream: hashes the uncompressed bytes (diff_id) and feeds
    a gzip compressor whose output goes to a BlobWriter (digest)."""

    def __init__(self, layout, level):
        self.blob = BlobWriter(layout)
        # wbits 31 = gzip container; zlib writes mtime 0 and no file name, so the output
        # only depends on the input and the level.
        self.z = zlib.compressobj(level, zlib.DEFLATED, 31, 9)
        self.diff = hashlib.sha256()
        self.usize = 0

    def write(self, b):
        self.diff.update(b)
        self.usize += len(b)
        self.blob.write(self.z.compress(b))
        return len(b)

    def finish(self):
        self.blob.write(self.z.flush())
        digest, csize = self.blob.finish()
        return {
            "digest": digest,
            "size": csize,
            "diff_id": "sha256:" + self.diff.hexdigest(),
            "uncompressed_size": self.usize,
        }


class RandomReader:
    """`size` bytes of seeded pseudo-random data, read in chunks (never all in memory)."""

    def __init__(self, rng, size):
        self.rng = rng
        self.left = size

    def read(self, n=-1):
        if n is None or n < 0 or n > self.left:
            n = self.left
        self.left -= n
        return self.rng.randbytes(n) if n else b""


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip()
    if s and s[-1].upper() in mult:
        return int(s[:-1]) * mult[s[-1].upper()]
    return int(s)


def file_sizes(total):
    """A mix of file sizes like a real application layer: one big file (a quarter of the
    layer, which tests that large entries stream), then a repeating spread of small and
    medium ones."""
    big = total // 4
    yield big
    left = total - big
    spread = [4 << 10, 64 << 10, 1 << 20, 300 << 10, 8 << 20, 16 << 10]
    i = 0
    while left > 0:
        n = min(spread[i % len(spread)], left)
        yield n
        left -= n
        i += 1


def tar_info(name, size, kind=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size if kind == tarfile.REGTYPE else 0
    ti.mode = 0o644 if kind == tarfile.REGTYPE else 0o755
    ti.mtime = EPOCH
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def random_layer(sink, size, seed):
    rng = random.Random(seed)
    top = "./opt/bench-data-%d" % seed
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tar_info("./opt", 0, tarfile.DIRTYPE))
        tar.addfile(tar_info(top, 0, tarfile.DIRTYPE))
        subdir = None
        for i, n in enumerate(file_sizes(size)):
            # 100 files per directory, like a real tree, not one huge directory.
            if i % 100 == 0:
                subdir = "%s/d%04d" % (top, i // 100)
                tar.addfile(tar_info(subdir, 0, tarfile.DIRTYPE))
            tar.addfile(tar_info("%s/f%06d.bin" % (subdir, i), n), RandomReader(rng, n))


def copy_tar(sink, path):
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            sink.write(b)


def parse_layer(spec, default_level):
    kind, _, rest = spec.partition(":")
    if kind == "tar":
        if not rest:
            raise ValueError("tar layer without a path: %r" % spec)
        return {"kind": "tar", "path": rest, "level": default_level}
    if kind == "random":
        parts = rest.split(":")
        layer = {"kind": "random", "size": parse_size(parts[0]), "seed": 1, "level": default_level}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            if k not in ("seed", "level"):
                raise ValueError("unknown option %r in layer %r" % (k, spec))
            layer[k] = int(v)
        return layer
    raise ValueError("unknown layer kind in %r (want tar:PATH or random:SIZE)" % spec)


def host_platform():
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    return arch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="OCI layout directory (created; existing blobs are kept)")
    ap.add_argument("layers", nargs="+", metavar="LAYER")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--level", type=int, default=6, help="gzip level (default 6)")
    ap.add_argument("--arch", default=host_platform())
    args = ap.parse_args()

    try:
        specs = [parse_layer(s, args.level) for s in args.layers]
    except ValueError as e:
        ap.error(str(e))

    os.makedirs(args.out, exist_ok=True)
    layers, history = [], []
    for spec in specs:
        sink = GzipLayerSink(args.out, spec["level"])
        if spec["kind"] == "tar":
            copy_tar(sink, spec["path"])
            created_by = "mmdebstrap tar %s (gzip -%d)" % (os.path.basename(spec["path"]), spec["level"])
        else:
            random_layer(sink, spec["size"], spec["seed"])
            created_by = "random files, %d bytes, seed %d (gzip -%d)" % (spec["size"], spec["seed"], spec["level"])
        info = sink.finish()
        info["created_by"] = created_by
        layers.append(info)
        history.append({"created": CREATED, "created_by": created_by, "comment": "bench/oci-pack.py"})
        print("packed %s: %d -> %d bytes" % (created_by, info["uncompressed_size"], info["size"]), file=sys.stderr)

    config = {
        "created": CREATED,
        "architecture": args.arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
        "history": history,
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest, config_size = write_blob(args.out, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": l["digest"], "size": l["size"]} for l in layers],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest, manifest_size = write_blob(args.out, manifest_bytes)

    with open(os.path.join(args.out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index_path = os.path.join(args.out, "index.json")
    try:
        with open(index_path) as f:
            index = json.load(f)
    except FileNotFoundError:
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}
    # Re-packing a tag replaces it.
    index["manifests"] = [m for m in index.get("manifests", [])
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != args.tag]
    index["manifests"].append({
        "mediaType": MEDIA_MANIFEST,
        "digest": manifest_digest,
        "size": manifest_size,
        "platform": {"architecture": args.arch, "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": args.tag},
    })
    with open(index_path + ".tmp", "w") as f:
        json.dump(index, f, indent=1)
    os.replace(index_path + ".tmp", index_path)

    json.dump({
        "tag": args.tag,
        "manifest": {"digest": manifest_digest, "size": manifest_size},
        "config": {"digest": config_digest, "size": config_size},
        "layers": layers,
        "compressed_bytes": sum(l["size"] for l in layers),
        "uncompressed_bytes": sum(l["uncompressed_size"] for l in layers),
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
