//! Time from the TSC, its rate taken from the best source the platform offers and
//! cross-checked against the others; Ctrl-C on the serial line interrupts.
//!
//! The sources (one file each, the arithmetic and the choice in `drivers::clock`):
//! CPUID 0x15/0x16 and the hypervisor leaf 0x4000_0010 (declared, read at once),
//! `kvmclock` (declared by KVM through a pvclock structure), and three reference counters
//! timed in one shared 10 ms window: `pmtimer`, `hpet`, `pit`. Counting all three at once
//! keeps the boot as fast as the old PIT-only calibration.

mod hpet;
mod kvmclock;
mod pit;
mod pmtimer;

use alloc::vec::Vec;
use core::arch::x86_64::_rdtsc;

use drivers::clock::{rates, Calibration, Evidence, Reading, Rejection, Source};
use drivers::platform::{Clock, Cpu, FirmwareTables, MmioMapper, PortIo};

use crate::serial;

/// The counted window (policy: 10 ms keeps the error of every counter under 0.1 % and is
/// what the boot spent on the PIT before).
const WINDOW_US: u64 = 10_000;
/// If no counter has moved after this many polls, none counts (the slowest, the PIT,
/// ticks every 0.84 us; a poll reads every counter, a few hundred ns at the least).
const NO_MOTION_POLLS: u32 = 1_000;
/// Upper bound on polls: a counter that stops mid-window must not hang the boot.
const MAX_POLLS: u32 = 2_000_000;
/// Samples taken at each end of the window, the tightest kept (policy).
const PRECISE_SAMPLES: u32 = 5;

fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU and has no memory effects.
    unsafe { _rdtsc() }
}

/// A reference counter of known rate that the TSC is timed against.
trait Counter {
    fn source(&self) -> Source;
    fn hz(&self) -> u64;
    /// The counter wraps at `mask + 1`.
    fn mask(&self) -> u64;
    /// The current count (counting up).
    fn read(&mut self) -> u64;
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
    let counted = count_window(&mut counters);
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

/// One counter's progress through the window.
struct Track {
    start_tsc: u64,
    end_tsc: u64,
    last: u64,
    ticks: u64,
}

/// A TSC value paired with a counter value: the TSC midway between reads around it.
/// Returns the bracket's width too (how long the counter read took).
fn sample(counter: &mut dyn Counter) -> (u64, u64, u64) {
    let before = rdtsc();
    let value = counter.read();
    let after = rdtsc();
    let width = after.wrapping_sub(before);
    (before + width / 2, value, width)
}

/// The tightest of `PRECISE_SAMPLES` samples: a read the CPU was interrupted or (in a VM)
/// descheduled in has a wide bracket and would skew the window's ends by that much.
fn precise_sample(counter: &mut dyn Counter) -> (u64, u64) {
    let mut best = sample(counter);
    for _ in 1..PRECISE_SAMPLES {
        let next = sample(counter);
        if next.2 < best.2 {
            best = next;
        }
    }
    (best.0, best.1)
}

/// Times every counter over one window of `WINDOW_US`, measured by the first counter
/// (in list order) that is seen to move.
fn count_window(counters: &mut [&mut dyn Counter]) -> Vec<(Source, Evidence)> {
    let mut tracks: Vec<Track> = counters
        .iter_mut()
        .map(|c| {
            let (tsc, value) = precise_sample(&mut **c);
            Track {
                start_tsc: tsc,
                end_tsc: tsc,
                last: value,
                ticks: 0,
            }
        })
        .collect();
    if tracks.is_empty() {
        return Vec::new();
    }
    let mut timer: Option<usize> = None;
    for poll in 0..MAX_POLLS {
        for (counter, track) in counters.iter_mut().zip(tracks.iter_mut()) {
            let value = counter.read();
            track.ticks += rates::wrapping_ticks(track.last, value, counter.mask());
            track.last = value;
        }
        if timer.is_none() {
            timer = tracks.iter().position(|t| t.ticks > 0);
        }
        match timer {
            Some(i) => {
                let window_ticks = counters[i].hz() * WINDOW_US / 1_000_000;
                if tracks[i].ticks >= window_ticks {
                    break;
                }
            }
            None if poll >= NO_MOTION_POLLS => break,
            None => {}
        }
    }
    // The window's end: one precise sample per counter (it also counts the last ticks).
    for (counter, track) in counters.iter_mut().zip(tracks.iter_mut()) {
        let (tsc, value) = precise_sample(&mut **counter);
        track.ticks += rates::wrapping_ticks(track.last, value, counter.mask());
        track.last = value;
        track.end_tsc = tsc;
    }
    counters
        .iter()
        .zip(tracks.iter())
        .map(|(counter, t)| {
            (
                counter.source(),
                Evidence::Counted {
                    ticks: t.ticks,
                    counter_hz: counter.hz(),
                    tsc_ticks: t.end_tsc.wrapping_sub(t.start_tsc),
                },
            )
        })
        .collect()
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
