//! System test: the monitor's clock keeps the host's time whether or not the machine has a
//! PIT and an HPET. Under QEMU `pit=off,hpet=off` the old PIT-only calibration read an
//! empty bus as a finished count and ran ~500 times fast (`sleep 2000` returned after a
//! few ms); now the TSC is calibrated against the ACPI PM timer there. With every timer
//! on, the PM timer is still used and the HPET and the PIT cross-check it.
//!
//! One boot per (firmware, machine) checks: the banner frame and the `platform:` line name
//! the source, `cpu` lists every source with its verdict, `sleep 2000` takes 2 s of host
//! time within 25 %, and the monitor's own boot time is plausible.
//! Needs target/bringup.img (`make image`; `make test` builds it first).

use std::time::Duration;

use evidence::{Body, CpuInfo};
use host_client::{QemuConfig, Session};

/// The largest disagreement the cross-check may show between counters that all run on
/// the host's clock (TCG: generous, the vCPU can be preempted between two reads).
const AGREE_PPM: i64 = 20_000;

struct Expect {
    /// `(source, rejection)` for the sources this machine lacks or has ("" = a rate).
    sources: &'static [(&'static str, &'static str)],
}

fn boot_and_check(uefi: bool, machine: &str, expect: Expect) {
    let cfg = QemuConfig {
        uefi,
        machine: machine.into(),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let what = format!(
        "{} -machine {machine}",
        if uefi { "OVMF" } else { "SeaBIOS" }
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    let boot = s
        .wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("{what}: no prompt: {e:#}\n{}", s.qemu_stderr()));

    // The banner frame and the human platform line name the source.
    let banner = &boot.banner;
    assert_eq!(banner.tsc_source, "acpi-pm-timer", "{what}: {banner:?}");
    assert!(
        (1_000_000_000..=10_000_000_000).contains(&banner.tsc_hz),
        "{what}: {banner:?}"
    );
    assert!(
        s.transcript().contains("from acpi-pm-timer ("),
        "{what}: the platform line names the source:\n{}",
        s.transcript()
    );
    // The monitor's own share of the boot is milliseconds (a clock running 500 times fast
    // made it seconds).
    assert!(
        banner.boot_us < 1_000_000,
        "{what}: boot to prompt {} us",
        banner.boot_us
    );

    let t = Duration::from_secs(60);
    let cpu = s.command("cpu", t).unwrap();
    assert!(cpu.is_ok(), "{what}: {cpu:?}");
    let frames = cpu.bodies_of_kind("cpu");
    let Some(Body::CpuInfo(info)) = frames.first() else {
        panic!("{what}: no cpu frame: {:?}", cpu.frames)
    };
    check_sources(&what, info, &expect);
    assert!(
        cpu.text.contains("from acpi-pm-timer"),
        "{what}: {}",
        cpu.text
    );

    let sleep = s.command("sleep 2000", t).unwrap();
    assert!(sleep.is_ok(), "{what}: {sleep:?}");
    let ms = sleep.elapsed.as_millis();
    assert!(
        (1_500..=2_500).contains(&ms),
        "{what}: `sleep 2000` took {ms} ms of host time (monitor tsc {} Hz from {})",
        banner.tsc_hz,
        banner.tsc_source
    );
    s.close().unwrap();
}

fn check_sources(what: &str, info: &CpuInfo, expect: &Expect) {
    assert_eq!(info.tsc_source, "acpi-pm-timer", "{what}: {info:?}");
    for (source, rejection) in expect.sources {
        let r = info
            .tsc_sources
            .iter()
            .find(|r| r.source == *source)
            .unwrap_or_else(|| panic!("{what}: no {source} in {:?}", info.tsc_sources));
        if *source == "pit" && rejection.is_empty() && r.rejection == "no-answer" {
            // A vCPU stalled longer than the PIT's 54.9 ms wrap (a loaded host) loses a
            // wrap, which the monitor rightly rejects; only then may the PIT give no rate.
            let window_ms = window_ms(info, "acpi-pm-timer");
            assert!(
                window_ms > 50,
                "{what}: PIT rejected in a {window_ms} ms window: {r:?}"
            );
            continue;
        }
        assert_eq!(r.rejection, *rejection, "{what}: {r:?}");
        if rejection.is_empty() {
            assert!(
                r.deviation_ppm.abs() <= AGREE_PPM,
                "{what}: {source} disagrees: {r:?}"
            );
        }
    }
}

/// The length of the counted window by a source's raw values ("N ticks of HZ Hz ...").
fn window_ms(info: &CpuInfo, source: &str) -> u64 {
    let raw = &info
        .tsc_sources
        .iter()
        .find(|r| r.source == source)
        .unwrap_or_else(|| panic!("no {source}: {info:?}"))
        .raw;
    let words: Vec<&str> = raw.split_whitespace().collect();
    let (Some(ticks), Some(hz)) = (
        words.first().and_then(|w| w.parse::<u64>().ok()),
        words.get(3).and_then(|w| w.parse::<u64>().ok()),
    ) else {
        panic!("unexpected raw values {raw:?}")
    };
    ticks * 1000 / hz.max(1)
}

#[test]
fn seabios_without_pit_or_hpet_keeps_host_time() {
    boot_and_check(
        false,
        "pc,pit=off,hpet=off",
        Expect {
            sources: &[
                ("acpi-pm-timer", ""),
                ("hpet", "absent"),
                ("pit", "no-answer"),
            ],
        },
    );
}

#[test]
fn ovmf_q35_without_pit_or_hpet_keeps_host_time() {
    boot_and_check(
        true,
        "q35,pit=off,hpet=off",
        Expect {
            sources: &[
                ("acpi-pm-timer", ""),
                ("hpet", "absent"),
                ("pit", "no-answer"),
            ],
        },
    );
}

#[test]
fn seabios_with_every_timer_cross_checks_them() {
    boot_and_check(
        false,
        "pc",
        Expect {
            sources: &[("acpi-pm-timer", ""), ("hpet", ""), ("pit", "")],
        },
    );
}

#[test]
fn ovmf_q35_with_every_timer_cross_checks_them() {
    boot_and_check(
        true,
        "q35",
        Expect {
            sources: &[("acpi-pm-timer", ""), ("hpet", ""), ("pit", "")],
        },
    );
}
