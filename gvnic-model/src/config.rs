//! What the model reports and how it misbehaves: `ModelConfig`, `Formats`, `Faults`, `Responder`.
//!
//! Defaults are "a c3-standard-4 as far as the reference says" (facts §0, §3.1). Where the
//! reference gives no number (queue counts, page budget) the value is a labelled guess.

use std::net::Ipv4Addr;

/// The default `max_registered_pages` (see `ModelConfig::default`).
pub const MAX_REGISTERED_PAGES: u64 = 4 * (512 + 512 + 2 * 4096);

/// Everything DESCRIBE_DEVICE and PCI config space report, plus fault injection and the peer.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// PCI revision: 0 = legacy AQ_PFN admin queue, 1 = base/length/RUN (facts §2.1).
    pub revision: u8,
    /// GCE MACs carry the VM's IPv4 in the last four bytes (facts §3.1, iPXE).
    pub mac: [u8; 6],
    /// 1460 is the usual GCE default (facts §3.1).
    pub mtu: u16,
    pub max_tx_queues: u32,
    pub max_rx_queues: u32,
    /// TX ring size in descriptors; must be a power of two (facts §4.5).
    pub tx_queue_entries: u16,
    /// RX descriptor/data ring size; must be a power of two (facts §4.5).
    pub rx_queue_entries: u16,
    /// Event counters the guest must allocate (facts §3.2).
    pub counters: u16,
    pub tx_pages_per_qpl: u16,
    pub rx_pages_per_qpl: u16,
    /// Pages registrable across all QPLs together (facts §3.1/§3.3).
    pub max_registered_pages: u64,
    pub default_num_queues: u16,
    /// Which queue-format device options DESCRIBE_DEVICE advertises.
    pub formats: Formats,
    /// The device generation: which optional device options it describes (profile.rs).
    pub profile: crate::Profile,
    pub faults: Faults,
    pub responder: Responder,
    /// How long the device takes for what it does (model time, see [`Latencies`]).
    pub latencies: Latencies,
    /// When a revision >= 1 device clears DEVICE_IS_RESET (no source says; both modelled).
    pub device_is_reset: DeviceIsReset,
    /// Whether DEVICE_IS_RESET (revision >= 1) reads set at power-on and after a PCI reset,
    /// before any reset was requested. No source says (guess, both modelled): true was the
    /// model's first guess; iPXE's GCE finding (a reset of a device that reads PFN 0 is
    /// redundant and schedules a delayed reset) means a driver must not need the bit to
    /// tell that a pristine device is reset, and `false` shows whether it does.
    pub device_is_reset_at_power_on: bool,
    /// The BE64 REPORT_LINK_SPEED answers, in Mbit/s (guess: GCE's 4-vCPU shapes are sold
    /// with "up to 10 Gbps"; the reference gives no number).
    pub link_speed_mbps: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            revision: 0,
            // 42:01 is GCE's prefix; 0a:80:00:02 = 10.128.0.2, a typical first VM address.
            mac: [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02],
            mtu: 1460,
            // Guess: 4 vCPUs -> 4 queue pairs (the reference does not list per-shape values).
            max_tx_queues: 4,
            max_rx_queues: 4,
            // 1024 TX entries were seen on n2d (facts §3.1); RX the same (guess).
            tx_queue_entries: 1024,
            rx_queue_entries: 1024,
            // iPXE saw the device pick among "its potential 32 event counters" (facts §3.2).
            counters: 32,
            // Guess: Linux registers tx_pages_per_qpl for TX and one page per RX slot (§3.3).
            tx_pages_per_qpl: 512,
            rx_pages_per_qpl: 1024,
            // Enough for every stock driver in every format at the largest rings the 2026
            // profile's MODIFY_RING allows (4096), XDP TX queues included: 4 queues x (TX 512
            // + XDP TX 512 + DQO-QPL RX 2 x 4096) = 36 864 pages (144 MiB). Linux 6.12
            // DQO-QPL at the default rings needs 4 x 512 + 4 x 2048 = 10 240, over the old
            // guess of 8192 (issue 19). GCE's real number is not public (guess); the
            // arithmetic per driver is in docs/gvnic-model.md, "The page budget".
            max_registered_pages: MAX_REGISTERED_PAGES,
            default_num_queues: 4,
            formats: Formats::default(),
            profile: crate::Profile::default(),
            faults: Faults::default(),
            responder: Responder::default(),
            latencies: Latencies::default(),
            device_is_reset: DeviceIsReset::default(),
            device_is_reset_at_power_on: true,
            link_speed_mbps: 10_000,
        }
    }
}

impl ModelConfig {
    /// The IPv4 address GCE encodes in its MACs (last four bytes), used as the default offer.
    pub fn mac_ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.mac[2], self.mac[3], self.mac[4], self.mac[5])
    }
}

/// Queue-format device options advertised by DESCRIBE_DEVICE (facts §3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formats {
    /// Option 0x3 GQI_QPL (n2-standard-96, c3-standard-4 in 2024: gvnic-dqo.md §2).
    pub gqi_qpl: bool,
    /// Option 0x2 GQI_RDA.
    pub gqi_rda: bool,
    /// Option 0x4 DQO_RDA (a4-highgpu-8g offers only this one, facts §0.9).
    pub dqo_rda: bool,
    /// Option 0x7 DQO_QPL.
    pub dqo_qpl: bool,
    /// No format option at all (old devices): drivers fall back to GQI-QPL (facts §3.1).
    /// Overrides the four flags above.
    pub none: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Formats::only(&[QueueFormat::GqiQpl])
    }
}

/// The four queue formats, as CONFIGURE_DEVICE_RESOURCES names them (facts §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum QueueFormat {
    GqiRda,
    GqiQpl,
    DqoRda,
    DqoQpl,
}

/// The two descriptor families: GQI (BE, in-order, one ring per direction) and DQO (LE,
/// separate completion rings) (gvnic-dqo.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Gqi,
    Dqo,
}

impl QueueFormat {
    pub const ALL: [QueueFormat; 4] = [
        QueueFormat::GqiQpl,
        QueueFormat::GqiRda,
        QueueFormat::DqoRda,
        QueueFormat::DqoQpl,
    ];

    /// The queue_format byte of CONFIGURE_DEVICE_RESOURCES (facts §3.2).
    pub fn wire(self) -> u8 {
        match self {
            QueueFormat::GqiRda => 1,
            QueueFormat::GqiQpl => 2,
            QueueFormat::DqoRda => 3,
            QueueFormat::DqoQpl => 4,
        }
    }

    /// 0 (unspecified, legacy) means GQI-QPL (facts §3.1 fallback).
    pub fn from_wire(v: u8) -> Option<QueueFormat> {
        match v {
            0 | 2 => Some(QueueFormat::GqiQpl),
            1 => Some(QueueFormat::GqiRda),
            3 => Some(QueueFormat::DqoRda),
            4 => Some(QueueFormat::DqoQpl),
            _ => None,
        }
    }

    pub fn family(self) -> Family {
        match self {
            QueueFormat::GqiRda | QueueFormat::GqiQpl => Family::Gqi,
            QueueFormat::DqoRda | QueueFormat::DqoQpl => Family::Dqo,
        }
    }

    /// Registered queue page lists (QPL) rather than raw DMA addressing (RDA).
    pub fn is_qpl(self) -> bool {
        matches!(self, QueueFormat::GqiQpl | QueueFormat::DqoQpl)
    }

    /// The name `--formats` uses.
    pub fn name(self) -> &'static str {
        match self {
            QueueFormat::GqiQpl => "gqi-qpl",
            QueueFormat::GqiRda => "gqi-rda",
            QueueFormat::DqoRda => "dqo-rda",
            QueueFormat::DqoQpl => "dqo-qpl",
        }
    }
}

impl std::fmt::Display for QueueFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Formats {
    /// Exactly these formats.
    pub fn only(list: &[QueueFormat]) -> Self {
        Formats {
            gqi_qpl: list.contains(&QueueFormat::GqiQpl),
            gqi_rda: list.contains(&QueueFormat::GqiRda),
            dqo_rda: list.contains(&QueueFormat::DqoRda),
            dqo_qpl: list.contains(&QueueFormat::DqoQpl),
            none: false,
        }
    }

    /// Only DQO_RDA, like a4-highgpu-8g (facts §0.9).
    pub fn dqo_only() -> Self {
        Formats::only(&[QueueFormat::DqoRda])
    }

    /// No queue-format option at all (an old device).
    pub fn none() -> Self {
        Formats {
            none: true,
            ..Formats::only(&[])
        }
    }

    /// The formats a driver may configure: with no option at all, GQI-QPL (facts §3.1).
    pub fn offers(&self, f: QueueFormat) -> bool {
        if self.none {
            return f == QueueFormat::GqiQpl;
        }
        match f {
            QueueFormat::GqiQpl => self.gqi_qpl,
            QueueFormat::GqiRda => self.gqi_rda,
            QueueFormat::DqoRda => self.dqo_rda,
            QueueFormat::DqoQpl => self.dqo_qpl,
        }
    }

    /// The advertised options, in `QueueFormat::ALL` order (empty for `none`).
    pub fn advertised(&self) -> Vec<QueueFormat> {
        if self.none {
            return Vec::new();
        }
        QueueFormat::ALL
            .into_iter()
            .filter(|f| self.offers(*f))
            .collect()
    }
}

/// `gqi-qpl,dqo-rda` (any subset, comma separated) or `none`.
impl std::str::FromStr for Formats {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "none" {
            return Ok(Formats::none());
        }
        let mut list = Vec::new();
        for item in s.split(',').map(str::trim) {
            let f = QueueFormat::ALL
                .into_iter()
                .find(|f| f.name() == item)
                .ok_or_else(|| {
                    format!("unknown queue format {item:?}: expected gqi-qpl, gqi-rda, dqo-rda, dqo-qpl or none")
                })?;
            if list.contains(&f) {
                return Err(format!("queue format {item} given twice"));
            }
            list.push(f);
        }
        Ok(Formats::only(&list))
    }
}

impl std::fmt::Display for Formats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.advertised().iter().map(|q| q.name()).collect();
        if self.none || names.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&names.join(","))
    }
}

/// How long the device takes, in model microseconds. The in-process model advances
/// `TICK_US` per [`crate::Gvnic::tick`] (one driver `Clock::relax`); the proxy front end
/// advances it by wall-clock time. The reference gives no numbers: Fuchsia says the version
/// register and reset "succeed instantly" (facts §2, §2.2), so the defaults are small but
/// non-zero, so that a driver that does not wait is caught (guess).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latencies {
    /// Doorbell to event counter (and the commands' effects).
    pub admin_us: u64,
    /// A reset request (PFN = 0 or DRIVER_STATUS.RESET) to the device letting go.
    pub reset_us: u64,
    /// A transmitted packet to its completion (GQI counter, DQO completion entry).
    pub tx_completion_us: u64,
    /// A frame reaching the device from the network to its delivery into an RX buffer.
    pub rx_arrival_us: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            admin_us: 200,
            reset_us: 1_000,
            tx_completion_us: 100,
            rx_arrival_us: 100,
        }
    }
}

impl Latencies {
    /// Everything at once (the model's behaviour before latencies existed).
    pub fn zero() -> Self {
        Latencies {
            admin_us: 0,
            reset_us: 0,
            tx_completion_us: 0,
            rx_arrival_us: 0,
        }
    }
}

/// When DEVICE_STATUS.DEVICE_IS_RESET (revision >= 1) goes back to 0. Facts §2.2 only say a
/// driver requests the reset and polls for the bit; what clears it is in no source (issue 11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceIsReset {
    /// Cleared when the admin queue starts (RUN or a PFN write): the model's first guess.
    #[default]
    ClearedByRun,
    /// Stays set while the device runs; cleared only by the next reset request (so it
    /// means "the last requested reset has finished", nothing about the present).
    ClearedByResetRequest,
    /// Once set (power-on, any completed reset), never cleared: the bit says nothing after
    /// the first reset, and a driver must confirm a reset another way (PFN reads 0).
    NeverCleared,
}

/// "A few seconds" (iPXE's words) as ticks: 3 s (guess within iPXE's description).
pub const REDUNDANT_RESET_DELAY_TICKS: u32 = 30_000;

/// Fault injection; all off by default.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer every command with this opcode with this status, without executing it.
    pub status_for_opcode: Option<(u32, u32)>,
    /// A reset request is ignored: PFN stays non-zero, DEVICE_IS_RESET never set, nothing released.
    pub reset_never_completes: bool,
    /// After N admin commands have completed the device resets itself (host-initiated reset,
    /// facts §2.2): PFN reads 0, DEVICE_STATUS.RESET is raised, the AQ stops.
    pub spurious_reset_after_commands: Option<u32>,
    /// Inbound frames are dropped.
    pub no_rx: bool,
    /// The TX event counter advances only this many ticks after the doorbell.
    pub tx_completion_delay_ticks: u32,
    /// The AQ event counter never advances (and no command executes).
    pub admin_never_completes: bool,
    /// iPXE's observation on GCE (gve.c, gve_reset; facts §2.2): resetting an already-reset
    /// device (it holds no admin queue: PFN reads 0) schedules a delayed reset "a few seconds
    /// later", so a driver that answers each reset with a reset loops. When set, such a
    /// redundant reset makes the device reset itself (as `spurious_reset_*` does: PFN 0,
    /// DEVICE_STATUS.RESET, management vector) this many ticks (`TICK_US` = 100 µs each)
    /// later; each further redundant reset moves it later again. [`REDUNDANT_RESET_DELAY_TICKS`]
    /// is "a few seconds".
    pub delayed_reset_after_redundant_reset: Option<u32>,
    /// The next N inbound frames are delivered with the descriptor's ERR flag set (GQI) or
    /// the completion's rx_error bit (DQO), as a device reports a frame it received damaged;
    /// the driver must drop them.
    pub rx_error_frames: u32,
    /// DQO: every completion carries generation 1, so after the first wrap the driver sees
    /// nothing new (a broken device; the driver must time out, not spin or misread).
    pub dqo_generation_stuck: bool,
    /// DQO: completions are produced but never written back, not even on a full line or an
    /// interrupt (a stuck device).
    pub dqo_completions_never_written: bool,
    /// After N transmitted packets (GQI or DQO) the device resets itself (a host reset under
    /// a running data path): as `spurious_reset_after_commands`, at the next tick. Doorbells
    /// rung after it, until the driver resets the device, are counted in
    /// `Record::after_reset_doorbells`, not recorded as violations.
    pub spurious_reset_after_tx_packets: Option<u32>,
}

/// The built-in network peer: answers like GCE's network (DHCP server, ARP for the gateway).
#[derive(Clone, Debug)]
pub struct Responder {
    pub enabled: bool,
    /// Address offered to the guest; `None` = the IPv4 in the MAC's last four bytes.
    pub offered_ip: Option<Ipv4Addr>,
    /// GCE's DHCP server is the metadata address.
    pub server_ip: Ipv4Addr,
    pub router_ip: Ipv4Addr,
    /// GCE hands out a /32 with a route to the gateway (guess: modelled as 255.255.255.255).
    pub subnet_mask: Ipv4Addr,
    pub lease_secs: u32,
    /// The MAC GCE's gateway answers ARP with (42:01:0a:80:00:01 in the default network).
    pub gateway_mac: [u8; 6],
    /// Ticks between the guest's frame and the reply arriving.
    pub reply_delay_ticks: u32,
}

impl Default for Responder {
    fn default() -> Self {
        Responder {
            enabled: true,
            offered_ip: None,
            server_ip: Ipv4Addr::new(169, 254, 169, 254),
            router_ip: Ipv4Addr::new(10, 128, 0, 1),
            subnet_mask: Ipv4Addr::new(255, 255, 255, 255),
            lease_secs: 86400,
            gateway_mac: [0x42, 0x01, 0x0a, 0x80, 0x00, 0x01],
            reply_delay_ticks: 1,
        }
    }
}
