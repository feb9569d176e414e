//! Google Compute Engine: the serial-console gateway over OpenSSH ([`ssh`]: target and argv;
//! [`connect`]: banner, settle, retries; [`banner`]: the banner inside console bytes) and the
//! gcloud wrappers for images and VMs ([`gcloud`]).

pub mod banner;
pub mod connect;
pub mod follow;
pub mod gcloud;
pub mod ssh;

pub use connect::GatewayError;
pub use ssh::{GceTarget, GATEWAY_HOST, GATEWAY_PORT};

/// Quotes one argument for a POSIX shell, only when it needs it, so printed commands can be
/// pasted into a terminal as they are.
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A whole argv as one shell line.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_only_when_needed() {
        assert_eq!(shell_quote("a.b=c,d"), "a.b=c,d");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
