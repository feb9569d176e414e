//! What the model saw: admin commands with their statuses, strictness violations, resets.
//! Tests read it through `Gvnic::record()`; `record_file.rs` writes it as JSON (serde).

use serde::{Deserialize, Serialize};

/// One executed (or fault-answered) admin command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Free-running AQ index of the command.
    pub index: u32,
    pub opcode: u32,
    pub status: u32,
    /// EXTENDED_COMMAND's inner opcode (e.g. CONFIGURE_FLOW_RULE), when the command was one.
    #[serde(default)]
    pub inner_opcode: Option<u32>,
}

/// Classes of driver mistakes the model detects (each also carries a human detail string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ViolationKind {
    /// A DMA address that the device needs page aligned is not.
    NotPageAligned,
    /// A DMA range that is not guest RAM.
    OutsideGuestRam,
    /// DMA while PCI bus mastering is off.
    BusMasterDisabled,
    /// BAR access while PCI memory space decoding is off.
    MemorySpaceDisabled,
    /// A BAR access at an offset/size the device does not implement, or a write to a
    /// read-only register.
    BadRegisterAccess,
    /// Admin queue doorbell while the AQ is not running, or AQ setup that is invalid.
    AdminQueueNotRunning,
    /// A doorbell value that runs ahead of the ring (more entries than the ring holds) or
    /// moves backwards.
    DoorbellBeyondRing,
    /// A write to a doorbell index that no queue or notification block owns.
    UnknownDoorbell,
    /// An admin command with invalid fields (answered with an error status).
    BadCommand,
    /// An admin command in the wrong device state (answered with an error status).
    WrongState,
    /// A QPL byte offset outside the registered pages.
    QplOffsetOutOfRange,
    /// A TX descriptor that is malformed (type, count, lengths).
    BadDescriptor,
    /// Something GCE tolerates but a careful driver does not do (e.g. page_size != 4096,
    /// fewer counters than described).
    Tolerated,
    /// A request for a feature the model does not implement (e.g. a DQO data path).
    Unmodelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub detail: String,
}

/// Why the device reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetCause {
    /// Revision 0 style: ADMINQ_PFN written with 0.
    PfnZero,
    /// Revision 1 style: DRIVER_STATUS.RESET.
    DriverStatusReset,
    /// The device reset itself (fault injection / delayed reset after a redundant reset).
    Spurious,
    /// PCI-level reset (QEMU DEVICE_RESET, power on).
    Pci,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRecord {
    pub cause: ResetCause,
    /// The device was already reset (no AQ) when the driver asked (facts §2.2 iPXE quirk).
    pub already_reset: bool,
    /// False when the `reset_never_completes` fault swallowed it.
    pub completed: bool,
}

/// Everything observed so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub commands: Vec<CommandRecord>,
    pub violations: Vec<Violation>,
    pub resets: Vec<ResetRecord>,
    /// Driver version strings written byte by byte to 0x1F, one per '\n'.
    pub driver_versions: Vec<String>,
    /// Last value written to each IRQ doorbell, by notification block index (GQI: the BE32
    /// value; DQO: the LE32 value).
    pub irq_doorbells: Vec<(u32, u32)>,
    /// Every MSI-X message the device sent.
    pub interrupts: Vec<InterruptRecord>,
    /// Every VERIFY_DRIVER_COMPATIBILITY's driver info.
    pub driver_infos: Vec<DriverInfo>,
    /// The queue format of every CONFIGURE_DEVICE_RESOURCES accepted, in order (what a
    /// driver chose among the offered formats).
    pub configured_formats: Vec<crate::config::QueueFormat>,
    /// Doorbell writes to indexes nobody owns while the device, reset by the host, waits
    /// for the driver to notice (DEVICE_STATUS.RESET raised): expected, so not violations.
    pub after_reset_doorbells: u64,
    /// Device options DESCRIBE_DEVICE left out because the driver's buffer had no room for
    /// them (iPXE gives 40 bytes: the header only). Legitimate, so not a violation.
    #[serde(default)]
    pub describe_options_left_out: u64,
}

/// One MSI-X message: a DMA write of `data` (LE32) to `address`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptRecord {
    pub vector: u16,
    pub address: u64,
    pub data: u32,
    /// The address was guest RAM and the write was performed (a dummy target); false for an
    /// interrupt-controller address, which only a real platform would turn into an interrupt.
    pub written_to_ram: bool,
    pub tick: u64,
}

/// The driver info of VERIFY_DRIVER_COMPATIBILITY (facts §3.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// 1 = Linux.
    pub os_type: u8,
    pub driver_version: [u8; 3],
    pub os_version: [u32; 3],
    /// Bits: GQI_QPL 0, GQI_RDA 1, DQO_QPL 2, DQO_RDA 3, ALT_MISS_COMPL 4, ...
    pub capability_flags: [u64; 4],
    pub os_version_str1: String,
    pub os_version_str2: String,
}

impl Record {
    pub(crate) fn violation(&mut self, kind: ViolationKind, detail: impl Into<String>) {
        self.violations.push(Violation {
            kind,
            detail: detail.into(),
        });
    }

    /// Violations of one kind (handy in tests).
    pub fn violations_of(&self, kind: ViolationKind) -> Vec<&Violation> {
        self.violations.iter().filter(|v| v.kind == kind).collect()
    }

    /// Statuses of all commands with this opcode, in order.
    pub fn statuses_of(&self, opcode: u32) -> Vec<u32> {
        self.commands
            .iter()
            .filter(|c| c.opcode == opcode)
            .map(|c| c.status)
            .collect()
    }
}
