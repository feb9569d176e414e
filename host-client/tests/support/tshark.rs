//! tshark over a gVNIC model capture, shared by the gVNIC system tests.

use std::path::Path;
use std::process::Command;

/// Runs tshark over the capture; one row per DHCP packet:
/// message type, source MAC, IPv4 checksum status, UDP checksum status, xid.
pub fn tshark_dhcp_rows(pcap: &Path) -> Vec<Vec<String>> {
    let output = Command::new("tshark")
        .args(["-r"])
        .arg(pcap)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-Y",
            "dhcp",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "dhcp.option.dhcp",
            "-e",
            "eth.src",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "dhcp.id",
        ])
        .output()
        .expect("tshark runs (apt-get install tshark)");
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
