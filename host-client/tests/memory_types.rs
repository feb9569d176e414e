//! One physical page, one memory type (issue 22), on the real image in QEMU (TCG):
//! `mem types` reads the live page-table entries back, so these tests check the entries
//! themselves: the VGA aperture uncached, RAM and the first MiB write-back, and no physical
//! page mapped with two types, under SeaBIOS/pc and OVMF/q35, also after `mem map` tried to
//! alias the BIOS area and after big-BAR map/unmap cycles. A 64 GiB ivshmem-plain BAR
//! (memory-backend-ram with reserve=off: nothing is allocated until written) stands in for
//! a GPU's BAR: part of it is mapped, and whole-BAR cycles reuse the window. The gVNIC and
//! NVMe teardown sequence of the issue keeps the user's window, not the driver's.
//! Needs target/bringup.img (`make image`).

use std::time::Duration;

use evidence::{Body, MemTypeRun, MemTypes};
use host_client::{CommandOutcome, GvnicOptions, NvmeDrive, QemuConfig, Session};

const T: Duration = Duration::from_secs(120);
/// ivshmem-plain's BAR2 (the shared memory): 64 GiB, 64-bit, prefetchable.
const BIG_BAR_BYTES: u64 = 64 << 30;
/// Whole-BAR map/unmap cycles: 64 of 64 GiB is 4 TiB of window, four times the old
/// bump-allocated 1 TiB.
const CYCLES: usize = 64;

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

fn ok(s: &mut Session, line: &str) -> CommandOutcome {
    let out = run(s, line);
    assert!(out.is_ok(), "{line}: {:?}", out.result);
    out
}

fn refused(s: &mut Session, line: &str, code: &str) -> CommandOutcome {
    let out = run(s, line);
    assert_eq!(out.error_code(), Some(code), "{line}: {:?}", out.result);
    out
}

fn frame<T>(out: &CommandOutcome, pick: impl Fn(&Body) -> Option<T>) -> T {
    out.frames
        .iter()
        .find_map(|f| pick(&f.body))
        .unwrap_or_else(|| panic!("no such frame after {}: {:?}", out.line, out.result))
}

fn mem_types(s: &mut Session, line: &str) -> MemTypes {
    let out = run(s, line);
    let types = frame(&out, |b| match b {
        Body::MemTypes(t) => Some(t.clone()),
        _ => None,
    });
    assert!(out.is_ok(), "{line}: {:?} {:?}", out.result, types.aliases);
    types
}

/// The run mapping physical `phys` at its own address (the identity map).
fn identity_run(types: &MemTypes, phys: u64) -> &MemTypeRun {
    types
        .runs
        .iter()
        .find(|r| r.identity && r.phys <= phys && phys < r.phys + r.len)
        .unwrap_or_else(|| panic!("{phys:#x} is not identity mapped: {:#x?}", types.runs))
}

/// Our own check of the frame's runs: no two overlap physically with different types.
fn assert_no_alias(types: &MemTypes) {
    assert_eq!(types.runs_left_off, 0, "every run is in the frame");
    for (i, a) in types.runs.iter().enumerate() {
        for b in &types.runs[i + 1..] {
            let overlap = a.phys < b.phys + b.len && b.phys < a.phys + a.len;
            assert!(
                !overlap || a.mem_type == b.mem_type,
                "physical alias: {a:x?} and {b:x?}"
            );
        }
    }
    assert!(types.aliases.is_empty(), "{:x?}", types.aliases);
}

/// The bdf of the first function whose lspci line contains `marker`.
fn bdf_of(s: &mut Session, marker: &str) -> String {
    let out = ok(s, "lspci");
    out.text
        .lines()
        .find(|l| l.contains(marker))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no '{marker}' in lspci:\n{}", out.text))
        .to_string()
}

fn bar_mapping(out: &CommandOutcome) -> evidence::BarMapping {
    frame(out, |b| match b {
        Body::BarMapping(m) => Some(m.clone()),
        _ => None,
    })
}

fn peeked(out: &CommandOutcome) -> Vec<u64> {
    frame(out, |b| match b {
        Body::RegRead(r) => Some(r.values.clone()),
        _ => None,
    })
}

fn big_bar_cfg(uefi: bool, machine: &str) -> QemuConfig {
    let mut extra_args: Vec<String> = [
        "-object",
        &format!("memory-backend-ram,id=bigbar,size={BIG_BAR_BYTES},reserve=off"),
        "-device",
        "ivshmem-plain,memdev=bigbar",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    if uefi {
        // OVMF's 64-bit PCI aperture defaults to 32 GiB; make room for the 64 GiB BAR.
        extra_args.extend(
            ["-fw_cfg", "name=opt/ovmf/X-PciMmio64Mb,string=262144"]
                .iter()
                .map(|a| a.to_string()),
        );
    }
    QemuConfig {
        uefi,
        machine: machine.into(),
        extra_args,
        ..QemuConfig::default()
    }
}

fn one_page_one_type(uefi: bool, machine: &str) {
    let mut s = boot(&big_bar_cfg(uefi, machine));

    // The page-table entries themselves: VGA uncached, the first MiB and RAM write-back.
    let all = mem_types(&mut s, "mem types");
    assert_no_alias(&all);
    assert_eq!(identity_run(&all, 0xb_8000).mem_type, "UC", "VGA text");
    assert_eq!(identity_run(&all, 0xa_0000).mem_type, "UC");
    assert_eq!(identity_run(&all, 0xb_ffff).mem_type, "UC");
    for wb in [0x0, 0x9_f000, 0xc_0000, 0xf_0000, 0x10_0000, 0x40_0000] {
        assert_eq!(identity_run(&all, wb).mem_type, "WB", "{wb:#x}");
    }
    let vga = mem_types(&mut s, "mem types 0xa0000 0x20000");
    assert!(!vga.runs.is_empty());
    assert!(vga.runs.iter().all(|r| r.mem_type == "UC"), "{vga:x?}");

    // The BIOS area is identity mapped write-back: served there, never aliased uncached.
    let out = refused(&mut s, "mem map 0xf0000 0x1000", "range-is-identity-mapped");
    assert!(out.text.contains("identity mapped WB"), "{}", out.text);
    refused(&mut s, "mem map 0xb8000 0x1000", "range-is-identity-mapped");
    let out = ok(&mut s, "peek 0xf0000 16 --phys");
    assert!(
        out.text.contains("through the identity map (WB)"),
        "{}",
        out.text
    );

    // Part of a 64 GiB BAR.
    let bdf = bdf_of(&mut s, "1af4:1110");
    let part = ok(&mut s, &format!("bar map {bdf} 2 0x400000000 0x200000"));
    let m = bar_mapping(&part);
    assert_eq!(m.size, BIG_BAR_BYTES);
    assert_eq!((m.offset, m.len), (0x4_0000_0000, 0x20_0000));
    let part_types = mem_types(
        &mut s,
        &format!("mem types {:#x} 0x200000", m.phys + 0x4_0000_0000),
    );
    assert_eq!(part_types.runs.len(), 1, "{part_types:x?}");
    assert_eq!(part_types.runs[0].mem_type, "UC");
    assert_eq!(part_types.runs[0].len, 0x20_0000, "just the part");
    ok(&mut s, &format!("poke {:#x} 0x5eed1e55", m.window + 0x1000));
    let back = ok(&mut s, &format!("peek {:#x} --width 4", m.window + 0x1000));
    assert_eq!(peeked(&back), [0x5eed_1e55], "the BAR's memory");
    refused(
        &mut s,
        &format!("bar map {bdf} 2 0x800 0x1000"),
        "bar-part-unaligned",
    );
    refused(
        &mut s,
        &format!("bar map {bdf} 2 {:#x} 0x2000", BIG_BAR_BYTES - 0x1000),
        "bar-part-outside",
    );
    refused(&mut s, &format!("bar map {bdf} 2 0x1000"), "usage");

    // Whole-BAR cycles reuse the window (and its page tables).
    let mut first_window = None;
    for cycle in 0..CYCLES {
        let out = s.command(&format!("bar map {bdf} 2"), T).unwrap();
        assert!(out.is_ok(), "cycle {cycle}: {:?}", out.result);
        let window = bar_mapping(&out).window;
        assert_eq!(*first_window.get_or_insert(window), window, "cycle {cycle}");
        let out = s.command(&format!("bar unmap {bdf} 2"), T).unwrap();
        assert!(out.is_ok(), "cycle {cycle}: {:?}", out.result);
    }
    refused(&mut s, &format!("bar unmap {bdf} 2"), "not-user-mapped");
    // The part is still there and still reads the BAR.
    let back = ok(&mut s, &format!("peek {:#x} --width 4", m.window + 0x1000));
    assert_eq!(peeked(&back), [0x5eed_1e55]);
    ok(&mut s, &format!("bar unmap {bdf} 2 0x400000000 0x200000"));
    refused(
        &mut s,
        &format!("peek {:#x} --width 4", m.window + 0x1000),
        "unmapped-address",
    );
    assert_no_alias(&mem_types(&mut s, "mem types"));
}

#[test]
fn one_page_one_type_under_seabios() {
    one_page_one_type(false, "pc");
}

#[test]
fn one_page_one_type_under_ovmf() {
    one_page_one_type(true, "q35");
}

/// The sequence: `gvnic describe`, `nvme identify`, `mem map` over the NVMe BAR,
/// `teardown gvnic`, `teardown nvme`. Before the fix the NVMe teardown released the user's
/// window (the first region covering its range after a reorder) and left the driver's.
#[test]
fn a_teardown_releases_the_drivers_window_and_keeps_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("nvme.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let cfg = QemuConfig {
        nvme: vec![NvmeDrive {
            path: disk,
            serial: "mem-types".into(),
        }],
        gvnic: Some(GvnicOptions::default()),
        ..QemuConfig::default()
    };
    let mut s = boot(&cfg);
    let nvme = bdf_of(&mut s, "[010802]");
    let info = frame(&ok(&mut s, &format!("lspci -v {nvme}")), |b| match b {
        Body::PciFunction(f) => Some(f.clone()),
        _ => None,
    });
    let bar0 = info
        .bars
        .iter()
        .find(|b| b.index == 0)
        .expect("BAR0")
        .clone();

    let gvnic = bdf_of(&mut s, "1ae0:0042");
    let gvnic_info = frame(&ok(&mut s, &format!("lspci -v {gvnic}")), |b| match b {
        Body::PciFunction(f) => Some(f.clone()),
        _ => None,
    });
    ok(&mut s, "gvnic describe");
    ok(&mut s, &format!("nvme identify {nvme}"));
    // The user's window covers the driver's (twice its size): a region of its own.
    let user_len = bar0.size * 2;
    let out = ok(
        &mut s,
        &format!("mem map {:#x} {user_len:#x}", bar0.address),
    );
    let user = frame(&out, |b| match b {
        Body::MemWindow(w) => Some(w.clone()),
        _ => None,
    });
    assert!(user.newly_mapped);
    let before = mem_types(
        &mut s,
        &format!("mem types {:#x} {:#x}", bar0.address, bar0.size),
    );
    assert_eq!(
        before.runs.len(),
        2,
        "the driver's and the user's: {before:x?}"
    );

    ok(&mut s, "teardown gvnic");
    for bar in gvnic_info
        .bars
        .iter()
        .filter(|b| b.memory && b.address != 0)
    {
        let left = mem_types(
            &mut s,
            &format!("mem types {:#x} {:#x}", bar.address, bar.size),
        );
        // Only the user's window may still map it (when it happens to cover the BAR).
        let users = user.window..user.window + user_len;
        assert!(
            left.runs.iter().all(|r| users.contains(&r.virt)),
            "gVNIC BAR{} still mapped by the driver: {left:x?}",
            bar.index
        );
    }
    ok(&mut s, "teardown nvme");
    let after = mem_types(
        &mut s,
        &format!("mem types {:#x} {:#x}", bar0.address, bar0.size),
    );
    assert_eq!(after.runs.len(), 1, "only the user's window: {after:x?}");
    assert_eq!(after.runs[0].virt, user.window);
    // The user's window still reads NVMe CAP.MQES (QEMU: 0x7ff).
    let cap = ok(&mut s, &format!("peek {:#x} --width 4", user.window));
    assert_eq!(peeked(&cap)[0] & 0xffff, 0x7ff);

    ok(
        &mut s,
        &format!("mem unmap {:#x} {user_len:#x}", bar0.address),
    );
    let gone = mem_types(
        &mut s,
        &format!("mem types {:#x} {:#x}", bar0.address, bar0.size),
    );
    assert!(gone.runs.is_empty(), "{gone:x?}");
}
