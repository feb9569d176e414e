//! System test: the real image boots under SeaBIOS and OVMF with no display adapter, reaches
//! the prompt, survives bad input, and every frame is accounted for.
//! Needs target/bringup.img (`make image`; `make test` builds it first).

use std::collections::BTreeMap;
use std::time::Duration;

use evidence::{Body, Firmware};
use host_client::{QemuConfig, Session};

fn config(uefi: bool) -> QemuConfig {
    let cfg = QemuConfig {
        uefi,
        qmp: true,
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image` first (`make test` builds it)"
    );
    cfg
}

/// Deterministic pseudo-random bytes (xorshift), so a failure can be replayed.
fn garbage(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn boot_and_abuse(uefi: bool) {
    let mut s = Session::start_qemu(&config(uefi)).unwrap();
    let boot = s
        .wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\nQEMU said: {}", s.qemu_stderr()));
    eprintln!(
        "{}: banner after {:?}, prompt after {:?}",
        if uefi { "OVMF" } else { "SeaBIOS" },
        boot.banner_after,
        boot.prompt_after
    );
    let b = &boot.banner;
    assert_eq!(
        b.firmware,
        if uefi { Firmware::Uefi } else { Firmware::Bios }
    );
    assert_eq!(b.format_version, evidence::FORMAT_VERSION);
    assert_eq!(b.version, env!("CARGO_PKG_VERSION"), "workspace version");
    assert!(
        b.memory_bytes > 256 << 20 && b.memory_bytes <= 512 << 20,
        "memory {}",
        b.memory_bytes
    );
    assert!(
        b.dma_bytes > 0 && b.dma_base + b.dma_bytes <= 1 << 32,
        "DMA pool below 4 GiB"
    );

    // No display adapter: QEMU itself says there is no VGA-class function.
    let pci = s.qmp("query-pci", serde_json::Value::Null).unwrap();
    let classes: Vec<u64> = pci[0]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["class_info"]["class"].as_u64().unwrap())
        .collect();
    assert!(
        !classes.iter().any(|c| c >> 8 == 0x03),
        "display class present: {classes:x?}"
    );

    let t = Duration::from_secs(60);
    let help = s.command("help", t).unwrap();
    assert!(help.is_ok(), "{help:?}");
    assert!(
        help.text.contains("version") && help.text.contains("lspci"),
        "{}",
        help.text
    );

    let version = s.command("version", t).unwrap();
    assert!(version.is_ok());
    assert!(
        version.text.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        version.text
    );

    let typo = s.command("lsppci", t).unwrap();
    assert_eq!(typo.error_code(), Some("unknown-command"));
    assert!(
        typo.text
            .contains("error: unknown command 'lsppci' (did you mean 'lspci'?)"),
        "{}",
        typo.text
    );

    // A wild read inside a command: the page fault aborts that command (a Fault frame, one
    // error result) and the monitor returns to the prompt.
    let wild = 0x0dea_d000_0000_u64;
    let fault = s
        .command(&format!("peek {wild:#x} 8 --no-check"), t)
        .unwrap();
    assert_eq!(fault.error_code(), Some("cpu-fault"), "{}", fault.text);
    let faults = fault.bodies_of_kind("fault");
    let Some(Body::Fault(f)) = faults.first() else {
        panic!("no fault frame: {:?}", fault.frames)
    };
    assert_eq!(
        (f.vector, f.address, f.recovered),
        (14, wild, true),
        "{f:?}"
    );
    let after = s.command("version", t).unwrap();
    assert!(
        after.is_ok(),
        "the monitor must survive the fault: {after:?}"
    );

    // Over the line limit (512 bytes), and far over the editor's input budget: both are
    // refused with one named error, never run truncated.
    for len in [600, 4096] {
        let long = s.command(&"x".repeat(len), t).unwrap();
        assert_eq!(
            long.error_code(),
            Some("line-too-long"),
            "a {len}-byte line must be refused: {:?}",
            long.result
        );
    }

    // Control bytes (no CR/LF/Ctrl-C), then invalid UTF-8 on a line of its own.
    s.send_raw(
        b"\x01\x02\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x12\x14\x15\x17\x19\x1a\x1b[Z\x1bOP\x7f",
    )
    .unwrap();
    s.resync(t).unwrap();
    s.send_raw(b"\xff\xfe\xc3(\xe2\x82 ver\xf0\x9f\r").unwrap();
    s.resync(t).unwrap();
    // 64 KiB of random bytes.
    s.send_raw(&garbage(
        64 * 1024,
        if uefi { 0x5eed_0001 } else { 0x5eed_0002 },
    ))
    .unwrap();
    s.resync(Duration::from_secs(240)).unwrap();

    let again = s.command("version", t).unwrap();
    assert!(again.is_ok(), "{again:?}");

    check_frames(&s);
}

fn check_frames(s: &Session) {
    assert!(
        s.damaged_frames().is_empty(),
        "damaged: {:#?}",
        s.damaged_frames()
    );
    assert!(
        s.sequence_gaps().is_empty(),
        "gaps: {:#?}",
        s.sequence_gaps()
    );
    assert!(
        s.frame_log().foreign().is_empty(),
        "foreign: {:#?}",
        s.frame_log().foreign()
    );
    let frames = s.frames();
    assert!(matches!(frames[0].body, Body::Banner(_)) && frames[0].seq == 0);
    assert!(
        frames.iter().all(|f| f.boot_id == frames[0].boot_id),
        "one boot"
    );
    // Per command: exactly one start, then exactly one result, numbers 1, 2, 3, ...
    let mut per_cmd: BTreeMap<u32, Vec<&'static str>> = BTreeMap::new();
    for f in frames.iter().filter(|f| f.cmd != 0) {
        match &f.body {
            Body::CommandStart(_) => per_cmd.entry(f.cmd).or_default().push("start"),
            Body::CommandResult(_) => per_cmd.entry(f.cmd).or_default().push("result"),
            _ => per_cmd.entry(f.cmd).or_default().push("other"),
        }
    }
    let numbers: Vec<u32> = per_cmd.keys().copied().collect();
    assert_eq!(
        numbers,
        (1..=numbers.len() as u32).collect::<Vec<_>>(),
        "command numbers"
    );
    for (cmd, seq) in &per_cmd {
        assert_eq!(seq.first(), Some(&"start"), "command {cmd}: {seq:?}");
        assert_eq!(seq.last(), Some(&"result"), "command {cmd}: {seq:?}");
        assert_eq!(
            seq.iter().filter(|k| **k == "result").count(),
            1,
            "command {cmd}: {seq:?}"
        );
        assert_eq!(
            seq.iter().filter(|k| **k == "start").count(),
            1,
            "command {cmd}: {seq:?}"
        );
    }
    assert!(
        per_cmd.len() >= 6,
        "help, version, lsppci, long line, bad input, version"
    );
}

#[test]
fn boots_under_seabios_and_survives_bad_input() {
    boot_and_abuse(false);
}

#[test]
fn boots_under_ovmf_and_survives_bad_input() {
    boot_and_abuse(true);
}
