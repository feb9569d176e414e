//! The one seam between a NIC driver and the network stack: a MAC, an MTU, one frame out,
//! one frame in. The stack (phy.rs, iface.rs) knows nothing else about the device, and a
//! driver knows nothing of the stack.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a NIC could not send or receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicError {
    /// The driver's stable kebab-case code (`interrupted` for Ctrl-C).
    pub code: &'static str,
    pub message: String,
}

impl NicError {
    /// True when the user pressed Ctrl-C during the driver's wait.
    pub fn is_interrupted(&self) -> bool {
        self.code == "interrupted"
    }
}

impl fmt::Display for NicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An Ethernet NIC whose queues are up.
///
/// Contract:
/// - `mtu` is the largest IP packet (Ethernet payload) the link carries, in bytes: GCE's
///   gVNIC describes 1460 (facts §5 of platform-notes).
/// - `transmit` returns once the device has taken the frame (its completion was seen), or
///   with the driver's error; on error the frame is not on the wire, as far as we know.
/// - `receive` waits at most `timeout_us` for one good frame (0: look once, do not wait);
///   `Ok(None)` means nothing arrived in time. Every wait goes through
///   `platform::wait_for`, so Ctrl-C ends it with an `interrupted` error.
pub trait Nic {
    fn mac(&self) -> [u8; 6];
    fn mtu(&self) -> usize;
    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError>;
    fn receive(&mut self, timeout_us: u64) -> Result<Option<Vec<u8>>, NicError>;
}
