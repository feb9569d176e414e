//! tshark over a gVNIC model capture, shared by the gVNIC system tests.
#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::process::Command;

/// Runs tshark over the capture with display filter `filter` (checksums verified); one row
/// per matching packet holding `fields` in order (a field with several values keeps tshark's
/// comma list).
pub fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-r"]).arg(pcap).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let output = cmd.output().expect("tshark runs (apt-get install tshark)");
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split('|').map(str::to_string).collect())
        .collect()
}

/// One row per DHCP packet:
/// message type, source MAC, IPv4 checksum status, UDP checksum status, xid.
pub fn tshark_dhcp_rows(pcap: &Path) -> Vec<Vec<String>> {
    tshark_fields(
        pcap,
        "dhcp",
        &[
            "dhcp.option.dhcp",
            "eth.src",
            "ip.checksum.status",
            "udp.checksum.status",
            "dhcp.id",
        ],
    )
}
