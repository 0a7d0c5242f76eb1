//! `--format template --template FILE`: a Jinja template (minijinja) over the JSON report,
//! for the shapes no built-in format has (a JUnit file for a CI server, a Markdown comment
//! for a pull request). Trivy users know the idea from its Go templates; the variables are
//! the fields of the JSON report (docs/report.schema.json), so a template never sees
//! anything the JSON report does not show.
//!
//! A template is the user's own file, but what it prints is not: every string in the report
//! may have come from an image or a feed. Templates named `*.html`, `*.xml` (also with
//! `.jinja`/`.j2` after them) escape HTML/XML by default, and the `sanitize` filter removes
//! terminal control sequences for text output.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};

use super::Report;

/// Largest template file read: templates are small; a larger file is a mistake.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("the template {} is not valid: {reason}", path.display())]
    Syntax { path: PathBuf, reason: String },
    #[error(
        "the template {} failed on this report: {reason} (the variables are the JSON report's fields: see docs/report.schema.json or run with --format json)",
        path.display()
    )]
    Render { path: PathBuf, reason: String },
}

/// A template read and compiled before the scan starts, so a typo costs no scan.
#[derive(Debug, Clone)]
pub struct Template {
    path: PathBuf,
    /// The file name: minijinja picks auto-escaping from its extension.
    name: String,
    /// Holds the compiled template, under `name`.
    env: Environment<'static>,
}

/// minijinja's errors name the line; its sources add the detail.
fn describe(e: &minijinja::Error) -> String {
    let mut reason = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        reason.push_str(&format!(": {c}"));
        cause = c.source();
    }
    reason
}

impl Template {
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let read = |reason: String| TemplateError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| read(e.to_string()))?
            .len();
        if len > MAX_TEMPLATE_BYTES {
            return Err(read(format!(
                "it has {len} bytes, more than the {MAX_TEMPLATE_BYTES} a template may have"
            )));
        }
        let source = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "template".into());
        let mut env = Environment::new();
        // A misspelt field is an error naming the line, not an empty column in a CI artefact.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("sanitize", |s: String| crate::text::sanitize(&s));
        // Compiled now: syntax errors surface before any image is pulled.
        env.add_template_owned(name.clone(), source)
            .map_err(|e| TemplateError::Syntax {
                path: path.to_path_buf(),
                reason: describe(&e),
            })?;
        Ok(Template {
            path: path.to_path_buf(),
            name,
            env,
        })
    }

    /// Render over `report`: its fields are the template's variables (`findings`,
    /// `packages`, `image`, `health`, …), plus `summary_line`, the table's last line.
    pub fn render(&self, report: &Report) -> Result<String, TemplateError> {
        let fail = |reason: String| TemplateError::Render {
            path: self.path.clone(),
            reason,
        };
        let mut context = serde_json::to_value(report).map_err(|e| fail(e.to_string()))?;
        if let Some(map) = context.as_object_mut() {
            map.insert(
                "summary_line".into(),
                serde_json::Value::String(super::summary_line(report)),
            );
        }
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|e| fail(describe(&e)))?;
        template
            .render(minijinja::Value::from_serialize(&context))
            .map_err(|e| fail(describe(&e)))
    }
}
