//! PEP 440 ordering and syntax against `packaging.version.Version` (what pip uses), on
//! pairs of real PyPI versions (testdata/pep440.txt, from the PyPA advisories) and on
//! generated versions mixing every PEP 440 part and its alternative spellings.

mod common;

use bulkhead_versions::pep440::Pep440Version;
use common::{
    Mismatches, Rng, debian_python, lines, python_oracle, require_tool, runs, sample_pairs, sign,
};

/// "C<TAB>a<TAB>b" → -1/0/1, or "invalid" if either is not a version;
/// "P<TAB>v" → "valid"/"invalid".
const ORACLE: &str = r#"
import sys
from packaging.version import Version, InvalidVersion
def parse(s):
    try:
        return Version(s)
    except InvalidVersion:
        return None
for line in sys.stdin:
    parts = line.rstrip("\n").split("\t")
    if parts[0] == "P":
        print("valid" if parse(parts[1]) is not None else "invalid")
        continue
    a, b = parse(parts[1]), parse(parts[2])
    if a is None or b is None:
        print("invalid")
    else:
        print((a > b) - (a < b))
"#;

/// `$PACKAGING_PYTHON` if set (to check another `packaging` release), else Debian's python3
/// with python3-packaging, else any python3 on PATH with `packaging`.
fn packaging_python() -> Option<String> {
    let probe = ["-c", "import packaging.version"];
    let candidates = match std::env::var("PACKAGING_PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec![debian_python().to_owned(), "python3".to_owned()],
    };
    let found = candidates.into_iter().find(|p| runs(p, &probe));
    require_tool(
        "Python's packaging library",
        "apt-get install -y python3-packaging",
        found.is_some(),
    )
    .then_some(found)
    .flatten()
}

fn check_pairs(what: &str, python: &str, pairs: &[(String, String)]) {
    let requests: Vec<String> = pairs.iter().map(|(a, b)| format!("C\t{a}\t{b}")).collect();
    let answers = python_oracle(python, ORACLE, &requests);
    let mut bad = Mismatches::default();
    for ((a, b), packaging) in pairs.iter().zip(&answers) {
        let ours = match (a.parse::<Pep440Version>(), b.parse::<Pep440Version>()) {
            (Ok(x), Ok(y)) => sign(x.cmp(&y)).to_string(),
            _ => "invalid".to_owned(),
        };
        if ours != *packaging {
            bad.push(format!(
                "{a:?} vs {b:?}: packaging {packaging}, ours {ours}"
            ));
        }
    }
    bad.check(what, pairs.len());
}

fn check_syntax(what: &str, python: &str, versions: &[String]) {
    let requests: Vec<String> = versions.iter().map(|v| format!("P\t{v}")).collect();
    let answers = python_oracle(python, ORACLE, &requests);
    let mut bad = Mismatches::default();
    for (v, packaging) in versions.iter().zip(&answers) {
        let ours = match v.parse::<Pep440Version>() {
            Ok(_) => "valid",
            Err(_) => "invalid",
        };
        if ours != packaging {
            bad.push(format!("{v:?}: packaging {packaging}, ours {ours}"));
        }
    }
    bad.check(what, versions.len());
}

#[test]
fn real_versions_agree_with_packaging() {
    let Some(python) = packaging_python() else {
        return;
    };
    let python = python.as_str();
    let versions = lines("pep440.txt");
    assert!(
        versions.len() > 1000,
        "pep440.txt has {} versions",
        versions.len()
    );
    check_syntax("packaging, real version syntax", python, &versions);
    let valid: Vec<String> = versions
        .into_iter()
        .filter(|v| v.parse::<Pep440Version>().is_ok())
        .collect();
    let pairs = sample_pairs(&valid, 2000, &mut Rng::new(440));
    check_pairs("packaging, real version pairs", python, &pairs);
}

/// A version assembled from PEP 440's parts in their various spellings, sometimes with a
/// part out of place or misspelt so that the syntax check sees invalid input too.
fn random_version(rng: &mut Rng) -> String {
    let mut v = String::new();
    if rng.chance(10) {
        v.push_str(rng.pick(&["v", "V"]));
    }
    if rng.chance(15) {
        v.push_str(rng.pick(&["0!", "1!", "2!", "01!"]));
    }
    v.push_str(rng.pick(&["0", "1", "2", "10", "01", "2024"]));
    for _ in 0..rng.below(4) {
        v.push('.');
        v.push_str(rng.pick(&["0", "0", "1", "2", "10", "00", "05"]));
    }
    if rng.chance(40) {
        v.push_str(rng.pick(&[
            "a", "b", "rc", "c", "alpha", "beta", "pre", "preview", ".a", "-b", "_rc", "A", "RC",
        ]));
        if rng.chance(80) {
            v.push_str(rng.pick(&["0", "1", "2", "10", "01"]));
        }
    }
    if rng.chance(30) {
        v.push_str(rng.pick(&[".post", "post", "-post", "_post", ".rev", ".r", "-"]));
        v.push_str(rng.pick(&["", "0", "1", "2", "10"]));
    }
    if rng.chance(30) {
        v.push_str(rng.pick(&[".dev", "dev", "-dev", "_dev", ".DEV"]));
        v.push_str(rng.pick(&["", "0", "1", "2", "10"]));
    }
    if rng.chance(20) {
        v.push('+');
        for i in 0..=rng.below(3) {
            if i > 0 {
                v.push_str(rng.pick(&[".", "-", "_"]));
            }
            v.push_str(rng.pick(&["1", "2", "10", "01", "abc", "ubuntu", "cpu", "Z", "a1"]));
        }
    }
    if rng.chance(5) {
        let at = rng.below(v.len() + 1);
        v.insert_str(at, rng.pick(&["..", "+", "!", "x", "-", "_"]));
    }
    v
}

#[test]
fn generated_versions_agree_with_packaging() {
    let Some(python) = packaging_python() else {
        return;
    };
    let python = python.as_str();
    let mut rng = Rng::new(0x0440);
    let versions: Vec<String> = (0..4000).map(|_| random_version(&mut rng)).collect();
    check_syntax("packaging, generated version syntax", python, &versions);
    let valid: Vec<String> = versions
        .iter()
        .filter(|v| v.parse::<Pep440Version>().is_ok())
        .cloned()
        .collect();
    let mut pairs = sample_pairs(&valid, 3000, &mut rng);
    pairs.truncate(8000);
    check_pairs("packaging, generated version pairs", python, &pairs);
}
