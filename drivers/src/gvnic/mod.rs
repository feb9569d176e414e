//! A polling driver for Google's gVNIC (PCI 1ae0:0042), in all four queue formats.
//!
//! The whole bring-up, in the order [`device::Gvnic`] runs it (facts §0 and §5, the order
//! iPXE proved on GCE):
//! 1. Reset, unless the device already reads reset: resetting an already-reset device makes
//!    GCE schedule a delayed second reset, which can trap a driver in a reset loop.
//! 2. Hand over the admin queue: PFN register on PCI revision 0; length, base and
//!    DRIVER_STATUS = RUN on revision 1 ([`regs::AqMode`]).
//! 3. DESCRIBE_DEVICE and parse every option ([`describe`]); choose the queue format:
//!    `--format` if offered, else GQI-QPL, GQI-RDA, DQO-QPL, DQO-RDA (iPXE's order).
//! 4. DQO only: program MSI-X (every vector at a dummy target, MSI-X on), because DQO holds
//!    completions back until an interrupt is asserted ([`notify`], [`crate::pci::msix`]).
//! 5. CONFIGURE_DEVICE_RESOURCES with the FULL counter count the device described (GCE picks
//!    any of its counters and fails queue creation otherwise) and two notification blocks,
//!    whose IRQ doorbells GQI masks at once (we poll) and DQO arms per queue.
//! 6. REGISTER_PAGE_LIST for the TX and RX page lists, QPL formats only ([`addressing`]).
//! 7. CREATE_TX_QUEUE, CREATE_RX_QUEUE; post 64 RX buffers (GCE drops packets with fewer)
//!    and ring the RX doorbell ([`ring`]: one module per family and direction).
//!
//! The device may reset itself at any time (live migration, or spuriously during
//! bring-up). Every wait notices it (PFN reads 0, DEVICE_STATUS), and bring-up is retried
//! from the reset up to five times, as iPXE does. Teardown destroys the queues, unregisters
//! the page lists, deconfigures, then resets and waits for the release; only a device that
//! confirmed the release gets its DMA pages freed: otherwise they stay quarantined.
//!
//! Every device-visible byte comes from the bounce pool, under one ledger owner per NIC.

pub mod addressing;
pub mod adminq;
pub mod datapath;
pub mod describe;
pub mod device;
pub mod irq_test;
pub mod irq_wait;
pub mod limits;
pub mod notify;
pub mod options;
pub mod regs;
pub mod resources;
pub mod ring;
pub mod teardown;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dma::DmaError;

pub use adminq::Opcode;
pub use datapath::{Drained, TxDone};
pub use describe::{DeviceDescriptor, DeviceOption, Family, QueueFormat};
pub use device::{DeviceInfo, Gvnic, State, TeardownStep};
pub use notify::MsixReport;

/// PCI identity (facts §1).
pub const VENDOR_ID: u16 = 0x1ae0;
pub const DEVICE_ID: u16 = 0x0042;
/// BAR0 holds the registers, BAR1 the MSI-X table (DQO needs it), BAR2 the doorbells.
pub const REGISTER_BAR: u8 = 0;
pub const MSIX_BAR: u8 = 1;
pub const DOORBELL_BAR: u8 = 2;

/// Everything that can go wrong, each with a stable name ([`GvnicError::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GvnicError {
    /// A BAR is too small to be a gVNIC's.
    BadBar {
        bar: u8,
        len: usize,
    },
    /// BAR0 reads all ones: the function is gone or the BAR is not decoded.
    NotResponding,
    /// An admin command did not complete within its deadline.
    AdminTimeout {
        opcode: Opcode,
    },
    /// An admin command completed with a status other than PASSED.
    AdminStatus {
        opcode: Opcode,
        status: u32,
    },
    /// The device reset (or asked to be reset) while we waited on it.
    DeviceReset {
        during: &'static str,
    },
    /// Bring-up kept being interrupted by resets.
    ResetLoop {
        attempts: u32,
    },
    /// The device did not confirm a reset; `quarantined` DMA buffers were quarantined.
    ResetTimeout {
        quarantined: usize,
    },
    /// The device descriptor is inconsistent.
    BadDescriptor(String),
    /// The device handed us a value we will not use (doorbell or counter index, ...).
    BadDeviceValue {
        what: &'static str,
        value: u64,
    },
    /// Legacy: the device offered no format the driver drove (GQI-QPL only). The driver
    /// now drives all four, so this is never produced; `gvnic-no-gqi` stays documented.
    NoUsableFormat {
        offered: Vec<&'static str>,
    },
    /// `--format` names a format the device does not offer.
    FormatNotOffered {
        wanted: &'static str,
        offered: Vec<&'static str>,
    },
    /// The queues run in one format and another was asked for.
    FormatInUse {
        running: &'static str,
        wanted: &'static str,
    },
    /// A DQO format needs the MSI-X table (completions are held back until an interrupt
    /// is asserted), and the function has none we could map.
    NoMsix,
    /// The page lists would exceed the device's max_registered_pages.
    PageBudget {
        wanted: u64,
        max: u64,
    },
    Dma(DmaError),
    /// The driver is not in the state the operation needs.
    WrongState {
        wanted: &'static str,
        state: &'static str,
    },
    /// A frame from an earlier command has not completed yet.
    TxBusy {
        outstanding: u32,
    },
    /// The TX completion counter did not reach our descriptor count in time.
    TxTimeout {
        posted: u32,
        completed: u32,
    },
    /// No frame arrived before the deadline.
    RxTimeout,
    FrameTooLong {
        len: usize,
        max: usize,
    },
    /// The user pressed Ctrl-C during a wait.
    Interrupted,
    /// A device option's header or body runs past the descriptor's total_length.
    TruncatedOption(options::TruncatedOption),
    /// The device's option limits leave nothing this driver can use (a ring range with no
    /// power of two, packet buffers too small for a frame).
    OptionLimit(String),
    /// `--irq`: the platform cannot take interrupts (no local APIC the monitor drives).
    NoInterrupts,
    /// `--irq`: a completion arrived on a routed block whose entry's pending bit is clear
    /// (the message left the device), yet no interrupt reached the CPU (QEMU 7.2's proxy).
    IrqNotDelivered {
        entry: u16,
        other: u32,
    },
    /// `--irq`: a completion arrived but its block's vector raised nothing (pending bit
    /// set or unreadable).
    NoInterrupt {
        entry: u16,
        pending: Option<bool>,
        other: u32,
    },
    /// `--irq`: an MSI-X register did not read back as before the session.
    NotRestored(&'static str),
}

impl GvnicError {
    /// The stable kebab-case name hosts match on.
    pub fn code(&self) -> &'static str {
        match self {
            GvnicError::BadBar { .. } => "gvnic-bad-bar",
            GvnicError::NotResponding => "gvnic-not-responding",
            GvnicError::AdminTimeout { .. } => "gvnic-admin-timeout",
            GvnicError::AdminStatus { .. } => "gvnic-admin-status",
            GvnicError::DeviceReset { .. } => "gvnic-device-reset",
            GvnicError::ResetLoop { .. } => "gvnic-reset-loop",
            GvnicError::ResetTimeout { .. } => "gvnic-reset-timeout",
            GvnicError::BadDescriptor(_) => "gvnic-bad-descriptor",
            GvnicError::BadDeviceValue { .. } => "gvnic-bad-device-value",
            GvnicError::NoUsableFormat { .. } => "gvnic-no-gqi",
            GvnicError::FormatNotOffered { .. } => "gvnic-format-not-offered",
            GvnicError::FormatInUse { .. } => "gvnic-format-in-use",
            GvnicError::NoMsix => "gvnic-no-msix",
            GvnicError::PageBudget { .. } => "gvnic-page-budget",
            GvnicError::Dma(_) => "gvnic-dma",
            GvnicError::WrongState { .. } => "gvnic-wrong-state",
            GvnicError::TxBusy { .. } => "gvnic-tx-busy",
            GvnicError::TxTimeout { .. } => "gvnic-tx-timeout",
            GvnicError::RxTimeout => "gvnic-rx-timeout",
            GvnicError::FrameTooLong { .. } => "gvnic-frame-too-long",
            GvnicError::Interrupted => "interrupted",
            GvnicError::TruncatedOption(_) => "gvnic-truncated-option",
            GvnicError::OptionLimit(_) => "gvnic-option-limit",
            GvnicError::NoInterrupts => "no-interrupts",
            GvnicError::IrqNotDelivered { .. } => "irq-not-delivered",
            GvnicError::NoInterrupt { .. } => "no-interrupt",
            GvnicError::NotRestored(_) => "restore-failed",
        }
    }

    /// True for failures that leave the device in an unknown state, so bring-up must reset
    /// it before anything else (as opposed to "this driver cannot go on", which touched
    /// nothing).
    pub fn needs_reset(&self) -> bool {
        !matches!(
            self,
            GvnicError::NoUsableFormat { .. }
                | GvnicError::FormatNotOffered { .. }
                | GvnicError::FormatInUse { .. }
                | GvnicError::NoMsix
                | GvnicError::PageBudget { .. }
                | GvnicError::WrongState { .. }
                | GvnicError::ResetTimeout { .. }
                | GvnicError::ResetLoop { .. }
                | GvnicError::OptionLimit(_)
                | GvnicError::NoInterrupts
                | GvnicError::IrqNotDelivered { .. }
                | GvnicError::NoInterrupt { .. }
                | GvnicError::NotRestored(_)
        )
    }
}

impl From<DmaError> for GvnicError {
    fn from(err: DmaError) -> Self {
        GvnicError::Dma(err)
    }
}

impl fmt::Display for GvnicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GvnicError::BadBar { bar, len } => {
                write!(f, "BAR{bar} is only {len} bytes: not a gVNIC register window")
            }
            GvnicError::NotResponding => {
                write!(f, "BAR0 reads all ones: the device does not respond")
            }
            GvnicError::AdminTimeout { opcode } => write!(
                f,
                "admin command {} did not complete within {} ms",
                opcode.name(),
                adminq::AQ_TIMEOUT_US / 1000
            ),
            GvnicError::AdminStatus { opcode, status } => write!(
                f,
                "admin command {} failed with status {status:#010x} ({})",
                opcode.name(),
                adminq::status_name(*status)
            ),
            GvnicError::DeviceReset { during } => {
                write!(f, "the device reset itself during {during}")
            }
            GvnicError::ResetLoop { attempts } => write!(
                f,
                "the device reset itself during bring-up {attempts} times in a row; giving up"
            ),
            GvnicError::ResetTimeout { quarantined } => write!(
                f,
                "the device did not confirm its reset within {} ms; {quarantined} DMA buffer(s) \
                 it may still write are quarantined",
                device::RESET_TIMEOUT_US / 1000
            ),
            GvnicError::BadDescriptor(why) => write!(f, "bad device descriptor: {why}"),
            GvnicError::BadDeviceValue { what, value } => {
                write!(f, "the device gave an unusable {what}: {value:#x}")
            }
            GvnicError::NoUsableFormat { offered } => write!(
                f,
                "the device offers only {} queue formats; this driver drives gqi-qpl",
                offered.join(", ")
            ),
            GvnicError::FormatNotOffered { wanted, offered } => write!(
                f,
                "the device does not offer queue format {wanted}; it offers {}",
                offered.join(", ")
            ),
            GvnicError::FormatInUse { running, wanted } => write!(
                f,
                "the queues run in {running}; 'teardown gvnic' before asking for {wanted}"
            ),
            GvnicError::NoMsix => write!(
                f,
                "DQO queue formats need the MSI-X table in BAR1 (the device holds completions \
                 back until an interrupt is asserted), and none could be mapped"
            ),
            GvnicError::PageBudget { wanted, max } => write!(
                f,
                "queue page lists need {wanted} pages but the device registers at most {max}"
            ),
            GvnicError::Dma(err) => write!(f, "{err}"),
            GvnicError::WrongState { wanted, state } => {
                write!(f, "the NIC is {state}; this needs it {wanted}")
            }
            GvnicError::TxBusy { outstanding } => write!(
                f,
                "{outstanding} earlier TX descriptor(s) never completed; 'teardown gvnic' to recover"
            ),
            GvnicError::TxTimeout { posted, completed } => write!(
                f,
                "TX completion timed out: {completed} of {posted} descriptors completed"
            ),
            GvnicError::RxTimeout => write!(f, "no frame received before the deadline"),
            GvnicError::FrameTooLong { len, max } => {
                write!(f, "frame of {len} bytes does not fit a {max}-byte TX buffer")
            }
            GvnicError::Interrupted => write!(f, "interrupted"),
            GvnicError::TruncatedOption(t) => write!(f, "bad device descriptor: {t}"),
            GvnicError::OptionLimit(why) => write!(f, "device option limit: {why}"),
            GvnicError::NoInterrupts => {
                write!(f, "this platform has no local APIC the monitor can drive")
            }
            GvnicError::IrqNotDelivered { entry, other } => write!(
                f,
                "a completion arrived on MSI-X entry {entry}'s unmasked block and its pending \
                 bit is clear, but no interrupt reached the boot CPU within {} ms ({other} on \
                 other vectors): this machine does not deliver device interrupts (QEMU 7.2's \
                 x-pci-proxy-dev has no interrupt path; QEMU 10.1+ with vfio-user does)",
                irq_wait::IRQ_WAIT_US / 1000
            ),
            GvnicError::NoInterrupt {
                entry,
                pending,
                other,
            } => write!(
                f,
                "a completion arrived but MSI-X entry {entry} raised no interrupt within {} ms \
                 (pending bit {}, {other} on other vectors)",
                irq_wait::IRQ_WAIT_US / 1000,
                match pending {
                    Some(true) => "set",
                    Some(false) => "clear",
                    None => "unreadable",
                }
            ),
            GvnicError::NotRestored(what) => {
                write!(f, "{what} did not read back as before the interrupt waits")
            }
        }
    }
}
