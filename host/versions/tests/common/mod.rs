//! Shared by the oracle tests: the version lists in testdata/, deterministic pair sampling,
//! and finding the reference tools.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

pub mod apk_fixtures;

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// The non-empty lines of a testdata file.
pub fn lines(name: &str) -> Vec<String> {
    let path = testdata(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A small deterministic generator (SplitMix64), so a failure reproduces exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` for test sampling (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Pairs drawn from real versions: every neighbour in string order (mostly one package's
/// successive versions, which share long prefixes and are the hard cases), neighbours two
/// apart, and `random` uniformly random pairs.
pub fn sample_pairs(versions: &[String], random: usize, rng: &mut Rng) -> Vec<(String, String)> {
    let mut sorted = versions.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut pairs = Vec::new();
    for w in sorted.windows(2) {
        pairs.push((w[0].clone(), w[1].clone()));
    }
    for w in sorted.windows(3).step_by(2) {
        pairs.push((w[2].clone(), w[0].clone()));
    }
    for _ in 0..random {
        pairs.push((rng.pick(&sorted), rng.pick(&sorted)));
    }
    pairs
}

/// Whether a reference tool can be used; else the test skips, through the workspace's skip
/// policy ([`bulkhead_test_artifacts::skip`]): a printed reason outside CI, a failure with
/// `CI` set, because the oracle comparison is the point of these tests.
pub fn require_tool(tool: &str, install_hint: &str, available: bool) -> bool {
    bulkhead_test_artifacts::require(
        available,
        format_args!("{tool} is not available ({install_hint})"),
    )
}

/// Whether `program args…` runs and exits 0.
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Debian's own python3, where python3-rpm and python3-packaging install.
pub fn debian_python() -> &'static str {
    bulkhead_test_artifacts::debian_python()
}

/// Runs a Python script that reads one request per stdin line and answers one line each,
/// feeding all requests through one process (one interpreter start for thousands of pairs).
pub fn python_oracle(python: &str, script: &str, requests: &[String]) -> Vec<String> {
    pipe_oracle(python, &["-c", script], requests)
}

/// Feeds `requests` to one oracle process, one answer per line (shared with the e2e
/// tests).
pub use bulkhead_test_artifacts::pipe_oracle;

pub fn sign(o: std::cmp::Ordering) -> i32 {
    o as i32
}

/// Collects mismatches and fails with the first ones listed.
#[derive(Default)]
pub struct Mismatches(Vec<String>);

impl Mismatches {
    pub fn push(&mut self, m: String) {
        self.0.push(m);
    }

    pub fn check(self, what: &str, total: usize) {
        let shown: Vec<&String> = self.0.iter().take(40).collect();
        assert!(
            self.0.is_empty(),
            "{what}: {} of {total} disagree with the reference:\n{}",
            self.0.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        eprintln!("{what}: {total} checked, all agree with the reference");
    }
}
