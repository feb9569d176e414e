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
//! The packages are fetched once with `apt-get download` into target/linux-cache/ and
//! unpacked there; later runs use the cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gvnic_model::adminq::status;
use gvnic_model::{Formats, ModelConfig, QueueFormat, ResetCause, ViolationKind};
use host_client::gvnic::ModelState;
use host_client::qemu::workspace_root;
use host_client::{DirectBoot, GvnicOptions, QemuConfig, QemuProcess};

/// The model's default MAC (gvnic-model config.rs), as tshark prints it.
const MAC: &str = "42:01:0a:80:00:02";
/// TCG boot of a stock kernel, probe, DHCP, power off.
const BOOT_DEADLINE: Duration = Duration::from_secs(150);

struct Linux {
    kernel: PathBuf,
    gve: PathBuf,
    busybox: PathBuf,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn find(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            if let Some(f) = find(&p, pred) {
                return Some(f);
            }
        } else if pred(&p) {
            return Some(p);
        }
    }
    None
}

fn unpacked(root: &Path) -> Option<Linux> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    Some(Linux {
        kernel: find(&root.join("boot"), &|p| {
            name(p).is_some_and(|n| n.starts_with("vmlinuz-"))
        })?,
        gve: find(&root.join("lib/modules"), &|p| {
            name(p).as_deref() == Some("gve.ko") && p.to_string_lossy().contains("google/gve")
        })?,
        busybox: Some(root.join("bin/busybox")).filter(|p| p.is_file())?,
    })
}

/// The stock kernel, its gve module and a static busybox, from the cache or fetched once.
fn linux() -> Linux {
    let cache = workspace_root().join("target/linux-cache");
    let root = cache.join("root");
    if let Some(l) = unpacked(&root) {
        return l;
    }
    std::fs::create_dir_all(&cache).unwrap();
    let debs = |c: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(c)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                    .collect()
            })
            .unwrap_or_default()
    };
    if debs(&cache).len() < 2 {
        // The metapackage names this release's kernel image package (apt lists may be
        // missing on a fresh machine: update once then).
        let depends = || {
            Command::new("apt-cache")
                .args(["depends", "linux-image-amd64"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .filter(|d| d.contains("Depends: linux-image-"))
        };
        let deps = depends().unwrap_or_else(|| {
            run(Command::new("apt-get").arg("update"));
            run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))
        });
        let image = deps
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .filter(|p| p.starts_with("linux-image-"))
            .unwrap_or_else(|| panic!("no kernel image package in:\n{deps}"))
            .to_string();
        run(Command::new("apt-get")
            .args(["download", &image, "busybox-static"])
            .current_dir(&cache));
    }
    // Only the three files the test uses (the whole kernel package unpacks to ~400 MiB).
    std::fs::create_dir_all(&root).unwrap();
    for deb in debs(&cache) {
        let busybox = deb
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("busybox"));
        let members = if busybox {
            "'./bin/busybox'"
        } else {
            "'./boot/vmlinuz-*' './lib/modules/*/kernel/drivers/net/ethernet/google/gve/gve.ko'"
        };
        run(Command::new("sh")
            .arg("-c")
            .arg(format!(
                "dpkg-deb --fsys-tarfile \"$0\" | tar -x -C \"$1\" --wildcards {members}"
            ))
            .arg(&deb)
            .arg(&root));
    }
    unpacked(&root).expect("the packages hold vmlinuz, gve.ko and busybox")
}

/// One newc cpio entry.
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

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

fn initramfs(l: &Linux, out: &Path) {
    let mut c = Vec::new();
    let dir = 0o040755;
    let file = 0o100755;
    let mut ino = 1;
    let mut add = |c: &mut Vec<u8>, name: &str, mode: u32, data: &[u8], rdev| {
        cpio_entry(c, ino, name, mode, data, rdev);
        ino += 1;
    };
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        add(&mut c, d, dir, &[], (0, 0));
    }
    // The kernel opens /dev/console for init before anything is mounted.
    add(&mut c, "dev/console", 0o020600, &[], (5, 1));
    add(
        &mut c,
        "bin/busybox",
        file,
        &std::fs::read(&l.busybox).unwrap(),
        (0, 0),
    );
    add(
        &mut c,
        "gve.ko",
        0o100644,
        &std::fs::read(&l.gve).unwrap(),
        (0, 0),
    );
    add(&mut c, "init", file, INIT.as_bytes(), (0, 0));
    add(
        &mut c,
        "udhcpc.script",
        file,
        b"#!/bin/busybox sh\nexit 0\n",
        (0, 0),
    );
    add(&mut c, "TRAILER!!!", 0, &[], (0, 0));
    std::fs::write(out, c).unwrap();
}

/// What one boot showed.
struct Boot {
    console: String,
    pcap: PathBuf,
    model: ModelState,
    _dir: tempfile::TempDir,
}

fn boot(l: &Linux, formats: Formats) -> Boot {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    initramfs(l, &initrd);
    let pcap = dir.path().join("wire.pcap");
    let cfg = QemuConfig {
        memory_mib: 384,
        direct_boot: Some(DirectBoot {
            kernel: l.kernel.clone(),
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
    let mut q = QemuProcess::spawn(&cfg).expect("QEMU starts");
    let mut serial = q
        .connect_serial(Duration::from_secs(10))
        .expect("serial socket");
    serial
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    let mut console = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match serial.read(&mut buf) {
            Ok(0) => break, // QEMU powered off
            Ok(n) => console.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("serial: {e}"),
        }
        if started.elapsed() > BOOT_DEADLINE {
            panic!(
                "Linux did not power off within {BOOT_DEADLINE:?}; console:\n{}",
                String::from_utf8_lossy(&console)
            );
        }
    }
    q.shutdown();
    let model = q.gvnic_model_state().expect("the model served QEMU");
    Boot {
        console: String::from_utf8_lossy(&console).into_owned(),
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
    let l = linux();
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
