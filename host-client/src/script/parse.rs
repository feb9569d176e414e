//! The command-file parser. Every error names the line.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use super::vocabulary::{check_field, kinds, split_kind};
use super::{Check, Expectation, Literal, Op, Quantifier, Script, Step};

/// Parses `30s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (num, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| anyhow!("bad duration {text:?}: use e.g. 30s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => bail!("bad duration unit in {text:?}: use ms, s or m"),
    };
    if !(secs > 0.0 && secs <= 24.0 * 3600.0) {
        bail!("duration {text:?} must be above zero and at most a day");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a whole command file.
pub fn parse_script(text: &str) -> Result<Script> {
    let mut steps: Vec<Step> = Vec::new();
    let mut pending_timeout: Option<(usize, Duration)> = None;
    let mut pending_fail: Option<(usize, String)> = None;
    let mut default_timeout: Option<Duration> = None;
    let mut allow_model_violations = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: anyhow::Error| anyhow!("line {line_no}: {e}");
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match word {
            "timeout" => {
                pending_timeout = Some((line_no, parse_duration(rest).map_err(at)?));
            }
            "default-timeout" => default_timeout = Some(parse_duration(rest).map_err(at)?),
            "allow-model-violations" => {
                if !rest.is_empty() {
                    return Err(at(anyhow!("allow-model-violations takes no argument")));
                }
                allow_model_violations = true;
            }
            "expect-fail" => {
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err(at(anyhow!("expect-fail takes one error code (or *), e.g. `expect-fail unknown-command`")));
                }
                pending_fail = Some((line_no, rest.to_string()));
            }
            "expect" | "expect-count" | "expect-text" => {
                let check = parse_check(word, rest).map_err(at)?;
                let Some(step) = steps.last_mut() else {
                    return Err(at(anyhow!(
                        "`{word}` applies to the command before it, and there is none"
                    )));
                };
                if pending_timeout.is_some() || pending_fail.is_some() {
                    return Err(at(anyhow!("`{word}` must follow its command; a timeout/expect-fail above is waiting for the next command")));
                }
                step.expectations.push(Expectation {
                    line_no,
                    source: line.to_string(),
                    check,
                });
            }
            _ => {
                steps.push(Step {
                    line_no,
                    command: line.to_string(),
                    timeout: pending_timeout.take().map(|(_, d)| d).or(default_timeout),
                    expect_fail: pending_fail.take().map(|(_, c)| c),
                    expectations: Vec::new(),
                });
            }
        }
    }
    if let Some((n, _)) = pending_timeout {
        bail!("line {n}: `timeout` is not followed by a command");
    }
    if let Some((n, _)) = pending_fail {
        bail!("line {n}: `expect-fail` is not followed by a command");
    }
    if steps.is_empty() {
        bail!("the script has no commands");
    }
    Ok(Script {
        steps,
        allow_model_violations,
    })
}

fn parse_check(word: &str, rest: &str) -> Result<Check> {
    match word {
        "expect-text" => {
            let (lit, tail) = parse_literal(rest)?;
            if !tail.trim().is_empty() {
                bail!("unexpected {tail:?} after the text");
            }
            let Literal::Str(needle) = lit else {
                bail!("expect-text takes a quoted string, e.g. expect-text \"ready\"");
            };
            Ok(Check::Text { needle })
        }
        "expect-count" => {
            let mut parts = rest.split_whitespace();
            let (Some(kind), Some(op), Some(n), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                bail!("expect-count takes `<kind> <op> <n>`, e.g. expect-count pci.function >= 2");
            };
            let op = parse_op(op)?;
            if matches!(op, Op::Contains | Op::NotContains) {
                bail!("expect-count compares numbers: use == != >= <= > <");
            }
            let Literal::Int(n) = parse_literal(n)?.0 else {
                bail!("expect-count needs a number, got {n:?}");
            };
            match split_kind(kind) {
                Some((k, "")) if k.name == kind => {}
                _ => bail!("{}", unknown_kind(kind)),
            }
            Ok(Check::Count {
                kind: kind.to_string(),
                op,
                n,
            })
        }
        _ => {
            let (quant, rest) = match rest.split_once(char::is_whitespace) {
                Some(("all", r)) => (Some(Quantifier::All), r.trim_start()),
                Some(("any", r)) => (Some(Quantifier::Any), r.trim_start()),
                _ => (None, rest),
            };
            let (path, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if path.is_empty()
                || !path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                bail!("expect needs `<kind>.<field> <op> <value>`, e.g. expect nvme.identify.model ~ \"nvme_card\"");
            }
            let (kind, field) =
                split_kind(path).ok_or_else(|| anyhow!("{}", unknown_kind(path)))?;
            check_field(kind, field).map_err(|e| anyhow!("{e}"))?;
            let tail = tail.trim();
            if tail.is_empty() {
                return Ok(Check::Field {
                    path: path.to_string(),
                    cmp: None,
                    quant: quant.unwrap_or(Quantifier::default_for(None)),
                });
            }
            let (op, value) = tail.split_once(char::is_whitespace).unwrap_or((tail, ""));
            let op = parse_op(op)?;
            let (lit, extra) = parse_literal(value.trim())?;
            if !extra.trim().is_empty() {
                bail!("unexpected {extra:?} after the value (quote strings with spaces)");
            }
            Ok(Check::Field {
                path: path.to_string(),
                cmp: Some((op, lit)),
                quant: quant.unwrap_or(Quantifier::default_for(Some(op))),
            })
        }
    }
}

/// A kind that is not in the frame vocabulary, with the known ones (an expectation on a
/// kind no frame ever has would count zero frames and could pass checking nothing).
fn unknown_kind(path: &str) -> String {
    let names: Vec<&str> = kinds().iter().map(|k| k.name).collect();
    format!(
        "no frame kind is called {:?} (known: {})",
        path.split('.').take(2).collect::<Vec<_>>().join("."),
        names.join(", ")
    )
}

fn parse_op(op: &str) -> Result<Op> {
    Ok(match op {
        "==" => Op::Eq,
        "!=" => Op::Ne,
        "~" => Op::Contains,
        "!~" => Op::NotContains,
        ">=" => Op::Ge,
        "<=" => Op::Le,
        ">" => Op::Gt,
        "<" => Op::Lt,
        _ => bail!("unknown operator {op:?}: use == != ~ !~ >= <= > <"),
    })
}

/// One literal from the start of `text`; returns it and what follows.
fn parse_literal(text: &str) -> Result<(Literal, &str)> {
    let text = text.trim_start();
    if let Some(body) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((Literal::Str(out), &body[i + 1..])),
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c @ ('"' | '\\'))) => out.push(c),
                    other => bail!("bad escape \\{} in string", other.map_or(' ', |o| o.1)),
                },
                c => out.push(c),
            }
        }
        bail!("unterminated string {text:?}");
    }
    if text.is_empty() {
        bail!("a value is missing after the operator");
    }
    let (word, tail) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let lit = match word {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        _ => match parse_int(word) {
            Some(n) => Literal::Int(n),
            None => Literal::Str(word.to_string()),
        },
    };
    Ok((lit, tail))
}

fn parse_int(word: &str) -> Option<i128> {
    let (neg, digits) = match word.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, word),
    };
    let digits = digits.replace('_', "");
    let value = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i128::from_str_radix(hex, 16).ok()?,
        None if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        None => return None,
    };
    Some(if neg { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
# NVMe proof
default-timeout 20s
version
expect banner
timeout 60s
nvme identify
expect nvme.identify.model ~ "nvme_card"
expect nvme.namespace.blocks >= 0x10
expect-count nvme.namespace == 1
expect-fail unknown-command
lsppci
expect-text "did you mean"
"#;

    #[test]
    fn sample_parses_with_timeouts_and_expectations() {
        let s = parse_script(SAMPLE).unwrap();
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[0].command, "version");
        assert_eq!(s.steps[0].line_no, 4);
        assert_eq!(s.steps[0].timeout, Some(Duration::from_secs(20)));
        assert_eq!(
            s.steps[0].expectations[0].check,
            Check::Field {
                path: "banner".into(),
                cmp: None,
                quant: Quantifier::Any,
            }
        );
        let identify = &s.steps[1];
        assert_eq!(identify.timeout, Some(Duration::from_secs(60)));
        assert_eq!(
            identify.expectations[0].check,
            Check::Field {
                path: "nvme.identify.model".into(),
                cmp: Some((Op::Contains, Literal::Str("nvme_card".into()))),
                quant: Quantifier::Any,
            }
        );
        assert_eq!(
            identify.expectations[1].check,
            Check::Field {
                path: "nvme.namespace.blocks".into(),
                cmp: Some((Op::Ge, Literal::Int(16))),
                quant: Quantifier::Any,
            }
        );
        assert_eq!(
            identify.expectations[2].check,
            Check::Count {
                kind: "nvme.namespace".into(),
                op: Op::Eq,
                n: 1
            }
        );
        assert_eq!(s.steps[2].expect_fail.as_deref(), Some("unknown-command"));
        assert_eq!(
            s.steps[2].timeout,
            Some(Duration::from_secs(20)),
            "default applies again"
        );
        assert_eq!(
            s.steps[2].expectations[0].check,
            Check::Text {
                needle: "did you mean".into()
            }
        );
    }

    #[test]
    fn quantifiers_are_explicit_or_default_by_operator() {
        let s = parse_script(
            "teardown all\n\
             expect teardown.step.ok == true\n\
             expect any teardown.step.ok == false\n\
             expect all pci.function.vendor_id >= 1\n\
             expect teardown.step.step ~ \"reset\"\n\
             expect teardown.step.detail !~ \"timeout\"\n",
        )
        .unwrap();
        let quants: Vec<Quantifier> = s.steps[0]
            .expectations
            .iter()
            .map(|e| match &e.check {
                Check::Field { quant, .. } => *quant,
                other => panic!("{other:?}"),
            })
            .collect();
        use Quantifier::*;
        assert_eq!(quants, [All, Any, All, Any, All]);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("expect banner\n", "line 1", "there is none"),
            ("version\ntimeout 5s\n", "line 2", "not followed"),
            (
                "version\nexpect banner.version ?? 3\n",
                "line 2",
                "unknown operator",
            ),
            ("timeout 5 parsecs\nversion\n", "line 1", "duration"),
            (
                "version\nexpect banner.version == \"open\n",
                "line 2",
                "unterminated",
            ),
            // The frame vocabulary is known: a misspelt kind or field is a script error.
            (
                "version\nexpect-count machine_check == 0\n",
                "line 2",
                "no frame kind is called \"machine_check\"",
            ),
            ("version\nexpect nvme.idnetify\n", "line 2", "no frame kind"),
            (
                "version\nexpect teardown.step.okay == true\n",
                "line 2",
                "no field \"okay\"",
            ),
            (
                "version\nexpect every teardown.step.ok == true\n",
                "line 2",
                "no frame kind",
            ),
            (
                "version\nexpect-count banner ~ 2\n",
                "line 2",
                "compares numbers",
            ),
            ("# only comments\n", "no commands", ""),
        ];
        for (text, line, what) in cases {
            let err = parse_script(text).unwrap_err().to_string();
            assert!(
                err.contains(line) && err.contains(what),
                "{text:?} -> {err}"
            );
        }
    }

    #[test]
    fn literals_and_durations() {
        assert_eq!(parse_literal("-12 x").unwrap(), (Literal::Int(-12), "x"));
        assert_eq!(
            parse_literal("gqi-qpl").unwrap().0,
            Literal::Str("gqi-qpl".into())
        );
        assert_eq!(
            parse_literal(r#""a \"b\"""#).unwrap().0,
            Literal::Str("a \"b\"".into())
        );
        assert_eq!(parse_literal("true").unwrap().0, Literal::Bool(true));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("0s").is_err());
    }
}
