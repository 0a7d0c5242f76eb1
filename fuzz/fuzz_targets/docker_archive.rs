//! A `docker save` archive (`bulkhead_scan::source::docker_archive`): the one pass over
//! the tar (plain or gzip), then `manifest.json` → config → layers. Whatever the bytes it
//! must never panic, and the work stays bounded by the limits.
//!
//! An input that starts with `[` is taken as `manifest.json` alone and packed into an
//! archive together with fixed configs and layers (plain, linked, named by digest), so
//! that the fuzzer can change the JSON freely instead of through tar headers; anything
//! else is the whole archive.
#![no_main]

use std::sync::OnceLock;

use bulkhead_scan::source::docker_archive::image_of_bytes;
use bulkhead_scan::source::manifest::{Limits, digest_hex, sha256_digest};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_manifest_bytes: 1 << 20,
    max_layers: 64,
};

/// What surrounds a fuzzed `manifest.json`: (path, kind, data or link target).
fn entries() -> &'static [(String, tar::EntryType, Vec<u8>)] {
    static E: OnceLock<Vec<(String, tar::EntryType, Vec<u8>)>> = OnceLock::new();
    E.get_or_init(|| {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let layer = vec![0u8; 1024]; // an empty tar
        let diff_id = sha256_digest(&layer);
        let hex = diff_id.trim_start_matches("sha256:").to_string();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}","{diff_id}"]}},"history":[{{"created_by":"a"}},{{"created_by":"b","empty_layer":true}},{{"created_by":"c"}}]}}"#
        )
        .into_bytes();
        let config_hex = sha256_digest(&config).trim_start_matches("sha256:").to_string();
        vec![
            ("config.json".into(), Regular, config.clone()),
            (format!("{config_hex}.json"), Regular, config.clone()),
            (format!("blobs/sha256/{config_hex}"), Regular, config),
            ("a/".into(), Directory, Vec::new()),
            ("a/layer.tar".into(), Regular, layer.clone()),
            (format!("blobs/sha256/{hex}"), Regular, layer),
            ("b/layer.tar".into(), Symlink, b"../a/layer.tar".to_vec()),
            ("c/layer.tar".into(), Link, b"a/layer.tar".to_vec()),
            ("loop".into(), Symlink, b"loop".to_vec()),
            ("out".into(), Symlink, b"../../etc/passwd".to_vec()),
        ]
    })
}

fn archive_around(manifest: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_size(0);
            b.append_link(&mut h, path, std::str::from_utf8(data).expect("utf-8"))
                .expect("in memory");
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data).expect("in memory");
        }
    };
    add("manifest.json", tar::EntryType::Regular, manifest);
    for (path, kind, data) in entries() {
        add(path, *kind, data);
    }
    b.into_inner().expect("in memory")
}

fn check(bytes: &[u8]) {
    if let Ok(image) = image_of_bytes(bytes, "fuzz.tar", &LIMITS) {
        assert!(image.layers.len() <= LIMITS.max_layers);
        assert!(digest_hex(&image.config_digest, "config").is_ok());
        for l in &image.layers {
            assert!(digest_hex(&l.digest, "layer").is_ok(), "{:?}", l.digest);
            assert!(digest_hex(&l.diff_id, "diff_id").is_ok(), "{:?}", l.diff_id);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'[') {
        check(&archive_around(data));
    } else {
        check(data);
    }
});
