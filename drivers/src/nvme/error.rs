//! Every way an NVMe operation can fail, each with a stable name.

use core::fmt;

use super::prp::PrpError;
use super::status::CommandStatus;
use crate::dma::DmaError;
use crate::pci::PciError;

/// Which wait ran out (or was interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// CSTS.RDY = 1 after CC.EN = 1.
    Ready,
    /// CSTS.RDY = 0 after CC.EN = 0.
    NotReady,
    /// CSTS.SHST = complete after CC.SHN = normal.
    Shutdown,
    /// Completion of the named admin command.
    Admin(&'static str),
    /// Completion of a READ.
    Read,
    /// Completion of a WRITE.
    Write,
    /// Completion of a FLUSH.
    Flush,
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Ready => write!(f, "controller ready (CSTS.RDY=1 after enable)"),
            Wait::NotReady => write!(f, "controller disable (CSTS.RDY=0)"),
            Wait::Shutdown => write!(f, "shutdown complete (CSTS.SHST)"),
            Wait::Admin(name) => write!(f, "completion of admin command {name}"),
            Wait::Read => write!(f, "completion of READ"),
            Wait::Write => write!(f, "completion of WRITE"),
            Wait::Flush => write!(f, "completion of FLUSH"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NvmeError {
    Pci(PciError),
    Dma(DmaError),
    /// The controller lacks something this driver needs (4 KiB pages, NVM command set).
    Unsupported(&'static str),
    Timeout {
        wait: Wait,
        after_us: u64,
    },
    Interrupted {
        wait: Wait,
    },
    /// CSTS.CFS: the controller reported a fatal error.
    ControllerFatal {
        during: Wait,
    },
    /// The controller completed a command with an error status.
    CommandFailed {
        command: &'static str,
        status: CommandStatus,
    },
    /// A completion for a command we did not submit, or a malformed structure.
    Protocol(&'static str),
    NoSuchNamespace {
        nsid: u32,
    },
    ZeroCount,
    OutOfRange {
        nsid: u32,
        lba: u64,
        count: u64,
        blocks: u64,
    },
    /// The request is not possible in the controller's current state.
    WrongState {
        state: &'static str,
        wanted: &'static str,
    },
    Prp(PrpError),
    /// A write to the namespace the monitor booted from (its GPT disk GUID is the one the
    /// image recorded), refused unless forced.
    BootDisk {
        nsid: u32,
        guid: crate::gpt::Guid,
    },
}

impl NvmeError {
    /// A stable kebab-case name for result frames and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            NvmeError::Pci(err) => err.code(),
            NvmeError::Dma(_) => "dma-error",
            NvmeError::Unsupported(_) => "nvme-unsupported",
            NvmeError::Timeout { .. } => "nvme-timeout",
            NvmeError::Interrupted { .. } => "interrupted",
            NvmeError::ControllerFatal { .. } => "nvme-controller-fatal",
            NvmeError::CommandFailed { .. } => "nvme-command-failed",
            NvmeError::Protocol(_) => "nvme-protocol-error",
            NvmeError::NoSuchNamespace { .. } => "nvme-no-such-namespace",
            NvmeError::ZeroCount => "bad-argument",
            NvmeError::OutOfRange { .. } => "nvme-out-of-range",
            NvmeError::WrongState { .. } => "nvme-wrong-state",
            NvmeError::Prp(_) => "nvme-prp-error",
            NvmeError::BootDisk { .. } => "boot-disk",
        }
    }

    /// True when the controller may still own DMA memory or be wedged: the driver stops
    /// using it until it is torn down (reset).
    pub fn poisons_controller(&self) -> bool {
        matches!(
            self,
            NvmeError::Timeout { .. }
                | NvmeError::Interrupted { .. }
                | NvmeError::ControllerFatal { .. }
                | NvmeError::Protocol(_)
        )
    }
}

impl fmt::Display for NvmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvmeError::Pci(err) => write!(f, "{err}"),
            NvmeError::Dma(err) => write!(f, "{err}"),
            NvmeError::Unsupported(what) => write!(f, "controller not supported: {what}"),
            NvmeError::Timeout { wait, after_us } => write!(
                f,
                "timed out after {} ms waiting for {wait}",
                after_us / 1000
            ),
            NvmeError::Interrupted { wait } => write!(f, "interrupted while waiting for {wait}"),
            NvmeError::ControllerFatal { during } => write!(
                f,
                "controller fatal status (CSTS.CFS) while waiting for {during}"
            ),
            NvmeError::CommandFailed { command, status } => {
                write!(f, "{command} failed: {status}")
            }
            NvmeError::Protocol(what) => write!(f, "controller protocol error: {what}"),
            NvmeError::NoSuchNamespace { nsid } => {
                write!(
                    f,
                    "namespace {nsid} is not an active namespace of this controller"
                )
            }
            NvmeError::ZeroCount => write!(f, "count must be at least 1"),
            NvmeError::OutOfRange {
                nsid,
                lba,
                count,
                blocks,
            } => {
                if *lba >= *blocks {
                    write!(
                        f,
                        "lba {lba:#x} is past the end of namespace {nsid} ({blocks} blocks)"
                    )
                } else {
                    write!(
                        f,
                        "lba {lba:#x} + {count} blocks runs past the end of namespace {nsid} ({blocks} blocks)"
                    )
                }
            }
            NvmeError::WrongState { state, wanted } => {
                write!(f, "controller is {state}; {wanted}")
            }
            NvmeError::Prp(err) => write!(f, "PRP construction failed: {err:?}"),
            NvmeError::BootDisk { nsid, guid } => write!(
                f,
                "namespace {nsid} is the boot disk (GPT disk GUID {guid}, as the image \
                 recorded): writes refused; --force-boot-disk overrides"
            ),
        }
    }
}

impl From<DmaError> for NvmeError {
    fn from(err: DmaError) -> Self {
        NvmeError::Dma(err)
    }
}

impl From<PciError> for NvmeError {
    fn from(err: PciError) -> Self {
        NvmeError::Pci(err)
    }
}

impl From<PrpError> for NvmeError {
    fn from(err: PrpError) -> Self {
        NvmeError::Prp(err)
    }
}
