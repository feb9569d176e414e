//! Evaluating expectations against one command's outcome.

use serde::Serialize;
use serde_json::Value;

use super::{Check, Expectation, Literal, Op, Quantifier};
use crate::json::body_json;
use crate::CommandOutcome;

/// Whether an expectation held, and what was seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub detail: String,
}

impl Verdict {
    fn pass(detail: impl Into<String>) -> Verdict {
        Verdict {
            passed: true,
            detail: detail.into(),
        }
    }
    fn fail(detail: impl Into<String>) -> Verdict {
        Verdict {
            passed: false,
            detail: detail.into(),
        }
    }
}

/// Evaluates one expectation on the frames and text of `outcome`.
pub fn evaluate(exp: &Expectation, outcome: &CommandOutcome) -> Verdict {
    match &exp.check {
        Check::Text { needle } => {
            if outcome.text.contains(needle.as_str()) {
                Verdict::pass(format!("text contains {needle:?}"))
            } else {
                Verdict::fail(format!("text does not contain {needle:?}"))
            }
        }
        Check::Count { kind, op, n } => {
            let count = outcome.bodies_of_kind(kind).len() as i128;
            let ok = compare_ord(*op, count.cmp(n));
            let d = format!("{count} {kind} frame(s), expected {} {n}", op.symbol());
            if ok {
                Verdict::pass(d)
            } else {
                Verdict::fail(d)
            }
        }
        Check::Field { path, cmp, quant } => eval_field(path, cmp.as_ref(), *quant, outcome),
    }
}

fn eval_field(
    path: &str,
    cmp: Option<&(Op, Literal)>,
    quant: Quantifier,
    outcome: &CommandOutcome,
) -> Verdict {
    let mut kinds_seen: Vec<&str> = Vec::new();
    // Each frame of the kind: its value at the path (None: the field is absent there).
    let mut of_kind: Vec<Option<Value>> = Vec::new();
    for frame in &outcome.frames {
        let kind = frame.body.kind();
        if !kinds_seen.contains(&kind) {
            kinds_seen.push(kind);
        }
        let rest = if path == kind {
            ""
        } else if let Some(rest) = path.strip_prefix(kind).and_then(|r| r.strip_prefix('.')) {
            rest
        } else {
            continue;
        };
        of_kind.push(lookup(&body_json(&frame.body), rest).cloned());
    }
    if of_kind.is_empty() {
        return Verdict::fail(format!(
            "no frame of kind {:?} from this command (it sent: {})",
            path.split('.').take(2).collect::<Vec<_>>().join("."),
            kinds_seen.join(", ")
        ));
    }
    let frames = of_kind.len();
    let Some((op, lit)) = cmp else {
        let present = of_kind.iter().filter(|v| v.is_some()).count();
        return match (quant, present) {
            (_, 0) => Verdict::fail(format!("no field {path} in the frames of that kind")),
            (Quantifier::All, n) if n < frames => Verdict::fail(format!(
                "{path} present in {n} of {frames} frames, expected all"
            )),
            _ => Verdict::pass(format!("{path} present")),
        };
    };
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let mut absent = 0;
    for value in &of_kind {
        let Some(value) = value else {
            absent += 1;
            continue;
        };
        match check(value, *op, lit) {
            Ok(true) => passed.push(value),
            Ok(false) => failed.push(value),
            Err(why) => return Verdict::fail(format!("{path}: {why}")),
        }
    }
    let expected = format!("{} {}", op.symbol(), literal_text(lit));
    let list = |vs: &[&Value]| {
        vs.iter()
            .take(3)
            .map(|v| short(v))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    match quant {
        Quantifier::Any if !passed.is_empty() => {
            Verdict::pass(format!("{path} = {}", short(passed[0])))
        }
        Quantifier::Any if failed.is_empty() => {
            Verdict::fail(format!("no field {path} in the frames of that kind"))
        }
        Quantifier::Any => {
            Verdict::fail(format!("{path} is {}, expected {expected}", list(&failed)))
        }
        Quantifier::All if failed.is_empty() && absent == 0 => {
            Verdict::pass(format!("{path} {expected} in all {frames} frame(s)"))
        }
        Quantifier::All if failed.is_empty() => Verdict::fail(format!(
            "no field {path} in {absent} of {frames} frames of that kind, expected all {expected}"
        )),
        Quantifier::All => Verdict::fail(format!(
            "{path} is {} in {} of {frames} frame(s), expected all {expected}",
            list(&failed),
            failed.len()
        )),
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn check(value: &Value, op: Op, lit: &Literal) -> Result<bool, String> {
    match op {
        Op::Eq => Ok(equal(value, lit)),
        Op::Ne => Ok(!equal(value, lit)),
        Op::Contains | Op::NotContains => {
            let found = match value {
                Value::String(s) => match lit {
                    Literal::Str(n) => s.contains(n.as_str()),
                    other => s.contains(&literal_text(other)),
                },
                Value::Array(items) => items.iter().any(|i| equal(i, lit)),
                other => {
                    return Err(format!(
                        "`~` needs a string or a list, the field is {}",
                        short(other)
                    ))
                }
            };
            Ok(found == (op == Op::Contains))
        }
        Op::Ge | Op::Le | Op::Gt | Op::Lt => {
            let Literal::Int(want) = lit else {
                return Err(format!(
                    "{} compares numbers; {} is not one",
                    op.symbol(),
                    literal_text(lit)
                ));
            };
            let have = number(value)
                .ok_or_else(|| format!("the field is {}, not a number", short(value)))?;
            Ok(compare_ord(op, have.cmp(want)))
        }
    }
}

fn compare_ord(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Ge => ord != Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Lt => ord == Less,
        Op::Contains | Op::NotContains => false,
    }
}

fn number(value: &Value) -> Option<i128> {
    value
        .as_u64()
        .map(i128::from)
        .or_else(|| value.as_i64().map(i128::from))
}

fn equal(value: &Value, lit: &Literal) -> bool {
    match (value, lit) {
        (_, Literal::Int(n)) => number(value) == Some(*n),
        (Value::Bool(b), Literal::Bool(l)) => b == l,
        (Value::String(s), Literal::Str(l)) => s == l,
        // Unit enum variants serialize as strings ("Uefi"); Outcome::Ok too.
        _ => false,
    }
}

fn literal_text(lit: &Literal) -> String {
    match lit {
        Literal::Int(n) => n.to_string(),
        Literal::Str(s) => format!("{s:?}"),
        Literal::Bool(b) => b.to_string(),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse_script;
    use evidence::*;
    use std::time::Duration;

    fn frame(seq: u32, body: Body) -> Frame {
        Frame {
            boot_id: 1,
            seq,
            cmd: 4,
            body,
        }
    }

    fn outcome() -> CommandOutcome {
        let ctrl = NvmeController {
            bus: 0,
            device: 4,
            function: 0,
            vid: 0x1ae0,
            ssvid: 0x1ae0,
            serial: "nvme_card-pd".into(),
            model: "nvme_card-pd".into(),
            firmware: "2".into(),
            version: 0x10400,
            mdts_bytes: 131072,
            namespaces: 1,
            active_namespaces: vec![1],
        };
        let result = CommandResult {
            outcome: Outcome::Ok,
            elapsed_us: 900,
        };
        CommandOutcome {
            line: "nvme identify".into(),
            started_line: "nvme identify".into(),
            cmd: 4,
            text: "model nvme_card-pd\n".into(),
            frames: vec![
                frame(
                    10,
                    Body::CommandStart(CommandStart {
                        line: "nvme identify".into(),
                    }),
                ),
                frame(11, Body::NvmeController(ctrl)),
                frame(
                    12,
                    Body::NvmeNamespace(NvmeNamespace {
                        nsid: 1,
                        blocks: 2048,
                        block_size: 512,
                        capacity_bytes: 1 << 20,
                        gce_device_name: String::new(),
                    }),
                ),
                frame(13, Body::CommandResult(result)),
            ],
            result: CommandResult {
                outcome: Outcome::Ok,
                elapsed_us: 900,
            },
            elapsed: Duration::from_millis(30),
        }
    }

    fn verdicts(lines: &str) -> Vec<Verdict> {
        let s = parse_script(&format!("nvme identify\n{lines}")).unwrap();
        s.steps[0]
            .expectations
            .iter()
            .map(|e| evaluate(e, &outcome()))
            .collect()
    }

    #[test]
    fn passing_expectations() {
        let v = verdicts(
            "expect nvme.identify.model ~ \"nvme_card\"\n\
             expect nvme.identify.vid == 0x1ae0\n\
             expect nvme.identify.active_namespaces ~ 1\n\
             expect nvme.namespace.blocks >= 2048\n\
             expect nvme.namespace\n\
             expect command.result.outcome == Ok\n\
             expect-count nvme.namespace == 1\n\
             expect-text \"nvme_card-pd\"\n",
        );
        for (i, v) in v.iter().enumerate() {
            assert!(v.passed, "expectation {i}: {}", v.detail);
        }
    }

    #[test]
    fn failing_expectations_say_what_was_seen() {
        let v = verdicts(
            "expect nvme.identify.model == \"QEMU\"\n\
             expect nvme.read.sha256 == 0\n\
             expect nvme.namespace.blocks > 4096\n\
             expect nvme.identify.model >= 3\n\
             expect-count pci.function >= 1\n",
        );
        assert!(v.iter().all(|v| !v.passed));
        assert!(v[0].detail.contains("\"nvme_card-pd\""), "{}", v[0].detail);
        assert!(
            v[1].detail.contains("no frame of kind \"nvme.read\""),
            "{}",
            v[1].detail
        );
        assert!(
            v[1].detail.contains("nvme.identify, nvme.namespace"),
            "{}",
            v[1].detail
        );
        assert!(v[2].detail.contains("2048"), "{}", v[2].detail);
        assert!(v[3].detail.contains("not a number"), "{}", v[3].detail);
        assert!(v[4].detail.contains("0 pci.function"), "{}", v[4].detail);
    }

    fn teardown_outcome() -> CommandOutcome {
        let step = |seq, name: &str, ok| {
            frame(
                seq,
                Body::TeardownStep(TeardownStep {
                    device: "gvnic".into(),
                    step: name.into(),
                    ok,
                    detail: String::new(),
                }),
            )
        };
        let result = CommandResult {
            outcome: Outcome::Ok,
            elapsed_us: 9,
        };
        CommandOutcome {
            line: "teardown all".into(),
            started_line: "teardown all".into(),
            cmd: 4,
            text: String::new(),
            frames: vec![
                frame(
                    1,
                    Body::CommandStart(CommandStart {
                        line: "teardown all".into(),
                    }),
                ),
                step(2, "reset", true),
                step(3, "msix-disable", false),
                frame(4, Body::CommandResult(result.clone())),
            ],
            result,
            elapsed: Duration::from_millis(3),
        }
    }

    #[test]
    fn an_equality_holds_for_every_frame_of_the_kind_unless_any_is_asked() {
        let s = parse_script(
            "teardown all\n\
             expect teardown.step.ok == true\n\
             expect any teardown.step.ok == true\n\
             expect teardown.step.step ~ \"msix\"\n\
             expect teardown.step.detail !~ \"x\"\n\
             expect all teardown.step.step ~ \"e\"\n",
        )
        .unwrap();
        let v: Vec<Verdict> = s.steps[0]
            .expectations
            .iter()
            .map(|e| evaluate(e, &teardown_outcome()))
            .collect();
        assert!(!v[0].passed, "one step said ok: false: {}", v[0].detail);
        assert!(v[0].detail.contains("1 of 2"), "{}", v[0].detail);
        for (i, v) in v.iter().enumerate().skip(1) {
            assert!(v.passed, "expectation {i}: {}", v.detail);
        }
    }
}
