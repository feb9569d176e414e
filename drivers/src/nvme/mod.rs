//! A polling NVMe driver: every byte the controller sees comes from the bounce pool.
//!
//! - [`regs`]: controller registers, CAP decoding, doorbells;
//! - [`queue`]: SQE/CQE layouts and ring bookkeeping;
//! - [`prp`]: PRP entries/lists and MDTS splitting;
//! - [`identify`]: Identify Controller/Namespace/active list;
//! - [`status`]: completion status names;
//! - [`controller`]: the state machine (bind, admin commands, teardown);
//! - `transfer`: pipelined READ and WRITE (one loop that knows its direction);
//! - `write`: WRITE with the boot-disk guard, FLUSH.

pub mod controller;
pub mod error;
pub mod identify;
mod irq_test;
mod ping;
pub mod prp;
pub mod queue;
pub mod regs;
pub mod status;
mod transfer;
mod write;

pub use controller::{
    Controller, QuarantineRelease, State, TeardownReport, IO_TIMEOUT_US, NVME_CLASS_CODE,
};
pub use error::{NvmeError, Wait};
pub use identify::{ControllerIdentity, NamespaceIdentity};
pub use irq_test::{irq_test, IrqReport, IrqTestError};
pub use transfer::{Direction, ReadSummary, TransferSummary};
pub use write::{FlushSummary, WriteOptions};
