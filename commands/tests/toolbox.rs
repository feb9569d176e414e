//! The toolbox commands (issue 13) on the bare test machine: widths, alignment, named
//! errors for bad input, readback, and the frames every read and write emits.

mod support;

use commands::Shell;
use drivers::dma::testing::leaked_pool;
use drivers::platform::Hw;
use evidence::{Body, Frame, Outcome, RegRead, RegWrite};
use std::cell::Cell;
use support::bare_machine::{
    system_info, Captured, FakeCpu, FakePorts, NoMmio, NoPci, SmallMemory, StepClock, DEVICE_WINDOW,
};
use support::fake_firmware::{self, FakeFirmware};

struct Run {
    text: String,
    frames: Vec<Frame>,
}

impl Run {
    fn outcome(&self, cmd: u32) -> &Outcome {
        self.frames
            .iter()
            .filter(|f| f.cmd == cmd)
            .find_map(|f| match &f.body {
                Body::CommandResult(r) => Some(&r.outcome),
                _ => None,
            })
            .expect("a result frame")
    }
    fn code(&self, cmd: u32) -> &str {
        match self.outcome(cmd) {
            Outcome::Ok => "ok",
            Outcome::Error { code, .. } => code,
        }
    }
    fn reads(&self, cmd: u32) -> Vec<&RegRead> {
        self.frames
            .iter()
            .filter(|f| f.cmd == cmd)
            .filter_map(|f| match &f.body {
                Body::RegRead(r) => Some(r),
                _ => None,
            })
            .collect()
    }
    fn writes(&self, cmd: u32) -> Vec<&RegWrite> {
        self.frames
            .iter()
            .filter(|f| f.cmd == cmd)
            .filter_map(|f| match &f.body {
                Body::RegWrite(w) => Some(w),
                _ => None,
            })
            .collect()
    }
    fn bodies(&self, cmd: u32) -> Vec<&Body> {
        self.frames
            .iter()
            .filter(|f| f.cmd == cmd)
            .map(|f| &f.body)
            .collect()
    }
}

struct Machine {
    memory: SmallMemory,
    cpu: FakeCpu,
    ports: FakePorts,
    firmware: Option<FakeFirmware>,
}

fn run_on(machine: &Machine, lines: &[&str]) -> Run {
    let (mut pool, _) = leaked_pool(0x10_0000, 16 * 4096);
    let clock = StepClock(Cell::new(0));
    let mut mmio = NoMmio;
    let mut hw = Hw {
        config: &NoPci,
        mmio: &mut mmio,
        clock: &clock,
        dma: &mut pool,
        memory: &machine.memory,
        cpu: &machine.cpu,
        ports: &machine.ports,
        firmware: match &machine.firmware {
            Some(fw) => fw,
            None => &drivers::platform::NoFirmware,
        },
        irq: &drivers::platform::NoInterrupts,
    };
    let mut shell = Shell::new(7, system_info(16 * 4096));
    let mut console = Captured::default();
    for line in lines {
        shell.execute(line, &mut hw, &mut console, || 0);
    }
    let frames = console
        .0
        .lines()
        .filter(|l| l.contains(evidence::MARKER))
        .map(|l| evidence::decode_line(l).unwrap())
        .collect();
    Run {
        text: console.0,
        frames,
    }
}

fn machine() -> Machine {
    Machine {
        memory: SmallMemory::default(),
        cpu: FakeCpu::default(),
        ports: FakePorts::default(),
        firmware: Some(FakeFirmware::qemu(2)),
    }
}

fn run(lines: &[&str]) -> Run {
    run_on(&machine(), lines)
}

#[test]
fn peek_of_device_registers_uses_the_register_width_once() {
    let m = machine();
    let vs = format!("peek {:#x} --width 4", DEVICE_WINDOW + 8);
    let status = format!("peek {:#x}", DEVICE_WINDOW + 0x10);
    let r = run_on(&m, &[&vs, &status]);
    assert_eq!(r.code(1), "ok", "{}", r.text);
    assert_eq!(r.reads(1)[0].values, [0x0001_0400]);
    assert_eq!(r.reads(1)[0].width, 4);
    assert!(r.text.contains("00010400"), "{}", r.text);
    // Device memory defaults to one access of width 4: the read-to-clear status is hit once.
    assert_eq!(r.code(2), "ok");
    assert_eq!(r.reads(2)[0].width, 4);
    assert_eq!(r.reads(2)[0].count, 1);
    assert_eq!(m.memory.status_reads.get(), 1);
}

#[test]
fn peek_widths_on_ram_and_a_long_read_keeps_its_frame_small() {
    let r = run(&["peek 0x1000 8 --width 2", "peek 0x1000 256"]);
    assert_eq!(r.reads(1)[0].values, [0x0100, 0x0302, 0x0504, 0x0706]);
    assert!(
        r.text.contains("0000000000001000  0100 0302 0504 0706"),
        "{}",
        r.text
    );
    let long = r.reads(2)[0];
    assert_eq!((long.count, long.values.len()), (256, 16));
}

#[test]
fn bad_memory_input_gets_named_errors_and_the_next_command_works() {
    let r = run(&[
        "peek 0x5000",
        "peek 0x1001 4 --width 4",
        "peek 0x1000 --width 3",
        "peek 0x1000 6 --width 4",
        "peek 0x800000000000",
        "poke 0x1000 0x100 --width 1",
        "poke 0x0f00 1",
        "poke 0x1002 1 --width 4",
        "peek 0x10f8 16",
        "version",
    ]);
    let codes: Vec<&str> = (1..=10).map(|c| r.code(c)).collect();
    assert_eq!(
        codes,
        [
            "unmapped-address",
            "unaligned-address",
            "bad-width",
            "bad-argument",
            "bad-address",
            "value-too-wide",
            "read-only-address",
            "unaligned-address",
            "unmapped-address",
            "ok"
        ],
        "{}",
        r.text
    );
}

#[test]
fn poke_reads_back_and_frames_before_value_readback() {
    let r = run(&[
        "poke 0x1010 0xdeadbeef",
        "peek 0x1010 4 --width 4",
        "poke 0x1020 0x1234567890abcdef --width 8",
    ]);
    assert_eq!(r.code(1), "ok", "{}", r.text);
    let w = r.writes(1)[0];
    assert_eq!((w.space.as_str(), w.address, w.width), ("mem", 0x1010, 4));
    assert_eq!(
        (w.before, w.value, w.readback),
        (0x1312_1110, 0xdead_beef, 0xdead_beef)
    );
    assert!(
        r.text
            .contains("was 0x13121110, wrote 0xdeadbeef, reads back 0xdeadbeef"),
        "{}",
        r.text
    );
    assert_eq!(r.reads(2)[0].values, [0xdead_beef]);
    assert_eq!(r.writes(3)[0].readback, 0x1234_5678_90ab_cdef);
}

#[test]
fn pci_config_access_checks_offsets_widths_and_functions() {
    // NoPci: legacy-sized (256 bytes) and empty.
    let r = run(&[
        "pci read 00:04.0 0",
        "pci read 00:04.0 0x100",
        "pci read 00:04.0 0x02 --width 4",
        "pci read 00:04.0 0 --width 8",
        "pci write 00:04.0 0x04 0x7 --width 2",
        "pci write 00:04.0 0x04 0x10000 --width 2",
        "pci read 0:0",
    ]);
    assert_eq!(r.code(1), "ok");
    assert_eq!(
        r.reads(1)[0].values,
        [0xffff_ffff],
        "a missing function reads all ones"
    );
    assert_eq!(r.reads(1)[0].target, "00:04.0");
    assert_eq!(r.code(2), "offset-out-of-range");
    assert!(r.text.contains("need ECAM"), "{}", r.text);
    assert_eq!(r.code(3), "unaligned-offset");
    assert_eq!(r.code(4), "bad-width");
    assert_eq!(r.code(5), "no-such-function");
    assert_eq!(r.code(6), "value-too-wide");
    assert_eq!(r.code(7), "usage");
}

#[test]
fn io_ports_read_write_and_range() {
    let m = machine();
    let r = run_on(
        &m,
        &[
            "io out 0x70 0x04",
            "io in 0x71",
            "io in 0x10000",
            "io in 0xffff --width 2",
            "io in 0x71 --width 2",
            "io out 0x80 0x100",
            "io out 0x3f8 0x41 --no-readback",
        ],
    );
    assert_eq!(r.code(1), "ok", "{}", r.text);
    let w = r.writes(1)[0];
    assert_eq!(
        (w.space.as_str(), w.address, w.value, w.readback),
        ("io", 0x70, 4, 0xff)
    );
    assert_eq!(
        r.reads(2)[0].values,
        [0x14],
        "the RTC register the index selected"
    );
    assert_eq!(r.code(3), "port-out-of-range");
    assert_eq!(r.code(4), "port-out-of-range");
    assert_eq!(r.code(5), "unaligned-port");
    assert_eq!(r.code(6), "value-too-wide");
    assert_eq!(r.code(7), "ok");
    assert_eq!(m.ports.last_write.get(), Some((0x3f8, 0x41)));
    assert!(r.text.contains("not read back"));
}

#[test]
fn msr_reads_writes_and_general_protection() {
    let r = run(&[
        "msr read 0x1b",
        "msr read 0xdead",
        "msr write 0x277 0x0606",
        "msr write 0x10 1",
        "msr read 0x1_0000_0000",
    ]);
    assert_eq!(r.code(1), "ok");
    assert_eq!(r.reads(1)[0].values, [0xfee0_0900]);
    assert!(
        r.text.contains("APIC base 0xfee00000, BSP, enabled"),
        "{}",
        r.text
    );
    assert_eq!(r.code(2), "msr-gp");
    assert_eq!(r.code(3), "ok");
    let w = r.writes(3)[0];
    assert_eq!(
        (w.before, w.value, w.readback),
        (0x0007_0406_0007_0406, 0x0606, 0x0606)
    );
    assert_eq!(r.code(4), "msr-gp");
    assert_eq!(r.code(5), "bad-argument");
}

#[test]
fn cpuid_and_cpu_name_vendor_and_hypervisor() {
    let r = run(&["cpuid 0", "cpu", "cpuid 0x1_0000_0000"]);
    assert!(r.text.contains("\"GenuineIntel\""), "{}", r.text);
    assert!(matches!(r.bodies(1)[1], Body::Cpuid(c) if c.leaf == 0 && c.eax == 0xd));
    let Some(Body::CpuInfo(cpu)) = r
        .bodies(2)
        .into_iter()
        .find(|b| matches!(b, Body::CpuInfo(_)))
    else {
        panic!("no cpu frame")
    };
    assert_eq!(cpu.vendor, "GenuineIntel");
    assert_eq!(cpu.hypervisor, "KVMKVMKVM");
    assert_eq!(cpu.features, ["sse4.2"]);
    assert_eq!(cpu.tsc_hz, 2_400_000_000);
    assert!(
        r.text.contains("TSC 2400.000 MHz from cpuid-40000010h"),
        "{}",
        r.text
    );
    assert_eq!(cpu.tsc_source, "cpuid-40000010h");
    let sources: Vec<(&str, &str)> = cpu
        .tsc_sources
        .iter()
        .map(|s| (s.source.as_str(), s.rejection.as_str()))
        .collect();
    assert_eq!(
        sources,
        [
            ("cpuid-40000010h", ""),
            ("acpi-pm-timer", ""),
            ("pit", "no-answer")
        ]
    );
    assert!(cpu.tsc_sources[1].deviation_ppm.abs() < 100, "{cpu:?}");
    assert_eq!(r.code(3), "bad-argument");
}

#[test]
fn every_toolbox_command_has_help_with_an_example() {
    let names = [
        "peek",
        "poke",
        "mem map",
        "pci read",
        "pci write",
        "io in",
        "io out",
        "msr read",
        "msr write",
        "cpuid",
        "cpu",
    ];
    let lines: Vec<String> = names.iter().map(|n| format!("help {n}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let r = run(&refs);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(r.code(i as u32 + 1), "ok", "help {name}");
    }
    assert!(
        r.text.contains("examples:\r\n  poke 0x200000 0xdeadbeef"),
        "{}",
        r.text
    );
}

fn body_of<'a, T>(r: &'a Run, cmd: u32, pick: impl Fn(&'a Body) -> Option<&'a T>) -> Vec<&'a T> {
    r.bodies(cmd).into_iter().filter_map(pick).collect()
}

#[test]
fn acpi_lists_every_table_with_its_checksum() {
    let r = run(&["acpi"]);
    assert_eq!(r.code(1), "ok", "{}", r.text);
    let tables = body_of(&r, 1, |b| match b {
        Body::AcpiTable(t) => Some(t),
        _ => None,
    });
    let sigs: Vec<(&str, u64, bool)> = tables
        .iter()
        .map(|t| (t.signature.as_str(), t.phys, t.checksum_ok))
        .collect();
    assert_eq!(
        sigs,
        [
            ("XSDT", fake_firmware::XSDT, true),
            ("FACP", fake_firmware::FACP, true),
            ("APIC", fake_firmware::APIC, true),
            ("MCFG", fake_firmware::MCFG, true),
            ("HPET", fake_firmware::HPET, true),
            ("BADT", fake_firmware::BADT, false),
            ("DSDT", fake_firmware::DSDT, true),
        ]
    );
    assert_eq!(
        (
            tables[1].oem_id.as_str(),
            tables[1].revision,
            tables[1].length
        ),
        ("BOCHS", 6, 276)
    );
    assert!(
        r.text
            .contains("BADT at 0x07fe5000,     40 bytes, rev 1, OEM BOCHS   checksum BAD"),
        "{}",
        r.text
    );
}

#[test]
fn acpi_decodes_madt_mcfg_fadt_hpet_and_dumps_the_rest() {
    let r = run(&[
        "acpi APIC",
        "acpi mcfg",
        "acpi FADT",
        "acpi HPET",
        "acpi DSDT",
        "acpi SSDT",
        "acpi TOOLONG",
    ]);
    let madt = body_of(&r, 1, |b| match b {
        Body::AcpiMadt(m) => Some(m),
        _ => None,
    });
    assert_eq!(madt[0].local_apic_address, 0xfee0_0000);
    assert_eq!(
        madt[0]
            .cpus
            .iter()
            .map(|c| (c.apic_id, c.enabled))
            .collect::<Vec<_>>(),
        [(0, true), (1, true)]
    );
    assert_eq!(
        (madt[0].ioapics[0].address, madt[0].ioapics[0].gsi_base),
        (0xfec0_0000, 0)
    );
    assert_eq!((madt[0].overrides[0].irq, madt[0].overrides[0].gsi), (0, 2));
    let mcfg = body_of(&r, 2, |b| match b {
        Body::AcpiMcfg(m) => Some(m),
        _ => None,
    });
    let seg = &mcfg[0].segments[0];
    assert_eq!(
        (seg.segment, seg.base, seg.bus_start, seg.bus_end),
        (0, 0xb000_0000, 0, 0xff)
    );
    let fadt = body_of(&r, 3, |b| match b {
        Body::AcpiFadt(f) => Some(f),
        _ => None,
    })[0];
    assert_eq!(
        (
            fadt.pm_timer_space,
            fadt.pm_timer_address,
            fadt.pm_timer_32bit
        ),
        (1, 0x608, true)
    );
    assert_eq!(
        (
            fadt.reset_supported,
            fadt.reset_space,
            fadt.reset_address,
            fadt.reset_value
        ),
        (true, 1, 0xcf9, 6)
    );
    assert_eq!((fadt.century, fadt.sci_interrupt), (0x32, 9));
    assert!(
        r.text
            .contains("reset register io 0xcf9 value 0x06 (supported)"),
        "{}",
        r.text
    );
    let hpet = body_of(&r, 4, |b| match b {
        Body::AcpiHpet(h) => Some(h),
        _ => None,
    })[0];
    assert_eq!(
        (hpet.base, hpet.block_id, hpet.min_tick),
        (0xfed0_0000, 0x8086_a201, 0x80)
    );
    assert_eq!(r.code(5), "ok");
    assert!(
        r.text.contains("0000000007fe6020  01 00 00 00 10 05 5c 00"),
        "{}",
        r.text
    );
    assert_eq!(r.code(6), "no-such-table");
    assert_eq!(r.code(7), "bad-argument");
}

#[test]
fn broken_or_missing_acpi_is_a_named_error() {
    let mut m = machine();
    m.firmware.as_mut().unwrap().break_madt_chain();
    let r = run_on(&m, &["acpi APIC", "acpi"]);
    assert_eq!(r.code(1), "acpi-malformed", "{}", r.text);
    assert_eq!(r.code(2), "ok");
    m.firmware = None;
    let r = run_on(&m, &["acpi", "acpi APIC", "memmap"]);
    assert_eq!(
        (r.code(1), r.code(2), r.code(3)),
        ("no-acpi", "no-acpi", "ok")
    );
}

#[test]
fn memmap_totals_and_placement() {
    let r = run(&["memmap"]);
    assert_eq!(r.code(1), "ok", "{}", r.text);
    let maps = body_of(&r, 1, |b| match b {
        Body::MemoryMap(m) => Some(m),
        _ => None,
    });
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].entries.len(), 6);
    assert_eq!(maps[0].usable_bytes, 0x9_fc00 + 0x7ee_0000);
    assert_eq!(maps[0].entries[4].kind, "acpi-reclaimable");
    assert_eq!(maps[0].dma, (0x3c00_0000, 0x4000_0000));
    assert!(
        r.text
            .contains("  dma pool  0x3c000000-0x3fffffff    64 MiB"),
        "{}",
        r.text
    );
}

#[test]
fn mem_map_refuses_ram_and_reports_a_failed_mapping() {
    let r = run(&[
        "mem map 0x200000 0x1000",
        "mem map 0xfee00000 0x1000",
        "mem map 0xfee00000 0",
        "mem map 0xfee00000 0x20000000",
    ]);
    assert_eq!(r.code(1), "range-is-ram", "{}", r.text);
    assert_eq!(r.code(2), "map-failed", "NoMmio has no window");
    assert_eq!(r.code(3), "bad-argument");
    assert_eq!(r.code(4), "bad-argument");
}

fn mem_types(r: &Run, cmd: u32) -> evidence::MemTypes {
    r.bodies(cmd)
        .into_iter()
        .find_map(|b| match b {
            Body::MemTypes(t) => Some(t.clone()),
            _ => None,
        })
        .expect("a mem.types frame")
}

/// The identity map decides, not the firmware's "usable": SeaBIOS's BIOS area (reserved)
/// is identity mapped write-back, so an uncached window of it would alias it.
#[test]
fn identity_mapped_ranges_are_served_there_or_refused_never_aliased() {
    let r = run(&[
        "mem map 0xf0000 0x1000",
        "mem map 0xef000 0x2000",
        "peek 0xf0000 4 --phys",
        "peek 0xef800 0x1000 --phys",
        "poke 0xf0000 1 --phys",
        "mem types",
        "mem types 0xf0000 0x10",
        "mem unmap 0xfee00000 0x1000",
        "mem types 0xf0000",
    ]);
    assert_eq!(r.code(1), "range-is-identity-mapped", "{}", r.text);
    assert!(r.text.contains("identity mapped WB"), "{}", r.text);
    assert_eq!(r.code(2), "range-is-identity-mapped", "partly: {}", r.text);
    assert_eq!(r.code(3), "ok", "{}", r.text);
    assert!(
        r.text
            .contains("phys 0xf0000: through the identity map (WB)"),
        "{}",
        r.text
    );
    assert_eq!(r.reads(3)[0].address, 0xf_0000, "read at its own address");
    assert_eq!(r.code(4), "range-partly-identity-mapped");
    assert_eq!(r.code(5), "read-only-address", "the fake maps it read-only");
    assert_eq!(r.code(6), "ok", "no alias: {}", r.text);
    let all = mem_types(&r, 6);
    assert_eq!(all.runs.len(), 4, "{all:?}");
    assert!(all.aliases.is_empty());
    assert!(all.runs[3].mem_type == "UC" && !all.runs[3].identity);
    let bios = mem_types(&r, 7);
    assert_eq!(bios.runs.len(), 1);
    assert!(bios.runs[0].identity && bios.runs[0].mem_type == "WB");
    assert_eq!(
        r.code(8),
        "not-user-mapped",
        "nothing of the user's to release"
    );
    assert_eq!(r.code(9), "usage");
}

#[test]
fn msix_and_irq_test_refuse_what_they_cannot_do() {
    let r = run(&[
        "msix 00:04.0",
        "irq test 00:04.0",
        "irq test 0:4",
        "msix",
        "irq test",
        "msix 1 2",
    ]);
    assert_eq!(r.code(1), "no-msix", "{}", r.text);
    assert_eq!(r.code(2), "nvme-not-bound");
    assert!(
        r.text.contains("run 'nvme identify 00:04.0' first"),
        "{}",
        r.text
    );
    assert_eq!(r.code(3), "bad-bdf");
    assert_eq!(r.code(4), "nvme-not-bound", "no bdf and nothing bound");
    assert_eq!(r.code(5), "nvme-not-bound");
    assert_eq!(r.code(6), "usage");
}

#[test]
fn phys_addresses_resolve_through_the_identity_map_or_a_window() {
    // 0x1000 lies in usable RAM (the fake firmware's map): identity. 0xfee00030 is not RAM:
    // it needs a window, and NoMmio has none.
    let r = run(&[
        "peek 0x1000 4 --phys",
        "peek 0xfee00030 --phys",
        "poke 0x1010 0x5a --width 1 --phys",
        "peek 0x1_0000_0000_0 --phys",
    ]);
    assert_eq!(r.code(1), "ok", "{}", r.text);
    assert_eq!(r.reads(1)[0].target, "phys 0x1000");
    assert_eq!(r.reads(1)[0].values, [0, 1, 2, 3]);
    assert_eq!(r.code(2), "map-failed");
    assert_eq!(r.writes(3)[0].target, "phys 0x1010");
    assert_eq!(r.writes(3)[0].readback, 0x5a);
    assert_eq!(r.code(4), "map-failed");
}

#[test]
fn help_lists_the_toolbox_in_one_summary_column() {
    let r = run(&["help"]);
    for line in [
        "  peek <addr> [len] [--width 1|2|4|8] [--phys] [--no-check]\r\n                                     read memory or registers",
        "  memmap                             the firmware's memory map",
        "  irq test [bdf]                     prove an NVMe's or gVNIC's MSI-X interrupt",
        "  msr read <index>                   read a model-specific register",
    ] {
        assert!(r.text.contains(line), "missing {line:?} in\n{}", r.text);
    }
}
