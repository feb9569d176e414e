//! Completion status (CQE DW3 bits 31:17): status code type, status code, and their names.

use core::fmt;

/// A non-success completion status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandStatus {
    /// Status code type: 0 generic, 1 command specific, 2 media/data integrity, 3 path.
    pub sct: u8,
    pub sc: u8,
    /// Do Not Retry.
    pub dnr: bool,
}

impl CommandStatus {
    /// From the upper half of CQE DW3 (the 16 bits holding the phase tag in bit 0).
    pub fn from_field(field: u16) -> Option<Self> {
        let sc = (field >> 1) as u8;
        let sct = ((field >> 9) & 0x7) as u8;
        if sc == 0 && sct == 0 {
            return None;
        }
        Some(CommandStatus {
            sct,
            sc,
            dnr: field & (1 << 15) != 0,
        })
    }

    /// A stable kebab-case name ("lba-out-of-range", "invalid-field", ...).
    pub fn name(&self) -> &'static str {
        match (self.sct, self.sc) {
            (0, 0x01) => "invalid-opcode",
            (0, 0x02) => "invalid-field",
            (0, 0x03) => "command-id-conflict",
            (0, 0x04) => "data-transfer-error",
            (0, 0x05) => "aborted-power-loss",
            (0, 0x06) => "internal-error",
            (0, 0x07) => "abort-requested",
            (0, 0x08) => "aborted-sq-deleted",
            (0, 0x09) => "aborted-failed-fused",
            (0, 0x0a) => "aborted-missing-fused",
            (0, 0x0b) => "invalid-namespace-or-format",
            (0, 0x0c) => "command-sequence-error",
            (0, 0x0d..=0x11) | (0, 0x16) | (0, 0x1e) => "invalid-sgl",
            (0, 0x12) => "invalid-cmb-use",
            (0, 0x13) => "invalid-prp-offset",
            (0, 0x14) => "atomic-write-unit-exceeded",
            (0, 0x15) => "operation-denied",
            (0, 0x18) => "host-id-inconsistent",
            (0, 0x19) => "keep-alive-expired",
            (0, 0x1b) => "aborted-preempt",
            (0, 0x1c) => "sanitize-failed",
            (0, 0x1d) => "sanitize-in-progress",
            (0, 0x20) => "namespace-write-protected",
            (0, 0x21) => "command-interrupted",
            (0, 0x22) => "transient-transport-error",
            (0, 0x80) => "lba-out-of-range",
            (0, 0x81) => "capacity-exceeded",
            (0, 0x82) => "namespace-not-ready",
            (0, 0x83) => "reservation-conflict",
            (0, 0x84) => "format-in-progress",
            (1, 0x00) => "completion-queue-invalid",
            (1, 0x01) => "invalid-queue-identifier",
            (1, 0x02) => "invalid-queue-size",
            (1, 0x03) => "abort-limit-exceeded",
            (1, 0x05) => "async-event-limit-exceeded",
            (1, 0x08) => "invalid-interrupt-vector",
            (1, 0x09) => "invalid-log-page",
            (1, 0x0a) => "invalid-format",
            (1, 0x0c) => "invalid-queue-deletion",
            (1, 0x80) => "conflicting-attributes",
            (1, 0x81) => "invalid-protection-information",
            (1, 0x82) => "write-to-read-only-range",
            (2, 0x80) => "write-fault",
            (2, 0x81) => "unrecovered-read-error",
            (2, 0x82) => "end-to-end-guard-check-error",
            (2, 0x83) => "end-to-end-application-tag-check-error",
            (2, 0x84) => "end-to-end-reference-tag-check-error",
            (2, 0x85) => "compare-failure",
            (2, 0x86) => "access-denied",
            (2, 0x87) => "deallocated-or-unwritten-block",
            (3, _) => "path-error",
            (7, _) => "vendor-specific-error",
            _ => "unknown-status",
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (SCT {:#x}, SC {:#04x}{})",
            self.name(),
            self.sct,
            self.sc,
            if self.dnr { ", do not retry" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_status_field() {
        assert_eq!(
            CommandStatus::from_field(0x0001),
            None,
            "phase bit only = success"
        );
        // SCT 0, SC 0x80, DNR, phase 1.
        let status = CommandStatus::from_field((1 << 15) | (0x80 << 1) | 1).unwrap();
        assert_eq!((status.sct, status.sc, status.dnr), (0, 0x80, true));
        assert_eq!(status.name(), "lba-out-of-range");
        let media = CommandStatus::from_field((2 << 9) | (0x81 << 1)).unwrap();
        assert_eq!(media.name(), "unrecovered-read-error");
        assert!(media.to_string().contains("SCT 0x2"));
    }
}
