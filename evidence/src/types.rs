//! The frame vocabulary. Field order is the wire format: append only.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One evidence frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Random per boot, so frames from two boots in one log never mix.
    pub boot_id: u64,
    /// Per boot, from 0, +1 for every frame: a gap means a lost frame.
    pub seq: u32,
    /// The command number this frame belongs to (0 = not inside a command, e.g. the banner).
    pub cmd: u32,
    pub body: Body,
}

/// What a frame says. Only append variants: postcard encodes the variant index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    Banner(Banner),
    CommandStart(CommandStart),
    CommandResult(CommandResult),
    PciFunction(PciFunction),
    BarMapping(BarMapping),
    DmaLedger(DmaLedger),
    NvmeController(NvmeController),
    NvmeNamespace(NvmeNamespace),
    NvmeRead(NvmeRead),
    GvnicDescriptor(GvnicDescriptor),
    GvnicTx(GvnicTx),
    GvnicRx(GvnicRx),
    TeardownStep(TeardownStep),
    Fault(Fault),
    /// Free-form key/value facts for commands that have no dedicated body yet.
    Facts(Facts),
    /// Pages a device's earlier binding left quarantined, freed after a confirmed reset.
    DmaReleased(DmaReleased),
    RegRead(RegRead),
    RegWrite(RegWrite),
    Cpuid(CpuidLeaf),
    CpuInfo(CpuInfo),
    AcpiTable(AcpiTable),
    AcpiMadt(AcpiMadt),
    AcpiMcfg(AcpiMcfg),
    AcpiFadt(AcpiFadt),
    AcpiHpet(AcpiHpet),
    MemoryMap(MemoryMap),
    Msix(MsixInfo),
    IrqTest(IrqTest),
    MemWindow(MemWindow),
    /// Non-maskable interrupts since the last report (the monitor carried on).
    Nmi(Nmi),
    /// A machine check: MCG and bank status as the handler found them.
    MachineCheck(MachineCheck),
    NetLease(NetLease),
    NetPing(NetPing),
    NetHttp(NetHttp),
    /// `mem types`: the live page tables' memory types, and any physical page mapped with two.
    MemTypes(MemTypes),
    /// `mem unmap` / `bar unmap`: one user mapping released.
    MemUnmap(MemUnmap),
    /// `nvme write`: what was written where, how fast, and its digest.
    NvmeWrite(NvmeWrite),
    /// `nvme verify`: ok, or the first mismatching block and byte.
    NvmeVerify(NvmeVerify),
    /// `nvme flush`: one FLUSH completed.
    NvmeFlush(NvmeFlush),
    /// `nvme list`: one namespace of one controller (every NVMe function listed).
    NvmeDisk(NvmeDisk),
    /// `gvnic ... --irq`: completions waited for by interrupt, and what was taken.
    GvnicWaits(GvnicWaits),
}

impl Body {
    /// The dotted name hosts use in expectations and reports (`nvme.identify`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Banner(_) => "banner",
            Body::CommandStart(_) => "command.start",
            Body::CommandResult(_) => "command.result",
            Body::PciFunction(_) => "pci.function",
            Body::BarMapping(_) => "bar.map",
            Body::DmaLedger(_) => "dma.ledger",
            Body::NvmeController(_) => "nvme.identify",
            Body::NvmeNamespace(_) => "nvme.namespace",
            Body::NvmeRead(_) => "nvme.read",
            Body::GvnicDescriptor(_) => "gvnic.describe",
            Body::GvnicTx(_) => "gvnic.tx",
            Body::GvnicRx(_) => "gvnic.rx",
            Body::TeardownStep(_) => "teardown.step",
            Body::Fault(_) => "fault",
            Body::Facts(_) => "facts",
            Body::DmaReleased(_) => "dma.released",
            Body::RegRead(_) => "reg.read",
            Body::RegWrite(_) => "reg.write",
            Body::Cpuid(_) => "cpuid",
            Body::CpuInfo(_) => "cpu",
            Body::AcpiTable(_) => "acpi.table",
            Body::AcpiMadt(_) => "acpi.madt",
            Body::AcpiMcfg(_) => "acpi.mcfg",
            Body::AcpiFadt(_) => "acpi.fadt",
            Body::AcpiHpet(_) => "acpi.hpet",
            Body::MemoryMap(_) => "memmap",
            Body::Msix(_) => "msix",
            Body::IrqTest(_) => "irq.test",
            Body::MemWindow(_) => "mem.map",
            Body::Nmi(_) => "nmi",
            Body::MachineCheck(_) => "machine-check",
            Body::NetLease(_) => "net.lease",
            Body::NetPing(_) => "net.ping",
            Body::NetHttp(_) => "net.http",
            Body::MemTypes(_) => "mem.types",
            Body::MemUnmap(_) => "mem.unmap",
            Body::NvmeWrite(_) => "nvme.write",
            Body::NvmeVerify(_) => "nvme.verify",
            Body::NvmeFlush(_) => "nvme.flush",
            Body::NvmeDisk(_) => "nvme.disk",
            Body::GvnicWaits(_) => "gvnic.waits",
        }
    }
}

/// Which firmware handed over to the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Firmware {
    Bios,
    Uefi,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Banner {
    pub format_version: u16,
    /// Crate version, e.g. "0.1.0".
    pub version: String,
    /// Build identity (git describe or "unknown").
    pub build: String,
    pub firmware: Firmware,
    /// Usable RAM from the boot memory map.
    pub memory_bytes: u64,
    /// Bounce pool (physical base, bytes).
    pub dma_base: u64,
    pub dma_bytes: u64,
    /// Boot command line as GRUB passed it.
    pub cmdline: String,
    /// Time from monitor entry to the first prompt, microseconds (0 if unknown).
    pub boot_us: u64,
    /// Confidential-VM kind: "none", "sev", "sev-es", "sev-snp" or "tdx". On anything but
    /// "none", commands that hand memory to a device fail (`confidential-vm-unsupported`).
    pub confidential: String,
    /// The SHA-256 engine `nvme read` uses on this CPU: "sha-ni" or "portable".
    pub sha256_path: String,
    /// The TSC rate every monitor deadline is measured with.
    pub tsc_hz: u64,
    /// Where that rate came from: "cpuid-15h", "kvmclock", "cpuid-40000010h",
    /// "acpi-pm-timer", "hpet", "cpuid-16h", "pit", or "assumed" (no plausible source).
    pub tsc_source: String,
    /// The largest disagreement of another plausible source with it, ppm (0 when none).
    pub tsc_disagreement_ppm: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandStart {
    /// The command line as the monitor parsed it (trimmed, possibly truncated).
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    /// `code` is a stable, kebab-case name (`unknown-command`, `nvme-timeout`, ...).
    Error {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub outcome: Outcome,
    /// Wall time the command took inside the monitor.
    pub elapsed_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarInfo {
    pub index: u8,
    /// true = memory, false = I/O.
    pub memory: bool,
    pub is_64bit: bool,
    pub prefetchable: bool,
    pub address: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PciFunction {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub vendor_id: u16,
    pub device_id: u16,
    /// class << 16 | subclass << 8 | prog-if.
    pub class_code: u32,
    pub revision: u8,
    pub header_type: u8,
    pub subsystem_vendor: u16,
    pub subsystem_id: u16,
    pub bars: Vec<BarInfo>,
    /// Capability ids in list order.
    pub capabilities: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarMapping {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub bar: u8,
    pub phys: u64,
    pub size: u64,
    /// Virtual address of the window in the monitor's MMIO range.
    pub window: u64,
    pub prefetchable: bool,
    pub is_64bit: bool,
    /// false when this call returned an existing mapping.
    pub newly_mapped: bool,
    /// The part mapped: offset into the BAR and length (the whole BAR: 0 and its size).
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub owner: String,
    pub purpose: String,
    pub pages: u32,
    pub phys: u64,
    pub quarantined: bool,
    /// Why the pages are quarantined (empty when they are not).
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmaLedger {
    pub base: u64,
    pub bytes: u64,
    pub used_pages: u32,
    pub free_pages: u32,
    pub quarantined_pages: u32,
    pub entries: Vec<LedgerEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvmeController {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub vid: u16,
    pub ssvid: u16,
    pub serial: String,
    pub model: String,
    pub firmware: String,
    /// VS register, e.g. 0x0001_0400 for 1.4.
    pub version: u32,
    /// Maximum data transfer in bytes (0 = no limit).
    pub mdts_bytes: u64,
    /// NN from Identify Controller.
    pub namespaces: u32,
    /// Active namespace ids (CNS 02h).
    pub active_namespaces: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvmeNamespace {
    pub nsid: u32,
    pub blocks: u64,
    pub block_size: u32,
    pub capacity_bytes: u64,
    /// GCE: `device_name` from the JSON at byte 384 of Identify Namespace (empty if absent).
    pub gce_device_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvmeRead {
    pub nsid: u32,
    pub lba: u64,
    pub count: u64,
    pub bytes: u64,
    pub elapsed_us: u64,
    /// SHA-256 of the data read (all zero unless `digest` is "sha256").
    pub sha256: [u8; 32],
    pub first_bytes: [u8; 16],
    /// The digest asked for: "sha256", "crc32" or "none".
    pub digest: String,
    /// The engine that computed it: "sha-ni" or "portable" (sha256), "slicing-by-16"
    /// (crc32), "none".
    pub digest_engine: String,
    /// IEEE CRC-32 of the data read, as U-Boot's `crc32` and zlib print it (0 unless
    /// `digest` is "crc32").
    pub crc32: u32,
    /// The controller read (appended with `nvme read --bdf`, issue 23).
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GvnicDescriptor {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub revision: u8,
    pub mac: [u8; 6],
    pub mtu: u16,
    pub max_tx_queues: u32,
    pub max_rx_queues: u32,
    pub tx_queue_entries: u16,
    pub rx_queue_entries: u16,
    pub counters: u16,
    pub tx_pages_per_qpl: u16,
    pub rx_pages_per_qpl: u16,
    pub max_registered_pages: u64,
    /// Option ids in the order the device listed them.
    pub options: Vec<u16>,
    /// "gqi-qpl", or the error when no usable format is offered.
    pub queue_format: String,
    /// MSI-X table size (0 when the function has no MSI-X table we could map).
    pub msix_vectors: u16,
    /// MSI-X enable in the capability's message control.
    pub msix_enabled: bool,
    /// Vectors currently unmasked in the table.
    pub msix_unmasked: u16,
    /// Every format the device offers ("gqi-qpl", "dqo-rda", ...), in its order.
    pub offered_formats: Vec<String>,
    /// Every device option as the device sent it, decoded (issue 19).
    pub device_options: Vec<GvnicOption>,
    /// The MTU the device allows for the chosen format (JUMBO_FRAMES' when applied).
    pub device_max_mtu: u16,
    /// Ring sizes and RX packet buffer the driver uses inside the options' limits (0 when
    /// no format is usable or the limits leave nothing usable).
    pub ring_tx_entries: u16,
    pub ring_rx_entries: u16,
    pub packet_buffer_bytes: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GvnicTx {
    pub bytes: u32,
    /// What was sent, e.g. "dhcp-discover".
    pub kind: String,
    pub xid: u32,
    pub src_mac: [u8; 6],
    pub elapsed_us: u64,
    /// The queue format the frame went out in ("gqi-qpl", "dqo-rda", ...).
    pub queue_format: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GvnicRx {
    pub bytes: u32,
    /// "dhcp-offer", "arp", "ipv4", ... or "other".
    pub kind: String,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub ethertype: u16,
    /// DHCP OFFER fields (zero when not an offer for our xid).
    pub xid: u32,
    pub offered_ip: [u8; 4],
    pub server_ip: [u8; 4],
    pub lease_secs: u32,
    pub elapsed_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeardownStep {
    /// "nvme", "gvnic".
    pub device: String,
    /// e.g. "delete-io-sq", "shutdown", "reset".
    pub step: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Exception name, e.g. "page-fault".
    pub exception: String,
    pub vector: u8,
    pub rip: u64,
    pub error_code: u64,
    /// CR2 for page faults, 0 otherwise.
    pub address: u64,
    /// Whether the monitor went back to the prompt (fault inside a command).
    pub recovered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub topic: String,
    pub pairs: Vec<(String, String)>,
}

/// Quarantined pages of one ledger owner released: a later reset of that device was
/// confirmed (it was seen ready, then CSTS.RDY / the reset went through), so it can no
/// longer write them. Emitted by the command during which the reset was confirmed (a bind,
/// a recovery after a timeout, a teardown), before its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmaReleased {
    /// The ledger owner, as in `dma.ledger` entries ("nvme 00:04.0").
    pub owner: String,
    pub allocations: u32,
    pub pages: u32,
    /// What confirmed the reset, e.g. "reset confirmed at bind (CSTS.RDY 1 -> 0)".
    pub after: String,
}

/// A register read (`peek`, `pci read`, `io in`, `msr read`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegRead {
    /// "mem", "pci", "io", "msr".
    pub space: String,
    /// The function for "pci" (`00:04.0`), else empty.
    pub target: String,
    /// Virtual address, config offset, port, or MSR index.
    pub address: u64,
    /// Access width in bytes.
    pub width: u8,
    /// The values read, one per access from `address` on (at most 16 per frame).
    pub values: Vec<u64>,
    /// Accesses the command made in all (a long `peek` shows only the first 16 here).
    pub count: u32,
}

/// A register write: what was there, what was written, what reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegWrite {
    pub space: String,
    pub target: String,
    pub address: u64,
    pub width: u8,
    pub before: u64,
    pub value: u64,
    pub readback: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuidLeaf {
    pub leaf: u32,
    pub subleaf: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    pub vendor: String,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    pub brand: String,
    /// CPUID 0x4000_0000 signature ("KVMKVMKVM", "TCGTCGTCGTCG"), empty on bare metal.
    pub hypervisor: String,
    pub features: Vec<String>,
    /// The TSC frequency the monitor calibrated (source in `tsc_source`).
    pub tsc_hz: u64,
    pub apic_id: u8,
    /// The SHA-256 engine `nvme read` uses on this CPU: "sha-ni" or "portable".
    pub sha256_path: String,
    /// The monitor's confidential-VM detection ("none", "sev", "sev-es", "sev-snp", "tdx").
    pub confidential: String,
    /// The source `tsc_hz` came from (as in `Banner::tsc_source`).
    pub tsc_source: String,
    /// Every TSC source the monitor tried at boot, best first.
    pub tsc_sources: Vec<TscReading>,
}

/// What one TSC source said at boot (`cpu`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TscReading {
    /// "acpi-pm-timer", "hpet", "pit", "kvmclock", "cpuid-15h", ...
    pub source: String,
    /// The plausible rate it gave, 0 when none.
    pub hz: u64,
    /// Why it gave none ("absent", "no-answer", "not-counting", "window-too-short",
    /// "implausible-rate", "unreachable"), empty when it gave a rate.
    pub rejection: String,
    /// The raw values, as text ("35795 ticks of 3579545 Hz in 25000000 TSC ticks").
    pub raw: String,
    /// Signed deviation from the chosen rate, ppm (0 for the chosen source or no rate).
    pub deviation_ppm: i64,
}

/// One ACPI table as the RSDT/XSDT lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcpiTable {
    pub signature: String,
    pub phys: u64,
    pub length: u32,
    pub oem_id: String,
    pub revision: u8,
    pub checksum_ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MadtCpu {
    pub processor_uid: u32,
    pub apic_id: u32,
    /// Flags bit 0.
    pub enabled: bool,
    /// Flags bit 1 (may be brought online).
    pub online_capable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MadtIoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MadtOverride {
    pub bus: u8,
    pub irq: u8,
    pub gsi: u32,
    pub flags: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcpiMadt {
    pub local_apic_address: u64,
    pub cpus: Vec<MadtCpu>,
    pub ioapics: Vec<MadtIoApic>,
    pub overrides: Vec<MadtOverride>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McfgSegment {
    pub segment: u16,
    pub base: u64,
    pub bus_start: u8,
    pub bus_end: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcpiMcfg {
    pub segments: Vec<McfgSegment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcpiFadt {
    /// Generic address space of the PM timer (1 = I/O ports), its address, 0 when absent.
    pub pm_timer_space: u8,
    pub pm_timer_address: u64,
    pub pm_timer_32bit: bool,
    pub reset_supported: bool,
    pub reset_space: u8,
    pub reset_address: u64,
    pub reset_value: u8,
    /// CMOS index of the RTC century register (0 = none).
    pub century: u8,
    pub sci_interrupt: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcpiHpet {
    pub base: u64,
    pub block_id: u32,
    pub number: u8,
    pub min_tick: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemmapEntry {
    pub start: u64,
    pub len: u64,
    /// "usable", "reserved", "acpi-reclaimable", "acpi-nvs", "defective", "other".
    pub kind: String,
}

/// The firmware's memory map (in chunks of a few entries; every chunk carries the totals
/// and the monitor's placement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryMap {
    pub entries: Vec<MemmapEntry>,
    pub usable_bytes: u64,
    pub reserved_bytes: u64,
    pub image: (u64, u64),
    pub stack: (u64, u64),
    pub heap: (u64, u64),
    pub dma: (u64, u64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsixVector {
    pub index: u16,
    pub address: u64,
    pub data: u32,
    pub masked: bool,
    pub pending: bool,
}

/// A function's MSI-X state (vectors in chunks of a few per frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsixInfo {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub table_size: u16,
    pub enabled: bool,
    pub function_masked: bool,
    pub vectors: Vec<MsixVector>,
}

/// `irq test`: one MSI-X vector routed to the boot CPU, one command, the interrupts seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IrqTest {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    /// MSI-X table entry programmed.
    pub entry: u16,
    /// CPU vector it was routed to.
    pub vector: u8,
    pub address: u64,
    pub data: u32,
    /// Interrupts counted on `vector`.
    pub count: u32,
    /// Doorbell write to the first interrupt.
    pub latency_us: u64,
    /// Interrupts on other vectors meanwhile.
    pub other: u32,
    /// The entry, the MSI-X control word and the command register read back as before.
    pub restored: bool,
    /// "nvme" or "gvnic" (issue 20).
    pub device_kind: String,
    /// The vector's role: "io-cq" (NVMe), "rx-block" or "management" (gVNIC).
    pub role: String,
    /// What made the device raise it.
    pub trigger: String,
}

/// `mem map`: a physical range mapped uncached for peek/poke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemWindow {
    pub phys: u64,
    pub len: u64,
    pub window: u64,
    pub newly_mapped: bool,
}

/// NMIs (e.g. GCE's `send-diagnostic-interrupt`) seen since the previous `nmi` frame. The
/// handler returns with IRET, so the monitor carries on and later NMIs still arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nmi {
    /// NMIs this boot, this report's included.
    pub total: u32,
    /// NMIs since the previous report (more than 1 if several arrived in between).
    pub new: u32,
    /// Interrupted instruction of the latest one.
    pub rip: u64,
    /// The latest one arrived while a command ran (else at the prompt).
    pub in_command: bool,
    /// System control port B (0x61) at the latest one: bit 7 PCI SERR#, bit 6 IOCHK#.
    pub port_61: u8,
}

/// One machine-check bank with a valid error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McBank {
    pub bank: u8,
    /// IA32_MCi_STATUS (bit 63 VAL, 61 UC, 57 PCC, 58 ADDRV, 59 MISCV).
    pub status: u64,
    /// IA32_MCi_ADDR when ADDRV, else 0.
    pub addr: u64,
    /// IA32_MCi_MISC when MISCV, else 0.
    pub misc: u64,
}

/// A machine-check exception (#MC, vector 18), as read before the handler cleared it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineCheck {
    /// IA32_MCG_STATUS (bit 0 RIPV, bit 1 EIPV, bit 2 MCIP).
    pub mcg_status: u64,
    /// IA32_MCG_CAP (bits 7:0 bank count).
    pub mcg_cap: u64,
    pub banks: Vec<McBank>,
    pub rip: u64,
    /// A command was running and was aborted (else: at the prompt).
    pub in_command: bool,
}

/// One frame the network stack sent or received (`net.*` frames carry the first ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetWireEvent {
    pub tx: bool,
    /// Microseconds since the command's first frame.
    pub at_us: u64,
    pub bytes: u32,
    /// "dhcp-discover", "dhcp-offer", "arp-request", "arp-reply", "icmp-echo-reply", "tcp-syn", ...
    pub kind: String,
}

/// One classless static route (DHCP option 121).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetRoute {
    pub destination: [u8; 4],
    pub prefix_len: u8,
    /// 0.0.0.0: on-link.
    pub gateway: [u8; 4],
}

/// `gvnic dhcp`: the lease smoltcp's DHCP client took, and the exchange on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetLease {
    pub mac: [u8; 6],
    pub address: [u8; 4],
    /// As the server's subnet mask says.
    pub prefix_len: u8,
    /// What the interface uses (widened to cover the gateway: GCE's /32).
    pub interface_prefix_len: u8,
    /// Option 3 (0.0.0.0 if absent).
    pub router: [u8; 4],
    /// The next hop actually used: option 121's default route, else option 3.
    pub gateway: [u8; 4],
    pub dns: Vec<[u8; 4]>,
    /// 0 if absent.
    pub mtu: u16,
    /// 0 if absent.
    pub lease_secs: u32,
    pub server_id: [u8; 4],
    pub classless_routes: Vec<NetRoute>,
    pub elapsed_us: u64,
    pub wire: Vec<NetWireEvent>,
}

/// `gvnic ping`: echo requests and the replies' round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetPing {
    pub target: [u8; 4],
    pub next_hop: [u8; 4],
    /// From its ARP reply (zero if none came).
    pub next_hop_mac: [u8; 6],
    pub sent: u16,
    /// Sequence numbers that got a reply, with their round trips.
    pub reply_seqs: Vec<u16>,
    pub rtts_us: Vec<u64>,
    pub wire: Vec<NetWireEvent>,
}

/// `gvnic http` / `gvnic metadata`: one GET and its response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetHttp {
    pub url: String,
    /// Names of the headers we sent beyond Host, User-Agent, Accept, Connection.
    pub sent_headers: Vec<String>,
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    /// The first `max_bytes` of the body.
    pub body: Vec<u8>,
    /// The whole body's length and SHA-256.
    pub body_bytes: u64,
    pub sha256: [u8; 32],
    pub truncated: bool,
    /// The body ended as its framing says (length, last chunk, or the server's close).
    pub complete: bool,
    pub connect_us: u64,
    /// 0 if no byte came.
    pub first_byte_us: u64,
    pub total_us: u64,
}

/// One DESCRIBE_DEVICE option in a `gvnic.describe` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GvnicOption {
    pub id: u16,
    /// "MODIFY_RING", ... or "option 0x1f".
    pub name: String,
    /// Body length in bytes.
    pub length: u16,
    pub required_features_mask: u32,
    /// The body's first BE32 (the supported-features word of known options).
    pub features: Option<u32>,
    /// The decoded limits in words ("ring sizes RX 512..4096, TX 256..4096").
    pub decoded: String,
    /// The driver applies it (well formed, and the chosen format's features carry its bit).
    pub applied: bool,
    /// An unknown option's body, as sent (at most 64 bytes).
    pub raw: Vec<u8>,
}

/// One run of the live page tables (`mem types`): `len` bytes at virtual `virt` map
/// physical `phys..` with one memory type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemTypeRun {
    pub virt: u64,
    pub phys: u64,
    pub len: u64,
    /// "WB", "UC", "WC", "WT", "WP", "UC-" or "reserved" (the PAT type the entry selects).
    pub mem_type: String,
    pub writable: bool,
    /// virt == phys below 4 GiB.
    pub identity: bool,
}

/// Physical bytes mapped twice with different memory types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemTypeAlias {
    pub phys: u64,
    pub len: u64,
    pub first_virt: u64,
    pub first_type: String,
    pub second_virt: u64,
    pub second_type: String,
}

/// `mem types [phys len]`: the mappings (of the physical range, or all), and the aliases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemTypes {
    /// The physical range asked about (0..u64::MAX for all).
    pub phys: u64,
    pub len: u64,
    pub runs: Vec<MemTypeRun>,
    /// Runs not in `runs` because the frame has a cap.
    pub runs_left_off: u32,
    pub aliases: Vec<MemTypeAlias>,
}

/// `mem unmap` / `bar unmap`: the user's mapping of `[phys, phys+len)` released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemUnmap {
    pub phys: u64,
    pub len: u64,
    /// The user's mappings of exactly this range still outstanding.
    pub still_mapped: u32,
}

/// `nvme write`. The data is `pattern` ("byte": every byte is `pattern_value`; "seed": the
/// SplitMix64 stream of drivers::pattern from seed `pattern_value`, addressed by namespace
/// byte offset), so the host can recompute every byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvmeWrite {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub nsid: u32,
    pub lba: u64,
    pub count: u64,
    pub bytes: u64,
    pub elapsed_us: u64,
    pub commands: u64,
    pub pattern: String,
    pub pattern_value: u64,
    /// Force Unit Access on every WRITE.
    pub fua: bool,
    /// Digest of the data written, as for `nvme.read` ("sha256", "crc32" or "none").
    pub digest: String,
    pub digest_engine: String,
    pub sha256: [u8; 32],
    pub crc32: u32,
    /// The boot-disk guard was overridden (`--force-boot-disk`).
    pub forced_boot_disk: bool,
}

/// `nvme verify`: the range read back and compared with the pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvmeVerify {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub nsid: u32,
    pub lba: u64,
    pub count: u64,
    pub pattern: String,
    pub pattern_value: u64,
    pub elapsed_us: u64,
    /// Every byte matched.
    pub ok: bool,
    /// The first mismatch (all 0 when `ok`): block, byte in the block, and the two values.
    pub mismatch_lba: u64,
    pub mismatch_offset: u32,
    pub expected: u8,
    pub found: u8,
}

/// `nvme flush`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvmeFlush {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub nsid: u32,
    pub elapsed_us: u64,
}

/// `nvme list`: one namespace of one NVMe controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NvmeDisk {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub vendor_id: u16,
    pub device_id: u16,
    pub model: String,
    pub serial: String,
    pub nsid: u32,
    pub blocks: u64,
    pub block_size: u32,
    /// Separate metadata bytes per block of the format in use.
    pub metadata_size: u16,
    /// The LBA format index in use (FLBAS).
    pub lba_format: u8,
    pub capacity_bytes: u64,
    /// GCE's disk name from Identify Namespace (empty if absent).
    pub gce_device_name: String,
    /// LBA 1 carries the GPT disk GUID the image recorded: the disk the monitor booted from.
    pub boot_disk: bool,
}

/// `gvnic txdhcp|dhcp|ping|http|metadata --irq`: how the command's TX and RX completions
/// were waited for, and the interrupts that reached the boot CPU meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GvnicWaits {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    /// The command ("gvnic dhcp", ...).
    pub command: String,
    /// "irq" (polling, the default, emits no frame).
    pub mode: String,
    /// The boot CPU's vector and the MSI message both blocks were routed to.
    pub vector: u8,
    pub address: u64,
    pub data: u32,
    /// MSI-X entries routed: TX block, RX block.
    pub entries: Vec<u16>,
    /// Interrupts taken on `vector` during the command.
    pub interrupts: u32,
    /// Interrupts on other vectors meanwhile.
    pub other: u32,
    /// Every MSI-X entry, the control word and the command register read back as before.
    pub restored: bool,
    /// The command's error code ("" when it succeeded), e.g. "irq-not-delivered".
    pub error: String,
}
