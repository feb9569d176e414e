//! The monitor's [`commands::Events`]: NMIs and machine checks that the handlers recorded,
//! handed to the shell to print and frame at its next safe point.

use alloc::string::String;
use alloc::vec::Vec;

use evidence::Body;

pub struct PlatformEvents;

impl commands::Events for PlatformEvents {
    fn take(&self) -> Vec<(String, Body)> {
        crate::nmi::take()
            .into_iter()
            .chain(crate::mce::take())
            .collect()
    }
}

/// Lines the NMI and machine-check handlers could not print at once (the console was
/// busy); the input loop calls this while it waits for a key.
pub fn print_deferred() {
    crate::nmi::print_deferred();
    crate::mce::print_deferred();
}
