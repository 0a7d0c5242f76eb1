//! What the suppression targets apply their rules to: findings and images that real
//! ignore files and VEX documents name (Debian and Alpine packages by name, source name
//! and purl; images by tag and digest).

use bulkhead_model::{Finding, FixState, Severity};
use bulkhead_scan::assess::ImageIdentity;

pub const NOW: &str = "2025-03-01T12:00:00Z";

pub const IMAGES: [ImageIdentity<'static>; 3] = [
    ImageIdentity {
        reference: "alpine:3.17",
        digest: Some("sha256:124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126"),
    },
    ImageIdentity {
        reference: "ghcr.io/example/app@sha256:124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126",
        digest: None,
    },
    ImageIdentity {
        reference: "oci:/tmp/layout:v1",
        digest: None,
    },
];

fn finding(id: &str, aliases: &[&str], package: &str, source: Option<&str>, purl: &str) -> Finding {
    Finding {
        id: id.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        package: package.into(),
        installed_version: "1".into(),
        source_name: source.map(Into::into),
        fixed_version: None,
        fix_state: FixState::NotFixed,
        severity: Severity::High,
        severity_source: "none".into(),
        cvss: None,
        title: String::new(),
        ecosystem: "Debian:12".into(),
        package_type: "deb".into(),
        purl: purl.into(),
        arch: None,
        layer_digest: None,
        layer_diff_id: None,
        sources: Vec::new(),
        urls: Vec::new(),
    }
}

pub fn findings() -> Vec<Finding> {
    vec![
        finding(
            "CVE-2023-1255",
            &[],
            "libssl3",
            Some("openssl"),
            "pkg:apk/alpine/libssl3@3.0.8-r3?arch=x86_64&distro=3.17.3",
        ),
        finding(
            "GHSA-xxxx-yyyy-zzzz",
            &["CVE-2023-0001", "DSA-5000-1"],
            "libc6",
            Some("glibc"),
            "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12",
        ),
        finding(
            "CVE-2014-125001",
            &[],
            "golang.org/x/text",
            None,
            "pkg:golang/golang.org/x/text@v0.3.7",
        ),
        finding("CVE-2024-0001", &[], "x", None, ""),
    ]
}
