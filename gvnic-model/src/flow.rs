//! Flow steering: CONFIGURE_FLOW_RULE (inner opcode 0x101 of EXTENDED_COMMAND 0xFF: add,
//! delete, reset) and QUERY_FLOW_RULES (0x10: rules, rule ids, counts). Layouts from Linux
//! gve_adminq.h (`struct gve_adminq_extended_command`, `gve_adminq_configure_flow_rule`,
//! `gve_adminq_flow_rule`, `gve_flow_spec`, `gve_adminq_query_flow_rules`,
//! `gve_query_flow_rules_descriptor`, `gve_adminq_queried_flow_rule`), all BE. Only a device
//! that describes FLOW_STEERING (the 2026 profile) knows these commands (guess: the 2024
//! device answers UNIMPLEMENTED; Linux sends none without the option). The rules live with
//! the device resources; the model keeps and reports them but does not steer by them.
//!
//! EXTENDED_COMMAND: +8 inner_opcode BE32, +12 inner_length BE32, +16 inner_command_addr
//! BE64. CONFIGURE_FLOW_RULE (92 bytes): +0 opcode BE16 (0 add, 1 delete, 2 reset), +4 the
//! rule {flow_type BE16, action BE16 (the RX queue), key 40 bytes, mask 40 bytes}, +88
//! location BE32. QUERY_FLOW_RULES: +8 opcode BE16 (0 rules, 1 ids, 2 stats), +12
//! starting_rule_id BE32, +16 available_length BE64, +24 rule_descriptor_addr BE64; the
//! device writes {num_flow_rules, max_flow_rules, num_queried_rules, total_length} (BE32
//! each) and then the rules (88 bytes: location BE32 + the rule) or their locations (BE32).

use std::collections::BTreeMap;

use crate::codes::{opcode, status};
use crate::record::ViolationKind;
use crate::{be16, be32, be64, GuestMemory, Gvnic};

/// Bytes of CONFIGURE_FLOW_RULE (Linux static_assert).
pub const CONFIGURE_FLOW_RULE_BYTES: usize = 92;
/// Bytes of a rule as the driver gives it: flow_type, action, key and mask (40 each).
pub const RULE_BYTES: usize = 84;
/// Bytes of the query descriptor before the rules.
pub const QUERY_HEADER_BYTES: usize = 16;
/// Largest inner command the device fetches (guess: the 4096 bytes Linux allocates at most).
const MAX_INNER_BYTES: u32 = 4096;
/// Flow types 0..=9: TCP/UDP/SCTP/AH/ESP over IPv4 and IPv6 (Linux `enum gve_adminq_flow_type`).
pub const FLOW_TYPES: u16 = 10;

/// CONFIGURE_FLOW_RULE operations.
pub mod rule_op {
    pub const ADD: u16 = 0;
    pub const DEL: u16 = 1;
    pub const RESET: u16 = 2;
}

/// QUERY_FLOW_RULES operations.
pub mod query_op {
    pub const RULES: u16 = 0;
    pub const IDS: u16 = 1;
    pub const STATS: u16 = 2;
}

/// The rules the device holds, by location: the 84 bytes as given (flow type, action, key,
/// mask), echoed back by QUERY_FLOW_RULES.
pub type FlowRules = BTreeMap<u32, [u8; RULE_BYTES]>;

impl Gvnic {
    /// EXTENDED_COMMAND: fetch the inner command and run it.
    pub(crate) fn cmd_extended(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let (inner, len, addr) = (be32(cmd, 8), be32(cmd, 12), be64(cmd, 16));
        if inner != opcode::CONFIGURE_FLOW_RULE || self.generation().max_flow_rules.is_none() {
            return self.unimplemented(inner);
        }
        if (len as usize) < CONFIGURE_FLOW_RULE_BYTES || len > MAX_INNER_BYTES {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("EXTENDED_COMMAND CONFIGURE_FLOW_RULE inner_length {len}, expected {CONFIGURE_FLOW_RULE_BYTES}"),
            );
        }
        let mut buf = vec![0u8; len as usize];
        if !self.dma_read(mem, addr, &mut buf, "extended command") {
            return status::INVALID_ARGUMENT;
        }
        self.configure_flow_rule(&buf)
    }

    fn configure_flow_rule(&mut self, c: &[u8]) -> u32 {
        use ViolationKind::{BadCommand, WrongState};
        let max = self.generation().max_flow_rules.unwrap_or(0);
        let queues = self.cfg.max_rx_queues;
        let (op, loc) = (be16(c, 0), be32(c, 88));
        let mut rule = [0u8; RULE_BYTES];
        rule.copy_from_slice(&c[4..4 + RULE_BYTES]);
        let (flow_type, action) = (be16(&rule, 0), be16(&rule, 2));
        let Some(rules) = self.configured.as_ref().map(|c| c.flow_rules.clone()) else {
            return self.refuse(
                WrongState,
                status::FAILED_PRECONDITION,
                "CONFIGURE_FLOW_RULE before CONFIGURE_DEVICE_RESOURCES",
            );
        };
        // Refusals: ALREADY_EXISTS and NOT_FOUND where the status names the case, else
        // INVALID_ARGUMENT (guess: the device's choices are not public).
        let refusal = match op {
            rule_op::ADD if loc >= max => Some((
                status::INVALID_ARGUMENT,
                format!("location {loc} >= max_flow_rules {max}"),
            )),
            rule_op::ADD if rules.contains_key(&loc) => Some((
                status::ALREADY_EXISTS,
                format!("location {loc} holds a rule"),
            )),
            rule_op::ADD if flow_type >= FLOW_TYPES => Some((
                status::INVALID_ARGUMENT,
                format!("flow_type {flow_type} (0..={})", FLOW_TYPES - 1),
            )),
            rule_op::ADD if u32::from(action) >= queues => Some((
                status::INVALID_ARGUMENT,
                format!("action: RX queue {action}, the device has {queues}"),
            )),
            rule_op::DEL if !rules.contains_key(&loc) => {
                Some((status::NOT_FOUND, format!("no rule at location {loc}")))
            }
            rule_op::ADD | rule_op::DEL | rule_op::RESET => None,
            _ => Some((
                status::INVALID_ARGUMENT,
                format!("opcode {op} (0 add, 1 delete, 2 reset)"),
            )),
        };
        if let Some((st, why)) = refusal {
            return self.refuse(BadCommand, st, format!("CONFIGURE_FLOW_RULE: {why}"));
        }
        if let Some(c) = self.configured.as_mut() {
            match op {
                rule_op::ADD => {
                    c.flow_rules.insert(loc, rule);
                }
                rule_op::DEL => {
                    c.flow_rules.remove(&loc);
                }
                _ => c.flow_rules.clear(),
            }
        }
        status::PASSED
    }

    pub(crate) fn cmd_query_flow_rules(&mut self, cmd: &[u8; 64], mem: &dyn GuestMemory) -> u32 {
        let Some(max) = self.generation().max_flow_rules else {
            return self.unimplemented(opcode::QUERY_FLOW_RULES);
        };
        let (op, start) = (be16(cmd, 8), be32(cmd, 12));
        let (avail, addr) = (be64(cmd, 16), be64(cmd, 24));
        let Some(rules) = self.configured.as_ref().map(|c| c.flow_rules.clone()) else {
            return self.refuse(
                ViolationKind::WrongState,
                status::FAILED_PRECONDITION,
                "QUERY_FLOW_RULES before CONFIGURE_DEVICE_RESOURCES",
            );
        };
        let entry = match op {
            query_op::RULES => 4 + RULE_BYTES,
            query_op::IDS => 4,
            query_op::STATS => 0,
            _ => {
                return self.refuse(
                    ViolationKind::BadCommand,
                    status::INVALID_ARGUMENT,
                    format!("QUERY_FLOW_RULES opcode {op} (0 rules, 1 ids, 2 stats)"),
                )
            }
        };
        if avail < QUERY_HEADER_BYTES as u64 {
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("QUERY_FLOW_RULES available_length {avail} < {QUERY_HEADER_BYTES}"),
            );
        }
        // The rules from starting_rule_id on, ascending, as many as fit (guess: the order
        // and the meaning of starting_rule_id as a location are the model's reading).
        let room = (avail.min(u64::from(MAX_INNER_BYTES)) as usize - QUERY_HEADER_BYTES)
            .checked_div(entry)
            .unwrap_or(0);
        let mut body = Vec::new();
        let mut n = 0u32;
        for (loc, rule) in rules.range(start..).take(room) {
            body.extend_from_slice(&loc.to_be_bytes());
            if op == query_op::RULES {
                body.extend_from_slice(rule);
            }
            n += 1;
        }
        let mut out = Vec::with_capacity(QUERY_HEADER_BYTES + body.len());
        let total = (QUERY_HEADER_BYTES + body.len()) as u32;
        for v in [rules.len() as u32, max, n, total] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&body);
        if !self.dma_write(mem, addr, &out, "flow rule query") {
            return status::INVALID_ARGUMENT;
        }
        status::PASSED
    }

    /// An opcode this device does not implement: recorded, UNIMPLEMENTED.
    pub(crate) fn unimplemented(&mut self, op: u32) -> u32 {
        self.refuse(
            ViolationKind::Unmodelled,
            status::UNIMPLEMENTED,
            format!(
                "admin opcode {op:#x} ({}) is not implemented by this device (profile {}): UNIMPLEMENTED",
                crate::codes::opcode_name(op),
                self.cfg.profile
            ),
        )
    }
}
