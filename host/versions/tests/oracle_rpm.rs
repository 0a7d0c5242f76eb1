//! RPM ordering against rpm itself (python3-rpm's `labelCompare` and `rpm.ver`, which parse
//! and compare with librpm's own code), on pairs of real EVRs (testdata/rpm.txt: AlmaLinux
//! errata and rpm databases) and on generated version strings full of `~`, `^`, leading
//! zeros and mixed segments.

mod common;

use std::cmp::Ordering;

use bulkhead_versions::rpm::{RpmVersion, rpmvercmp};
use common::{
    Mismatches, Rng, debian_python, lines, python_oracle, require_tool, runs, sample_pairs, sign,
};

/// "L<TAB>a<TAB>b": parse both EVR strings with rpm.ver and labelCompare them.
/// "V<TAB>x<TAB>y": rpmvercmp on two bare strings (labelCompare with equal epoch and release).
/// Prints -1, 0 or 1 per line.
const ORACLE: &str = r#"
import sys, rpm
for line in sys.stdin:
    kind, a, b = line.rstrip("\n").split("\t")
    if kind == "L":
        x, y = rpm.ver(a), rpm.ver(b)
        r = rpm.labelCompare((x.e, x.v, x.r), (y.e, y.v, y.r))
    else:
        r = rpm.labelCompare(("0", a, "1"), ("0", b, "1"))
    print(r)
"#;

fn rpm_python() -> Option<&'static str> {
    let python = debian_python();
    let ok = require_tool(
        "python3-rpm (rpm's Python bindings)",
        "apt-get install -y python3-rpm",
        runs(python, &["-c", "import rpm; rpm.labelCompare"]),
    );
    ok.then_some(python)
}

fn check(
    what: &str,
    kind: &str,
    pairs: &[(String, String)],
    ours: impl Fn(&str, &str) -> Ordering,
) {
    let python = match rpm_python() {
        Some(p) => p,
        None => return,
    };
    let requests: Vec<String> = pairs
        .iter()
        .map(|(a, b)| format!("{kind}\t{a}\t{b}"))
        .collect();
    let answers = python_oracle(python, ORACLE, &requests);
    let mut bad = Mismatches::default();
    for ((a, b), rpm) in pairs.iter().zip(&answers) {
        let ours = sign(ours(a, b)).to_string();
        if ours != *rpm {
            bad.push(format!("{a:?} vs {b:?}: rpm {rpm}, ours {ours}"));
        }
    }
    bad.check(what, pairs.len());
}

fn parse(s: &str) -> RpmVersion {
    s.parse()
        .unwrap_or_else(|e| panic!("real EVR {s:?} rejected: {e}"))
}

#[test]
fn real_evrs_agree_with_rpm() {
    let versions = lines("rpm.txt");
    assert!(
        versions.len() > 1000,
        "rpm.txt has {} versions",
        versions.len()
    );
    // Every real EVR has a release, so rpm's "missing release matches anything" rule (which
    // a total order cannot follow, see the rpm module) never comes into play here.
    for v in &versions {
        assert!(parse(v).release().is_some(), "{v:?} has no release");
    }
    let pairs = sample_pairs(&versions, 2000, &mut Rng::new(4180));
    check("rpm labelCompare, real EVR pairs", "L", &pairs, |a, b| {
        parse(a).cmp(&parse(b))
    });
}

/// Pieces of version strings: digit runs with leading zeros, letters of both cases,
/// separators rpm skips (including ones rpmbuild would refuse, which rpmvercmp still
/// compares), `~` and `^`.
const PIECES: &[&str] = &[
    "0",
    "1",
    "2",
    "9",
    "10",
    "00",
    "01",
    "0010",
    "99999999999999999999999",
    ".",
    ".",
    "_",
    "+",
    "%",
    "~",
    "~",
    "^",
    "^",
    "a",
    "b",
    "Z",
    "A",
    "rc",
    "git",
    "el",
    "fc",
    "pre",
    "~rc",
    "^git",
];

fn random_string(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..=rng.below(6) {
        s.push_str(rng.pick(PIECES));
    }
    s
}

/// `s` with its tail replaced, so the two share a prefix.
fn sibling(rng: &mut Rng, s: &str) -> String {
    let cut = rng.below(s.len() + 1);
    let mut t = s[..cut].to_owned();
    for _ in 0..rng.below(4) {
        t.push_str(rng.pick(PIECES));
    }
    t
}

#[test]
fn generated_strings_agree_with_rpmvercmp() {
    let mut rng = Rng::new(0x5e9);
    let mut pairs = Vec::new();
    for _ in 0..20_000 {
        let a = random_string(&mut rng);
        let b = if rng.chance(70) {
            sibling(&mut rng, &a)
        } else {
            random_string(&mut rng)
        };
        // rpm refuses an empty version ("invalid version").
        if !b.is_empty() {
            pairs.push((a, b));
        }
    }
    // Identical strings and separator-only strings too.
    pairs.push(("1.0".into(), "1.0".into()));
    pairs.push(("..".into(), "_".into()));
    pairs.push(("~".into(), ".".into()));
    pairs.push(("^".into(), "+".into()));
    check("rpmvercmp, generated strings", "V", &pairs, rpmvercmp);
}

#[test]
fn generated_evrs_agree_with_rpm() {
    let mut rng = Rng::new(77);
    let mut pairs = Vec::new();
    while pairs.len() < 2000 {
        let evr = |rng: &mut Rng, v: &str, r: &str| {
            let epoch = rng.pick(&["", "", "", "0:", "1:", "2:", "10:"]);
            format!("{epoch}{v}-{r}")
        };
        let (v1, r1) = (random_string(&mut rng), random_string(&mut rng));
        let (v2, r2) = if rng.chance(50) {
            (v1.clone(), sibling(&mut rng, &r1))
        } else {
            (sibling(&mut rng, &v1), random_string(&mut rng))
        };
        let (a, b) = (evr(&mut rng, &v1, &r1), evr(&mut rng, &v2, &r2));
        if a.parse::<RpmVersion>().is_ok() && b.parse::<RpmVersion>().is_ok() {
            pairs.push((a, b));
        }
    }
    check("rpm labelCompare, generated EVRs", "L", &pairs, |a, b| {
        parse(a).cmp(&parse(b))
    });
}
