//! The gVNIC model held to Google's own driver: Debian bookworm's stock kernel
//! (`linux-image-amd64`, unmodified `gve.ko`) boots in QEMU with the model attached through
//! the multi-process proxy, from a tiny initramfs this test builds (busybox-static plus an
//! /init script). For the model offering GQI-QPL and, separately, only DQO-RDA, Linux's gve
//! must probe without an admin-command error, bring the link up and put a DHCP DISCOVER on
//! the wire that tshark decodes with the device's MAC. Linux cannot receive here (the proxy
//! has no interrupt path, so NAPI never runs): no lease is asked of it. For the same reason
//! only the first frame of each TX queue leaves (byte queue limits wait for completions that
//! NAPI would process), so IPv6 is off and the DISCOVER is the first frame.
//!
//! The kernels are data in tests/support/linux.rs: fetched once through the private APT
//! configuration into target/linux-cache/ and unpacked there; later runs use the cache.

#[path = "support/linux.rs"]
mod linux;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use linux::run;

use gvnic_model::adminq::status;
use gvnic_model::{Formats, ModelConfig, QueueFormat, ResetCause, ViolationKind};
use host_client::gvnic::ModelState;
use host_client::{DirectBoot, GvnicOptions, QemuConfig};

/// The model's default MAC (gvnic-model config.rs), as tshark prints it.
const MAC: &str = "42:01:0a:80:00:02";
/// TCG boot of a stock kernel, probe, DHCP, power off.
const BOOT_DEADLINE: Duration = Duration::from_secs(150);

/// The init script: load gve (probe), bring eth0 up (open), one DHCP DISCOVER, eth0 down
/// (close), unload gve (remove: deconfigure and the admin-queue release), report, power off.
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
if $B insmod /gve.ko; then echo "BRINGUP: gve loaded"; else echo "BRINGUP: insmod failed"; fi
for i in $($B seq 1 100); do [ -e /sys/class/net/eth0 ] && break; $B sleep 0.1; done
$B ip link set eth0 up && echo "BRINGUP: eth0 up"
for i in $($B seq 1 100); do [ "$($B cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && break; $B sleep 0.1; done
echo "BRINGUP: carrier $($B cat /sys/class/net/eth0/carrier 2>/dev/null)"
$B udhcpc -i eth0 -n -t 1 -T 2 -s /udhcpc.script
$B ip link set eth0 down && echo "BRINGUP: eth0 down"
if $B rmmod gve; then echo "BRINGUP: gve removed"; else echo "BRINGUP: rmmod failed"; fi
echo "BRINGUP: dmesg begin"
$B dmesg
echo "BRINGUP: dmesg end"
$B poweroff -f
"#;

fn initramfs(k: &linux::Unpacked, out: &Path) {
    let mut i = linux::Initramfs::with_busybox(&linux::busybox());
    i.file(
        "gve.ko",
        0o644,
        &std::fs::read(k.modules.last().unwrap()).unwrap(),
    );
    i.file("init", 0o755, INIT.as_bytes());
    i.file("udhcpc.script", 0o755, b"#!/bin/busybox sh\nexit 0\n");
    i.write(out);
}

/// What one boot showed.
struct Boot {
    console: String,
    pcap: PathBuf,
    model: ModelState,
    _dir: tempfile::TempDir,
}

fn boot(l: &linux::Unpacked, formats: Formats) -> Boot {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    initramfs(l, &initrd);
    let pcap = dir.path().join("wire.pcap");
    let cfg = QemuConfig {
        memory_mib: 384,
        direct_boot: Some(DirectBoot {
            kernel: l.vmlinuz.clone(),
            initrd,
            // ipv6.disable=1: no MLD report ahead of the DISCOVER. Linux's byte queue limits
            // stop a TX queue after its first packet until TX completions are processed,
            // which NAPI does only on an interrupt, and the proxy delivers none; so the
            // DISCOVER must be the first frame of its queue.
            append: "console=ttyS0 quiet panic=-1 rdinit=/init ipv6.disable=1".into(),
        }),
        gvnic: Some(GvnicOptions {
            pcap: Some(pcap.clone()),
            formats: Some(formats),
            extra: Some(ModelConfig::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (console, mut q) = linux::run_to_poweroff(&cfg, BOOT_DEADLINE);
    q.shutdown();
    let model = q.gvnic_model_state().expect("the model served QEMU");
    Boot {
        console,
        pcap,
        model,
        _dir: dir,
    }
}

fn check(b: &Boot, running: &str) {
    let c = &b.console;
    let dmesg = c
        .split("BRINGUP: dmesg begin")
        .nth(1)
        .unwrap_or_else(|| panic!("no dmesg on the console:\n{c}"));
    assert!(c.contains("BRINGUP: gve loaded"), "console:\n{c}");
    assert!(
        dmesg.contains(&format!("Driver is running with {running} queue format")),
        "gve chose another format:\n{dmesg}"
    );
    assert!(
        !dmesg.contains("AQ command failed") && !dmesg.contains("Failed to"),
        "gve reported an admin error:\n{dmesg}"
    );
    assert!(dmesg.contains("Device link is up"), "no link:\n{dmesg}");
    assert!(c.contains("BRINGUP: carrier 1"), "console:\n{c}");
    assert!(c.contains("BRINGUP: gve removed"), "console:\n{c}");
    // Remove released the device: it holds no driver memory (Linux polled PFN for it).
    assert!(
        b.model.is_reset,
        "the device still holds memory after remove"
    );
    let last = b.model.resets.last().expect("a reset");
    assert!(
        last.cause == ResetCause::PfnZero && last.completed,
        "last reset {last:?}"
    );
    // The device's own view: every command Linux sent passed.
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
    // tshark decodes a DHCP DISCOVER from the device's MAC.
    let out = run(Command::new("tshark")
        .arg("-r")
        .arg(&b.pcap)
        .args(["-Y", "dhcp.option.dhcp == 1", "-T", "fields"])
        .args(["-e", "eth.src", "-e", "dhcp.hw.mac_addr"]));
    assert!(
        // Source MAC, then chaddr (and option 61's MAC, when present).
        out.lines().any(|l| l.split(['\t', ',']).all(|f| f == MAC)),
        "no DHCP DISCOVER from {MAC} in the pcap: {out:?}\nwire:\n{}\nconsole:\n{c}",
        run(Command::new("tshark").arg("-r").arg(&b.pcap))
    );
}

#[test]
fn linux_gve_probes_links_and_sends_a_discover_in_gqi_qpl_and_dqo_rda() {
    let l = linux::kernel(&linux::KERNELS[0]);
    let runs = [
        (Formats::only(&[QueueFormat::GqiQpl]), "GQI QPL"),
        (Formats::dqo_only(), "DQO RDA"),
    ];
    let boots: Vec<(Boot, &str)> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(f, name)| {
                let l = &l;
                s.spawn(move || (boot(l, f.clone()), *name))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (b, name) in &boots {
        check(b, name);
    }
    // Linux unmasked (GQI) or armed (DQO) its blocks, and the device asserted MSI-X for the
    // DISCOVER's completion (recorded only: the LAPIC address is not RAM behind the proxy).
    // In DQO that interrupt is what wrote the completion back.
    for (b, name) in &boots {
        assert!(
            b.model
                .interrupts
                .iter()
                .any(|i| !i.written_to_ram && i.address >> 20 == 0xfee),
            "{name}: no MSI-X message to the LAPIC: {:x?}",
            b.model.interrupts
        );
    }
}
