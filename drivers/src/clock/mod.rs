//! Which TSC rate the monitor believes, and why: every source the platform offers gives a
//! [`Reading`] (a rate, or the reason it has none), and [`Calibration::choose`] picks the
//! best plausible one and says how far the others disagree.
//!
//! This module knows the sources' arithmetic ([`rates`]), the CPUID-declared ones
//! ([`cpuid`], through the `Cpu` seam) and the choice. It does not touch hardware timers:
//! the monitor (monitor/src/clock/) reads the PM timer, HPET, PIT and the KVM pvclock and
//! hands their raw values here. Why this matters: a VM without a PIT once gave a
//! "calibration" 500 times too slow, and every deadline of every driver shrank with it.

pub mod cpuid;
pub mod rates;
pub mod window;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Plausible TSC rates (policy: no x86 TSC of the last 20 years runs below 100 MHz, none
/// above 10 GHz; outside that a source is broken or absent).
pub const MIN_TSC_HZ: u64 = 100_000_000;
pub const MAX_TSC_HZ: u64 = 10_000_000_000;
/// Two sources agree when they differ by at most this (policy: measured 10 ms windows
/// agree within ~0.1 %; 1 % leaves room for a nominal CPUID 0x16 value).
pub const AGREE_PPM: i64 = 10_000;
/// Used when no source gives a plausible rate (policy: a common modern TSC rate).
pub const FALLBACK_TSC_HZ: u64 = 2_000_000_000;
/// A counted window shorter than this (in the counter's own time) is too coarse to use
/// (policy: 1 ms keeps the quantisation of the slowest counter, the PIT, under 0.1 %).
pub const MIN_WINDOW_US: u64 = 1_000;

/// A TSC source, in the order the choice prefers them (best first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// CPUID 0x15: crystal clock times a ratio, exact where all three values are set.
    Cpuid15,
    /// KVM's paravirtual clock: the hypervisor's own TSC-to-nanoseconds scale.
    KvmClock,
    /// CPUID 0x4000_0010 EAX: the hypervisor's TSC rate in kHz.
    HypervisorLeaf,
    /// The ACPI PM timer (3.579545 MHz), port from the FADT.
    PmTimer,
    /// The HPET main counter, from the ACPI HPET table.
    Hpet,
    /// CPUID 0x16 EAX: the nominal base frequency in whole MHz. Behind the measured
    /// counters: it is a label of the part, not a measurement of this TSC.
    Cpuid16,
    /// PIT channel 2 (1.193182 MHz), only where it was seen to count.
    Pit,
}

impl Source {
    pub const ALL: [Source; 7] = [
        Source::Cpuid15,
        Source::KvmClock,
        Source::HypervisorLeaf,
        Source::PmTimer,
        Source::Hpet,
        Source::Cpuid16,
        Source::Pit,
    ];

    /// Stable kebab-case names (banner, `cpu`, frames): add, never rename.
    pub fn name(self) -> &'static str {
        match self {
            Source::Cpuid15 => "cpuid-15h",
            Source::KvmClock => "kvmclock",
            Source::HypervisorLeaf => "cpuid-40000010h",
            Source::PmTimer => "acpi-pm-timer",
            Source::Hpet => "hpet",
            Source::Cpuid16 => "cpuid-16h",
            Source::Pit => "pit",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The raw values a rate came from (what `cpu` prints, what the tests feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// A counter of `counter_hz` advanced `ticks` while the TSC advanced `tsc_ticks`.
    Counted {
        ticks: u64,
        counter_hz: u64,
        tsc_ticks: u64,
    },
    Cpuid15 {
        denominator: u32,
        numerator: u32,
        crystal_hz: u32,
    },
    Cpuid16 {
        base_mhz: u32,
    },
    Pvclock {
        mul: u32,
        shift: i8,
    },
    HypervisorLeaf {
        tsc_khz: u32,
    },
}

impl Evidence {
    /// The TSC rate these values give, if any.
    pub fn hz(&self) -> Option<u64> {
        match *self {
            Evidence::Counted {
                ticks,
                counter_hz,
                tsc_ticks,
            } => rates::counted_hz(tsc_ticks, ticks, counter_hz),
            Evidence::Cpuid15 {
                denominator,
                numerator,
                crystal_hz,
            } => rates::cpuid15_hz(denominator, numerator, crystal_hz),
            Evidence::Cpuid16 { base_mhz } => rates::cpuid16_hz(base_mhz),
            Evidence::Pvclock { mul, shift } => rates::pvclock_hz(mul, shift),
            Evidence::HypervisorLeaf { tsc_khz } => rates::hypervisor_leaf_hz(tsc_khz),
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Evidence::Counted {
                ticks,
                counter_hz,
                tsc_ticks,
            } => write!(
                f,
                "{ticks} ticks of {counter_hz} Hz in {tsc_ticks} TSC ticks"
            ),
            Evidence::Cpuid15 {
                denominator,
                numerator,
                crystal_hz,
            } => write!(f, "crystal {crystal_hz} Hz * {numerator}/{denominator}"),
            Evidence::Cpuid16 { base_mhz } => write!(f, "base {base_mhz} MHz"),
            Evidence::Pvclock { mul, shift } => {
                write!(f, "tsc_to_system_mul {mul:#x}, tsc_shift {shift}")
            }
            Evidence::HypervisorLeaf { tsc_khz } => write!(f, "{tsc_khz} kHz"),
        }
    }
}

/// Why a source gave no rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The platform does not offer it (no CPUID leaf, ACPI table, signature).
    Absent,
    /// It is offered but answers nothing usable (e.g. PIT OUT2 high right after arming,
    /// an HPET period of all ones, a pvclock that was never written).
    NoAnswer,
    /// A counter that did not advance during the window.
    NotCounting,
    /// The window it counted was too short to trust.
    TooShort,
    /// A rate outside [`MIN_TSC_HZ`]..=[`MAX_TSC_HZ`].
    Implausible(u64),
    /// It could not be mapped or accessed (e.g. the MMIO window is full).
    Unreachable,
}

impl Rejection {
    /// Stable kebab-case codes.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Absent => "absent",
            Rejection::NoAnswer => "no-answer",
            Rejection::NotCounting => "not-counting",
            Rejection::TooShort => "window-too-short",
            Rejection::Implausible(_) => "implausible-rate",
            Rejection::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Implausible(hz) => write!(f, "implausible rate {hz} Hz"),
            other => f.write_str(other.code()),
        }
    }
}

/// What one source said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub source: Source,
    /// The raw values, when the source answered at all.
    pub evidence: Option<Evidence>,
    /// The plausible TSC rate, or why there is none.
    pub result: Result<u64, Rejection>,
}

impl Reading {
    /// A source that gave no values.
    pub fn rejected(source: Source, why: Rejection) -> Reading {
        Reading {
            source,
            evidence: None,
            result: Err(why),
        }
    }

    /// A source that gave values: the rate they imply, checked for plausibility (and, for
    /// a counter, that it moved over a long enough window).
    pub fn from_evidence(source: Source, evidence: Evidence) -> Reading {
        let result = match evidence {
            Evidence::Counted { ticks: 0, .. } => Err(Rejection::NotCounting),
            Evidence::Counted {
                ticks, counter_hz, ..
            } if (ticks as u128) * 1_000_000 < (MIN_WINDOW_US as u128) * counter_hz as u128 => {
                Err(Rejection::TooShort)
            }
            _ => match evidence.hz() {
                Some(hz) if (MIN_TSC_HZ..=MAX_TSC_HZ).contains(&hz) => Ok(hz),
                Some(hz) => Err(Rejection::Implausible(hz)),
                None => Err(Rejection::NoAnswer),
            },
        };
        Reading {
            source,
            evidence: Some(evidence),
            result,
        }
    }

    pub fn hz(&self) -> Option<u64> {
        self.result.ok()
    }
}

/// The monitor's verdict: the rate it uses, the source it came from, and every reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calibration {
    /// The source used; None when nothing was plausible and [`FALLBACK_TSC_HZ`] is assumed.
    pub chosen: Option<Source>,
    pub hz: u64,
    /// Every source, in [`Source`] order.
    pub readings: Vec<Reading>,
}

fn agree(a: u64, b: u64) -> bool {
    rates::deviation_ppm(a, b).abs() <= AGREE_PPM
}

impl Calibration {
    /// Picks the best plausible reading: the first in [`Source`] order, unless it is
    /// outvoted: a larger camp of at least two sources that agree with each other
    /// disagrees with it (a stale CPUID value after a migration, a PIT that counts at the
    /// wrong rate), and then the next is tried.
    pub fn choose(mut readings: Vec<Reading>) -> Calibration {
        readings.sort_by_key(|r| r.source);
        let plausible: Vec<(Source, u64)> = readings
            .iter()
            .filter_map(|r| r.hz().map(|hz| (r.source, hz)))
            .collect();
        // How many plausible sources (itself included) agree with a rate.
        let camp = |hz: u64| plausible.iter().filter(|(_, o)| agree(*o, hz)).count();
        let outvoted = |hz: u64| {
            plausible.iter().any(|(_, other)| {
                !agree(*other, hz) && camp(*other) >= 2 && camp(*other) > camp(hz)
            })
        };
        let chosen = plausible
            .iter()
            .find(|(_, hz)| !outvoted(*hz))
            .or(plausible.first())
            .copied();
        Calibration {
            chosen: chosen.map(|(s, _)| s),
            hz: chosen.map_or(FALLBACK_TSC_HZ, |(_, hz)| hz),
            readings,
        }
    }

    /// Every other plausible source and its signed deviation from the chosen rate (ppm).
    pub fn deviations(&self) -> Vec<(Source, i64)> {
        self.readings
            .iter()
            .filter(|r| Some(r.source) != self.chosen)
            .filter_map(|r| {
                r.hz()
                    .map(|hz| (r.source, rates::deviation_ppm(hz, self.hz)))
            })
            .collect()
    }

    /// The largest disagreement of another plausible source, in ppm (0 when none).
    pub fn max_disagreement_ppm(&self) -> u64 {
        self.deviations()
            .iter()
            .map(|(_, ppm)| ppm.unsigned_abs())
            .max()
            .unwrap_or(0)
    }

    /// The chosen source's name, or "assumed" when the fallback rate is in use.
    pub fn source_name(&self) -> &'static str {
        self.chosen.map_or("assumed", Source::name)
    }

    /// One line for the banner: rate, source, and how far the others disagree.
    pub fn summary(&self) -> String {
        let mut text = alloc::format!(
            "tsc {}.{:03} MHz from {}",
            self.hz / 1_000_000,
            self.hz / 1_000 % 1_000,
            self.source_name()
        );
        if self.chosen.is_none() {
            text.push_str(" (no source gave a plausible rate)");
            return text;
        }
        let others = self.deviations();
        if others.is_empty() {
            text.push_str(" (no other source to cross-check)");
        } else {
            let list: Vec<String> = others
                .iter()
                .map(|(s, ppm)| alloc::format!("{s} {}", ppm_text(*ppm)))
                .collect();
            text.push_str(&alloc::format!(" ({})", list.join(", ")));
        }
        text
    }
}

/// "+12 ppm", "-3.4 %": ppm up to 10 000, percent beyond.
pub fn ppm_text(ppm: i64) -> String {
    if ppm.unsigned_abs() <= 10_000 {
        alloc::format!("{ppm:+} ppm")
    } else {
        alloc::format!(
            "{}{}.{} %",
            if ppm < 0 { "-" } else { "+" },
            ppm.unsigned_abs() / 10_000,
            ppm.unsigned_abs() / 1_000 % 10
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn counted(source: Source, ticks: u64, counter_hz: u64, tsc_ticks: u64) -> Reading {
        Reading::from_evidence(
            source,
            Evidence::Counted {
                ticks,
                counter_hz,
                tsc_ticks,
            },
        )
    }

    #[test]
    fn a_silent_or_short_counter_is_rejected() {
        let r = counted(Source::PmTimer, 0, rates::PM_TIMER_HZ, 1_000_000);
        assert_eq!(r.result, Err(Rejection::NotCounting));
        // 100 PIT ticks are 84 us: too coarse.
        let r = counted(Source::Pit, 100, rates::PIT_HZ, 200_000);
        assert_eq!(r.result, Err(Rejection::TooShort));
    }

    #[test]
    fn rates_outside_the_plausible_range_are_rejected() {
        // What today's PIT code computed under `pit=off`: OUT2 read high at once.
        let r = counted(Source::Pit, 11_932, rates::PIT_HZ, 41_000);
        assert_eq!(r.result, Err(Rejection::Implausible(4_099_938)));
        let r = Reading::from_evidence(Source::Cpuid16, Evidence::Cpuid16 { base_mhz: 50 });
        assert_eq!(r.result, Err(Rejection::Implausible(50_000_000)));
    }

    #[test]
    fn the_first_plausible_source_wins_and_the_others_are_compared() {
        let c = Calibration::choose(vec![
            counted(Source::Pit, 11_932, rates::PIT_HZ, 25_000_000),
            Reading::rejected(Source::Hpet, Rejection::Absent),
            counted(Source::PmTimer, 35_795, rates::PM_TIMER_HZ, 25_000_000),
        ]);
        assert_eq!(c.chosen, Some(Source::PmTimer));
        assert_eq!(c.readings[0].source, Source::PmTimer, "sorted best first");
        let dev = c.deviations();
        assert_eq!(dev.len(), 1);
        assert_eq!(dev[0].0, Source::Pit);
        assert!(dev[0].1.abs() < 100, "{dev:?}");
        assert!(c.summary().starts_with("tsc 2500."), "{}", c.summary());
        assert!(
            c.summary().contains("from acpi-pm-timer (pit "),
            "{}",
            c.summary()
        );
    }

    #[test]
    fn an_outvoted_source_loses_to_two_that_agree() {
        let c = Calibration::choose(vec![
            Reading::from_evidence(Source::Cpuid16, Evidence::Cpuid16 { base_mhz: 3_000 }),
            counted(Source::PmTimer, 35_795, rates::PM_TIMER_HZ, 25_000_000),
            counted(Source::Pit, 11_932, rates::PIT_HZ, 25_000_000),
            Reading::from_evidence(
                Source::HypervisorLeaf,
                Evidence::HypervisorLeaf { tsc_khz: 3_000_000 },
            ),
        ]);
        // The hypervisor leaf (3 GHz) is first; the PM timer and the PIT agree on 2.5 GHz
        // but the 0x16 label agrees with the leaf: two camps of two, the best one wins.
        assert_eq!(c.chosen, Some(Source::HypervisorLeaf));
        let c = Calibration::choose(vec![
            counted(Source::PmTimer, 35_795, rates::PM_TIMER_HZ, 25_000_000),
            counted(Source::Pit, 11_932, rates::PIT_HZ, 25_000_000),
            Reading::from_evidence(
                Source::HypervisorLeaf,
                Evidence::HypervisorLeaf { tsc_khz: 3_000_000 },
            ),
        ]);
        assert_eq!(
            c.chosen,
            Some(Source::PmTimer),
            "one stale leaf against two"
        );
        assert!(c.max_disagreement_ppm() > 100_000);
        assert!(
            c.summary().contains("cpuid-40000010h +19.9 %"),
            "{}",
            c.summary()
        );
    }

    #[test]
    fn nothing_plausible_falls_back_and_says_so() {
        let c = Calibration::choose(vec![
            Reading::rejected(Source::PmTimer, Rejection::Absent),
            counted(Source::Pit, 11_932, rates::PIT_HZ, 41_000),
        ]);
        assert_eq!(c.chosen, None);
        assert_eq!(c.hz, FALLBACK_TSC_HZ);
        assert_eq!(c.source_name(), "assumed");
        assert!(c.summary().contains("no source gave a plausible rate"));
    }

    /// Captured from QEMU 7.2 TCG, `-machine pc` with SeaBIOS (`cpu` after boot): the
    /// three counters of one shared window.
    #[test]
    fn qemu_tcg_window_agrees_within_a_permille() {
        let c = Calibration::choose(vec![
            counted(Source::PmTimer, 35_795, rates::PM_TIMER_HZ, 24_449_028),
            counted(Source::Hpet, 995_936, 100_000_000, 24_361_857),
            counted(Source::Pit, 11_867, rates::PIT_HZ, 24_299_933),
        ]);
        assert_eq!(c.chosen, Some(Source::PmTimer));
        assert_eq!(c.hz, 2_444_933_536);
        assert_eq!(
            c.deviations(),
            vec![(Source::Hpet, 488), (Source::Pit, -681)]
        );
        assert_eq!(
            c.summary(),
            "tsc 2444.933 MHz from acpi-pm-timer (hpet +488 ppm, pit -681 ppm)"
        );
    }

    #[test]
    fn ppm_text_switches_to_percent() {
        assert_eq!(ppm_text(12), "+12 ppm");
        assert_eq!(ppm_text(-9_999), "-9999 ppm");
        assert_eq!(ppm_text(-123_456), "-12.3 %");
    }
}
