//! Errors that point into the query text: a byte span, a message and an optional hint,
//! rendered as `line:col`, the source line and a caret under the span.

use std::fmt;

/// A byte range in the query text (`start..end`, `end` exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// What went wrong, broadly: lets the service choose a status code without parsing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not a query (lexer or parser).
    Syntax,
    /// It parses but names an unknown table/column/function or mixes types.
    Semantic,
    /// It exceeds a size limit of the language (length, nesting, parameters).
    Limit,
}

/// A query error. `message` never contains SQL and never mentions anything outside the
/// caller's catalog (no tenant ids, no internal table names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub span: Span,
    pub hint: Option<String>,
}

impl Error {
    pub fn syntax(span: Span, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Syntax,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn semantic(span: Span, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Semantic,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn limit(span: Span, message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Limit,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_opt_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// 1-based line and column (in characters) of the span's start within `query`.
    pub fn line_col(&self, query: &str) -> (usize, usize) {
        let start = clamp_to_char_boundary(query, self.span.start);
        let before = &query[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = query[line_start..start].chars().count() + 1;
        (line, col)
    }

    /// The error as a human reads it:
    ///
    /// ```text
    /// error: unknown column 'Sevrity'
    ///  --> 1:18
    ///   |
    /// 1 | Findings | where Sevrity == 'Critical'
    ///   |                  ^^^^^^^
    ///   = hint: did you mean 'Severity'?
    /// ```
    pub fn render(&self, query: &str) -> String {
        let (line, col) = self.line_col(query);
        let start = clamp_to_char_boundary(query, self.span.start);
        let line_start = query[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = query[line_start..]
            .find('\n')
            .map_or(query.len(), |i| line_start + i);
        let source_line = &query[line_start..line_end];
        // The caret covers the span on this line only (a span running over several lines is
        // underlined to the end of its first line), at least one character wide.
        let end = clamp_to_char_boundary(query, self.span.end.clamp(start, line_end));
        let width = query[start..end].chars().count().max(1);
        let number = line.to_string();
        let pad = " ".repeat(number.len());
        let mut out = format!("error: {}\n{pad}--> {line}:{col}\n{pad} |\n", self.message);
        out.push_str(&format!("{number} | {}\n", sanitize_line(source_line)));
        out.push_str(&format!(
            "{pad} | {}{}\n",
            " ".repeat(col - 1),
            "^".repeat(width)
        ));
        if let Some(hint) = &self.hint {
            out.push_str(&format!("{pad} = hint: {hint}\n"));
        }
        out
    }

    /// The error as the service's JSON body: message, hint, line, column and the rendering.
    pub fn to_json(&self, query: &str) -> serde_json::Value {
        let (line, column) = self.line_col(query);
        serde_json::json!({
            "error": self.message,
            "kind": match self.kind {
                ErrorKind::Syntax => "syntax",
                ErrorKind::Semantic => "semantic",
                ErrorKind::Limit => "limit",
            },
            "hint": self.hint,
            "line": line,
            "column": column,
            "rendered": self.render(query),
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

fn clamp_to_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One character per character, so the caret stays aligned: a tab or a control character
/// in the echoed line would move it (or, for escape sequences, drive the terminal).
fn sanitize_line(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// "did you mean 'X'?" over `candidates`: a case-insensitive exact match first, then the
/// closest by edit distance if it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c.to_ascii_lowercase() == lower {
            return Some(format!("did you mean '{c}'?"));
        }
        let d = edit_distance(&lower, &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = (word.chars().count() / 3).max(1);
    (d <= limit).then(|| format!("did you mean '{c}'?"))
}

/// Levenshtein distance with adjacent transpositions (optimal string alignment): "Sevrity"
/// and "Severity" are one edit apart, "Sverity" too.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Names are short (the query's length limit bounds them anyway); two extra rows keep
    // this O(len(a) * len(b)) memory-light.
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("sevrity", "severity"), 1);
        assert_eq!(edit_distance("sverity", "severity"), 1);
        assert_eq!(edit_distance("severtiy", "severity"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let cols = ["Severity", "SeverityRank", "Registry"];
        assert_eq!(
            did_you_mean("Sevrity", cols).as_deref(),
            Some("did you mean 'Severity'?")
        );
        assert_eq!(
            did_you_mean("severity", cols).as_deref(),
            Some("did you mean 'Severity'?")
        );
        assert_eq!(did_you_mean("Digest", cols), None);
    }

    #[test]
    fn render_multiline_and_tabs() {
        let q = "Images\n|\twhere Foo == 1";
        let e = Error::semantic(Span::new(15, 18), "unknown column 'Foo'").with_hint("h");
        assert_eq!(e.line_col(q), (2, 9));
        assert_eq!(
            e.render(q),
            "error: unknown column 'Foo'\n --> 2:9\n  |\n2 | | where Foo == 1\n  |         ^^^\n  = hint: h\n"
        );
    }
}
