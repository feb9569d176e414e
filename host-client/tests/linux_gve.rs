//! The gVNIC model held to Google's own driver, three kernel generations: Debian's stock
//! kernels (tests/support/linux.rs: bookworm 6.1, bookworm-backports 6.12, trixie-backports
//! 7.x; unmodified `gve.ko`) boot in QEMU from a tiny busybox initramfs, with the model
//! attached as a vfio-user device on QEMU 11 (`make qemu11`; interrupts reach the guest) or
//! through QEMU 7.2's multi-process proxy (no interrupt path).
//!
//! The table is kernel x profile x transport x offered formats: every format the kernel's gve
//! supports, each offered alone, plus all four offered together (the driver must pick its
//! preference). One boot per kernel x profile x transport covers every format: each offering
//! is its own gVNIC (`QemuConfig::more_gvnics`: its own model and device, slots 5, 6, ...), so
//! one row is one device of that boot. Two boots run at a time (the machine's two cores).
//! `LINUX_GVE_KERNEL=6.12` / `LINUX_GVE_TRANSPORT=vfio-user` run a part.
//!
//! Per row, one oracle each: no admin error in dmesg for the device (probe), the model's
//! CONFIGURE carried the expected format (and dmesg names it where gve prints it), the link
//! came up (carrier and dmesg), tshark decodes a DHCP DISCOVER from the device's MAC, the
//! device was released by `rmmod` and again at poweroff (gve's shutdown hook) after a second
//! probe, the model's record holds no violation and no refused command, and the device
//! raised MSI-X. Over vfio-user also: udhcpc bound with the address and router of the
//! responder's ACK (tshark), three pings of the router answered, and the device's
//! notification-block interrupt counts rising.
//!
//! Over the proxy Linux cannot receive (NAPI never runs): no lease is asked of it. For the
//! same reason only the first frame of each TX queue leaves (byte queue limits wait for
//! completions that NAPI would process), so IPv6 is off and the DISCOVER is the first frame.

#[path = "support/linux.rs"]
mod linux;
#[path = "support/tshark.rs"]
mod tshark;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gvnic_model::adminq::opcode;
use gvnic_model::{Formats, ModelConfig, Profile, QueueFormat, ResetCause};
use host_client::gvnic::ModelState;
use host_client::qemu::qemu11_binary;
use host_client::{DirectBoot, GvnicOptions, GvnicTransport, QemuConfig};
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

/// How the models are attached, and in which profiles. vfio-user (QEMU 11: interrupts arrive)
/// runs every check, lease, pings and rising interrupt counts included, in every profile; the
/// proxy (QEMU 7.2: transmit only) keeps what vfio-user cannot cover, its own front end under
/// stock drivers, in the default profile.
const TRANSPORTS: &[(GvnicTransport, &[Profile])] = &[
    (GvnicTransport::VfioUser, PROFILES),
    (GvnicTransport::Proxy, &[Profile::Y2026]),
];

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
    transport: GvnicTransport,
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
            "Linux {} {:?} {} offered {}",
            self.kernel.name,
            self.profile,
            self.transport.name(),
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
fn rows(kernel: &'static Kernel, profile: Profile, transport: GvnicTransport) -> Vec<Row> {
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
                transport,
                offered,
                expect,
                slot: FIRST_SLOT + i as u8,
                mac: [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02 + i as u8],
            }
        })
        .collect()
}

/// The init script. Phase 1: load the modules (probe), bring every gVNIC up (open), then
/// per transport (/mode): `proxy`, one DHCP DISCOVER each and each link closed as soon as its
/// DISCOVER is in flight; `lease` (vfio-user: interrupts arrive), a full lease and three pings
/// of the router on every link at once, between two /proc/interrupts snapshots. Then down
/// (close) and `rmmod` (remove: the release). Phase 2: load again, bring up, print dmesg and
/// power off with the devices open (gve's shutdown hook releases them).
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
N=$($B cat /expect)
MODE=$($B cat /mode)
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
up() { [ "$($B cat /sys/class/net/$1/carrier 2>/dev/null)" = 1 ]; }
inflight() { $B cat /sys/class/net/$1/queues/tx-*/byte_queue_limits/inflight 2>/dev/null | $B grep -qv '^0$'; }
lease() {
    if $B udhcpc -i $1 -n -q -t 5 -T 3 -s /udhcpc.script >/dev/null 2>&1; then
        R=$($B cat /tmp/router.$1)
        if $B ping -c 3 -W 3 -I $1 "$R" >/dev/null 2>&1; then say "ping ok $(pci $1)"; else say "ping failed $(pci $1)"; fi
    else
        say "no lease $(pci $1)"
    fi
}
load && say "gve loaded"
for i in $(nics); do $B ip link set $i up && say "up $i $(pci $i)"; done
for i in $(nics); do
    for t in $($B seq 1 100); do up $i && break; $B sleep 0.1; done
    say "carrier $i $(pci $i) $($B cat /sys/class/net/$i/carrier 2>/dev/null)"
done
if [ "$MODE" = lease ]; then
    for i in $(nics); do say "msi $(pci $i) $($B ls /sys/class/net/$i/device/msi_irqs | $B tr '\n' ' ')"; done
    say "irq before"; $B cat /proc/interrupts; say "irq end"
    for i in $(nics); do up $i && lease $i & done
    wait
    say "irq after"; $B cat /proc/interrupts; say "irq end"
else
    for i in $(nics); do
        up $i || continue
        $B udhcpc -i $i -n -q -t 1 -T 5 -s /udhcpc.script >/dev/null 2>&1 &
        pids="$pids $!"
    done
    # Close each link as soon as its DISCOVER is in flight: no TX completion is ever
    # processed (no interrupts), and gve's 5 s TX watchdog would reset the device on a slow
    # machine.
    for t in $($B seq 1 50); do
        left=0
        for i in $(nics); do
            if inflight $i; then $B ip link set $i down 2>/dev/null; else left=1; fi
        done
        [ $left = 0 ] && break
        $B sleep 0.1
    done
    $B kill $pids 2>/dev/null
    wait
fi
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

/// udhcpc's hook: on bound, the address (GCE's /32) and a route to the router on this link
/// (metric = ifindex: every link has the same router), then one line with the lease on the
/// console (udhcpc's own output is discarded).
const UDHCPC_SCRIPT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
case "$1" in
bound|renew)
    $B ip addr add "$ip/${mask:-32}" dev "$interface"
    $B ip route add "$router" dev "$interface" metric "$($B cat /sys/class/net/$interface/ifindex)"
    echo "$router" > /tmp/router.$interface
    echo "BRINGUP: lease $($B basename "$($B readlink /sys/class/net/$interface/device)") ip=$ip router=$router" > /dev/console
    ;;
esac
exit 0
"#;

fn initramfs(k: &Unpacked, devices: usize, transport: GvnicTransport, out: &Path) {
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
    let mode = match transport {
        GvnicTransport::Proxy => "proxy",
        GvnicTransport::VfioUser => "lease",
    };
    i.file("mode", 0o644, mode.as_bytes());
    i.file("udhcpc.script", 0o755, UDHCPC_SCRIPT.as_bytes());
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

fn qemu11() -> String {
    qemu11_binary()
        .expect("QEMU 11 is missing: run `make qemu11` (`make test` does)")
        .display()
        .to_string()
}

/// Boots `k` with one gVNIC per row and runs INIT.
fn boot(k: &Unpacked, rows: Vec<Row>) -> Boot {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    let transport = rows[0].transport;
    initramfs(k, rows.len(), transport, &initrd);
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
        qemu_binary: match transport {
            GvnicTransport::Proxy => QemuConfig::default().qemu_binary,
            GvnicTransport::VfioUser => qemu11(),
        },
        gvnic_transport: Some(transport),
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
            // AQ command failed, Failed to ..., probe ... failed with error, AQ commands
            // timed out; over vfio-user also the TX watchdog (completions arrive there; the
            // proxy processes none, and its links close before the watchdog looks).
            let l = l.to_ascii_lowercase();
            l.contains("fail")
                || l.contains("error")
                || l.contains("aq commands timed out")
                || (r.transport == GvnicTransport::VfioUser && l.contains("timed out"))
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

/// The model's record (its own summary, as `--record` writes it): no violation, no refused
/// or unimplemented command. `Tolerated` entries (what GCE accepts, e.g. 6.1's page_size 0
/// in REGISTER_PAGE_LIST, a field older drivers leave zero) are counted there, not failed.
fn check_record(m: &ModelState) -> Result<(), String> {
    let s = &m.record.summary;
    match s.clean() {
        true => Ok(()),
        false => Err(s.words()),
    }
}

/// The device raised MSI-X for the traffic. Proxy: a message to the LAPIC, recorded only
/// (the proxy cannot deliver it); Linux unmasked (GQI) or armed (DQO) its blocks, and in DQO
/// that interrupt is what wrote the DISCOVER's completion back. vfio-user: vectors raised
/// through QEMU's eventfds (QEMU owns the table, so the record's address is 0).
fn check_msix(r: &Row, m: &ModelState) -> Result<(), String> {
    let raised = match r.transport {
        GvnicTransport::Proxy => m
            .interrupts
            .iter()
            .any(|i| !i.written_to_ram && i.address >> 20 == 0xfee),
        GvnicTransport::VfioUser => m.interrupts.iter().any(|i| i.address == 0),
    };
    match raised {
        true => Ok(()),
        false => Err(format!("no MSI-X message: {:x?}", m.interrupts)),
    }
}

/// vfio-user: udhcpc bound with the address and router of the responder's ACK, as tshark
/// decodes it from this device's wire (the independent oracle).
fn check_lease(b: &Boot, r: &Row, pcap: &Path) -> Result<(), String> {
    let acks = tshark::tshark_fields(
        pcap,
        "dhcp.option.dhcp == 5",
        &["dhcp.ip.your", "dhcp.option.router"],
    );
    let Some(ack) = acks.first() else {
        return Err("no DHCP ACK on the wire".into());
    };
    let want = format!("BRINGUP: lease {} ip={} router={}", r.pci(), ack[0], ack[1]);
    match b.console.lines().any(|l| l.trim_end() == want) {
        true => Ok(()),
        false => Err(format!("console lacks {want:?}")),
    }
}

/// vfio-user: busybox ping got its replies, and the wire holds at least three echo replies
/// from the router.
fn check_ping(b: &Boot, r: &Row, pcap: &Path) -> Result<(), String> {
    let said = b
        .console
        .lines()
        .any(|l| l.trim_end() == format!("BRINGUP: ping ok {}", r.pci()));
    let replies = tshark::tshark_fields(pcap, "icmp.type == 0 && icmp.resp_to", &["ip.src"]);
    match (said, replies.len() >= 3) {
        (true, true) => Ok(()),
        _ => Err(format!(
            "ping ok on the console: {said}, echo replies on the wire: {}",
            replies.len()
        )),
    }
}

/// The gve notification-block interrupt counts of this device (all CPUs) in one
/// /proc/interrupts snapshot: the lines of the device's MSI IRQs (its sysfs msi_irqs, printed
/// as "msi PCI N..."; 6.1 names its vectors "eth%d-ntfy-block.N", without the device) that
/// are notification blocks.
fn block_irqs(b: &Boot, r: &Row, which: &str) -> Option<u64> {
    let mine: Vec<String> = b
        .console
        .lines()
        .find_map(|l| {
            l.trim_end()
                .strip_prefix(&format!("BRINGUP: msi {} ", r.pci()))
        })?
        .split_whitespace()
        .map(|n| format!("{n}:"))
        .collect();
    let snap = b
        .console
        .split(&format!("BRINGUP: irq {which}"))
        .nth(1)?
        .split("BRINGUP: irq end")
        .next()?;
    Some(
        snap.lines()
            .filter(|l| l.contains("ntfy"))
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|irq| mine.iter().any(|m| m == irq))
            })
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map_while(|w| w.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum(),
    )
}

/// vfio-user: this device's notification-block interrupts rose across the lease and pings.
fn check_irqs(b: &Boot, r: &Row) -> Result<(), String> {
    match (block_irqs(b, r, "before"), block_irqs(b, r, "after")) {
        (Some(x), Some(y)) if y > x => Ok(()),
        (x, y) => Err(format!("notification-block interrupts {x:?} -> {y:?}")),
    }
}

/// Every oracle over one row; the failures, named.
fn check_row(b: &Boot, i: usize) -> Vec<String> {
    let (r, m, pcap) = (&b.rows[i], &b.models[i], &b.pcaps[i]);
    let mut results = vec![
        ("probe", check_probe(b, r)),
        ("format", check_format(b, r, m)),
        ("link", check_link(b, r)),
        ("discover", check_discover(pcap, r)),
        ("release", check_released(b, m)),
        ("record", check_record(m)),
        ("msix", check_msix(r, m)),
    ];
    if r.transport == GvnicTransport::VfioUser {
        results.push(("lease", check_lease(b, r, pcap)));
        results.push(("ping", check_ping(b, r, pcap)));
        results.push(("irqs", check_irqs(b, r)));
    }
    results
        .into_iter()
        .filter_map(|(oracle, res)| res.err().map(|e| format!("{}: {oracle}: {e}", r.name())))
        .collect()
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
    // LINUX_GVE_TRANSPORT=proxy|vfio-user likewise.
    let only_transport = std::env::var("LINUX_GVE_TRANSPORT").ok();
    let mut jobs: Vec<(&Unpacked, Vec<Row>)> = Vec::new();
    for (t, profiles) in TRANSPORTS {
        if only_transport.as_deref().is_some_and(|o| o != t.name()) {
            continue;
        }
        for (k, u) in &kernels {
            for p in *profiles {
                jobs.push((u, rows(k, *p, *t)));
            }
        }
    }
    let boots = linux::in_parallel(PARALLEL_BOOTS, jobs, |(u, rows)| boot(u, rows));
    let mut failures = Vec::new();
    for b in &boots {
        eprintln!(
            "Linux {} ({}) {:?} {}: {} devices, {:.0?}",
            b.rows[0].kernel.name,
            kernels
                .iter()
                .find(|(k, _)| k.name == b.rows[0].kernel.name)
                .map(|(_, u)| u.version.as_str())
                .unwrap_or("?"),
            b.rows[0].profile,
            b.rows[0].transport.name(),
            b.rows.len(),
            b.took
        );
        let mut boot_failures = Vec::new();
        for i in 0..b.rows.len() {
            boot_failures.extend(check_row(b, i));
        }
        if !boot_failures.is_empty() {
            eprintln!("console:\n{}", b.console);
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
