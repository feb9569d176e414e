//! System test (issue 3): `lspci` finds every function QEMU reports through QMP
//! `query-pci` (behind a pci-bridge too) with the same ids, class and BAR addresses, and
//! `bar map` of the NVMe BAR0 reads CAP/VS correctly. SeaBIOS and OVMF, one boot each.

use std::collections::BTreeMap;
use std::time::Duration;

use evidence::Body;
use host_client::{CommandOutcome, QemuConfig, Session};
use serde_json::Value;

/// (bus, device, function) -> (vendor, device, class<<8|subclass, [(bar, address)]).
type Functions = BTreeMap<(u8, u8, u8), (u16, u16, u32, Vec<(u8, u64)>)>;

fn collect(devices: &Value, out: &mut Functions) {
    for d in devices.as_array().unwrap() {
        let key = (
            d["bus"].as_u64().unwrap() as u8,
            d["slot"].as_u64().unwrap() as u8,
            d["function"].as_u64().unwrap() as u8,
        );
        let bars = d["regions"]
            .as_array()
            .map(|r| {
                r.iter()
                    // QEMU reports an unassigned BAR's address as -1: nothing to compare.
                    .filter_map(|r| Some((r["bar"].as_u64()? as u8, r["address"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            key,
            (
                d["id"]["vendor"].as_u64().unwrap() as u16,
                d["id"]["device"].as_u64().unwrap() as u16,
                d["class_info"]["class"].as_u64().unwrap() as u32,
                bars,
            ),
        );
        if let Some(children) = d["pci_bridge"]["devices"].as_array() {
            collect(&Value::Array(children.clone()), out);
        }
    }
}

fn run(s: &mut Session, line: &str) -> CommandOutcome {
    let out = s.command(line, Duration::from_secs(60)).unwrap();
    eprintln!("bringup> {line}\n{}", out.text.trim_end());
    out
}

/// `machine` "pc" (i440fx: legacy 0xCF8 config access, like GCE) or "q35" (an ACPI MCFG
/// table: the monitor must use ECAM).
fn pci_topology(uefi: bool, machine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let extra = [
        "-device",
        "pci-bridge,id=br1,chassis_nr=1,addr=0x6",
        "-device",
        "e1000,bus=br1,addr=0x2",
        "-device",
        "e1000,bus=br1,addr=0x3,multifunction=on",
        "-device",
        "e1000,addr=0x7",
        "-drive",
        &format!("file={},if=none,format=raw,id=d1", disk.display()),
        "-device",
        "nvme,serial=pci-test,drive=d1,addr=0x4",
    ];
    let cfg = QemuConfig {
        uefi,
        qmp: true,
        machine: machine.into(),
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    let access = if machine == "q35" {
        "pci config via ECAM"
    } else {
        "pci config via legacy ports"
    };
    assert!(
        s.transcript().contains(access),
        "expected '{access}' at boot"
    );

    let out = run(&mut s, "lspci -v");
    assert!(out.is_ok(), "{:?}", out.result);
    let ours: BTreeMap<(u8, u8, u8), evidence::PciFunction> = out
        .bodies_of_kind("pci.function")
        .into_iter()
        .map(|b| match b {
            Body::PciFunction(f) => ((f.bus, f.device, f.function), f.clone()),
            _ => unreachable!(),
        })
        .collect();
    // Ask QEMU after the monitor ran: firmware has assigned everything by now.
    let qmp = s.qmp("query-pci", Value::Null).unwrap();
    let mut theirs = Functions::new();
    for bus in qmp.as_array().unwrap() {
        collect(&bus["devices"], &mut theirs);
    }
    assert!(
        theirs.keys().any(|k| k.0 == 1),
        "QEMU shows devices behind the bridge"
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same functions"
    );
    for (key, (vendor, device, class, bars)) in &theirs {
        let f = &ours[key];
        assert_eq!((f.vendor_id, f.device_id), (*vendor, *device), "{key:?}");
        assert_eq!(f.class_code >> 8, *class, "{key:?}");
        for (bar, address) in bars {
            let mine = f.bars.iter().find(|b| b.index == *bar);
            let mine = mine.unwrap_or_else(|| panic!("{key:?} BAR{bar} missing in {:?}", f.bars));
            assert_eq!(mine.address, *address, "{key:?} BAR{bar}");
        }
    }

    // The NVMe BAR0 through `bar map`, then CAP and VS through `peek`.
    let map = run(&mut s, "bar map 00:04.0 0");
    assert!(map.is_ok(), "{:?}", map.result);
    let Some(Body::BarMapping(m)) = map.bodies_of_kind("bar.map").first().cloned() else {
        panic!("no bar.map frame")
    };
    assert!(m.is_64bit && m.size >= 0x2000);
    assert_eq!(m.phys, ours[&(0, 4, 0)].bars[0].address);
    if uefi {
        // OVMF places 64-bit BARs far above the monitor's 4 GiB identity map.
        assert!(m.phys >= 1 << 32, "OVMF put the NVMe BAR0 at {:#x}", m.phys);
    }
    let again = run(&mut s, "bar map 00:04.0 0");
    let Some(Body::BarMapping(m2)) = again.bodies_of_kind("bar.map").first().cloned() else {
        panic!("no bar.map frame")
    };
    assert_eq!(m2.window, m.window);
    assert!(!m2.newly_mapped);
    let peek = run(&mut s, &format!("peek {:#x} 16", m.window));
    assert!(peek.is_ok(), "{:?}", peek.result);
    let bytes = peeked(&peek);
    let cap = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
    let vs = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    assert_eq!(cap & 0xffff, 0x7ff, "CAP.MQES of QEMU NVMe");
    assert_eq!((cap >> 24) & 0xff, 0xf, "CAP.TO of QEMU NVMe");
    assert_eq!(vs, 0x0001_0400, "VS 1.4");
    let vs_alone = run(&mut s, &format!("peek {:#x} --width 4", m.window + 8));
    assert_eq!(
        peeked(&vs_alone),
        0x0001_0400u32.to_le_bytes(),
        "VS at width 4"
    );

    // Refusals, each named.
    for (line, code) in [
        ("bar map 00:04.0 1", "bar-upper-half"),
        ("bar map 00:04.0 3", "bar-unused"),
        ("bar map 00:04.0 6", "no-such-bar"),
        ("bar map 1f:00.0 0", "no-such-function"),
        (
            if machine == "q35" {
                "bar map 00:1f.2 4"
            } else {
                "bar map 00:01.1 4"
            },
            "bar-io",
        ),
        ("bar map 0:4 0", "bad-bdf"),
        ("lspci 05:00.0", "no-such-function"),
    ] {
        let out = run(&mut s, line);
        assert_eq!(out.error_code(), Some(code), "{line}: {:?}", out.result);
    }
    let one = run(&mut s, "lspci 01:03.0");
    assert!(one.is_ok() && one.bodies_of_kind("pci.function").len() == 1);
}

#[test]
fn pci_under_seabios() {
    pci_topology(false, "pc");
}

#[test]
fn pci_under_ovmf() {
    pci_topology(true, "pc");
}

#[test]
fn pci_under_ovmf_on_q35_uses_ecam() {
    pci_topology(true, "q35");
}

/// The bytes a `peek` read, from its reg.read frame (values are what the little-endian bus
/// delivered at the access width; a window defaults to 32-bit accesses).
fn peeked(out: &CommandOutcome) -> Vec<u8> {
    let Some(Body::RegRead(r)) = out.bodies_of_kind("reg.read").first().cloned() else {
        panic!("no reg.read frame: {:?}", out.result)
    };
    r.values
        .iter()
        .flat_map(|v| v.to_le_bytes().into_iter().take(r.width as usize))
        .collect()
}
