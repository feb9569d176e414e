//! PIT channel 2 as a reference counter, used only where it is seen to work: after arming,
//! its output (port 0x61 bit 5) must read low, and its count must advance. A VM without a
//! PIT (QEMU `pit=off`) answers these ports with whatever an empty bus gives, which the
//! old calibration took for a finished 10 ms count.

use drivers::clock::{rates, Source};
use drivers::platform::PortIo;

use drivers::clock::window::Counter;

const PIT_CHANNEL2_DATA: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
/// Port B of the 8255/NMI status: bit 0 gates PIT channel 2, bit 1 drives the speaker,
/// bit 5 reads channel 2's output.
const PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_SPEAKER: u8 = 1 << 1;
const PORT_B_OUT2: u8 = 1 << 5;
/// Channel 2, lobyte/hibyte access, mode 0 (interrupt on terminal count), binary. In mode
/// 0 the output goes low as soon as the control word is written (fact: Intel 8254 data
/// sheet, mode 0), so a high OUT2 afterwards means no 8254 answers.
const PIT_CH2_MODE0: u8 = 0b1011_0000;
/// Counter latch command for channel 2 (bits 7:6 = 2, bits 5:4 = 0).
const PIT_CH2_LATCH: u8 = 0b1000_0000;
/// The longest count: 65536 ticks of 1.193182 MHz = 54.9 ms, longer than the window, so
/// the output must still be low when the window ends.
const FULL_COUNT: u16 = 0xffff;

pub struct Pit<'a> {
    ports: &'a dyn PortIo,
    saved_port_b: u8,
}

/// Arms channel 2 counting down from 0xffff; None when OUT2 does not go low (no PIT).
pub fn arm(ports: &dyn PortIo) -> Option<Pit<'_>> {
    let saved_port_b = ports.in8(PORT_B);
    ports.out8(PORT_B, saved_port_b & !PORT_B_SPEAKER & !PORT_B_GATE2);
    ports.out8(PIT_COMMAND, PIT_CH2_MODE0);
    let [low, high] = FULL_COUNT.to_le_bytes();
    ports.out8(PIT_CHANNEL2_DATA, low);
    ports.out8(PIT_CHANNEL2_DATA, high);
    if ports.in8(PORT_B) & PORT_B_OUT2 != 0 {
        ports.out8(PORT_B, saved_port_b);
        return None;
    }
    // Counting starts with the gate high.
    ports.out8(PORT_B, (saved_port_b & !PORT_B_SPEAKER) | PORT_B_GATE2);
    Some(Pit {
        ports,
        saved_port_b,
    })
}

impl Pit<'_> {
    /// Ends the count and restores port B. True when OUT2 is still low, as it must be
    /// before a full count has run out.
    pub fn finish(self, ticks: u64) -> bool {
        let out2_low = self.ports.in8(PORT_B) & PORT_B_OUT2 == 0;
        self.ports.out8(PORT_B, self.saved_port_b);
        out2_low || ticks >= FULL_COUNT as u64
    }
}

impl Counter for Pit<'_> {
    fn source(&self) -> Source {
        Source::Pit
    }
    fn hz(&self) -> u64 {
        rates::PIT_HZ
    }
    fn mask(&self) -> u64 {
        0xffff
    }
    /// The count turned upwards (the 8254 counts down).
    fn read(&mut self) -> u64 {
        self.ports.out8(PIT_COMMAND, PIT_CH2_LATCH);
        let low = self.ports.in8(PIT_CHANNEL2_DATA);
        let high = self.ports.in8(PIT_CHANNEL2_DATA);
        (FULL_COUNT - u16::from_le_bytes([low, high])) as u64
    }
}
