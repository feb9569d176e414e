//! CREATE/DESTROY_TX_QUEUE and _RX_QUEUE (facts §3.4-§3.6, §4.4) and doorbell routing.

use crate::adminq::status;
use crate::qpl::RDA_QPL_ID;
use crate::record::ViolationKind;
use crate::resources::{queue_format, IRQ_DOORBELL_BASE};
use crate::{be16, be32, be64, GuestMemory, Gvnic};

/// Queue doorbell indexes: TX queue q at TX_DOORBELL_BASE + 2q, RX queue q one above it. The
/// real numbering is not public (guess); drivers must use the db_index the device writes.
pub const TX_DOORBELL_BASE: u32 = 0x400;
/// The GQI RX buffer size (facts §3.5: 2048; 0 means "the original device's" 2 KiB).
pub const RX_BUFFER_SIZE: u16 = 2048;

#[derive(Clone, Debug)]
pub(crate) struct TxQueue {
    pub ring: u64,
    pub qpl: u32,
    pub db_index: u32,
    pub counter_index: u32,
    /// Free-running count of descriptors the driver posted (last doorbell value).
    pub posted: u32,
    /// Free-running count of descriptors the device consumed.
    pub head: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct RxQueue {
    pub desc_ring: u64,
    pub data_ring: u64,
    pub qpl: u32,
    pub db_index: u32,
    pub counter_index: u32,
    /// Free-running fill count (last RX doorbell value).
    pub fill: u32,
    /// Free-running count of slots the device used.
    pub head: u32,
    /// Next sequence number to write, 1..=7.
    pub seq: u8,
}

enum Doorbell {
    Tx(u32),
    Rx(u32),
    Irq(u32),
}

impl Gvnic {
    /// Counter index for a queue. The device chooses among all its described counters
    /// (facts §3.2); the model takes them from the top (TX q: counters-2-2q, RX q:
    /// counters-1-2q), so an array shorter than described is caught deterministically
    /// (GCE fails "about 50% of the time").
    fn counter_for(&self, qid: u32, rx: bool) -> Option<u32> {
        u32::from(self.cfg.counters).checked_sub(1 + 2 * qid + u32::from(!rx))
    }

    /// Checks shared by both creates; returns the configured counter array or a status.
    fn create_common(
        &mut self,
        what: &str,
        qid: u32,
        max: u32,
        qpl: u32,
        ntfy: u32,
    ) -> Result<(), u32> {
        use ViolationKind::{BadCommand, Unmodelled, WrongState};
        let Some(conf) = self.configured.clone() else {
            return Err(self.refuse(
                WrongState,
                status::FAILED_PRECONDITION,
                format!("{what} before CONFIGURE_DEVICE_RESOURCES"),
            ));
        };
        if qid >= max {
            return Err(self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!("{what} queue_id {qid} >= max {max}"),
            ));
        }
        if conf.format != queue_format::GQI_QPL {
            return Err(self.refuse(
                Unmodelled,
                status::UNIMPLEMENTED,
                format!(
                    "{what} in queue format {}: the model implements only GQI-QPL",
                    conf.format
                ),
            ));
        }
        if qpl == RDA_QPL_ID {
            return Err(self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!("{what} with the RDA QPL id in GQI-QPL mode"),
            ));
        }
        if !self.qpls.contains_key(&qpl) {
            return Err(self.refuse(
                BadCommand,
                status::NOT_FOUND,
                format!("{what} QPL {qpl:#x} is not registered"),
            ));
        }
        let used = self.tx.values().any(|q| q.qpl == qpl) || self.rx.values().any(|q| q.qpl == qpl);
        if used {
            // Guess: each queue owns its QPL (Linux, iPXE).
            return Err(self.refuse(
                BadCommand,
                status::FAILED_PRECONDITION,
                format!("{what} QPL {qpl:#x} already used by a queue"),
            ));
        }
        let queues = self.tx.len() + self.rx.len();
        let ntfy_ok = ntfy < conf.num_irq_dbs || (conf.num_irq_dbs == 0 && queues == 0);
        if !ntfy_ok {
            return Err(self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!(
                    "{what} ntfy_id {ntfy} but {} notification blocks configured",
                    conf.num_irq_dbs
                ),
            ));
        }
        Ok(())
    }

    fn counter_checked(&mut self, what: &str, qid: u32, rx: bool) -> Result<u32, u32> {
        let num = self.configured.as_ref().map_or(0, |c| c.num_counters);
        match self.counter_for(qid, rx) {
            Some(c) if c < num => Ok(c),
            Some(c) => Err(self.refuse(
                ViolationKind::WrongState,
                status::FAILED_PRECONDITION,
                format!("{what} {qid}: the device chose event counter {c}, beyond the {num} configured (GCE quirk)"),
            )),
            None => Err(self.refuse(ViolationKind::BadCommand, status::RESOURCE_EXHAUSTED, format!("{what} {qid}: no event counter left"))),
        }
    }

    fn write_resources(&mut self, mem: &dyn GuestMemory, addr: u64, db: u32, counter: u32) -> bool {
        let mut res = [0u8; 64];
        res[0..4].copy_from_slice(&db.to_be_bytes());
        res[4..8].copy_from_slice(&counter.to_be_bytes());
        self.dma_write(mem, addr, &res, "queue resources")
    }

    pub(crate) fn cmd_create_tx(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let qid = be32(cmd, 8);
        let res_addr = be64(cmd, 16);
        let ring = be64(cmd, 24);
        let qpl = be32(cmd, 32);
        let ntfy = be32(cmd, 36);
        let ring_size = be16(cmd, 48);
        if self.tx.contains_key(&qid) {
            return self.refuse(
                ViolationKind::BadCommand,
                status::ALREADY_EXISTS,
                format!("CREATE_TX_QUEUE {qid}: exists"),
            );
        }
        if let Err(st) =
            self.create_common("CREATE_TX_QUEUE", qid, self.cfg.max_tx_queues, qpl, ntfy)
        {
            return st;
        }
        let entries = self.cfg.tx_queue_entries;
        // 0 worked on GCE for iPXE 2024 and nanos (facts §3.4); anything else must match.
        if ring_size != 0 && ring_size != entries {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("CREATE_TX_QUEUE tx_ring_size {ring_size}, device has {entries}"),
            );
        }
        if !self.check_region(mem, res_addr, 64, "TX queue resources")
            || !self.check_region(mem, ring, u64::from(entries) * 16, "TX descriptor ring")
        {
            return status::INVALID_ARGUMENT;
        }
        let counter = match self.counter_checked("CREATE_TX_QUEUE", qid, false) {
            Ok(c) => c,
            Err(st) => return st,
        };
        let db = TX_DOORBELL_BASE + 2 * qid;
        if !self.write_resources(mem, res_addr, db, counter) {
            return status::INTERNAL_ERROR;
        }
        self.tx.insert(
            qid,
            TxQueue {
                ring,
                qpl,
                db_index: db,
                counter_index: counter,
                posted: 0,
                head: 0,
            },
        );
        status::PASSED
    }

    pub(crate) fn cmd_create_rx(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let qid = be32(cmd, 8);
        let index = be32(cmd, 12);
        let ntfy = be32(cmd, 20);
        let res_addr = be64(cmd, 24);
        let desc_ring = be64(cmd, 32);
        let data_ring = be64(cmd, 40);
        let qpl = be32(cmd, 48);
        let ring_size = be16(cmd, 52);
        let buf_size = be16(cmd, 54);
        if self.rx.contains_key(&qid) {
            return self.refuse(
                ViolationKind::BadCommand,
                status::ALREADY_EXISTS,
                format!("CREATE_RX_QUEUE {qid}: exists"),
            );
        }
        if let Err(st) =
            self.create_common("CREATE_RX_QUEUE", qid, self.cfg.max_rx_queues, qpl, ntfy)
        {
            return st;
        }
        let entries = self.cfg.rx_queue_entries;
        let bad = if index != qid {
            Some(format!(
                "CREATE_RX_QUEUE index {index} != queue_id {qid} (GQI)"
            ))
        } else if ring_size != 0 && ring_size != entries {
            Some(format!(
                "CREATE_RX_QUEUE rx_ring_size {ring_size}, device has {entries}"
            ))
        } else if buf_size != 0 && buf_size != RX_BUFFER_SIZE {
            Some(format!(
                "CREATE_RX_QUEUE packet_buffer_size {buf_size}: GQI uses 2048"
            ))
        } else {
            None
        };
        if let Some(detail) = bad {
            return self.refuse(ViolationKind::BadCommand, status::INVALID_ARGUMENT, detail);
        }
        if !self.check_region(mem, res_addr, 64, "RX queue resources")
            || !self.check_region(
                mem,
                desc_ring,
                u64::from(entries) * 64,
                "RX descriptor ring",
            )
            || !self.check_region(mem, data_ring, u64::from(entries) * 8, "RX data ring")
        {
            return status::INVALID_ARGUMENT;
        }
        let counter = match self.counter_checked("CREATE_RX_QUEUE", qid, true) {
            Ok(c) => c,
            Err(st) => return st,
        };
        let db = TX_DOORBELL_BASE + 2 * qid + 1;
        if !self.write_resources(mem, res_addr, db, counter) {
            return status::INTERNAL_ERROR;
        }
        self.rx.insert(
            qid,
            RxQueue {
                desc_ring,
                data_ring,
                qpl,
                db_index: db,
                counter_index: counter,
                fill: 0,
                head: 0,
                seq: 1,
            },
        );
        status::PASSED
    }

    pub(crate) fn cmd_destroy_tx(&mut self, cmd: &[u8; 64]) -> u32 {
        let qid = be32(cmd, 8);
        if self.tx.remove(&qid).is_none() {
            return self.refuse(
                ViolationKind::BadCommand,
                status::NOT_FOUND,
                format!("DESTROY_TX_QUEUE {qid}: no such queue"),
            );
        }
        self.tx_pending.retain(|(_, q, _)| *q != qid);
        status::PASSED
    }

    pub(crate) fn cmd_destroy_rx(&mut self, cmd: &[u8; 64]) -> u32 {
        let qid = be32(cmd, 8);
        if self.rx.remove(&qid).is_none() {
            return self.refuse(
                ViolationKind::BadCommand,
                status::NOT_FOUND,
                format!("DESTROY_RX_QUEUE {qid}: no such queue"),
            );
        }
        status::PASSED
    }

    /// A BE32 write to BAR2 + 4 * index.
    pub(crate) fn doorbell(&mut self, index: u32, value: u32, mem: &dyn GuestMemory) {
        let owner = if let Some((&q, _)) = self.tx.iter().find(|(_, q)| q.db_index == index) {
            Some(Doorbell::Tx(q))
        } else if let Some((&q, _)) = self.rx.iter().find(|(_, q)| q.db_index == index) {
            Some(Doorbell::Rx(q))
        } else {
            let blocks = self.configured.as_ref().map_or(0, |c| c.num_irq_dbs);
            (index >= IRQ_DOORBELL_BASE && index - IRQ_DOORBELL_BASE < blocks)
                .then(|| Doorbell::Irq(index - IRQ_DOORBELL_BASE))
        };
        match owner {
            Some(Doorbell::Tx(q)) => self.tx_doorbell(q, value, mem),
            Some(Doorbell::Rx(q)) => self.rx_doorbell(q, value, mem),
            Some(Doorbell::Irq(k)) => self.irq_doorbell(k, value),
            None => self.record.violation(
                ViolationKind::UnknownDoorbell,
                format!("doorbell {index} (BAR2+{:#x}) written {value:#x}: no queue or block owns it (ignored)", index * 4),
            ),
        }
    }
}
