//! ACPI as the firmware left it: the table list (our own RSDP/RSDT/XSDT walk, because it
//! must report tables with bad checksums too, which the `acpi` crate's iterator skips),
//! and decoders of the tables a monitor uses (MADT, MCFG, FADT through the `acpi` crate;
//! HPET by hand, because the crate's `HpetInfo` asserts on a non-memory base address).
//!
//! Everything is read through [`FirmwareTables::read_phys`]; nothing is written. Table
//! layouts: ACPI 6.5 §5.2 (RSDP §5.2.5, header §5.2.6, FADT §5.2.9, MADT §5.2.12, HPET
//! from the IA-PC HPET spec §3.2.4, MCFG from the PCI Firmware spec §4.1.2).

mod handler;
mod tables;

pub use tables::{
    fadt, hpet, madt, mcfg, pm_timer, pm_timer_of, table_bytes, tables, FadtInfo, HpetInfo,
    MadtCpu, MadtInfo, PmTimerBlock,
};
pub use tables::{space_name, MadtIoApic, MadtOverride, McfgSegment, TableInfo};

use core::fmt;

/// Why ACPI could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// The boot loader passed no RSDP.
    NoRsdp,
    /// A table's bytes could not be read (outside the identity map, not RAM).
    Unreadable(u64),
    /// The RSDP's signature or checksum is wrong.
    BadRsdp,
    /// No table with this signature is listed.
    NoTable([u8; 4]),
    /// A table's structure is inconsistent (lengths that do not add up).
    Malformed([u8; 4]),
}

impl AcpiError {
    /// Stable kebab-case codes.
    pub fn code(&self) -> &'static str {
        match self {
            AcpiError::NoRsdp => "no-acpi",
            AcpiError::Unreadable(_) => "acpi-unreadable",
            AcpiError::BadRsdp => "acpi-bad-rsdp",
            AcpiError::NoTable(_) => "no-such-table",
            AcpiError::Malformed(_) => "acpi-malformed",
        }
    }
}

/// A signature as text (non-printable bytes as '?').
pub fn signature_text(sig: &[u8]) -> alloc::string::String {
    sig.iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '?'
            }
        })
        .collect()
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "the boot loader passed no ACPI RSDP"),
            AcpiError::Unreadable(at) => write!(f, "ACPI data at {at:#x} is not readable"),
            AcpiError::BadRsdp => write!(f, "the RSDP's signature or checksum is wrong"),
            AcpiError::NoTable(sig) => write!(f, "no ACPI table '{}'", signature_text(sig)),
            AcpiError::Malformed(sig) => {
                write!(f, "ACPI table '{}' is malformed", signature_text(sig))
            }
        }
    }
}
