//! A hand-written recursive-descent parser. Every recursion is counted against
//! `MAX_DEPTH`, and every left-associative chain too (it becomes a deep tree that the
//! compiler walks recursively), so no input can exhaust the stack.

use crate::ast::*;
use crate::error::{Error, Span, did_you_mean};
use crate::lexer::{Tok, Token, lex};

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Deepest nesting of expressions (parentheses, calls, operator chains) and joins.
pub const MAX_DEPTH: usize = 64;
/// Most operators in one pipeline (each may become a nested sub-select).
pub const MAX_OPERATORS: usize = 32;
/// Most items in an `in (...)` list or arguments of a call.
pub const MAX_LIST: usize = 1000;

const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_CMP: u8 = 3;
const PREC_ADD: u8 = 4;
const PREC_MUL: u8 = 5;

/// The operators this language has, for errors and "did you mean".
pub const OPERATORS: &[&str] = &[
    "where",
    "filter",
    "project",
    "project-away",
    "project-rename",
    "extend",
    "summarize",
    "sort",
    "order",
    "take",
    "limit",
    "top",
    "distinct",
    "count",
    "join",
];

/// Kusto operators a user may reasonably try; they get "not supported", not "unknown".
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "union",
    "mv-expand",
    "mv-apply",
    "parse",
    "parse-where",
    "parse-kv",
    "make-series",
    "render",
    "evaluate",
    "lookup",
    "as",
    "invoke",
    "search",
    "find",
    "getschema",
    "serialize",
    "sample",
    "sample-distinct",
    "fork",
    "facet",
    "range",
    "print",
    "let",
    "project-keep",
    "project-reorder",
    "externaldata",
    "scan",
    "partition",
    "reduce",
    "top-nested",
    "top-hitters",
    "datatable",
];

const UNSUPPORTED_STRING_OPERATORS: &[&str] = &[
    "has_cs",
    "contains_cs",
    "startswith_cs",
    "endswith_cs",
    "has_any",
    "has_all",
    "hasprefix",
    "hassuffix",
    "hasprefix_cs",
    "hassuffix_cs",
    "like",
    "ilike",
    "regex",
];

/// Words that end an expression; never taken as column names.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "by",
    "asc",
    "desc",
    "nulls",
    "on",
    "kind",
    "in",
    "has",
    "contains",
    "startswith",
    "endswith",
    "matches",
    "between",
];

pub fn parse(src: &str) -> Result<Query, Error> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(Error::limit(
            Span::new(MAX_QUERY_BYTES, src.len()),
            format!(
                "the query is {} bytes long; the limit is {MAX_QUERY_BYTES}",
                src.len()
            ),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    if matches!(p.peek(), Tok::Eof) {
        return Err(Error::syntax(p.span(), "the query is empty")
            .with_hint("start with a table, e.g. Images | take 10"));
    }
    let q = p.query()?;
    match p.peek() {
        Tok::Eof => Ok(q),
        Tok::Punct(")") => Err(Error::syntax(p.span(), "unbalanced ')'")),
        _ => Err(p.unexpected("'|' or the end of the query")),
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Str(s) => format!("the string '{}'", s.escape_debug()),
        Tok::Long(v) => format!("the number {v}"),
        Tok::Real(v) => format!("the number {v}"),
        Tok::Timespan(_) => "a timespan".into(),
        Tok::Datetime(_) => "a datetime".into(),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::Eof => "the end of the query".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        // The token list always ends with Eof and `i` never passes it.
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.toks[(self.i + ahead).min(self.toks.len() - 1)].tok
    }

    fn span(&self) -> Span {
        self.toks[self.i.min(self.toks.len() - 1)].span
    }

    fn prev_span(&self) -> Span {
        self.toks[self.i.saturating_sub(1)].span
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == w)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn unexpected(&self, expected: &str) -> Error {
        let found = describe(self.peek());
        let mut e = Error::syntax(self.span(), format!("expected {expected}, found {found}"));
        if self.is_punct("=") {
            e = e.with_hint("comparison is '==' (a single '=' names a column)");
        }
        e
    }

    fn expect_punct(&mut self, p: &str) -> Result<Span, Error> {
        if self.is_punct(p) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected(&format!("'{p}'")))
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<Span, Error> {
        if self.is_word(w) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected(&format!("'{w}'")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<Ident, Error> {
        match self.peek() {
            Tok::Ident(s) if !s.starts_with('$') => {
                let name = s.clone();
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn enter(&mut self, extra: usize) -> Result<(), Error> {
        self.depth += 1;
        if self.depth + extra > MAX_DEPTH {
            return Err(Error::limit(
                self.span(),
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn query(&mut self) -> Result<Query, Error> {
        self.enter(0)?;
        let table = match self.peek() {
            Tok::Ident(_) => self.ident("a table name")?,
            _ => {
                return Err(self
                    .unexpected("a table name")
                    .with_hint("a query starts with a table, e.g. Images | take 10"));
            }
        };
        let mut ops = Vec::new();
        while self.eat_punct("|") {
            if ops.len() == MAX_OPERATORS {
                return Err(Error::limit(
                    self.prev_span(),
                    format!("a pipeline has at most {MAX_OPERATORS} operators"),
                ));
            }
            ops.push(self.operator()?);
        }
        self.leave();
        Ok(Query { table, ops })
    }

    fn operator(&mut self) -> Result<Op, Error> {
        let name = match self.peek() {
            Tok::Ident(s) => s.clone(),
            _ => return Err(self.unexpected("an operator after '|'")),
        };
        let span = self.bump().span;
        let kind = match name.as_str() {
            "where" | "filter" => OpKind::Where(self.expr()?),
            "project" => OpKind::Project(self.named_list()?),
            "extend" => OpKind::Extend(self.named_list()?),
            "project-away" => OpKind::ProjectAway(self.ident_list()?),
            "project-rename" => {
                let mut pairs = Vec::new();
                loop {
                    let new = self.ident("a new column name")?;
                    self.expect_punct("=")?;
                    let old = self.ident("the column to rename")?;
                    pairs.push((new, old));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                OpKind::ProjectRename(pairs)
            }
            "summarize" => {
                let aggs = if self.is_word("by") {
                    Vec::new()
                } else {
                    self.named_list()?
                };
                let by = if self.eat_word("by") {
                    self.named_list()?
                } else {
                    Vec::new()
                };
                OpKind::Summarize { aggs, by }
            }
            "sort" | "order" => {
                self.expect_word("by")?;
                let mut keys = vec![self.sort_key()?];
                while self.eat_punct(",") {
                    keys.push(self.sort_key()?);
                }
                OpKind::Sort(keys)
            }
            "take" | "limit" => {
                let (count, span) = self.count()?;
                OpKind::Take { count, span }
            }
            "top" => {
                let (count, count_span) = self.count()?;
                self.expect_word("by")?;
                let key = self.sort_key()?;
                OpKind::Top {
                    count,
                    count_span,
                    key,
                }
            }
            "distinct" => OpKind::Distinct(self.ident_list()?),
            "count" => OpKind::Count,
            "join" => self.join()?,
            other if UNSUPPORTED_OPERATORS.contains(&other) => {
                return Err(Error::syntax(
                    span,
                    format!("the '{other}' operator is not supported"),
                )
                .with_hint(format!(
                    "supported operators: {}; one table per query, plus join",
                    OPERATORS.join(", ")
                )));
            }
            other => {
                let hint = did_you_mean(other, OPERATORS.iter().copied())
                    .unwrap_or_else(|| format!("operators are: {}", OPERATORS.join(", ")));
                return Err(
                    Error::syntax(span, format!("unknown operator '{other}'")).with_hint(hint)
                );
            }
        };
        Ok(Op { kind, span })
    }

    fn count(&mut self) -> Result<(i64, Span), Error> {
        match *self.peek() {
            Tok::Long(n) if n >= 0 => Ok((n, self.bump().span)),
            _ => Err(self.unexpected("a row count (a whole number)")),
        }
    }

    fn sort_key(&mut self) -> Result<SortKey, Error> {
        let expr = self.expr()?;
        // Kusto sorts descending unless told otherwise; nulls come first ascending and
        // last descending.
        let desc = if self.eat_word("asc") {
            false
        } else {
            self.eat_word("desc");
            true
        };
        let mut nulls_first = !desc;
        if self.eat_word("nulls") {
            if self.eat_word("first") {
                nulls_first = true;
            } else if self.eat_word("last") {
                nulls_first = false;
            } else {
                return Err(self.unexpected("'first' or 'last'"));
            }
        }
        Ok(SortKey {
            expr,
            desc,
            nulls_first,
        })
    }

    fn ident_list(&mut self) -> Result<Vec<Ident>, Error> {
        let mut out = vec![self.ident("a column name")?];
        while self.eat_punct(",") {
            if out.len() == MAX_LIST {
                return Err(Error::limit(self.span(), "too many columns"));
            }
            out.push(self.ident("a column name")?);
        }
        Ok(out)
    }

    fn named_list(&mut self) -> Result<Vec<NamedExpr>, Error> {
        let mut out = Vec::new();
        loop {
            if out.len() == MAX_LIST {
                return Err(Error::limit(self.span(), "too many columns"));
            }
            let name = match (self.peek(), self.peek_at(1)) {
                (Tok::Ident(_), Tok::Punct("=")) => {
                    let id = self.ident("a column name")?;
                    self.bump();
                    Some(id)
                }
                _ => None,
            };
            let expr = self.expr()?;
            out.push(NamedExpr { name, expr });
            if !self.eat_punct(",") {
                return Ok(out);
            }
        }
    }

    fn join(&mut self) -> Result<OpKind, Error> {
        let mut kind = JoinKind::Inner;
        if self.eat_word("kind") {
            self.expect_punct("=")?;
            let k = self.ident("a join kind")?;
            kind = match k.name.as_str() {
                "inner" => JoinKind::Inner,
                "leftouter" => JoinKind::LeftOuter,
                "rightouter" => JoinKind::RightOuter,
                "fullouter" => JoinKind::FullOuter,
                "leftsemi" => JoinKind::LeftSemi,
                "leftanti" | "anti" | "leftantisemi" => JoinKind::LeftAnti,
                other => {
                    const KINDS: &[&str] = &[
                        "inner",
                        "leftouter",
                        "rightouter",
                        "fullouter",
                        "leftsemi",
                        "leftanti",
                    ];
                    let hint = did_you_mean(other, KINDS.iter().copied())
                        .unwrap_or_else(|| format!("join kinds are: {}", KINDS.join(", ")));
                    return Err(
                        Error::syntax(k.span, format!("unsupported join kind '{other}'"))
                            .with_hint(hint),
                    );
                }
            };
        }
        let right = if self.eat_punct("(") {
            let q = self.query()?;
            self.expect_punct(")")?;
            q
        } else if matches!(self.peek(), Tok::Ident(_)) {
            Query {
                table: self.ident("a table")?,
                ops: Vec::new(),
            }
        } else {
            return Err(self
                .unexpected("a table or '(' after join")
                .with_hint("join kind=inner (Images | where ...) on ImageId"));
        };
        self.expect_word("on")?;
        let mut on = Vec::new();
        loop {
            if on.len() == MAX_LIST {
                return Err(Error::limit(self.span(), "too many join keys"));
            }
            on.push(self.join_key()?);
            if !self.eat_punct(",") {
                break;
            }
        }
        Ok(OpKind::Join {
            kind,
            right: Box::new(right),
            on,
        })
    }

    fn join_key(&mut self) -> Result<JoinKey, Error> {
        if !matches!(self.peek(), Tok::Ident(s) if s.starts_with('$')) {
            let id = self.ident("a join key column")?;
            return Ok(JoinKey {
                left: id.clone(),
                right: id,
            });
        }
        let (side_a, a) = self.side_column()?;
        self.expect_punct("==")?;
        let (side_b, b) = self.side_column()?;
        match (side_a.as_str(), side_b.as_str()) {
            ("$left", "$right") => Ok(JoinKey { left: a, right: b }),
            ("$right", "$left") => Ok(JoinKey { left: b, right: a }),
            _ => Err(Error::syntax(
                a.span.to(b.span),
                "a join condition compares $left.Column == $right.Column",
            )),
        }
    }

    fn side_column(&mut self) -> Result<(String, Ident), Error> {
        let side = match self.peek() {
            Tok::Ident(s) if s == "$left" || s == "$right" => s.clone(),
            _ => return Err(self.unexpected("$left or $right")),
        };
        self.bump();
        self.expect_punct(".")?;
        Ok((side, self.ident("a column name")?))
    }

    // Expressions: precedence climbing over five levels, loosest first: or, and,
    // comparisons (==, has, in, between…), + -, * / %. One recursion per parenthesis or
    // call instead of one per level keeps the stack shallow.

    fn expr(&mut self) -> Result<Expr, Error> {
        self.enter(0)?;
        let e = self.binary(PREC_OR);
        self.leave();
        e
    }

    /// The precedence of the operator at the cursor, if it is a binary one.
    fn binary_prec(&self) -> Option<u8> {
        match self.peek() {
            Tok::Ident(s) => match s.as_str() {
                "or" => Some(PREC_OR),
                "and" => Some(PREC_AND),
                "has" | "contains" | "startswith" | "endswith" | "matches" | "in" | "between" => {
                    Some(PREC_CMP)
                }
                w if UNSUPPORTED_STRING_OPERATORS.contains(&w) => Some(PREC_CMP),
                _ => None,
            },
            Tok::Punct("==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "=~" | "!~" | "!") => {
                Some(PREC_CMP)
            }
            Tok::Punct("+" | "-") => Some(PREC_ADD),
            Tok::Punct("*" | "/" | "%") => Some(PREC_MUL),
            _ => None,
        }
    }

    fn binary(&mut self, min_prec: u8) -> Result<Expr, Error> {
        let mut left = self.unary()?;
        let mut chain = 0;
        while let Some(prec) = self.binary_prec() {
            if prec < min_prec {
                break;
            }
            // A chain `a or b or c…` is a left-leaning tree as deep as it is long.
            chain += 1;
            if self.depth + chain > MAX_DEPTH {
                return Err(self.chain_too_long());
            }
            if prec == PREC_CMP {
                left = self.comparison(left)?;
                continue;
            }
            let op = match self.peek() {
                Tok::Ident(s) if s == "or" => BinOp::Or,
                Tok::Ident(s) if s == "and" => BinOp::And,
                Tok::Punct("+") => BinOp::Add,
                Tok::Punct("-") => BinOp::Sub,
                Tok::Punct("*") => BinOp::Mul,
                Tok::Punct("/") => BinOp::Div,
                _ => BinOp::Mod,
            };
            let op_span = self.bump().span;
            let right = self.binary(prec + 1)?;
            left = Expr {
                span: left.span.to(right.span),
                kind: ExprKind::Binary {
                    op,
                    op_span,
                    left: Box::new(left),
                    right: Box::new(right),
                },
            };
        }
        Ok(left)
    }

    #[cold]
    fn chain_too_long(&self) -> Error {
        Error::limit(
            self.span(),
            format!("an expression chains more than {MAX_DEPTH} operators"),
        )
    }

    /// `left` followed by a comparison: `== x`, `has 'x'`, `!in (…)`, `between (a .. b)`…
    fn comparison(&mut self, left: Expr) -> Result<Expr, Error> {
        let start = left.span;
        let cmp = match self.peek() {
            Tok::Punct("==") => Some(BinOp::Eq),
            Tok::Punct("!=" | "<>") => Some(BinOp::Ne),
            Tok::Punct("<") => Some(BinOp::Lt),
            Tok::Punct("<=") => Some(BinOp::Le),
            Tok::Punct(">") => Some(BinOp::Gt),
            Tok::Punct(">=") => Some(BinOp::Ge),
            Tok::Punct("=~") => Some(BinOp::EqCi),
            Tok::Punct("!~") => Some(BinOp::NeCi),
            _ => None,
        };
        if let Some(op) = cmp {
            let op_span = self.bump().span;
            let right = self.binary(PREC_ADD)?;
            return Ok(Expr {
                span: start.to(right.span),
                kind: ExprKind::Binary {
                    op,
                    op_span,
                    left: Box::new(left),
                    right: Box::new(right),
                },
            });
        }
        // `!has`, `!in`…: a '!' immediately followed by the word.
        let mut negated = false;
        let bang = self.span();
        if self.is_punct("!") {
            let adjacent = self
                .toks
                .get(self.i + 1)
                .is_some_and(|t| matches!(t.tok, Tok::Ident(_)) && t.span.start == bang.end);
            if !adjacent {
                return Err(self.bad_bang());
            }
            self.bump();
            negated = true;
        }
        let word = match self.peek() {
            Tok::Ident(s) => s.clone(),
            _ => return Err(self.unexpected("an operator")),
        };
        let word_span = self.span();
        let op_span = if negated {
            bang.to(word_span)
        } else {
            word_span
        };
        let str_op = match word.as_str() {
            "has" => Some(StrOp::Has),
            "contains" => Some(StrOp::Contains),
            "startswith" => Some(StrOp::StartsWith),
            "endswith" => Some(StrOp::EndsWith),
            "matches" if !negated => Some(StrOp::MatchesRegex),
            _ => None,
        };
        if let Some(op) = str_op {
            self.bump();
            if op == StrOp::MatchesRegex {
                self.expect_word("regex")?;
            }
            let op_span = op_span.to(self.prev_span());
            let right = self.binary(PREC_ADD)?;
            return Ok(Expr {
                span: start.to(right.span),
                kind: ExprKind::StrOp {
                    op,
                    negated,
                    op_span,
                    left: Box::new(left),
                    right: Box::new(right),
                },
            });
        }
        match word.as_str() {
            "in" => {
                self.bump();
                let list = self.in_list()?;
                Ok(Expr {
                    span: start.to(self.prev_span()),
                    kind: ExprKind::In {
                        negated,
                        expr: Box::new(left),
                        list,
                    },
                })
            }
            "between" => {
                self.bump();
                self.expect_punct("(")?;
                let low = self.expr()?;
                self.expect_punct("..")?;
                let high = self.expr()?;
                let close = self.expect_punct(")")?;
                Ok(Expr {
                    span: start.to(close),
                    kind: ExprKind::Between {
                        negated,
                        expr: Box::new(left),
                        low: Box::new(low),
                        high: Box::new(high),
                    },
                })
            }
            w => Err(Self::bad_string_operator(w, negated, op_span)),
        }
    }

    fn in_list(&mut self) -> Result<Vec<Expr>, Error> {
        if self.is_punct("~") {
            return Err(Error::syntax(self.span(), "'in~' is not supported")
                .with_hint("compare tolower(Column) in ('a', 'b')"));
        }
        self.expect_punct("(")?;
        let mut list = Vec::new();
        loop {
            if list.len() == MAX_LIST {
                return Err(Error::limit(
                    self.span(),
                    format!("an 'in' list has at most {MAX_LIST} items"),
                ));
            }
            list.push(self.expr()?);
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(")")?;
        Ok(list)
    }

    #[cold]
    fn bad_bang(&self) -> Error {
        self.unexpected("an operator")
            .with_hint("negation is not(expr); negated operators are written !has, !in…")
    }

    #[cold]
    fn bad_string_operator(word: &str, negated: bool, span: Span) -> Error {
        if UNSUPPORTED_STRING_OPERATORS.contains(&word) {
            return Error::syntax(span, format!("the '{word}' operator is not supported"))
                .with_hint(
                    "string operators are ==, !=, =~, !~, has, contains, startswith, endswith, \
                     matches regex, in (each also negated with '!')",
                );
        }
        let shown = if negated {
            format!("!{word}")
        } else {
            word.to_string()
        };
        Error::syntax(span, format!("'{shown}' is not an operator")).with_hint(
            "negatable operators: !has, !contains, !startswith, !endswith, !in, !between",
        )
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        if self.is_punct("-") {
            let start = self.bump().span;
            self.enter(0)?;
            let inner = self.unary();
            self.leave();
            let inner = inner?;
            // Fold literals: `-5` is one literal (and one parameter), not a negation.
            let span = start.to(inner.span);
            let kind = match inner.kind {
                ExprKind::Long(v) => ExprKind::Long(-v),
                ExprKind::Real(v) => ExprKind::Real(-v),
                ExprKind::Timespan(v) => ExprKind::Timespan(-v),
                other => ExprKind::Neg(Box::new(Expr {
                    kind: other,
                    span: inner.span,
                })),
            };
            return Ok(Expr { kind, span });
        }
        if self.is_punct("+") {
            self.bump();
            self.enter(0)?;
            let inner = self.unary();
            self.leave();
            return inner;
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, Error> {
        let span = self.span();
        let lit = |kind| Ok(Expr { kind, span });
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                lit(ExprKind::Str(s))
            }
            Tok::Long(v) => {
                self.bump();
                lit(ExprKind::Long(v))
            }
            Tok::Real(v) => {
                self.bump();
                lit(ExprKind::Real(v))
            }
            Tok::Timespan(v) => {
                self.bump();
                lit(ExprKind::Timespan(v))
            }
            Tok::Datetime(v) => {
                self.bump();
                lit(ExprKind::Datetime(v))
            }
            Tok::Punct("(") => {
                self.bump();
                let e = self.expr()?;
                self.expect_punct(")")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                if matches!(name.as_str(), "true" | "True" | "TRUE") {
                    self.bump();
                    return lit(ExprKind::Bool(true));
                }
                if matches!(name.as_str(), "false" | "False" | "FALSE") {
                    self.bump();
                    return lit(ExprKind::Bool(false));
                }
                if name.starts_with('$') {
                    return Err(Error::syntax(
                        span,
                        format!("'{name}' is only used in a join's 'on' clause"),
                    ));
                }
                if KEYWORDS.contains(&name.as_str()) {
                    return Err(self.unexpected("an expression"));
                }
                self.bump();
                if self.is_punct("(") {
                    self.bump();
                    let mut args = Vec::new();
                    if !self.is_punct(")") {
                        loop {
                            if args.len() == MAX_LIST {
                                return Err(Error::limit(self.span(), "too many arguments"));
                            }
                            args.push(self.expr()?);
                            if !self.eat_punct(",") {
                                break;
                            }
                        }
                    }
                    let close = self.expect_punct(")")?;
                    return Ok(Expr {
                        span: span.to(close),
                        kind: ExprKind::Call {
                            name: Ident { name, span },
                            args,
                        },
                    });
                }
                Ok(Expr {
                    kind: ExprKind::Column(name),
                    span,
                })
            }
            _ => Err(self.unexpected("an expression")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_shapes() {
        let q = parse(
            "Findings | where Severity == 'Critical' and not(isempty(FixedVersion)) \
             | summarize n = count(), dcount(ImageId) by Repository, bin(FirstSeen, 1d) \
             | sort by n desc, Repository asc nulls last | take 10",
        )
        .expect("parses");
        assert_eq!(q.table.name, "Findings");
        assert_eq!(q.ops.len(), 4);
        match &q.ops[1].kind {
            OpKind::Summarize { aggs, by } => {
                assert_eq!(aggs.len(), 2);
                assert_eq!(by.len(), 2);
                assert_eq!(aggs[0].name.as_ref().map(|i| i.name.as_str()), Some("n"));
            }
            other => panic!("{other:?}"),
        }
        match &q.ops[2].kind {
            OpKind::Sort(keys) => {
                assert!(keys[0].desc && !keys[0].nulls_first);
                assert!(!keys[1].desc && !keys[1].nulls_first);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn precedence() {
        let q = parse("T | where a == 1 or b == 2 and c + 2 * 3 > 4").expect("parses");
        let OpKind::Where(e) = &q.ops[0].kind else {
            panic!()
        };
        let ExprKind::Binary {
            op: BinOp::Or,
            right,
            ..
        } = &e.kind
        else {
            panic!("{e:?}")
        };
        let ExprKind::Binary {
            op: BinOp::And,
            right,
            ..
        } = &right.kind
        else {
            panic!()
        };
        let ExprKind::Binary {
            op: BinOp::Gt,
            left,
            ..
        } = &right.kind
        else {
            panic!()
        };
        let ExprKind::Binary {
            op: BinOp::Add,
            right,
            ..
        } = &left.kind
        else {
            panic!()
        };
        assert!(matches!(
            right.kind,
            ExprKind::Binary { op: BinOp::Mul, .. }
        ));
    }

    #[test]
    fn negated_and_join() {
        let q = parse(
            "Images | where Repository !has 'x' and Health !in ('a','b') and Critical !between (1 .. 2) \
             | join kind=leftouter (Findings | where Severity == 'High') on $left.ImageId == $right.ImageId",
        )
        .expect("parses");
        assert_eq!(q.ops.len(), 2);
        assert!(parse("Images | where Repository ! has 'x'").is_err());
    }

    #[test]
    fn limits() {
        let deep = format!("T | where {}1{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(
            parse(&deep).expect_err("too deep").kind,
            crate::ErrorKind::Limit
        );
        let chain = format!("T | where {}", vec!["a == 1"; 400].join(" or "));
        assert_eq!(
            parse(&chain).expect_err("too long").kind,
            crate::ErrorKind::Limit
        );
        let neg = format!("T | where {}1 > 0", "-".repeat(1000));
        assert!(parse(&neg).is_err());
        let ops = format!("T{}", " | take 1".repeat(40));
        assert_eq!(
            parse(&ops).expect_err("too many").kind,
            crate::ErrorKind::Limit
        );
        let long = format!("T | where a == '{}'", "x".repeat(MAX_QUERY_BYTES));
        assert_eq!(
            parse(&long).expect_err("too big").kind,
            crate::ErrorKind::Limit
        );
    }
}
