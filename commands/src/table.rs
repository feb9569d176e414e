//! The dispatch table: every command's name, grammar, help text and handler.
//!
//! Commands are one or two words (`lspci`, `nvme read`). Each module contributes a slice of
//! [`CommandSpec`]s; [`all_commands`] is the single place that lists them.

use alloc::string::String;
use alloc::vec::Vec;

use crate::args::Args;
use crate::output::Output;
use crate::shell::{DeviceState, SystemInfo};
use drivers::platform::Hw;

/// A command failure: a stable kebab-case `code` for machines, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    pub code: &'static str,
    pub message: String,
}

impl CmdError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        CmdError {
            code,
            message: message.into(),
        }
    }

    /// A grammar error; the message ends with the command's usage line.
    pub fn usage(spec: &CommandSpec, problem: String) -> Self {
        CmdError::new("usage", alloc::format!("{problem}; usage: {}", spec.usage))
    }
}

/// Everything a handler may use while it runs.
pub struct Ctx<'c, 'h> {
    pub hw: &'c mut Hw<'h>,
    pub out: Output<'c>,
    pub devices: &'c mut DeviceState,
    pub info: &'c SystemInfo,
}

pub type Handler = fn(&mut Ctx, &Args) -> Result<(), CmdError>;

/// A `--flag` a command accepts.
#[derive(Debug)]
pub struct Flag {
    pub name: &'static str,
    pub takes_value: bool,
    pub help: &'static str,
}

#[derive(Debug)]
pub struct CommandSpec {
    /// One or two words, e.g. "nvme read".
    pub name: &'static str,
    /// Grammar line, e.g. "nvme read <lba> [count] [--ns N] [--dump]".
    pub usage: &'static str,
    /// One line for the `help` overview.
    pub summary: &'static str,
    /// Longer text for `help <command>`: what it does and what it proves.
    pub details: &'static str,
    pub examples: &'static [&'static str],
    pub min_args: usize,
    pub max_args: usize,
    pub flags: &'static [Flag],
    pub run: Handler,
}

/// One module's commands, and whether they hand memory to a device.
struct Group {
    commands: &'static [CommandSpec],
    /// The group's commands give a device DMA memory (queues, buffers): on a confidential
    /// VM the shell refuses them with `confidential-vm-unsupported` before they run. A new
    /// DMA command joins a `true` group (or its group gets the flag); the DMA pool refuses
    /// every allocation there anyway, as a backstop.
    device_memory: bool,
}

/// Every command group, in the order `help` lists them.
const GROUPS: &[Group] = &[
    Group {
        commands: crate::core_cmds::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::mem::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::mem_map::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::memtypes::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::pci::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::timing::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::config::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::io::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::cpu::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::acpi::COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::irq::MSIX_COMMANDS,
        device_memory: false,
    },
    Group {
        commands: crate::cmd::irq::COMMANDS,
        device_memory: true,
    },
    Group {
        commands: crate::nvme::COMMANDS,
        device_memory: true,
    },
    Group {
        commands: crate::gvnic::COMMANDS,
        device_memory: true,
    },
    Group {
        commands: crate::cmd::net::COMMANDS,
        device_memory: true,
    },
];

/// Every command, in the order `help` lists them.
pub fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    GROUPS.iter().flat_map(|group| group.commands.iter())
}

/// True if `spec` hands memory to a device (see [`Group::device_memory`]).
pub fn hands_memory_to_device(spec: &CommandSpec) -> bool {
    GROUPS
        .iter()
        .any(|group| group.device_memory && group.commands.iter().any(|s| core::ptr::eq(s, spec)))
}

/// Finds the spec for `words`; returns it and how many words its name used.
pub fn lookup(words: &[&str]) -> Result<(&'static CommandSpec, usize), CmdError> {
    let first = words.first().copied().unwrap_or("");
    if let Some(second) = words.get(1) {
        let wanted_len = first.len() + 1 + second.len();
        if let Some(spec) = all_commands().find(|spec| {
            spec.name.len() == wanted_len
                && spec.name.starts_with(first)
                && spec.name.ends_with(second)
                && spec.name.as_bytes()[first.len()] == b' '
        }) {
            return Ok((spec, 2));
        }
    }
    if let Some(spec) = all_commands().find(|spec| spec.name == first) {
        return Ok((spec, 1));
    }
    // A known group word without (or with a wrong) sub-command.
    let group: Vec<&str> = all_commands()
        .filter_map(|spec| {
            spec.name
                .split_once(' ')
                .filter(|(g, _)| *g == first)
                .map(|(_, sub)| sub)
        })
        .collect();
    if !group.is_empty() {
        let given = words.get(1).copied().unwrap_or("");
        let mut message = if given.is_empty() {
            alloc::format!("'{first}' needs a sub-command")
        } else {
            alloc::format!("unknown sub-command '{first} {given}'")
        };
        message.push_str(&alloc::format!(": one of {}", group.join(", ")));
        if let Some(best) = closest(given, group.iter().copied()) {
            message = alloc::format!("{message} (did you mean '{first} {best}'?)");
        }
        return Err(CmdError::new("unknown-command", message));
    }
    let mut message = alloc::format!("unknown command '{}'", truncate(first, 40));
    if let Some(best) = closest(first, command_words()) {
        message.push_str(&alloc::format!(" (did you mean '{best}'?)"));
    } else {
        message.push_str(" (type 'help' for the list)");
    }
    Err(CmdError::new("unknown-command", message))
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// The first words of all commands, deduplicated.
fn command_words() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    for spec in all_commands() {
        let word = spec.name.split(' ').next().unwrap_or(spec.name);
        if !seen.contains(&word) {
            seen.push(word);
        }
    }
    seen.into_iter()
}

/// The candidate within edit distance 2 (and less than the word's length) of `word`.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if word.is_empty() || word.len() > 32 {
        return None;
    }
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2 && *d < word.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean() {
        let err = lookup(&["verison"]).unwrap_err();
        assert_eq!(
            err.message,
            "unknown command 'verison' (did you mean 'version'?)"
        );
        let err = lookup(&["xyzzy"]).unwrap_err();
        assert_eq!(
            err.message,
            "unknown command 'xyzzy' (type 'help' for the list)"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn names_are_unique_and_documented() {
        let names: Vec<&str> = all_commands().map(|s| s.name).collect();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(name), "duplicate command {name}");
        }
        for spec in all_commands() {
            assert!(
                spec.usage.starts_with(spec.name),
                "{}: usage must start with the name",
                spec.name
            );
            assert!(
                !spec.summary.is_empty() && !spec.examples.is_empty(),
                "{} lacks help",
                spec.name
            );
            assert!(spec.min_args <= spec.max_args);
        }
    }
}
