//! Tokens, flags and numbers: the part of the grammar shared by every command.
//!
//! A line is whitespace-separated words. Words starting with `--` are flags; a flag the
//! command declares as taking a value consumes the next word. Everything else is positional.

use alloc::string::String;
use alloc::vec::Vec;

use drivers::platform::{Bdf, Width};

use crate::table::{CmdError, CommandSpec, Flag};

/// Longest line the shell accepts; longer input is refused, not truncated silently.
pub const MAX_LINE: usize = 512;

/// Flags that may be given more than once (each value kept, in order; see [`Args::values`]).
/// A list here rather than a field of `Flag`, so no other command's spec changes.
pub const REPEATABLE_FLAGS: &[&str] = &["--header"];

/// Parsed arguments of one command invocation.
#[derive(Debug, Default)]
pub struct Args<'a> {
    pub positional: Vec<&'a str>,
    flags: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Args<'a> {
    /// Splits `words` (the command's own words already removed) against `spec`.
    pub fn parse(spec: &CommandSpec, words: &[&'a str]) -> Result<Args<'a>, CmdError> {
        let mut args = Args::default();
        let mut iter = words.iter();
        while let Some(word) = iter.next() {
            if word.starts_with("--") && word.len() > 2 {
                let flag = spec.flags.iter().find(|f| f.name == *word).ok_or_else(|| {
                    CmdError::usage(spec, alloc::format!("unknown option '{word}'"))
                })?;
                let value = if flag.takes_value {
                    Some(*iter.next().ok_or_else(|| {
                        CmdError::usage(spec, alloc::format!("option '{word}' needs a value"))
                    })?)
                } else {
                    None
                };
                if args.flags.iter().any(|(name, _)| name == word)
                    && !REPEATABLE_FLAGS.contains(word)
                {
                    return Err(CmdError::usage(
                        spec,
                        alloc::format!("option '{word}' given twice"),
                    ));
                }
                args.flags.push((word, value));
            } else {
                args.positional.push(word);
            }
        }
        let count = args.positional.len();
        if count < spec.min_args || count > spec.max_args {
            let wanted = if spec.min_args == spec.max_args {
                alloc::format!("{}", spec.min_args)
            } else {
                alloc::format!("{} to {}", spec.min_args, spec.max_args)
            };
            return Err(CmdError::usage(
                spec,
                alloc::format!("'{}' takes {wanted} argument(s), got {count}", spec.name),
            ));
        }
        Ok(args)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| *n == name)
    }

    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.flags
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
    }

    /// Every value of a repeatable flag, in the order given.
    pub fn values(&self, name: &str) -> Vec<&'a str> {
        self.flags
            .iter()
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| *v)
            .collect()
    }

    pub fn get(&self, index: usize) -> Option<&'a str> {
        self.positional.get(index).copied()
    }

    /// Positional `index` as a number (`what` names it in errors; missing counts as empty).
    pub fn number(&self, index: usize, what: &str) -> Result<u64, CmdError> {
        parse_number(what, self.get(index).unwrap_or(""))
    }

    /// Positional `index` as a `bb:dd.f` PCI address.
    pub fn bdf(&self, index: usize) -> Result<Bdf, CmdError> {
        parse_bdf(self.get(index).unwrap_or(""))
    }

    /// `--width N` in bytes, one of `allowed`; `default` when absent. The one width grammar
    /// of every command (`bad-width` otherwise).
    pub fn width(&self, allowed: &[Width], default: Width) -> Result<Width, CmdError> {
        let Some(text) = self.value("--width") else {
            return Ok(default);
        };
        let bytes = parse_number("width", text).map_err(|_| bad_width(text, allowed))?;
        Width::from_bytes(bytes)
            .filter(|w| allowed.contains(w))
            .ok_or_else(|| bad_width(text, allowed))
    }

    /// Whether `--width` was given at all.
    pub fn has_width(&self) -> bool {
        self.value("--width").is_some()
    }

    /// A numeric flag value, or `default` when the flag is absent.
    pub fn number_or(&self, name: &str, default: u64) -> Result<u64, CmdError> {
        self.value(name)
            .map_or(Ok(default), |text| parse_number(name, text))
    }
}

/// The `--width` flag declaration, for a command's `flags` list.
pub const WIDTH_FLAG: Flag = Flag {
    name: "--width",
    takes_value: true,
    help: "access width in bytes: 1, 2, 4 or 8 (what the command allows)",
};

fn bad_width(text: &str, allowed: &[Width]) -> CmdError {
    let list: Vec<String> = allowed.iter().map(|w| alloc::format!("{w}")).collect();
    CmdError::new(
        "bad-width",
        alloc::format!(
            "width '{}' is not one of {} (bytes)",
            text.chars().take(16).collect::<String>(),
            list.join(", ")
        ),
    )
}

/// Refuses `value` when it does not fit `width` (`value-too-wide`).
pub fn check_fits(value: u64, width: Width) -> Result<(), CmdError> {
    if value > width.max_value() {
        return Err(CmdError::new(
            "value-too-wide",
            alloc::format!("value {value:#x} does not fit in {width} byte(s)"),
        ));
    }
    Ok(())
}

/// Refuses an address, offset or port not aligned to `width`; `code` names the space.
pub fn check_aligned(
    code: &'static str,
    what: &str,
    at: u64,
    width: Width,
) -> Result<(), CmdError> {
    if !width.aligned(at) {
        return Err(CmdError::new(
            code,
            alloc::format!("{what} {at:#x} is not aligned to the access width {width}"),
        ));
    }
    Ok(())
}

/// Parses a `bb:dd.f` argument with a helpful error.
pub fn parse_bdf(text: &str) -> Result<Bdf, CmdError> {
    Bdf::parse(text).ok_or_else(|| {
        CmdError::new(
            "bad-bdf",
            alloc::format!(
                "'{}' is not a PCI address; use bb:dd.f in hex, e.g. 00:04.0",
                text.chars().take(24).collect::<String>()
            ),
        )
    })
}

/// Parses decimal or `0x` hexadecimal into a u64; `what` names the argument in the error.
pub fn parse_number(what: &str, text: &str) -> Result<u64, CmdError> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (digits, radix) = match cleaned
        .strip_prefix("0x")
        .or_else(|| cleaned.strip_prefix("0X"))
    {
        Some(hex) => (hex, 16),
        None => (cleaned.as_str(), 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(CmdError::new(
            "bad-number",
            alloc::format!("{what}: '{text}' is not a number (use decimal or 0x-hex)"),
        ));
    }
    u64::from_str_radix(digits, radix).map_err(|_| {
        CmdError::new(
            "bad-number",
            alloc::format!("{what}: '{text}' is too large (max {})", u64::MAX),
        )
    })
}

/// Splits a line into words; refuses lines that are too long or carry control bytes, so a
/// burst of noise never reaches a command.
pub fn split_line(line: &str) -> Result<Vec<&str>, CmdError> {
    if line.len() > MAX_LINE {
        return Err(CmdError::new(
            "line-too-long",
            alloc::format!("line too long ({} bytes, max {MAX_LINE})", line.len()),
        ));
    }
    if let Some(bad) = line.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(CmdError::new(
            "bad-input",
            alloc::format!("line contains control character U+{:04X}", bad as u32),
        ));
    }
    split_words(line)
}

/// Whitespace-separated words; a word that starts with `"` runs to the next `"` and may
/// hold spaces (`--header "Metadata-Flavor: Google"`), given without its quotes. There is
/// no escaping; a quote inside a word is an ordinary character.
fn split_words(line: &str) -> Result<Vec<&str>, CmdError> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| CmdError::new("bad-input", "a quoted word has no closing '\"'"))?;
            words.push(&quoted[..end]);
            rest = &quoted[end + 1..];
            if rest.starts_with(|c: char| !c.is_whitespace()) {
                return Err(CmdError::new(
                    "bad-input",
                    "a closing '\"' must end the word",
                ));
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(&rest[..end]);
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_and_repeated_headers() {
        assert_eq!(
            split_line(r#"gvnic http x --header "A: b c" --header  "" y"#).unwrap(),
            ["gvnic", "http", "x", "--header", "A: b c", "--header", "", "y"]
        );
        assert_eq!(split_line("  a  b ").unwrap(), ["a", "b"]);
        assert_eq!(split_line(r#"a b"c"#).unwrap(), ["a", r#"b"c"#]);
        assert_eq!(split_line(r#"a "open"#).unwrap_err().code, "bad-input");
        assert_eq!(split_line(r#"a "x"y"#).unwrap_err().code, "bad-input");
        let spec = CommandSpec {
            name: "h",
            usage: "h",
            summary: "",
            details: "",
            examples: &[],
            min_args: 0,
            max_args: 1,
            flags: &[
                Flag {
                    name: "--header",
                    takes_value: true,
                    help: "",
                },
                Flag {
                    name: "--timeout",
                    takes_value: true,
                    help: "",
                },
            ],
            run: |_, _| Ok(()),
        };
        let args = Args::parse(&spec, &["--header", "A: 1", "--header", "B: 2"]).unwrap();
        assert_eq!(args.values("--header"), ["A: 1", "B: 2"]);
        assert!(Args::parse(&spec, &["--timeout", "1", "--timeout", "2"]).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("lba", "42").unwrap(), 42);
        assert_eq!(parse_number("lba", "0x2A").unwrap(), 42);
        assert_eq!(parse_number("lba", "1_000").unwrap(), 1000);
        assert_eq!(
            parse_number("lba", "18446744073709551615").unwrap(),
            u64::MAX
        );
        let err = parse_number("lba", "18446744073709551616").unwrap_err();
        assert_eq!(err.code, "bad-number");
        assert!(err.message.contains("too large"));
        for bad in ["", "0x", "-1", "12ab", "0x1g", "1.5", "١٢"] {
            assert!(parse_number("lba", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn widths_values_alignment() {
        let spec = CommandSpec {
            name: "peek",
            usage: "peek",
            summary: "",
            details: "",
            examples: &[],
            min_args: 0,
            max_args: 1,
            flags: &[WIDTH_FLAG],
            run: |_, _| Ok(()),
        };
        let all = &Width::ALL;
        let args = Args::parse(&spec, &["--width", "4"]).unwrap();
        assert_eq!(args.width(all, Width::W1).unwrap(), Width::W4);
        assert_eq!(
            args.width(&[Width::W1, Width::W2], Width::W1)
                .unwrap_err()
                .code,
            "bad-width"
        );
        for bad in ["3", "16", "x", "0"] {
            let args = Args::parse(&spec, &["--width", bad]).unwrap();
            assert_eq!(
                args.width(all, Width::W1).unwrap_err().code,
                "bad-width",
                "{bad}"
            );
        }
        let none = Args::parse(&spec, &[]).unwrap();
        assert_eq!(none.width(all, Width::W2).unwrap(), Width::W2);
        assert!(check_fits(0xff, Width::W1).is_ok());
        assert_eq!(
            check_fits(0x100, Width::W1).unwrap_err().code,
            "value-too-wide"
        );
        assert!(check_fits(u64::MAX, Width::W8).is_ok());
        assert_eq!(
            check_aligned("unaligned-port", "port", 0x71, Width::W2)
                .unwrap_err()
                .code,
            "unaligned-port"
        );
    }

    #[test]
    fn lines() {
        assert_eq!(
            split_line("  nvme   read 0 \t 8 ").unwrap(),
            ["nvme", "read", "0", "8"]
        );
        assert_eq!(
            split_line(&"x".repeat(MAX_LINE + 1)).unwrap_err().code,
            "line-too-long"
        );
        assert_eq!(split_line("ls\u{1b}[A").unwrap_err().code, "bad-input");
        assert!(split_line("").unwrap().is_empty());
    }
}
