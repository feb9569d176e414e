//! Time from the TSC, calibrated against the PIT; Ctrl-C on the serial line interrupts.

use core::arch::x86_64::_rdtsc;

use drivers::platform::Clock;
use x86_64::instructions::port::Port;

use crate::serial;

/// PIT input clock (Hz), fixed by the PC architecture.
const PIT_HZ: u64 = 1_193_182;
/// Calibration interval: 10 ms is long enough for < 0.1 % error, short enough for boot.
const CALIBRATION_TICKS: u16 = 11_932;
const PIT_CHANNEL2_DATA: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
/// Port B of the 8255/NMI status: bit 0 gates PIT channel 2, bit 1 drives the speaker,
/// bit 5 reads channel 2's output.
const PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_SPEAKER: u8 = 1 << 1;
const PORT_B_OUT2: u8 = 1 << 5;
/// Channel 2, lobyte/hibyte access, mode 0 (interrupt on terminal count), binary.
const PIT_CH2_MODE0: u8 = 0b1011_0000;
/// Upper bound on polls of the PIT output; a missing PIT must not hang the boot.
const CALIBRATION_MAX_POLLS: u32 = 50_000_000;
/// Used when the PIT never answers: a plausible modern TSC rate.
const FALLBACK_TSC_HZ: u64 = 2_000_000_000;

fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU and has no memory effects.
    unsafe { _rdtsc() }
}

#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    origin: u64,
    hz: u64,
    /// false when the fallback rate is in use.
    pub calibrated: bool,
}

impl TscClock {
    /// Calibrates the TSC against PIT channel 2. `origin` is the TSC value that `now_us`
    /// reports as 0 (the monitor's entry).
    pub fn calibrate(origin: u64) -> TscClock {
        let (hz, calibrated) = match measure_tsc_hz() {
            Some(hz) => (hz, true),
            None => (FALLBACK_TSC_HZ, false),
        };
        TscClock {
            origin,
            hz,
            calibrated,
        }
    }

    pub fn tsc_hz(&self) -> u64 {
        self.hz
    }

    pub fn raw_tsc() -> u64 {
        rdtsc()
    }
}

fn measure_tsc_hz() -> Option<u64> {
    let mut port_b: Port<u8> = Port::new(PORT_B);
    let mut command: Port<u8> = Port::new(PIT_COMMAND);
    let mut data: Port<u8> = Port::new(PIT_CHANNEL2_DATA);
    // SAFETY: the PIT and port B are fixed PC hardware that nothing else in the monitor
    // uses; the speaker stays off and the gate is restored afterwards.
    unsafe {
        let saved = port_b.read();
        port_b.write((saved & !PORT_B_SPEAKER) & !PORT_B_GATE2);
        command.write(PIT_CH2_MODE0);
        let [low, high] = CALIBRATION_TICKS.to_le_bytes();
        data.write(low);
        data.write(high);
        // Counting starts on the gate's rising edge.
        port_b.write((saved & !PORT_B_SPEAKER) | PORT_B_GATE2);
        let start = rdtsc();
        let mut polls = 0u32;
        let done = loop {
            if port_b.read() & PORT_B_OUT2 != 0 {
                break true;
            }
            polls += 1;
            if polls >= CALIBRATION_MAX_POLLS {
                break false;
            }
        };
        let end = rdtsc();
        port_b.write(saved);
        if !done || end <= start {
            return None;
        }
        Some((end - start) * PIT_HZ / CALIBRATION_TICKS as u64)
    }
}

impl Clock for TscClock {
    fn now_us(&self) -> u64 {
        let ticks = rdtsc().wrapping_sub(self.origin);
        (ticks as u128 * 1_000_000 / self.hz as u128) as u64
    }

    fn interrupted(&self) -> bool {
        serial::interrupt_requested()
    }
}
