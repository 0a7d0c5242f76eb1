//! Package URLs (purl, <https://github.com/package-url/purl-spec>): how reports, SBOMs and
//! VEX documents name a package across tools.
//!
//! Encoding and parsing are the `packageurl` crate's (it follows the spec's canonical
//! form: qualifiers sorted, `+` in a version as `%2B`, `/` in a qualifier value as `%2F`);
//! this module only decides which component gets what, per the spec's type definitions
//! (`PURL-TYPES.rst`, `types/*-definition.json`):
//!
//! | analyzer ecosystem | purl |
//! |---|---|
//! | `deb` | `pkg:deb/<os id>/<name>@<version>?arch=<arch>&distro=<id>-<version_id>` |
//! | `apk` | `pkg:apk/<os id>/<name>@<version>?arch=<arch>&distro=<version_id>` |
//! | `rpm` | `pkg:rpm/<os id>/<name>@<version>-<release>?arch=<arch>&distro=<id>-<version_id>&epoch=<n>` |
//! | other | `pkg:<ecosystem>/<name>@<version>?arch=<arch>` (`generic` when not a valid type) |
//!
//! The namespace is the vendor, i.e. the os-release `ID` (`debian`, `ubuntu`, `alpine`,
//! `rocky`, …); when no OS was detected it is omitted rather than guessed. The `distro`
//! values follow what other scanners emit (`debian-12`, `3.11.6`), so that purls from
//! different tools for the same package compare equal with [`same_package`].

use std::borrow::Cow;
use std::str::FromStr;

use packageurl::PackageUrl;

use bulkhead_model::{Os, Package};

/// The purl of an installed package. Never fails: a component the crate refuses (it only
/// refuses an empty name or an invalid type, which the host's validation of analyzer
/// output already excludes) degrades to a `generic` purl rather than losing the package.
pub fn package(pkg: &Package, os: Option<&Os>) -> String {
    let property = |key: &str| pkg.property(key);
    let vendor = os.map(|o| o.id.to_ascii_lowercase());
    let id_version = os.and_then(|o| {
        o.version_id
            .as_deref()
            .or(o.version_codename.as_deref())
            .map(|v| format!("{}-{v}", o.id.to_ascii_lowercase()))
    });
    let mut name = Cow::Borrowed(pkg.name.as_str());
    let mut version = Cow::Borrowed(pkg.version.as_str());
    let mut qualifiers: Vec<(&str, String)> = Vec::new();
    let ty = match pkg.ecosystem.as_str() {
        "deb" => {
            qualifiers.extend(id_version.map(|d| ("distro", d)));
            "deb"
        }
        "apk" => {
            // The spec: apk names are case insensitive and must be lowercased.
            name = Cow::Owned(pkg.name.to_lowercase());
            // Alpine's own convention (and every scanner's): the release number alone.
            qualifiers.extend(os.and_then(|o| o.version_id.clone()).map(|d| ("distro", d)));
            "apk"
        }
        "rpm" => {
            // The rpm analyzer prints `[epoch:]version-release`; the purl spec keeps the
            // version as version-release and moves the epoch to a qualifier.
            let (epoch, vr) = split_epoch(&pkg.version);
            version = Cow::Owned(vr.to_string());
            if let Some(e) = epoch.or(property("epoch")) {
                qualifiers.push(("epoch", e.to_string()));
            }
            qualifiers.extend(id_version.map(|d| ("distro", d)));
            "rpm"
        }
        other => other,
    };
    if let Some(arch) = pkg.arch.as_deref().filter(|a| !a.is_empty()) {
        qualifiers.push(("arch", arch.to_string()));
    }
    let namespace = match ty {
        "deb" | "apk" | "rpm" => vendor.filter(|v| !v.is_empty()),
        _ => None,
    };
    build(ty, namespace.as_deref(), &name, &version, &qualifiers)
        .or_else(|| build("generic", None, &name, &version, &qualifiers))
        .unwrap_or_else(|| "pkg:generic/unnamed".to_string())
}

fn build(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, String)],
) -> Option<String> {
    let mut purl = PackageUrl::new(ty, name).ok()?;
    if let Some(ns) = namespace {
        purl.with_namespace(ns).ok()?;
    }
    if !version.is_empty() {
        purl.with_version(version).ok()?;
    }
    for (k, v) in qualifiers {
        // An empty qualifier value is the same as no qualifier (spec: "key=" is dropped).
        if !v.is_empty() {
            purl.add_qualifier(*k, v.as_str()).ok()?;
        }
    }
    Some(purl.to_string())
}

/// `E:V-R` → (`Some(E)`, `V-R`); a version without a numeric epoch prefix is returned whole.
fn split_epoch(version: &str) -> (Option<&str>, &str) {
    match version.split_once(':') {
        Some((e, vr)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (Some(e), vr),
        _ => (None, version),
    }
}

/// The purl of a container image (`oci` type): `pkg:oci/<name>@<digest>` with
/// `repository_url` (registry and repository, for registry images) and `tag` qualifiers.
/// `None` without a digest: the spec makes the digest the required version, and a
/// directory scan has none.
pub fn image(reference: &str, digest: Option<&str>) -> Option<String> {
    let digest = digest?.trim().to_ascii_lowercase();
    let (algo, hex) = digest.split_once(':')?;
    if algo.is_empty() || hex.is_empty() {
        return None;
    }
    let (name, repository_url, tag) = match crate::source::Source::parse(reference).ok()? {
        crate::source::Source::Registry(r) => {
            let parsed = oci_spec::distribution::Reference::from_str(&r).ok()?;
            let repository = parsed.repository();
            let name = repository.rsplit('/').next().unwrap_or(repository);
            (
                name.to_string(),
                Some(format!("{}/{repository}", parsed.registry())),
                parsed.tag().map(str::to_string),
            )
        }
        crate::source::Source::OciLayout { dir, tag } => (file_name(&dir)?, None, tag),
        crate::source::Source::DockerArchive(file) | crate::source::Source::Archive(file) => {
            (archive_stem(&file)?, None, None)
        }
        crate::source::Source::OciArchive { file, tag } => (archive_stem(&file)?, None, tag),
        crate::source::Source::Dir(dir) => (file_name(&dir)?, None, None),
    };
    let mut qualifiers = Vec::new();
    qualifiers.extend(repository_url.map(|u| ("repository_url", u)));
    qualifiers.extend(tag.map(|t| ("tag", t)));
    // The spec: the name is the last segment of the repository name, lowercased.
    build(
        "oci",
        None,
        &name.to_ascii_lowercase(),
        &digest,
        &qualifiers,
    )
}

/// An archive's file name without its extension: `alpine.tar.gz` → `alpine`.
fn archive_stem(file: &std::path::Path) -> Option<String> {
    let name = file_name(file)?;
    let stem = [".tar.gz", ".tgz", ".tar"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .filter(|s| !s.is_empty())
        .unwrap_or(&name)
        .to_string();
    Some(stem)
}

fn file_name(path: &std::path::Path) -> Option<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
}

/// Whether two purls name the same package: type, namespace, name and version equal
/// (after each type's canonicalisation, e.g. case); qualifiers and subpath are ignored,
/// and so is the version when either side has none (a VEX statement about
/// `pkg:apk/alpine/musl` covers every version). For `rpm` the epoch qualifier is part of
/// the version (`1:2.3-1` and `2.3-1?epoch=1` are the same; epoch 0 is no epoch), because
/// tools differ in where they put it. Anything that does not parse as a purl matches
/// nothing.
pub fn same_package(a: &str, b: &str) -> bool {
    let (Ok(a), Ok(b)) = (PackageUrl::from_str(a), PackageUrl::from_str(b)) else {
        return false;
    };
    if a.ty() != b.ty() || a.namespace() != b.namespace() || name_key(&a) != name_key(&b) {
        return false;
    }
    match (comparable_version(&a), comparable_version(&b)) {
        (Some(va), Some(vb)) => va == vb,
        _ => true,
    }
}

/// The name as compared: lowercased for the types whose spec says names are case
/// insensitive but whose canonical form the crate does not lowercase.
fn name_key<'p>(p: &'p PackageUrl<'_>) -> Cow<'p, str> {
    match p.ty() {
        "apk" | "alpm" => Cow::Owned(p.name().to_lowercase()),
        _ => Cow::Borrowed(p.name()),
    }
}

fn comparable_version(p: &PackageUrl<'_>) -> Option<String> {
    let v = p.version()?;
    if p.ty() != "rpm" {
        return Some(v.to_string());
    }
    let (inline, vr) = split_epoch(v);
    let epoch = inline
        .or_else(|| p.qualifiers().get("epoch").map(|e| e.as_ref()))
        .map(|e| e.trim_start_matches('0'))
        .filter(|e| !e.is_empty());
    Some(match epoch {
        Some(e) => format!("{e}:{vr}"),
        None => vr.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, version_id: Option<&str>, codename: Option<&str>) -> Os {
        Os {
            id: id.into(),
            id_like: Vec::new(),
            version_id: version_id.map(Into::into),
            version_codename: codename.map(Into::into),
            pretty_name: None,
            source_file: "etc/os-release".into(),
            eol: None,
        }
    }

    fn pkg(ecosystem: &str, name: &str, version: &str, arch: Option<&str>) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            ecosystem: ecosystem.into(),
            arch: arch.map(Into::into),
            analyzer: "a@1".into(),
            db_path: "x".into(),
            ..Package::default()
        }
    }

    // Expected strings below are the purl-spec's own (PURL-TYPES.rst examples and the
    // `build` cases of tests/types/{deb,rpm,apk,oci}-test.json), except where a comment
    // says which of our choices (distro values) the expectation adds.

    #[test]
    fn deb_matches_the_spec() {
        // Spec: pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64 (epoch stays in the version,
        // `+` is %2B).
        let p = pkg("deb", "attr", "1:2.4.47-2+b1", Some("amd64"));
        assert_eq!(
            package(&p, Some(&os("debian", None, None))),
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64"
        );
        // Spec: pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie; we name the release
        // by id-version_id (debian-8) as other scanners do.
        let p = pkg("deb", "curl", "7.50.3-1", Some("i386"));
        assert_eq!(
            package(&p, Some(&os("debian", Some("8"), Some("jessie")))),
            "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=debian-8"
        );
        // Sid has no VERSION_ID: the codename names the release.
        assert_eq!(
            package(&p, Some(&os("debian", None, Some("trixie")))),
            "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=debian-trixie"
        );
        let p = pkg("deb", "dpkg", "1.19.0.4", Some("amd64"));
        assert_eq!(
            package(&p, Some(&os("ubuntu", None, None))),
            "pkg:deb/ubuntu/dpkg@1.19.0.4?arch=amd64"
        );
    }

    #[test]
    fn rpm_moves_the_epoch_to_a_qualifier() {
        // Spec build case: pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&distro=fedora-25
        let p = pkg("rpm", "curl", "7.50.3-1.fc25", Some("i386"));
        assert_eq!(
            package(&p, Some(&os("fedora", Some("25"), None))),
            "pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&distro=fedora-25"
        );
        // Spec: pkg:rpm/centerim@4.22.10-1.el6?arch=i686&distro=fedora-25&epoch=1 (here
        // with the vendor, which the spec's validation cases require).
        let p = pkg("rpm", "centerim", "1:4.22.10-1.el6", Some("i686"));
        assert_eq!(
            package(&p, Some(&os("fedora", Some("25"), None))),
            "pkg:rpm/fedora/centerim@4.22.10-1.el6?arch=i686&distro=fedora-25&epoch=1"
        );
        // rpm names are case sensitive (spec); the vendor is lowercased.
        let p = pkg("rpm", "NetworkManager", "1.40.0-1.el9", Some("x86_64"));
        assert_eq!(
            package(&p, Some(&os("RHEL", Some("9.2"), None))),
            "pkg:rpm/rhel/NetworkManager@1.40.0-1.el9?arch=x86_64&distro=rhel-9.2"
        );
    }

    #[test]
    fn apk_matches_the_spec() {
        // Spec: pkg:apk/alpine/curl@7.83.0-r0?arch=x86
        let p = pkg("apk", "curl", "7.83.0-r0", Some("x86"));
        assert_eq!(
            package(&p, Some(&os("alpine", None, None))),
            "pkg:apk/alpine/curl@7.83.0-r0?arch=x86"
        );
        // distro = VERSION_ID, as Alpine's tooling and other scanners write it.
        let p = pkg("apk", "musl", "1.1.24-r2", Some("x86_64"));
        assert_eq!(
            package(&p, Some(&os("alpine", Some("3.11.6"), None))),
            "pkg:apk/alpine/musl@1.1.24-r2?arch=x86_64&distro=3.11.6"
        );
    }

    #[test]
    fn unknown_os_omits_the_namespace_and_odd_ecosystems_degrade() {
        let p = pkg("deb", "curl", "7.50.3-1", None);
        assert_eq!(package(&p, None), "pkg:deb/curl@7.50.3-1");
        let p = pkg("pacman", "glibc", "2.39-1", Some("x86_64"));
        assert_eq!(package(&p, None), "pkg:pacman/glibc@2.39-1?arch=x86_64");
        // Not a valid purl type (a space): generic, not lost.
        let p = pkg("my eco", "a/b", "1", None);
        assert_eq!(package(&p, None), "pkg:generic/a%2Fb@1");
    }

    #[test]
    fn image_purls_match_the_spec() {
        // Spec build case: pkg:oci/debian@sha256:244fd47e07d10?arch=amd64
        //   &repository_url=docker.io%2Flibrary%2Fdebian&tag=latest (without arch here).
        assert_eq!(
            image("debian:latest", Some("sha256:244fd47e07d10")).as_deref(),
            Some(
                "pkg:oci/debian@sha256:244fd47e07d10?repository_url=docker.io%2Flibrary%2Fdebian&tag=latest"
            )
        );
        // Spec: pkg:oci/debian@sha256:244fd47e07d10?repository_url=ghcr.io%2Fdebian&tag=bullseye
        assert_eq!(
            image("ghcr.io/debian:bullseye", Some("sha256:244fd47e07d10")).as_deref(),
            Some(
                "pkg:oci/debian@sha256:244fd47e07d10?repository_url=ghcr.io%2Fdebian&tag=bullseye"
            )
        );
        // Spec: pkg:oci/static@sha256:244fd47e07d10?repository_url=gcr.io%2Fdistroless%2Fstatic&tag=latest
        assert_eq!(
            image(
                "gcr.io/distroless/static:latest",
                Some("sha256:244fd47e07d10")
            )
            .as_deref(),
            Some(
                "pkg:oci/static@sha256:244fd47e07d10?repository_url=gcr.io%2Fdistroless%2Fstatic&tag=latest"
            )
        );
        // Spec: pkg:oci/hello-wasm@sha256:244fd47e07d10?tag=v1 (a local layout, no registry).
        assert_eq!(
            image("oci:/tmp/hello-wasm:v1", Some("sha256:244fd47e07d10")).as_deref(),
            Some("pkg:oci/hello-wasm@sha256:244fd47e07d10?tag=v1")
        );
        assert_eq!(
            image(
                "docker-archive:tests/fixtures/images/alpine-311.tar.gz",
                Some("sha256:ABC")
            )
            .as_deref(),
            Some("pkg:oci/alpine-311@sha256:abc")
        );
        assert_eq!(image("dir:/srv/root", None), None);
        assert_eq!(image("alpine:3.11", Some("nocolon")), None);
    }

    #[test]
    fn same_package_ignores_qualifiers_and_missing_versions() {
        let a = "pkg:apk/alpine/musl@1.1.24-r2?arch=x86_64&distro=3.11.6";
        assert!(same_package(a, "pkg:apk/alpine/musl@1.1.24-r2"));
        assert!(same_package(a, "pkg:apk/alpine/musl"));
        assert!(same_package("pkg:apk/alpine/musl", a));
        // Case canonicalisation of the type: apk names are case insensitive.
        assert!(same_package(a, "pkg:APK/Alpine/MUSL@1.1.24-r2"));
        assert!(!same_package(a, "pkg:apk/alpine/musl@1.1.24-r3"));
        assert!(!same_package(a, "pkg:apk/alpine/musl-utils@1.1.24-r2"));
        assert!(!same_package(a, "pkg:apk/wolfi/musl@1.1.24-r2"));
        assert!(!same_package(a, "pkg:deb/alpine/musl@1.1.24-r2"));
        assert!(!same_package(a, "not a purl"));
        // Percent-encoding is decoded before comparing.
        assert!(same_package(
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64",
            "pkg:deb/debian/attr@1:2.4.47-2+b1"
        ));
        // rpm: the epoch, inline or as a qualifier, is part of the version.
        assert!(same_package(
            "pkg:rpm/fedora/centerim@4.22.10-1.el6?epoch=1",
            "pkg:rpm/fedora/centerim@1:4.22.10-1.el6"
        ));
        assert!(!same_package(
            "pkg:rpm/fedora/centerim@4.22.10-1.el6?epoch=1",
            "pkg:rpm/fedora/centerim@4.22.10-1.el6"
        ));
        assert!(same_package(
            "pkg:rpm/fedora/centerim@4.22.10-1.el6?epoch=0",
            "pkg:rpm/fedora/centerim@4.22.10-1.el6"
        ));
    }
}
