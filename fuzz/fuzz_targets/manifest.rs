//! Manifests, indexes and image configs (`bulkhead_scan::source::manifest`), as registries,
//! OCI layouts and `docker save` archives hand them over: whatever the bytes, parsing
//! must never panic, every digest that gets through is `sha256:<64 lowercase hex>`, the
//! limits hold, and what parses can be turned into an image (or refused) without panic.
#![no_main]

use bulkhead_scan::source::Platform;
use bulkhead_scan::source::manifest::{
    Config, Document, Limits, build_image, digest_hex, parse_config, parse_document,
    select_platform,
};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_manifest_bytes: 4 << 20,
    max_layers: 256,
};

fuzz_target!(|data: &[u8]| {
    let config = parse_config(data, "fuzz config", &LIMITS);
    if let Ok(c) = &config {
        assert!(c.diff_ids.len() <= LIMITS.max_layers);
        for d in &c.diff_ids {
            assert!(digest_hex(d, "diff_id").is_ok(), "{d:?}");
        }
    }
    match parse_document(data, "fuzz manifest", &LIMITS) {
        Ok(Document::Index(index)) => {
            for d in &index.manifests {
                assert!(digest_hex(&d.digest, "entry").is_ok(), "{:?}", d.digest);
            }
            for want in [
                "linux/amd64",
                "linux/arm64/v8",
                "linux/arm/v7",
                "windows/amd64",
            ] {
                let want: Platform = want.parse().expect("a valid platform");
                if let Ok(d) = select_platform(&index, &want, "fuzz") {
                    assert!(index.manifests.contains(d));
                }
            }
        }
        Ok(Document::Manifest(m)) => {
            assert!(m.layers.len() <= LIMITS.max_layers);
            assert!(digest_hex(&m.config.digest, "config").is_ok());
            for l in &m.layers {
                assert!(digest_hex(&l.digest, "layer").is_ok(), "{:?}", l.digest);
            }
            // With the input's own config when it is one too, else with a config that
            // lines up with the layers, so that the layer media types are checked.
            let config = config.unwrap_or_else(|_| Config {
                platform: None,
                diff_ids: m.layers.iter().map(|l| l.digest.clone()).collect(),
                history: Vec::new(),
            });
            if let Ok(image) = build_image("fuzz", None, &m.config.digest, &m, &config, &LIMITS) {
                assert_eq!(image.layers.len(), m.layers.len());
                assert_eq!(image.layers.len(), config.diff_ids.len());
            }
        }
        Err(_) => {}
    }
});
