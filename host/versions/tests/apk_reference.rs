//! apk ordering and syntax. Debian has no apk-tools package, so there is no live oracle;
//! these tests use what apk-tools itself says, recorded:
//! - apk-tools' own test data (testdata/apk-tools-version.data, copied from apk-tools);
//! - apk-oracle.tsv / apk-oracle-valid.tsv: `apk version -t` / `apk version -c` answers of
//!   the real apk-tools 3.0.6 and 2.14 binaries for pairs of real Alpine versions
//!   (testdata/apk.txt) and generated ones, recorded by testdata/apk-oracle.py.

mod common;

use bulkhead_versions::apk::ApkVersion;
use common::{Mismatches, lines};

fn order(a: &str, b: &str) -> Result<&'static str, String> {
    let x: ApkVersion = a.parse().map_err(|e| format!("{e}"))?;
    let y: ApkVersion = b.parse().map_err(|e| format!("{e}"))?;
    Ok(match x.cmp(&y) {
        std::cmp::Ordering::Less => "<",
        std::cmp::Ordering::Equal => "=",
        std::cmp::Ordering::Greater => ">",
    })
}

/// apk-tools' test/unit/version.data. Its line forms: `a OP b` (OP one of `<`, `=`, `>`,
/// or a fuzzy match `~`, `<~`, `>~`, `!~` that this crate does not implement), `v` (valid)
/// and `!v` (invalid); `#` starts a comment.
#[test]
fn apk_tools_test_data() {
    let mut bad = Mismatches::default();
    let (mut compared, mut validated, mut fuzzy) = (0, 0, 0);
    for line in lines("apk-tools-version.data") {
        let line = line.split('#').next().unwrap_or("").trim();
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [] => {}
            [a, op, b] if ["<", "=", ">"].contains(op) => {
                compared += 1;
                match order(a, b) {
                    Ok(ours) if ours == *op => {}
                    Ok(ours) => bad.push(format!("{a} {op} {b}: ours {ours}")),
                    // The first lines of the file compare "23_foo" and "1.0bc", strings the
                    // same file declares invalid ("!0.1_foobar", "!0.1bc") and apk 3 refuses
                    // to validate; refusing them is right.
                    Err(_) if ["23_foo", "1.0bc"].iter().any(|v| [a, b].contains(&v)) => {}
                    Err(e) => bad.push(format!("{a} {op} {b}: {e}")),
                }
            }
            [_, _, _] => fuzzy += 1,
            [v] => {
                validated += 1;
                let (v, valid) = match v.strip_prefix('!') {
                    Some(v) => (v, false),
                    None => (*v, true),
                };
                let ours = v.parse::<ApkVersion>();
                if ours.is_ok() != valid {
                    bad.push(format!(
                        "{v:?}: apk-tools says valid={valid}, ours {ours:?}"
                    ));
                }
            }
            other => panic!("unexpected line in version.data: {other:?}"),
        }
    }
    assert!(compared > 700 && validated > 30, "{compared} {validated}");
    eprintln!("({fuzzy} fuzzy-match lines not applicable)");
    bad.check("apk-tools test data", compared + validated);
}

/// Whether a version uses one of the three things apk-tools 2 orders differently from
/// apk-tools 3 (see the apk module): a `.`-component with a leading zero, a number of more
/// than 18 digits, or a `~hash`.
fn apk2_differs(v: &str) -> bool {
    let zero_component = v
        .split('.')
        .skip(1)
        .any(|c| c.starts_with('0') && c.as_bytes().get(1).is_some_and(u8::is_ascii_digit));
    let long_number = v
        .split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() > 18);
    zero_component || long_number || v.contains('~')
}

#[test]
fn recorded_apk_answers() {
    let mut bad = Mismatches::default();
    let rows = lines("apk-oracle.tsv");
    assert!(rows.len() > 4000, "{} rows", rows.len());
    let mut apk2_compared = 0;
    for row in &rows {
        let f: Vec<&str> = row.split('\t').collect();
        let [a, apk3, b, apk2] = f.as_slice() else {
            panic!("bad row {row:?}");
        };
        match order(a, b) {
            Ok(ours) => {
                if ours != *apk3 {
                    bad.push(format!("{a} vs {b}: apk 3 {apk3}, ours {ours}"));
                }
                // The documented claim that apk 2 agrees except for three features.
                if !apk2_differs(a) && !apk2_differs(b) {
                    apk2_compared += 1;
                    if ours != *apk2 {
                        bad.push(format!("{a} vs {b}: apk 2 {apk2}, ours {ours}"));
                    }
                }
            }
            Err(e) => bad.push(format!("{a} vs {b}: apk 3 {apk3}, ours {e}")),
        }
    }
    assert!(apk2_compared > 3000, "{apk2_compared}");
    bad.check("recorded apk-tools orderings", rows.len());
}

#[test]
fn recorded_apk_syntax() {
    let mut bad = Mismatches::default();
    let rows = lines("apk-oracle-valid.tsv");
    let real = lines("apk.txt");
    for row in &rows {
        let (v, apk) = row
            .split_once('\t')
            .unwrap_or_else(|| panic!("bad row {row:?}"));
        let ours = v.parse::<ApkVersion>();
        if ours.is_ok() != (apk == "valid") {
            bad.push(format!("{v:?}: apk 3 says {apk}, ours {ours:?}"));
        }
    }
    // Every real version was judged by apk.
    for v in &real {
        assert!(
            rows.iter().any(|r| r.split('\t').next() == Some(v)),
            "{v} not recorded"
        );
    }
    bad.check("recorded apk-tools syntax", rows.len());
}
