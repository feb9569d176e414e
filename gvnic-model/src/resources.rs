//! CONFIGURE_DEVICE_RESOURCES / DECONFIGURE_DEVICE_RESOURCES (facts §3.2, §3.7).

use crate::adminq::status;
use crate::config::QueueFormat;
use crate::notify::Block;
use crate::record::ViolationKind;
use crate::{be32, be64, GuestMemory, Gvnic};

/// queue_format values at cmd+40 (facts §3.2).
pub mod queue_format {
    pub const UNSPECIFIED: u8 = 0;
    pub const GQI_RDA: u8 = 1;
    pub const GQI_QPL: u8 = 2;
    pub const DQO_RDA: u8 = 3;
    pub const DQO_QPL: u8 = 4;
}

pub use crate::notify::irq_doorbell;

/// IRQ doorbell index of notification block k. The real numbering is not public; the model
/// puts them at 0x10 + k so a driver that assumes index == k is caught (guess).
pub const IRQ_DOORBELL_BASE: u32 = 0x10;

#[derive(Clone, Debug)]
pub(crate) struct Configured {
    pub counter_array: u64,
    pub num_counters: u32,
    pub num_irq_dbs: u32,
    /// The effective format (UNSPECIFIED resolved to GQI_QPL, facts §3.1 fallback).
    pub format: QueueFormat,
    /// ntfy_blk_msix_base_idx: 0 = blocks on vectors 0..n-1, management last (facts §3.2).
    pub msix_base: u32,
    /// Notification blocks (interrupt state), one per IRQ doorbell.
    pub blocks: Vec<Block>,
    /// The RSS key, types and table (rss.rs): they live as long as the resources do.
    pub rss: crate::rss::RssConfig,
    /// The flow rules (flow.rs), also dropped with the resources.
    pub flow_rules: crate::flow::FlowRules,
}

impl Gvnic {
    pub(crate) fn cmd_configure(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        use ViolationKind::{BadCommand, Tolerated, WrongState};
        if self.configured.is_some() {
            // Guess: the reference does not say what a second CONFIGURE gets.
            return self.refuse(
                WrongState,
                status::FAILED_PRECONDITION,
                "CONFIGURE_DEVICE_RESOURCES while already configured",
            );
        }
        let counter_array = be64(cmd, 8);
        let irq_db_addr = be64(cmd, 16);
        let num_counters = be32(cmd, 24);
        let num_irq_dbs = be32(cmd, 28);
        let stride = be32(cmd, 32);
        let msix_base = be32(cmd, 36);
        let wire_format = cmd[40];
        let Some(format) =
            QueueFormat::from_wire(wire_format).filter(|f| self.cfg.formats.offers(*f))
        else {
            return self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!("CONFIGURE queue_format {wire_format} is not one the device offered"),
            );
        };
        let described = u32::from(self.cfg.counters);
        if num_counters == 0 || num_counters > described {
            return self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!("CONFIGURE num_counters {num_counters}: the device describes {described}"),
            );
        }
        if num_counters < described {
            // GCE accepts this, then may pick a counter beyond the array at queue creation
            // (facts §3.2, iPXE 2024-09-17): recorded here, failed at CREATE_*_QUEUE.
            self.record.violation(
                Tolerated,
                format!("CONFIGURE num_counters {num_counters} < described {described} (GCE fails queue creation later)"),
            );
        }
        if stride < 4 || !stride.is_multiple_of(4) {
            return self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!("CONFIGURE irq_db_stride {stride}"),
            );
        }
        if stride != 64 {
            self.record.violation(
                Tolerated,
                format!("CONFIGURE irq_db_stride {stride}: every known driver uses 64"),
            );
        }
        if num_irq_dbs > u32::from(self.pci.msix_vectors) {
            return self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!(
                    "CONFIGURE num_irq_dbs {num_irq_dbs} > {} MSI-X vectors",
                    self.pci.msix_vectors
                ),
            );
        }
        if num_irq_dbs == 0 {
            // "The device will accept being given zero interrupt channels, but will
            // subsequently fail to create more than a single queue" (facts §3.2).
            self.record.violation(
                Tolerated,
                "CONFIGURE num_irq_dbs 0 (only one queue can be created)",
            );
        }
        if msix_base > 1 {
            return self.refuse(
                BadCommand,
                status::INVALID_ARGUMENT,
                format!("CONFIGURE ntfy_blk_msix_base_idx {msix_base}"),
            );
        }
        if !self.check_region(
            mem,
            counter_array,
            u64::from(num_counters) * 4,
            "counter array",
        ) {
            return status::INVALID_ARGUMENT;
        }
        if num_irq_dbs > 0
            && !self.check_region(
                mem,
                irq_db_addr,
                u64::from(num_irq_dbs) * u64::from(stride),
                "irq doorbell array",
            )
        {
            return status::INVALID_ARGUMENT;
        }
        // The device writes each block's IRQ doorbell index into the record's first 4 bytes.
        for k in 0..num_irq_dbs {
            let at = irq_db_addr + u64::from(k) * u64::from(stride);
            if !self.dma_write(
                mem,
                at,
                &(IRQ_DOORBELL_BASE + k).to_be_bytes(),
                "irq doorbell record",
            ) {
                return status::INTERNAL_ERROR;
            }
        }
        // Guess: GQI blocks start masked and DQO blocks unarmed, until the driver's first
        // IRQ doorbell write (Linux unmasks/arms at turn-up, iPXE masks GQI).
        let blocks = vec![Block::default(); num_irq_dbs as usize];
        self.record.configured_formats.push(format);
        self.configured = Some(Configured {
            counter_array,
            num_counters,
            num_irq_dbs,
            format,
            msix_base,
            blocks,
            rss: crate::rss::RssConfig::initial(self.cfg.max_rx_queues),
            flow_rules: Default::default(),
        });
        status::PASSED
    }

    pub(crate) fn cmd_deconfigure(&mut self) -> u32 {
        if self.configured.is_none() {
            return self.refuse(
                ViolationKind::WrongState,
                status::FAILED_PRECONDITION,
                "DECONFIGURE_DEVICE_RESOURCES while not configured",
            );
        }
        if !self.tx.is_empty() || !self.rx.is_empty() {
            // Guess: a device must not drop resources that live queues still use.
            return self.refuse(
                ViolationKind::WrongState,
                status::FAILED_PRECONDITION,
                format!(
                    "DECONFIGURE with {} TX and {} RX queues still created",
                    self.tx.len(),
                    self.rx.len()
                ),
            );
        }
        if !self.qpls.is_empty() {
            self.record.violation(
                ViolationKind::Tolerated,
                format!(
                    "DECONFIGURE with {} page lists still registered (they stay until reset)",
                    self.qpls.len()
                ),
            );
        }
        self.configured = None;
        status::PASSED
    }
}
