//! System test: with a VGA adapter and a PS/2 keyboard (QEMU with a display), the console is
//! mirrored to the VGA text screen and keys typed on the keyboard reach the prompt.
//! Needs target/bringup.img (`make image`; `make test` builds it first).

use std::time::{Duration, Instant};

use host_client::{QemuConfig, Session};
use serde_json::json;

/// The 80x25 VGA text screen as text (every other byte of 0xb8000 is a character).
fn screen(s: &mut Session, dir: &std::path::Path) -> String {
    let file = dir.join("vga.bin");
    s.qmp(
        "pmemsave",
        json!({ "val": 0xb8000, "size": 80 * 25 * 2, "filename": file.to_str().unwrap() }),
    )
    .unwrap();
    let cells = std::fs::read(&file).unwrap();
    cells
        .chunks(160)
        .map(|row| {
            row.iter()
                .step_by(2)
                .map(|&c| c as char)
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn type_keys(s: &mut Session, text: &str) {
    let keys: Vec<_> = text
        .chars()
        .map(|c| match c {
            ' ' => json!({ "type": "qcode", "data": "spc" }),
            '\n' => json!({ "type": "qcode", "data": "ret" }),
            c => json!({ "type": "qcode", "data": c.to_string() }),
        })
        .collect();
    for key in keys {
        s.qmp("send-key", json!({ "keys": [key] })).unwrap();
    }
}

#[test]
fn vga_mirror_and_ps2_keyboard() {
    let cfg = QemuConfig {
        qmp: true,
        // Appended last: overrides the default `-vga none` with a VGA-class function.
        extra_args: vec!["-vga".into(), "std".into()],
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));

    // The monitor writes each byte to COM1 before the VGA cell, so the serial prompt can be
    // seen a moment before the screen shows it (a loaded host deschedules QEMU's vCPU in
    // between): poll the screen rather than read it once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let boot_screen = loop {
        let now = screen(&mut s, dir.path());
        if now.lines().any(|row| row == "bringup>") || Instant::now() >= deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        boot_screen.contains("bringup monitor"),
        "banner not mirrored:\n{boot_screen}"
    );
    assert!(
        boot_screen.lines().any(|row| row == "bringup>"),
        "prompt not mirrored:\n{boot_screen}"
    );
    assert!(
        !boot_screen.contains("@@BU1"),
        "frames stay off the screen:\n{boot_screen}"
    );

    // Typed on the PS/2 keyboard, answered on the screen.
    type_keys(&mut s, "help dma\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = screen(&mut s, dir.path());
        if now.contains("usage: dma") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keyboard command never answered:\n{now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
