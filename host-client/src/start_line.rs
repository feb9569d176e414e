//! Whether a `command.start` frame's `line` is the line the host sent.
//!
//! The monitor frames the line it parsed, trimmed, and keeps at most [`START_LINE_MAX_CHARS`]
//! characters of it (commands/src/shell.rs `START_LINE_MAX`: frames stay small). So the
//! framed line must equal the sent one, except when it is exactly at the cap: then it must
//! equal what the cap kept of the sent line. A framed line shorter than the cap that is only
//! a prefix of ours is a line whose tail was lost on the way (`nvme read 0 8` arriving as
//! `nvme read 0`): that command is not the one we sent and is never credited as it.
//!
//! This module knows the monitor's framing rule, nothing about sessions or transports.

/// The monitor's cap on a start frame's `line`, in characters (commands/src/shell.rs, fact
/// of our own monitor).
pub const START_LINE_MAX_CHARS: usize = 96;

/// Whether `framed` (a start frame's line) is `sent` as the monitor frames it.
pub fn is_line_sent(framed: &str, sent: &str) -> bool {
    let sent = sent.trim();
    if framed.is_empty() {
        return false;
    }
    if framed.chars().count() == START_LINE_MAX_CHARS {
        sent.chars().take(START_LINE_MAX_CHARS).eq(framed.chars())
    } else {
        framed == sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_whose_tail_was_lost_is_not_the_line_sent() {
        assert!(is_line_sent("nvme read 0 8", "nvme read 0 8"));
        assert!(is_line_sent("version", "  version "));
        assert!(!is_line_sent("nvme read 0", "nvme read 0 8"));
        assert!(!is_line_sent("poke A 0x12", "poke A 0x1234"));
        assert!(!is_line_sent("", "version"));
        assert!(!is_line_sent("version x", "version"));
    }

    #[test]
    fn at_the_cap_what_the_cap_kept_is_compared() {
        let long = format!("echo {}", "x".repeat(150));
        let capped: String = long.chars().take(START_LINE_MAX_CHARS).collect();
        assert!(is_line_sent(&capped, &long));
        let mut other = capped.clone();
        other.pop();
        other.push('y');
        assert!(!is_line_sent(&other, &long));
        // One short of the cap is a truncation, not the cap.
        let short: String = long.chars().take(START_LINE_MAX_CHARS - 1).collect();
        assert!(!is_line_sent(&short, &long));
        // Exactly at the cap and complete.
        let exact = "y".repeat(START_LINE_MAX_CHARS);
        assert!(is_line_sent(&exact, &exact));
    }
}
