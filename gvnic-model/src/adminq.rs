//! The admin queue: 64-byte commands, a free-running doorbell/event counter pair, a BE32
//! status per command (facts §2.3), and dispatch to the command handlers. The opcode and
//! status tables live in codes.rs.

use crate::record::{CommandRecord, ViolationKind};
use crate::{be32, GuestMemory, Gvnic};

pub use crate::codes::{opcode, status};

/// Bytes per admin command.
pub const COMMAND_SIZE: u64 = 64;

impl Gvnic {
    /// A write of the free-running submitted count to ADMINQ_DOORBELL.
    pub(crate) fn admin_doorbell(&mut self, value: u32, mem: &dyn GuestMemory) {
        let Some((_, slots)) = self.regs.aq else {
            self.record.violation(
                ViolationKind::AdminQueueNotRunning,
                format!("ADMINQ_DOORBELL {value} while the admin queue is not running (ignored)"),
            );
            return;
        };
        if self.reset_due.is_some() {
            self.record.violation(
                ViolationKind::AdminQueueNotRunning,
                format!("ADMINQ_DOORBELL {value} while a requested reset is in progress (ignored)"),
            );
            return;
        }
        let pending = value.wrapping_sub(self.regs.event_counter);
        if pending > slots {
            self.record.violation(
                ViolationKind::DoorbellBeyondRing,
                format!(
                    "ADMINQ_DOORBELL {value} is {pending} ahead of the event counter {} but the AQ has {slots} slots (ignored)",
                    self.regs.event_counter
                ),
            );
            return;
        }
        self.regs.aq_doorbell = value;
        if self.cfg.faults.admin_never_completes {
            return;
        }
        // The commands run (and the event counter moves) after the admin latency.
        let due = self.now + self.cfg.latencies.admin_us;
        if self.admin_due.is_none() {
            self.admin_due = Some(due);
        }
        if due <= self.now {
            self.run_admin_queue(mem);
        }
    }

    /// Execute every command up to the last doorbell (at the admin latency's end).
    pub(crate) fn run_admin_queue(&mut self, mem: &dyn GuestMemory) {
        self.admin_due = None;
        let Some((base, slots)) = self.regs.aq else {
            return;
        };
        let value = self.regs.aq_doorbell;
        while self.regs.event_counter != value {
            if self.spurious_pending {
                // The Nth command completed; the device resets before running the next one.
                self.spurious_reset(mem);
                return;
            }
            let index = self.regs.event_counter;
            let addr = base + u64::from(index % slots) * COMMAND_SIZE;
            let mut cmd = [0u8; COMMAND_SIZE as usize];
            if !self.dma_read(mem, addr, &mut cmd, "admin command") {
                // A device that cannot fetch the command cannot complete it: it stalls.
                return;
            }
            let op = be32(&cmd, 0);
            let st = match self.cfg.faults.status_for_opcode {
                Some((fop, fst)) if fop == op => fst,
                _ => self.execute(op, &cmd, mem),
            };
            if !self.dma_write(mem, addr + 4, &st.to_be_bytes(), "admin command status") {
                return;
            }
            self.record.commands.push(CommandRecord {
                index,
                opcode: op,
                status: st,
                inner_opcode: (op == opcode::EXTENDED_COMMAND).then(|| be32(&cmd, 8)),
            });
            self.regs.event_counter = index.wrapping_add(1);
            self.commands_completed += 1;
            if self.cfg.faults.spurious_reset_after_commands.map(u64::from)
                == Some(self.commands_completed)
            {
                self.spurious_pending = true;
            }
        }
    }

    fn execute(&mut self, op: u32, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        match op {
            opcode::DESCRIBE_DEVICE => self.cmd_describe(cmd, mem),
            opcode::CONFIGURE_DEVICE_RESOURCES => self.cmd_configure(cmd, mem),
            opcode::REGISTER_PAGE_LIST => self.cmd_register_page_list(cmd, mem),
            opcode::UNREGISTER_PAGE_LIST => self.cmd_unregister_page_list(cmd),
            opcode::CREATE_TX_QUEUE => self.cmd_create_tx(cmd, mem),
            opcode::CREATE_RX_QUEUE => self.cmd_create_rx(cmd, mem),
            opcode::DESTROY_TX_QUEUE => self.cmd_destroy_tx(cmd),
            opcode::DESTROY_RX_QUEUE => self.cmd_destroy_rx(cmd),
            opcode::DECONFIGURE_DEVICE_RESOURCES => self.cmd_deconfigure(),
            opcode::SET_DRIVER_PARAMETER => self.cmd_set_driver_parameter(cmd),
            opcode::REPORT_STATS => self.cmd_report_stats(cmd, mem),
            opcode::REPORT_LINK_SPEED => self.cmd_report_link_speed(cmd, mem),
            opcode::GET_PTYPE_MAP => self.cmd_get_ptype_map(cmd, mem),
            opcode::VERIFY_DRIVER_COMPATIBILITY => self.cmd_verify_driver_compatibility(cmd, mem),
            opcode::CONFIGURE_RSS => self.cmd_configure_rss(cmd, mem),
            opcode::QUERY_RSS => self.cmd_query_rss(cmd, mem),
            opcode::QUERY_FLOW_RULES => self.cmd_query_flow_rules(cmd, mem),
            opcode::EXTENDED_COMMAND => self.cmd_extended(cmd, mem),
            opcode::REPORT_NIC_TIMESTAMP => self.cmd_report_nic_timestamp(cmd, mem),
            // An opcode the device does not know. Linux does not always treat UNIMPLEMENTED
            // (EOPNOTSUPP) as optional (issue 19: CONFIGURE_RSS fails probe).
            _ => self.unimplemented(op),
        }
    }

    /// Record a refused command and return its status.
    pub(crate) fn refuse(
        &mut self,
        kind: ViolationKind,
        status: u32,
        detail: impl Into<String>,
    ) -> u32 {
        self.record.violation(kind, detail);
        status
    }
}
