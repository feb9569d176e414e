//! The admin queue's numbers: opcodes and status words (facts §2.3; Linux gve_adminq.h
//! `enum gve_adminq_opcodes`, `enum gve_adminq_statuses`), with their names for the record.
//! One table that the dispatcher (adminq.rs) and every command module use; it knows nothing
//! about what the commands do.

/// Admin opcodes (facts §2.3; 0x10..0x12 and 0xFF from Linux gve_adminq.h).
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
    pub const CONFIGURE_RSS: u32 = 0x0A;
    pub const SET_DRIVER_PARAMETER: u32 = 0x0B;
    pub const REPORT_STATS: u32 = 0x0C;
    pub const REPORT_LINK_SPEED: u32 = 0x0D;
    pub const GET_PTYPE_MAP: u32 = 0x0E;
    pub const VERIFY_DRIVER_COMPATIBILITY: u32 = 0x0F;
    pub const QUERY_FLOW_RULES: u32 = 0x10;
    pub const REPORT_NIC_TIMESTAMP: u32 = 0x11;
    pub const QUERY_RSS: u32 = 0x12;
    /// A wrapper for commands longer than 56 bytes: inner opcode, length and address.
    pub const EXTENDED_COMMAND: u32 = 0xFF;
    /// Inner opcode of EXTENDED_COMMAND (Linux `GVE_ADMINQ_CONFIGURE_FLOW_RULE`).
    pub const CONFIGURE_FLOW_RULE: u32 = 0x101;
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

const OPCODE_NAMES: [(u32, &str); 20] = [
    (opcode::DESCRIBE_DEVICE, "DESCRIBE_DEVICE"),
    (
        opcode::CONFIGURE_DEVICE_RESOURCES,
        "CONFIGURE_DEVICE_RESOURCES",
    ),
    (opcode::REGISTER_PAGE_LIST, "REGISTER_PAGE_LIST"),
    (opcode::UNREGISTER_PAGE_LIST, "UNREGISTER_PAGE_LIST"),
    (opcode::CREATE_TX_QUEUE, "CREATE_TX_QUEUE"),
    (opcode::CREATE_RX_QUEUE, "CREATE_RX_QUEUE"),
    (opcode::DESTROY_TX_QUEUE, "DESTROY_TX_QUEUE"),
    (opcode::DESTROY_RX_QUEUE, "DESTROY_RX_QUEUE"),
    (
        opcode::DECONFIGURE_DEVICE_RESOURCES,
        "DECONFIGURE_DEVICE_RESOURCES",
    ),
    (opcode::CONFIGURE_RSS, "CONFIGURE_RSS"),
    (opcode::SET_DRIVER_PARAMETER, "SET_DRIVER_PARAMETER"),
    (opcode::REPORT_STATS, "REPORT_STATS"),
    (opcode::REPORT_LINK_SPEED, "REPORT_LINK_SPEED"),
    (opcode::GET_PTYPE_MAP, "GET_PTYPE_MAP"),
    (
        opcode::VERIFY_DRIVER_COMPATIBILITY,
        "VERIFY_DRIVER_COMPATIBILITY",
    ),
    (opcode::QUERY_FLOW_RULES, "QUERY_FLOW_RULES"),
    (opcode::REPORT_NIC_TIMESTAMP, "REPORT_NIC_TIMESTAMP"),
    (opcode::QUERY_RSS, "QUERY_RSS"),
    (opcode::EXTENDED_COMMAND, "EXTENDED_COMMAND"),
    (opcode::CONFIGURE_FLOW_RULE, "CONFIGURE_FLOW_RULE"),
];

const STATUS_NAMES: [(u32, &str); 18] = [
    (status::UNSET, "UNSET"),
    (status::PASSED, "PASSED"),
    (status::ABORTED, "ABORTED"),
    (status::ALREADY_EXISTS, "ALREADY_EXISTS"),
    (status::CANCELLED, "CANCELLED"),
    (status::DATALOSS, "DATALOSS"),
    (status::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
    (status::FAILED_PRECONDITION, "FAILED_PRECONDITION"),
    (status::INTERNAL_ERROR, "INTERNAL_ERROR"),
    (status::INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (status::NOT_FOUND, "NOT_FOUND"),
    (status::OUT_OF_RANGE, "OUT_OF_RANGE"),
    (status::PERMISSION_DENIED, "PERMISSION_DENIED"),
    (status::UNAUTHENTICATED, "UNAUTHENTICATED"),
    (status::RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"),
    (status::UNAVAILABLE, "UNAVAILABLE"),
    (status::UNIMPLEMENTED, "UNIMPLEMENTED"),
    (status::UNKNOWN_ERROR, "UNKNOWN_ERROR"),
];

/// The name Linux's header gives an opcode, or "UNKNOWN".
pub fn opcode_name(op: u32) -> &'static str {
    OPCODE_NAMES
        .iter()
        .find(|(o, _)| *o == op)
        .map_or("UNKNOWN", |(_, n)| n)
}

/// The name of a status word, or "UNKNOWN_STATUS".
pub fn status_name(st: u32) -> &'static str {
    STATUS_NAMES
        .iter()
        .find(|(s, _)| *s == st)
        .map_or("UNKNOWN_STATUS", |(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_match() {
        for (i, (op, name)) in OPCODE_NAMES.iter().enumerate() {
            assert_eq!(opcode_name(*op), *name);
            assert!(OPCODE_NAMES[i + 1..].iter().all(|(o, _)| o != op));
        }
        assert_eq!(opcode_name(0xA), "CONFIGURE_RSS");
        assert_eq!(opcode_name(0x77), "UNKNOWN");
        assert_eq!(status_name(status::UNIMPLEMENTED), "UNIMPLEMENTED");
        assert_eq!(status_name(7), "UNKNOWN_STATUS");
    }
}
