//! Regular expressions for `matches regex` and `has`.
//!
//! PostgreSQL runs them with its own `~` operator. SQLite has no regular expressions, so
//! the store registers a deterministic SQL function `regexp(pattern, text)` on each
//! connection that calls [`sqlite_regexp`] (caching the compiled pattern per statement,
//! e.g. with rusqlite's `get_or_create_aux`). The compiler checks every pattern with
//! [`QueryRegex::new`] first, so a bad pattern is a query error with a caret, not a
//! failure in the middle of a scan.

/// Compiled-size limit: enough for any reasonable pattern; keeps a hostile one (say
/// `(a{1000}){1000}`) from taking memory and time to build.
const SIZE_LIMIT: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct QueryRegex(regex::Regex);

impl QueryRegex {
    /// Compiles `pattern` (Rust `regex` syntax; matching is linear in the text).
    pub fn new(pattern: &str) -> Result<QueryRegex, String> {
        regex::RegexBuilder::new(pattern)
            .size_limit(SIZE_LIMIT)
            .dfa_size_limit(SIZE_LIMIT)
            .nest_limit(64)
            .build()
            .map(QueryRegex)
            .map_err(|e| {
                // regex's messages are multi-line drawings of the pattern; the first
                // line that says what is wrong is enough next to our own caret.
                let text = e.to_string();
                text.lines()
                    .rev()
                    .find(|l| l.starts_with("error:"))
                    .map(|l| l.trim_start_matches("error:").trim().to_string())
                    .unwrap_or_else(|| text.lines().next().unwrap_or("invalid").to_string())
            })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

/// `regexp(pattern, text)` for SQLite: null text never matches (SQLite passes NULL as
/// `None`); an invalid pattern is an error (the compiler has already rejected those).
pub fn sqlite_regexp(pattern: &str, text: Option<&str>) -> Result<bool, String> {
    let re = QueryRegex::new(pattern)?;
    Ok(text.is_some_and(|t| re.is_match(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::has_pattern;

    #[test]
    fn has_is_a_whole_term_match() {
        let m = |term: &str, text: &str| {
            QueryRegex::new(&has_pattern(term))
                .expect("valid")
                .is_match(text)
        };
        assert!(m("openssl", "openssl"));
        assert!(m("openssl", "openssl-libs"));
        assert!(m("OpenSSL", "libs/openssl 3.0"));
        assert!(m("latest", r#"["1.25","latest"]"#));
        assert!(!m("ssl", "libssl3"));
        assert!(!m("openssl", "openssl3"));
        assert!(m("c++", "gcc c++ runtime"));
        assert!(m("a.b", "x a.b y"));
        assert!(!m("a.b", "x aXb y"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(QueryRegex::new("(").is_err());
        assert!(QueryRegex::new("(a{1000}){1000}").is_err());
        assert_eq!(sqlite_regexp("^3\\.0\\.", Some("3.0.11")), Ok(true));
        assert_eq!(sqlite_regexp("^3\\.0\\.", None), Ok(false));
    }
}
