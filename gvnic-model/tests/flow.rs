//! Flow rules (EXTENDED_COMMAND / CONFIGURE_FLOW_RULE, QUERY_FLOW_RULES) and
//! REPORT_NIC_TIMESTAMP: good and bad input, and the 2024 device without them.

mod common;

use common::*;
use gvnic_model::adminq::{opcode, status};
use gvnic_model::flow::{query_op, rule_op};
use gvnic_model::{GuestMemory, ModelConfig, Profile};

const INNER: u64 = 0x8000;
const QUERY: u64 = 0x9000;
const TS: u64 = 0xA000;

fn configured(profile: Profile) -> H {
    let mut h = H::new(ModelConfig {
        profile,
        ..Default::default()
    });
    h.start_aq();
    assert_eq!(h.describe(), status::PASSED);
    assert_eq!(h.configure(), status::PASSED);
    h
}

/// Linux's gve_adminq_configure_flow_rule: the 92-byte inner command behind an
/// EXTENDED_COMMAND.
fn flow_rule(h: &mut H, op: u16, loc: u32, flow_type: u16, queue: u16) -> u32 {
    let mut inner = [0u8; 92];
    inner[0..2].copy_from_slice(&op.to_be_bytes());
    inner[4..6].copy_from_slice(&flow_type.to_be_bytes());
    inner[6..8].copy_from_slice(&queue.to_be_bytes());
    inner[8..12].copy_from_slice(&[10, 0, 0, 1]); // key src_ip
    inner[48..52].copy_from_slice(&[255; 4]); // mask src_ip
    inner[88..92].copy_from_slice(&loc.to_be_bytes());
    h.mem.write(INNER, &inner).unwrap();
    let mut c = be_cmd(opcode::EXTENDED_COMMAND);
    put32(&mut c, 8, opcode::CONFIGURE_FLOW_RULE);
    put32(&mut c, 12, 92);
    put64(&mut c, 16, INNER);
    h.submit(c)
}

fn query(h: &mut H, op: u16, start: u32, avail: u64) -> u32 {
    let mut c = be_cmd(opcode::QUERY_FLOW_RULES);
    put16(&mut c, 8, op);
    put32(&mut c, 12, start);
    put64(&mut c, 16, avail);
    put64(&mut c, 24, QUERY);
    h.submit(c)
}

#[test]
fn flow_rules_add_query_delete_and_reset() {
    let mut h = configured(Profile::Y2026);
    assert_eq!(flow_rule(&mut h, rule_op::ADD, 5, 0, 1), status::PASSED);
    assert_eq!(flow_rule(&mut h, rule_op::ADD, 2, 1, 3), status::PASSED);
    assert_eq!(query(&mut h, query_op::STATS, 0, 4096), status::PASSED);
    // num_flow_rules 2, max 32, none queried, total 16.
    let d: Vec<u32> = (0..4).map(|i| h.mem_be32(QUERY + 4 * i)).collect();
    assert_eq!(d, [2, 32, 0, 16]);
    assert_eq!(query(&mut h, query_op::IDS, 0, 4096), status::PASSED);
    let d: Vec<u32> = (0..6).map(|i| h.mem_be32(QUERY + 4 * i)).collect();
    assert_eq!(d, [2, 32, 2, 24, 2, 5], "ids ascending");
    assert_eq!(query(&mut h, query_op::RULES, 3, 4096), status::PASSED);
    let d = h.mem_read(QUERY, 16 + 88);
    assert_eq!(
        u32::from_be_bytes(d[8..12].try_into().unwrap()),
        1,
        "from location 3 on"
    );
    assert_eq!(u32::from_be_bytes(d[12..16].try_into().unwrap()), 16 + 88);
    assert_eq!(&d[16..20], &5u32.to_be_bytes(), "location");
    assert_eq!(&d[20..24], &[0, 0, 0, 1], "flow_type 0, action queue 1");
    assert_eq!(&d[24..28], &[10, 0, 0, 1], "key echoed");
    // Room for one rule only: the descriptor says how many were written.
    assert_eq!(
        query(&mut h, query_op::RULES, 0, 16 + 88 + 10),
        status::PASSED
    );
    assert_eq!(h.mem_be32(QUERY + 8), 1);
    assert_eq!(flow_rule(&mut h, rule_op::DEL, 5, 0, 0), status::PASSED);
    assert_eq!(flow_rule(&mut h, rule_op::RESET, 0, 0, 0), status::PASSED);
    assert_eq!(query(&mut h, query_op::STATS, 0, 4096), status::PASSED);
    assert_eq!(h.mem_be32(QUERY), 0, "no rules after RESET");
    assert!(h.dev.record().violations.is_empty());
}

#[test]
fn bad_flow_rules_get_named_statuses() {
    let mut h = configured(Profile::Y2026);
    assert_eq!(flow_rule(&mut h, rule_op::ADD, 1, 0, 0), status::PASSED);
    assert_eq!(
        flow_rule(&mut h, rule_op::ADD, 1, 0, 0),
        status::ALREADY_EXISTS
    );
    assert_eq!(
        flow_rule(&mut h, rule_op::ADD, 32, 0, 0),
        status::INVALID_ARGUMENT
    );
    assert_eq!(
        flow_rule(&mut h, rule_op::ADD, 2, 10, 0),
        status::INVALID_ARGUMENT
    );
    assert_eq!(
        flow_rule(&mut h, rule_op::ADD, 2, 0, 4),
        status::INVALID_ARGUMENT
    );
    assert_eq!(flow_rule(&mut h, rule_op::DEL, 9, 0, 0), status::NOT_FOUND);
    assert_eq!(flow_rule(&mut h, 7, 0, 0, 0), status::INVALID_ARGUMENT);
    assert_eq!(query(&mut h, 9, 0, 4096), status::INVALID_ARGUMENT);
    assert_eq!(query(&mut h, query_op::IDS, 0, 8), status::INVALID_ARGUMENT);
    let mut c = be_cmd(opcode::EXTENDED_COMMAND);
    put32(&mut c, 8, opcode::CONFIGURE_FLOW_RULE);
    put32(&mut c, 12, 40);
    put64(&mut c, 16, INNER);
    assert_eq!(h.submit(c), status::INVALID_ARGUMENT, "inner_length 40");
    put32(&mut c, 8, 0x102);
    assert_eq!(h.submit(c), status::UNIMPLEMENTED, "unknown inner opcode");
    assert_eq!(h.dev.record().violations.len(), 10);
}

fn report_ts(h: &mut H, len: u64) -> u32 {
    let mut c = be_cmd(opcode::REPORT_NIC_TIMESTAMP);
    put64(&mut c, 8, len);
    put64(&mut c, 16, TS);
    h.submit(c)
}

#[test]
fn nic_timestamp_is_monotonic_nanoseconds() {
    let mut h = configured(Profile::Y2026);
    h.mem.write(TS, &[0xEE; 48]).unwrap();
    assert_eq!(report_ts(&mut h, 40), status::PASSED);
    let t1 = u64::from_be_bytes(h.mem_read(TS, 8).try_into().unwrap());
    assert_eq!(h.mem_read(TS + 8, 32), vec![0; 32], "reserved words");
    assert_eq!(
        h.mem_read(TS + 40, 8),
        vec![0xEE; 8],
        "nothing past 40 bytes"
    );
    h.run_us(1000);
    assert_eq!(report_ts(&mut h, 40), status::PASSED);
    let t2 = u64::from_be_bytes(h.mem_read(TS, 8).try_into().unwrap());
    assert!(t2 >= t1 + 1_000_000, "{t1} -> {t2}: 1 ms later in ns");
    assert_eq!(report_ts(&mut h, 4), status::INVALID_ARGUMENT);
}

#[test]
fn the_2024_device_has_no_flow_rules_or_timestamps() {
    let mut h = configured(Profile::Y2024);
    assert_eq!(
        flow_rule(&mut h, rule_op::RESET, 0, 0, 0),
        status::UNIMPLEMENTED
    );
    assert_eq!(
        query(&mut h, query_op::STATS, 0, 4096),
        status::UNIMPLEMENTED
    );
    assert_eq!(report_ts(&mut h, 40), status::UNIMPLEMENTED);
}
