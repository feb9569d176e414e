//! The parts of the monitor that are plain logic, kept apart from the hardware glue so
//! they run in host tests (`cargo test -p monitor --lib`): the input sanitizer in front of
//! the line editor, the heap/DMA placement, the kernel command line, the identity plan,
//! the MMIO window's bookkeeping, and reading page tables back (`paging`).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cmdline;
pub mod guarded_heap;
pub mod identity;
pub mod input;
pub mod layout;
pub mod mmio_book;
pub mod paging;
