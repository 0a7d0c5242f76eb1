//! Manifests, indexes and image configs as a registry hands them over: the bytes as
//! received go through `manifest::received` (the checks every registry path makes, in
//! their order: size, digest, the size an index announced, the parse, an index listing
//! itself), then, for an index, platform selection, and the config parser. Whatever the
//! bytes: no panic, the limits hold, a digest that was asked for is the one accepted, and
//! every digest that gets through is `sha256:<64 lowercase hex>`.
#![no_main]

use bulkhead_scan::source::Platform;
use bulkhead_scan::source::manifest::{
    Document, Limits, digest_hex, parse_config, received, select_platform, sha256_digest,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_manifest_bytes: 64 << 10,
    max_layers: 64,
};

fuzz_target!(|data: &[u8]| {
    // The length says what the client expected, as resolve would: nothing (a tag), the
    // document's own digest (a pull by digest), another digest, or a wrong length from an
    // index. (Not a prefix byte: the seeds are real documents, used as they are.)
    let bytes = data;
    let mode = bytes.len() % 4;
    let own = sha256_digest(bytes);
    let other = format!("sha256:{}", "0".repeat(64));
    let (digest, size) = match mode {
        0 => (None, None),
        1 => (Some(own.as_str()), None),
        2 => (Some(other.as_str()), None),
        _ => (None, Some(bytes.len() as u64 ^ 1)),
    };
    match received(bytes, "fuzz", &LIMITS, digest, size) {
        Ok((document, got)) => {
            assert!(bytes.len() as u64 <= LIMITS.max_manifest_bytes);
            assert_eq!(got, own);
            assert!(
                mode != 2 && mode != 3,
                "a wrong digest or length was accepted"
            );
            match document {
                Document::Index(index) => {
                    assert!(index.manifests.iter().all(|d| d.digest != own));
                    for d in &index.manifests {
                        assert!(digest_hex(&d.digest, "entry").is_ok());
                    }
                    let want: Platform = "linux/amd64".parse().expect("a valid platform");
                    if let Ok(d) = select_platform(&index, &want, "fuzz") {
                        assert!(index.manifests.contains(d));
                    }
                }
                Document::Manifest(m) => {
                    assert!(m.layers.len() <= LIMITS.max_layers);
                    assert!(digest_hex(&m.config.digest, "config").is_ok());
                }
            }
        }
        Err(_) => {}
    }
    if let Ok(c) = parse_config(bytes, "fuzz config", &LIMITS) {
        assert!(c.diff_ids.len() <= LIMITS.max_layers);
    }
});
