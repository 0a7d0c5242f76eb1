#!/usr/bin/env python3
"""Make many distinct images from one base image, for the service-latency benchmark.
Stdlib only.

    service-variants.py BASE_LAYOUT BASE_TAG OUT_LAYOUT NAME:COUNT...

For every NAME:COUNT, COUNT images tagged NAME-001 … NAME-COUNT are written to the OCI
layout OUT_LAYOUT: the base image's layers (blobs hard-linked, or copied across file
systems) plus ONE small gzip layer of their own holding `./opt/bench/variant.txt` (the tag
and a few hundred bytes). Every variant therefore has its own manifest digest, config and
top layer, as a rebuilt application image has, while the base layer stays the same: a
scanner cannot reuse a result for the image, only its per-layer work on the base.

The output is deterministic (fixed timestamps, gzip mtime 0). A JSON summary is printed on
stdout: per tag the manifest, config and unique layer digests, and the base layers.
"""

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import zlib

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
CREATED = "2024-01-01T00:00:00Z"
EPOCH = 1704067200


def die(msg):
    sys.exit("service-variants.py: " + msg)


def blob_path(layout, digest):
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64:
        die("%s: unexpected digest %r" % (layout, digest))
    return os.path.join(layout, "blobs", "sha256", hexd)


def read_json_blob(layout, digest):
    with open(blob_path(layout, digest), "rb") as f:
        data = f.read()
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        die("%s: blob %s does not match its digest" % (layout, digest))
    return json.loads(data)


def write_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(layout, digest)
    if not os.path.exists(path):
        tmp = path + ".partial-%d" % os.getpid()
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return digest, len(data)


def link_blob(src_layout, dst_layout, digest):
    src, dst = blob_path(src_layout, digest), blob_path(dst_layout, digest)
    if os.path.exists(dst):
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def tar_entry(name, data=None):
    ti = tarfile.TarInfo(name)
    ti.mtime = EPOCH
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    if data is None:
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
    else:
        ti.size = len(data)
        ti.mode = 0o644
    return ti


def unique_layer(base_digest, tag):
    """A gzip tar with one small file naming the base image and the variant (so that no two
    variants of any base share it); returns (blob, diff_id, tar size)."""
    text = ("service-latency variant %s of %s\n" % (tag, base_digest)).encode()
    # A few hundred bytes of content, like a small config file of an application layer.
    text += b"".join(hashlib.sha256(("%s/%s/%d" % (base_digest, tag, i)).encode()).hexdigest().encode() + b"\n"
                     for i in range(8))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tar_entry("./opt"))
        tar.addfile(tar_entry("./opt/bench"))
        tar.addfile(tar_entry("./opt/bench/variant.txt", text), io.BytesIO(text))
    raw = buf.getvalue()
    z = zlib.compressobj(6, zlib.DEFLATED, 31, 9)  # gzip container, mtime 0
    return z.compress(raw) + z.flush(), "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)


def main():
    if len(sys.argv) < 5:
        die("usage: service-variants.py BASE_LAYOUT BASE_TAG OUT_LAYOUT NAME:COUNT...")
    base, base_tag, out = sys.argv[1:4]
    sets = []
    for spec in sys.argv[4:]:
        name, _, count = spec.partition(":")
        if not name or not count.isdigit() or not 0 < int(count) <= 9999:
            die("bad NAME:COUNT %r" % spec)
        sets.append((name, int(count)))

    with open(os.path.join(base, "index.json")) as f:
        index = json.load(f)
    ref = [m for m in index.get("manifests", [])
           if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == base_tag]
    if len(ref) != 1:
        die("%s: %d manifests tagged %r" % (base, len(ref), base_tag))
    manifest = read_json_blob(base, ref[0]["digest"])
    config = read_json_blob(base, manifest["config"]["digest"])

    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    for layer in manifest["layers"]:
        link_blob(base, out, layer["digest"])

    entries, summary = [], {"base": {"manifest": ref[0]["digest"], "layers": manifest["layers"]}, "variants": {}}
    for name, count in sets:
        for i in range(1, count + 1):
            tag = "%s-%03d" % (name, i)
            blob, diff_id, usize = unique_layer(ref[0]["digest"], tag)
            layer_digest, layer_size = write_blob(out, blob)
            cfg = json.loads(json.dumps(config))
            cfg["rootfs"]["diff_ids"] = list(cfg["rootfs"]["diff_ids"]) + [diff_id]
            cfg.setdefault("history", []).append(
                {"created": CREATED, "created_by": "bench/service-variants.py %s" % tag})
            cfg_digest, cfg_size = write_blob(out, json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode())
            man = {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": cfg_digest, "size": cfg_size},
                "layers": list(manifest["layers"]) + [
                    {"mediaType": MEDIA_LAYER_GZIP, "digest": layer_digest, "size": layer_size}],
            }
            man_digest, man_size = write_blob(out, json.dumps(man, sort_keys=True, separators=(",", ":")).encode())
            entries.append({
                "mediaType": MEDIA_MANIFEST, "digest": man_digest, "size": man_size,
                "platform": ref[0].get("platform", {"architecture": cfg.get("architecture"), "os": "linux"}),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            })
            summary["variants"][tag] = {"manifest": man_digest, "config": cfg_digest,
                                        "layer": layer_digest, "layer_size": layer_size,
                                        "layer_uncompressed": usize}

    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    tmp = os.path.join(out, "index.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}, f, indent=1)
    os.replace(tmp, os.path.join(out, "index.json"))
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
