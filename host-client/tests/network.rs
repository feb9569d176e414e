//! System test: the network proof against real servers. The real image under SeaBIOS and
//! OVMF (two boots in parallel), the gVNIC model's wire on a TAP inside a namespace this
//! test makes (tests/netns): `gvnic dhcp` takes the lease dnsmasq logged (a /32 widened to
//! cover the router, option 121, MTU 1460, lease time), `gvnic ping gateway` gets Linux's
//! replies, `gvnic metadata` returns exactly the body the server served, the same GET
//! without the header shows 403, and a closed port, an unanswered ping and no server are
//! named errors. Needs root, iproute2, dnsmasq, python3 and target/bringup.img.

mod netns;

use std::time::Duration;

use evidence::{Body, Frame};
use host_client::{GvnicOptions, QemuConfig, Session};
use netns::{TestNet, GUEST, LEASE_SECS, MTU, ROUTER};

const MAC: [u8; 6] = [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02];
const MAC_TEXT: &str = "42:01:0a:80:00:02";

fn find<T>(frames: &[Frame], pick: impl Fn(&Body) -> Option<T>) -> Option<T> {
    frames.iter().find_map(|f| pick(&f.body))
}

fn run(uefi: bool) {
    let firmware = if uefi { "ovmf" } else { "bios" };
    let mut net = TestNet::prepare(if uefi { "u" } else { "b" });
    let cfg = QemuConfig {
        uefi,
        gvnic: Some(GvnicOptions {
            mac: Some(MAC),
            tap: Some(net.tap.clone()),
            ..GvnicOptions::default()
        }),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image` first (`make test` builds it)"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    net.start();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("{firmware}: no prompt: {e:#}\n{}", s.qemu_stderr()));
    let t = Duration::from_secs(120);
    let ok = |s: &mut Session, line: &str| {
        let run = s.command(line, t).unwrap();
        assert!(
            run.is_ok(),
            "{firmware}: {line}\n{}\n{:?}",
            run.text,
            run.result
        );
        run
    };
    let fails = |s: &mut Session, line: &str, code: &str| {
        let run = s.command(line, t).unwrap();
        assert_eq!(
            run.error_code(),
            Some(code),
            "{firmware}: {line}\n{}",
            run.text
        );
        assert!(find(&run.frames, |b| matches!(b, Body::NetHttp(_)).then_some(())).is_none());
    };

    // The lease, as dnsmasq logged it.
    let dhcp = ok(&mut s, "gvnic dhcp --timeout 20000");
    let lease = find(&dhcp.frames, |b| match b {
        Body::NetLease(l) => Some(l.clone()),
        _ => None,
    })
    .expect("net.lease frame");
    assert_eq!(lease.mac, MAC);
    assert_eq!(lease.address, GUEST);
    assert_eq!((lease.prefix_len, lease.interface_prefix_len), (32, 30));
    assert_eq!((lease.router, lease.gateway), (ROUTER, ROUTER));
    assert_eq!(
        lease.server_id, ROUTER,
        "dnsmasq identifies itself by its address"
    );
    assert_eq!(lease.dns, [[169, 254, 169, 254]]);
    assert_eq!((lease.mtu, lease.lease_secs), (MTU, LEASE_SECS));
    let routes: Vec<_> = lease
        .classless_routes
        .iter()
        .map(|r| (r.destination, r.prefix_len, r.gateway))
        .collect();
    assert_eq!(routes, [(ROUTER, 32, [0; 4]), ([0; 4], 0, ROUTER)]);
    let kinds: Vec<&str> = lease.wire.iter().map(|w| w.kind.as_str()).collect();
    assert!(kinds.ends_with(&["dhcp-request", "dhcp-ack"]), "{kinds:?}");
    let log = std::fs::read_to_string(net.dnsmasq_log()).unwrap();
    let acked = format!("DHCPACK({}) 10.128.0.2 {MAC_TEXT}", net.tap);
    assert!(
        log.contains(&acked),
        "{firmware}: dnsmasq log lacks '{acked}':\n{log}"
    );
    // dnsmasq pads its option log with spaces: compare word by word.
    let words = log.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("option: 51 lease-time 1d"), "{log}");
    assert!(words.contains("option: 1 netmask 255.255.255.255"), "{log}");

    // Linux answers ARP and ping for the router.
    let ping = ok(&mut s, "gvnic ping gateway --count 3");
    let report = find(&ping.frames, |b| match b {
        Body::NetPing(p) => Some(p.clone()),
        _ => None,
    })
    .expect("net.ping frame");
    assert_eq!((report.target, report.sent), (ROUTER, 3));
    assert_eq!(report.reply_seqs, [1, 2, 3], "{}", ping.text);
    assert_ne!(
        report.next_hop_mac, [0; 6],
        "the router's ARP reply was accepted"
    );
    assert!(ping.text.contains("0% loss"), "{}", ping.text);

    // The metadata server: exactly the bodies served, with the header; 403 without.
    for path in ["instance/id", "instance/zone"] {
        let run = ok(&mut s, &format!("gvnic metadata {path}"));
        let http = find(&run.frames, |b| match b {
            Body::NetHttp(h) => Some(h.clone()),
            _ => None,
        })
        .expect("net.http frame");
        let served = net.metadata_body(path);
        assert_eq!(http.status, 200, "{}", run.text);
        assert_eq!(http.body, served.as_bytes(), "{}", run.text);
        assert_eq!(http.body_bytes, served.len() as u64);
        assert!(http.complete && !http.truncated);
        assert_eq!(http.sent_headers, ["Metadata-Flavor"]);
        let digest: [u8; 32] =
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(served)).into();
        assert_eq!(http.sha256, digest);
        assert!(http.connect_us > 0 && http.total_us >= http.first_byte_us);
    }
    let bare = ok(
        &mut s,
        "gvnic http http://169.254.169.254/computeMetadata/v1/instance/id",
    );
    let http = find(&bare.frames, |b| match b {
        Body::NetHttp(h) => Some(h.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(http.status, 403, "{}", bare.text);
    // A path the server does not have: the error, and the 404 it answered still shown.
    let missing = s.command("gvnic metadata instance/nothing", t).unwrap();
    assert_eq!(
        missing.error_code(),
        Some("net-http-status"),
        "{}",
        missing.text
    );
    assert!(missing.text.contains("404"), "{}", missing.text);
    // A bounded body is cut and said so; the digest still covers all of it.
    let cut = ok(&mut s, "gvnic metadata --max-bytes 4");
    assert!(cut.text.contains("TRUNCATED"), "{}", cut.text);

    // A body over several TCP windows: bounded in the frame, hashed whole.
    let big = ok(
        &mut s,
        "gvnic http http://169.254.169.254/test/big --max-bytes 100",
    );
    let http = find(&big.frames, |b| match b {
        Body::NetHttp(h) => Some(h.clone()),
        _ => None,
    })
    .unwrap();
    let served: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        (http.body_bytes, http.truncated, http.complete),
        (100_000, true, true)
    );
    assert_eq!(http.body, served[..100]);
    let digest: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&served)).into();
    assert_eq!(http.sha256, digest);
    assert!(big.text.contains("TRUNCATED"), "{}", big.text);

    // Named errors from a real network.
    fails(
        &mut s,
        "gvnic http http://169.254.169.254/test/slow --timeout 1500",
        "net-response-timeout",
    );
    fails(
        &mut s,
        "gvnic http http://169.254.169.254/test/reset",
        "net-connection-reset",
    );
    fails(
        &mut s,
        "gvnic http http://169.254.169.254:81/",
        "net-connection-refused",
    );
    fails(
        &mut s,
        "gvnic ping 10.128.0.9 --count 1 --timeout 500",
        "net-no-echo-reply",
    );
    fails(
        &mut s,
        "gvnic http http://10.128.0.9/ --timeout 1000",
        "net-connect-timeout",
    );

    let down = ok(&mut s, "teardown");
    assert!(down.text.contains("gvnic"), "{}", down.text);
    ok(&mut s, "dma");
}

#[test]
fn dhcp_ping_and_metadata_against_real_servers_under_seabios_and_ovmf() {
    let threads: Vec<_> = [false, true]
        .into_iter()
        .map(|uefi| std::thread::spawn(move || run(uefi)))
        .collect();
    let mut failed = Vec::new();
    for (thread, name) in threads.into_iter().zip(["SeaBIOS", "OVMF"]) {
        if let Err(panic) = thread.join() {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{name}: {why}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// proofs/network.bringup, run as a user runs it (the `bringup` binary with --gvnic-tap,
/// a JSON report), against the same namespace network: every command and expectation
/// holds, and the report carries the SHA-256 of the instance id the server served.
#[test]
fn network_proof_passes_through_bringup_run() {
    let mut net = TestNet::prepare("p");
    let image = host_client::qemu::workspace_root().join("target/bringup.img");
    assert!(
        image.exists(),
        "{} is missing: run `make image` first",
        image.display()
    );
    let report_path = net.dir.path().join("network.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bringup"))
        .current_dir(host_client::qemu::workspace_root())
        .args([
            "run",
            "proofs/network.bringup",
            "--no-progress",
            "--gvnic-tap",
        ])
        .arg(&net.tap)
        .arg("--image")
        .arg(&image)
        .arg("--report")
        .arg(&report_path)
        .spawn()
        .unwrap();
    // The model inside `bringup` opens the TAP before QEMU boots; start waits for it.
    net.start();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&report_path).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let summary = &report["summary"];
    assert!(status.success(), "bringup run failed: {summary}");
    assert_eq!(report["passed"], true);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["commands"], summary["passed"]);
    use sha2::Digest;
    let served = sha2::Sha256::digest(net.metadata_body("instance/id").as_bytes());
    let hex: String = served.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        report.to_string().contains(&hex),
        "the report must hold the body's SHA-256"
    );
}
