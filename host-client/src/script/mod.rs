//! Command files for `bringup run`: the format (see docs/SCRIPTS.md), the parser
//! ([`parse`]) and expectation evaluation ([`eval`]).

mod eval;
mod parse;
pub mod vocabulary;

pub use eval::{evaluate, Verdict};
pub use parse::{parse_duration, parse_script};

use std::time::Duration;

/// A parsed command file.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub steps: Vec<Step>,
    /// `allow-model-violations`: the gVNIC model's violations and refused commands are
    /// reported but do not fail the run (crate::model_verdict).
    pub allow_model_violations: bool,
}

/// One monitor command with what is expected of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line of the command in the file.
    pub line_no: usize,
    pub command: String,
    /// From a `timeout` line just before, else the `default-timeout` in force, else None.
    pub timeout: Option<Duration>,
    /// `expect-fail CODE` (`*` = any error code).
    pub expect_fail: Option<String>,
    pub expectations: Vec<Expectation>,
}

/// One `expect...` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub line_no: usize,
    /// The line as written (trimmed), for reports.
    pub source: String,
    pub check: Check,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `expect [all|any] <kind>[.<field path>] [<op> <value>]`: every frame (`all`) or some
    /// frame (`any`) of the command whose kind prefixes the path has the field and satisfies
    /// it; `all` needs at least one such frame. Without an operator: such a frame (and field)
    /// exists. The quantifier defaults per [`Quantifier::default_for`].
    Field {
        path: String,
        cmp: Option<(Op, Literal)>,
        quant: Quantifier,
    },
    /// `expect-count <kind> <op> <n>`: how many frames of that kind the command emitted.
    Count { kind: String, op: Op, n: i128 },
    /// `expect-text "substring"`: the command's human text contains it.
    Text { needle: String },
}

/// Which frames of a kind an `expect` must hold for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    All,
    Any,
}

impl Quantifier {
    /// `all` for `==`, `!=` and `!~` (a claim about the command's frames must not pass while
    /// another frame of the kind says otherwise, e.g. one teardown step with `ok: false`);
    /// `any` for `~`, the orderings and a bare presence check.
    pub fn default_for(op: Option<Op>) -> Quantifier {
        match op {
            Some(Op::Eq | Op::Ne | Op::NotContains) => Quantifier::All,
            _ => Quantifier::Any,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Quantifier::All => "all",
            Quantifier::Any => "any",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    /// `~`: substring of a string, or element of an array.
    Contains,
    /// `!~`
    NotContains,
    Ge,
    Le,
    Gt,
    Lt,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Contains => "~",
            Op::NotContains => "!~",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }
}

/// A value on the right of an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i128),
    Str(String),
    Bool(bool),
}
