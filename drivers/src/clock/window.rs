//! One shared window over every reference counter (PM timer, HPET, PIT): the TSC is
//! sampled with each counter at both ends, so all three are timed in the 10 ms the PIT
//! alone used to take. Pure over the [`Counter`] trait and a TSC reader, so host tests run
//! it against simulated counters.

use alloc::vec::Vec;

use super::{rates, Evidence, Source};

/// The counted window (policy: 10 ms keeps the error of every counter under 0.1 % and is
/// what the boot spent on the PIT before).
pub const WINDOW_US: u64 = 10_000;
/// If no counter has moved after this many polls, none counts (the slowest, the PIT,
/// ticks every 0.84 us; a poll reads every counter, a few hundred ns at the least).
pub const NO_MOTION_POLLS: u32 = 1_000;
/// Upper bound on polls: a counter that stops mid-window must not hang the boot (policy:
/// a poll reads two or three counters, >= 1 us on hardware, so 20 times a 10 ms window).
pub const MAX_POLLS: u32 = 200_000;
/// How much longer than the first counter to complete the others may take (policy: they
/// all run on one clock, so a healthy one is done within microseconds of the first).
pub const LAGGARD_FACTOR: u64 = 3;
/// Samples taken at each end of the window, the tightest kept (policy).
pub const PRECISE_SAMPLES: u32 = 5;

/// A reference counter of known rate that the TSC is timed against.
pub trait Counter {
    fn source(&self) -> Source;
    fn hz(&self) -> u64;
    /// The counter wraps at `mask + 1`.
    fn mask(&self) -> u64;
    /// The current count (counting up).
    fn read(&mut self) -> u64;
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
fn sample(counter: &mut dyn Counter, tsc: &mut dyn FnMut() -> u64) -> (u64, u64, u64) {
    let before = tsc();
    let value = counter.read();
    let after = tsc();
    let width = after.wrapping_sub(before);
    (before + width / 2, value, width)
}

/// The tightest of `PRECISE_SAMPLES` samples: a read the CPU was interrupted or (in a VM)
/// descheduled in has a wide bracket and would skew the window's ends by that much.
fn precise_sample(counter: &mut dyn Counter, tsc: &mut dyn FnMut() -> u64) -> (u64, u64) {
    let mut best = sample(counter, tsc);
    for _ in 1..PRECISE_SAMPLES {
        let next = sample(counter, tsc);
        if next.2 < best.2 {
            best = next;
        }
    }
    (best.0, best.1)
}

/// Times every counter over one window: it ends when every counter that moves has counted
/// `WINDOW_US` of its own ticks (or `LAGGARD_FACTOR` times as long as the second one to
/// get there took); `tsc` reads the time stamp counter.
pub fn count_window(
    counters: &mut [&mut dyn Counter],
    tsc: &mut dyn FnMut() -> u64,
) -> Vec<(Source, Evidence)> {
    let mut tracks: Vec<Track> = counters
        .iter_mut()
        .map(|c| {
            let (at, value) = precise_sample(&mut **c, tsc);
            Track {
                start_tsc: at,
                end_tsc: at,
                last: value,
                ticks: 0,
            }
        })
        .collect();
    if tracks.is_empty() {
        return Vec::new();
    }
    let start_tsc = tracks[0].start_tsc;
    // TSC when a second counter completed its window: the rest get up to `LAGGARD_FACTOR`
    // times as long. So a counter that jumps cannot cut the window short for the others,
    // and one that stops holds it open only that long (or, with one other, MAX_POLLS).
    let mut first_done: Option<u64> = None;
    for poll in 0..MAX_POLLS {
        for (counter, track) in counters.iter_mut().zip(tracks.iter_mut()) {
            let value = counter.read();
            track.ticks += rates::wrapping_ticks(track.last, value, counter.mask());
            track.last = value;
        }
        let moving = tracks.iter().filter(|t| t.ticks > 0).count();
        if moving == 0 {
            if poll >= NO_MOTION_POLLS {
                break;
            }
            continue;
        }
        let done = counters
            .iter()
            .zip(tracks.iter())
            .filter(|(c, t)| t.ticks >= c.hz() * WINDOW_US / 1_000_000)
            .count();
        if done == moving {
            break;
        }
        // Two that agree the window is over bound the rest (one alone may be a jumper).
        if done >= 2 {
            let now = tsc();
            let first = *first_done.get_or_insert(now);
            if now.wrapping_sub(start_tsc) > first.wrapping_sub(start_tsc) * LAGGARD_FACTOR {
                break;
            }
        }
    }
    // The window's end: one precise sample per counter (it also counts the last ticks).
    for (counter, track) in counters.iter_mut().zip(tracks.iter_mut()) {
        let (at, value) = precise_sample(&mut **counter, tsc);
        track.ticks += rates::wrapping_ticks(track.last, value, counter.mask());
        track.last = value;
        track.end_tsc = at;
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::Cell;

    /// Simulated time in ns: every counter read costs `read_ns`; the TSC runs at `tsc_hz`.
    struct Machine {
        now_ns: Cell<u64>,
        read_ns: u64,
        tsc_hz: u64,
        /// A one-off stall (ns) inside the next read, like a descheduled vCPU.
        stall_ns: Cell<u64>,
    }

    impl Machine {
        fn tsc(&self) -> u64 {
            (self.now_ns.get() as u128 * self.tsc_hz as u128 / 1_000_000_000) as u64
        }
    }

    /// A counter of `hz` running on the machine's time from an offset (or stuck).
    struct SimCounter {
        m: Rc<Machine>,
        source: Source,
        hz: u64,
        mask: u64,
        offset: u64,
        stuck: Option<u64>,
    }

    impl Counter for SimCounter {
        fn source(&self) -> Source {
            self.source
        }
        fn hz(&self) -> u64 {
            self.hz
        }
        fn mask(&self) -> u64 {
            self.mask
        }
        fn read(&mut self) -> u64 {
            let m = &self.m;
            m.now_ns
                .set(m.now_ns.get() + m.read_ns / 2 + m.stall_ns.replace(0));
            let value = self.stuck.unwrap_or_else(|| {
                let ticks = m.now_ns.get() as u128 * self.hz as u128 / 1_000_000_000;
                (ticks as u64).wrapping_add(self.offset) & self.mask
            });
            m.now_ns.set(m.now_ns.get() + m.read_ns / 2);
            value
        }
    }

    fn machine() -> Rc<Machine> {
        Rc::new(Machine {
            now_ns: Cell::new(0),
            read_ns: 600,
            tsc_hz: 2_444_933_000,
            stall_ns: Cell::new(0),
        })
    }

    fn counter(m: &Rc<Machine>, source: Source, hz: u64, mask: u64, offset: u64) -> SimCounter {
        SimCounter {
            m: m.clone(),
            source,
            hz,
            mask,
            offset,
            stuck: None,
        }
    }

    fn hz_of(evidence: &Evidence) -> u64 {
        evidence.hz().unwrap()
    }

    #[test]
    fn three_counters_in_one_window_agree_across_wraps() {
        let m = machine();
        // The 24-bit PM timer and the 16-bit PIT both wrap inside the window.
        let mut pm = counter(
            &m,
            Source::PmTimer,
            rates::PM_TIMER_HZ,
            0xff_ffff,
            0xff_fff0,
        );
        let mut hpet = counter(&m, Source::Hpet, 100_000_000, 0xffff_ffff, 7);
        let mut pit = counter(&m, Source::Pit, rates::PIT_HZ, 0xffff, 0xfff0);
        let tsc_m = m.clone();
        let out = count_window(&mut [&mut pm, &mut hpet, &mut pit], &mut || tsc_m.tsc());
        assert_eq!(out.len(), 3);
        for (source, evidence) in &out {
            let dev = rates::deviation_ppm(hz_of(evidence), m.tsc_hz);
            assert!(dev.abs() < 300, "{source}: {evidence} ({dev} ppm)");
        }
        // Timed by the PM timer, the first in the list: 10 ms of its ticks.
        let Evidence::Counted { ticks, .. } = out[0].1 else {
            panic!()
        };
        assert!((35_795..36_000).contains(&ticks), "{ticks}");
        assert!(m.now_ns.get() < 11_000_000, "the window is ~10 ms");
    }

    #[test]
    fn a_jumping_counter_does_not_cut_the_window_short_for_the_others() {
        let m = machine();
        // A counter whose every read claims 20 ms more: it is "done" at once.
        struct Jumper(u64);
        impl Counter for Jumper {
            fn source(&self) -> Source {
                Source::Pit
            }
            fn hz(&self) -> u64 {
                rates::PIT_HZ
            }
            fn mask(&self) -> u64 {
                u64::MAX
            }
            fn read(&mut self) -> u64 {
                self.0 += 24_000;
                self.0
            }
        }
        let mut jumper = Jumper(0);
        let mut pm = counter(&m, Source::PmTimer, rates::PM_TIMER_HZ, 0xff_ffff, 0);
        let tsc_m = m.clone();
        let out = count_window(&mut [&mut jumper, &mut pm], &mut || tsc_m.tsc());
        let Evidence::Counted { ticks, .. } = out[1].1 else {
            panic!()
        };
        assert!(
            ticks >= 35_795,
            "the PM timer got its full window: {}",
            out[1].1
        );
        let dev = rates::deviation_ppm(hz_of(&out[1].1), m.tsc_hz);
        assert!(dev.abs() < 300, "{}", out[1].1);
    }

    #[test]
    fn a_counter_that_stops_mid_window_cannot_hold_it_open() {
        let m = machine();
        struct Stopper(Rc<Machine>);
        impl Counter for Stopper {
            fn source(&self) -> Source {
                Source::Hpet
            }
            fn hz(&self) -> u64 {
                100_000_000
            }
            fn mask(&self) -> u64 {
                0xffff_ffff
            }
            fn read(&mut self) -> u64 {
                // Counts for the first 2 ms, then never again.
                self.0.now_ns.get().min(2_000_000) / 10
            }
        }
        let mut stopper = Stopper(m.clone());
        let mut pm = counter(&m, Source::PmTimer, rates::PM_TIMER_HZ, 0xff_ffff, 0);
        let mut pit = counter(&m, Source::Pit, rates::PIT_HZ, 0xffff, 0);
        let tsc_m = m.clone();
        let out = count_window(&mut [&mut pm, &mut stopper, &mut pit], &mut || tsc_m.tsc());
        assert!(
            m.now_ns.get() < 40_000_000,
            "ended {} ns in: bounded by 3x the window of the two that finished",
            m.now_ns.get()
        );
        let dev = rates::deviation_ppm(hz_of(&out[0].1), m.tsc_hz);
        assert!(dev.abs() < 300, "{}", out[0].1);
    }

    #[test]
    fn a_stall_in_an_end_sample_is_left_out() {
        let m = machine();
        let mut pm = counter(&m, Source::PmTimer, rates::PM_TIMER_HZ, 0xff_ffff, 0);
        // 2 ms lost inside the very first read: with one sample the window's start would
        // be off by up to that much (20 %); the tightest of five ignores it.
        m.stall_ns.set(2_000_000);
        let tsc_m = m.clone();
        let out = count_window(&mut [&mut pm], &mut || tsc_m.tsc());
        let dev = rates::deviation_ppm(hz_of(&out[0].1), m.tsc_hz);
        assert!(dev.abs() < 300, "{} ({dev} ppm)", out[0].1);
    }

    #[test]
    fn a_stuck_counter_gives_no_ticks_and_the_next_one_times_the_window() {
        let m = machine();
        // What an empty bus answers: all ones, forever.
        let mut pit = counter(&m, Source::Pit, rates::PIT_HZ, 0xffff, 0);
        pit.stuck = Some(0);
        let mut pm = counter(&m, Source::PmTimer, rates::PM_TIMER_HZ, 0xff_ffff, 0);
        let tsc_m = m.clone();
        let out = count_window(&mut [&mut pit, &mut pm], &mut || tsc_m.tsc());
        assert!(matches!(out[0].1, Evidence::Counted { ticks: 0, .. }));
        let dev = rates::deviation_ppm(hz_of(&out[1].1), m.tsc_hz);
        assert!(dev.abs() < 300, "{}", out[1].1);
    }

    #[test]
    fn nothing_counting_ends_the_window_at_once() {
        let m = machine();
        let mut pm = counter(&m, Source::PmTimer, rates::PM_TIMER_HZ, 0xff_ffff, 0);
        pm.stuck = Some(0xff_ffff);
        let tsc_m = m.clone();
        let out = count_window(&mut [&mut pm], &mut || tsc_m.tsc());
        assert!(matches!(out[0].1, Evidence::Counted { ticks: 0, .. }));
        // NO_MOTION_POLLS reads of 600 ns, not the 200 000 polls of MAX_POLLS.
        assert!(m.now_ns.get() < 1_000_000, "{} ns", m.now_ns.get());
        assert!(count_window(&mut [], &mut || 0).is_empty());
    }
}
