//! The admin commands beyond bring-up that Google's Linux driver sends on probe, open, close
//! and remove (GCP-Linux gve_adminq.c; layouts in facts §3.8 and gvnic-dqo.md §1.11):
//! VERIFY_DRIVER_COMPATIBILITY, GET_PTYPE_MAP, REPORT_STATS, REPORT_LINK_SPEED and
//! SET_DRIVER_PARAMETER (MTU). All fields BE.
//!
//! REPORT_STATS body: stats_report_len BE64, stats_report_addr BE64, interval BE64 (ms).
//! The report is {written_count BE64, then 16-byte entries {stat_name BE32, queue_id BE32,
//! value BE64}}. The driver writes its own entries (6 per TX queue, 2 per RX queue, in that
//! order) and the device its NIC entries after them: per RX queue RX_QUEUE_DROP_CNT (65),
//! RX_NO_BUFFERS_POSTED (66), RX_DROPS_PACKET_OVER_MRU (67), RX_DROPS_INVALID_CHECKSUM (68)
//! (Linux gve_adminq.h, gve_ethtool.c). A length and address of 0 detach the report.

use crate::codes::status;
use crate::layout::LenAddr;
use crate::record::{DriverInfo, ViolationKind};
use crate::{be32, be64, GuestMemory, Gvnic};

pub use crate::codes::opcode;

/// NIC statistics names (Linux `enum gve_stat_names`).
pub mod stat {
    pub const RX_QUEUE_DROP_CNT: u32 = 65;
    pub const RX_NO_BUFFERS_POSTED: u32 = 66;
    pub const RX_DROPS_PACKET_OVER_MRU: u32 = 67;
    pub const RX_DROPS_INVALID_CHECKSUM: u32 = 68;
}

/// Driver-written entries per queue, before the NIC's (Linux GVE_TX/RX_STATS_REPORT_NUM).
pub const DRIVER_STATS_PER_TX_QUEUE: u64 = 6;
pub const DRIVER_STATS_PER_RX_QUEUE: u64 = 2;
const STAT_BYTES: u64 = 16;
/// The fixed part of struct gve_driver_info (before the two 128-byte strings).
pub const DRIVER_INFO_FIXED_BYTES: usize = 48;
const SET_PARAM_MTU: u32 = 1;

/// An attached stats report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatsReport {
    pub len: u64,
    pub addr: u64,
    pub interval_us: u64,
    pub next_due: u64,
}

/// What the device counts for the NIC stats (all RX queues together: no RSS modelled).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NicCounters {
    pub no_buffers: u64,
    pub over_mru: u64,
}

impl Gvnic {
    pub(crate) fn cmd_verify_driver_compatibility(
        &mut self,
        cmd: &[u8; 64],
        mem: &dyn GuestMemory,
    ) -> u32 {
        let LenAddr { len, addr } = LenAddr::parse(cmd);
        if (len as usize) < DRIVER_INFO_FIXED_BYTES || len > 4096 {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("VERIFY_DRIVER_COMPATIBILITY driver_info_len {len}"),
            );
        }
        let mut info = vec![0u8; len as usize];
        if !self.dma_read(mem, addr, &mut info, "driver info") {
            return status::INVALID_ARGUMENT;
        }
        let text = |b: &[u8]| {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        };
        let strings = &info[DRIVER_INFO_FIXED_BYTES..];
        let (s1, s2) = strings.split_at(strings.len().min(128));
        self.record.driver_infos.push(DriverInfo {
            os_type: info[0],
            driver_version: [info[1], info[2], info[3]],
            os_version: [be32(&info, 4), be32(&info, 8), be32(&info, 12)],
            capability_flags: [
                be64(&info, 16),
                be64(&info, 24),
                be64(&info, 32),
                be64(&info, 40),
            ],
            os_version_str1: text(s1),
            os_version_str2: text(&s2[..s2.len().min(128)]),
        });
        // Guess: the device knows every capability Linux names and accepts any driver.
        status::PASSED
    }

    pub(crate) fn cmd_get_ptype_map(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let LenAddr { len, addr } = LenAddr::parse(cmd);
        let map = crate::ptype::map_bytes();
        if len < map.len() as u64 {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("GET_PTYPE_MAP length {len} < {}", map.len()),
            );
        }
        if !self.dma_write(mem, addr, &map, "ptype map") {
            return status::INVALID_ARGUMENT;
        }
        status::PASSED
    }

    pub(crate) fn cmd_report_link_speed(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let addr = be64(cmd, 8);
        let speed = self.cfg.link_speed_mbps.to_be_bytes();
        if !self.dma_write(mem, addr, &speed, "link speed") {
            return status::INVALID_ARGUMENT;
        }
        status::PASSED
    }

    pub(crate) fn cmd_set_driver_parameter(&mut self, cmd: &[u8; 64]) -> u32 {
        let (kind, value) = (be32(cmd, 8), be64(cmd, 16));
        if kind != SET_PARAM_MTU {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("SET_DRIVER_PARAMETER type {kind} (only 1 = MTU exists)"),
            );
        }
        // Linux rejects an MTU below 68 (facts §3.1); above the largest the device carries
        // (JUMBO_FRAMES' max_mtu, else the described one) it cannot (guess: refused).
        if !(68..=u64::from(self.max_mtu())).contains(&value) {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!(
                    "SET_DRIVER_PARAMETER MTU {value}: the device carries 68..={}",
                    self.max_mtu()
                ),
            );
        }
        status::PASSED
    }

    pub(crate) fn cmd_report_stats(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let LenAddr { len, addr } = LenAddr::parse(cmd);
        let interval_ms = be64(cmd, 24);
        if len == 0 && addr == 0 {
            self.stats_report = None;
            return status::PASSED;
        }
        if !(8..=1 << 20).contains(&len) || !self.check_ram(mem, addr, len, "stats report") {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("REPORT_STATS {addr:#x}+{len:#x}"),
            );
        }
        self.stats_report = Some(StatsReport {
            len,
            addr,
            interval_us: interval_ms.saturating_mul(1000).max(1000),
            next_due: self.now,
        });
        self.write_stats(mem);
        status::PASSED
    }

    /// Write the NIC's entries into the attached report, if one is due.
    pub(crate) fn write_stats(&mut self, mem: &dyn GuestMemory) {
        let Some(mut r) = self.stats_report else {
            return;
        };
        if self.now < r.next_due {
            return;
        }
        r.next_due = self.now + r.interval_us;
        self.stats_report = Some(r);
        let base = DRIVER_STATS_PER_TX_QUEUE * self.tx.len() as u64
            + DRIVER_STATS_PER_RX_QUEUE * self.rx.len() as u64;
        let qids: Vec<u32> = self.rx.keys().copied().collect();
        let mut bytes = Vec::new();
        for (i, qid) in qids.iter().enumerate() {
            // No RSS: every drop is counted on the lowest queue.
            let c = if i == 0 {
                self.nic_counters
            } else {
                NicCounters::default()
            };
            for (name, value) in [
                (stat::RX_QUEUE_DROP_CNT, c.no_buffers + c.over_mru),
                (stat::RX_NO_BUFFERS_POSTED, c.no_buffers),
                (stat::RX_DROPS_PACKET_OVER_MRU, c.over_mru),
                (stat::RX_DROPS_INVALID_CHECKSUM, 0),
            ] {
                bytes.extend_from_slice(&name.to_be_bytes());
                bytes.extend_from_slice(&qid.to_be_bytes());
                bytes.extend_from_slice(&value.to_be_bytes());
            }
        }
        let at = 8 + base * STAT_BYTES;
        if bytes.is_empty() || at + bytes.len() as u64 > r.len {
            return; // nothing to report, or the driver sized the report for fewer queues
        }
        self.dma_write(mem, r.addr + at, &bytes, "stats report");
    }

    /// A range must be guest RAM (no alignment rule: Linux allocates these coherently).
    fn check_ram(&mut self, mem: &dyn GuestMemory, gpa: u64, len: u64, what: &str) -> bool {
        let mut probe = vec![0u8; len as usize];
        self.dma_read(mem, gpa, &mut probe, what)
    }
}
