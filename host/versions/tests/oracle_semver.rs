//! SemVer precedence against npm's own `semver` package (run by node), on the crates.io
//! versions of the RustSec advisories (testdata/semver.txt) and on generated versions; and
//! the Go form on the Go vulnerability database's versions (testdata/go.txt).

mod common;

use bulkhead_versions::semver::{GoVersion, SemVer};
use common::{Mismatches, Rng, lines, pipe_oracle, require_tool, sample_pairs, sign};

/// Where npm's semver can be found: Debian's node-semver, or the copy bundled with npm.
const NODE_PATH: &str =
    "/usr/share/nodejs:/usr/lib/node_modules/npm/node_modules:/usr/lib/node_modules";

/// "C<TAB>a<TAB>b" → -1/0/1 (semver.compare, which ignores build metadata) or "invalid";
/// "P<TAB>v" → "valid"/"invalid" (strict parsing, as the registry does).
const ORACLE: &str = r#"
const semver = require('semver');
const lines = require('fs').readFileSync(0, 'utf8').split('\n');
const out = [];
for (const line of lines) {
  if (line === '') continue;
  const f = line.split('\t');
  if (f[0] === 'P') { out.push(semver.valid(f[1]) ? 'valid' : 'invalid'); continue; }
  if (!semver.valid(f[1]) || !semver.valid(f[2])) { out.push('invalid'); continue; }
  out.push(String(semver.compare(f[1], f[2])));
}
process.stdout.write(out.map(l => l + '\n').join(''));
"#;

fn node_semver() -> bool {
    let ok = std::process::Command::new("node")
        .env("NODE_PATH", NODE_PATH)
        .args(["-e", "require('semver')"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    require_tool(
        "node with npm's semver package",
        "apt-get install -y nodejs node-semver (or npm, which bundles semver)",
        ok,
    )
}

fn ask(requests: &[String]) -> Vec<String> {
    // pipe_oracle cannot set the environment; node reads NODE_PATH, so pass it through sh.
    let script = format!("NODE_PATH={NODE_PATH} exec node -e \"$0\"");
    pipe_oracle("sh", &["-c", &script, ORACLE], requests)
}

fn check_pairs(what: &str, pairs: &[(String, String)]) {
    let requests: Vec<String> = pairs.iter().map(|(a, b)| format!("C\t{a}\t{b}")).collect();
    let answers = ask(&requests);
    let mut bad = Mismatches::default();
    for ((a, b), npm) in pairs.iter().zip(&answers) {
        let ours = match (a.parse::<SemVer>(), b.parse::<SemVer>()) {
            (Ok(x), Ok(y)) => sign(x.cmp(&y)).to_string(),
            _ => "invalid".to_owned(),
        };
        if ours != *npm {
            bad.push(format!("{a:?} vs {b:?}: npm semver {npm}, ours {ours}"));
        }
    }
    bad.check(what, pairs.len());
}

#[test]
fn crates_io_versions_agree_with_npm_semver() {
    if !node_semver() {
        return;
    }
    let versions = lines("semver.txt");
    assert!(
        versions.len() > 500,
        "semver.txt has {} versions",
        versions.len()
    );
    for v in &versions {
        assert!(
            v.parse::<SemVer>().is_ok(),
            "RustSec version {v:?} rejected"
        );
    }
    let pairs = sample_pairs(&versions, 2000, &mut Rng::new(2));
    check_pairs("npm semver, crates.io version pairs", &pairs);
}

/// Versions built from SemVer's parts, pre-release identifiers especially (numeric,
/// alphanumeric, hyphenated, of different counts), with build metadata and an occasional
/// malformation. Numbers stay below 2^53: npm refuses larger ones, the semver crate does not
/// (a documented difference).
fn random_version(rng: &mut Rng) -> String {
    let num = |rng: &mut Rng| rng.pick(&["0", "1", "2", "10", "11", "9007199254740991"]);
    let mut v = String::new();
    if rng.chance(10) {
        v.push('v');
    }
    v.push_str(&format!("{}.{}.{}", num(rng), num(rng), num(rng)));
    if rng.chance(60) {
        v.push('-');
        for i in 0..=rng.below(3) {
            if i > 0 {
                v.push('.');
            }
            v.push_str(rng.pick(&[
                "0",
                "1",
                "2",
                "10",
                "alpha",
                "beta",
                "rc",
                "x-y",
                "-",
                "a1",
                "1a",
                "A",
                "Z",
                "20191109021931-daa7c04131f5",
            ]));
        }
    }
    if rng.chance(20) {
        v.push('+');
        v.push_str(rng.pick(&["build.1", "incompatible", "001", "x.y-z"]));
    }
    if rng.chance(5) {
        let at = rng.below(v.len() + 1);
        v.insert_str(at, rng.pick(&["..", "01", "-", "+", "_", "v"]));
    }
    v
}

#[test]
fn generated_versions_agree_with_npm_semver() {
    if !node_semver() {
        return;
    }
    let mut rng = Rng::new(11);
    // A malformation can lengthen 9007199254740991 past 2^53; such versions are left out.
    let versions: Vec<String> = (0..3000)
        .map(|_| random_version(&mut rng))
        .filter(|v| {
            v.split(|c: char| !c.is_ascii_digit())
                .all(|n| n.len() <= 16)
        })
        .collect();
    let requests: Vec<String> = versions.iter().map(|v| format!("P\t{v}")).collect();
    let answers = ask(&requests);
    let mut bad = Mismatches::default();
    for (v, npm) in versions.iter().zip(&answers) {
        let ours = if v.parse::<SemVer>().is_ok() {
            "valid"
        } else {
            "invalid"
        };
        if ours != npm {
            bad.push(format!("{v:?}: npm semver {npm}, ours {ours}"));
        }
    }
    bad.check("npm semver, generated version syntax", versions.len());
    let valid: Vec<String> = versions
        .into_iter()
        .filter(|v| v.parse::<SemVer>().is_ok())
        .collect();
    let pairs = sample_pairs(&valid, 3000, &mut rng);
    check_pairs("npm semver, generated version pairs", &pairs);
}

/// Every version of the Go vulnerability database is accepted, and each pseudo-version sorts
/// where the Go module reference says its form places it: `vX.Y.(Z+1)-0.T-H` after
/// `vX.Y.Z` and before `vX.Y.(Z+1)`; `vX.Y.Z-pre.0.T-H` after `vX.Y.Z-pre` and before
/// `vX.Y.Z`; `vX.0.0-T-H` before `vX.0.0`.
#[test]
fn go_vulndb_versions_and_pseudo_versions() {
    let versions = lines("go.txt");
    assert!(
        versions.len() > 1000,
        "go.txt has {} versions",
        versions.len()
    );
    let go = |s: &str| -> GoVersion {
        s.parse()
            .unwrap_or_else(|e| panic!("Go version {s:?} rejected: {e}"))
    };
    let mut pseudo = 0;
    for v in &versions {
        let parsed = go(v);
        assert_eq!(
            parsed,
            go(&format!("v{v}")),
            "{v}: the v prefix changes nothing"
        );
        if !parsed.is_pseudo() {
            continue;
        }
        pseudo += 1;
        let sv = parsed.version();
        let (x, y, z) = (sv.major, sv.minor, sv.patch);
        let pre = sv.pre.as_str();
        let release = go(&format!("{x}.{y}.{z}"));
        assert!(parsed < release, "{v} must sort before {x}.{y}.{z}");
        if let Some(base_pre) = pre.rsplit_once(".0.").map(|(p, _)| p) {
            // vX.Y.Z-pre.0.T-H: after vX.Y.Z-pre.
            let base = go(&format!("{x}.{y}.{z}-{base_pre}"));
            assert!(base < parsed, "{v} must sort after {base}");
        } else if pre.starts_with("0.") && z > 0 {
            // vX.Y.(Z+1)-0.T-H: after vX.Y.Z.
            let base = go(&format!("{x}.{y}.{}", z - 1));
            assert!(base < parsed, "{v} must sort after {base}");
        }
    }
    assert!(pseudo > 50, "only {pseudo} pseudo-versions in go.txt");
}
