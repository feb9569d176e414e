//! System tests for issue 11 ("Ready for real hardware"), monitor side, on the real image
//! in QEMU (TCG): a `bar map` window survives the driver's teardown; NMIs are reported and
//! the monitor carries on (twice: a longjmp would leave NMIs blocked and lose the second);
//! a machine check is reported with its MCG/bank status and aborts the running command;
//! the identity map holds RAM only (the PCI hole and LAPIC/IOAPIC are reached through the
//! uncached window alone), under SeaBIOS and OVMF. Needs target/bringup.img (`make image`).

use std::time::Duration;

use evidence::Body;
use host_client::{CommandOutcome, NvmeDrive, QemuConfig, Session};

const T: Duration = Duration::from_secs(60);

fn boot(cfg: &QemuConfig) -> Session {
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    s
}

fn run(s: &mut Session, line: &str) -> CommandOutcome {
    let out = s.command(line, T).unwrap();
    eprintln!("bringup> {line}\n{}", out.text.trim_end());
    out
}

/// The bytes of a `peek` hexdump (the 16 hex columns after the address).
fn peeked(out: &CommandOutcome) -> Vec<u8> {
    out.text
        .lines()
        .filter(|l| l.len() > 18 && l.as_bytes()[16] == b' ')
        .flat_map(|l| {
            l.split_whitespace()
                .skip(1)
                .take_while(|w| w.len() == 2)
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn nvme_cfg(dir: &tempfile::TempDir, uefi: bool) -> QemuConfig {
    let disk = dir.path().join("nvme.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    QemuConfig {
        uefi,
        qmp: true,
        nvme: vec![NvmeDrive {
            path: disk,
            serial: "hw-ready".into(),
        }],
        ..QemuConfig::default()
    }
}

/// The NVMe function's bdf, from `lspci`.
fn nvme_bdf(s: &mut Session) -> String {
    let out = run(s, "lspci");
    out.text
        .lines()
        .find(|l| l.contains("[010802]"))
        .and_then(|l| l.split_whitespace().next())
        .expect("an NVMe function in lspci")
        .to_string()
}

#[test]
fn teardown_keeps_the_window_of_a_bar_map() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = boot(&nvme_cfg(&dir, false));
    let bdf = nvme_bdf(&mut s);
    // The driver maps BAR0 first, then the user maps the same BAR: one shared window.
    assert!(run(&mut s, "nvme identify").is_ok());
    let map = run(&mut s, &format!("bar map {bdf} 0"));
    let Some(Body::BarMapping(m)) = map.bodies_of_kind("bar.map").first().cloned() else {
        panic!("no bar.map frame: {:?}", map.result)
    };
    assert!(!m.newly_mapped, "the driver's window is shared");
    let down = run(&mut s, "teardown nvme");
    assert!(down.is_ok(), "{:?}", down.result);
    // The user's window is still there: CAP reads as QEMU's NVMe CAP, no page fault.
    let peek = run(&mut s, &format!("peek {:#x} 16", m.window));
    assert!(peek.is_ok(), "peek after teardown: {:?}", peek.result);
    assert!(peek.bodies_of_kind("fault").is_empty());
    let bytes = peeked(&peek);
    let cap = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
    assert_eq!(cap & 0xffff, 0x7ff, "CAP.MQES of QEMU NVMe");
    // And the device binds again through the same window.
    assert!(run(&mut s, "nvme identify").is_ok());
}
