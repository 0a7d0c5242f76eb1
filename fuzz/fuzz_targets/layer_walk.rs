//! One layer blob through the layer pipeline (`bulkhead_scan::layers::stream::process`,
//! which inflates it and walks the tar with `layers::walk::extract`): whatever the bytes
//! (plain, gzip or zstd by their magic) it must never panic, and what it writes stays
//! within the limits. Names, links, whiteouts and sizes all come from the input.
#![no_main]

use std::sync::OnceLock;

use bulkhead_model::{FileRequest, PathPattern};
use bulkhead_scan::layers::stream::process;
use bulkhead_scan::layers::{ExtractLimits, LayerLimits, Selector};
use bulkhead_scan::source::{Compression, LayerDesc};
use libfuzzer_sys::fuzz_target;

const EXTRACT: ExtractLimits = ExtractLimits {
    max_total_bytes: 8 << 20,
    max_entries: 10_000,
    max_symlink_depth: 40,
    max_file_bytes: 1 << 20,
};

const LAYER: LayerLimits = LayerLimits {
    max_compressed_bytes: 4 << 20,
    max_uncompressed_bytes: 32 << 20,
    max_ratio: 100,
    ratio_floor_bytes: 1 << 20,
};

/// What the built-in analyzers ask for, and a file with a tiny size limit.
fn selector() -> &'static Selector {
    static S: OnceLock<Selector> = OnceLock::new();
    S.get_or_init(|| {
        let req = |pattern, max_size| FileRequest { pattern, max_size };
        let requests = [
            req(PathPattern::Exact("etc/os-release".into()), 1 << 16),
            req(PathPattern::Exact("usr/lib/os-release".into()), 1 << 16),
            req(PathPattern::Exact("var/lib/dpkg/status".into()), 1 << 20),
            req(
                PathPattern::Prefix("var/lib/dpkg/status.d/".into()),
                1 << 20,
            ),
            req(PathPattern::Suffix(".list".into()), 1 << 16),
            req(PathPattern::Exact("lib/apk/db/installed".into()), 1 << 20),
            req(PathPattern::Glob("usr/lib/sysimage/rpm/*".into()), 1 << 20),
            req(PathPattern::Exact("small".into()), 4),
        ];
        Selector::new(&requests).expect("a valid selector")
    })
}

fuzz_target!(|data: &[u8]| {
    let compression = match data {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    };
    let layer = LayerDesc {
        digest: format!("sha256:{}", "0".repeat(64)),
        media_type: String::new(),
        size: data.len() as u64,
        diff_id: format!("sha256:{}", "1".repeat(64)),
        compression,
        created_by: None,
        foreign: false,
    };
    let mut diagnostics = Vec::new();
    // The digests never match (they cannot be known in advance): the walk runs first and
    // the verification afterwards, so what matters is that nothing panics on the way.
    if let Ok(files) = process(data, &layer, selector(), &EXTRACT, &LAYER, &mut diagnostics) {
        assert!(files.tree.bytes() <= EXTRACT.max_total_bytes);
    }
    for d in &diagnostics {
        assert!(!d.code.is_empty());
    }
});
