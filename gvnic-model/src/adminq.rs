//! The admin queue: 64-byte commands, a free-running doorbell/event counter pair, a BE32
//! status per command (facts §2.3), and dispatch to the command handlers.

use crate::optional::opcode as optional;
use crate::record::{CommandRecord, ViolationKind};
use crate::{be32, GuestMemory, Gvnic};

/// Admin opcodes (facts §2.3).
pub mod opcode {
    pub const DESCRIBE_DEVICE: u32 = 0x01;
    pub const CONFIGURE_DEVICE_RESOURCES: u32 = 0x02;
    pub const REGISTER_PAGE_LIST: u32 = 0x03;
    pub const UNREGISTER_PAGE_LIST: u32 = 0x04;
    pub const CREATE_TX_QUEUE: u32 = 0x05;
    pub const CREATE_RX_QUEUE: u32 = 0x06;
    pub const DESTROY_TX_QUEUE: u32 = 0x07;
    pub const DESTROY_RX_QUEUE: u32 = 0x08;
    pub const DECONFIGURE_DEVICE_RESOURCES: u32 = 0x09;
}

/// Status words written at cmd+4 (facts §2.3).
pub mod status {
    pub const UNSET: u32 = 0x0000_0000;
    pub const PASSED: u32 = 0x0000_0001;
    pub const ABORTED: u32 = 0xFFFF_FFF0;
    pub const ALREADY_EXISTS: u32 = 0xFFFF_FFF1;
    pub const CANCELLED: u32 = 0xFFFF_FFF2;
    pub const DATALOSS: u32 = 0xFFFF_FFF3;
    pub const DEADLINE_EXCEEDED: u32 = 0xFFFF_FFF4;
    pub const FAILED_PRECONDITION: u32 = 0xFFFF_FFF5;
    pub const INTERNAL_ERROR: u32 = 0xFFFF_FFF6;
    pub const INVALID_ARGUMENT: u32 = 0xFFFF_FFF7;
    pub const NOT_FOUND: u32 = 0xFFFF_FFF8;
    pub const OUT_OF_RANGE: u32 = 0xFFFF_FFF9;
    pub const PERMISSION_DENIED: u32 = 0xFFFF_FFFA;
    pub const UNAUTHENTICATED: u32 = 0xFFFF_FFFB;
    pub const RESOURCE_EXHAUSTED: u32 = 0xFFFF_FFFC;
    pub const UNAVAILABLE: u32 = 0xFFFF_FFFD;
    pub const UNIMPLEMENTED: u32 = 0xFFFF_FFFE;
    pub const UNKNOWN_ERROR: u32 = 0xFFFF_FFFF;
}

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
            optional::SET_DRIVER_PARAMETER => self.cmd_set_driver_parameter(cmd),
            optional::REPORT_STATS => self.cmd_report_stats(cmd, mem),
            optional::REPORT_LINK_SPEED => self.cmd_report_link_speed(cmd, mem),
            optional::GET_PTYPE_MAP => self.cmd_get_ptype_map(cmd, mem),
            optional::VERIFY_DRIVER_COMPATIBILITY => self.cmd_verify_driver_compatibility(cmd, mem),
            _ => {
                // RSS, flow rules, timestamps, extended commands are not modelled; Linux
                // treats UNIMPLEMENTED (EOPNOTSUPP) for them as optional.
                self.record.violation(
                    ViolationKind::Unmodelled,
                    format!("admin opcode {op:#x} is not implemented by the model (UNIMPLEMENTED)"),
                );
                status::UNIMPLEMENTED
            }
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
