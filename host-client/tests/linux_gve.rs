//! The gVNIC model held to Google's own driver, three kernel generations: Debian's stock
//! kernels (tests/support/linux.rs: bookworm 6.1, bookworm-backports 6.12, trixie-backports
//! 7.x; unmodified `gve.ko`) boot in QEMU with the model attached through the multi-process
//! proxy, from a tiny busybox initramfs.
//!
//! The table is kernel x profile x offered formats: every format the kernel's gve supports,
//! each offered alone, plus all four offered together (the driver must pick its preference).
//! One boot per kernel x profile covers every format: each offering is its own gVNIC (its own
//! x-pci-proxy-dev and model, slots 5, 6, ...), so one row is one device of that boot. Two
//! boots run at a time (the machine's two cores).
//!
//! Per row, one oracle each: no admin error in dmesg for the device (probe), the model's
//! CONFIGURE carried the expected format (and dmesg names it where gve prints it), the link
//! came up (carrier and dmesg), tshark decodes a DHCP DISCOVER from the device's MAC, the
//! device was released by `rmmod` and again at poweroff (gve's shutdown hook) after a second
//! probe, and the model's record holds no violation and no refused command.
//!
//! Linux cannot receive here (the proxy has no interrupt path, so NAPI never runs): no lease
//! is asked of it. For the same reason only the first frame of each TX queue leaves (byte
//! queue limits wait for completions that NAPI would process), so IPv6 is off and the
//! DISCOVER is the first frame.

#[path = "support/linux.rs"]
mod linux;
#[path = "support/tshark.rs"]
mod tshark;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gvnic_model::adminq::opcode;
use gvnic_model::adminq::status;
use gvnic_model::{Formats, ModelConfig, Profile, QueueFormat, ResetCause};
use host_client::gvnic::ModelState;
use host_client::{DirectBoot, GvnicOptions, QemuConfig};
use linux::{Kernel, Unpacked, KERNELS};

/// TCG boot of a stock kernel, two probes of up to five devices, DHCP, power off.
const BOOT_DEADLINE: Duration = Duration::from_secs(300);
/// Boots at once: the machine has two cores.
const PARALLEL_BOOTS: usize = 2;
/// First PCI slot of the gVNICs (the proxy's default).
const FIRST_SLOT: u8 = 5;

/// The device generations the model plays (`--profile`): 2024 sends queue-format options
/// only; 2026 adds JUMBO_FRAMES, MODIFY_RING, BUFFER_SIZES, FLOW_STEERING, RSS_CONFIG and
/// NIC_TIMESTAMP, and every driver path those options open must hold.
const PROFILES: &[Profile] = &[Profile::Y2024, Profile::Y2026];

fn model_config(p: Profile) -> ModelConfig {
    ModelConfig {
        profile: p,
        ..ModelConfig::default()
    }
}

/// Linux's choice among the offered formats (gve_adminq.c, describe: DQO RDA first, then
/// DQO QPL, GQI RDA, and GQI QPL as the fallback).
const LINUX_PREFERENCE: [QueueFormat; 4] = [
    QueueFormat::DqoRda,
    QueueFormat::DqoQpl,
    QueueFormat::GqiRda,
    QueueFormat::GqiQpl,
];

/// One row: a kernel meets one device offering `offered`, in one profile.
#[derive(Clone, Debug)]
struct Row {
    kernel: &'static Kernel,
    profile: Profile,
    offered: Vec<QueueFormat>,
    /// The format the driver must configure.
    expect: QueueFormat,
    /// The device's PCI slot and MAC in its boot.
    slot: u8,
    mac: [u8; 6],
}

impl Row {
    fn name(&self) -> String {
        let offered: Vec<&str> = self.offered.iter().map(|f| f.name()).collect();
        format!(
            "Linux {} {:?} offered {}",
            self.kernel.name,
            self.profile,
            offered.join("+")
        )
    }

    fn pci(&self) -> String {
        format!("0000:00:{:02x}.0", self.slot)
    }

    fn mac_text(&self) -> String {
        let m = self.mac;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The rows of one boot: each supported format alone, then all four together.
fn rows(kernel: &'static Kernel, profile: Profile) -> Vec<Row> {
    let mut offerings: Vec<Vec<QueueFormat>> = kernel.formats.iter().map(|f| vec![*f]).collect();
    offerings.push(QueueFormat::ALL.to_vec());
    offerings
        .into_iter()
        .enumerate()
        .map(|(i, offered)| {
            let expect = *LINUX_PREFERENCE
                .iter()
                .find(|f| offered.contains(f) && kernel.formats.contains(f))
                .expect("every offering holds a format the kernel knows");
            Row {
                kernel,
                profile,
                offered,
                expect,
                slot: FIRST_SLOT + i as u8,
                mac: [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02 + i as u8],
            }
        })
        .collect()
}

/// The init script. Phase 1: load the modules (probe), bring every gVNIC up (open), one DHCP
/// DISCOVER each, down (close), `rmmod` (remove: the release). Phase 2: load again, bring up,
/// print dmesg and power off with the devices open (gve's shutdown hook releases them).
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
N=$($B cat /expect)
say() { echo "BRINGUP: $*"; }
load() { for m in $($B cat /modules); do $B insmod /$m.ko || say "insmod $m failed"; done; }
nics() {
    for t in $($B seq 1 200); do
        [ "$($B ls /sys/class/net | $B grep -c '^eth')" -ge "$N" ] && break
        $B sleep 0.1
    done
    $B ls /sys/class/net | $B grep '^eth'
}
pci() { $B basename "$($B readlink /sys/class/net/$1/device)"; }
load && say "gve loaded"
for i in $(nics); do $B ip link set $i up && say "up $i $(pci $i)"; done
for i in $(nics); do
    for t in $($B seq 1 100); do [ "$($B cat /sys/class/net/$i/carrier 2>/dev/null)" = 1 ] && break; $B sleep 0.1; done
    say "carrier $i $(pci $i) $($B cat /sys/class/net/$i/carrier 2>/dev/null)"
done
for i in $(nics); do
    [ "$($B cat /sys/class/net/$i/carrier 2>/dev/null)" = 1 ] || continue
    $B timeout 10 $B udhcpc -i $i -n -q -t 1 -T 2 -s /udhcpc.script >/dev/null 2>&1 &
done
wait
say "dhcp done"
for i in $(nics); do $B ip link set $i down; done
say "down"
if $B rmmod gve; then say "gve removed"; else say "rmmod failed"; fi
load && say "gve loaded again"
for i in $(nics); do $B ip link set $i up && say "up again $i $(pci $i)"; done
say "dmesg begin"
$B dmesg
say "dmesg end"
$B poweroff -f
"#;

fn initramfs(k: &Unpacked, devices: usize, out: &Path) {
    let mut i = linux::Initramfs::with_busybox(&linux::busybox());
    let mut names = Vec::new();
    for m in &k.modules {
        let name = m.file_stem().unwrap().to_string_lossy().into_owned();
        i.file(&format!("{name}.ko"), 0o644, &std::fs::read(m).unwrap());
        names.push(name);
    }
    i.file("modules", 0o644, names.join("\n").as_bytes());
    i.file("expect", 0o644, devices.to_string().as_bytes());
    i.file("init", 0o755, INIT.as_bytes());
    i.file("udhcpc.script", 0o755, b"#!/bin/busybox sh\nexit 0\n");
    i.write(out);
}

/// What one boot showed, for each of its rows.
struct Boot {
    rows: Vec<Row>,
    console: String,
    pcaps: Vec<PathBuf>,
    models: Vec<ModelState>,
    took: Duration,
    _dir: tempfile::TempDir,
}

impl Boot {
    fn dmesg(&self) -> &str {
        self.console
            .split("BRINGUP: dmesg begin")
            .nth(1)
            .and_then(|d| d.split("BRINGUP: dmesg end").next())
            .unwrap_or_else(|| panic!("no dmesg on the console:\n{}", self.console))
    }

    /// dmesg lines about one device (gve prefixes its messages with the PCI address).
    fn device_lines(&self, r: &Row) -> Vec<&str> {
        let pci = r.pci();
        self.dmesg().lines().filter(|l| l.contains(&pci)).collect()
    }
}

/// Boots `k` with one gVNIC per row and runs INIT.
fn boot(k: &Unpacked, rows: Vec<Row>) -> Boot {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    initramfs(k, rows.len(), &initrd);
    let pcaps: Vec<PathBuf> = (0..rows.len())
        .map(|i| dir.path().join(format!("wire{i}.pcap")))
        .collect();
    let mut gvnics = rows.iter().zip(&pcaps).map(|(r, pcap)| GvnicOptions {
        pcap: Some(pcap.clone()),
        formats: Some(Formats::only(&r.offered)),
        slot: Some(r.slot),
        mac: Some(r.mac),
        extra: Some(model_config(r.profile)),
        ..Default::default()
    });
    let cfg = QemuConfig {
        memory_mib: 512,
        direct_boot: Some(DirectBoot {
            kernel: k.vmlinuz.clone(),
            initrd,
            // ipv6.disable=1: no MLD report ahead of the DISCOVER (see the module doc).
            append: "console=ttyS0 quiet panic=-1 rdinit=/init ipv6.disable=1".into(),
        }),
        gvnic: gvnics.next(),
        more_gvnics: gvnics.collect(),
        ..Default::default()
    };
    let started = Instant::now();
    let (console, mut q) = linux::run_to_poweroff(&cfg, BOOT_DEADLINE);
    if let Some(Err(e)) = q.shutdown() {
        panic!("a gVNIC model failed: {e:#}");
    }
    let mut models = vec![q.gvnic_model_state().expect("the first model served QEMU")];
    models.extend(
        q.more_gvnic_model_states()
            .into_iter()
            .map(|s| s.expect("every model served QEMU")),
    );
    Boot {
        rows,
        console,
        pcaps,
        models,
        took: started.elapsed(),
        _dir: dir,
    }
}

// ---- one assertion helper per oracle ----

/// Probe: gve loaded and said nothing failed about this device.
fn check_probe(b: &Boot, r: &Row) -> Result<(), String> {
    if !b.console.contains("BRINGUP: gve loaded again") {
        return Err("gve did not load twice".into());
    }
    let bad: Vec<&str> = b
        .device_lines(r)
        .into_iter()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("fail") || l.contains("error") || l.contains("timed out")
        })
        .collect();
    match bad.is_empty() {
        true => Ok(()),
        false => Err(format!("gve reported errors: {bad:#?}")),
    }
}

/// The offered format chosen: the device's CONFIGUREs (both probes) carried it, and dmesg
/// names it where gve prints it (it prints no line for DQO QPL).
fn check_format(b: &Boot, r: &Row, m: &ModelState) -> Result<(), String> {
    if m.configured_formats != [r.expect, r.expect] {
        return Err(format!(
            "the device was configured as {:?}, expected {} twice",
            m.configured_formats, r.expect
        ));
    }
    let printed = match r.expect {
        QueueFormat::GqiQpl => Some("GQI QPL"),
        QueueFormat::GqiRda => Some("GQI RDA"),
        QueueFormat::DqoRda => Some("DQO RDA"),
        QueueFormat::DqoQpl => None,
    };
    let lines = b.device_lines(r);
    for (name, _) in [("GQI QPL", 0), ("GQI RDA", 1), ("DQO RDA", 2)] {
        let said = lines
            .iter()
            .any(|l| l.contains(&format!("Driver is running with {name} queue format")));
        if said != (printed == Some(name)) {
            return Err(format!("dmesg about the format disagrees: {lines:#?}"));
        }
    }
    Ok(())
}

/// Link up: carrier 1 in sysfs and gve's own "link is up".
fn check_link(b: &Boot, r: &Row) -> Result<(), String> {
    let pci = r.pci();
    let carrier = b
        .console
        .lines()
        .any(|l| l.starts_with("BRINGUP: carrier ") && l.ends_with(&format!("{pci} 1")));
    let dmesg = b
        .device_lines(r)
        .iter()
        .any(|l| l.contains("Device link is up"));
    match (carrier, dmesg) {
        (true, true) => Ok(()),
        _ => Err(format!("link not up (carrier {carrier}, dmesg {dmesg})")),
    }
}

/// tshark decodes a DHCP DISCOVER (type 1) from the device's MAC with good checksums.
fn check_discover(pcap: &Path, r: &Row) -> Result<(), String> {
    let rows = tshark::tshark_dhcp_rows(pcap);
    let mac = r.mac_text();
    match rows
        .iter()
        .any(|d| d[0] == "1" && d[1] == mac && d[2] == "1" && d[3] == "1")
    {
        true => Ok(()),
        false => Err(format!("no good DISCOVER from {mac}: {rows:?}")),
    }
}

/// Released twice: by `rmmod` (remove) and at poweroff (shutdown), each a driver reset of a
/// device that held memory, and nothing held at the end.
fn check_released(b: &Boot, m: &ModelState) -> Result<(), String> {
    if !b.console.contains("BRINGUP: gve removed") {
        return Err("rmmod failed".into());
    }
    let releases: Vec<_> = m
        .resets
        .iter()
        .filter(|x| x.cause != ResetCause::Pci && !x.already_reset)
        .collect();
    let describes = m
        .admin_commands
        .iter()
        .filter(|c| c.opcode == opcode::DESCRIBE_DEVICE)
        .count();
    let ok = releases.len() == 2
        && releases.iter().all(|x| x.completed)
        && describes == 2
        && m.is_reset
        && m.resets.last().is_some_and(|x| x.cause != ResetCause::Pci);
    match ok {
        true => Ok(()),
        false => Err(format!(
            "expected two releases around two probes, got resets {:?}, {describes} DESCRIBEs, \
             reset at the end: {}",
            m.resets, m.is_reset
        )),
    }
}

/// The model's record: no violation, no refused (non-PASSED) command.
fn check_record(m: &ModelState) -> Result<(), String> {
    let refused: Vec<_> = m
        .admin_commands
        .iter()
        .filter(|c| c.status != status::PASSED)
        .collect();
    match (refused.is_empty(), m.violations.is_empty()) {
        (true, true) => Ok(()),
        _ => Err(format!(
            "refused commands {refused:x?}, violations {:#?}",
            m.violations
        )),
    }
}

/// The device raised MSI-X for the traffic: a message to the LAPIC (recorded only, the proxy
/// cannot deliver it). Linux unmasked (GQI) or armed (DQO) its blocks; in DQO that interrupt
/// is what wrote the DISCOVER's completion back.
fn check_msix(m: &ModelState) -> Result<(), String> {
    match m
        .interrupts
        .iter()
        .any(|i| !i.written_to_ram && i.address >> 20 == 0xfee)
    {
        true => Ok(()),
        false => Err(format!(
            "no MSI-X message to the LAPIC: {:x?}",
            m.interrupts
        )),
    }
}

/// Every oracle over one row; the failures, named.
fn check_row(b: &Boot, i: usize) -> Vec<String> {
    let (r, m, pcap) = (&b.rows[i], &b.models[i], &b.pcaps[i]);
    [
        ("probe", check_probe(b, r)),
        ("format", check_format(b, r, m)),
        ("link", check_link(b, r)),
        ("discover", check_discover(pcap, r)),
        ("release", check_released(b, m)),
        ("record", check_record(m)),
        ("msix", check_msix(m)),
    ]
    .into_iter()
    .filter_map(|(oracle, res)| res.err().map(|e| format!("{}: {oracle}: {e}", r.name())))
    .collect()
}

/// Runs `jobs` on `PARALLEL_BOOTS` threads.
fn in_parallel<T: Send, R: Send>(jobs: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_BOOTS {
            s.spawn(|| loop {
                let Some((i, job)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let r = f(job);
                done.lock().unwrap().push((i, r));
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn linux_gve_in_every_kernel_format_and_profile_probes_links_transmits_and_releases() {
    let started = Instant::now();
    // Fetch first, one at a time (under the cache lock), then boot.
    // LINUX_GVE_KERNEL=6.12 runs one kernel's rows only (when working on one).
    let only = std::env::var("LINUX_GVE_KERNEL").ok();
    let kernels: Vec<(&'static Kernel, Unpacked)> = KERNELS
        .iter()
        .filter(|k| only.as_deref().is_none_or(|o| o == k.name))
        .map(|k| (k, linux::kernel(k)))
        .collect();
    let jobs: Vec<(&Unpacked, Vec<Row>)> = kernels
        .iter()
        .flat_map(|(k, u)| PROFILES.iter().map(move |p| (u, rows(k, *p))))
        .collect();
    let boots = in_parallel(jobs, |(u, rows)| boot(u, rows));
    let mut failures = Vec::new();
    for b in &boots {
        eprintln!(
            "Linux {} ({}) {:?}: {} devices, {:.0?}",
            b.rows[0].kernel.name,
            kernels
                .iter()
                .find(|(k, _)| k.name == b.rows[0].kernel.name)
                .map(|(_, u)| u.version.as_str())
                .unwrap_or("?"),
            b.rows[0].profile,
            b.rows.len(),
            b.took
        );
        let mut boot_failures = Vec::new();
        for i in 0..b.rows.len() {
            boot_failures.extend(check_row(b, i));
        }
        if !boot_failures.is_empty() {
            eprintln!("dmesg:\n{}", b.dmesg());
        }
        failures.extend(boot_failures);
    }
    let rows: usize = boots.iter().map(|b| b.rows.len()).sum();
    eprintln!(
        "{rows} rows in {} boots, {:.0?}",
        boots.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
