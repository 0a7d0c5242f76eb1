//! The registry notification envelope (`bulkhead_server::webhook::parse`: Distribution
//! `events` and Harbor payloads), the body of an unauthenticated-until-checked POST:
//! whatever the bytes it must never panic, and every manifest it asks to scan or inspect
//! has a valid repository, digest and tag, since those become URLs and SQL values.
#![no_main]

use bulkhead_server::webhook::{
    Action, MAX_BODY_BYTES, Target, parse, valid_digest, valid_repository, valid_tag,
};
use libfuzzer_sys::fuzz_target;

fn check(t: &Target) {
    assert!(valid_repository(&t.repository), "{:?}", t.repository);
    assert!(valid_digest(&t.digest), "{:?}", t.digest);
    if let Some(tag) = &t.tag {
        assert!(valid_tag(tag), "{tag:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_BODY_BYTES {
        return; // the handler refuses larger bodies before parsing
    }
    let Ok(actions) = parse(data) else {
        return;
    };
    for a in &actions {
        let _ = a.kind().label();
        match a {
            Action::Scan { targets, .. } => {
                assert!(!targets.is_empty());
                targets.iter().for_each(check);
            }
            Action::Inspect { target, .. } => check(target),
            Action::Ignore { .. } => {}
        }
    }
});
