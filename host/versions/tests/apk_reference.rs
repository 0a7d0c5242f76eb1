//! apk ordering and syntax against what apk-tools itself says, recorded (the live test is
//! oracle_apk.rs, which needs root for `chroot`):
//! - apk-tools' own test data (testdata/apk-tools-version.data, copied from apk-tools 3; its
//!   first 733 lines are apk-tools 2.14's test data);
//! - apk-oracle.tsv / apk-oracle-valid.tsv: `apk version -t` / `apk version -c` answers of
//!   the real apk-tools 3.0.6 and 2.14 binaries for pairs of real Alpine versions
//!   (testdata/apk.txt) and generated ones, recorded by testdata/apk-oracle.py;
//! - apk-fixtures-oracle.tsv / apk-fixtures-valid.tsv: the answers of apk-tools 2.14.4 (the
//!   `apk` of the Alpine 3.20 minirootfs) for every version of the apk databases and secdb
//!   feeds in the fixtures and of corrupted variants, recorded by oracle_apk.rs.

mod common;

use bulkhead_versions::apk::{ApkVersion, Syntax};
use common::{Mismatches, lines};

fn parse(v: &str) -> ApkVersion {
    v.parse()
        .unwrap_or_else(|e| panic!("{v:?} must be orderable: {e}"))
}

fn order(a: &str, b: &str) -> &'static str {
    match parse(a).cmp(&parse(b)) {
        std::cmp::Ordering::Less => "<",
        std::cmp::Ordering::Equal => "=",
        std::cmp::Ordering::Greater => ">",
    }
}

/// Whether apk-tools 3 accepts `v` (`apk version -c`).
fn apk3_valid(v: &str) -> bool {
    matches!(parse(v).syntax(), Syntax::Valid | Syntax::Apk3Only)
}

/// The documented corner where apk-tools 3 orders differently from apk-tools 2 (and so
/// from this crate) on versions both accept: a `.`-component with a leading zero.
fn zero_component(v: &str) -> bool {
    v.split('.')
        .skip(1)
        .any(|c| c.starts_with('0') && c.as_bytes().get(1).is_some_and(u8::is_ascii_digit))
}

/// apk-tools' test/unit/version.data. Its line forms: `a OP b` (OP one of `<`, `=`, `>`,
/// or a fuzzy match `~`, `<~`, `>~`, `!~` that this crate does not implement), `v` (valid)
/// and `!v` (invalid); `#` starts a comment. Lines 1-733 are apk-tools 2.14's test data
/// (the ordering this crate implements, so all must agree); the rest is apk-tools 3's,
/// which agrees except on `.`-components with leading zeros (see the apk module).
#[test]
fn apk_tools_test_data() {
    const APK2_LINES: usize = 733;
    let text = std::fs::read_to_string(common::testdata("apk-tools-version.data"))
        .expect("reading apk-tools-version.data");
    let mut bad = Mismatches::default();
    let (mut compared, mut validated, mut fuzzy, mut corner) = (0, 0, 0, 0);
    for (n, line) in text.lines().enumerate() {
        let apk3_part = n >= APK2_LINES;
        let line = line.split('#').next().unwrap_or("").trim();
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [] => {}
            [a, op, b] if ["<", "=", ">"].contains(op) => {
                compared += 1;
                let ours = order(a, b);
                if ours == *op {
                    continue;
                }
                if apk3_part && (zero_component(a) || zero_component(b)) {
                    corner += 1;
                    continue;
                }
                bad.push(format!("line {}: {a} {op} {b}: ours {ours}", n + 1));
            }
            [_, _, _] => fuzzy += 1,
            [v] => {
                assert!(apk3_part, "validity line in apk-tools 2's part: {v}");
                validated += 1;
                let (v, valid) = match v.strip_prefix('!') {
                    Some(v) => (v, false),
                    None => (*v, true),
                };
                // `!` alone is the empty version, which this crate refuses outright.
                if v.is_empty() {
                    assert!(v.parse::<ApkVersion>().is_err());
                    continue;
                }
                if apk3_valid(v) != valid {
                    bad.push(format!(
                        "{v:?}: apk-tools 3 says valid={valid}, ours {:?}",
                        parse(v).syntax()
                    ));
                }
            }
            other => panic!("unexpected line in version.data: {other:?}"),
        }
    }
    assert!(compared > 700 && validated > 30, "{compared} {validated}");
    // 8.2.0 < 8.2.001 and 8.2.0015 < 8.2.002: apk-tools 2 says > for both.
    assert_eq!(corner, 2, "apk-tools 3 lines in the leading-zero corner");
    eprintln!("({fuzzy} fuzzy-match lines not applicable)");
    bad.check("apk-tools test data", compared + validated);
}

/// apk-oracle.tsv: columns a, apk-tools 3.0.6's answer, b, apk-tools 2.14's answer. Every
/// row must agree with apk-tools 2, except rows with a version only apk-tools 3 accepts
/// (`~hash`), which this crate reads as apk-tools 3 does; and with apk-tools 3 wherever
/// the documented leading-zero corner is absent.
#[test]
fn recorded_apk_answers() {
    let mut bad = Mismatches::default();
    let rows = lines("apk-oracle.tsv");
    assert!(rows.len() > 4000, "{} rows", rows.len());
    let (mut apk2_compared, mut apk3_compared) = (0, 0);
    for row in &rows {
        let f: Vec<&str> = row.split('\t').collect();
        let [a, apk3, b, apk2] = f.as_slice() else {
            panic!("bad row {row:?}");
        };
        let ours = order(a, b);
        let apk3_only = [a, b].iter().any(|v| parse(v).syntax() == Syntax::Apk3Only);
        if !apk3_only {
            apk2_compared += 1;
            if ours != *apk2 {
                bad.push(format!("{a} vs {b}: apk 2 {apk2}, ours {ours}"));
            }
        }
        if !zero_component(a) && !zero_component(b) {
            apk3_compared += 1;
            if ours != *apk3 {
                bad.push(format!("{a} vs {b}: apk 3 {apk3}, ours {ours}"));
            }
        }
    }
    assert!(
        apk2_compared > 4000 && apk3_compared > 3000,
        "{apk2_compared} {apk3_compared}"
    );
    eprintln!("compared with apk-tools 2: {apk2_compared}, with apk-tools 3: {apk3_compared}");
    bad.check("recorded apk-tools orderings", rows.len());
}

/// apk-oracle-valid.tsv: `apk version -c` of apk-tools 3.0.6 on real and corrupted versions.
#[test]
fn recorded_apk_syntax() {
    let mut bad = Mismatches::default();
    let rows = lines("apk-oracle-valid.tsv");
    let real = lines("apk.txt");
    for row in &rows {
        let (v, apk) = row
            .split_once('\t')
            .unwrap_or_else(|| panic!("bad row {row:?}"));
        if apk3_valid(v) != (apk == "valid") {
            bad.push(format!(
                "{v:?}: apk 3 says {apk}, ours {:?}",
                parse(v).syntax()
            ));
        }
    }
    // Every real version was judged by apk.
    for v in &real {
        assert!(
            rows.iter().any(|r| r.split('\t').next() == Some(v)),
            "{v} not recorded"
        );
    }
    bad.check("recorded apk-tools 3 syntax", rows.len());
}

/// apk-fixtures-oracle.tsv: columns a, apk-tools 2.14.4's `apk version -t` answer, b, for
/// every pair oracle_apk.rs compares (real fixture versions and corrupted ones).
#[test]
fn recorded_fixture_answers() {
    let mut bad = Mismatches::default();
    let rows = lines("apk-fixtures-oracle.tsv");
    assert!(rows.len() > 10_000, "{} rows", rows.len());
    for row in &rows {
        let f: Vec<&str> = row.split('\t').collect();
        let [a, apk2, b] = f.as_slice() else {
            panic!("bad row {row:?}");
        };
        let ours = order(a, b);
        if ours != *apk2 {
            bad.push(format!("{a} vs {b}: apk-tools 2.14.4 {apk2}, ours {ours}"));
        }
    }
    bad.check(
        "recorded apk-tools 2.14.4 orderings of fixture versions",
        rows.len(),
    );
}

/// apk-fixtures-valid.tsv: `apk version -c` of apk-tools 2.14.4 on every version of the
/// fixtures and the corrupted ones; and every version the fixtures hold now was recorded.
#[test]
fn recorded_fixture_syntax() {
    let mut bad = Mismatches::default();
    let rows = lines("apk-fixtures-valid.tsv");
    let mut recorded = std::collections::BTreeSet::new();
    for row in &rows {
        let (v, apk) = row
            .split_once('\t')
            .unwrap_or_else(|| panic!("bad row {row:?}"));
        recorded.insert(v);
        let syntax = parse(v).syntax();
        if matches!(syntax, Syntax::Valid | Syntax::Apk2Only) != (apk == "valid") {
            bad.push(format!(
                "{v:?}: apk-tools 2.14.4 says {apk}, ours {syntax:?}"
            ));
        }
    }
    let fixtures = common::apk_fixtures::collect();
    let missing: Vec<String> = fixtures
        .versions()
        .into_iter()
        .filter(|v| !recorded.contains(v.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "fixture versions not in apk-fixtures-valid.tsv (re-record as root: \
         BULKHEAD_RECORD_APK_ORACLE=1 cargo test -p bulkhead-versions --test oracle_apk): {missing:?}"
    );
    bad.check(
        "recorded apk-tools 2.14.4 syntax of fixture versions",
        rows.len(),
    );
}
