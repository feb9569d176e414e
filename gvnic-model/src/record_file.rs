//! The record as a document that leaves the process: `gvnic-model --record FILE` writes it
//! as JSON when QEMU closes the socket or on SIGTERM, and `bringup` reads the same document
//! from the model it runs in a thread. Every front end (the proxy today, vfio-user next)
//! calls [`write_record`] or [`Gvnic::record_file`]; none knows how the other attaches.
//!
//! Schema `gvnic-model.record/1`: the configuration (profile, formats, revision), a
//! [`Summary`] (counts and the first problems in words), every admin command with opcode,
//! name and status, violations (kind and detail), resets, MSI-X messages, the doorbells rung
//! after a host reset, driver versions and infos, and the final device state.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codes::{opcode_name, status, status_name};
use crate::record::{
    CommandRecord, DriverInfo, InterruptRecord, ResetRecord, Violation, ViolationKind,
};
use crate::Gvnic;

/// The schema name written into every record file.
pub const SCHEMA: &str = "gvnic-model.record/1";
/// Problems named in words in the summary (the rest are counted).
const PROBLEM_WORDS: usize = 8;

/// The whole record file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordFile {
    pub schema: String,
    pub profile: String,
    pub formats: String,
    pub revision: u8,
    pub summary: Summary,
    pub commands: Vec<CommandEntry>,
    pub violations: Vec<Violation>,
    pub resets: Vec<ResetRecord>,
    pub interrupts: Vec<InterruptRecord>,
    pub after_reset_doorbells: u64,
    /// Device options DESCRIBE_DEVICE left out for want of room in the driver's buffer.
    #[serde(default)]
    pub describe_options_left_out: u64,
    pub driver_versions: Vec<String>,
    pub driver_infos: Vec<DriverInfo>,
    pub final_state: FinalState,
}

/// One admin command as executed, with its names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEntry {
    pub index: u32,
    pub opcode: u32,
    pub name: String,
    pub status: u32,
    pub status_name: String,
    /// For EXTENDED_COMMAND: the inner opcode and its name.
    pub inner_opcode: Option<u32>,
    pub inner_name: Option<String>,
}

/// What a run that used the device must look at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub commands: usize,
    /// Commands answered with an error status other than UNIMPLEMENTED.
    pub refused: usize,
    /// Commands answered UNIMPLEMENTED.
    pub unimplemented: usize,
    /// Violations other than `Tolerated` ones.
    pub violations: usize,
    /// `Tolerated` violations: what GCE accepts (counted, never failing a run).
    pub tolerated: usize,
    pub resets: usize,
    pub msix_messages: usize,
    pub after_reset_doorbells: u64,
    /// The first refused/unimplemented commands and violations, in words.
    pub problems: Vec<String>,
}

impl Summary {
    /// No refused or unimplemented command and no violation beyond tolerated ones.
    pub fn clean(&self) -> bool {
        self.refused == 0 && self.unimplemented == 0 && self.violations == 0
    }

    /// One line for a verdict: the counts and the first problems.
    pub fn words(&self) -> String {
        let mut s = format!(
            "{} refused, {} unimplemented admin command(s), {} violation(s)",
            self.refused, self.unimplemented, self.violations
        );
        if !self.problems.is_empty() {
            s.push_str(": ");
            s.push_str(&self.problems.join("; "));
        }
        s
    }
}

/// The device when the record was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    /// The device holds nothing (no admin queue, resources, QPLs or queues).
    pub is_reset: bool,
    pub admin_queue_running: bool,
    /// The format CONFIGURE chose, while configured.
    pub configured_format: Option<String>,
    pub tx_queues: Vec<u32>,
    pub rx_queues: Vec<u32>,
    pub registered_pages: usize,
    /// The device asks the driver to reset (DEVICE_STATUS.RESET after a host reset).
    pub reset_requested: bool,
}

impl CommandEntry {
    fn of(c: &CommandRecord) -> CommandEntry {
        CommandEntry {
            index: c.index,
            opcode: c.opcode,
            name: opcode_name(c.opcode).into(),
            status: c.status,
            status_name: status_name(c.status).into(),
            inner_opcode: c.inner_opcode,
            inner_name: c.inner_opcode.map(|o| opcode_name(o).into()),
        }
    }

    fn words(&self) -> String {
        let name = match &self.inner_name {
            Some(inner) => format!("{}/{inner}", self.name),
            None => self.name.clone(),
        };
        format!("{name} ({:#x}) -> {}", self.opcode, self.status_name)
    }
}

impl Gvnic {
    /// The record as a document, with the device's present state.
    pub fn record_file(&self) -> RecordFile {
        let r = &self.record;
        let commands: Vec<CommandEntry> = r.commands.iter().map(CommandEntry::of).collect();
        let failed = |c: &&CommandEntry| c.status != status::PASSED;
        let is_tolerated = |v: &&Violation| v.kind == ViolationKind::Tolerated;
        let mut problems: Vec<String> = commands.iter().filter(failed).map(|c| c.words()).collect();
        problems.extend(
            r.violations
                .iter()
                .filter(|v| !is_tolerated(v))
                .map(|v| format!("{:?}: {}", v.kind, v.detail)),
        );
        let extra = problems.len().saturating_sub(PROBLEM_WORDS);
        problems.truncate(PROBLEM_WORDS);
        if extra > 0 {
            problems.push(format!("and {extra} more"));
        }
        let unimplemented = commands
            .iter()
            .filter(|c| c.status == status::UNIMPLEMENTED)
            .count();
        let summary = Summary {
            commands: commands.len(),
            refused: commands.iter().filter(failed).count() - unimplemented,
            unimplemented,
            violations: r.violations.iter().filter(|v| !is_tolerated(v)).count(),
            tolerated: r.violations.iter().filter(is_tolerated).count(),
            resets: r.resets.len(),
            msix_messages: r.interrupts.len(),
            after_reset_doorbells: r.after_reset_doorbells,
            problems,
        };
        RecordFile {
            schema: SCHEMA.into(),
            profile: self.cfg.profile.to_string(),
            formats: self.cfg.formats.to_string(),
            revision: self.cfg.revision,
            summary,
            commands,
            violations: r.violations.clone(),
            resets: r.resets.clone(),
            interrupts: r.interrupts.clone(),
            after_reset_doorbells: r.after_reset_doorbells,
            describe_options_left_out: r.describe_options_left_out,
            driver_versions: r.driver_versions.clone(),
            driver_infos: r.driver_infos.clone(),
            final_state: FinalState {
                is_reset: self.is_reset(),
                admin_queue_running: self.regs.aq.is_some(),
                configured_format: self.configured.as_ref().map(|c| c.format.to_string()),
                tx_queues: self.tx.keys().copied().collect(),
                rx_queues: self.rx.keys().copied().collect(),
                registered_pages: self.registered_pages(),
                reset_requested: self.regs.reset_requested,
            },
        }
    }
}

/// Write `dev`'s record to `path` as pretty JSON (through a temporary file and a rename, so
/// a reader never sees half a record).
pub fn write_record(dev: &Gvnic, path: &Path) -> io::Result<()> {
    let json = serde_json::to_string_pretty(&dev.record_file()).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json + "\n")?;
    std::fs::rename(&tmp, path)
}

/// Read a record file back.
pub fn read_record(path: &Path) -> io::Result<RecordFile> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
