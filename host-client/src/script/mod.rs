//! Command files for `bringup run`: the format (see docs/SCRIPTS.md), the parser
//! ([`parse`]) and expectation evaluation ([`eval`]).

mod eval;
mod parse;

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
    /// `expect <kind>[.<field path>] [<op> <value>]`: some frame of the command whose kind
    /// prefixes the path satisfies it. Without an operator: such a frame (and field) exists.
    Field {
        path: String,
        cmp: Option<(Op, Literal)>,
    },
    /// `expect-count <kind> <op> <n>`: how many frames of that kind the command emitted.
    Count { kind: String, op: Op, n: i128 },
    /// `expect-text "substring"`: the command's human text contains it.
    Text { needle: String },
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
