//! The data paths, one file per family and direction (as Linux splits gve_tx.c /
//! gve_tx_dqo.c): GQI (facts §4) and DQO (gvnic-dqo.md §1.6-§1.8). QPL vs RDA is a field of
//! each ring (addressing.rs), not a file. Dispatch by family happens here and in queues.rs.

pub mod completion;
mod csum;
pub mod dqo_rx;
pub mod dqo_tx;
pub mod gqi_rx;
pub mod gqi_tx;

use crate::config::Family;
use crate::{GuestMemory, Gvnic};

/// A TX completion waiting for the TX latency.
#[derive(Clone, Debug)]
pub(crate) struct TxDone {
    /// Model time (µs) at which it becomes visible.
    pub due: u64,
    pub qid: u32,
    pub what: TxDoneKind,
}

#[derive(Clone, Debug)]
pub(crate) enum TxDoneKind {
    /// GQI: the BE32 event counter's new value (descriptors completed).
    GqiCounter(u32),
    /// DQO: completion entries (generation bit not yet set).
    Dqo(Vec<Vec<u8>>),
}

impl Gvnic {
    /// Hand due inbound frames to the lowest-numbered RX queue (no RSS modelled).
    pub(crate) fn deliver_rx(&mut self, mem: &dyn GuestMemory) {
        while let Some((due, _)) = self.wire.pending_rx.front() {
            if *due > self.now {
                return;
            }
            if self.cfg.faults.no_rx {
                let (_, f) = self.wire.pending_rx.pop_front().unwrap_or_default();
                self.wire
                    .record_rx(f, self.now_ticks(), Some("no_rx fault"));
                continue;
            }
            let Some((&qid, q)) = self.rx.iter().next() else {
                let (_, f) = self.wire.pending_rx.pop_front().unwrap_or_default();
                self.wire
                    .record_rx(f, self.now_ticks(), Some("no RX queue"));
                continue;
            };
            let family = q.format.family();
            let frame_len = self.wire.pending_rx.front().map_or(0, |(_, f)| f.len());
            // Ethernet header + one VLAN tag + a payload of at most the MTU.
            if frame_len > usize::from(self.max_mtu()) + 18 {
                let (_, frame) = self.wire.pending_rx.pop_front().unwrap_or_default();
                self.nic_counters.over_mru += 1;
                self.wire
                    .record_rx(frame, self.now_ticks(), Some("larger than the MTU"));
                continue;
            }
            let room = match family {
                Family::Gqi => self.gqi_rx_room(qid, frame_len),
                Family::Dqo => self.dqo_rx_room(qid, frame_len),
            };
            if !room {
                return; // not enough buffers posted: hold the frame until the doorbell
            }
            let (_, frame) = self.wire.pending_rx.pop_front().unwrap_or_default();
            match family {
                Family::Gqi => self.rx_one(qid, frame, mem),
                Family::Dqo => self.dqo_rx_one(qid, frame, mem),
            }
        }
    }
}
