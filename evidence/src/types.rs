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
    /// SHA-256 of the data read (all zero when the digest was switched off).
    pub sha256: [u8; 32],
    pub first_bytes: [u8; 16],
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
