//! What the model reports and how it misbehaves: `ModelConfig`, `Formats`, `Faults`, `Responder`.
//!
//! Defaults are "a c3-standard-4 as far as the reference says" (facts §0, §3.1). Where the
//! reference gives no number (queue counts, page budget) the value is a labelled guess.

use std::net::Ipv4Addr;

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
    pub faults: Faults,
    pub responder: Responder,
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
            // Guess: enough for every queue pair at full size (4 * (512 + 1024) = 6144).
            max_registered_pages: 8192,
            default_num_queues: 4,
            formats: Formats::default(),
            faults: Faults::default(),
            responder: Responder::default(),
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
#[derive(Clone, Debug)]
pub struct Formats {
    /// Option 0x3 GQI_QPL: the only format whose data path the model implements.
    pub gqi_qpl: bool,
    /// Option 0x2 GQI_RDA.
    pub gqi_rda: bool,
    /// Option 0x4 DQO_RDA (newer shapes offer only this one, facts §0.9).
    pub dqo_rda: bool,
    /// Option 0x7 DQO_QPL.
    pub dqo_qpl: bool,
    /// No format option at all (old devices): drivers fall back to GQI-QPL (facts §3.1).
    /// Overrides the four flags above.
    pub none: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Formats {
            gqi_qpl: true,
            gqi_rda: false,
            dqo_rda: false,
            dqo_qpl: false,
            none: false,
        }
    }
}

impl Formats {
    /// Only DQO_RDA, like a4-highgpu-8g (facts §0.9).
    pub fn dqo_only() -> Self {
        Formats {
            gqi_qpl: false,
            gqi_rda: false,
            dqo_rda: true,
            dqo_qpl: false,
            none: false,
        }
    }
}

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
    /// iPXE's observation (facts §2.2): resetting an already-reset device schedules a delayed
    /// reset. When set, such a redundant reset makes the device reset itself again this many
    /// ticks later.
    pub delayed_reset_after_redundant_reset: Option<u32>,
    /// The next N inbound frames are delivered with the descriptor's ERR flag set (as a
    /// device reports a frame it received damaged); the driver must drop them.
    pub rx_error_frames: u32,
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
