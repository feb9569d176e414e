//! Time from the TSC, its rate taken from the best source the platform offers and
//! cross-checked against the others; Ctrl-C on the serial line interrupts.
//!
//! The sources (one file each, the arithmetic and the choice in `drivers::clock`):
//! CPUID 0x15/0x16 and the hypervisor leaf 0x4000_0010 (declared, read at once),
//! `kvmclock` (declared by KVM through a pvclock structure), and three reference counters
//! timed in one shared 10 ms window (`drivers::clock::window`): `pmtimer`, `hpet`, `pit`.
//! Counting all three at once keeps the boot within ~3.5 ms of the old PIT-only
//! calibration (the table reads and the HPET mapping are the difference).

mod hpet;
mod kvmclock;
mod pit;
mod pmtimer;

use alloc::vec::Vec;
use core::arch::x86_64::_rdtsc;

use drivers::clock::window::{count_window, Counter};
use drivers::clock::{Calibration, Evidence, Reading, Rejection, Source};
use drivers::platform::{Clock, Cpu, FirmwareTables, MmioMapper, PortIo};

use crate::serial;

fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU and has no memory effects.
    unsafe { _rdtsc() }
}

/// What the hardware the clock may use is reached through.
pub struct Platform<'a> {
    pub cpu: &'a dyn Cpu,
    pub ports: &'a dyn PortIo,
    pub firmware: &'a dyn FirmwareTables,
    pub mmio: &'a mut dyn MmioMapper,
}

#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    origin: u64,
    hz: u64,
}

impl TscClock {
    /// Reads every source and keeps the rate `drivers::clock` chooses. `origin` is the TSC
    /// value that `now_us` reports as 0 (the monitor's entry).
    pub fn calibrate(origin: u64, platform: Platform) -> (TscClock, Calibration) {
        let calibration = Calibration::choose(readings(platform));
        let clock = TscClock {
            origin,
            hz: calibration.hz,
        };
        (clock, calibration)
    }

    pub fn tsc_hz(&self) -> u64 {
        self.hz
    }

    pub fn raw_tsc() -> u64 {
        rdtsc()
    }
}

fn readings(p: Platform) -> Vec<Reading> {
    let mut readings = drivers::clock::cpuid::declared(p.cpu);
    readings.push(kvmclock::read(p.cpu));

    let mut pm = pmtimer::find(p.firmware, p.ports);
    let mut hpet = hpet::open(p.firmware, p.mmio);
    let mut pit = pit::arm(p.ports);
    let mut counters: Vec<&mut dyn Counter> = Vec::new();
    if let Ok(pm) = pm.as_mut() {
        counters.push(pm);
    }
    if let Ok(hpet) = hpet.as_mut() {
        counters.push(hpet);
    }
    if let Some(pit) = pit.as_mut() {
        counters.push(pit);
    }
    let counted = count_window(&mut counters, &mut rdtsc);
    drop(counters);
    let evidence_of = |source: Source| counted.iter().find(|(s, _)| *s == source).map(|c| c.1);

    readings.push(match pm {
        Ok(_) => counted_reading(Source::PmTimer, evidence_of(Source::PmTimer)),
        Err(why) => Reading::rejected(Source::PmTimer, why),
    });
    readings.push(match hpet {
        Ok(hpet) => {
            hpet.close(p.mmio);
            counted_reading(Source::Hpet, evidence_of(Source::Hpet))
        }
        Err(why) => Reading::rejected(Source::Hpet, why),
    });
    readings.push(match pit {
        Some(pit) => {
            let evidence = evidence_of(Source::Pit);
            let ticks = match evidence {
                Some(Evidence::Counted { ticks, .. }) => ticks,
                _ => 0,
            };
            if pit.finish(ticks) {
                counted_reading(Source::Pit, evidence)
            } else {
                // OUT2 rose long before a full count: not an 8254 counting at 1.19 MHz.
                Reading::rejected(Source::Pit, Rejection::NoAnswer)
            }
        }
        // OUT2 stayed high after arming: nothing answers at the PIT's ports.
        None => Reading::rejected(Source::Pit, Rejection::NoAnswer),
    });
    readings
}

fn counted_reading(source: Source, evidence: Option<Evidence>) -> Reading {
    match evidence {
        Some(evidence) => Reading::from_evidence(source, evidence),
        None => Reading::rejected(source, Rejection::NotCounting),
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
