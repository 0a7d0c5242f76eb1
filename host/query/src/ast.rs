//! The parsed query: a table and a pipeline of operators. Names are kept as written
//! (resolution against the catalog happens in the compiler).

use crate::error::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub table: Ident,
    pub ops: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    /// The operator's name (`where`, `summarize`…), for errors about the operator itself.
    pub span: Span,
}

/// `Name = expr` or a bare `expr` (named after its column, or `Column1`…).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedExpr {
    pub name: Option<Ident>,
    pub expr: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    LeftOuter,
    RightOuter,
    FullOuter,
    LeftSemi,
    LeftAnti,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JoinKey {
    pub left: Ident,
    pub right: Ident,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    Where(Expr),
    Project(Vec<NamedExpr>),
    ProjectAway(Vec<Ident>),
    /// `new = old` pairs.
    ProjectRename(Vec<(Ident, Ident)>),
    Extend(Vec<NamedExpr>),
    Summarize {
        aggs: Vec<NamedExpr>,
        by: Vec<NamedExpr>,
    },
    Sort(Vec<SortKey>),
    Take {
        count: i64,
        span: Span,
    },
    Top {
        count: i64,
        count_span: Span,
        key: SortKey,
    },
    Distinct(Vec<Ident>),
    Count,
    Join {
        kind: JoinKind,
        right: Box<Query>,
        on: Vec<JoinKey>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~`: equality ignoring ASCII case.
    EqCi,
    /// `!~`
    NeCi,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::EqCi => "=~",
            BinOp::NeCi => "!~",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrOp {
    Has,
    Contains,
    StartsWith,
    EndsWith,
    MatchesRegex,
}

impl StrOp {
    pub fn name(self) -> &'static str {
        match self {
            StrOp::Has => "has",
            StrOp::Contains => "contains",
            StrOp::StartsWith => "startswith",
            StrOp::EndsWith => "endswith",
            StrOp::MatchesRegex => "matches regex",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Column(String),
    Str(String),
    Long(i64),
    Real(f64),
    Bool(bool),
    Datetime(i64),
    Timespan(i64),
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        op_span: Span,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    StrOp {
        op: StrOp,
        negated: bool,
        op_span: Span,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    In {
        negated: bool,
        expr: Box<Expr>,
        list: Vec<Expr>,
    },
    Between {
        negated: bool,
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
    },
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
}
