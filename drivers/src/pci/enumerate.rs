//! Finding every function: bus 0, then recursively every bus behind a PCI-to-PCI bridge.
//!
//! The monitor does not assign bus numbers (firmware did); it follows the secondary bus
//! numbers bridges report. A bridge whose secondary bus is 0, not above its own bus, or
//! already visited is reported but not followed, so a misprogrammed bridge cannot loop.

use alloc::vec::Vec;

use super::bar::{probe_bars, BarSlot};
use super::caps::{capabilities, Capability};
use super::regs::{self, HeaderKind};
use crate::platform::{Bdf, ConfigSpace};

/// A bridge's bus number window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeBuses {
    pub primary: u8,
    pub secondary: u8,
    pub subordinate: u8,
}

/// Everything `lspci -v` shows about one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciFunctionInfo {
    pub bdf: Bdf,
    pub vendor_id: u16,
    pub device_id: u16,
    /// class << 16 | subclass << 8 | prog-if.
    pub class_code: u32,
    pub revision: u8,
    /// Raw header type byte (bit 7 = multi-function).
    pub header_type: u8,
    pub subsystem_vendor: u16,
    pub subsystem_id: u16,
    pub command: u16,
    pub status: u16,
    pub interrupt_pin: u8,
    pub interrupt_line: u8,
    pub bars: Vec<BarSlot>,
    pub capabilities: Vec<Capability>,
    pub bridge: Option<BridgeBuses>,
}

impl PciFunctionInfo {
    pub fn class(&self) -> u8 {
        (self.class_code >> 16) as u8
    }
    pub fn subclass(&self) -> u8 {
        (self.class_code >> 8) as u8
    }
    pub fn header_kind(&self) -> HeaderKind {
        HeaderKind::from_header_type(self.header_type)
    }
    pub fn is_multi_function(&self) -> bool {
        self.header_type & regs::HEADER_MULTI_FUNCTION != 0
    }
}

/// Decodes one function, or `None` if nothing answers there.
pub fn probe(config: &dyn ConfigSpace, bdf: Bdf) -> Option<PciFunctionInfo> {
    let vendor_id = config.read16(bdf, regs::VENDOR_ID);
    if vendor_id == regs::NO_VENDOR || vendor_id == 0 {
        return None;
    }
    let class_dword = config.read32(bdf, regs::CLASS_DWORD);
    let header_type = config.read8(bdf, regs::HEADER_TYPE);
    let kind = HeaderKind::from_header_type(header_type);
    let (subsystem_vendor, subsystem_id) = match kind {
        HeaderKind::Endpoint => (
            config.read16(bdf, regs::SUBSYSTEM_VENDOR),
            config.read16(bdf, regs::SUBSYSTEM_ID),
        ),
        _ => (0, 0),
    };
    let bridge = (kind == HeaderKind::Bridge).then(|| BridgeBuses {
        primary: config.read8(bdf, regs::PRIMARY_BUS),
        secondary: config.read8(bdf, regs::SECONDARY_BUS),
        subordinate: config.read8(bdf, regs::SUBORDINATE_BUS),
    });
    let bars = probe_bars(config, bdf, kind.bar_count());
    Some(PciFunctionInfo {
        bdf,
        vendor_id,
        device_id: config.read16(bdf, regs::DEVICE_ID),
        class_code: class_dword >> 8,
        revision: config.read8(bdf, regs::REVISION),
        header_type,
        subsystem_vendor,
        subsystem_id,
        // Read after sizing so the value shown is the restored one.
        command: config.read16(bdf, regs::COMMAND),
        status: config.read16(bdf, regs::STATUS),
        interrupt_pin: config.read8(bdf, regs::INTERRUPT_PIN),
        interrupt_line: config.read8(bdf, regs::INTERRUPT_LINE),
        bars,
        capabilities: capabilities(config, bdf, kind),
        bridge,
    })
}

/// Every function reachable from bus 0: each bus's functions in device/function order,
/// then (recursively) the buses behind that bus's bridges.
pub fn enumerate(config: &dyn ConfigSpace) -> Vec<PciFunctionInfo> {
    let mut found = Vec::new();
    let mut visited = [false; 256];
    scan_bus(config, 0, &mut visited, &mut found);
    found
}

fn scan_bus(
    config: &dyn ConfigSpace,
    bus: u8,
    visited: &mut [bool; 256],
    found: &mut Vec<PciFunctionInfo>,
) {
    if visited[bus as usize] {
        return;
    }
    visited[bus as usize] = true;
    let mut bridges = Vec::new();
    for device in 0..32u8 {
        let Some(first) = probe(config, Bdf::new(bus, device, 0)) else {
            continue;
        };
        let functions = if first.is_multi_function() { 8 } else { 1 };
        let mut infos = alloc::vec![first];
        for function in 1..functions {
            if let Some(info) = probe(config, Bdf::new(bus, device, function)) {
                infos.push(info);
            }
        }
        for info in infos {
            if let Some(buses) = info.bridge {
                // Only follow a window that lies strictly below this bus: anything else is
                // unassigned (0) or misprogrammed and could lead us in a circle.
                if buses.secondary > bus && buses.subordinate >= buses.secondary {
                    bridges.push(buses.secondary);
                }
            }
            found.push(info);
        }
    }
    for secondary in bridges {
        scan_bus(config, secondary, visited, found);
    }
}
