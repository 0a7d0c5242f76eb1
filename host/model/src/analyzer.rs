//! What an analyzer says about itself and returns for a layer: the sandbox lifts the
//! guest's WIT values into these (and validates them) before any other stage sees them.

use serde::{Deserialize, Serialize};

use crate::{Os, Package};

/// How an analyzer names the files it wants (see `wit/analyzer.wit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(String),
}

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathPattern::Exact(p) => write!(f, "{p}"),
            PathPattern::Prefix(p) => write!(f, "{p}**"),
            PathPattern::Suffix(s) => write!(f, "**/*{s}"),
            PathPattern::Glob(g) => write!(f, "{g}"),
        }
    }
}

/// A pattern with the largest file accepted for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileRequest {
    pub pattern: PathPattern,
    pub max_size: u64,
}

/// What an analyzer says about itself, validated by the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnalyzerMeta {
    pub name: String,
    pub version: String,
    pub ecosystem: String,
    pub requests: Vec<FileRequest>,
}

/// Where an analyzer's module came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Path(std::path::PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One analyzer's successful result for one layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    pub os: Option<Os>,
    pub packages: Vec<Package>,
    pub warnings: Vec<AnalyzerWarning>,
}

/// A warning an analyzer returned alongside its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerWarning {
    pub file: String,
    pub line: u32,
    pub message: String,
}
