//! OS detection on real release files: `testdata/os/<case>/` holds the files of one image,
//! at their paths in the image (origins in `testdata/os/SOURCES.md`).
//!
//! The expected result never comes from our parser. os-release and lsb-release are
//! defined as shell-compatible assignments, so `/bin/sh` sourcing the file is the oracle
//! for them; the single-line files (`*-release` of the Red Hat family, `alpine-release`,
//! `debian_version`) have their values written by hand in the table from reading the file.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use bulkhead_analyzer_sdk::OsInfo;
use bulkhead_analyzer_sdk::os::{detect, parse_os_release, requests};

/// The host rejects an `os-info` whose fields are longer than this or hold control
/// characters (`MAX_SHORT` in `host/src/sandbox/v0_1.rs`).
const HOST_MAX_SHORT: usize = 512;

/// Where `detect` must take the OS from, and what the oracle for its values is.
#[derive(Debug, Clone, Copy)]
enum Oracle {
    /// An os-release file, sourced by `sh`: `ID`, `ID_LIKE`, `VERSION_ID`,
    /// `VERSION_CODENAME`, `PRETTY_NAME`.
    OsRelease(&'static str),
    /// An os-release file sourced by `sh`, with a field the file leaves empty filled from the
    /// same distribution's older file in the tree; the filled value is written by hand.
    OsReleaseFilled {
        file: &'static str,
        version_id: Option<&'static str>,
        codename: Option<&'static str>,
    },
    /// `etc/lsb-release`, sourced by `sh`: `DISTRIB_ID` (lower-cased, as os-release ids
    /// are), `DISTRIB_RELEASE`, `DISTRIB_CODENAME`, `DISTRIB_DESCRIPTION`.
    Lsb,
    /// A single-line file; values by hand: `(file, id, version_id, codename, pretty_name)`.
    Hand(
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ),
    /// No OS: `detect` returns `None`.
    Nothing,
}

use Oracle::{Hand, Lsb, Nothing, OsRelease, OsReleaseFilled};

const ETC: &str = "etc/os-release";
const USR: &str = "usr/lib/os-release";

const fn ubuntu_old(codename: &'static str) -> Oracle {
    // Ubuntu before 16.04 has no VERSION_CODENAME in os-release; lsb-release has
    // DISTRIB_CODENAME (the value written here is the file's).
    OsReleaseFilled {
        file: ETC,
        version_id: None,
        codename: Some(codename),
    }
}

/// Every directory under `testdata/os`, with its oracle.
const CASES: &[(&str, Oracle)] = &[
    // trivy pkg/fanal/analyzer/os/release: bare os-release files.
    ("trivy-release-activestate", OsRelease(ETC)),
    ("trivy-release-alma", OsRelease(ETC)),
    ("trivy-release-alpine", OsRelease(ETC)),
    ("trivy-release-azurelinux-3.0", OsRelease(ETC)),
    ("trivy-release-bottlerocket", OsRelease(ETC)),
    ("trivy-release-centos", OsRelease(ETC)),
    ("trivy-release-centos-stream", OsRelease(ETC)),
    ("trivy-release-coreos", OsRelease(ETC)),
    ("trivy-release-echo", OsRelease(ETC)),
    ("trivy-release-fedora", OsRelease(ETC)),
    ("trivy-release-mariner-1.0", OsRelease(ETC)),
    ("trivy-release-mariner-2.0", OsRelease(ETC)),
    ("trivy-release-minimos", OsRelease(ETC)),
    // NAME="Alpine Linux" but no ID: no id, no OS.
    ("trivy-release-no-id", Nothing),
    ("trivy-release-no-version", OsRelease(ETC)),
    ("trivy-release-opensuseleap-15.2.1", OsRelease(ETC)),
    ("trivy-release-opensuseleap-42.3", OsRelease(ETC)),
    ("trivy-release-opensusetumbleweed", OsRelease(ETC)),
    ("trivy-release-oracle", OsRelease(ETC)),
    ("trivy-release-photon", OsRelease(ETC)),
    ("trivy-release-rhel", OsRelease(ETC)),
    ("trivy-release-rocky", OsRelease(ETC)),
    ("trivy-release-slemicro", OsRelease(ETC)),
    ("trivy-release-slemicro-rancher", OsRelease(ETC)),
    ("trivy-release-slemicro6.0", OsRelease(ETC)),
    ("trivy-release-sles", OsRelease(ETC)),
    ("trivy-release-unknown", OsRelease(ETC)),
    // trivy pkg/fanal/analyzer/os/redhatbase.
    (
        "trivy-redhatbase-alma",
        Hand(
            "etc/almalinux-release",
            "almalinux",
            Some("8.4"),
            None,
            Some("AlmaLinux release 8.4 (Electric Cheetah)"),
        ),
    ),
    (
        // The file ends in a space.
        "trivy-redhatbase-centos",
        Hand(
            "etc/centos-release",
            "centos",
            Some("7.6.1810"),
            None,
            Some("CentOS Linux release 7.6.1810 (Core)"),
        ),
    ),
    (
        "trivy-redhatbase-fedora_29",
        Hand(
            "etc/fedora-release",
            "fedora",
            Some("29"),
            None,
            Some("Fedora release 29 (Twenty Nine)"),
        ),
    ),
    (
        "trivy-redhatbase-oracle_7",
        Hand(
            "etc/oracle-release",
            "ol",
            Some("7.6"),
            None,
            Some("Oracle Linux Server release 7.6"),
        ),
    ),
    (
        // Red Hat Linux 6.2 (2000, before RHEL): no better id than the file's.
        "trivy-redhatbase-redhat_6",
        Hand(
            "etc/redhat-release",
            "rhel",
            Some("6.2"),
            None,
            Some("Red Hat Linux release 6.2 (Zoot)"),
        ),
    ),
    (
        "trivy-redhatbase-rocky",
        Hand(
            "etc/rocky-release",
            "rocky",
            Some("8.4"),
            None,
            Some("Rocky Linux release 8.4 (Green Obsidian)"),
        ),
    ),
    // trivy debian, ubuntu, alpine.
    (
        "trivy-debian-9",
        Hand("etc/debian_version", "debian", Some("9"), None, None),
    ),
    (
        // "buster/sid": testing, which has a codename and no number.
        "trivy-debian-sid",
        Hand("etc/debian_version", "debian", None, Some("buster"), None),
    ),
    ("trivy-ubuntu-lsb", Lsb),
    (
        "trivy-alpine-release",
        Hand("etc/alpine-release", "alpine", Some("3.11.6"), None, None),
    ),
    // claircore osrelease (the os-release section of each txtar).
    ("claircore-osrelease-Alpine", OsRelease(ETC)),
    ("claircore-osrelease-Bionic", OsRelease(ETC)),
    ("claircore-osrelease-Buster", OsRelease(ETC)),
    ("claircore-osrelease-DistrolessCorrupt", OsRelease(ETC)),
    ("claircore-osrelease-DistrolessValid", OsRelease(ETC)),
    ("claircore-osrelease-EmptyKey", OsRelease(ETC)),
    ("claircore-osrelease-OpenSUSe", OsRelease(ETC)),
    ("claircore-osrelease-Silverblue", OsRelease(ETC)),
    ("claircore-osrelease-Toolbox", OsRelease(ETC)),
    ("claircore-osrelease-Ubi8", OsRelease(ETC)),
    // Indented lines and a whitespace-only last line.
    ("claircore-osrelease-Vyos", OsRelease(ETC)),
    // claircore debian: Debian 7 to 12, and distroless Debian (os-release only, no dpkg
    // status, PRETTY_NAME="Distroless", no VERSION_CODENAME).
    ("claircore-debian-7", OsRelease(ETC)),
    ("claircore-debian-8", OsRelease(ETC)),
    ("claircore-debian-9", OsRelease(ETC)),
    ("claircore-debian-10", OsRelease(ETC)),
    ("claircore-debian-11", OsRelease(ETC)),
    ("claircore-debian-12", OsRelease(ETC)),
    ("claircore-debian-distroless-9", OsRelease(ETC)),
    ("claircore-debian-distroless-10", OsRelease(ETC)),
    ("claircore-debian-distroless-11", OsRelease(ETC)),
    // claircore ubuntu: 10.04 has only lsb-release; "11" is claircore's Debian 11
    // negative case.
    ("claircore-ubuntu-10.04", Lsb),
    ("claircore-ubuntu-11", OsRelease(ETC)),
    ("claircore-ubuntu-12.04", ubuntu_old("precise")),
    ("claircore-ubuntu-12.10", ubuntu_old("quantal")),
    ("claircore-ubuntu-13.04", ubuntu_old("raring")),
    ("claircore-ubuntu-13.10", ubuntu_old("saucy")),
    ("claircore-ubuntu-14.04", ubuntu_old("trusty")),
    ("claircore-ubuntu-14.10", ubuntu_old("utopic")),
    ("claircore-ubuntu-15.04", ubuntu_old("vivid")),
    ("claircore-ubuntu-15.10", ubuntu_old("wily")),
    ("claircore-ubuntu-16.04", OsRelease(ETC)),
    ("claircore-ubuntu-16.10", OsRelease(ETC)),
    ("claircore-ubuntu-17.04", OsRelease(ETC)),
    ("claircore-ubuntu-17.10", OsRelease(ETC)),
    ("claircore-ubuntu-18.04", OsRelease(ETC)),
    ("claircore-ubuntu-18.10", OsRelease(ETC)),
    ("claircore-ubuntu-19.04", OsRelease(ETC)),
    ("claircore-ubuntu-19.10", OsRelease(ETC)),
    ("claircore-ubuntu-20.04", OsRelease(ETC)),
    ("claircore-ubuntu-20.10", OsRelease(ETC)),
    ("claircore-ubuntu-21.04", OsRelease(ETC)),
    ("claircore-ubuntu-21.10", OsRelease(ETC)),
    ("claircore-ubuntu-22.04", OsRelease(ETC)),
    ("claircore-ubuntu-22.10", OsRelease(ETC)),
    ("claircore-ubuntu-23.04", OsRelease(ETC)),
    ("claircore-ubuntu-23.10", OsRelease(ETC)),
    // claircore alpine 3.3 to 3.18 and edge.
    ("claircore-alpine-3.3", OsRelease(ETC)),
    ("claircore-alpine-3.4", OsRelease(ETC)),
    ("claircore-alpine-3.5", OsRelease(ETC)),
    ("claircore-alpine-3.6", OsRelease(ETC)),
    ("claircore-alpine-3.7", OsRelease(ETC)),
    ("claircore-alpine-3.8", OsRelease(ETC)),
    ("claircore-alpine-3.9", OsRelease(ETC)),
    ("claircore-alpine-3.10", OsRelease(ETC)),
    ("claircore-alpine-3.11", OsRelease(ETC)),
    ("claircore-alpine-3.12", OsRelease(ETC)),
    ("claircore-alpine-3.13", OsRelease(ETC)),
    ("claircore-alpine-3.14", OsRelease(ETC)),
    ("claircore-alpine-3.15", OsRelease(ETC)),
    ("claircore-alpine-3.16", OsRelease(ETC)),
    ("claircore-alpine-3.17", OsRelease(ETC)),
    ("claircore-alpine-3.18", OsRelease(ETC)),
    ("claircore-alpine-edge", OsRelease(ETC)),
    // The official alpine images' rootfs: os-release and alpine-release.
    ("docker-alpine-3.6", OsRelease(ETC)),
    ("docker-alpine-3.20", OsRelease(ETC)),
    // mmdebstrap bookworm minbase: only usr/lib/os-release (etc/os-release is a symlink
    // that the fixture does not carry).
    ("debian-bookworm-minbase", OsRelease(USR)),
    // syft syft/linux/testdata.
    ("syft-almalinux-from-os-release", OsRelease(ETC)),
    (
        // AlmaLinux's name in redhat-release: not rhel.
        "syft-almalinux-from-redhat-release",
        Hand(
            "etc/redhat-release",
            "almalinux",
            Some("8.10"),
            None,
            Some("AlmaLinux release 8.10 (Cerulean Leopard)"),
        ),
    ),
    ("syft-alpine", OsRelease(ETC)),
    ("syft-amazon", OsRelease(ETC)),
    // Rolling: no VERSION_ID.
    ("syft-arch", OsRelease(ETC)),
    (
        "syft-bad-redhat-release",
        Hand(
            "etc/redhat-release",
            "centos",
            Some("5"),
            None,
            Some("CentOS release 5 (Final)"),
        ),
    ),
    ("syft-centos", OsRelease(USR)),
    (
        "syft-centos5",
        Hand(
            "etc/redhat-release",
            "centos",
            Some("5.7"),
            None,
            Some("CentOS release 5.7 (Final)"),
        ),
    ),
    ("syft-custom", OsRelease(ETC)),
    (
        // Distroless os-release without VERSION_ID; debian_version says 10.8.
        "syft-debian-from-debian_version",
        OsReleaseFilled {
            file: ETC,
            version_id: Some("10"),
            codename: None,
        },
    ),
    ("syft-debian-from-os-release", OsRelease(USR)),
    // VERSION_ID="13" wins over debian_version 13.5.
    ("syft-debian-with-point-release", OsRelease(ETC)),
    ("syft-empty", Nothing),
    ("syft-fedora", OsRelease(USR)),
    ("syft-image-dpkg", OsRelease(ETC)),
    ("syft-mariner", OsRelease(ETC)),
    ("syft-missing-id", Nothing),
    ("syft-missing-version", Nothing),
    ("syft-opensuse-leap", OsRelease(ETC)),
    ("syft-oraclelinux", OsRelease(ETC)),
    ("syft-photon", OsRelease(ETC)),
    ("syft-redhat-from-os-release", OsRelease(USR)),
    (
        "syft-redhat-from-redhat-release",
        Hand(
            "etc/redhat-release",
            "rhel",
            Some("8.10"),
            None,
            Some("Red Hat Enterprise Linux release 8.10 (Ootpa)"),
        ),
    ),
    ("syft-rockylinux-from-os-release", OsRelease(ETC)),
    (
        "syft-rockylinux-from-redhat-release",
        Hand(
            "etc/redhat-release",
            "rocky",
            Some("8.10"),
            None,
            Some("Rocky Linux release 8.10 (Green Obsidian)"),
        ),
    ),
    ("syft-scientific-from-os-release", OsRelease(ETC)),
    (
        "syft-scientific-from-redhat-release",
        Hand(
            "etc/redhat-release",
            "scientific",
            Some("7.9"),
            None,
            Some("Scientific Linux release 7.9 (Nitrogen)"),
        ),
    ),
    ("syft-sles", OsRelease(ETC)),
    ("syft-ubuntu", OsRelease(ETC)),
    ("syft-unknown-id", OsRelease(USR)),
    (
        // CRLF line ends: sh would keep the `\r` in every value, so by hand.
        "syft-unprintable",
        Hand(
            "etc/os-release",
            "debian",
            Some("8"),
            None,
            Some("Debian GNU/Linux 8 (jessie)"),
        ),
    ),
    ("syft-wolfi", OsRelease(ETC)),
];

/// The fields the tests compare.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    id: String,
    id_like: Vec<String>,
    version_id: Option<String>,
    codename: Option<String>,
    pretty_name: Option<String>,
    source_file: String,
}

impl From<&OsInfo> for Seen {
    fn from(o: &OsInfo) -> Self {
        Seen {
            id: o.id.clone(),
            id_like: o.id_like.clone(),
            version_id: o.version_id.clone(),
            codename: o.version_codename.clone(),
            pretty_name: o.pretty_name.clone(),
            source_file: o.source_file.clone(),
        }
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/os")
}

/// `file` (relative to `dir`) sourced by `/bin/sh` in an empty environment; the values of
/// `vars`, `None` when unset or empty.
fn sh_source(dir: &Path, file: &str, vars: &[&str]) -> Vec<Option<String>> {
    let format = "%s\\037".repeat(vars.len());
    let args: Vec<String> = vars.iter().map(|v| format!("\"${v}\"")).collect();
    let script = format!(". ./{file} && printf '{format}' {}", args.join(" "));
    let out = Command::new("/bin/sh")
        .env_clear()
        .current_dir(dir)
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run /bin/sh");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sh could not source {}: {}",
        dir.join(file).display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("sh printed UTF-8");
    let mut values: Vec<Option<String>> = text
        .split('\x1f')
        .map(|v| (!v.is_empty()).then(|| v.to_string()))
        .collect();
    // The format ends in a separator.
    assert_eq!(values.pop(), Some(None), "sh output {text:?}");
    assert_eq!(values.len(), vars.len(), "sh output {text:?}");
    values
}

fn os_release_by_sh(dir: &Path, file: &'static str) -> Seen {
    let v = sh_source(
        dir,
        file,
        &[
            "ID",
            "ID_LIKE",
            "VERSION_ID",
            "VERSION_CODENAME",
            "PRETTY_NAME",
        ],
    );
    Seen {
        id: v[0].clone().expect("the oracle's file has an ID"),
        id_like: v[1]
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        version_id: v[2].clone(),
        codename: v[3].clone(),
        pretty_name: v[4].clone(),
        source_file: file.to_string(),
    }
}

fn expected(dir: &Path, oracle: Oracle) -> Option<Seen> {
    Some(match oracle {
        OsRelease(file) => os_release_by_sh(dir, file),
        OsReleaseFilled {
            file,
            version_id,
            codename,
        } => {
            let mut want = os_release_by_sh(dir, file);
            // Filling is only for what the file leaves out.
            if let Some(v) = version_id {
                assert_eq!(want.version_id, None, "{}: VERSION_ID", dir.display());
                want.version_id = Some(v.to_string());
            }
            if let Some(c) = codename {
                assert_eq!(want.codename, None, "{}: VERSION_CODENAME", dir.display());
                want.codename = Some(c.to_string());
            }
            want
        }
        Lsb => {
            let v = sh_source(
                dir,
                "etc/lsb-release",
                &[
                    "DISTRIB_ID",
                    "DISTRIB_RELEASE",
                    "DISTRIB_CODENAME",
                    "DISTRIB_DESCRIPTION",
                ],
            );
            Seen {
                id: v[0].clone().expect("DISTRIB_ID").to_ascii_lowercase(),
                id_like: Vec::new(),
                version_id: v[1].clone(),
                codename: v[2].clone(),
                pretty_name: v[3].clone(),
                source_file: "etc/lsb-release".to_string(),
            }
        }
        Hand(file, id, version_id, codename, pretty_name) => Seen {
            id: id.to_string(),
            id_like: Vec::new(),
            version_id: version_id.map(str::to_string),
            codename: codename.map(str::to_string),
            pretty_name: pretty_name.map(str::to_string),
            source_file: file.to_string(),
        },
        Nothing => return None,
    })
}

/// What the host demands of an `os-info` (`os_from` in `host/src/sandbox/v0_1.rs`).
fn assert_host_accepts(os: &OsInfo, context: &str) {
    assert!(!os.id.is_empty(), "{context}: empty id");
    let fields = [
        Some(&os.id),
        os.version_id.as_ref(),
        os.version_codename.as_ref(),
    ]
    .into_iter()
    .chain([os.pretty_name.as_ref()])
    .flatten()
    .chain(&os.id_like);
    for f in fields {
        assert!(
            f.len() <= HOST_MAX_SHORT && !f.chars().any(char::is_control),
            "{context}: the host would reject {f:?}"
        );
    }
    assert!(
        !os.source_file.starts_with('/') && !os.source_file.split('/').any(|c| c == ".."),
        "{context}: source file {:?}",
        os.source_file
    );
}

#[test]
fn real_release_files() {
    let root = testdata();
    let mut failures = Vec::new();
    for &(case, oracle) in CASES {
        let dir = root.join(case);
        assert!(dir.is_dir(), "{} is missing", dir.display());
        let want = expected(&dir, oracle);
        let got = detect(&dir);
        if let Some(os) = &got {
            assert_host_accepts(os, case);
        }
        let got = got.as_ref().map(Seen::from);
        if got != want {
            failures.push(format!("{case}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every copied sample is in the table, so none sits there untested.
#[test]
fn every_sample_has_a_case() {
    let on_disk: BTreeSet<String> = fs::read_dir(testdata())
        .expect("testdata/os")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let in_table: BTreeSet<String> = CASES.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(CASES.len(), in_table.len(), "a case is listed twice");
    assert_eq!(on_disk, in_table);
}

/// `parse_os_release` against the shell, for every key of every real os-release and
/// lsb-release: the keys are found with a line regex independent of the parser, their
/// values read back from `sh`.
#[test]
fn parse_os_release_agrees_with_sh() {
    let root = testdata();
    let mut checked = 0;
    for &(case, oracle) in CASES {
        let dir = root.join(case);
        for file in [ETC, USR, "etc/lsb-release"] {
            let path = dir.join(file);
            // Not a shell-format file sh reads like systemd: CRLF.
            if !path.is_file() || case == "syft-unprintable" {
                continue;
            }
            let text = fs::read_to_string(&path).expect("UTF-8 release file");
            let keys: BTreeSet<&str> = text
                .lines()
                .filter_map(|l| {
                    let (k, _) = l.trim_start().split_once('=')?;
                    let ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    ok.then_some(k)
                })
                .collect();
            let ours = parse_os_release(&text);
            let parsed_keys: BTreeSet<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(parsed_keys, keys, "{case}/{file} ({oracle:?}): keys");
            let keys: Vec<&str> = keys.into_iter().collect();
            let shell = sh_source(&dir, file, &keys);
            for (key, want) in keys.iter().zip(shell) {
                let got = ours.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
                assert_eq!(
                    got.filter(|v| !v.is_empty()),
                    want.as_ref(),
                    "{case}/{file}: {key}"
                );
                checked += 1;
            }
        }
    }
    // 120-odd files of about 8 keys each; a broken walk would check few.
    assert!(checked > 800, "only {checked} values checked");
}

/// A fresh directory under the system temp dir, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bulkhead-sdk-os-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        Tree(dir)
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> &Self {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, bytes).expect("write");
        self
    }

    /// Copy `case/rel` from testdata to `rel`.
    fn copy(&self, case: &str, rel: &str) -> &Self {
        self.write(
            rel,
            fs::read(testdata().join(case).join(rel)).expect("testdata file"),
        )
    }

    fn remove(&self, rel: &str) -> &Self {
        fs::remove_file(self.0.join(rel)).expect("remove");
        self
    }

    fn detect(&self) -> Option<OsInfo> {
        let os = detect(&self.0);
        if let Some(os) = &os {
            assert_host_accepts(os, &self.0.display().to_string());
        }
        os
    }

    fn source(&self) -> Option<String> {
        self.detect().map(|o| o.source_file)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn scratch_is_no_os() {
    let t = Tree::new();
    assert!(t.detect().is_none());
    // Files that are not release files change nothing.
    t.write("app", b"\x7fELF")
        .write("etc/passwd", "root:x:0:0::/:/app\n");
    assert!(t.detect().is_none());
}

/// With every kind of release file present, each is used only when the ones before it in
/// the order are gone.
#[test]
fn precedence() {
    let t = Tree::new();
    t.copy("docker-alpine-3.20", ETC)
        .copy("debian-bookworm-minbase", USR)
        .copy("trivy-ubuntu-lsb", "etc/lsb-release")
        .copy("trivy-alpine-release", "etc/alpine-release")
        .copy("trivy-redhatbase-centos", "etc/centos-release")
        .copy("syft-redhat-from-redhat-release", "etc/redhat-release")
        .copy("trivy-debian-9", "etc/debian_version");
    let order = [
        ETC,
        USR,
        "etc/lsb-release",
        "etc/alpine-release",
        "etc/centos-release",
        "etc/redhat-release",
        "etc/debian_version",
    ];
    for file in order {
        assert_eq!(t.source().as_deref(), Some(file));
        t.remove(file);
    }
    assert_eq!(t.source(), None);
}

/// A Rocky image has rocky-release, redhat-release and system-release: the specific file
/// wins, and the line names the distribution whichever file it is in.
#[test]
fn red_hat_family_files() {
    let t = Tree::new();
    let line = "Rocky Linux release 8.4 (Green Obsidian)";
    t.write("etc/system-release", line)
        .write("etc/redhat-release", line)
        .write("etc/rocky-release", line);
    let os = t.detect().expect("os");
    assert_eq!(
        (os.id.as_str(), os.source_file.as_str()),
        ("rocky", "etc/rocky-release")
    );
    t.remove("etc/rocky-release");
    let os = t.detect().expect("os");
    assert_eq!(
        (os.id.as_str(), os.source_file.as_str()),
        ("rocky", "etc/redhat-release")
    );
    t.remove("etc/redhat-release");
    let os = t.detect().expect("os");
    assert_eq!(
        (os.id.as_str(), os.source_file.as_str()),
        ("rocky", "etc/system-release")
    );
    // A line without a version after "release" is not a release line.
    t.write("etc/system-release", "Rocky Linux release\n");
    assert!(t.detect().is_none());
}

/// An os-release without an ID does not hide the next file.
#[test]
fn unusable_os_release_falls_through() {
    let t = Tree::new();
    t.copy("trivy-release-no-id", ETC)
        .copy("debian-bookworm-minbase", USR);
    let os = t.detect().expect("os");
    assert_eq!((os.id.as_str(), os.source_file.as_str()), ("debian", USR));
    // Nor does an empty one, or a directory in its place.
    t.write(ETC, "");
    assert_eq!(t.source().as_deref(), Some(USR));
    t.remove(ETC);
    fs::create_dir_all(t.0.join(ETC)).expect("mkdir");
    assert_eq!(t.source().as_deref(), Some(USR));
}

/// Debian images link etc/os-release to ../usr/lib/os-release.
#[test]
fn os_release_symlink() {
    let t = Tree::new();
    t.copy("debian-bookworm-minbase", USR)
        .write("etc/.keep", "");
    std::os::unix::fs::symlink("../usr/lib/os-release", t.0.join(ETC)).expect("symlink");
    let os = t.detect().expect("os");
    assert_eq!(
        (
            os.id.as_str(),
            os.version_id.as_deref(),
            os.source_file.as_str()
        ),
        ("debian", Some("12"), ETC)
    );
}

/// lsb-release fills the codename only for the distribution it describes.
#[test]
fn lsb_release_fills_only_its_own_distribution() {
    let t = Tree::new();
    t.copy("claircore-ubuntu-12.04", ETC).write(
        "etc/lsb-release",
        "DISTRIB_ID=LinuxMint\nDISTRIB_RELEASE=17\nDISTRIB_CODENAME=qiana\n",
    );
    let os = t.detect().expect("os");
    assert_eq!((os.id.as_str(), os.version_codename), ("ubuntu", None));
}

/// A Debian testing image: os-release without VERSION_ID, debian_version "trixie/sid".
#[test]
fn debian_testing() {
    let t = Tree::new();
    t.write(
        ETC,
        "PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
    )
    .write("etc/debian_version", "trixie/sid\n");
    let os = t.detect().expect("os");
    assert_eq!(
        (os.version_id, os.version_codename.as_deref()),
        (None, Some("trixie"))
    );
    // "bookworm/sid" alone.
    t.remove(ETC).write("etc/debian_version", "bookworm/sid\n");
    let os = t.detect().expect("os");
    assert_eq!(
        (
            os.id.as_str(),
            os.version_id,
            os.version_codename.as_deref()
        ),
        ("debian", None, Some("bookworm"))
    );
}

#[test]
fn hostile_long_lines() {
    let t = Tree::new();
    t.copy("debian-bookworm-minbase", USR);
    // One byte over the 64 KiB bound: not a release file, the next one is used.
    let mut big = b"ID=".to_vec();
    big.resize(64 << 10, b'a');
    big.push(b'\n');
    t.write(ETC, &big);
    assert_eq!(t.source().as_deref(), Some(USR));
    // Within the bound, a 64 KiB PRETTY_NAME is dropped and the rest kept.
    let mut text = b"ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"".to_vec();
    text.resize((64 << 10) - 2, b'x');
    text.extend_from_slice(b"\"\n");
    assert_eq!(text.len(), 64 << 10);
    t.write(ETC, &text);
    let os = t.detect().expect("os");
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref(), os.pretty_name),
        ("alpine", Some("3.20.3"), None)
    );
    // A 64 KiB ID is no ID.
    let mut id = b"ID=".to_vec();
    id.resize((64 << 10) - 1, b'a');
    id.push(b'\n');
    t.write(ETC, &id);
    assert_eq!(t.source().as_deref(), Some(USR));
    // Thousands of ID_LIKE entries are cut to a few.
    let like = "x ".repeat(20_000);
    t.write(ETC, format!("ID=a\nID_LIKE=\"{like}\"\n"));
    let os = t.detect().expect("os");
    assert!(os.id_like.len() <= 16, "{} entries", os.id_like.len());
    // A 64 KiB single-line legacy file.
    t.remove(ETC).remove(USR);
    let mut line = b"CentOS Linux release 7.9.2009 ".to_vec();
    line.resize(64 << 10, b'x');
    t.write("etc/centos-release", &line);
    let os = t.detect().expect("os");
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref(), os.pretty_name),
        ("centos", Some("7.9.2009"), None)
    );
}

#[test]
fn hostile_nuls_and_binary() {
    let t = Tree::new();
    // A NUL in the ID: no ID.
    t.write(ETC, b"ID=deb\0ian\nVERSION_ID=12\n");
    assert!(t.detect().is_none());
    // A NUL in another field drops that field only.
    t.write(
        ETC,
        b"ID=debian\nVERSION_ID=\"12\0\"\nPRETTY_NAME=\"Debian\"\n",
    );
    let os = t.detect().expect("os");
    assert_eq!(
        (os.id.as_str(), os.version_id, os.pretty_name.as_deref()),
        ("debian", None, Some("Debian"))
    );
    // Every byte value, many times over, in every release file.
    let junk: Vec<u8> = (0..=255u8).cycle().take(60_000).collect();
    for request in requests() {
        let bulkhead_analyzer_sdk::PathPattern::Exact(file) = &request.pattern else {
            panic!("unexpected pattern {:?}", request.pattern);
        };
        t.write(file, &junk);
    }
    // No panic; whatever comes out passed `assert_host_accepts`.
    let _ = t.detect();
    // Not UTF-8: replaced, not refused.
    let t = Tree::new();
    t.write(ETC, b"ID=debian\nPRETTY_NAME=\"Caf\xe9\"\n");
    let os = t.detect().expect("os");
    assert_eq!(os.pretty_name.as_deref(), Some("Caf\u{fffd}"));
}

#[test]
fn hostile_quoting() {
    let t = Tree::new();
    // Unterminated quotes end at the end of their line and do not swallow the next.
    t.write(
        ETC,
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\nID=debian\nVERSION_ID='12\nVERSION_CODENAME=\"bookworm\\\n",
    );
    let os = t.detect().expect("os");
    assert_eq!(
        (
            os.id.as_str(),
            os.version_id.as_deref(),
            os.version_codename.as_deref(),
            os.pretty_name.as_deref()
        ),
        (
            "debian",
            Some("12"),
            Some("bookworm\\"),
            Some("Debian GNU/Linux 12 (bookworm)")
        )
    );
    // CR line ends without LF at the end of the file.
    t.write(ETC, "ID=debian\r\nVERSION_ID=\"12\"\r");
    let os = t.detect().expect("os");
    assert_eq!(os.version_id.as_deref(), Some("12"));
}

#[test]
fn empty_or_odd_id() {
    let t = Tree::new();
    // `ID=` is no ID; nothing else here, so no OS.
    t.write(ETC, "ID=\nVERSION_ID=12\n");
    assert!(t.detect().is_none());
    // With debian_version next to it, that file says what the OS is.
    t.write("etc/debian_version", "12.5\n");
    let os = t.detect().expect("os");
    assert_eq!(
        (
            os.id.as_str(),
            os.version_id.as_deref(),
            os.source_file.as_str()
        ),
        ("debian", Some("12"), "etc/debian_version")
    );
    // The last assignment wins, as in the shell: an ID emptied later is empty.
    t.write(ETC, "ID=ubuntu\nID=\n");
    assert_eq!(t.source().as_deref(), Some("etc/debian_version"));
    // Upper case is lowered; spaces and other characters make it no id.
    t.write(ETC, "ID=Ubuntu\n");
    assert_eq!(t.detect().expect("os").id, "ubuntu");
    t.write(ETC, "ID=\"Debian GNU\"\n");
    assert_eq!(t.source().as_deref(), Some("etc/debian_version"));
    t.write(ETC, "ID=../../x\n");
    assert_eq!(t.detect().expect("os").id, "debian");
    // Empty single-line files are nothing.
    t.remove(ETC).write("etc/debian_version", "\n");
    t.write("etc/alpine-release", "")
        .write("etc/redhat-release", " \n");
    assert!(t.detect().is_none());
}
