//! PCI configuration space: identity (facts §1), three 32-bit memory BARs with sizing, and an
//! MSI-X capability whose table lives in BAR1. Conventional (256-byte) header type 0.

/// Google's vendor id, gVNIC device id, subsystem ids and class (facts §1).
pub const VENDOR_ID: u16 = 0x1ae0;
pub const DEVICE_ID: u16 = 0x0042;
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1ae0;
pub const SUBSYSTEM_ID: u16 = 0x0058;
/// Class 0x02 (network), subclass 0x00 (Ethernet), prog-if 0.
pub const CLASS_CODE: u32 = 0x02_00_00;

/// Config-space offsets used here.
pub const OFF_COMMAND: u16 = 0x04;
pub const OFF_STATUS: u16 = 0x06;
pub const OFF_REVISION: u16 = 0x08;
pub const OFF_BAR0: u16 = 0x10;
pub const OFF_SUBSYSTEM: u16 = 0x2C;
pub const OFF_CAP_PTR: u16 = 0x34;
pub const OFF_INTERRUPT_LINE: u16 = 0x3C;
/// Where our only capability (MSI-X) sits.
pub const OFF_MSIX_CAP: u16 = 0x40;
pub const CAP_ID_MSIX: u8 = 0x11;

pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command bits the device implements (I/O space is not: no I/O BARs).
const COMMAND_WRITABLE: u16 = COMMAND_MEMORY | COMMAND_BUS_MASTER | (1 << 6) | (1 << 8) | (1 << 10);
pub const STATUS_CAP_LIST: u16 = 1 << 4;

/// BAR sizes. BAR0: 4 KiB (iPXE maps 0x1000). BAR1: the MSI-X table and PBA. BAR2: the
/// doorbell array; 64 KiB matches what SeaBIOS assigned in the reference's measurement (a
/// guess for the real device).
pub const BAR_SIZES: [u64; 3] = [0x1000, 0x1000, 0x10000];
/// MSI-X: table at BAR1 offset 0, PBA at BAR1 offset 0x800.
pub const MSIX_TABLE_OFFSET: u32 = 0;
pub const MSIX_PBA_OFFSET: u32 = 0x800;
pub const MSIX_BIR: u32 = 1;
pub const MSIX_CTRL_ENABLE: u16 = 1 << 15;
pub const MSIX_CTRL_FUNCTION_MASK: u16 = 1 << 14;

#[derive(Clone, Debug)]
pub(crate) struct PciConfig {
    pub revision: u8,
    pub command: u16,
    pub bars: [u32; 3],
    pub cache_line: u8,
    pub latency: u8,
    pub interrupt_line: u8,
    pub msix_control: u16,
    /// MSI-X vectors: Linux wants management + one per queue (facts §3.2); 2 * queues + 1.
    pub msix_vectors: u16,
}

impl PciConfig {
    pub fn new(revision: u8, msix_vectors: u16) -> Self {
        PciConfig {
            revision,
            command: 0,
            bars: [0; 3],
            cache_line: 0,
            latency: 0,
            interrupt_line: 0,
            msix_control: 0,
            msix_vectors: msix_vectors.clamp(1, 2048),
        }
    }

    pub fn memory_enabled(&self) -> bool {
        self.command & COMMAND_MEMORY != 0
    }

    pub fn bus_master(&self) -> bool {
        self.command & COMMAND_BUS_MASTER != 0
    }

    /// The base address the guest programmed into BAR n (memory BAR, flags stripped).
    pub fn bar_base(&self, n: usize) -> u64 {
        u64::from(self.bars[n] & !0xf)
    }

    /// The dword at a 4-aligned offset.
    fn dword(&self, off: u16) -> u32 {
        match off {
            0x00 => u32::from(VENDOR_ID) | (u32::from(DEVICE_ID) << 16),
            0x04 => u32::from(self.command) | (u32::from(STATUS_CAP_LIST) << 16),
            0x08 => u32::from(self.revision) | (CLASS_CODE << 8),
            0x0C => u32::from(self.cache_line) | (u32::from(self.latency) << 8),
            // Bits 2:1 = 00 (32-bit), bit 0 = 0 (memory), not prefetchable.
            0x10 | 0x14 | 0x18 => self.bars[usize::from((off - OFF_BAR0) / 4)],
            0x2C => u32::from(SUBSYSTEM_VENDOR_ID) | (u32::from(SUBSYSTEM_ID) << 16),
            0x34 => u32::from(OFF_MSIX_CAP),
            // Interrupt pin 0: the model raises no INTx (the proxy has no IRQ path under TCG;
            // a guess for the real device, whose drivers use MSI-X only).
            0x3C => u32::from(self.interrupt_line),
            0x40 => {
                let ctrl = (self.msix_vectors - 1) | self.msix_control;
                u32::from(CAP_ID_MSIX) | (u32::from(ctrl) << 16) // next pointer 0: last capability
            }
            0x44 => MSIX_TABLE_OFFSET | MSIX_BIR,
            0x48 => MSIX_PBA_OFFSET | MSIX_BIR,
            _ => 0,
        }
    }

    pub fn read(&self, offset: u16, size: u8) -> u32 {
        if !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(u16::from(size)) || offset >= 4096 {
            return 0xffff_ffff;
        }
        if offset >= 256 {
            // No extended capabilities: a conventional function reads 0 there.
            return 0;
        }
        let d = self.dword(offset & !3);
        let shift = u32::from(offset & 3) * 8;
        match size {
            1 => (d >> shift) & 0xff,
            2 => (d >> shift) & 0xffff,
            _ => d,
        }
    }

    pub fn write(&mut self, offset: u16, size: u8, value: u32) {
        if !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(u16::from(size)) || offset >= 256 {
            return;
        }
        // Apply bytewise so 1/2/4-byte writes all behave; read-only bytes ignore writes, as
        // on any PCI function (not a violation: firmware does this routinely).
        for i in 0..u16::from(size) {
            let at = offset + i;
            let b = (value >> (8 * i)) as u8;
            self.write_byte(at, b);
        }
    }

    fn write_byte(&mut self, at: u16, b: u8) {
        match at {
            0x04 => self.command = (self.command & 0xff00) | u16::from(b),
            0x05 => self.command = (self.command & 0x00ff) | (u16::from(b) << 8),
            0x0C => self.cache_line = b,
            0x0D => self.latency = b,
            0x10..=0x1B => {
                let n = usize::from((at - OFF_BAR0) / 4);
                let shift = u32::from(at % 4) * 8;
                let mut v = self.bars[n];
                v = (v & !(0xff << shift)) | (u32::from(b) << shift);
                // Size decoding: address bits below the BAR size are hard-wired 0.
                let mask = !(BAR_SIZES[n] as u32 - 1);
                self.bars[n] = v & mask;
            }
            0x3C => self.interrupt_line = b,
            0x43 => {
                // MSI-X message control high byte: enable (bit 15) and function mask (bit 14).
                let hi = u16::from(b) << 8;
                self.msix_control = hi & (MSIX_CTRL_ENABLE | MSIX_CTRL_FUNCTION_MASK);
            }
            _ => {}
        }
        self.command &= COMMAND_WRITABLE;
    }

    /// Which BAR (0..=2) decodes this absolute guest address, with the offset inside it.
    pub fn decode(&self, addr: u64) -> Option<(u8, u64)> {
        if !self.memory_enabled() {
            return None;
        }
        (0..3).find_map(|n| {
            let base = self.bar_base(n);
            (base != 0 && addr >= base && addr < base + BAR_SIZES[n])
                .then(|| (n as u8, addr - base))
        })
    }
}
