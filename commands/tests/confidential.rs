//! Confidential VMs fail closed, as a host sees it: the real `Shell` on a machine whose CPU
//! (an injected fake) answers like an SEV-SNP or TDX guest says so in the banner frame and
//! in `version`, and every command that would hand memory to a device ends with
//! `confidential-vm-unsupported` without touching the device or the pool; the same bench
//! with an ordinary CPU binds the NVMe fake normally.

#[path = "../../drivers/tests/nvme_fake/mod.rs"]
mod nvme_fake;
#[path = "../../drivers/tests/pci_fake/mod.rs"]
mod pci_fake;

use std::cell::RefCell;
use std::rc::Rc;

use commands::{Console, Shell, SystemInfo};
use drivers::cpu::confidential::{detect, ConfidentialKind};
use drivers::dma::{testing::leaked_pool, DmaPool};
use drivers::platform::{Bdf, Cpu, CpuidResult, Hw, MsrError, NoMemory, NullPorts};
use evidence::{Body, Firmware, Frame, Outcome};

/// An AMD guest CPU: SEV supported (CPUID 0x8000_001F EAX bit 1) and SEV_STATUS as given;
/// or an Intel TD (leaf 0x21 signature). Unlisted leaves answer zeros, like hardware.
struct GuestCpu {
    sev_status: Option<u64>,
    tdx: bool,
}

impl Cpu for GuestCpu {
    fn cpuid(&self, leaf: u32, _: u32) -> CpuidResult {
        let r = |eax, ebx, ecx, edx| CpuidResult { eax, ebx, ecx, edx };
        match leaf {
            0 if self.tdx => r(0x23, 0, 0, 0),
            0 => r(0x10, 0, 0, 0),
            0x21 if self.tdx => r(
                0,
                u32::from_le_bytes(*b"Inte"),
                u32::from_le_bytes(*b"    "),
                u32::from_le_bytes(*b"lTDX"),
            ),
            0x8000_0000 if self.sev_status.is_some() => r(0x8000_0021, 0, 0, 0),
            0x8000_001F if self.sev_status.is_some() => r(0b1010, 51, 0, 0),
            _ => CpuidResult::default(),
        }
    }
    fn read_msr(&self, index: u32) -> Result<u64, MsrError> {
        match (index, self.sev_status) {
            (0xC001_0131, Some(status)) => Ok(status),
            _ => Err(MsrError::GeneralProtection),
        }
    }
    fn write_msr(&self, _: u32, _: u64) -> Result<(), MsrError> {
        Err(MsrError::GeneralProtection)
    }
}

#[derive(Default)]
struct Captured(String);
impl Console for Captured {
    fn write_str(&mut self, text: &str) {
        self.0.push_str(text);
    }
}

const NVME_BDF: Bdf = Bdf::new(0, 3, 0);
const POOL_BASE: u64 = 0x4000_0000;
const POOL_BYTES: usize = 4 << 20;

struct Bench {
    cpu: GuestCpu,
    config: pci_fake::FakeConfig,
    mapper: nvme_fake::Mapper,
    clock: nvme_fake::SimClock,
    pool: DmaPool,
    dev: Rc<RefCell<nvme_fake::Dev>>,
    shell: Shell,
    console: Captured,
    seen: usize,
}

impl Bench {
    fn new(cpu: GuestCpu) -> Bench {
        let (pool, host) = leaked_pool(POOL_BASE, POOL_BYTES);
        let ns1 = nvme_fake::Namespace::new(1, 9, nvme_fake::random_bytes(64 * 512, 1));
        let dev = nvme_fake::new_dev(host, POOL_BASE, POOL_BYTES as u64, vec![ns1]);
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
        // What the monitor does at boot: detect through the Cpu seam, put it in the facts.
        let info = SystemInfo {
            version: "0.1.0",
            build: "test",
            firmware: Firmware::Uefi,
            memory_bytes: 512 << 20,
            cmdline: String::new(),
            dma_base: POOL_BASE,
            dma_bytes: POOL_BYTES as u64,
            boot_us: 1,
            confidential: detect(&cpu),
            tsc_hz: 2_000_000_000,
            tsc: drivers::clock::Calibration::default(),
            sha256_path: drivers::digest::sha256_path(&cpu),
        };
        let mut bench = Bench {
            cpu,
            config,
            mapper: nvme_fake::Mapper {
                dev: dev.clone(),
                mapped: vec![],
                unmapped: vec![],
            },
            clock: nvme_fake::SimClock::new(dev.clone()),
            pool,
            dev,
            shell: Shell::new(7, info),
            console: Captured::default(),
            seen: 0,
        };
        bench.shell.banner(&mut bench.console);
        bench
    }

    /// Console text and frames since the last call.
    fn take(&mut self) -> (String, Vec<Frame>) {
        let text = self.console.0[self.seen..].to_string();
        self.seen = self.console.0.len();
        let frames = text
            .lines()
            .filter(|l| l.contains(evidence::MARKER))
            .map(|l| evidence::decode_line(l).expect("frame decodes"))
            .collect();
        (text, frames)
    }

    fn run(&mut self, line: &str) -> (String, Vec<Frame>, String) {
        let mut hw = Hw {
            config: &self.config,
            mmio: &mut self.mapper,
            clock: &self.clock,
            dma: &mut self.pool,
            memory: &NoMemory,
            cpu: &self.cpu,
            ports: &NullPorts,
            firmware: &drivers::platform::NoFirmware,
            irq: &drivers::platform::NoInterrupts,
        };
        let clock = hw.clock;
        self.shell
            .execute(line, &mut hw, &mut self.console, || clock.now_us());
        let (text, frames) = self.take();
        let code = match frames.last().map(|f| &f.body) {
            Some(Body::CommandResult(r)) => match &r.outcome {
                Outcome::Ok => "ok".to_string(),
                Outcome::Error { code, .. } => code.clone(),
            },
            other => panic!("{line}: last frame {other:?}\n{text}"),
        };
        (text, frames, code)
    }
}

fn banner_kind(frames: &[Frame]) -> String {
    frames
        .iter()
        .find_map(|f| match &f.body {
            Body::Banner(b) => Some(b.confidential.clone()),
            _ => None,
        })
        .expect("banner frame")
}

fn kinds(frames: &[Frame]) -> Vec<&'static str> {
    frames.iter().map(|f| f.body.kind()).collect()
}

#[test]
fn an_sev_snp_guest_refuses_every_device_memory_command() {
    let mut bench = Bench::new(GuestCpu {
        sev_status: Some(0b111),
        tdx: false,
    });
    let (text, frames) = bench.take();
    assert_eq!(banner_kind(&frames), "sev-snp");
    assert!(text.contains("confidential VM (sev-snp)"), "{text}");

    let (text, frames, code) = bench.run("version");
    assert_eq!(code, "ok");
    assert_eq!(banner_kind(&frames), "sev-snp");
    assert!(
        text.contains("confidential VM (sev-snp): device DMA"),
        "{text}"
    );

    for line in [
        "nvme identify",
        "nvme read 0",
        "gvnic describe",
        "gvnic txdhcp",
    ] {
        let (text, frames, code) = bench.run(line);
        assert_eq!(code, "confidential-vm-unsupported", "{line}\n{text}");
        assert_eq!(
            kinds(&frames),
            ["command.start", "command.result"],
            "{line}: no evidence of a device bring-up"
        );
    }
    // The device never saw the monitor: no BAR mapped, never enabled, no pool page used.
    assert!(bench.mapper.mapped.is_empty());
    assert_eq!(bench.dev.borrow().cc & 1, 0);
    assert_eq!(bench.pool.usage().used_pages, 0);

    // Commands that give a device no memory still work, and so does the monitor.
    for line in ["lspci", "dma", "teardown", "help"] {
        let (text, _, code) = bench.run(line);
        assert_eq!(code, "ok", "{line}\n{text}");
    }
}

#[test]
fn a_tdx_guest_is_detected_and_refused_too() {
    let mut bench = Bench::new(GuestCpu {
        sev_status: None,
        tdx: true,
    });
    let (_, frames) = bench.take();
    assert_eq!(banner_kind(&frames), "tdx");
    let (_, _, code) = bench.run("nvme identify");
    assert_eq!(code, "confidential-vm-unsupported");
}

#[test]
fn an_ordinary_guest_binds_the_same_device() {
    // SEV supported by the CPU but not active (SEV_STATUS = 0): an ordinary guest.
    let mut bench = Bench::new(GuestCpu {
        sev_status: Some(0),
        tdx: false,
    });
    let (text, frames) = bench.take();
    assert_eq!(banner_kind(&frames), "none");
    assert!(!text.contains("confidential VM ("), "{text}");
    let (text, _, _) = bench.run("version");
    assert!(
        text.contains("confidential VM: no (device DMA allowed)"),
        "{text}"
    );
    let (text, frames, code) = bench.run("nvme identify");
    assert_eq!(code, "ok", "{text}");
    assert!(kinds(&frames).contains(&"nvme.identify"));
    assert_eq!(bench.dev.borrow().cc & 1, 1);
    assert!(bench.pool.usage().used_pages > 0);
    assert_eq!(bench.shell.info().confidential, ConfidentialKind::None);
}

#[test]
fn the_pool_backstop_refuses_whatever_asks() {
    let (mut pool, _) = leaked_pool(POOL_BASE, POOL_BYTES);
    assert!(pool.alloc("test", "before", 4096).is_ok());
    pool.refuse_all();
    assert_eq!(
        pool.alloc("test", "after", 4096),
        Err(drivers::dma::DmaError::Refused)
    );
    assert_eq!(pool.refusals(), 1);
}
