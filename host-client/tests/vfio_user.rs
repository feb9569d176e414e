//! Google's Linux driver over the vfio-user model on QEMU 11: interrupts reach the guest, so
//! gve receives. Debian bookworm's stock 6.1 kernel (tests/support/linux.rs) boots with the
//! model attached as `vfio-user-pci`, in GQI-QPL and in DQO-RDA (two QEMUs in parallel), and
//! must take a full lease: udhcpc is bound with the address and router the model's responder
//! put in its ACK (decoded from the pcap by tshark, the independent oracle), pings the gateway
//! and gets replies, gve's notification-block counts in /proc/interrupts rise, and the model
//! records no violation. Once more against real servers: the model's wire on a TAP inside a
//! network namespace (tests/netns) with dnsmasq and the metadata stand-in; the lease is the
//! one dnsmasq logged and busybox wget fetches the metadata body whose SHA-256 matches what
//! the server served.
//!
//! Needs `make qemu11` (target/qemu-11) and, for the TAP run, root (namespaces), dnsmasq and
//! python3, as tests/network.rs.

#[path = "support/linux.rs"]
mod linux;
mod netns;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gvnic_model::adminq::status;
use gvnic_model::{Formats, ModelConfig, QueueFormat, ViolationKind};
use host_client::gvnic::ModelState;
use host_client::qemu::qemu11_binary;
use host_client::{DirectBoot, GvnicOptions, GvnicTransport, QemuConfig};
use linux::run;
use sha2::Digest;

/// TCG boot of a stock kernel, probe, lease, ping, (wget), remove, power off.
const BOOT_DEADLINE: Duration = Duration::from_secs(240);

/// Load gve, bring eth0 up, snapshot gve's interrupt counts, take a lease (the script
/// configures the address and routes as GCE's /32 wants), ping the router, fetch metadata
/// when asked (/wget exists; no -T: bookworm's static busybox 1.35 wget segfaults with it),
/// snapshot again, close, remove, dmesg, power off.
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in $($B cat /modules); do $B insmod /$m || echo "BRINGUP: insmod $m failed"; done
echo "BRINGUP: gve loaded"
for i in $($B seq 1 100); do [ -e /sys/class/net/eth0 ] && break; $B sleep 0.1; done
$B ip link set eth0 up
for i in $($B seq 1 100); do [ "$($B cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && break; $B sleep 0.1; done
echo "BRINGUP: irq before"; $B cat /proc/interrupts; echo "BRINGUP: irq end"
$B udhcpc -i eth0 -n -q -t 10 -T 3 -O mtu -s /udhcpc.script && echo "BRINGUP: udhcpc bound"
R=$($B cat /tmp/router 2>/dev/null)
[ -n "$R" ] && $B ping -c 3 -W 3 "$R" && echo "BRINGUP: ping ok"
if [ -e /wget ]; then
  if $B wget -O /tmp/body --header "Metadata-Flavor: Google" "http://169.254.169.254/computeMetadata/v1/instance/id"; then
    echo "BRINGUP: wget sha256 $($B sha256sum /tmp/body)"
  else
    echo "BRINGUP: wget failed"
  fi
fi
echo "BRINGUP: irq after"; $B cat /proc/interrupts; echo "BRINGUP: irq end"
$B ip link set eth0 down
if $B rmmod gve; then echo "BRINGUP: gve removed"; else echo "BRINGUP: rmmod failed"; fi
echo "BRINGUP: dmesg begin"
$B dmesg
echo "BRINGUP: dmesg end"
$B poweroff -f
"#;

/// udhcpc's hook: on bound, the address (GCE's /32), a route to the router on the link and
/// the default route through it; then one line with what was bound.
const UDHCPC_SCRIPT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
case "$1" in
bound|renew)
  $B ip addr add "$ip/${mask:-32}" dev "$interface"
  $B ip route add "$router" dev "$interface"
  $B ip route add default via "$router" dev "$interface"
  echo "$router" > /tmp/router
  echo "BRINGUP: lease ip=$ip router=$router subnet=$subnet mtu=$mtu server=$serverid"
  ;;
esac
exit 0
"#;

/// What one boot showed.
struct Boot {
    console: String,
    pcap: PathBuf,
    model: ModelState,
    _dir: tempfile::TempDir,
}

fn qemu11() -> String {
    qemu11_binary()
        .expect("QEMU 11 is missing: run `make qemu11` (`make test` does)")
        .display()
        .to_string()
}

/// The configuration of one boot; `tap`: the wire on that TAP instead of the responder.
fn config(k: &linux::Unpacked, formats: Formats, tap: Option<String>) -> (QemuConfig, Boot) {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    let mut i = linux::Initramfs::with_busybox(&linux::busybox());
    let mut names = Vec::new();
    for m in &k.modules {
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        i.file(&name, 0o644, &std::fs::read(m).unwrap());
        names.push(name);
    }
    i.file("modules", 0o644, names.join("\n").as_bytes());
    i.file("init", 0o755, INIT.as_bytes());
    i.file("udhcpc.script", 0o755, UDHCPC_SCRIPT.as_bytes());
    if tap.is_some() {
        i.file("wget", 0o644, b"");
    }
    i.write(&initrd);
    let pcap = dir.path().join("wire.pcap");
    let cfg = QemuConfig {
        memory_mib: 384,
        qemu_binary: qemu11(),
        gvnic_transport: Some(GvnicTransport::VfioUser),
        direct_boot: Some(DirectBoot {
            kernel: k.vmlinuz.clone(),
            initrd,
            append: "console=ttyS0 quiet panic=-1 rdinit=/init".into(),
        }),
        gvnic: Some(GvnicOptions {
            pcap: Some(pcap.clone()),
            formats: Some(formats),
            extra: Some(ModelConfig::default()),
            tap,
            ..Default::default()
        }),
        ..Default::default()
    };
    let boot = Boot {
        console: String::new(),
        pcap,
        model: ModelState::of(&gvnic_model::Gvnic::new(ModelConfig::default())),
        _dir: dir,
    };
    (cfg, boot)
}

fn boot(cfg: &QemuConfig, mut b: Boot) -> Boot {
    let (console, mut q) = linux::run_to_poweroff(cfg, BOOT_DEADLINE);
    q.shutdown();
    b.model = q.gvnic_model_state().expect("the model served QEMU");
    b.console = console;
    b
}

/// The value of `key=` on the console's lease line.
fn lease_field<'a>(console: &'a str, key: &str) -> &'a str {
    let line = console
        .lines()
        .find(|l| l.contains("BRINGUP: lease "))
        .unwrap_or_else(|| panic!("udhcpc never bound:\n{console}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
}

/// Sum of the notification-block interrupt counts (all CPUs) in one /proc/interrupts snapshot.
fn block_irqs(console: &str, which: &str) -> u64 {
    let snap = console
        .split(&format!("BRINGUP: irq {which}"))
        .nth(1)
        .and_then(|s| s.split("BRINGUP: irq end").next())
        .unwrap_or_else(|| panic!("no /proc/interrupts snapshot {which}:\n{console}"));
    snap.lines()
        .filter(|l| l.contains("ntfy"))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map_while(|w| w.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// What every boot must show: gve ran the format, no admin error, interrupts rose, no
/// violation, and remove released the device.
fn check_common(b: &Boot, running: &str) {
    let c = &b.console;
    let dmesg = c
        .split("BRINGUP: dmesg begin")
        .nth(1)
        .unwrap_or_else(|| panic!("no dmesg on the console:\n{c}"));
    assert!(
        dmesg.contains(&format!("Driver is running with {running} queue format")),
        "gve chose another format:\n{dmesg}"
    );
    assert!(
        !dmesg.contains("AQ command failed") && !dmesg.contains("Failed to"),
        "gve reported an admin error:\n{dmesg}"
    );
    assert!(
        !dmesg.contains("transmit queue") || !dmesg.contains("timed out"),
        "TX watchdog fired:\n{dmesg}"
    );
    assert!(c.contains("BRINGUP: udhcpc bound"), "no lease:\n{c}");
    assert!(c.contains("BRINGUP: ping ok"), "no ping replies:\n{c}");
    let (before, after) = (block_irqs(c, "before"), block_irqs(c, "after"));
    assert!(
        after > before,
        "gve's notification-block interrupts did not rise ({before} -> {after}):\n{c}"
    );
    assert!(c.contains("BRINGUP: gve removed"), "console:\n{c}");
    assert!(
        b.model.is_reset,
        "the device still holds memory after remove"
    );
    let failed: Vec<_> = b
        .model
        .admin_commands
        .iter()
        .filter(|cmd| cmd.status != status::PASSED)
        .collect();
    assert!(failed.is_empty(), "admin commands failed: {failed:x?}");
    let mistakes: Vec<_> = b
        .model
        .violations
        .iter()
        .filter(|v| v.kind != ViolationKind::Tolerated)
        .collect();
    assert!(mistakes.is_empty(), "model violations: {mistakes:#?}");
    // The vectors went out through QEMU's eventfds (QEMU owns the table: address 0).
    assert!(
        b.model.interrupts.iter().any(|i| i.address == 0),
        "no vector raised through vfio-user: {:?}",
        b.model.interrupts
    );
}

/// The responder's ACK on the wire, as tshark decodes it: (yiaddr, router).
fn acked(pcap: &PathBuf) -> (String, String) {
    let out = run(Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", "dhcp.option.dhcp == 5", "-T", "fields"])
        .args(["-e", "dhcp.ip.your", "-e", "dhcp.option.router"]));
    let line = out
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no DHCP ACK in the pcap: {out:?}"));
    let mut f = line.split('\t');
    let (ip, router) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
    (ip.to_string(), router.to_string())
}

/// ICMP echo replies from the router to the guest on the wire.
fn echo_replies(pcap: &PathBuf, from: &str) -> usize {
    run(Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", &format!("icmp.type == 0 && ip.src == {from}")]))
    .lines()
    .count()
}

#[test]
fn linux_gve_takes_a_lease_and_pings_over_vfio_user_in_gqi_qpl_and_dqo_rda() {
    let started = Instant::now();
    let k = linux::kernel(&linux::KERNELS[0]);
    let runs = [
        (Formats::only(&[QueueFormat::GqiQpl]), "GQI QPL"),
        (Formats::dqo_only(), "DQO RDA"),
    ];
    let boots: Vec<(Boot, &str)> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(f, name)| {
                let k = &k;
                s.spawn(move || {
                    let (cfg, b) = config(k, f.clone(), None);
                    (boot(&cfg, b), *name)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (b, name) in &boots {
        check_common(b, name);
        let (ip, router) = acked(&b.pcap);
        assert_eq!(lease_field(&b.console, "ip"), ip, "{name}: bound address");
        assert_eq!(lease_field(&b.console, "router"), router, "{name}: router");
        assert!(
            echo_replies(&b.pcap, &router) >= 3,
            "{name}: fewer than 3 echo replies from {router} on the wire"
        );
    }
    eprintln!("vfio-user responder runs: {:?}", started.elapsed());
}

#[test]
fn linux_gve_over_vfio_user_leases_from_dnsmasq_and_fetches_metadata_on_a_tap() {
    let started = Instant::now();
    let k = linux::kernel(&linux::KERNELS[0]);
    let mut net = netns::TestNet::prepare("v");
    let (cfg, b) = config(
        &k,
        Formats::only(&[QueueFormat::GqiQpl]),
        Some(net.tap.clone()),
    );
    let tap = net.tap.clone();
    let b = std::thread::scope(|s| {
        // The model opens (creates) the TAP when QEMU starts; then it moves into the
        // namespace and the servers start. The guest's udhcpc retries meanwhile.
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(&format!("/sys/class/net/{tap}")).exists() {
                assert!(Instant::now() < deadline, "the model never opened {tap}");
                std::thread::sleep(Duration::from_millis(20));
            }
            net.start();
        });
        boot(&cfg, b)
    });
    check_common(&b, "GQI QPL");
    let ip = lease_field(&b.console, "ip");
    assert_eq!(ip, netns::GUEST.map(|o| o.to_string()).join("."));
    let mac = "42:01:0a:80:00:02";
    let log = std::fs::read_to_string(net.dnsmasq_log()).unwrap();
    assert!(
        log.contains(&format!("DHCPACK({tap}) {ip} {mac}")),
        "udhcpc's address {ip} is not the one dnsmasq acked:\n{log}"
    );
    assert_eq!(lease_field(&b.console, "mtu"), netns::MTU.to_string());
    assert_eq!(
        lease_field(&b.console, "router"),
        netns::ROUTER.map(|o| o.to_string()).join(".")
    );
    let served = sha2::Sha256::digest(net.metadata_body("instance/id").as_bytes());
    let hex: String = served.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        b.console.contains(&format!("BRINGUP: wget sha256 {hex}")),
        "wget's body is not what the server served (sha256 {hex}):\n{}",
        b.console
    );
    eprintln!("vfio-user TAP run: {:?}", started.elapsed());
}

/// The monitor's own gVNIC proof (proofs/gvnic.bringup: describe, DHCP DISCOVER/OFFER,
/// teardown), run the way a user runs it (`bringup run --gvnic-transport vfio-user`) on QEMU
/// 11 with the model as a vfio-user device, offering GQI-QPL and then only DQO-RDA (whose
/// held completions the device writes back when the driver's dummy vector fires: under
/// vfio-user QEMU performs that MSI-X write into RAM).
#[test]
fn monitor_gvnic_proof_passes_over_vfio_user() {
    let started = Instant::now();
    let image = host_client::qemu::default_image();
    assert!(
        image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let dir = tempfile::tempdir().unwrap();
    for formats in ["gqi-qpl", "dqo-rda"] {
        let report_path = dir.path().join(format!("{formats}.json"));
        let status = Command::new(env!("CARGO_BIN_EXE_bringup"))
            .current_dir(host_client::qemu::workspace_root())
            .args(["run", "proofs/gvnic.bringup", "--no-progress"])
            .args(["--gvnic-transport", "vfio-user", "--gvnic-formats", formats])
            .args(["--qemu-binary", &qemu11()])
            .arg("--image")
            .arg(&image)
            .arg("--report")
            .arg(&report_path)
            .status()
            .unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
        let summary = &report["summary"];
        assert!(status.success(), "{formats}: bringup run failed: {summary}");
        assert_eq!(report["passed"], true, "{formats}");
        assert_eq!(summary["failed"], 0, "{formats}");
        assert_eq!(summary["damaged_frames"], 0, "{formats}");
        assert_eq!(
            report["transport"], "qemu bios tcg gvnic=vfio-user",
            "{formats}: the model was attached through vfio-user"
        );
    }
    eprintln!("vfio-user monitor proofs: {:?}", started.elapsed());
}
