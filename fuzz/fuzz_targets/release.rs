//! The host decides an image's OS from its release files with `bulkhead-release`: whatever
//! bytes the files hold, detection must not panic, must ignore oversized files and must
//! return only fields the host accepts (bounded, no control characters).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // NUL-separated chunks are the contents of the release files, in `paths()` order, so
    // one input exercises os-release, lsb-release and the single-line files together.
    let paths: Vec<&str> = bulkhead_release::paths().collect();
    let chunks: Vec<String> = data
        .split(|b| *b == 0)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let read = |path: &str| {
        let i = paths.iter().position(|p| *p == path)?;
        chunks.get(i).filter(|c| !c.is_empty()).cloned()
    };
    if let Some(r) = bulkhead_release::detect(read) {
        let ok = |v: &str| {
            !v.is_empty()
                && v.len() <= bulkhead_release::MAX_FIELD
                && !v.chars().any(char::is_control)
        };
        assert!(ok(&r.id));
        assert!(r.id_like.len() <= bulkhead_release::MAX_ID_LIKE);
        assert!(r.id_like.iter().all(|v| ok(v)));
        for v in [&r.version_id, &r.version_codename, &r.pretty_name]
            .into_iter()
            .flatten()
        {
            assert!(ok(v), "{v:?}");
        }
        assert!(paths.contains(&r.source_file.as_str()));
    }
    let _ = bulkhead_release::parse_os_release(&String::from_utf8_lossy(data));
});
