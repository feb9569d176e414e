//! Device faults as a user sees them: the real `Shell` runs command lines against the
//! in-process gVNIC model (and the NVMe fake), with one fault injected at a time, and the
//! test reads only what a host reads, the frame stream. For every fault the failing command
//! ends with exactly one result frame carrying the driver's named error code and no success
//! evidence frame; afterwards `dma` shows the ledger clean (or, when the device never
//! confirmed its reset, quarantined) and the monitor keeps answering.

#[path = "../../drivers/tests/gvnic_support/mod.rs"]
mod gvnic_support;
#[path = "../../drivers/tests/nvme_fake/mod.rs"]
mod nvme_fake;
#[path = "../../drivers/tests/pci_fake/mod.rs"]
mod pci_fake;

use std::cell::RefCell;
use std::rc::Rc;

use commands::{Console, Shell, SystemInfo};
use drivers::dma::{testing::leaked_pool, DmaPool};
use drivers::gvnic::Opcode;
use drivers::platform::{Bdf, ConfigSpace, Hw, MapError, Mapping, MmioMapper, NoMemory};
use evidence::{Body, Firmware, Frame, LedgerEntry, Outcome};
use gvnic_model::{Faults, ModelConfig};
use gvnic_support::{Sim, SimClock, POOL_BYTES, POOL_PHYS};

// ---------------------------------------------------------------------------------------
// The monitor side: a shell, its console, and the frames of each command.

#[derive(Default)]
struct Captured(String);
impl Console for Captured {
    fn write_str(&mut self, text: &str) {
        self.0.push_str(text);
    }
}

struct Monitor {
    shell: Shell,
    console: Captured,
    /// Console bytes already returned by earlier runs.
    seen: usize,
    /// Every frame so far, for the stream-wide checks.
    all: Vec<Frame>,
}

/// One command as the host sees it.
struct Run {
    line: String,
    text: String,
    frames: Vec<Frame>,
}

impl Monitor {
    fn new(dma_base: u64, dma_bytes: u64) -> Monitor {
        let info = SystemInfo {
            version: "0.1.0",
            build: "test",
            firmware: Firmware::Bios,
            memory_bytes: 512 << 20,
            cmdline: String::new(),
            dma_base,
            dma_bytes,
            boot_us: 1,
            confidential: drivers::cpu::confidential::ConfidentialKind::None,
            tsc_hz: 2_000_000_000,
            tsc: drivers::clock::Calibration::default(),
            sha256_path: drivers::digest::Sha256Path::Portable,
        };
        let mut monitor = Monitor {
            shell: Shell::new(0xfa17, info),
            console: Captured::default(),
            seen: 0,
            all: Vec::new(),
        };
        monitor.shell.banner(&mut monitor.console);
        monitor.take("(banner)");
        monitor
    }

    fn run(&mut self, line: &str, hw: &mut Hw) -> Run {
        // The shell times the command with the same clock the drivers wait on.
        let clock = hw.clock;
        self.shell
            .execute(line, hw, &mut self.console, || clock.now_us());
        self.take(line)
    }

    fn take(&mut self, line: &str) -> Run {
        let text = self.console.0[self.seen..].to_string();
        self.seen = self.console.0.len();
        let frames: Vec<Frame> = text
            .lines()
            .filter(|l| l.contains(evidence::MARKER))
            .map(|l| evidence::decode_line(l).unwrap_or_else(|e| panic!("{e:?}: {l}")))
            .collect();
        for frame in &frames {
            assert_eq!(frame.seq as usize, self.all.len(), "sequence gap at {line}");
            self.all.push(frame.clone());
        }
        Run {
            line: line.into(),
            text,
            frames,
        }
    }
}

impl Run {
    fn kinds(&self) -> Vec<&'static str> {
        self.frames.iter().map(|f| f.body.kind()).collect()
    }

    fn count(&self, kind: &str) -> usize {
        self.kinds().iter().filter(|k| **k == kind).count()
    }

    /// The command's outcome, after checking its framing: a start frame first, exactly one
    /// result frame, and that result last, all with the same command number.
    fn outcome(&self) -> &Outcome {
        let first = self.frames.first().expect("frames");
        assert!(
            matches!(first.body, Body::CommandStart(_)),
            "{}: {:?}",
            self.line,
            self.kinds()
        );
        assert!(
            self.frames.iter().all(|f| f.cmd == first.cmd),
            "{}: frames of another command: {:?}",
            self.line,
            self.frames
        );
        assert_eq!(
            self.count("command.result"),
            1,
            "{}: exactly one result frame: {:?}\n{}",
            self.line,
            self.kinds(),
            self.text
        );
        match &self.frames.last().unwrap().body {
            Body::CommandResult(result) => &result.outcome,
            other => panic!("{}: last frame is {other:?}, not the result", self.line),
        }
    }

    fn code(&self) -> &str {
        match self.outcome() {
            Outcome::Ok => "ok",
            Outcome::Error { code, .. } => code,
        }
    }

    fn assert_ok(&self) -> &Self {
        assert_eq!(self.code(), "ok", "{}\n{}", self.line, self.text);
        self
    }

    /// Failed with `code`, and no frame of any `forbidden` kind was emitted.
    fn assert_failed(&self, code: &str, forbidden: &[&str]) -> &Self {
        assert_eq!(self.code(), code, "{}\n{}", self.line, self.text);
        for kind in forbidden {
            assert_eq!(
                self.count(kind),
                0,
                "{}: a failed command emitted success evidence {kind}: {:?}\n{}",
                self.line,
                self.kinds(),
                self.text
            );
        }
        self
    }

    /// The ledger as the `dma.ledger` frames of this command give it (they come in chunks,
    /// each with the pool totals): (used pages, quarantined pages, every entry).
    fn ledger(&self) -> (u32, u32, Vec<LedgerEntry>) {
        let ledgers: Vec<_> = self
            .frames
            .iter()
            .filter_map(|f| match &f.body {
                Body::DmaLedger(l) => Some(l),
                _ => None,
            })
            .collect();
        assert!(!ledgers.is_empty(), "{}: no dma.ledger frame", self.line);
        let (used, quarantined) = (ledgers[0].used_pages, ledgers[0].quarantined_pages);
        assert!(ledgers
            .iter()
            .all(|l| (l.used_pages, l.quarantined_pages) == (used, quarantined)));
        let entries = ledgers.iter().flat_map(|l| l.entries.clone()).collect();
        (used, quarantined, entries)
    }

    fn assert_ledger_clean(&self) {
        let (used, quarantined, entries) = self.ledger();
        assert_eq!(
            (used, quarantined, entries.len()),
            (0, 0, 0),
            "{}: ledger not clean: {entries:#?}\n{}",
            self.line,
            self.text
        );
    }

    fn assert_ledger_quarantined(&self, owner: &str) {
        let (used, quarantined, entries) = self.ledger();
        assert_eq!(used, 0, "{}: pages still in use: {entries:#?}", self.line);
        assert!(quarantined > 0, "{}: nothing quarantined", self.line);
        assert!(!entries.is_empty());
        assert!(
            entries
                .iter()
                .all(|e| e.quarantined && e.owner == owner && !e.reason.is_empty()),
            "{}: {entries:#?}",
            self.line
        );
        let pages: u32 = entries.iter().map(|e| e.pages).sum();
        assert_eq!(pages, quarantined);
    }

    fn teardown_steps(&self) -> Vec<(String, bool)> {
        self.frames
            .iter()
            .filter_map(|f| match &f.body {
                Body::TeardownStep(s) => Some((s.step.clone(), s.ok)),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The gVNIC model as the monitor's hardware: its PCI config space at one bdf, its BARs
// behind the MMIO mapper, guest memory = the bounce pool, a clock that ticks the model.

const GVNIC_BDF: Bdf = Bdf::new(0, 4, 0);
const GVNIC_OWNER: &str = "gvnic 00:04.0";
/// Where "firmware" put the BARs (each aligned to its size: 4 KiB, 4 KiB, 64 KiB).
const BAR_BASES: [u32; 3] = [0xfebf_0000, 0xfebf_1000, 0xfebe_0000];

struct ModelConfigSpace(Rc<Sim>);

impl ModelConfigSpace {
    fn read(&self, bdf: Bdf, offset: u16, size: u8) -> u32 {
        if bdf != GVNIC_BDF {
            return u32::MAX >> (32 - 8 * u32::from(size));
        }
        self.0.model.borrow_mut().config_read(offset, size)
    }
    fn write(&self, bdf: Bdf, offset: u16, size: u8, value: u32) {
        if bdf == GVNIC_BDF {
            self.0.model.borrow_mut().config_write(offset, size, value);
        }
    }
}

impl ConfigSpace for ModelConfigSpace {
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        self.read(bdf, offset, 1) as u8
    }
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        self.read(bdf, offset, 2) as u16
    }
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.read(bdf, offset, 4)
    }
    fn write8(&self, bdf: Bdf, offset: u16, value: u8) {
        self.write(bdf, offset, 1, value.into())
    }
    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        self.write(bdf, offset, 2, value.into())
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        self.write(bdf, offset, 4, value)
    }
    fn size(&self) -> u16 {
        256
    }
}

/// Maps exactly the BAR ranges the model's config space currently reports.
struct ModelMapper {
    sim: Rc<Sim>,
    mapped: Vec<(u64, u64)>,
}

impl MmioMapper for ModelMapper {
    fn map(&mut self, phys: u64, len: u64) -> Result<Mapping, MapError> {
        let sizes = gvnic_model::pci::BAR_SIZES;
        let bar = (0..3u8).find(|&n| {
            let base = self
                .sim
                .model
                .borrow_mut()
                .config_read(0x10 + 4 * u16::from(n), 4)
                & !0xf;
            base != 0 && u64::from(base) == phys && len == sizes[usize::from(n)]
        });
        let Some(bar) = bar else {
            return Err(MapError::BadRange);
        };
        let newly_mapped = !self.mapped.contains(&(phys, len));
        if newly_mapped {
            self.mapped.push((phys, len));
        }
        Ok(Mapping {
            window: 0xffff_c000_0000_0000 + phys,
            newly_mapped,
            regs: Box::new(gvnic_support::Bar::new(self.sim.clone(), bar, len as usize)),
        })
    }
    fn unmap(&mut self, phys: u64, len: u64) {
        self.mapped.retain(|m| *m != (phys, len));
    }
}

struct GvnicBench {
    sim: Rc<Sim>,
    clock: SimClock,
    pool: DmaPool,
    config: ModelConfigSpace,
    mapper: ModelMapper,
    monitor: Monitor,
}

impl GvnicBench {
    fn new(revision: u8, faults: Faults) -> GvnicBench {
        GvnicBench::with(ModelConfig {
            revision,
            faults,
            ..ModelConfig::default()
        })
    }

    fn with(config: ModelConfig) -> GvnicBench {
        let gvnic_support::Rig {
            sim,
            clock,
            pool,
            nic,
            ..
        } = gvnic_support::rig(config);
        // The shell binds the device itself, through PCI: the rig's own driver goes.
        drop(nic);
        {
            let mut model = sim.model.borrow_mut();
            // As firmware leaves it: BARs assigned, decode and bus mastering off.
            model.config_write(0x04, 2, 0);
            for (n, base) in BAR_BASES.iter().enumerate() {
                model.config_write(0x10 + 4 * n as u16, 4, *base);
            }
        }
        GvnicBench {
            config: ModelConfigSpace(sim.clone()),
            mapper: ModelMapper {
                sim: sim.clone(),
                mapped: Vec::new(),
            },
            monitor: Monitor::new(POOL_PHYS, POOL_BYTES as u64),
            sim,
            clock,
            pool,
        }
    }

    fn run(&mut self, line: &str) -> Run {
        let mut hw = Hw {
            config: &self.config,
            mmio: &mut self.mapper,
            clock: &self.clock,
            dma: &mut self.pool,
            memory: &NoMemory,
            cpu: &drivers::platform::NullCpu,
            ports: &drivers::platform::NullPorts,
            firmware: &drivers::platform::NoFirmware,
            irq: &drivers::platform::NoInterrupts,
        };
        self.monitor.run(line, &mut hw)
    }

    /// [`Self::run`] with an interrupt path (the model's messages as the APIC sees them).
    fn run_with_irq(&mut self, line: &str, irq: &dyn drivers::platform::Interrupts) -> Run {
        let mut hw = Hw {
            config: &self.config,
            mmio: &mut self.mapper,
            clock: &self.clock,
            dma: &mut self.pool,
            memory: &NoMemory,
            cpu: &drivers::platform::NullCpu,
            ports: &drivers::platform::NullPorts,
            firmware: &drivers::platform::NoFirmware,
            irq,
        };
        self.monitor.run(line, &mut hw)
    }

    fn model(&self) -> std::cell::Ref<'_, gvnic_model::Gvnic> {
        self.sim.model.borrow()
    }

    fn assert_model_released(&self, what: &str) {
        let model = self.model();
        assert!(model.is_reset(), "{what}: the model still holds resources");
        assert_eq!(model.registered_pages(), 0, "{what}");
        assert!(
            model.record().violations.is_empty(),
            "{what}: model violations: {:#?}",
            model.record().violations
        );
    }

    /// `teardown` and `dma` leave a clean ledger, and the monitor still answers.
    fn assert_recovers(&mut self, what: &str) {
        let down = self.run("teardown");
        down.assert_ok();
        down.assert_ledger_clean();
        self.run("dma").assert_ok().assert_ledger_clean();
        self.run("version").assert_ok();
        self.assert_model_released(what);
    }
}

const INTERNAL_ERROR: u32 = 0xFFFF_FFF6;
const TX_RX: &[&str] = &["gvnic.tx", "gvnic.rx"];

fn status_fault(opcode: Opcode) -> Faults {
    Faults {
        status_for_opcode: Some((opcode as u32, INTERNAL_ERROR)),
        ..Faults::default()
    }
}

#[test]
fn gvnic_happy_path_describe_txdhcp_teardown() {
    for revision in [0, 1] {
        let mut bench = GvnicBench::new(revision, Faults::default());
        let describe = bench.run("gvnic describe");
        describe.assert_ok();
        assert_eq!(describe.count("gvnic.describe"), 1, "{}", describe.text);
        let descriptor = describe
            .frames
            .iter()
            .find_map(|f| match &f.body {
                Body::GvnicDescriptor(d) => Some(d.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(descriptor.mac, ModelConfig::default().mac);
        assert_eq!(descriptor.revision, revision);
        assert_eq!(descriptor.queue_format, "gqi-qpl");

        let tx = bench.run("gvnic txdhcp --timeout 500");
        tx.assert_ok();
        let sent = tx
            .frames
            .iter()
            .find_map(|f| match &f.body {
                Body::GvnicTx(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no gvnic.tx frame: {}", tx.text));
        assert_eq!(sent.kind, "dhcp-discover");
        let offer = tx
            .frames
            .iter()
            .find_map(|f| match &f.body {
                Body::GvnicRx(r) if r.kind == "dhcp-offer" => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no dhcp-offer gvnic.rx frame: {}", tx.text));
        assert_eq!(offer.xid, sent.xid);
        // The device is up and holds the QPL pages while bound.
        assert!(bench.model().registered_pages() > 0);

        let down = bench.run("teardown");
        down.assert_ok();
        let steps = down.teardown_steps();
        assert!(
            steps.len() >= 6 && steps.iter().all(|(_, ok)| *ok),
            "{steps:?}"
        );
        down.assert_ledger_clean();
        bench.run("dma").assert_ok().assert_ledger_clean();
        bench.assert_model_released("happy path");
        assert!(
            bench.mapper.mapped.is_empty(),
            "BAR windows left mapped: {:x?}",
            bench.mapper.mapped
        );
        assert!(
            bench.model().wire().len() >= 2,
            "the DISCOVER and the OFFER crossed the model's wire"
        );
        // Bus mastering is off after teardown: the device can no longer DMA.
        let command = bench.sim.model.borrow_mut().config_read(0x04, 2);
        assert_eq!(command & 0x4, 0, "bus master still on: {command:#x}");
    }
}

#[test]
fn gvnic_error_status_on_describe_gives_no_descriptor() {
    for revision in [0, 1] {
        let mut bench = GvnicBench::new(revision, status_fault(Opcode::DescribeDevice));
        let run = bench.run("gvnic describe");
        run.assert_failed("gvnic-admin-status", &["gvnic.describe"]);
        assert!(run.text.contains("INTERNAL_ERROR"), "{}", run.text);
        bench.assert_recovers("describe status");
    }
}

#[test]
fn gvnic_error_status_on_queue_bring_up_gives_no_tx_or_rx() {
    for revision in [0, 1] {
        for opcode in [
            Opcode::ConfigureDeviceResources,
            Opcode::CreateTxQueue,
            Opcode::CreateRxQueue,
        ] {
            let what = format!("revision {revision}, {opcode:?}");
            let mut bench = GvnicBench::new(revision, status_fault(opcode));
            bench.run("gvnic describe").assert_ok();
            let run = bench.run("gvnic txdhcp --timeout 500");
            run.assert_failed("gvnic-admin-status", TX_RX);
            assert!(run.text.contains("INTERNAL_ERROR"), "{what}: {}", run.text);
            // Nothing went on the wire.
            assert!(bench.model().wire().is_empty(), "{what}");
            // The driver reset the device and released its memory at once.
            bench.run("dma").assert_ok().assert_ledger_clean();
            bench.assert_recovers(&what);
        }
    }
}

#[test]
fn gvnic_admin_queue_that_never_completes() {
    for revision in [0, 1] {
        let mut bench = GvnicBench::new(
            revision,
            Faults {
                admin_never_completes: true,
                ..Faults::default()
            },
        );
        let run = bench.run("gvnic describe");
        run.assert_failed("gvnic-admin-timeout", &["gvnic.describe"]);
        let run = bench.run("gvnic txdhcp --timeout 500");
        run.assert_failed("gvnic-admin-timeout", TX_RX);
        bench.assert_recovers("admin never completes");
    }
}

#[test]
fn gvnic_reset_that_never_completes_quarantines() {
    for revision in [0, 1] {
        let mut bench = GvnicBench::new(
            revision,
            Faults {
                reset_never_completes: true,
                ..Faults::default()
            },
        );
        // A fresh device reads reset, so bring-up needs no reset and works.
        bench.run("gvnic describe").assert_ok();
        bench.run("gvnic txdhcp --timeout 500").assert_ok();
        let down = bench.run("teardown");
        down.assert_failed("gvnic-reset-timeout", &[]);
        // Everything before the reset worked; the reset and so the release did not.
        let steps = down.teardown_steps();
        let failed: Vec<&str> = steps
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(failed, ["reset", "release-dma"], "{steps:?}");
        down.assert_ledger_quarantined(GVNIC_OWNER);
        bench
            .run("dma")
            .assert_ok()
            .assert_ledger_quarantined(GVNIC_OWNER);
        bench.run("version").assert_ok();
        // The device kept everything; the pages it may still write stay out of use.
        assert!(!bench.model().is_reset());
        assert!(bench.pool.usage().quarantined_pages > 0);
    }
}

#[test]
fn gvnic_admin_timeout_with_a_stuck_reset_quarantines_during_describe() {
    let mut bench = GvnicBench::new(
        0,
        Faults {
            admin_never_completes: true,
            reset_never_completes: true,
            ..Faults::default()
        },
    );
    let run = bench.run("gvnic describe");
    run.assert_failed("gvnic-reset-timeout", &["gvnic.describe"]);
    bench
        .run("dma")
        .assert_ok()
        .assert_ledger_quarantined(GVNIC_OWNER);
    bench.run("version").assert_ok();
}

#[test]
fn gvnic_no_rx_fails_txdhcp_without_an_rx_frame() {
    let mut bench = GvnicBench::new(
        0,
        Faults {
            no_rx: true,
            ..Faults::default()
        },
    );
    let run = bench.run("gvnic txdhcp --timeout 300");
    // The DISCOVER did go out (that much is true and reported), but nothing came back.
    run.assert_failed("gvnic-rx-timeout", &["gvnic.rx"]);
    assert_eq!(run.count("gvnic.tx"), 1, "{}", run.text);
    bench.assert_recovers("no rx");
}

#[test]
fn gvnic_tx_completion_that_never_comes() {
    let mut bench = GvnicBench::new(
        1,
        Faults {
            tx_completion_delay_ticks: 10_000_000,
            ..Faults::default()
        },
    );
    let run = bench.run("gvnic txdhcp --timeout 300");
    run.assert_failed("gvnic-tx-timeout", TX_RX);
    // The frame is still in flight: a second send is refused, not piled on.
    let again = bench.run("gvnic txdhcp --timeout 300");
    again.assert_failed("gvnic-tx-busy", TX_RX);
    bench.assert_recovers("tx never completes");
}

#[test]
fn every_command_in_the_gvnic_fault_runs_kept_the_stream_whole() {
    // Framing across a whole faulty session: gapless sequence numbers (checked as frames
    // arrive), one start and one result per command, in order.
    let mut bench = GvnicBench::new(
        0,
        Faults {
            no_rx: true,
            ..Faults::default()
        },
    );
    let lines = [
        "gvnic describe",
        "gvnic txdhcp --timeout 200",
        "gvnic txdhcp --timeout 200",
        "teardown",
        "dma",
        "version",
    ];
    for line in lines {
        bench.run(line).outcome();
    }
    let all = &bench.monitor.all;
    let starts = all
        .iter()
        .filter(|f| matches!(f.body, Body::CommandStart(_)))
        .count();
    let results = all
        .iter()
        .filter(|f| matches!(f.body, Body::CommandResult(_)))
        .count();
    assert_eq!((starts, results), (lines.len(), lines.len()));
}

// ---------------------------------------------------------------------------------------
// The NVMe fake, bound by the shell through the fake PCI config space.

const NVME_BDF: Bdf = Bdf::new(0, 3, 0);
const NVME_POOL_BASE: u64 = 0x4000_0000;
const NVME_POOL_BYTES: usize = 4 << 20;

struct NvmeBench {
    config: pci_fake::FakeConfig,
    mapper: nvme_fake::Mapper,
    clock: nvme_fake::SimClock,
    pool: DmaPool,
    dev: Rc<RefCell<nvme_fake::Dev>>,
    monitor: Monitor,
}

impl NvmeBench {
    fn new(faults: nvme_fake::Faults) -> NvmeBench {
        let (pool, host) = leaked_pool(NVME_POOL_BASE, NVME_POOL_BYTES);
        let ns1 = nvme_fake::Namespace::new(1, 9, nvme_fake::random_bytes(5000 * 512, 1));
        let dev = nvme_fake::new_dev(host, NVME_POOL_BASE, NVME_POOL_BYTES as u64, vec![ns1]);
        dev.borrow_mut().faults = faults;
        let config = pci_fake::FakeConfig::default();
        config.add(
            NVME_BDF,
            pci_fake::FakeFunction::new(0x1b36, 0x0010, 0x010802, 2, 0).mem64_bar(
                0,
                nvme_fake::BAR0,
                nvme_fake::BAR0_SIZE,
                false,
            ),
        );
        NvmeBench {
            config,
            mapper: nvme_fake::Mapper {
                dev: dev.clone(),
                mapped: vec![],
                unmapped: vec![],
            },
            clock: nvme_fake::SimClock::new(dev.clone()),
            pool,
            dev,
            monitor: Monitor::new(NVME_POOL_BASE, NVME_POOL_BYTES as u64),
        }
    }

    fn run(&mut self, line: &str) -> Run {
        let mut hw = Hw {
            config: &self.config,
            mmio: &mut self.mapper,
            clock: &self.clock,
            dma: &mut self.pool,
            memory: &NoMemory,
            cpu: &drivers::platform::NullCpu,
            ports: &drivers::platform::NullPorts,
            firmware: &drivers::platform::NoFirmware,
            irq: &drivers::platform::NoInterrupts,
        };
        self.monitor.run(line, &mut hw)
    }

    fn assert_recovers(&mut self) {
        let down = self.run("teardown");
        down.assert_ok();
        down.assert_ledger_clean();
        self.run("dma").assert_ok().assert_ledger_clean();
        self.run("version").assert_ok();
        assert_eq!(self.dev.borrow().violations, Vec::<String>::new());
    }
}

#[test]
fn nvme_cfs_during_enable_fails_identify_and_releases() {
    let mut bench = NvmeBench::new(nvme_fake::Faults {
        cfs_on_enable: true,
        ..nvme_fake::Faults::default()
    });
    let run = bench.run("nvme identify");
    run.assert_failed(
        "nvme-controller-fatal",
        &["nvme.identify", "nvme.namespace"],
    );
    let run = bench.run("nvme read 0");
    run.assert_failed("nvme-controller-fatal", &["nvme.read"]);
    bench.run("dma").assert_ok().assert_ledger_clean();
    bench.assert_recovers();
}

#[test]
fn nvme_error_status_on_read_gives_no_read_frame_and_the_controller_stays_usable() {
    let mut bench = NvmeBench::new(nvme_fake::Faults {
        read_status_from_lba: Some((1000, 2, 0x81)),
        ..nvme_fake::Faults::default()
    });
    bench.run("nvme identify").assert_ok();
    let run = bench.run("nvme read 990 20");
    run.assert_failed("nvme-command-failed", &["nvme.read"]);
    assert!(run.text.contains("unrecovered-read-error"), "{}", run.text);
    // Only the controller's own queues remain; the read buffers were freed.
    let (_, quarantined, entries) = bench.run("dma").ledger();
    assert_eq!(quarantined, 0);
    assert!(
        entries.iter().all(|e| e.purpose != "read-data"),
        "{entries:#?}"
    );
    let ok = bench.run("nvme read 0 4");
    ok.assert_ok();
    assert_eq!(ok.count("nvme.read"), 1);
    bench.assert_recovers();
}

fn frame_of<T: Clone>(run: &Run, pick: impl Fn(&Body) -> Option<T>) -> Option<T> {
    run.frames.iter().find_map(|f| pick(&f.body))
}

fn command_register(bench: &GvnicBench) -> u32 {
    bench.sim.model.borrow_mut().config_read(0x04, 2)
}

fn msix_enabled(bench: &GvnicBench) -> bool {
    // MSI-X message control: capability + 2, bit 15.
    let cap = gvnic_model::pci::OFF_MSIX_CAP;
    bench.sim.model.borrow_mut().config_read(cap + 2, 2) & 0x8000 != 0
}

#[test]
fn gvnic_every_format_through_the_shell() {
    use gvnic_model::QueueFormat as F;
    for (format, name) in [
        (F::GqiQpl, "gqi-qpl"),
        (F::GqiRda, "gqi-rda"),
        (F::DqoQpl, "dqo-qpl"),
        (F::DqoRda, "dqo-rda"),
    ] {
        let mut bench = GvnicBench::with(ModelConfig {
            formats: gvnic_model::Formats::only(&[format]),
            ..ModelConfig::default()
        });
        let describe = bench.run("gvnic describe");
        describe.assert_ok();
        let d = frame_of(&describe, |b| match b {
            Body::GvnicDescriptor(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
        assert_eq!(d.queue_format, name);
        assert_eq!(d.offered_formats, [name]);
        assert!(d.msix_vectors >= 3, "{d:?}");
        assert!(
            describe.text.contains(&format!("queue format: {name}")),
            "{}",
            describe.text
        );
        assert!(describe.text.contains("MSI-X:"), "{}", describe.text);

        let tx = bench.run("gvnic txdhcp --timeout 2000");
        tx.assert_ok();
        let sent = frame_of(&tx, |b| match b {
            Body::GvnicTx(t) => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name}: no gvnic.tx: {}", tx.text));
        assert_eq!(sent.queue_format, name);
        assert!(tx.text.contains(name), "{}", tx.text);
        let offer = frame_of(&tx, |b| match b {
            Body::GvnicRx(r) if r.kind == "dhcp-offer" => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name}: no OFFER: {}", tx.text));
        assert_eq!(offer.xid, sent.xid);
        let dqo = name.starts_with("dqo");
        assert_eq!(msix_enabled(&bench), dqo, "{name}: MSI-X while up");

        let down = bench.run("teardown");
        down.assert_ok();
        let steps = down.teardown_steps();
        assert!(steps.iter().all(|(_, ok)| *ok), "{name}: {steps:?}");
        assert_eq!(
            steps.iter().any(|(s, _)| s == "msix-disable"),
            dqo,
            "{name}: {steps:?}"
        );
        down.assert_ledger_clean();
        assert!(!msix_enabled(&bench), "{name}: MSI-X left enabled");
        bench.assert_model_released(name);
    }
}

#[test]
fn gvnic_intx_is_disabled_while_bound_and_restored_at_teardown() {
    let mut bench = GvnicBench::new(0, Faults::default());
    assert_eq!(command_register(&bench) & 0x400, 0);
    bench.run("gvnic describe").assert_ok();
    assert_ne!(
        command_register(&bench) & 0x400,
        0,
        "INTx still enabled while we poll"
    );
    let down = bench.run("teardown");
    down.assert_ok();
    assert!(
        down.teardown_steps()
            .iter()
            .any(|(s, ok)| s == "intx-restore" && *ok),
        "{:?}",
        down.teardown_steps()
    );
    assert_eq!(
        command_register(&bench) & 0x400,
        0,
        "INTx disable not restored"
    );
}

#[test]
fn gvnic_txdhcp_drains_a_ring_full_of_stale_frames_before_sending() {
    for format in [
        gvnic_model::QueueFormat::GqiQpl,
        gvnic_model::QueueFormat::DqoRda,
    ] {
        let mut bench = GvnicBench::with(ModelConfig {
            formats: gvnic_model::Formats::only(&[format]),
            ..ModelConfig::default()
        });
        bench.run("gvnic txdhcp --timeout 2000").assert_ok();
        // 80 stale frames: more than the 64 posted buffers, so without a drain every
        // buffer is full when the OFFER arrives and the device drops it.
        for n in 0..80u8 {
            let mut frame = vec![n; 90];
            frame[0..6].copy_from_slice(&[0xff; 6]);
            frame[12..14].copy_from_slice(&[0x88, 0xb5]);
            bench.sim.model.borrow_mut().inject_rx(&frame);
        }
        // Let them land.
        for _ in 0..100 {
            drivers::platform::Clock::relax(&bench.clock);
        }
        let tx = bench.run("gvnic txdhcp --timeout 2000");
        tx.assert_ok();
        assert!(tx.text.contains("drained"), "{}", tx.text);
        assert!(
            frame_of(&tx, |b| match b {
                Body::GvnicRx(r) if r.kind == "dhcp-offer" => Some(()),
                _ => None,
            })
            .is_some(),
            "{format:?}: the OFFER was hidden: {}",
            tx.text
        );
        bench.assert_recovers("drain");
    }
}

#[test]
fn gvnic_format_flag_is_checked_and_a_format_not_offered_is_named() {
    let mut bench = GvnicBench::new(0, Faults::default());
    let run = bench.run("gvnic describe --format dqo");
    run.assert_failed("bad-argument", &["gvnic.describe"]);
    let run = bench.run("gvnic txdhcp --format dqo-rda");
    run.assert_failed("gvnic-format-not-offered", TX_RX);
    assert!(run.text.contains("it offers gqi-qpl"), "{}", run.text);
    assert!(bench.model().wire().is_empty());
    let run = bench.run("gvnic describe --format gqi-qpl");
    run.assert_ok();
    bench.assert_recovers("format flag");
}

#[test]
fn gvnic_quarantine_is_released_with_a_frame_after_a_later_confirmed_reset() {
    // The reset takes 3 s, longer than the 2 s deadline: teardown quarantines.
    let mut bench = GvnicBench::with(ModelConfig {
        latencies: gvnic_model::Latencies {
            reset_us: 3_000_000,
            ..gvnic_model::Latencies::default()
        },
        ..ModelConfig::default()
    });
    bench.run("gvnic txdhcp --timeout 1000").assert_ok();
    let down = bench.run("teardown");
    down.assert_ledger_quarantined(GVNIC_OWNER);
    for _ in 0..20_000 {
        drivers::platform::Clock::relax(&bench.clock);
    }
    let describe = bench.run("gvnic describe");
    describe.assert_ok();
    let released = frame_of(&describe, |b| match b {
        Body::DmaReleased(r) => Some(r.clone()),
        _ => None,
    })
    .unwrap_or_else(|| panic!("no dma.released frame: {}", describe.text));
    assert_eq!(released.owner, GVNIC_OWNER);
    assert!(released.allocations > 0 && released.pages > 0);
    assert!(describe.text.contains("dma: released"), "{}", describe.text);
    let (_, quarantined, _) = bench.run("dma").ledger();
    assert_eq!(quarantined, 0);
}

#[test]
fn a_second_teardown_says_nothing_bound_for_every_device_kind() {
    let mut bench = NvmeBench::new(nvme_fake::Faults::default());
    bench.run("nvme identify").assert_ok();
    let first = bench.run("teardown");
    first.assert_ok();
    assert!(
        first.text.contains("gvnic: nothing bound"),
        "{}",
        first.text
    );
    assert!(
        !first.text.contains("nvme: nothing bound"),
        "{}",
        first.text
    );
    let second = bench.run("teardown");
    second.assert_ok();
    for kind in ["nvme", "gvnic"] {
        assert!(
            second.text.contains(&format!("{kind}: nothing bound")),
            "{kind}: {}",
            second.text
        );
    }
    assert_eq!(second.count("teardown.step"), 0);
    let only = bench.run("teardown gvnic");
    assert!(only.text.contains("gvnic: nothing bound"), "{}", only.text);
}

#[test]
fn a_small_read_prints_its_rate_in_kib_not_zero_mib() {
    let mut bench = NvmeBench::new(nvme_fake::Faults::default());
    bench.run("nvme identify").assert_ok();
    // A slow device: one 512-byte block in ~20 ms is ~25 KiB/s.
    bench.dev.borrow_mut().latencies.io_us = 20_000;
    let run = bench.run("nvme read 0");
    run.assert_ok();
    assert!(run.text.contains(" KiB/s"), "{}", run.text);
    assert!(!run.text.contains("0.0 MiB/s"), "{}", run.text);
    bench.assert_recovers();
}

#[test]
fn nvme_read_timeout_option_recovers_the_controller_for_a_retry() {
    let mut bench = NvmeBench::new(nvme_fake::Faults {
        stall_reads: Some((1, 5_000_000)),
        ..nvme_fake::Faults::default()
    });
    bench.run("nvme identify").assert_ok();
    for bad in ["nvme read 0 --timeout 0", "nvme read 0 --timeout 86400001"] {
        bench.run(bad).assert_failed("bad-argument", &["nvme.read"]);
    }
    let help = bench.run("help nvme read");
    assert!(help.text.contains("--timeout"), "{}", help.text);
    assert!(help.text.contains("default 30000"), "{}", help.text);
    let started = bench.clock.now.get();
    let run = bench.run("nvme read 0 8 --timeout 500");
    run.assert_failed("nvme-timeout", &["nvme.read"]);
    assert!(run.text.contains("after 500 ms"), "{}", run.text);
    assert!(
        run.text.contains("retry without a teardown"),
        "{}",
        run.text
    );
    assert!(
        bench.clock.now.get() - started < 5_000_000,
        "did not wait for the stall"
    );
    // The reset was confirmed: the read's buffers are back, nothing quarantined.
    let (_, quarantined, entries) = bench.run("dma").ledger();
    assert_eq!(quarantined, 0);
    assert!(
        entries.iter().all(|e| e.purpose != "read-data"),
        "{entries:#?}"
    );
    let retry = bench.run("nvme read 0 8");
    retry.assert_ok();
    let Some(Body::NvmeRead(read)) = retry
        .frames
        .iter()
        .map(|f| &f.body)
        .find(|b| matches!(b, Body::NvmeRead(_)))
    else {
        panic!("no nvme.read frame")
    };
    let want = bench.dev.borrow().namespaces[0].data[..8 * 512].to_vec();
    assert_eq!(read.first_bytes[..], want[..16]);
    bench.assert_recovers();
}

#[test]
fn ctrl_c_in_each_nvme_wait_of_a_command() {
    // Ctrl-C during the enable of the first `nvme identify`: the bind is undone, cleanly.
    let mut bench = NvmeBench::new(nvme_fake::Faults::default());
    bench.clock.press_ctrl_c_when(|dev| dev.enabling());
    let run = bench.run("nvme identify");
    run.assert_failed("interrupted", &["nvme.identify", "nvme.namespace"]);
    bench.clock.release_ctrl_c();
    bench.run("dma").assert_ok().assert_ledger_clean();

    // Ctrl-C during an admin command of a bound controller: recovered, still bound.
    bench.run("nvme identify").assert_ok();
    bench.clock.press_ctrl_c_when(|dev| dev.running(true, 0x06));
    let run = bench.run("nvme identify");
    run.assert_failed("interrupted", &["nvme.identify"]);
    assert!(
        run.text.contains("retry without a teardown"),
        "{}",
        run.text
    );
    bench.clock.release_ctrl_c();
    bench.run("nvme identify").assert_ok();

    // Ctrl-C during a stalled READ: drained for 1 s, then the controller is reset.
    bench.dev.borrow_mut().faults.stall_reads = Some((1, 10_000_000));
    bench
        .clock
        .press_ctrl_c_when(|dev| dev.running(false, 0x02));
    let run = bench.run("nvme read 0 8");
    run.assert_failed("interrupted", &["nvme.read"]);
    bench.clock.release_ctrl_c();
    let (_, quarantined, entries) = bench.run("dma").ledger();
    assert_eq!(quarantined, 0);
    assert!(
        entries.iter().all(|e| e.purpose != "read-data"),
        "{entries:#?}"
    );
    bench.run("nvme read 0 8").assert_ok();

    // Ctrl-C during shutdown and disable: ignored, the teardown completes and frees.
    bench
        .clock
        .press_ctrl_c_when(|dev| dev.shutting_down() || dev.disabling());
    let down = bench.run("teardown nvme");
    assert!(
        bench.clock.ctrl_c_pressed.get(),
        "Ctrl-C was pressed during teardown"
    );
    down.assert_ok();
    down.assert_ledger_clean();
    assert!(down.teardown_steps().iter().all(|(_, ok)| *ok));
    bench.clock.release_ctrl_c();
    bench.assert_recovers();
}

#[test]
fn quarantined_nvme_pages_are_released_with_a_frame_after_a_confirmed_reset() {
    let mut bench = NvmeBench::new(nvme_fake::Faults::default());
    bench.run("nvme identify").assert_ok();
    // This disable outlasts CAP.TO: teardown quarantines everything.
    bench.dev.borrow_mut().latencies.disable_us = 2_500_000;
    let down = bench.run("teardown nvme");
    down.assert_failed("teardown-incomplete", &[]);
    down.assert_ledger_quarantined("nvme 00:03.0");
    let (_, quarantined, _) = down.ledger();
    bench.dev.borrow_mut().latencies = nvme_fake::Latencies::default();
    // The next bind sees RDY go 1 -> 0: the reset is confirmed, the pages come back.
    let bind = bench.run("nvme identify");
    bind.assert_ok();
    let released: Vec<_> = bind
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::DmaReleased(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(released.len(), 1, "{:?}", bind.kinds());
    assert_eq!(released[0].owner, "nvme 00:03.0");
    assert_eq!(released[0].pages, quarantined);
    assert!(
        released[0].after.contains("reset confirmed"),
        "{:?}",
        released[0]
    );
    assert!(bind.text.contains("dma: released"), "{}", bind.text);
    let (_, quarantined_now, _) = bench.run("dma").ledger();
    assert_eq!(quarantined_now, 0);
    bench.assert_recovers();
}

#[test]
fn gvnic_a_format_asked_for_in_describe_is_kept_by_txdhcp() {
    let mut bench = GvnicBench::with(ModelConfig {
        formats: gvnic_model::Formats::only(&[
            gvnic_model::QueueFormat::GqiQpl,
            gvnic_model::QueueFormat::DqoRda,
        ]),
        ..ModelConfig::default()
    });
    let describe = bench.run("gvnic describe --format dqo-rda");
    describe.assert_ok();
    assert!(
        describe.text.contains("queue format: dqo-rda"),
        "{}",
        describe.text
    );
    let tx = bench.run("gvnic txdhcp --timeout 2000");
    tx.assert_ok();
    let sent = frame_of(&tx, |b| match b {
        Body::GvnicTx(t) => Some(t.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(sent.queue_format, "dqo-rda");
    // Another format while the queues run in this one: refused by name, nothing changes.
    let run = bench.run("gvnic txdhcp --format gqi-qpl");
    run.assert_failed("gvnic-format-in-use", TX_RX);
    bench.assert_recovers("format kept");
    // After teardown the preference order applies again.
    let describe = bench.run("gvnic describe");
    assert!(
        describe.text.contains("queue format: gqi-qpl"),
        "{}",
        describe.text
    );
}

#[test]
fn nvme_intx_is_masked_while_bound_and_restored_at_teardown() {
    let mut bench = NvmeBench::new(nvme_fake::Faults::default());
    let intx_disabled = |b: &NvmeBench| b.config.read16(NVME_BDF, 0x04) & (1 << 10) != 0;
    assert!(!intx_disabled(&bench));
    bench.run("nvme identify").assert_ok();
    assert!(
        intx_disabled(&bench),
        "we poll: the INTx pin is masked while bound"
    );
    let down = bench.run("teardown nvme");
    down.assert_ok();
    assert!(down.text.contains("INTx enabled again"), "{}", down.text);
    assert!(!intx_disabled(&bench), "handed back as found");
}

/// `--digest`: each kind prints and frames the value an independent implementation computes
/// over the fake disk's bytes (several commands per read: MDTS is 128 KiB here), bad names
/// get named errors, and the monitor stays usable.
#[test]
fn nvme_read_digests_match_independent_references() {
    use sha2::Digest as _;
    let mut bench = NvmeBench::new(nvme_fake::Faults::default());
    let disk = bench.dev.borrow().namespaces[0].data.clone();
    let (lba, count) = (7u64, 1500u64);
    let bytes = &disk[lba as usize * 512..(lba + count) as usize * 512];
    let read = |bench: &mut NvmeBench, line: &str| {
        let run = bench.run(line);
        run.assert_ok();
        let frame = run
            .frames
            .iter()
            .find_map(|f| match &f.body {
                Body::NvmeRead(r) => Some(r.clone()),
                _ => None,
            })
            .expect("nvme.read frame");
        (run.text, frame)
    };
    let (text, f) = read(&mut bench, "nvme read 7 1500 --digest crc32");
    let crc = crc32fast::hash(bytes);
    assert_eq!(
        (f.crc32, f.digest.as_str(), f.sha256),
        (crc, "crc32", [0; 32])
    );
    assert_eq!(f.digest_engine, "slicing-by-16");
    assert!(
        text.contains(&format!("crc32 {crc:08x} (slicing-by-16)")),
        "{text}"
    );

    let (text, f) = read(&mut bench, "nvme read 7 1500");
    let sha: [u8; 32] = sha2::Sha256::digest(bytes).into();
    assert_eq!((f.sha256, f.digest.as_str(), f.crc32), (sha, "sha256", 0));
    // NullCpu reports no SHA extensions: the portable engine ran, and says so.
    assert_eq!(f.digest_engine, "portable");
    assert!(text.contains(" (portable)"), "{text}");

    for line in [
        "nvme read 7 1500 --digest none",
        "nvme read 7 1500 --no-digest",
    ] {
        let (text, f) = read(&mut bench, line);
        assert_eq!((f.sha256, f.crc32, f.digest.as_str()), ([0; 32], 0, "none"));
        assert!(text.contains("digest skipped"), "{text}");
    }
    bench
        .run("nvme read 0 --digest md5")
        .assert_failed("bad-digest", &["nvme.read"]);
    bench
        .run("nvme read 0 --digest crc32 --no-digest")
        .assert_failed("bad-argument", &["nvme.read"]);
    bench.assert_recovers();
}

/// The network commands through the shell against the model's GCE-shaped responder: a
/// lease, pings to the gateway, named errors for bad input and for a server that never
/// answers TCP, and a monitor that stays usable with a clean ledger after teardown.
#[test]
fn gvnic_network_commands_through_the_shell() {
    let mut bench = GvnicBench::new(0, Faults::default());
    // ping first: no lease yet, so it takes one and says so.
    let ping = bench.run("gvnic ping gateway --count 2");
    ping.assert_ok();
    assert!(ping.text.contains("taking one first"), "{}", ping.text);
    assert_eq!(ping.count("net.lease"), 1);
    let ping = bench.run("gvnic ping gateway --count 3");
    ping.assert_ok();
    assert_eq!(ping.count("net.lease"), 0, "the kept lease is used");
    let frame = ping
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::NetPing(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (frame.target, frame.next_hop),
        ([10, 128, 0, 1], [10, 128, 0, 1])
    );
    assert_eq!(frame.reply_seqs, [1, 2, 3]);
    assert!(
        ping.text.contains("3 sent, 3 received, 0% loss"),
        "{}",
        ping.text
    );

    let dhcp = bench.run("gvnic dhcp --timeout 5000");
    dhcp.assert_ok();
    let lease = dhcp
        .frames
        .iter()
        .find_map(|f| match &f.body {
            Body::NetLease(l) => Some(l.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no net.lease: {}", dhcp.text));
    assert_eq!(lease.address, [10, 128, 0, 2]);
    assert_eq!((lease.prefix_len, lease.interface_prefix_len), (32, 30));
    assert_eq!(
        (lease.router, lease.gateway),
        ([10, 128, 0, 1], [10, 128, 0, 1])
    );
    assert_eq!(lease.server_id, [169, 254, 169, 254]);
    assert_eq!(lease.mtu, ModelConfig::default().mtu);
    assert_eq!(lease.lease_secs, 86400);
    assert_eq!(lease.classless_routes.len(), 2);
    let kinds: Vec<&str> = lease.wire.iter().map(|w| w.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["dhcp-discover", "dhcp-offer", "dhcp-request", "dhcp-ack"]
    );

    for (line, code) in [
        ("gvnic ping nowhere", "bad-argument"),
        ("gvnic ping gateway --count 0", "bad-argument"),
        ("gvnic http ftp://10.128.0.1/", "net-bad-url"),
        ("gvnic http http://host.example/", "net-bad-url"),
        (
            "gvnic http http://10.128.0.1/ --header nocolon",
            "net-bad-url",
        ),
        ("gvnic http \"http://10.128.0.1/ --timeout", "bad-input"),
        // The responder answers ARP for the router but no TCP: the SYN goes unanswered.
        (
            "gvnic http http://10.128.0.1/ --timeout 500",
            "net-connect-timeout",
        ),
        ("gvnic metadata --timeout 300", "net-connect-timeout"),
    ] {
        bench.run(line).assert_failed(code, &["net.http"]);
    }
    let down = bench.run("teardown");
    down.assert_ok();
    bench.run("dma").assert_ok().assert_ledger_clean();
    // Up again after teardown, with the kept lease.
    bench.run("gvnic ping 10.128.0.1 --count 1").assert_ok();
}

#[test]
fn irq_test_on_a_gvnic_without_an_interrupt_controller_is_named_and_restores_everything() {
    // The bench has no local APIC (NoInterrupts): `irq test <gvnic>` binds, brings the
    // queues up, fails with a named error before touching MSI-X, and the NIC still works.
    let mut bench = GvnicBench::new(0, Faults::default());
    let irq = bench.run("irq test 00:04.0");
    assert_eq!(irq.code(), "no-interrupts", "{}", irq.text);
    let msix_off = bench.run("msix 00:04.0");
    msix_off.assert_ok();
    assert!(
        msix_off.text.contains("MSI-X disabled"),
        "{}",
        msix_off.text
    );
    bench.run("gvnic txdhcp --timeout 500").assert_ok();
    // Without a bdf, `irq test` takes the bound gVNIC.
    assert_eq!(bench.run("irq test").code(), "no-interrupts");
    bench.assert_recovers("irq test without an APIC");
}

/// The boot CPU's APIC as the model's MSI record shows it: messages to [`APIC`] count; with
/// `delivers` false nothing ever arrives (QEMU 7.2's proxy).
struct ModelApic {
    sim: Rc<Sim>,
    delivers: bool,
    since: std::cell::Cell<usize>,
    armed: std::cell::Cell<bool>,
}

const APIC: drivers::platform::MsiMessage = drivers::platform::MsiMessage {
    address: 0xfee0_0000,
    data: 0x41,
};

impl drivers::platform::Interrupts for ModelApic {
    fn arm(&self) -> Result<(drivers::platform::MsiMessage, u8), drivers::platform::IrqError> {
        self.since
            .set(self.sim.model.borrow().record().interrupts.len());
        self.armed.set(true);
        Ok((APIC, 0x41))
    }
    fn delivery(&self) -> drivers::platform::Delivery {
        let model = self.sim.model.borrow();
        let count = model.record().interrupts[self.since.get()..]
            .iter()
            .filter(|r| r.address == APIC.address && r.data == APIC.data)
            .count() as u32;
        drivers::platform::Delivery {
            count: if self.delivers { count } else { 0 },
            first_us: 0,
            other: 0,
        }
    }
    fn disarm(&self) {
        self.armed.set(false);
    }
}

#[test]
fn gvnic_commands_with_irq_wait_by_interrupt_report_it_and_restore() {
    let mut bench = GvnicBench::new(0, Faults::default());
    let apic = ModelApic {
        sim: bench.sim.clone(),
        delivers: true,
        since: Default::default(),
        armed: Default::default(),
    };
    // Bound and polled first, so the table below is the polling driver's.
    bench.run("gvnic txdhcp --timeout 500").assert_ok();
    let table = |run: &Run| -> Vec<String> {
        run.text
            .lines()
            .filter(|l| !l.starts_with("@@"))
            .map(String::from)
            .collect()
    };
    let msix_before = table(&bench.run("msix 00:04.0"));
    let tx = bench.run_with_irq("gvnic txdhcp --irq", &apic);
    tx.assert_ok();
    assert!(tx.text.contains("DHCP OFFER for xid"), "{}", tx.text);
    assert!(
        tx.text.contains("completions waited for by interrupt"),
        "{}",
        tx.text
    );
    let waits: Vec<evidence::GvnicWaits> = tx
        .frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::GvnicWaits(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 1, "{:?}", tx.kinds());
    assert_eq!(waits[0].mode, "irq");
    assert!(waits[0].interrupts >= 1, "{:?}", waits[0]);
    assert!(waits[0].restored && waits[0].error.is_empty());
    assert!(!apic.armed.get(), "disarmed after the command");
    // MSI-X as the polling driver had it.
    assert_eq!(table(&bench.run("msix 00:04.0")), msix_before);

    let dhcp = bench.run_with_irq("gvnic dhcp --irq", &apic);
    dhcp.assert_ok();
    assert_eq!(dhcp.count("net.lease"), 1);
    assert_eq!(dhcp.count("gvnic.waits"), 1);
    let ping = bench.run_with_irq("gvnic ping gateway --count 2 --irq", &apic);
    ping.assert_ok();
    assert_eq!(ping.count("gvnic.waits"), 1);
    // Without --irq: polling, no frame about waits.
    let polled = bench.run_with_irq("gvnic ping gateway --count 1", &apic);
    polled.assert_ok();
    assert_eq!(polled.count("gvnic.waits"), 0);
    bench.assert_recovers("irq waits");
}

#[test]
fn gvnic_irq_waits_without_an_interrupt_path_fail_by_name_and_polling_still_works() {
    let mut bench = GvnicBench::new(0, Faults::default());
    // No local APIC at all.
    let none = bench.run("gvnic txdhcp --irq");
    assert_eq!(none.code(), "no-interrupts", "{}", none.text);
    // A machine whose device interrupts never arrive (QEMU 7.2's proxy).
    let proxy = ModelApic {
        sim: bench.sim.clone(),
        delivers: false,
        since: Default::default(),
        armed: Default::default(),
    };
    let lost = bench.run_with_irq("gvnic dhcp --irq", &proxy);
    assert_eq!(lost.code(), "irq-not-delivered", "{}", lost.text);
    assert_eq!(lost.count("net.lease"), 0, "never a false success");
    assert_eq!(lost.count("gvnic.waits"), 1);
    assert!(!proxy.armed.get());
    let lost_tx = bench.run_with_irq("gvnic txdhcp --irq", &proxy);
    assert_eq!(lost_tx.code(), "irq-not-delivered", "{}", lost_tx.text);
    // Polling, the default, is untouched by the failed sessions.
    bench.run("gvnic dhcp").assert_ok();
    bench.run("gvnic txdhcp --timeout 500").assert_ok();
    bench.assert_recovers("irq waits on a proxy");
}
