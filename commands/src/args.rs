//! Tokens, flags and numbers: the part of the grammar shared by every command.
//!
//! A line is whitespace-separated words. Words starting with `--` are flags; a flag the
//! command declares as taking a value consumes the next word. Everything else is positional.

use alloc::string::String;
use alloc::vec::Vec;

use crate::table::{CmdError, CommandSpec};

/// Longest line the shell accepts; longer input is refused, not truncated silently.
pub const MAX_LINE: usize = 512;

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
                if args.flags.iter().any(|(name, _)| name == word) {
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

    pub fn get(&self, index: usize) -> Option<&'a str> {
        self.positional.get(index).copied()
    }

    /// A numeric flag value, or `default` when the flag is absent.
    pub fn number_or(&self, name: &str, default: u64) -> Result<u64, CmdError> {
        self.value(name)
            .map_or(Ok(default), |text| parse_number(name, text))
    }
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
    Ok(line.split_whitespace().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
