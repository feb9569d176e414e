//! System tests for issue 11 ("Ready for real hardware"), monitor side, on the real image
//! in QEMU (TCG): a `bar map` window survives the driver's teardown; NMIs are reported and
//! the monitor carries on (twice: a longjmp would leave NMIs blocked and lose the second);
//! a machine check is reported with its MCG/bank status and aborts the running command;
//! the identity map holds RAM only (the PCI hole and LAPIC/IOAPIC are reached through the
//! uncached window alone), under SeaBIOS and OVMF. Needs target/bringup.img (`make image`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evidence::Body;
use host_client::qmp::Qmp;
use host_client::{CommandOutcome, NvmeDrive, QemuConfig, Session};
use serde_json::{json, Value};

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

/// The values a `peek` read, from its reg.read frame (at the access width).
fn peeked_values(out: &CommandOutcome) -> Vec<u64> {
    let Some(Body::RegRead(r)) = out.bodies_of_kind("reg.read").first().cloned() else {
        panic!("no reg.read frame: {:?}", out.result)
    };
    r.values.clone()
}

/// CAP.MQES of the NVMe BAR0 mapped at `window` (QEMU: 0x7ff).
fn nvme_mqes(s: &mut Session, window: u64) -> u32 {
    let out = run(s, &format!("peek {window:#x} 8 --width 4"));
    assert!(out.is_ok(), "peek {window:#x}: {:?}", out.result);
    assert!(out.bodies_of_kind("fault").is_empty());
    (peeked_values(&out)[0] & 0xffff) as u32
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
    assert_eq!(nvme_mqes(&mut s, m.window), 0x7ff, "CAP.MQES of QEMU NVMe");
    // And the device binds again through the same window.
    assert!(run(&mut s, "nvme identify").is_ok());
}

/// A QEMU with its own QMP socket, so a helper thread can act while a command runs.
fn with_qmp_socket(dir: &tempfile::TempDir, mut cfg: QemuConfig) -> (QemuConfig, PathBuf) {
    let qmp = dir.path().join("events.qmp");
    cfg.extra_args.extend([
        "-qmp".to_string(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ]);
    (cfg, qmp)
}

fn qmp_client(path: &Path) -> Qmp {
    Qmp::connect(path, Duration::from_secs(10)).unwrap()
}

/// Waits until the transcript (after `from` bytes) contains `needle`.
fn wait_for_text(s: &mut Session, from: usize, needle: &str) {
    let deadline = Instant::now() + T;
    while !s.transcript()[from..].contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no '{needle}' in:\n{}",
            &s.transcript()[from..]
        );
        s.poll_output(Duration::from_millis(100)).unwrap();
    }
}

/// Runs `line` (a command that takes a while) while `act` runs on the QMP socket after
/// `delay`, from another thread. The margins (1.5 s into a 5 s sleep) are generous so a
/// loaded machine still delivers the event while the command runs.
fn during(
    s: &mut Session,
    qmp: &Path,
    line: &str,
    delay: Duration,
    act: impl FnOnce(&mut Qmp) + Send + 'static,
) -> CommandOutcome {
    let path = qmp.to_path_buf();
    let helper = std::thread::spawn(move || {
        let mut client = qmp_client(&path);
        std::thread::sleep(delay);
        act(&mut client);
    });
    let out = run(s, line);
    helper.join().unwrap();
    out
}

fn nmis(out: &CommandOutcome) -> Vec<evidence::Nmi> {
    out.bodies_of_kind("nmi")
        .into_iter()
        .map(|b| match b {
            Body::Nmi(n) => n.clone(),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn nmis_are_reported_and_the_monitor_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, qmp) = with_qmp_socket(&dir, QemuConfig::default());
    let mut s = boot(&cfg);

    // At the prompt: the line at once, the frame with the next command.
    let from = s.transcript().len();
    qmp_client(&qmp).execute("inject-nmi", Value::Null).unwrap();
    wait_for_text(&mut s, from, "*** NMI #1");
    let out = run(&mut s, "version");
    assert!(out.is_ok());
    let n = nmis(&out);
    assert_eq!(n.len(), 1, "{:?}", out.frames);
    assert_eq!((n[0].total, n[0].new, n[0].in_command), (1, 1, false));

    // During a command: the command finishes normally and reports it before its result.
    let out = during(
        &mut s,
        &qmp,
        "sleep 5000",
        Duration::from_millis(1500),
        |q| {
            q.execute("inject-nmi", Value::Null).unwrap();
        },
    );
    assert!(out.is_ok(), "{:?}", out.result);
    assert!(out.text.contains("slept"), "{}", out.text);
    let n = nmis(&out);
    assert_eq!(n.len(), 1, "{:?}", out.frames);
    assert_eq!((n[0].total, n[0].in_command), (2, true));

    // NMIs are not blocked afterwards (a longjmp out of the handler would block them).
    let from = s.transcript().len();
    qmp_client(&qmp).execute("inject-nmi", Value::Null).unwrap();
    wait_for_text(&mut s, from, "*** NMI #3");
    let out = run(&mut s, "version");
    assert_eq!(nmis(&out).first().map(|n| n.total), Some(3));
    assert!(s.damaged_frames().is_empty() && s.sequence_gaps().is_empty());
}

fn machine_checks(out: &CommandOutcome) -> Vec<evidence::MachineCheck> {
    out.bodies_of_kind("machine-check")
        .into_iter()
        .map(|b| match b {
            Body::MachineCheck(m) => m.clone(),
            _ => unreachable!(),
        })
        .collect()
}

/// HMP `mce cpu bank status mcg_status addr misc`: an uncorrected error (VAL|UC|EN|ADDRV)
/// in bank 1 with MCG_STATUS = RIPV|MCIP.
fn inject_mce(q: &mut Qmp, addr: u64) {
    let line = format!("mce 0 1 {MCI_STATUS:#x} 0x5 {addr:#x} 0x0");
    let reply = q
        .execute("human-monitor-command", json!({ "command-line": line }))
        .unwrap();
    assert_eq!(
        reply.as_str(),
        Some(""),
        "QEMU refused the injection: {reply}"
    );
}

const MCI_STATUS: u64 = 0xb400_0000_0000_0136;

#[test]
fn machine_checks_are_reported_cleared_and_abort_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, qmp) = with_qmp_socket(&dir, QemuConfig::default());
    let mut s = boot(&cfg);
    assert!(s.transcript().contains("machine checks reported"));

    // At the prompt, restartable: reported, and the monitor carries on.
    let from = s.transcript().len();
    inject_mce(&mut qmp_client(&qmp), 0x1234_5000);
    wait_for_text(&mut s, from, "*** machine check");
    let out = run(&mut s, "version");
    assert!(out.is_ok(), "{:?}", out.result);
    let m = machine_checks(&out);
    assert_eq!(m.len(), 1, "{:?}", out.frames);
    assert!(!m[0].in_command);
    assert_eq!(m[0].mcg_status & 0b101, 0b101, "RIPV|MCIP as injected");
    assert_eq!(m[0].banks.len(), 1);
    assert_eq!(
        (m[0].banks[0].bank, m[0].banks[0].status, m[0].banks[0].addr),
        (1, MCI_STATUS, 0x1234_5000)
    );

    // During a command: it is aborted with `machine-check`. MCIP was cleared after the
    // first one, or this second #MC would have reset the machine (a triple fault).
    let out = during(
        &mut s,
        &qmp,
        "sleep 5000",
        Duration::from_millis(1500),
        |q| inject_mce(q, 0x6789_0000),
    );
    assert_eq!(out.error_code(), Some("machine-check"), "{:?}", out.result);
    let m = machine_checks(&out);
    assert_eq!(m.len(), 1, "{:?}", out.frames);
    assert!(m[0].in_command);
    assert_eq!(m[0].banks[0].addr, 0x6789_0000);
    assert!(out.text.contains("MCG_STATUS 0x5"), "{}", out.text);
    assert_eq!(out.bodies_of_kind("fault").len(), 1);
    let after = run(&mut s, "version");
    assert!(after.is_ok());
    assert!(machine_checks(&after).is_empty(), "reported once");
}

/// `peek` that must be refused with a named error, touching nothing (no fault frame).
fn assert_not_mapped(s: &mut Session, addr: u64) {
    let out = run(s, &format!("peek {addr:#x} 16"));
    assert_eq!(
        out.error_code(),
        Some("unmapped-address"),
        "{addr:#x}: {:?}",
        out.result
    );
    assert!(
        out.bodies_of_kind("fault").is_empty(),
        "{addr:#x} was touched"
    );
}

fn assert_readable(s: &mut Session, addr: u64) {
    let out = run(s, &format!("peek {addr:#x} 16"));
    assert!(out.is_ok(), "peek {addr:#x}: {:?}", out.result);
}

fn identity_map_holds_ram_only(uefi: bool, machine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = nvme_cfg(&dir, uefi);
    cfg.machine = machine.into();
    let mut s = boot(&cfg);
    let banner = s.frames()[0].body.clone();
    let Body::Banner(banner) = banner else {
        panic!("first frame is not the banner: {banner:?}")
    };

    // LAPIC and IOAPIC: device registers, no longer readable through a write-back alias.
    assert_not_mapped(&mut s, 0xfee0_0000);
    assert_not_mapped(&mut s, 0xfec0_0000);
    // RAM stays: the image at 1 MiB, the DMA pool, the VGA text page (uncached).
    assert_readable(&mut s, 0x10_0000);
    assert_readable(&mut s, banner.dma_base);
    assert_readable(&mut s, 0xb_8000);

    let bdf = nvme_bdf(&mut s);
    let map = run(&mut s, &format!("bar map {bdf} 0"));
    let Some(Body::BarMapping(m)) = map.bodies_of_kind("bar.map").first().cloned() else {
        panic!("no bar.map frame: {:?}", map.result)
    };
    // The BAR through its uncached window reads NVMe CAP; its identity alias (when below
    // 4 GiB: SeaBIOS puts it in the PCI hole) is gone.
    assert_eq!(nvme_mqes(&mut s, m.window), 0x7ff);
    if m.phys < 1 << 32 {
        assert_not_mapped(&mut s, m.phys);
    }
    if machine == "q35" {
        // ECAM (0xb000_0000 on q35) is reached through the window only.
        assert!(s.transcript().contains("ECAM 0xb0000000"));
        assert_not_mapped(&mut s, 0xb000_0000);
        assert!(run(&mut s, "lspci").is_ok());
    }
    assert!(run(&mut s, "nvme identify").is_ok(), "DMA still works");
}

#[test]
fn identity_map_holds_ram_only_under_seabios() {
    identity_map_holds_ram_only(false, "pc");
}

#[test]
fn identity_map_holds_ram_only_under_ovmf() {
    identity_map_holds_ram_only(true, "q35");
}

/// The hex number after `marker` in `text`.
fn hex_after(text: &str, marker: &str) -> u64 {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no '{marker}' in:\n{text}"))
        + marker.len();
    let digits: String = text[start..]
        .trim_start_matches("0x")
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).unwrap()
}

#[test]
fn a_fault_inside_the_heap_allocator_poisons_the_heap_and_only_reset_runs() {
    let mut s = boot(&QemuConfig::default());
    // "main 0x...-0x... + 1 MiB reserve, allocator state at 0x..." on the platform line.
    let boot_text = s.transcript().to_string();
    let start = hex_after(&boot_text, ", main ");
    let end = hex_after(&boot_text, &format!("{start:#x}.."));
    let state = hex_after(&boot_text, "allocator state at ");
    // The allocator's state: a lock, the used count, the free-list head (a pointer into
    // the heap), the heap's bottom and top. The head is the one in-heap pointer that is
    // neither bound.
    let dump = run(&mut s, &format!("peek {state:#x} 80 --width 8"));
    assert!(dump.is_ok(), "{:?}", dump.result);
    let heads: Vec<(usize, u64)> = peeked_values(&dump)
        .into_iter()
        .enumerate()
        .filter(|(_, w)| *w > start && *w < end)
        .collect();
    assert_eq!(heads.len(), 1, "one free-list head in {dump:?}");
    let head_at = state + 8 * heads[0].0 as u64;
    // A wild write (the kind a debug monitor's user makes) breaks the free list: the next
    // allocation or free walks into unmapped memory, inside the allocator, lock held.
    let poke = run(
        &mut s,
        &format!("poke {head_at:#x} 0x700000000000 --width 8"),
    );
    assert_eq!(poke.error_code(), Some("cpu-fault"), "{:?}", poke.result);
    assert!(
        poke.error_message()
            .unwrap_or("")
            .contains("only 'reset' runs now"),
        "{:?}",
        poke.result
    );
    // The heap is not unlocked and reused: every command is refused by name...
    for line in ["version", "lspci", "dma"] {
        let out = run(&mut s, line);
        assert_eq!(
            out.error_code(),
            Some("heap-poisoned"),
            "{line}: {:?}",
            out.result
        );
    }
    // ...except reset, which still runs (on the reserve) and resets the machine (QEMU
    // runs with -no-reboot, so it exits).
    let from = s.transcript().len();
    s.send_raw(b"reset\r").unwrap();
    let deadline = Instant::now() + T;
    loop {
        match s.poll_output(Duration::from_millis(200)) {
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => panic!("no reset:\n{}", &s.transcript()[from..]),
            Err(_) => break,
        }
    }
    assert!(
        s.transcript()[from..].contains("resetting the machine"),
        "{}",
        &s.transcript()[from..]
    );
}
