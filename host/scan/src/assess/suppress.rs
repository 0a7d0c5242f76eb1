//! Suppressions: findings the user decided not to act on, from ignore files
//! (`.bulkheadignore`) and OpenVEX documents (`--vex FILE`).
//!
//! A suppressed finding is never dropped: [`Suppressions::apply`] moves it to
//! [`Applied::suppressed`] with the file that suppressed it and why, reports list and count
//! it, and only health ignores it. The formats and matching rules are documented for users
//! in `docs/suppressions.md`; keep the two in step.
//!
//! Both inputs are untrusted files (a VEX document often comes from a vendor): they are
//! read up to [`MAX_FILE_SIZE`], YAML alias expansion and nesting are bounded by
//! `serde_yaml_ng` (libyaml's limits), JSON nesting by `serde_json` (128 levels), and
//! every error names the file, the line and column when the parser knows them, and what
//! to change.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use jiff::Timestamp;
use packageurl::PackageUrl;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::purl::same_package;
use bulkhead_model::{Diagnostic, Finding, Level, Suppressed};

/// The largest ignore file or VEX document read. Real ones are kilobytes; the cap stops a
/// wrong path (an image tarball, a device) from being read into memory.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Where the format of both files is explained, for error messages.
const FORMAT_DOC: &str = "docs/suppressions.md";

/// Which kind of file an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    IgnoreFile,
    Vex,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::IgnoreFile => "ignore file",
            FileKind::Vex => "VEX document",
        })
    }
}

/// Why an ignore file or a VEX document could not be loaded. Every variant names the file;
/// the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    #[error("cannot read {kind} {}: {source}", .path.display())]
    Read {
        kind: FileKind,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{kind} {} is larger than {limit} bytes; suppression files are small text files: check the path",
        .path.display()
    )]
    TooLarge {
        kind: FileKind,
        path: PathBuf,
        limit: u64,
    },
    /// The file does not parse, or a value has the wrong shape; `location` is
    /// (line, column), 1-based, when the parser knows it.
    #[error("{kind} {}{}: {message}", .path.display(), at(.location))]
    Syntax {
        kind: FileKind,
        path: PathBuf,
        location: Option<(usize, usize)>,
        message: String,
    },
    /// The file parses but says something Bulkhead cannot use.
    #[error("{kind} {}: {message}", .path.display())]
    Invalid {
        kind: FileKind,
        path: PathBuf,
        message: String,
    },
}

fn at(location: &Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!(":{line}:{column}"),
        None => String::new(),
    }
}

/// The image being scanned, as VEX products name it.
#[derive(Clone, Copy, Debug)]
pub struct ImageIdentity<'a> {
    /// The reference the user gave (`alpine:3.19`, `ghcr.io/o/app@sha256:…`, `oci:DIR`).
    pub reference: &'a str,
    /// The manifest digest (`sha256:…`), when the image has one.
    pub digest: Option<&'a str>,
}

/// What [`Suppressions::apply`] decided.
#[derive(Debug, Default)]
pub struct Applied {
    pub kept: Vec<Finding>,
    pub suppressed: Vec<Suppressed>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The loaded ignore rules and VEX documents. `Default` suppresses nothing.
#[derive(Debug, Default)]
pub struct Suppressions {
    rules: Vec<IgnoreRule>,
    vex: Vec<VexDocument>,
    /// Problems found while loading (invalid VEX statements), reported by every `apply`.
    load_diagnostics: Vec<Diagnostic>,
}

#[derive(Debug)]
struct IgnoreRule {
    file: String,
    /// 1-based position in its file, to name it in diagnostics.
    number: usize,
    id: String,
    package: Option<String>,
    expires: Option<Expiry>,
    reason: String,
}

#[derive(Clone, Debug)]
struct Expiry {
    at: Timestamp,
    /// As written, for messages.
    text: String,
}

#[derive(Debug)]
struct VexDocument {
    file: String,
    statements: Vec<VexStatement>,
}

#[derive(Debug)]
struct VexStatement {
    /// `name` and `aliases` of the vulnerability.
    ids: Vec<String>,
    /// The statement's own timestamp, else the document's.
    timestamp: Option<Timestamp>,
    products: Vec<VexProduct>,
    status: VexStatus,
    reason: String,
}

#[derive(Debug)]
struct VexProduct {
    /// `@id` and `identifiers.purl`.
    ids: Vec<String>,
    /// Every subcomponent's `@id` and `identifiers.purl`.
    subcomponents: Vec<String>,
    /// Kept apart from `subcomponents` so that a product whose subcomponents carry no
    /// identifier we can use (only hashes) matches nothing rather than everything.
    has_subcomponents: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VexStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl VexStatus {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "not_affected" => Some(VexStatus::NotAffected),
            "affected" => Some(VexStatus::Affected),
            "fixed" => Some(VexStatus::Fixed),
            "under_investigation" => Some(VexStatus::UnderInvestigation),
            _ => None,
        }
    }

    fn suppresses(self) -> bool {
        matches!(self, VexStatus::NotAffected | VexStatus::Fixed)
    }
}

impl Suppressions {
    /// Add the rules of a `.bulkheadignore` file (YAML; see `docs/suppressions.md`).
    pub fn load_ignore_file(&mut self, path: &Path) -> Result<(), SuppressError> {
        let text = read_text(path, FileKind::IgnoreFile)?;
        self.load_ignore_text(&text, path)
    }

    /// [`Self::load_ignore_file`] for text already read (without a byte-order mark);
    /// `path` only names the file in errors and diagnostics.
    pub fn load_ignore_text(&mut self, text: &str, path: &Path) -> Result<(), SuppressError> {
        let kind = FileKind::IgnoreFile;
        // `Option`: an empty file, or one with only comments, is no rules.
        let doc: Option<IgnoreDoc> = serde_yaml_ng::from_str(text).map_err(|e| {
            let location = e.location().map(|l| (l.line(), l.column()));
            SuppressError::Syntax {
                kind,
                path: path.to_path_buf(),
                location,
                message: format!(
                    "{}; the format is described in {FORMAT_DOC}",
                    strip_location(&e.to_string(), location)
                ),
            }
        })?;
        let file = path.display().to_string();
        let rules = doc.map(|d| d.0).unwrap_or_default();
        self.rules
            .extend(rules.into_iter().enumerate().map(|(i, r)| IgnoreRule {
                file: file.clone(),
                number: i + 1,
                id: r.id,
                package: r.package,
                expires: r.expires,
                reason: r.reason,
            }));
        Ok(())
    }

    /// Add the statements of an OpenVEX document (JSON, v0.2.0 or v0.0.1).
    pub fn load_vex(&mut self, path: &Path) -> Result<(), SuppressError> {
        let text = read_text(path, FileKind::Vex)?;
        self.load_vex_text(&text, path)
    }

    /// [`Self::load_vex`] for text already read (without a byte-order mark); `path` only
    /// names the document in errors and diagnostics.
    pub fn load_vex_text(&mut self, text: &str, path: &Path) -> Result<(), SuppressError> {
        let kind = FileKind::Vex;
        let raw: RawVexDoc = serde_json::from_str(text).map_err(|e| {
            let location = (e.line() > 0).then(|| (e.line(), e.column()));
            SuppressError::Syntax {
                kind,
                path: path.to_path_buf(),
                location,
                message: format!(
                    "{}; the format: https://github.com/openvex/spec",
                    strip_location(&e.to_string(), location)
                ),
            }
        })?;
        let invalid = |message: String| SuppressError::Invalid {
            kind,
            path: path.to_path_buf(),
            message,
        };
        if !raw.is_openvex() {
            return Err(invalid(raw.not_openvex_message()));
        }
        let Some(statements) = raw.statements else {
            return Err(invalid(
                "has no `statements` list; an OpenVEX document lists its statements there".into(),
            ));
        };
        let file = path.display().to_string();
        let doc_timestamp = match raw.timestamp.as_deref() {
            Some(t) => Some(parse_timestamp(t).map_err(|e| {
                invalid(format!(
                    "the document `timestamp` {t:?} is not an RFC 3339 time ({e}); write it like 2023-01-08T18:02:03-06:00"
                ))
            })?),
            None => None,
        };
        let mut doc = VexDocument {
            file: file.clone(),
            statements: Vec::with_capacity(statements.len()),
        };
        for (i, s) in statements.into_iter().enumerate() {
            let number = i + 1;
            match s.validate(doc_timestamp) {
                Ok(Ok(statement)) => doc.statements.push(statement),
                Ok(Err(problem)) => self.load_diagnostics.push(Diagnostic {
                    level: Level::Warning,
                    code: "vex-statement-invalid".into(),
                    analyzer: None,
                    layer: None,
                    message: format!(
                        "{file}: statement {number} {problem}; it is ignored (the statement format: https://github.com/openvex/spec)"
                    ),
                }),
                Err(message) => return Err(invalid(format!("statement {number}: {message}"))),
            }
        }
        self.vex.push(doc);
        Ok(())
    }

    /// True when nothing was loaded: `apply` would keep every finding and say nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.vex.is_empty() && self.load_diagnostics.is_empty()
    }

    /// Split findings into kept and suppressed. Ignore rules are tried first (the user's
    /// own decision), then VEX statements (the latest one about the finding wins).
    /// Expired rules, rules that matched nothing and VEX documents that apply to nothing
    /// in this scan become diagnostics.
    pub fn apply(&self, findings: Vec<Finding>, image: &ImageIdentity, now: Timestamp) -> Applied {
        let mut applied = Applied {
            diagnostics: self.load_diagnostics.clone(),
            ..Applied::default()
        };

        // Index by normalised vulnerability id: a file may hold thousands of rules or
        // statements, a scan thousands of findings.
        let mut rules_by_id: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            match &rule.expires {
                Some(e) if now >= e.at => applied.diagnostics.push(Diagnostic {
                    level: Level::Warning,
                    code: "ignore-rule-expired".into(),
                    analyzer: None,
                    layer: None,
                    message: format!(
                        "{}: rule {} ({}) expired on {} and no longer suppresses anything; renew `expires` or remove the rule",
                        rule.file,
                        rule.number,
                        rule.describe(),
                        e.text
                    ),
                }),
                _ => rules_by_id.entry(id_key(&rule.id)).or_default().push(i),
            }
        }
        let mut statements_by_id: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (d, doc) in self.vex.iter().enumerate() {
            for (s, st) in doc.statements.iter().enumerate() {
                let mut keys: Vec<String> = st.ids.iter().map(|id| id_key(id)).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    statements_by_id.entry(k).or_default().push((d, s));
                }
            }
        }

        let mut rule_used = vec![false; self.rules.len()];
        let mut doc_applied = vec![false; self.vex.len()];
        for finding in findings {
            let mut keys: Vec<String> = std::iter::once(&finding.id)
                .chain(&finding.aliases)
                .map(|id| id_key(id))
                .collect();
            keys.sort();
            keys.dedup();

            // Every matching rule is marked used, so that a second rule for the same
            // finding is not reported as unused; the first (in file order) gives the reason.
            let mut first_rule: Option<usize> = None;
            for k in &keys {
                for &i in rules_by_id.get(k).into_iter().flatten() {
                    if self.rules[i].package_matches(&finding) {
                        rule_used[i] = true;
                        first_rule = Some(first_rule.map_or(i, |f| f.min(i)));
                    }
                }
            }
            if let Some(i) = first_rule {
                let rule = &self.rules[i];
                applied.suppressed.push(Suppressed {
                    finding,
                    suppressed_by: rule.file.clone(),
                    reason: rule.reason.clone(),
                });
                continue;
            }

            // The latest statement about this vulnerability and this package decides,
            // whatever its status: a later `affected` overrides an earlier `not_affected`.
            // Ties go to the later document, then the later statement.
            let mut latest: Option<(Option<Timestamp>, usize, usize)> = None;
            for k in &keys {
                for &(d, s) in statements_by_id.get(k).into_iter().flatten() {
                    let st = &self.vex[d].statements[s];
                    if !st.applies_to(&finding, image) {
                        continue;
                    }
                    doc_applied[d] = true;
                    let candidate = (st.timestamp, d, s);
                    if latest.is_none_or(|l| candidate > l) {
                        latest = Some(candidate);
                    }
                }
            }
            match latest {
                Some((_, d, s)) if self.vex[d].statements[s].status.suppresses() => {
                    let doc = &self.vex[d];
                    applied.suppressed.push(Suppressed {
                        finding,
                        suppressed_by: doc.file.clone(),
                        reason: doc.statements[s].reason.clone(),
                    });
                }
                _ => applied.kept.push(finding),
            }
        }

        for (rule, used) in self.rules.iter().zip(&rule_used) {
            let expired = rule.expires.as_ref().is_some_and(|e| now >= e.at);
            if !used && !expired {
                applied.diagnostics.push(Diagnostic {
                    level: Level::Info,
                    code: "ignore-rule-unused".into(),
                    analyzer: None,
                    layer: None,
                    message: format!(
                        "{}: rule {} ({}) matched no finding; remove it if the vulnerability is gone",
                        rule.file,
                        rule.number,
                        rule.describe()
                    ),
                });
            }
        }
        for (doc, applied_any) in self.vex.iter().zip(&doc_applied) {
            if *applied_any {
                continue;
            }
            if let Some(d) = doc.not_applicable(image) {
                applied.diagnostics.push(d);
            }
        }
        applied
    }
}

impl IgnoreRule {
    fn describe(&self) -> String {
        match &self.package {
            Some(p) => format!("{}, package {p}", self.id),
            None => self.id.clone(),
        }
    }

    fn package_matches(&self, f: &Finding) -> bool {
        match self.package.as_deref() {
            None => true,
            Some(p) if is_purl(p) => purl_names_package(p, f),
            Some(p) => f.package == p || f.source_name.as_deref() == Some(p),
        }
    }
}

impl VexStatement {
    /// Whether the statement's products cover the finding's package in this image.
    fn applies_to(&self, f: &Finding, image: &ImageIdentity) -> bool {
        self.products.iter().any(|p| {
            if p.ids.iter().any(|id| names_image(id, image)) {
                // The image itself: every package, or only the listed subcomponents.
                !p.has_subcomponents || p.subcomponents.iter().any(|s| names_package(s, f))
            } else {
                // A package product: the statement is about that package wherever it is.
                p.ids.iter().any(|id| names_package(id, f))
            }
        })
    }
}

impl VexDocument {
    /// The diagnostic for a document none of whose statements applied to a finding.
    fn not_applicable(&self, image: &ImageIdentity) -> Option<Diagnostic> {
        let products = || self.statements.iter().flat_map(|s| &s.products);
        if products().any(|p| p.ids.iter().any(|id| names_image(id, image))) {
            // It is about this image; the vulnerabilities it covers were simply not
            // found (or were suppressed by an ignore rule first). Normal, not worth saying.
            return None;
        }
        // Image products that are not this image are the case worth a warning: a VEX
        // document pinned to the digest of a previous build silently stops applying.
        let other_image = products()
            .flat_map(|p| &p.ids)
            .find(|id| names_an_image(id));
        let ours = match image.digest {
            Some(d) => format!("{} ({d})", image.reference),
            None => image.reference.to_string(),
        };
        Some(match other_image {
            Some(example) => Diagnostic {
                level: Level::Warning,
                code: "vex-not-applicable".into(),
                analyzer: None,
                layer: None,
                message: format!(
                    "{}: applies to nothing in this scan: its image products (e.g. {example}) are not {ours}; was it written for another build of the image?",
                    self.file
                ),
            },
            None => Diagnostic {
                level: Level::Info,
                code: "vex-not-applicable".into(),
                analyzer: None,
                layer: None,
                message: format!(
                    "{}: none of its {} statements applies to a finding of {ours}",
                    self.file,
                    self.statements.len()
                ),
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------------------

fn read_text(path: &Path, kind: FileKind) -> Result<String, SuppressError> {
    let read_err = |source| SuppressError::Read {
        kind,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "exactly at the limit" from "over it" without
    // trusting metadata (a FIFO or /proc file has none that is true).
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(SuppressError::TooLarge {
            kind,
            path: path.to_path_buf(),
            limit: MAX_FILE_SIZE,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| SuppressError::Invalid {
        kind,
        path: path.to_path_buf(),
        message: format!(
            "is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ),
    })?;
    // Editors on Windows write a byte-order mark that neither parser accepts.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// serde_yaml_ng and serde_json end their messages with " at line L column C"; the error
/// already puts the location after the path, editor-style.
fn strip_location(message: &str, location: Option<(usize, usize)>) -> String {
    if let Some((line, column)) = location
        && let Some(m) = message.strip_suffix(&format!(" at line {line} column {column}"))
    {
        return m.to_string();
    }
    message.to_string()
}

// ---------------------------------------------------------------------------------------
// The ignore file
// ---------------------------------------------------------------------------------------

/// The whole file: either a list of rules, or a mapping whose `ignore:` key (Grype's
/// spelling; `vulnerabilities:`, Trivy's, is accepted too) holds the list. Both forms are
/// accepted because users arrive with either habit; the mapping leaves room for keys
/// other than rules later.
struct IgnoreDoc(Vec<RawRule>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreMapping {
    #[serde(default, alias = "vulnerabilities")]
    ignore: Option<Vec<RawRule>>,
}

impl<'de> Deserialize<'de> for IgnoreDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocVisitor;
        impl<'de> Visitor<'de> for DocVisitor {
            type Value = IgnoreDoc;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of rules, or a mapping with an `ignore:` list of rules")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IgnoreDoc, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(IgnoreDoc)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IgnoreDoc, A::Error> {
                let m = IgnoreMapping::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(IgnoreDoc(m.ignore.unwrap_or_default()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<IgnoreDoc, E> {
                Ok(IgnoreDoc(Vec::new()))
            }
        }
        deserializer.deserialize_any(DocVisitor)
    }
}

/// One rule as written. Unknown keys are errors: a misspelt `expiry:` must not silently
/// make a rule that never expires. The aliases are Grype's (`vulnerability`) and Trivy's
/// (`expired_at`, `statement`) names for the same things.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(alias = "vulnerability", deserialize_with = "de_id")]
    id: String,
    #[serde(default, deserialize_with = "de_package")]
    package: Option<String>,
    #[serde(default, alias = "expired_at", deserialize_with = "de_expiry")]
    expires: Option<Expiry>,
    /// Required: a suppression hides a risk, and the reason is what every report shows
    /// next to the suppressed finding; a rule nobody can explain is a rule nobody removes.
    #[serde(alias = "statement", deserialize_with = "de_reason")]
    reason: String,
}

fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(de::Error::custom(format!(
            "`id` {s:?} is not a vulnerability id; write one id (CVE-2024-1234, GHSA-…) per rule"
        )));
    }
    Ok(s.to_string())
}

fn de_package<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        _ => Err(de::Error::custom(
            "`package` is empty; name a package (or purl), or remove the key to match every package",
        )),
    }
}

fn de_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(de::Error::custom(
            "`reason` is empty; say why the finding is acceptable (reports show it)",
        )),
    }
}

fn de_expiry<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Expiry>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Err(de::Error::custom(
            "`expires` is empty; give a date (2025-06-30) or remove the key",
        ));
    };
    let text = text.trim().to_string();
    match parse_expiry(&text) {
        Some(at) => Ok(Some(Expiry { at, text })),
        None => Err(de::Error::custom(format!(
            "`expires` {text:?} is neither a date (2025-06-30) nor an RFC 3339 time (2025-06-30T12:00:00Z)"
        ))),
    }
}

/// A date expires at its first instant in UTC (`expires: 2025-06-30` no longer suppresses
/// on 30 June), as Trivy's `expired_at` does.
fn parse_expiry(text: &str) -> Option<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    // Only the plain date form: jiff would also accept a date-time without offset, whose
    // time zone would be a guess.
    if text.len() != 10 {
        return None;
    }
    let date = text.parse::<jiff::civil::Date>().ok()?;
    date.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

// ---------------------------------------------------------------------------------------
// OpenVEX
// ---------------------------------------------------------------------------------------

/// An OpenVEX document as read: lenient (JSON-LD allows extra keys, v0.0.1 writes
/// `version` as a string), strict only about what matching needs.
#[derive(Deserialize)]
struct RawVexDoc {
    #[serde(rename = "@context", default)]
    context: Option<serde_json::Value>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    statements: Option<Vec<RawStatement>>,
    // Only to say what the file is when it is not OpenVEX.
    #[serde(rename = "bomFormat", default)]
    bom_format: Option<IgnoredAny>,
    #[serde(default)]
    predicate: Option<IgnoredAny>,
    #[serde(default)]
    document: Option<IgnoredAny>,
}

impl RawVexDoc {
    fn is_openvex(&self) -> bool {
        let is_ns =
            |v: &serde_json::Value| v.as_str().is_some_and(|s| s.contains("openvex.dev/ns"));
        match &self.context {
            Some(serde_json::Value::Array(items)) => items.iter().any(is_ns),
            Some(v) => is_ns(v),
            None => false,
        }
    }

    fn not_openvex_message(&self) -> String {
        let what = if self.bom_format.is_some() {
            "a CycloneDX document"
        } else if self.predicate.is_some() {
            "an attestation; extract its predicate (jq .predicate) and pass that"
        } else if self.document.is_some() {
            "a CSAF document"
        } else {
            "not an OpenVEX document"
        };
        format!(
            "is {what}: its `@context` is not https://openvex.dev/ns/…; Bulkhead reads OpenVEX JSON (v0.0.1 to v0.2.0)"
        )
    }
}

#[derive(Deserialize)]
struct RawStatement {
    #[serde(default)]
    vulnerability: Option<RawVulnerability>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    products: Option<Vec<RawComponent>>,
    /// v0.0.1: statement-level subcomponents (strings), for every product.
    #[serde(default)]
    subcomponents: Option<Vec<RawComponent>>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    impact_statement: Option<String>,
    #[serde(default)]
    status_notes: Option<String>,
}

/// v0.2.0 writes an object, v0.0.1 a string.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "`vulnerability` must be a string (CVE-2023-1234) or an object with `name`"
)]
enum RawVulnerability {
    Name(String),
    Object {
        #[serde(default)]
        name: Option<String>,
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        aliases: Option<Vec<String>>,
    },
}

/// A product or subcomponent: v0.2.0 writes an object, v0.0.1 a string.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "each product and subcomponent must be a string (purl, image reference) or an object with `@id` or `identifiers`"
)]
enum RawComponent {
    Id(String),
    Object {
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        identifiers: Option<RawIdentifiers>,
        #[serde(default)]
        subcomponents: Option<Vec<RawComponent>>,
    },
}

#[derive(Deserialize)]
struct RawIdentifiers {
    // CPEs are not matched: findings carry no CPE.
    #[serde(default)]
    purl: Option<String>,
}

impl RawComponent {
    fn ids(&self) -> Vec<String> {
        let ids: Vec<&String> = match self {
            RawComponent::Id(s) => vec![s],
            RawComponent::Object {
                id, identifiers, ..
            } => id
                .iter()
                .chain(identifiers.as_ref().and_then(|i| i.purl.as_ref()))
                .collect(),
        };
        ids.into_iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn subcomponents(&self) -> &[RawComponent] {
        match self {
            RawComponent::Object {
                subcomponents: Some(s),
                ..
            } => s,
            _ => &[],
        }
    }
}

impl RawStatement {
    /// `Err`: the document is malformed (stop). `Ok(Err)`: this statement cannot be used
    /// (warn, skip it). Third-party documents should not fail a scan over one statement,
    /// but a timestamp that does not parse makes the ordering of all of them a guess.
    fn validate(
        self,
        doc_timestamp: Option<Timestamp>,
    ) -> Result<Result<VexStatement, String>, String> {
        let timestamp = match self.timestamp.as_deref() {
            Some(t) => Some(parse_timestamp(t).map_err(|e| {
                format!(
                    "`timestamp` {t:?} is not an RFC 3339 time ({e}); write it like 2023-01-08T18:02:03-06:00"
                )
            })?),
            None => doc_timestamp,
        };

        let mut ids = Vec::new();
        match self.vulnerability {
            Some(RawVulnerability::Name(n)) => ids.push(n),
            Some(RawVulnerability::Object { name, id, aliases }) => {
                ids.extend(name);
                // `@id` is an IRI such as https://nvd.nist.gov/vuln/detail/CVE-2019-17571.
                ids.extend(
                    id.as_deref()
                        .and_then(|i| i.trim_end_matches('/').rsplit('/').next())
                        .map(str::to_string),
                );
                ids.extend(aliases.into_iter().flatten());
            }
            None => {}
        }
        ids.retain(|i| !i.trim().is_empty());
        let Some(vulnerability) = ids.first().cloned() else {
            return Ok(Err("names no vulnerability".into()));
        };

        let Some(status_text) = self.status.as_deref() else {
            return Ok(Err(format!("({vulnerability}) has no `status`")));
        };
        let Some(status) = VexStatus::parse(status_text) else {
            return Ok(Err(format!(
                "({vulnerability}) has status {status_text:?}, not one of not_affected, affected, fixed, under_investigation"
            )));
        };
        let nonempty =
            |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let justification = nonempty(self.justification);
        let impact = nonempty(self.impact_statement);
        let notes = nonempty(self.status_notes);
        if status == VexStatus::NotAffected && justification.is_none() && impact.is_none() {
            return Ok(Err(format!(
                "({vulnerability}) is not_affected without a `justification` or `impact_statement`, which OpenVEX requires"
            )));
        }

        let shared_subcomponents = self.subcomponents.unwrap_or_default();
        let products: Vec<VexProduct> = self
            .products
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let subs: Vec<&RawComponent> = p
                    .subcomponents()
                    .iter()
                    .chain(&shared_subcomponents)
                    .collect();
                VexProduct {
                    ids: p.ids(),
                    subcomponents: subs.iter().flat_map(|s| s.ids()).collect(),
                    has_subcomponents: !subs.is_empty(),
                }
            })
            .collect();
        if !products.iter().any(|p| !p.ids.is_empty()) {
            // Products may be inherited from an encapsulating document, which Bulkhead
            // does not read; applying the statement to everything would be a guess.
            return Ok(Err(format!(
                "({vulnerability}) names no product with an `@id` or purl"
            )));
        }

        let reason = match (status, justification, impact) {
            (VexStatus::NotAffected, Some(j), Some(i)) => format!("vex not_affected: {j}: {i}"),
            (VexStatus::NotAffected, Some(x), None) | (VexStatus::NotAffected, None, Some(x)) => {
                format!("vex not_affected: {x}")
            }
            _ => match notes {
                Some(n) => format!("vex {status_text}: {n}"),
                None => format!("vex {status_text}"),
            },
        };
        Ok(Ok(VexStatement {
            ids,
            timestamp,
            products,
            status,
            reason,
        }))
    }
}

fn parse_timestamp(text: &str) -> Result<Timestamp, jiff::Error> {
    text.trim().parse::<Timestamp>()
}

// ---------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------

/// Vulnerability ids compare case-insensitively (`cve-2024-1234` is a common typo and
/// GHSA ids mix cases between feeds).
fn id_key(id: &str) -> String {
    id.trim().to_ascii_uppercase()
}

fn is_purl(s: &str) -> bool {
    s.trim_start()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("pkg:"))
}

/// Whether a VEX product or subcomponent identifier names the finding's package.
fn names_package(id: &str, f: &Finding) -> bool {
    is_purl(id) && !names_an_image(id) && purl_names_package(id, f)
}

/// `same_package` (type, namespace, name, and version when the pattern has one), and the
/// same architecture when both purls say one: a statement about the x86_64 build is not
/// about the arm64 one. Other qualifiers (`distro`) are spelt differently by different
/// tools and are ignored.
fn purl_names_package(pattern: &str, f: &Finding) -> bool {
    let pattern = pattern.trim();
    if !same_package(pattern, &f.purl) {
        return false;
    }
    let arch = |s: &str| {
        PackageUrl::from_str(s)
            .ok()
            .and_then(|p| p.qualifiers().get("arch").map(|a| a.to_ascii_lowercase()))
    };
    match (arch(pattern), arch(&f.purl)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Whether an identifier is about an image rather than a package: an `oci` purl, or
/// anything that is not a purl (a reference or a digest).
fn names_an_image(id: &str) -> bool {
    if !is_purl(id) {
        return true;
    }
    PackageUrl::from_str(id.trim()).is_ok_and(|p| p.ty() == "oci")
}

/// Whether a VEX product identifier names the scanned image.
fn names_image(id: &str, image: &ImageIdentity) -> bool {
    let id = id.trim();
    if id.is_empty() {
        return false;
    }
    let ours = our_digest(image);
    if is_purl(id) {
        let Ok(p) = PackageUrl::from_str(id) else {
            return false;
        };
        if p.ty() != "oci" {
            return false;
        }
        // The purl spec makes the digest the version; with one, only the digest decides.
        if let Some(v) = p.version() {
            return ours.is_some_and(|d| digest_eq(v, d));
        }
        // Without a digest (Trivy's `pkg:oci/trivy?repository_url=ghcr.io/aquasecurity/trivy`):
        // the name is the repository's last segment, and the qualifiers, when present,
        // must agree.
        let (repo, tag, _) = split_reference(image.reference);
        let repo = normalize_repository(repo);
        let last = repo.rsplit('/').next().unwrap_or(&repo);
        if !p.name().eq_ignore_ascii_case(last) {
            return false;
        }
        let q = p.qualifiers();
        let url_agrees = q
            .get("repository_url")
            .is_none_or(|url| normalize_repository(url) == repo);
        let tag_agrees = q
            .get("tag")
            .is_none_or(|t| t.as_ref() == tag.unwrap_or("latest"));
        return url_agrees && tag_agrees;
    }
    if id == image.reference {
        return true;
    }
    if ours.is_some_and(|d| digest_eq(id, d)) {
        return true;
    }
    let (repo, tag, digest) = split_reference(id);
    if let Some(theirs) = digest {
        return ours.is_some_and(|d| digest_eq(theirs, d));
    }
    let (our_repo, our_tag, _) = split_reference(image.reference);
    normalize_repository(repo) == normalize_repository(our_repo)
        && tag.unwrap_or("latest") == our_tag.unwrap_or("latest")
}

fn our_digest<'a>(image: &ImageIdentity<'a>) -> Option<&'a str> {
    image
        .digest
        .or_else(|| split_reference(image.reference).2)
        .map(str::trim)
        .filter(|d| !d.is_empty())
}

fn digest_eq(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// `registry/repo:tag@digest` → (`registry/repo`, tag, digest). A `:` after the last `/`
/// starts the tag; one before it is a registry port.
fn split_reference(r: &str) -> (&str, Option<&str>, Option<&str>) {
    let r = r.trim();
    let r = r.strip_prefix("docker://").unwrap_or(r);
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() => (repo, Some(tag), digest),
        _ => (name, None, digest),
    }
}

/// Docker Hub's implicit registry and `library/` namespace: `docker.io/library/alpine`,
/// `index.docker.io/library/alpine` and `alpine` are one repository.
fn normalize_repository(repo: &str) -> String {
    let mut r = repo.trim().to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = r.strip_prefix(scheme) {
            r = rest.to_string();
        }
    }
    for hub in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = r.strip_prefix(hub) {
            r = rest.to_string();
            break;
        }
    }
    match r.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest.to_string(),
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_model::{FixState, Severity};
    use std::io::Write;

    const ALPINE_DIGEST: &str =
        "sha256:124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126";

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/vex")
            .join(name)
    }

    fn finding(
        id: &str,
        aliases: &[&str],
        package: &str,
        source: Option<&str>,
        purl: &str,
    ) -> Finding {
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

    fn libssl(id: &str) -> Finding {
        finding(
            id,
            &[],
            "libssl3",
            Some("openssl"),
            "pkg:apk/alpine/libssl3@3.0.8-r3?arch=x86_64&distro=3.17.3",
        )
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn image<'a>(reference: &'a str, digest: Option<&'a str>) -> ImageIdentity<'a> {
        ImageIdentity { reference, digest }
    }

    fn ids(v: &[Suppressed]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|s| (s.finding.id.as_str(), s.finding.package.as_str()))
            .collect()
    }

    fn codes(a: &Applied) -> Vec<(Level, &str)> {
        a.diagnostics
            .iter()
            .map(|d| (d.level, d.code.as_str()))
            .collect()
    }

    fn ignore(text: &str) -> (tempfile::TempDir, PathBuf, Suppressions) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, ".bulkheadignore", text);
        let mut s = Suppressions::default();
        s.load_ignore_file(&path).expect("valid ignore file");
        (dir, path, s)
    }

    fn ignore_error(text: &str) -> (PathBuf, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, ".bulkheadignore", text);
        let err = Suppressions::default()
            .load_ignore_file(&path)
            .expect_err("invalid ignore file");
        (path, err.to_string())
    }

    const NOW: &str = "2025-03-01T12:00:00Z";

    #[test]
    fn default_suppresses_nothing() {
        let s = Suppressions::default();
        assert!(s.is_empty());
        let a = s.apply(
            vec![libssl("CVE-2023-1255")],
            &image("alpine", None),
            ts(NOW),
        );
        assert_eq!(a.kept.len(), 1);
        assert!(a.suppressed.is_empty() && a.diagnostics.is_empty());
    }

    #[test]
    fn rule_matches_id_or_alias_case_insensitively() {
        let (_d, path, s) = ignore(
            "ignore:\n  - id: CVE-2023-0001\n    reason: not reachable\n  - id: dsa-5417-1\n    reason: vendor says minor\n",
        );
        assert!(!s.is_empty());
        let a = s.apply(
            vec![
                finding("CVE-2023-0001", &[], "curl", None, "pkg:deb/debian/curl@1"),
                finding(
                    "CVE-2023-0002",
                    &["DSA-5417-1"],
                    "curl",
                    None,
                    "pkg:deb/debian/curl@1",
                ),
                finding("CVE-2023-0003", &[], "curl", None, "pkg:deb/debian/curl@1"),
            ],
            &image("debian:12", None),
            ts(NOW),
        );
        assert_eq!(
            ids(&a.suppressed),
            [("CVE-2023-0001", "curl"), ("CVE-2023-0002", "curl")]
        );
        assert_eq!(a.suppressed[0].reason, "not reachable");
        assert_eq!(a.suppressed[1].reason, "vendor says minor");
        assert_eq!(a.suppressed[0].suppressed_by, path.display().to_string());
        assert_eq!(a.kept.len(), 1);
        assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
    }

    #[test]
    fn rule_package_by_name_source_name_and_purl() {
        // The bare-list form of the file.
        let (_d, _p, s) = ignore(
            "- id: CVE-1\n  package: libssl3\n  reason: binary name\n\
             - id: CVE-2\n  package: openssl\n  reason: source name\n\
             - id: CVE-3\n  package: pkg:apk/alpine/libssl3\n  reason: purl, any version\n\
             - id: CVE-4\n  package: pkg:apk/alpine/libssl3@3.0.8-r4\n  reason: purl, other version\n\
             - id: CVE-5\n  package: pkg:apk/alpine/libssl3@3.0.8-r3?arch=aarch64\n  reason: other arch\n\
             - id: CVE-6\n  package: libcrypto3\n  reason: other package\n",
        );
        let findings = ["CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-5", "CVE-6"]
            .into_iter()
            .map(libssl)
            .collect();
        let a = s.apply(findings, &image("alpine", None), ts(NOW));
        assert_eq!(
            ids(&a.suppressed),
            [
                ("CVE-1", "libssl3"),
                ("CVE-2", "libssl3"),
                ("CVE-3", "libssl3")
            ]
        );
        let kept: Vec<&str> = a.kept.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(kept, ["CVE-4", "CVE-5", "CVE-6"]);
        // Rules 4 to 6 matched nothing.
        let unused: Vec<&str> = a
            .diagnostics
            .iter()
            .filter(|d| d.code == "ignore-rule-unused")
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(unused.len(), 3, "{unused:?}");
        assert!(unused[0].contains("rule 4 (CVE-4, package pkg:apk/alpine/libssl3@3.0.8-r4)"));
        assert!(a.diagnostics.iter().all(|d| d.level == Level::Info));
    }

    #[test]
    fn expired_rules_do_not_suppress_and_warn() {
        let (_d, path, s) = ignore(
            "ignore:\n\
             - id: CVE-1\n  expires: 2025-03-01\n  reason: date, expired at midnight UTC\n\
             - id: CVE-2\n  expires: 2025-03-02\n  reason: date, tomorrow\n\
             - id: CVE-3\n  expires: 2025-03-01T11:59:59Z\n  reason: time, a second ago\n\
             - id: CVE-4\n  expires: \"2025-03-01T13:00:00+02:00\"\n  reason: 11:00 UTC, past\n\
             - id: CVE-5\n  expired_at: 2025-03-01T12:00:01Z\n  reason: trivy spelling, future\n",
        );
        let findings = ["CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-5"]
            .into_iter()
            .map(libssl)
            .collect();
        let a = s.apply(findings, &image("alpine", None), ts(NOW));
        assert_eq!(
            ids(&a.suppressed),
            [("CVE-2", "libssl3"), ("CVE-5", "libssl3")]
        );
        let expired: Vec<&Diagnostic> = a
            .diagnostics
            .iter()
            .filter(|d| d.code == "ignore-rule-expired")
            .collect();
        assert_eq!(expired.len(), 3);
        assert!(expired.iter().all(|d| d.level == Level::Warning));
        let m = &expired[0].message;
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(
            m.contains("rule 1 (CVE-1)") && m.contains("2025-03-01"),
            "{m}"
        );
        // Expired rules are not also reported as unused.
        assert!(!a.diagnostics.iter().any(|d| d.code == "ignore-rule-unused"));
    }

    #[test]
    fn empty_and_comment_only_files_have_no_rules() {
        for text in ["", "# nothing yet\n", "ignore:\n", "ignore: []\n", "[]\n"] {
            let (_d, _p, s) = ignore(text);
            assert!(s.rules.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn malformed_ignore_files_name_path_line_and_fix() {
        let cases = [
            // A misspelt key must not become a rule that never expires.
            (
                "ignore:\n  - id: CVE-1\n    reason: r\n    expiry: 2024-01-01\n",
                ":4:",
                "unknown field `expiry`",
            ),
            ("- id: CVE-1\n", ":1:", "missing field `reason`"),
            (
                "- id: CVE-1\n  reason: \"  \"\n",
                ":1:",
                "`reason` is empty",
            ),
            (
                "- id: CVE-1\n  reason: r\n  expires: next week\n",
                ":1:",
                "`expires` \"next week\" is neither a date",
            ),
            (
                "- id: CVE-1\n  reason: r\n  expires: 2024-02-30\n",
                ":1:",
                "is neither a date",
            ),
            (
                "- id: CVE-1\n  reason: r\n  expires:\n",
                ":1:",
                "`expires` is empty",
            ),
            (
                "- id: CVE-1 CVE-2\n  reason: r\n",
                ":1:",
                "is not a vulnerability id",
            ),
            (
                "- id: CVE-1\n  package:\n  reason: r\n",
                ":1:",
                "`package` is empty",
            ),
            (
                "- id: [CVE-1]\n  reason: r\n",
                ":1:7",
                "invalid type: sequence",
            ),
            ("rules:\n  - id: CVE-1\n", ":1:", "unknown field `rules`"),
            ("just a string\n", "", "a list of rules"),
            (
                "- id: CVE-1\n  id: CVE-2\n  reason: r\n",
                ":1:",
                "duplicate field `id`",
            ),
            ("\t- id: CVE-1\n", ":1:1", "cannot start any token"),
        ];
        for (text, location, message) in cases {
            let (path, err) = ignore_error(text);
            let prefix = format!("ignore file {}{location}", path.display());
            assert!(err.starts_with(&prefix), "{text:?}: {err}");
            assert!(err.contains(message), "{text:?}: {err}");
        }
    }

    #[test]
    fn hostile_ignore_files_are_errors() {
        // Billion laughs: nine levels of nine aliases.
        let mut bomb =
            String::from("- &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            bomb.push_str(&format!("- &{} [{refs}]\n", w[1]));
        }
        let (_p, err) = ignore_error(&bomb);
        assert!(err.contains("ignore file"), "{err}");

        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let (path, err) = ignore_error(&deep);
        assert!(
            err.starts_with(&format!("ignore file {}", path.display())),
            "{err}"
        );

        let (_p, err) = ignore_error("- id: CVE-1\n  reason: r\n---\n- id: CVE-2\n  reason: r\n");
        assert!(err.contains("more than one document"), "{err}");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        let mut f = std::fs::File::create(&path).expect("create");
        let chunk = vec![b'#'; 1 << 20];
        for _ in 0..16 {
            f.write_all(&chunk).expect("write");
        }
        f.write_all(b"\n").expect("write");
        drop(f);
        let err = Suppressions::default()
            .load_ignore_file(&path)
            .expect_err("too large");
        assert!(matches!(err, SuppressError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));

        let path = dir.path().join("latin1");
        std::fs::write(&path, b"- id: CVE-1\n  reason: caf\xe9\n").expect("write");
        let err = Suppressions::default()
            .load_ignore_file(&path)
            .expect_err("not utf-8");
        assert!(err.to_string().contains("not UTF-8"), "{err}");

        let missing = dir.path().join("absent");
        let err = Suppressions::default()
            .load_ignore_file(&missing)
            .expect_err("missing");
        assert!(matches!(err, SuppressError::Read { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));
    }

    // --- OpenVEX ---------------------------------------------------------------------

    fn vex(paths: &[&Path]) -> Suppressions {
        let mut s = Suppressions::default();
        for p in paths {
            s.load_vex(p).expect("valid VEX document");
        }
        s
    }

    fn vex_text(text: &str) -> (tempfile::TempDir, PathBuf, Suppressions) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "doc.openvex.json", text);
        let s = vex(&[&path]);
        (dir, path, s)
    }

    fn vex_error(text: &str) -> (PathBuf, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "doc.openvex.json", text);
        let err = Suppressions::default()
            .load_vex(&path)
            .expect_err("invalid VEX document");
        (path, err.to_string())
    }

    #[test]
    fn openvex_v020_example_suppresses_in_the_named_image() {
        // go-vex's v0.2.0 example: the alpine image by digest, libssl3 and libcrypto3 as
        // subcomponents; CVE-2023-1255/2650/2975 fixed, CVE-2023-3446/3817 not_affected.
        let path = fixture("go-vex-v0.2.0.json");
        let s = vex(&[&path]);
        let findings = vec![
            libssl("CVE-2023-1255"),
            libssl("CVE-2023-3446"),
            finding(
                "CVE-2023-3817",
                &[],
                "libcrypto3",
                Some("openssl"),
                "pkg:apk/alpine/libcrypto3@3.0.8-r3?arch=x86_64&distro=3.17.3",
            ),
            // Not in the document.
            libssl("CVE-2024-0727"),
            // In the document, but musl is not a listed subcomponent.
            finding(
                "CVE-2023-2650",
                &[],
                "musl",
                None,
                "pkg:apk/alpine/musl@1.2.3-r4?arch=x86_64",
            ),
            // A listed subcomponent, but another version than the one the statement is about.
            finding(
                "CVE-2023-2975",
                &[],
                "libssl3",
                Some("openssl"),
                "pkg:apk/alpine/libssl3@3.0.7-r0?arch=x86_64",
            ),
        ];
        let a = s.apply(
            findings.clone(),
            &image("alpine:3.17", Some(ALPINE_DIGEST)),
            ts(NOW),
        );
        assert_eq!(
            ids(&a.suppressed),
            [
                ("CVE-2023-1255", "libssl3"),
                ("CVE-2023-3446", "libssl3"),
                ("CVE-2023-3817", "libcrypto3")
            ]
        );
        assert_eq!(a.suppressed[0].reason, "vex fixed");
        assert_eq!(
            a.suppressed[1].reason,
            "vex not_affected: vulnerable_code_not_present: affected functions were removed before packaging"
        );
        assert_eq!(a.suppressed[1].suppressed_by, path.display().to_string());
        let kept: Vec<&str> = a.kept.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(kept, ["CVE-2024-0727", "CVE-2023-2650", "CVE-2023-2975"]);
        assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);

        // Another build of the image: nothing applies, and the user is told why.
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let a = s.apply(findings, &image("alpine:3.17", Some(other)), ts(NOW));
        assert!(a.suppressed.is_empty());
        assert_eq!(codes(&a), [(Level::Warning, "vex-not-applicable")]);
        assert!(a.diagnostics[0].message.contains("another build"));
    }

    #[test]
    fn openvex_v001_strings_and_arch_qualifier() {
        // go-vex's v0.0.1 example: plain-string vulnerability and products (git for armv7
        // and x86_64), status fixed.
        let s = vex(&[&fixture("go-vex-v0.0.1.json")]);
        let git = |arch: &str, version: &str| {
            finding(
                "CVE-2023-12345",
                &[],
                "git",
                None,
                &format!("pkg:apk/wolfi/git@{version}?arch={arch}"),
            )
        };
        let a = s.apply(
            vec![
                git("x86_64", "2.39.0-r1"),
                git("aarch64", "2.39.0-r1"),
                git("x86_64", "2.40.0-r0"),
            ],
            &image("cgr.dev/chainguard/git", None),
            ts(NOW),
        );
        assert_eq!(a.suppressed.len(), 1);
        assert_eq!(
            a.suppressed[0].finding.purl,
            "pkg:apk/wolfi/git@2.39.0-r1?arch=x86_64"
        );
        assert_eq!(a.suppressed[0].reason, "vex fixed");
        assert_eq!(a.kept.len(), 2);
    }

    #[test]
    fn image_product_without_subcomponents_covers_every_package() {
        let doc = format!(
            r#"{{
  "@context": "https://openvex.dev/ns/v0.2.0",
  "@id": "https://example.invalid/vex/1",
  "author": "test",
  "timestamp": "2024-01-01T00:00:00Z",
  "version": 1,
  "statements": [
    {{ "vulnerability": {{ "name": "CVE-2024-1" }},
       "products": [ {{ "@id": "pkg:oci/app@{}?repository_url=ghcr.io/o/app" }} ],
       "status": "not_affected", "justification": "component_not_present" }},
    {{ "vulnerability": {{ "name": "CVE-2024-2", "aliases": ["GHSA-aaaa-bbbb-cccc"] }},
       "products": [ "ghcr.io/o/app:1.0" ],
       "status": "not_affected", "impact_statement": "we never call it" }},
    {{ "vulnerability": "CVE-2024-3", "products": ["{ALPINE_DIGEST}"], "status": "fixed",
       "status_notes": "rebuilt" }},
    {{ "vulnerability": "CVE-2024-4", "products": ["ghcr.io/o/app:0.9"], "status": "fixed" }}
  ]
}}"#,
            ALPINE_DIGEST.replace(':', "%3A")
        );
        let (_d, _p, s) = vex_text(&doc);
        let pkg = |id: &str, aliases: &[&str], name: &str| {
            finding(id, aliases, name, None, &format!("pkg:deb/debian/{name}@1"))
        };
        let a = s.apply(
            vec![
                pkg("CVE-2024-1", &[], "zlib1g"),
                pkg("CVE-2024-1", &[], "libc6"),
                pkg("GHSA-AAAA-BBBB-CCCC", &[], "zlib1g"),
                pkg("CVE-2024-3", &[], "zlib1g"),
                pkg("CVE-2024-4", &[], "zlib1g"),
            ],
            &image("ghcr.io/o/app:1.0", Some(ALPINE_DIGEST)),
            ts(NOW),
        );
        assert_eq!(
            ids(&a.suppressed),
            [
                ("CVE-2024-1", "zlib1g"),
                ("CVE-2024-1", "libc6"),
                ("GHSA-AAAA-BBBB-CCCC", "zlib1g"),
                ("CVE-2024-3", "zlib1g")
            ]
        );
        assert_eq!(
            a.suppressed[0].reason,
            "vex not_affected: component_not_present"
        );
        assert_eq!(a.suppressed[2].reason, "vex not_affected: we never call it");
        assert_eq!(a.suppressed[3].reason, "vex fixed: rebuilt");
        // The 0.9 tag is another image.
        assert_eq!(a.kept.len(), 1);
        assert_eq!(a.kept[0].id, "CVE-2024-4");
    }

    #[test]
    fn latest_statement_wins_across_statements_and_documents() {
        let head = r#""@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "t", "version": 1"#;
        let product = r#""products": [{"@id": "pkg:deb/debian/curl"}]"#;
        let dir = tempfile::tempdir().expect("tempdir");
        // First document: not_affected on 1 March, then (document timestamp, inherited)
        // affected on 2 March for CVE-1; for CVE-2 the order is the other way round.
        let first = write(
            &dir,
            "first.json",
            &format!(
                r#"{{ {head}, "timestamp": "2024-03-02T00:00:00Z", "statements": [
  {{ "timestamp": "2024-03-01T00:00:00Z", "vulnerability": {{"name": "CVE-1"}}, {product},
     "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path" }},
  {{ "vulnerability": {{"name": "CVE-1"}}, {product}, "status": "affected",
     "action_statement": "upgrade" }},
  {{ "timestamp": "2024-03-01T00:00:00Z", "vulnerability": {{"name": "CVE-2"}}, {product},
     "status": "under_investigation" }},
  {{ "vulnerability": {{"name": "CVE-2"}}, {product}, "status": "fixed" }},
  {{ "timestamp": "2024-03-01T00:00:00Z", "vulnerability": {{"name": "CVE-3"}}, {product},
     "status": "not_affected", "justification": "inline_mitigations_already_exist" }}
]}}"#
            ),
        );
        // Second document, later: CVE-3 is now under investigation.
        let second = write(
            &dir,
            "second.json",
            &format!(
                r#"{{ {head}, "timestamp": "2024-04-01T00:00:00-05:00", "statements": [
  {{ "vulnerability": {{"name": "CVE-3"}}, {product}, "status": "under_investigation" }}
]}}"#
            ),
        );
        let curl = |id: &str| finding(id, &[], "curl", None, "pkg:deb/debian/curl@7.88.1-10");
        let findings = || vec![curl("CVE-1"), curl("CVE-2"), curl("CVE-3")];
        let img = image("debian:12", None);

        let a = vex(&[&first]).apply(findings(), &img, ts(NOW));
        assert_eq!(ids(&a.suppressed), [("CVE-2", "curl"), ("CVE-3", "curl")]);
        assert_eq!(a.suppressed[0].reason, "vex fixed");

        // Load order does not matter: timestamps decide.
        for order in [[&first, &second], [&second, &first]] {
            let a = vex(&[order[0], order[1]]).apply(findings(), &img, ts(NOW));
            assert_eq!(ids(&a.suppressed), [("CVE-2", "curl")]);
            let kept: Vec<&str> = a.kept.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(kept, ["CVE-1", "CVE-3"]);
        }
    }

    #[test]
    fn not_affected_without_justification_is_a_warning() {
        let (_d, path, s) = vex_text(
            r#"{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "t",
                "timestamp": "2024-01-01T00:00:00Z", "version": 1, "statements": [
  {"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:deb/debian/curl"}],
   "status": "not_affected"},
  {"vulnerability": {"name": "CVE-2"}, "products": [{"@id": "pkg:deb/debian/curl"}],
   "status": "wontfix"},
  {"vulnerability": {"name": "CVE-3"}, "status": "fixed"}
]}"#,
        );
        assert!(!s.is_empty());
        let curl = |id: &str| finding(id, &[], "curl", None, "pkg:deb/debian/curl@1");
        let a = s.apply(
            vec![curl("CVE-1"), curl("CVE-2"), curl("CVE-3")],
            &image("debian:12", None),
            ts(NOW),
        );
        assert!(a.suppressed.is_empty());
        assert_eq!(a.kept.len(), 3);
        let invalid: Vec<&Diagnostic> = a
            .diagnostics
            .iter()
            .filter(|d| d.code == "vex-statement-invalid")
            .collect();
        assert_eq!(invalid.len(), 3, "{:?}", a.diagnostics);
        assert!(invalid.iter().all(|d| d.level == Level::Warning));
        let file = path.display().to_string();
        assert!(
            invalid[0]
                .message
                .starts_with(&format!("{file}: statement 1 (CVE-1)"))
        );
        assert!(invalid[0].message.contains("justification"));
        assert!(invalid[1].message.contains("\"wontfix\""));
        assert!(invalid[2].message.contains("names no product"));
    }

    #[test]
    fn ignore_rules_come_before_vex() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ignore_path = write(
            &dir,
            ".bulkheadignore",
            "- id: CVE-2023-1255\n  reason: mine\n",
        );
        let mut s = Suppressions::default();
        s.load_ignore_file(&ignore_path).expect("ignore file");
        s.load_vex(&fixture("go-vex-v0.2.0.json")).expect("vex");
        let a = s.apply(
            vec![libssl("CVE-2023-1255"), libssl("CVE-2023-2650")],
            &image("alpine", Some(ALPINE_DIGEST)),
            ts(NOW),
        );
        assert_eq!(a.suppressed[0].reason, "mine");
        assert_eq!(a.suppressed[1].reason, "vex fixed");
        assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
    }

    #[test]
    fn malformed_vex_documents_name_path_and_line() {
        let (path, err) = vex_error(
            "{\n  \"@context\": \"https://openvex.dev/ns/v0.2.0\",\n  \"statements\": [\n    {\"status\": \"fixed\",}\n  ]\n}\n",
        );
        assert!(
            err.starts_with(&format!("VEX document {}:4:", path.display())),
            "{err}"
        );

        let (path, err) = vex_error(
            "{\"@context\": \"https://openvex.dev/ns/v0.2.0\",\n \"statements\": [{\"vulnerability\": 7, \"status\": \"fixed\"}]}",
        );
        assert!(
            err.starts_with(&format!("VEX document {}:2:", path.display())),
            "{err}"
        );
        assert!(err.contains("`vulnerability` must be a string"), "{err}");

        let (_p, err) =
            vex_error(r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": []}"#);
        assert!(err.contains("is a CycloneDX document"), "{err}");

        let (_p, err) = vex_error(r#"{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x"}"#);
        assert!(err.contains("no `statements`"), "{err}");

        let (_p, err) = vex_error(
            r#"{"@context": "https://openvex.dev/ns/v0.2.0", "timestamp": "yesterday", "statements": []}"#,
        );
        assert!(err.contains("`timestamp` \"yesterday\""), "{err}");

        let (_p, err) = vex_error(
            r#"{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"timestamp": "2024-13-01T00:00:00Z", "vulnerability": "CVE-1", "products": ["x"], "status": "fixed"}]}"#,
        );
        assert!(err.contains("statement 1: `timestamp`"), "{err}");

        // Deep nesting where a value is built ends at serde_json's recursion limit, not
        // in a stack overflow; under an unknown key it is skipped without recursion.
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let (path, err) = vex_error(&format!("{{\"@context\": {nested}}}"));
        assert!(err.contains("recursion limit"), "{err}");
        assert!(
            err.starts_with(&format!("VEX document {}:1:", path.display())),
            "{err}"
        );
        let (_p, err) = vex_error(&format!(
            "{{\"@context\": \"https://openvex.dev/ns\", \"x\": {nested}}}"
        ));
        assert!(err.contains("no `statements`"), "{err}");
    }

    #[test]
    fn reference_normalisation() {
        let img = image("alpine:3.19", None);
        assert!(names_image("docker.io/library/alpine:3.19", &img));
        assert!(names_image("index.docker.io/library/alpine:3.19", &img));
        assert!(!names_image("alpine:3.18", &img));
        assert!(!names_image("alpine", &img));
        assert!(names_image(
            "alpine",
            &image("docker.io/library/alpine", None)
        ));
        assert!(names_image(
            "pkg:oci/alpine?repository_url=docker.io/library/alpine",
            &img
        ));
        assert!(!names_image(
            "pkg:oci/alpine?repository_url=ghcr.io/x/alpine",
            &img
        ));
        assert!(!names_image("pkg:oci/alpine?tag=3.18", &img));
        assert!(names_image(
            "localhost:5000/app:1",
            &image("localhost:5000/app:1", None)
        ));
        assert!(!names_image(
            "localhost:5000/app",
            &image("localhost:5000/app:1", None)
        ));
        let pinned = image("alpine@sha256:abc", None);
        assert!(names_image("sha256:ABC", &pinned));
        assert!(names_image("pkg:oci/alpine@sha256%3Aabc", &pinned));
        assert!(!names_image("pkg:oci/alpine@sha256%3Aabd", &pinned));
        assert!(!names_image("pkg:deb/debian/alpine", &pinned));
    }
}
