//! CREATE/DESTROY_TX/RX_QUEUE in every format (facts §3.4-§3.6, §4.4; gvnic-dqo.md §1.4,
//! §1.5) and doorbell routing. The data paths are in format/.

use crate::addressing::Addressing;
use crate::adminq::status;
use crate::config::{Family, QueueFormat};
use crate::format::completion::CompletionRing;
use crate::layout::{id_at_8, CreateRx, CreateTx};
use crate::limits::pow2_in;
use crate::qpl::RDA_QPL_ID;
use crate::record::ViolationKind;
use crate::resources::IRQ_DOORBELL_BASE;
use crate::{GuestMemory, Gvnic};

/// Queue doorbell indexes: TX queue q at TX_DOORBELL_BASE + 2q, RX queue q one above it. The
/// real numbering is not public (guess); drivers must use the db_index the device writes.
pub const TX_DOORBELL_BASE: u32 = 0x400;
/// The GQI RX buffer size (facts §3.5: 2048; 0 means "the original device's" 2 KiB), and the
/// DQO default packet buffer size (gvnic-dqo.md §1.12) when no BUFFER_SIZES option is offered.
pub const RX_BUFFER_SIZE: u16 = 2048;
/// Smallest DQO ring the model accepts (guess: Linux rings the RX doorbell every 32 buffers
/// and asks for descriptor completions every 32 descriptors, gvnic-dqo.md §1.3, §1.8).
pub const DQO_MIN_RING: u32 = 32;
/// Bytes per DQO TX completion and RX completion / buffer descriptor (gvnic-dqo.md §1.6).
pub const DQO_TX_COMPLETION_BYTES: usize = 8;
pub const DQO_RX_COMPLETION_BYTES: usize = 32;
pub const DQO_RX_BUFFER_DESC_BYTES: u64 = 32;
pub const DQO_TX_DESC_BYTES: u64 = 16;

#[derive(Clone, Debug)]
pub(crate) struct TxQueue {
    pub format: QueueFormat,
    pub ring: u64,
    pub ring_size: u32,
    pub addressing: Addressing,
    pub ntfy: u32,
    pub db_index: u32,
    pub counter_index: u32,
    /// GQI: free-running count of descriptors posted (last doorbell). DQO: the tail index.
    pub posted: u32,
    /// GQI: free-running count consumed. DQO: the head index (next descriptor to fetch).
    pub head: u32,
    /// DQO: the completion ring.
    pub compl: Option<CompletionRing>,
}

#[derive(Clone, Debug)]
pub(crate) struct RxQueue {
    pub format: QueueFormat,
    /// GQI: the 64-byte descriptor ring. DQO: unused (the completion ring is `compl`).
    pub desc_ring: u64,
    /// GQI: the 8-byte data-slot ring. DQO: the 32-byte buffer ring.
    pub data_ring: u64,
    /// GQI: entries of both rings. DQO: entries of the buffer ring.
    pub ring_size: u32,
    pub buffer_size: u16,
    pub addressing: Addressing,
    pub ntfy: u32,
    pub db_index: u32,
    pub counter_index: u32,
    /// GQI: free-running fill count (last doorbell). DQO: buffer-ring tail index.
    pub fill: u32,
    /// GQI: free-running count of slots used. DQO: buffer-ring head index.
    pub head: u32,
    /// GQI: next sequence number to write, 1..=7.
    pub seq: u8,
    /// DQO: the completion ring.
    pub compl: Option<CompletionRing>,
}

impl TxQueue {
    pub fn qpl(&self) -> Option<u32> {
        self.addressing.qpl()
    }
}

impl RxQueue {
    pub fn qpl(&self) -> Option<u32> {
        self.addressing.qpl()
    }
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

    /// Checks shared by both creates; returns the queue's format and addressing.
    fn create_common(
        &mut self,
        what: &str,
        qid: u32,
        max: u32,
        qpl: u32,
        ntfy: u32,
    ) -> Result<(QueueFormat, Addressing), u32> {
        use ViolationKind::{BadCommand, WrongState};
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
        let format = conf.format;
        let addressing = match format {
            // DPDK leaves qpl_id 0 in DQO-RDA and works, and Linux 6.1 does too: the device
            // ignores it (gvnic-dqo.md §1.4).
            QueueFormat::DqoRda => Addressing::Raw,
            // Linux and iPXE send 0xffffffff in GQI-RDA (facts §3.4); anything else is a
            // QPL id the device has no use for (guess: refused).
            QueueFormat::GqiRda if qpl == RDA_QPL_ID => Addressing::Raw,
            QueueFormat::GqiRda => {
                return Err(self.refuse(
                    BadCommand,
                    status::INVALID_ARGUMENT,
                    format!("{what} QPL id {qpl:#x} in GQI-RDA (expects 0xffffffff)"),
                ))
            }
            QueueFormat::GqiQpl | QueueFormat::DqoQpl => {
                if qpl == RDA_QPL_ID {
                    return Err(self.refuse(
                        BadCommand,
                        status::INVALID_ARGUMENT,
                        format!("{what} with the RDA QPL id in {format} mode"),
                    ));
                }
                if !self.qpls.contains_key(&qpl) {
                    return Err(self.refuse(
                        BadCommand,
                        status::NOT_FOUND,
                        format!("{what} QPL {qpl:#x} is not registered"),
                    ));
                }
                let used = self.tx.values().any(|q| q.qpl() == Some(qpl))
                    || self.rx.values().any(|q| q.qpl() == Some(qpl));
                if used {
                    // Guess: each queue owns its QPL (Linux, iPXE).
                    return Err(self.refuse(
                        BadCommand,
                        status::FAILED_PRECONDITION,
                        format!("{what} QPL {qpl:#x} already used by a queue"),
                    ));
                }
                if format == QueueFormat::GqiQpl {
                    Addressing::QplOffset(qpl)
                } else {
                    Addressing::QplPages(qpl)
                }
            }
        };
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
        Ok((format, addressing))
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

    /// A new GQI queue's event counter reads 0 before the create completes: the queue has
    /// completed nothing yet, and iPXE's gve (written on GCE hardware) asserts exactly that
    /// without zeroing the array itself (gve.c `assert ( queue->event->count == 0 )`), so a
    /// stale count from the previous open would send its poll loop round 2^32 times (issue
    /// 19). DQO queues report through completion rings, not counters: nothing to write.
    fn zero_event_counter(
        &mut self,
        format: QueueFormat,
        counter: u32,
        mem: &dyn GuestMemory,
    ) -> bool {
        let Some(conf) = self.configured.as_ref() else {
            return false;
        };
        if format.family() != Family::Gqi {
            return true;
        }
        let at = conf.counter_array + u64::from(counter) * 4;
        self.dma_write(mem, at, &0u32.to_be_bytes(), "event counter")
    }

    fn bad(&mut self, detail: String) -> u32 {
        self.refuse(ViolationKind::BadCommand, status::INVALID_ARGUMENT, detail)
    }

    pub(crate) fn cmd_create_tx(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let c = CreateTx::parse(cmd);
        let qid = c.queue_id;
        if self.tx.contains_key(&qid) {
            return self.refuse(
                ViolationKind::BadCommand,
                status::ALREADY_EXISTS,
                format!("CREATE_TX_QUEUE {qid}: exists"),
            );
        }
        let (format, addressing) = match self.create_common(
            "CREATE_TX_QUEUE",
            qid,
            self.cfg.max_tx_queues,
            c.qpl_id,
            c.ntfy_id,
        ) {
            Ok(v) => v,
            Err(st) => return st,
        };
        let entries = u32::from(self.cfg.tx_queue_entries);
        let max = self.max_ring(entries, false);
        let ring_size = u32::from(c.ring_size);
        let (ring_size, compl) = match format.family() {
            Family::Gqi => {
                // 0 worked on GCE for iPXE 2024 and nanos (facts §3.4) and means the
                // described size; anything else must be the described size or, with
                // MODIFY_RING, a power of two up to its maximum.
                let size = if ring_size == 0 { entries } else { ring_size };
                if !self.gqi_ring_ok(size, entries, max) {
                    return self.bad(format!(
                        "CREATE_TX_QUEUE tx_ring_size {ring_size}, device has {entries} (max {max})"
                    ));
                }
                (size, None)
            }
            Family::Dqo => {
                // Power-of-two rings (gvnic-dqo.md §1.12), at most the described size or
                // MODIFY_RING's maximum; the completion ring may be larger (DPDK: 4x)
                // (guess: up to 4x that).
                let comp = u32::from(c.comp_ring_size);
                if !pow2_in(ring_size, DQO_MIN_RING, max) {
                    return self.bad(format!("CREATE_TX_QUEUE DQO tx_ring_size {ring_size}: a power of two in {DQO_MIN_RING}..={max}"));
                }
                if !pow2_in(comp, DQO_MIN_RING, 4 * max) {
                    return self.bad(format!("CREATE_TX_QUEUE DQO tx_comp_ring_size {comp}: a power of two in {DQO_MIN_RING}..={}", 4 * max));
                }
                if !self.check_region(
                    mem,
                    c.comp_ring,
                    u64::from(comp) * DQO_TX_COMPLETION_BYTES as u64,
                    "TX completion ring",
                ) {
                    return status::INVALID_ARGUMENT;
                }
                // Generation: bit 15 of the LE16 at +0, i.e. byte 1 bit 7 (gvnic-dqo.md §1.6).
                let ring =
                    CompletionRing::new(c.comp_ring, comp, DQO_TX_COMPLETION_BYTES, (1, 0x80));
                (ring_size, Some(ring))
            }
        };
        let desc_bytes = u64::from(ring_size) * DQO_TX_DESC_BYTES;
        if !self.check_region(mem, c.resources, 64, "TX queue resources")
            || !self.check_region(mem, c.ring, desc_bytes, "TX descriptor ring")
        {
            return status::INVALID_ARGUMENT;
        }
        let counter = match self.counter_checked("CREATE_TX_QUEUE", qid, false) {
            Ok(c) => c,
            Err(st) => return st,
        };
        let db = TX_DOORBELL_BASE + 2 * qid;
        if !self.write_resources(mem, c.resources, db, counter)
            || !self.zero_event_counter(format, counter, mem)
        {
            return status::INTERNAL_ERROR;
        }
        self.tx.insert(
            qid,
            TxQueue {
                format,
                ring: c.ring,
                ring_size,
                addressing,
                ntfy: c.ntfy_id,
                db_index: db,
                counter_index: counter,
                posted: 0,
                head: 0,
                compl,
            },
        );
        status::PASSED
    }

    pub(crate) fn cmd_create_rx(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let c = CreateRx::parse(cmd);
        let qid = c.queue_id;
        if self.rx.contains_key(&qid) {
            return self.refuse(
                ViolationKind::BadCommand,
                status::ALREADY_EXISTS,
                format!("CREATE_RX_QUEUE {qid}: exists"),
            );
        }
        let (format, addressing) = match self.create_common(
            "CREATE_RX_QUEUE",
            qid,
            self.cfg.max_rx_queues,
            c.qpl_id,
            c.ntfy_id,
        ) {
            Ok(v) => v,
            Err(st) => return st,
        };
        let entries = u32::from(self.cfg.rx_queue_entries);
        let max = self.max_ring(entries, true);
        let ring_size = u32::from(c.ring_size);
        let buf_size = c.packet_buffer_size;
        let q = match format.family() {
            Family::Gqi => {
                let size = if ring_size == 0 { entries } else { ring_size };
                let bad = if c.index != qid {
                    Some(format!(
                        "CREATE_RX_QUEUE index {} != queue_id {qid} (GQI)",
                        c.index
                    ))
                } else if !self.gqi_ring_ok(size, entries, max) {
                    Some(format!(
                        "CREATE_RX_QUEUE rx_ring_size {ring_size}, device has {entries} (max {max})"
                    ))
                } else if buf_size != 0 && buf_size != RX_BUFFER_SIZE {
                    Some(format!(
                        "CREATE_RX_QUEUE packet_buffer_size {buf_size}: GQI uses 2048"
                    ))
                } else {
                    None
                };
                if let Some(detail) = bad {
                    return self.bad(detail);
                }
                let entries = size;
                if !self.check_region(
                    mem,
                    c.desc_ring,
                    u64::from(entries) * 64,
                    "RX descriptor ring",
                ) || !self.check_region(mem, c.data_ring, u64::from(entries) * 8, "RX data ring")
                {
                    return status::INVALID_ARGUMENT;
                }
                RxQueue {
                    format,
                    desc_ring: c.desc_ring,
                    data_ring: c.data_ring,
                    ring_size: entries,
                    buffer_size: RX_BUFFER_SIZE,
                    addressing,
                    ntfy: c.ntfy_id,
                    db_index: 0,
                    counter_index: 0,
                    fill: 0,
                    head: 0,
                    seq: 1,
                    compl: None,
                }
            }
            Family::Dqo => {
                let buff = u32::from(c.buff_ring_size);
                let hdr = c.header_buffer_size;
                let bad = self.dqo_rx_sizes_problem(ring_size, buff, max, buf_size, hdr);
                if hdr != 0 && bad.is_none() {
                    self.record.violation(
                        ViolationKind::Unmodelled,
                        format!("CREATE_RX_QUEUE {qid} asks for header split ({hdr}-byte header buffers): the model writes whole frames into the packet buffers"),
                    );
                }
                if let Some(detail) = bad {
                    return self.bad(detail);
                }
                // enable_rsc lets the device coalesce; not doing so is always allowed, so the
                // model accepts it and never coalesces.
                if !self.check_region(
                    mem,
                    c.desc_ring,
                    u64::from(ring_size) * DQO_RX_COMPLETION_BYTES as u64,
                    "RX completion ring",
                ) || !self.check_region(
                    mem,
                    c.data_ring,
                    u64::from(buff) * DQO_RX_BUFFER_DESC_BYTES,
                    "RX buffer ring",
                ) {
                    return status::INVALID_ARGUMENT;
                }
                // Generation: bit 14 of the LE16 at +4, i.e. byte 5 bit 6 (gvnic-dqo.md §1.6).
                let ring =
                    CompletionRing::new(c.desc_ring, ring_size, DQO_RX_COMPLETION_BYTES, (5, 0x40));
                RxQueue {
                    format,
                    desc_ring: c.desc_ring,
                    data_ring: c.data_ring,
                    ring_size: buff,
                    buffer_size: buf_size,
                    addressing,
                    ntfy: c.ntfy_id,
                    db_index: 0,
                    counter_index: 0,
                    fill: 0,
                    head: 0,
                    seq: 1,
                    compl: Some(ring),
                }
            }
        };
        if !self.check_region(mem, c.resources, 64, "RX queue resources") {
            return status::INVALID_ARGUMENT;
        }
        let counter = match self.counter_checked("CREATE_RX_QUEUE", qid, true) {
            Ok(c) => c,
            Err(st) => return st,
        };
        let db = TX_DOORBELL_BASE + 2 * qid + 1;
        if !self.write_resources(mem, c.resources, db, counter)
            || !self.zero_event_counter(format, counter, mem)
        {
            return status::INTERNAL_ERROR;
        }
        self.rx.insert(
            qid,
            RxQueue {
                db_index: db,
                counter_index: counter,
                ..q
            },
        );
        status::PASSED
    }

    pub(crate) fn cmd_destroy_tx(&mut self, cmd: &[u8; 64]) -> u32 {
        let qid = id_at_8(cmd);
        if self.tx.remove(&qid).is_none() {
            return self.refuse(
                ViolationKind::BadCommand,
                status::NOT_FOUND,
                format!("DESTROY_TX_QUEUE {qid}: no such queue"),
            );
        }
        self.tx_pending.retain(|p| p.qid != qid);
        status::PASSED
    }

    pub(crate) fn cmd_destroy_rx(&mut self, cmd: &[u8; 64]) -> u32 {
        let qid = id_at_8(cmd);
        if self.rx.remove(&qid).is_none() {
            return self.refuse(
                ViolationKind::BadCommand,
                status::NOT_FOUND,
                format!("DESTROY_RX_QUEUE {qid}: no such queue"),
            );
        }
        status::PASSED
    }

    /// A write to BAR2 + 4 * index; `bus` is the value as the LE bus carries it (GQI
    /// doorbells are BE32, DQO doorbells LE32: facts §1).
    pub(crate) fn doorbell(&mut self, index: u32, bus: u32, mem: &dyn GuestMemory) {
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
            Some(Doorbell::Tx(q)) => match self.tx[&q].format.family() {
                Family::Gqi => self.tx_doorbell(q, bus.swap_bytes(), mem),
                Family::Dqo => self.dqo_tx_doorbell(q, bus, mem),
            },
            Some(Doorbell::Rx(q)) => match self.rx[&q].format.family() {
                Family::Gqi => self.rx_doorbell(q, bus.swap_bytes(), mem),
                Family::Dqo => self.dqo_rx_doorbell(q, bus, mem),
            },
            Some(Doorbell::Irq(k)) => self.irq_doorbell(k, bus, mem),
            // The device reset itself (host reset) and asks for recovery: a driver keeps
            // ringing until it notices (iPXE through a 1 s watchdog, Linux from its service
            // task), which it cannot do sooner. Counted, not a violation (issue 19).
            None if self.regs.reset_requested => self.record.after_reset_doorbells += 1,
            None => self.record.violation(
                ViolationKind::UnknownDoorbell,
                format!("doorbell {index} (BAR2+{:#x}) written {bus:#x} (as the bus carries it): no queue or block owns it (ignored)", index * 4),
            ),
        }
    }
}
