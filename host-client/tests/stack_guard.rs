//! System test: the page below the monitor's boot stack is not mapped, so a stack overflow
//! faults (and a command that hits it is aborted back to the prompt) instead of silently
//! rewriting the boot page tables that lie below the stack. The boot `platform:` line names
//! the guard page; reading it must page-fault, reading the stack just above it must not.
//! Needs target/bringup.img (`make image`; `make test` builds it first).

use std::time::Duration;

use evidence::Body;
use host_client::{QemuConfig, Session};

/// The address after `stack guard ` in the boot transcript.
fn guard_address(transcript: &str) -> u64 {
    let marker = "stack guard 0x";
    let start = transcript
        .find(marker)
        .unwrap_or_else(|| panic!("no '{marker}' in the boot output:\n{transcript}"))
        + marker.len();
    let digits: String = transcript[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).unwrap()
}

#[test]
fn reading_the_stack_guard_page_faults_and_the_stack_above_it_does_not() {
    let cfg = QemuConfig::default();
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    let guard = guard_address(s.transcript());
    assert!(
        guard.is_multiple_of(4096) && (1 << 20..1 << 32).contains(&guard),
        "guard {guard:#x} should be a page inside the image, loaded at 1 MiB"
    );

    let t = Duration::from_secs(60);
    let fault = s
        .command(&format!("peek {guard:#x} 8 --no-check"), t)
        .unwrap();
    assert_eq!(fault.error_code(), Some("cpu-fault"), "{}", fault.text);
    let faults = fault.bodies_of_kind("fault");
    let Some(Body::Fault(f)) = faults.first() else {
        panic!("no fault frame: {:?}", fault.frames)
    };
    assert_eq!(
        (f.vector, f.address, f.recovered),
        (14, guard, true),
        "{f:?}"
    );
    // Not present (error code bit 0 clear), a read (bit 1 clear).
    assert_eq!(f.error_code & 0b11, 0, "{f:?}");

    let after = s.command("version", t).unwrap();
    assert!(
        after.is_ok(),
        "the monitor must survive the fault: {after:?}"
    );

    // Without --no-check the page tables are consulted first: the guard is a named error.
    let checked = s.command(&format!("peek {guard:#x} 8"), t).unwrap();
    assert_eq!(
        checked.error_code(),
        Some("unmapped-address"),
        "{}",
        checked.text
    );
    assert!(checked.bodies_of_kind("fault").is_empty(), "{checked:?}");

    // The lowest page of the stack itself, and the last bytes of the guard's neighbour
    // below (the boot page tables), stay mapped: only the guard page is taken out.
    for addr in [guard + 4096, guard - 8] {
        let peek = s.command(&format!("peek {addr:#x} 8"), t).unwrap();
        assert!(peek.is_ok(), "peek {addr:#x}: {peek:?}");
        assert!(peek.bodies_of_kind("fault").is_empty(), "{peek:?}");
    }
}
