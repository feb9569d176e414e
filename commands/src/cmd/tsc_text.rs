//! How `cpu` shows the TSC calibration: the chosen source, then every source with its
//! rate (or why it has none), its raw values and its deviation from the chosen rate.
//! Pure, tested without a `Ctx`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::clock::{ppm_text, rates, Calibration};
use evidence::TscReading;

/// The human text (ends with a newline).
pub fn text(c: &Calibration) -> String {
    let mut out = alloc::format!(
        "TSC {}.{:03} MHz from {}\n",
        c.hz / 1_000_000,
        c.hz / 1_000 % 1_000,
        c.source_name()
    );
    for r in &c.readings {
        let verdict = match (r.result, Some(r.source) == c.chosen) {
            (Ok(_), true) => String::from("used"),
            (Ok(hz), false) => ppm_text(rates::deviation_ppm(hz, c.hz)),
            (Err(why), _) => alloc::format!("{why}"),
        };
        let rate = match r.evidence.and_then(|e| e.hz()) {
            Some(hz) => alloc::format!("{}.{:03} MHz", hz / 1_000_000, hz / 1_000 % 1_000),
            None => String::from("-"),
        };
        let raw = r
            .evidence
            .map(|e| alloc::format!(" ({e})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {:<16} {rate:>14}  {verdict}{raw}", r.source.name());
    }
    out
}

/// The readings as frame records.
pub fn frame(c: &Calibration) -> Vec<TscReading> {
    c.readings
        .iter()
        .map(|r| TscReading {
            source: r.source.name().into(),
            hz: r.hz().unwrap_or(0),
            rejection: r
                .result
                .err()
                .map(|why| why.code().into())
                .unwrap_or_default(),
            raw: r
                .evidence
                .map(|e| alloc::format!("{e}"))
                .unwrap_or_default(),
            deviation_ppm: match (r.hz(), Some(r.source) == c.chosen) {
                (Some(hz), false) => rates::deviation_ppm(hz, c.hz),
                _ => 0,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use drivers::clock::{Evidence, Reading, Rejection, Source};

    fn calibration() -> Calibration {
        Calibration::choose(vec![
            Reading::rejected(Source::Hpet, Rejection::Absent),
            Reading::from_evidence(
                Source::PmTimer,
                Evidence::Counted {
                    ticks: 35_795,
                    counter_hz: rates::PM_TIMER_HZ,
                    tsc_ticks: 25_000_000,
                },
            ),
            Reading::rejected(Source::Pit, Rejection::NoAnswer),
        ])
    }

    #[test]
    fn every_source_is_listed_with_its_verdict() {
        let t = text(&calibration());
        assert!(
            t.starts_with("TSC 2500.031 MHz from acpi-pm-timer\n"),
            "{t}"
        );
        assert!(t.contains("acpi-pm-timer"), "{t}");
        assert!(
            t.contains("used (35795 ticks of 3579545 Hz in 25000000 TSC ticks)"),
            "{t}"
        );
        assert!(t.contains("hpet") && t.contains("absent"), "{t}");
        assert!(t.contains("pit") && t.contains("no-answer"), "{t}");
    }

    #[test]
    fn frame_records_carry_codes_and_rates() {
        let f = frame(&calibration());
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[0].source.as_str(), f[0].rejection.as_str()),
            ("acpi-pm-timer", "")
        );
        assert!(f[0].hz > 2_500_000_000);
        assert_eq!(
            (f[1].source.as_str(), f[1].rejection.as_str()),
            ("hpet", "absent")
        );
        assert_eq!(f[2].rejection, "no-answer");
    }
}
