//! Diagnostics: what a scan tells its user besides findings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bad a diagnostic is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    /// Part of the inventory is missing: the scan is incomplete.
    Error,
}

impl Diagnostic {
    /// A warning about the whole scan (no analyzer or layer concerned).
    pub fn warning(code: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            code: code.to_string(),
            analyzer: None,
            layer: None,
            message: message.into(),
        }
    }
}

/// Something the user should know about a scan: an analyzer that failed or was stopped,
/// a file that was too large to extract, a warning from an analyzer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnostic {
    pub level: Level,
    /// A stable machine-readable code: `analyzer-timeout`, `analyzer-memory`,
    /// `file-too-large`, …
    pub code: String,
    /// The analyzer concerned, as `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<String>,
    /// The layer concerned (its diff_id), or the source for a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    pub message: String,
}
