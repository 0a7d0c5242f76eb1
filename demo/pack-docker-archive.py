#!/usr/bin/env python3
"""Write a one-layer image as a `docker save` archive (gzip-compressed). Stdlib only.

    pack-docker-archive.py OUT.tar.gz --tag REPO:TAG [--file PATH=SRC]... [--symlink PATH=TARGET]...

The archive has the layout `docker save` writes since Docker 25: `manifest.json` (the list
`docker load` reads: Config, RepoTags, Layers), the image config and the layer under
`blobs/sha256/<digest>`, and `index.json` + `oci-layout`. The layer is an uncompressed tar,
so its digest is its diff_id.

Files and symlinks go into the layer at PATH (relative, without a leading `/`), with their
parent directories. Everything is deterministic: fixed timestamps (SOURCE_DATE_EPOCH or
2024-10-31), root ownership, sorted entries, a gzip header without a name or mtime.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1730332800"))


def entry(name, kind, size=0, mode=0o644, target=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.mode = mode
    ti.mtime = EPOCH
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.linkname = target
    return ti


def layer_tar(files, symlinks):
    """The layer as bytes: directories first (each parent once), then files and links."""
    paths = [p for p, _ in files] + [p for p, _ in symlinks]
    dirs = sorted({p[:i] for p in paths for i, c in enumerate(p) if c == "/"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in dirs:
            tar.addfile(entry(d + "/", tarfile.DIRTYPE, mode=0o755))
        for path, src in sorted(files):
            with open(src, "rb") as f:
                data = f.read()
            tar.addfile(entry(path, tarfile.REGTYPE, size=len(data)), io.BytesIO(data))
        for path, target in sorted(symlinks):
            tar.addfile(entry(path, tarfile.SYMTYPE, mode=0o777, target=target))
    return buf.getvalue()


def pair(s):
    path, sep, value = s.partition("=")
    if not sep or not path or not value or path.startswith("/"):
        raise argparse.ArgumentTypeError("want PATH=VALUE with a relative PATH, got %r" % s)
    return path, value


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--file", type=pair, action="append", default=[])
    ap.add_argument("--symlink", type=pair, action="append", default=[])
    args = ap.parse_args()

    layer = layer_tar(args.file, args.symlink)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    created = "2024-10-31T00:00:00Z"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/bash"],
            "Labels": {
                "org.opencontainers.image.title": "Bulkhead demo: AlmaLinux 9.4 package metadata",
                "org.opencontainers.image.description": "os-release and an rpm database only; see demo/README.md",
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "demo/build.sh", "comment": "rpmdb built with rpmbuild + rpm --justdb"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    layer_hex = diff_id.split(":", 1)[1]
    manifest = [{
        "Config": "blobs/sha256/" + config_hex,
        "RepoTags": [args.tag],
        "Layers": ["blobs/sha256/" + layer_hex],
    }]
    oci_manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + config_hex, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": diff_id, "size": len(layer)}],
    }, sort_keys=True, separators=(",", ":")).encode()
    oci_manifest_hex = hashlib.sha256(oci_manifest).hexdigest()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + oci_manifest_hex,
            "size": len(oci_manifest),
            "annotations": {"io.containerd.image.name": args.tag,
                            "org.opencontainers.image.ref.name": args.tag.rsplit(":", 1)[-1]},
        }],
    }
    members = [
        ("blobs/sha256/" + config_hex, config_bytes),
        ("blobs/sha256/" + layer_hex, layer),
        ("blobs/sha256/" + oci_manifest_hex, oci_manifest),
        ("index.json", json.dumps(index, sort_keys=True, separators=(",", ":")).encode()),
        ("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ]

    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in ("blobs/", "blobs/sha256/"):
            tar.addfile(entry(d, tarfile.DIRTYPE, mode=0o755))
        for name, data in members:
            tar.addfile(entry(name, tarfile.REGTYPE, size=len(data)), io.BytesIO(data))
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        # mtime=0 and no file name in the gzip header: the bytes depend on the content only.
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
            gz.write(outer.getvalue())
    os.replace(tmp, args.out)
    print("%s: layer %s (%d bytes), config sha256:%s" % (args.out, diff_id, len(layer), config_hex))


if __name__ == "__main__":
    main()
