//! The gVNIC model held to a second independent driver: Debian trixie's iPXE (package `ipxe`,
//! 1.21.1+git20250501, whose gve was written on GCE hardware and supports GQI-QPL only),
//! `ipxe.lkrn` booted with QEMU's -kernel under SeaBIOS (its console reaches the serial socket
//! through SeaBIOS's sercon), the model attached through the multi-process proxy.
//!
//! An iPXE script (the -initrd: ipxe.lkrn runs an initrd script) does `dhcp`, `ifclose`,
//! `ifopen`, a second `dhcp` and `ping` of the gateway. iPXE polls its queues, so the proxy's
//! missing interrupt path does not matter: it receives, and a REQUEST on the wire proves it
//! got the model's OFFER through the RX path. Rows: profile x offered formats (GQI-QPL alone,
//! all four together: iPXE does not parse the options and must still run GQI-QPL).
//!
//! Oracles, one helper each: the wire (tshark: DISCOVER, the model's OFFER, iPXE's REQUEST,
//! the ACK, for two transactions; echo replies from the gateway), the lease iPXE printed (the
//! address and router the model's responder was told to give), the device's CONFIGUREs
//! (GQI-QPL at each open), the model's record (no violation, no refused command).

#[path = "support/ipxe.rs"]
mod ipxe;
#[path = "support/linux.rs"]
mod linux;
#[path = "support/tshark.rs"]
mod tshark;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gvnic_model::{Formats, ModelConfig, Profile, QueueFormat};
use host_client::gvnic::ModelState;
use host_client::{DirectBoot, GvnicOptions, QemuConfig};

/// SeaBIOS, iPXE, two DHCPs and a ping under TCG.
const DEADLINE: Duration = Duration::from_secs(150);
const PARALLEL_BOOTS: usize = 2;
/// What the model's responder is told to lease (not its default: the lease must come
/// from it), and its gateway.
const OFFERED_IP: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 42);
const MAC: [u8; 6] = [0x42, 0x01, 0x0a, 0x80, 0x00, 0x2a];
const MAC_TEXT: &str = "42:01:0a:80:00:2a";
const DONE: &str = "BRINGUP: done";

/// The iPXE script: two leases around a close and reopen, then three pings of the gateway.
/// Every step prints a marker (failures too), so the console says how far it got.
const SCRIPT: &str = "#!ipxe
echo BRINGUP: script
dhcp net0 && echo BRINGUP: lease1 ${net0/ip} ${net0/gateway} || echo BRINGUP: dhcp1 failed
ifclose net0 && echo BRINGUP: closed || echo BRINGUP: ifclose failed
ifopen net0 && echo BRINGUP: reopened || echo BRINGUP: ifopen failed
dhcp net0 && echo BRINGUP: lease2 ${net0/ip} ${net0/gateway} || echo BRINGUP: dhcp2 failed
ping --count 3 ${net0/gateway} && echo BRINGUP: ping ok || echo BRINGUP: ping failed
echo BRINGUP: done
";

#[derive(Clone, Debug)]
struct Row {
    profile: Profile,
    offered: Vec<QueueFormat>,
}

impl Row {
    fn name(&self) -> String {
        let offered: Vec<&str> = self.offered.iter().map(|f| f.name()).collect();
        format!("iPXE {:?} offered {}", self.profile, offered.join("+"))
    }
}

fn rows() -> Vec<Row> {
    let offerings = [vec![QueueFormat::GqiQpl], QueueFormat::ALL.to_vec()];
    [Profile::Y2024, Profile::Y2026]
        .iter()
        .flat_map(|p| {
            offerings.iter().map(|o| Row {
                profile: *p,
                offered: o.clone(),
            })
        })
        .collect()
}

struct Boot {
    row: Row,
    console: String,
    pcap: PathBuf,
    model: ModelState,
    router: Ipv4Addr,
    took: Duration,
    _dir: tempfile::TempDir,
}

fn boot(lkrn: &Path, row: Row) -> Boot {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.ipxe");
    std::fs::write(&script, SCRIPT).unwrap();
    let pcap = dir.path().join("wire.pcap");
    let mut model = ModelConfig {
        profile: row.profile,
        ..ModelConfig::default()
    };
    model.responder.offered_ip = Some(OFFERED_IP);
    let router = model.responder.router_ip;
    let cfg = QemuConfig {
        memory_mib: 256,
        bios_serial_console: true,
        direct_boot: Some(DirectBoot {
            kernel: lkrn.to_path_buf(),
            initrd: script,
            append: String::new(),
        }),
        gvnic: Some(GvnicOptions {
            pcap: Some(pcap.clone()),
            formats: Some(Formats::only(&row.offered)),
            mac: Some(MAC),
            extra: Some(model),
            ..Default::default()
        }),
        ..Default::default()
    };
    let started = Instant::now();
    let (console, mut q) = linux::run_console(&cfg, Some(DONE), DEADLINE);
    if let Some(Err(e)) = q.shutdown() {
        panic!("{}: the gVNIC model failed: {e:#}", row.name());
    }
    let model = q.gvnic_model_state().expect("the model served QEMU");
    Boot {
        row,
        console,
        pcap,
        model,
        router,
        took: started.elapsed(),
        _dir: dir,
    }
}

// ---- one assertion helper per oracle ----

/// Two DHCP transactions from iPXE's MAC, each DISCOVER, OFFER, REQUEST, ACK in that order,
/// iPXE's packets with good IPv4 and UDP checksums.
fn check_dhcp_wire(b: &Boot) -> Result<(), String> {
    let rows = tshark::tshark_dhcp_rows(&b.pcap);
    let mut xids: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r[0] == "1" && r[1] == MAC_TEXT) {
        if !xids.contains(&r[4].as_str()) {
            xids.push(&r[4]);
        }
    }
    let complete = xids
        .iter()
        .filter(|x| {
            let types: Vec<&str> = rows
                .iter()
                .filter(|r| r[4] == **x)
                .map(|r| r[0].as_str())
                .collect();
            // DISCOVER(s) and OFFER(s), then REQUEST, then ACK.
            let at = |t: &str| types.iter().position(|y| *y == t);
            matches!((at("1"), at("2"), at("3"), at("5")),
                (Some(d), Some(o), Some(q), Some(a)) if d < o && o < q && q < a)
        })
        .count();
    let bad_sums = rows
        .iter()
        .filter(|r| r[1] == MAC_TEXT && (r[2] != "1" || r[3] != "1"))
        .count();
    match (complete >= 2, bad_sums) {
        (true, 0) => Ok(()),
        _ => Err(format!(
            "{complete} complete DHCP transaction(s), {bad_sums} bad checksum(s): {rows:?}"
        )),
    }
}

/// Echo replies from the gateway to the leased address, each answering a request of iPXE's.
fn check_ping_wire(b: &Boot) -> Result<(), String> {
    let replies = tshark::tshark_fields(
        &b.pcap,
        &format!(
            "icmp.type == 0 && ip.src == {} && ip.dst == {OFFERED_IP} && icmp.resp_to",
            b.router
        ),
        &["icmp.seq"],
    );
    match replies.len() >= 3 {
        true => Ok(()),
        false => Err(format!("{} echo replies: {replies:?}", replies.len())),
    }
}

/// iPXE printed both leases with the address and router the responder gave, reopened, and
/// its ping succeeded.
fn check_console(b: &Boot) -> Result<(), String> {
    let c = &b.console;
    let want = |n: u8| format!("BRINGUP: lease{n} {OFFERED_IP} {}", b.router);
    let missing: Vec<String> = [
        want(1),
        "BRINGUP: closed".into(),
        "BRINGUP: reopened".into(),
        want(2),
        "BRINGUP: ping ok".into(),
    ]
    .into_iter()
    .filter(|m| !c.contains(m.as_str()))
    .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!("console lacks {missing:?}")),
    }
}

/// The device ran GQI-QPL at each open (iPXE configures at every open).
fn check_format(b: &Boot) -> Result<(), String> {
    let f = &b.model.configured_formats;
    match f.len() == 2 && f.iter().all(|x| *x == QueueFormat::GqiQpl) {
        true => Ok(()),
        false => Err(format!("configured {f:?}, expected GQI-QPL twice")),
    }
}

/// The model's own summary: no violation, no refused or unimplemented command.
fn check_record(b: &Boot) -> Result<(), String> {
    let s = &b.model.record.summary;
    match s.clean() {
        true => Ok(()),
        false => Err(s.words()),
    }
}

fn check(b: &Boot) -> Vec<String> {
    [
        ("dhcp wire", check_dhcp_wire(b)),
        ("ping wire", check_ping_wire(b)),
        ("console", check_console(b)),
        ("format", check_format(b)),
        ("record", check_record(b)),
    ]
    .into_iter()
    .filter_map(|(oracle, r)| r.err().map(|e| format!("{}: {oracle}: {e}", b.row.name())))
    .collect()
}

#[test]
fn debian_ipxe_leases_reopens_leases_again_and_pings_through_the_model() {
    let started = Instant::now();
    let lkrn = ipxe::lkrn();
    let boots = linux::in_parallel(PARALLEL_BOOTS, rows(), |r| boot(&lkrn, r));
    let mut failures = Vec::new();
    for b in &boots {
        eprintln!("{}: {:.0?}", b.row.name(), b.took);
        let f = check(b);
        if !f.is_empty() {
            eprintln!("console:\n{}", b.console);
        }
        failures.extend(f);
    }
    eprintln!("{} boots, {:.0?}", boots.len(), started.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
