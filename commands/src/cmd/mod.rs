//! The debug monitor's toolbox (issue 13): one module per register space.
//!
//! Every read emits a `reg.read` frame, every write a `reg.write` frame with the value
//! before, the value written and the value read back. Handlers parse into typed values
//! (one width grammar: `--width`, see [`crate::args::Args::width`]), make one platform
//! call, and render with the pure functions at the bottom of each module.

pub mod acpi;
pub mod config;
pub mod cpu;
pub mod gvnic;
pub mod io;
pub mod irq;
pub mod mem;
pub mod mem_map;
pub mod memtypes;
pub mod net;
pub mod net_text;
pub mod nvme;
pub mod tsc_text;
pub mod windows;

use alloc::string::String;
use alloc::vec::Vec;

use drivers::platform::Width;
use evidence::{Body, RegRead, RegWrite};

/// Values per `reg.read` frame (a long `peek` keeps its frame small).
pub const READ_VALUES_PER_FRAME: usize = 16;

pub(crate) fn read_frame(
    space: &str,
    target: String,
    address: u64,
    width: Width,
    values: &[u64],
) -> Body {
    Body::RegRead(RegRead {
        space: space.into(),
        target,
        address,
        width: width.bytes() as u8,
        values: values
            .iter()
            .take(READ_VALUES_PER_FRAME)
            .copied()
            .collect::<Vec<u64>>(),
        count: values.len() as u32,
    })
}

pub(crate) struct WriteRecord<'a> {
    pub space: &'a str,
    pub target: String,
    pub address: u64,
    pub width: Width,
    pub before: u64,
    pub value: u64,
    pub readback: u64,
}

pub(crate) fn write_frame(w: &WriteRecord) -> Body {
    Body::RegWrite(RegWrite {
        space: w.space.into(),
        target: w.target.clone(),
        address: w.address,
        width: w.width.bytes() as u8,
        before: w.before,
        value: w.value,
        readback: w.readback,
    })
}

/// The human line of every write: what was where, what went in, what reads back.
pub(crate) fn write_text(what: &str, w: &WriteRecord) -> String {
    use crate::fmt::hex;
    let same = if w.readback == w.value {
        ""
    } else {
        " (differs from the value written)"
    };
    alloc::format!(
        "{what}: was {}, wrote {}, reads back {}{same}\n",
        hex(w.before, w.width),
        hex(w.value, w.width),
        hex(w.readback, w.width)
    )
}
