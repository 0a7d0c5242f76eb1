//! apk-tools itself as an oracle: the Alpine minirootfs tarballs of the repository
//! (`tests/fixtures/images/`) ship `/sbin/apk`, which runs under `chroot` (so this needs
//! root, `tar` and an x86_64 machine; [`ApkTools::open`] says `None` otherwise).

use std::collections::BTreeSet;
use std::process::Command;

/// Answers `<`, `=`, `>` (or `?` when apk prints nothing) per "a<TAB>b" line. apk-tools
/// compares two versions per run; `--` keeps a version starting with `-` an operand.
const COMPARE: &str = r#"
while IFS='	' read -r a b; do
  r=$(/sbin/apk version -t -- "$a" "$b" 2>/dev/null)
  echo "${r:-?}"
done
"#;

/// An extracted minirootfs whose apk-tools runs under chroot.
pub struct ApkTools {
    dir: tempfile::TempDir,
    /// apk-tools' version (`2.14.4`).
    pub version: String,
}

impl ApkTools {
    /// Extracts `tarball` (a file of `tests/fixtures/images/`) and checks that its apk
    /// runs; `None` when this machine cannot (not root, no chroot, not x86_64).
    pub fn open(tarball: &str) -> Option<ApkTools> {
        let path = crate::fixture(&format!("images/{tarball}"));
        let dir = tempfile::tempdir().expect("temporary directory");
        let untar = Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(dir.path())
            .output()
            .ok()?;
        if !untar.status.success() {
            eprintln!("tar: {}", String::from_utf8_lossy(&untar.stderr));
            return None;
        }
        let out = Command::new("chroot")
            .arg(dir.path())
            .args(["/sbin/apk", "--version"])
            .output()
            .ok()?;
        // "apk-tools 2.14.4, compiled for x86_64."
        let version = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)?
            .trim_end_matches(',')
            .to_owned();
        out.status.success().then_some(ApkTools { dir, version })
    }

    /// The skip policy's check ([`crate::require`]): whether apk-tools could be opened.
    pub fn required(apk: &Option<ApkTools>) -> bool {
        crate::require(
            apk.is_some(),
            "apk-tools of the Alpine minirootfs cannot run here: it needs root (chroot), \
             tar and an x86_64 machine",
        )
    }

    fn root(&self) -> &str {
        self.dir.path().to_str().expect("temporary paths are UTF-8")
    }

    /// apk-tools' answer (`<`, `=`, `>`, `?`) for each pair, from two shells in parallel.
    pub fn compare(&self, pairs: &[(String, String)]) -> Vec<String> {
        let requests: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}\t{b}")).collect();
        let (first, second) = requests.split_at(requests.len() / 2);
        let args = [self.root(), "/bin/sh", "-c", COMPARE];
        std::thread::scope(|s| {
            let a = s.spawn(|| crate::pipe_oracle("chroot", &args, first));
            let b = crate::pipe_oracle("chroot", &args, second);
            let mut all = a.join().expect("oracle thread");
            all.extend(b);
            all
        })
    }

    /// The versions `apk version -c` calls invalid (it prints them; its exit status is
    /// their count).
    pub fn invalid(&self, versions: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for chunk in versions.chunks(500) {
            let run = Command::new("chroot")
                .args([self.root(), "/sbin/apk", "version", "-c", "--"])
                .args(chunk)
                .output()
                .expect("running apk version -c");
            out.extend(
                String::from_utf8(run.stdout)
                    .expect("apk prints UTF-8")
                    .lines()
                    .map(str::to_owned),
            );
        }
        out
    }
}

/// The packages of an apk installed database (`lib/apk/db/installed`) as (name, version,
/// origin) from its `P:`, `V:` and `o:` lines, in database order; the origin is the name
/// when `o:` is absent. A plain reading of the text, independent of the analyzer.
pub fn installed_packages(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_owned)
        };
        if let (Some(name), Some(version)) = (field("P:"), field("V:")) {
            let origin = field("o:").unwrap_or_else(|| name.clone());
            out.push((name, version, origin));
        }
    }
    out
}
