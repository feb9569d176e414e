//! The `Interrupts` hook: how an asserted MSI-X vector leaves the device when the transport,
//! not the device, owns the MSI-X table.
//!
//! In-process and behind QEMU 7.2's proxy the device keeps its own table (msix.rs) and an
//! interrupt is a DMA write of the vector's message. Under vfio-user QEMU emulates the table
//! and the PBA (VFIO style) and hands the device one eventfd per vector: the device only says
//! "vector N", and masking, pending bits and the message itself are QEMU's business
//! (reference/qemu11-vfio-user.md §2). When a hook is set the device's own table is bypassed.
//!
//! When the device asserts (notification blocks, IRQ doorbells, DQO write-back) stays the
//! model's decision (notify.rs); this module knows nothing of it.

/// Raises MSI-X vectors for the device. Implemented by a front end (vfio_user/).
pub trait Interrupts: Send {
    /// Raise `vector`. The transport takes it from here: true when it was signalled or kept
    /// pending for later delivery (like a PBA bit), false when the vector does not exist.
    fn raise(&mut self, vector: u16) -> bool;
}
