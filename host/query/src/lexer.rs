//! Tokens of the query language, each with its byte span.

use crate::error::{Error, Span};
use crate::time;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A name: table, column, operator, function or keyword (keywords are contextual,
    /// as in Kusto). Includes the hyphenated operators (`project-away`) and `$left`/`$right`.
    Ident(String),
    Str(String),
    Long(i64),
    Real(f64),
    /// A timespan literal (`7d`, `1.5h`), in milliseconds.
    Timespan(i64),
    /// A `datetime(...)` literal, in milliseconds since the epoch.
    Datetime(i64),
    Punct(&'static str),
    Eof,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

/// Operators whose names contain a hyphen. Everything else with a `-` is a subtraction.
const HYPHENATED: &[&str] = &[
    "project-away",
    "project-rename",
    "project-keep",
    "project-reorder",
    "mv-expand",
    "mv-apply",
    "make-series",
    "parse-where",
    "parse-kv",
];

/// Longest first, so `==` wins over `=`.
const PUNCT: &[&str] = &[
    "..", "==", "!=", "<>", "=~", "!~", "<=", ">=", "|", "(", ")", "[", "]", ",", ".", "=", "<",
    ">", "+", "-", "*", "/", "%", "!", ";", "{", "}", ":",
];

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, Error> {
    let mut lx = Lexer {
        src,
        b: src.as_bytes(),
        p: 0,
        out: Vec::new(),
    };
    lx.run()?;
    Ok(lx.out)
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    p: usize,
    out: Vec<Token>,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Lexer<'_> {
    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            span: Span::new(start, self.p),
        });
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.b.get(self.p + ahead).copied()
    }

    fn run(&mut self) -> Result<(), Error> {
        while self.p < self.b.len() {
            let c = self.b[self.p];
            let start = self.p;
            if c.is_ascii_whitespace() {
                self.p += 1;
            } else if c == b'/' && self.peek(1) == Some(b'/') {
                while self.p < self.b.len() && self.b[self.p] != b'\n' {
                    self.p += 1;
                }
            } else if c == b'\'' || c == b'"' {
                let s = self.string(c)?;
                self.push(Tok::Str(s), start);
            } else if c == b'@' && matches!(self.peek(1), Some(b'\'' | b'"')) {
                self.p += 1;
                let s = self.verbatim_string()?;
                self.push(Tok::Str(s), start);
            } else if c.is_ascii_digit() {
                let t = self.number()?;
                self.push(t, start);
            } else if is_ident_start(c) || (c == b'$' && self.peek(1).is_some_and(is_ident_start)) {
                self.p += 1;
                while self.p < self.b.len() && is_ident_char(self.b[self.p]) {
                    self.p += 1;
                }
                // `project-away` and friends: one token when the whole word is known.
                if self.peek(0) == Some(b'-') && self.peek(1).is_some_and(is_ident_start) {
                    let mut q = self.p + 1;
                    while q < self.b.len() && is_ident_char(self.b[q]) {
                        q += 1;
                    }
                    if HYPHENATED.contains(&&self.src[start..q]) {
                        self.p = q;
                    }
                }
                let word = &self.src[start..self.p];
                if word == "datetime"
                    && let Some(t) = self.datetime_literal(start)?
                {
                    self.push(t, start);
                    continue;
                }
                self.push(Tok::Ident(word.to_string()), start);
            } else if let Some(p) = PUNCT
                .iter()
                .find(|p| self.b[self.p..].starts_with(p.as_bytes()))
            {
                self.p += p.len();
                self.push(Tok::Punct(p), start);
            } else {
                let ch = self.src[self.p..].chars().next().unwrap_or('?');
                return Err(Error::syntax(
                    Span::new(start, start + ch.len_utf8()),
                    format!("unexpected character {ch:?}"),
                ));
            }
        }
        let end = self.b.len();
        self.out.push(Token {
            tok: Tok::Eof,
            span: Span::new(end, end),
        });
        Ok(())
    }

    /// `'...'` or `"..."` with backslash escapes; a string cannot span lines.
    fn string(&mut self, quote: u8) -> Result<String, Error> {
        let start = self.p;
        self.p += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.b.get(self.p) else {
                return Err(unterminated(start, self.p));
            };
            match c {
                b'\n' => return Err(unterminated(start, self.p)),
                c if c == quote => {
                    self.p += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let esc = self.peek(1).ok_or_else(|| unterminated(start, self.p))?;
                    let v = match esc {
                        b'\\' => '\\',
                        b'\'' => '\'',
                        b'"' => '"',
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        _ => {
                            let ch = self.src[self.p + 1..].chars().next().unwrap_or('?');
                            return Err(Error::syntax(
                                Span::new(self.p, self.p + 1 + ch.len_utf8()),
                                format!("unknown escape '\\{ch}' in a string"),
                            )
                            .with_hint(
                                "escapes are \\\\ \\' \\\" \\n \\t \\r; or write a verbatim string @'...'",
                            ));
                        }
                    };
                    out.push(v);
                    self.p += 2;
                }
                _ => {
                    // Copy one whole UTF-8 character (the source is a &str, so it is valid).
                    let ch = self.src[self.p..].chars().next().unwrap_or('\u{fffd}');
                    out.push(ch);
                    self.p += ch.len_utf8();
                }
            }
        }
    }

    /// `@'...'`: no escapes, a doubled quote stands for one (Kusto's verbatim strings,
    /// handy for regular expressions).
    fn verbatim_string(&mut self) -> Result<String, Error> {
        let start = self.p - 1;
        let quote = self.b[self.p];
        self.p += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.b.get(self.p) else {
                return Err(unterminated(start, self.p));
            };
            if c == b'\n' {
                return Err(unterminated(start, self.p));
            }
            if c == quote {
                if self.peek(1) == Some(quote) {
                    out.push(quote as char);
                    self.p += 2;
                    continue;
                }
                self.p += 1;
                return Ok(out);
            }
            let ch = self.src[self.p..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            self.p += ch.len_utf8();
        }
    }

    /// `42`, `1.5`, `1e3`, or a timespan `7d`, `1.5h`, `100ms`.
    fn number(&mut self) -> Result<Tok, Error> {
        let start = self.p;
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.p += 1;
        }
        let mut real = false;
        // `1..5` (between) is 1, `..`, 5: a dot is a decimal point only before a digit.
        if self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            real = true;
            self.p += 1;
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.p += 1;
            }
        }
        if matches!(self.peek(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek(1), Some(b'+' | b'-')));
            if self.peek(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                real = true;
                self.p += 1 + sign;
                while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.p += 1;
                }
            }
        }
        let digits = &self.src[start..self.p];
        if self.peek(0).is_some_and(is_ident_start) {
            let ustart = self.p;
            while self.peek(0).is_some_and(is_ident_char) {
                self.p += 1;
            }
            let unit = &self.src[ustart..self.p];
            let Some(per) = time::timespan_unit(unit) else {
                return Err(Error::syntax(
                    Span::new(ustart, self.p),
                    format!("unknown timespan unit '{unit}'"),
                )
                .with_hint("timespans are written 7d, 12h, 30m, 10s or 500ms"));
            };
            let value: f64 = digits.parse().map_err(|_| bad_number(start, self.p))?;
            let ms = value * per as f64;
            // ±100 000 years is far beyond any datetime the store holds.
            if !ms.is_finite() || ms.abs() > 3.2e15 {
                return Err(Error::syntax(
                    Span::new(start, self.p),
                    "timespan out of range",
                ));
            }
            return Ok(Tok::Timespan(ms.round() as i64));
        }
        if real {
            let v: f64 = digits.parse().map_err(|_| bad_number(start, self.p))?;
            if !v.is_finite() {
                return Err(bad_number(start, self.p));
            }
            Ok(Tok::Real(v))
        } else {
            digits.parse::<i64>().map(Tok::Long).map_err(|_| {
                Error::syntax(Span::new(start, self.p), "integer out of range")
                    .with_hint("integers are 64-bit: at most 9223372036854775807")
            })
        }
    }

    /// `datetime(2026-11-01)`: the text between the parentheses is taken raw (it is not
    /// made of tokens: `2026-11-01` would lex as a subtraction). Returns None when
    /// `datetime` is not followed by `(`, so the parser reports it as a name.
    fn datetime_literal(&mut self, start: usize) -> Result<Option<Tok>, Error> {
        let mut q = self.p;
        while q < self.b.len() && self.b[q].is_ascii_whitespace() {
            q += 1;
        }
        if self.b.get(q) != Some(&b'(') {
            return Ok(None);
        }
        let open = q;
        let Some(close_rel) = self.src[open..].find(')') else {
            return Err(Error::syntax(
                Span::new(start, self.b.len()),
                "unclosed datetime(...) literal",
            ));
        };
        let close = open + close_rel;
        let raw = self.src[open + 1..close].trim();
        let raw = raw
            .strip_prefix(['\'', '"'])
            .and_then(|r| r.strip_suffix(['\'', '"']))
            .unwrap_or(raw);
        self.p = close + 1;
        match time::parse_datetime(raw) {
            Ok(ms) => Ok(Some(Tok::Datetime(ms))),
            Err(msg) => Err(Error::syntax(Span::new(open + 1, close), msg)),
        }
    }
}

fn unterminated(start: usize, end: usize) -> Error {
    Error::syntax(Span::new(start, end.max(start + 1)), "unterminated string")
        .with_hint("close the string with the same quote it starts with, on the same line")
}

fn bad_number(start: usize, end: usize) -> Error {
    Error::syntax(Span::new(start, end), "malformed number")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).expect("lexes").into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn basics() {
        assert_eq!(
            toks("Images | project-away Tags, x!=1.5 // comment"),
            vec![
                Tok::Ident("Images".into()),
                Tok::Punct("|"),
                Tok::Ident("project-away".into()),
                Tok::Ident("Tags".into()),
                Tok::Punct(","),
                Tok::Ident("x".into()),
                Tok::Punct("!="),
                Tok::Real(1.5),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("a-b 7d 1.5h 100ms 1..5"),
            vec![
                Tok::Ident("a".into()),
                Tok::Punct("-"),
                Tok::Ident("b".into()),
                Tok::Timespan(604_800_000),
                Tok::Timespan(5_400_000),
                Tok::Timespan(100),
                Tok::Long(1),
                Tok::Punct(".."),
                Tok::Long(5),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks(r#"'it\'s' "a\"b" @'c:\x''y'"#),
            vec![
                Tok::Str("it's".into()),
                Tok::Str("a\"b".into()),
                Tok::Str("c:\\x'y".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("datetime(2026-11-01) datetime ( '1970-01-01T00:00:01Z' )"),
            vec![
                Tok::Datetime(1_793_491_200_000),
                Tok::Datetime(1000),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors() {
        assert!(lex("'abc").is_err());
        assert!(lex("'a\\qb'").is_err());
        assert!(lex("7weeks").is_err());
        assert!(lex("99999999999999999999").is_err());
        assert!(lex("datetime(2026-02-30)").is_err());
        assert!(lex("a # b").is_err());
        let e = lex("x == 'é").expect_err("unterminated");
        assert_eq!(e.span.start, 5);
    }
}
