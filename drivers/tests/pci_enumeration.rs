//! PCI decoding, sizing and enumeration over a fake config space shaped like a QEMU
//! machine with a pci-bridge: what `lspci` relies on.

mod pci_fake;

use drivers::dma::testing::leaked_pool;
use drivers::pci::{self, BarKind, BarSlot, CapDetail, PciError};
use drivers::platform::{Bdf, Clock, Hw, NoMemory};
use pci_fake::{FakeConfig, FakeFunction, FakeMapper};

const NVME: Bdf = Bdf::new(0, 4, 0);
const BRIDGE: Bdf = Bdf::new(0, 5, 0);
const BEHIND: Bdf = Bdf::new(1, 2, 0);

/// i440FX host bridge, PIIX3 (multi-function: ISA 00:01.0, IDE 00:01.1 with I/O BARs,
/// ACPI 00:01.3), NVMe with a 64-bit BAR and MSI-X, a pci-bridge to bus 1 with an e1000
/// behind it, and a bridge on bus 1 that wrongly points back at bus 0.
fn qemu_like() -> FakeConfig {
    let config = FakeConfig::default();
    config.add(
        Bdf::new(0, 0, 0),
        FakeFunction::new(0x8086, 0x1237, 0x060000, 2, 0),
    );
    config.add(
        Bdf::new(0, 1, 0),
        FakeFunction::new(0x8086, 0x7000, 0x060100, 0, 0x80),
    );
    config.add(
        Bdf::new(0, 1, 1),
        FakeFunction::new(0x8086, 0x7010, 0x010180, 0, 0)
            .io_bar(4, 0xc040, 16)
            .command(0x1),
    );
    config.add(
        Bdf::new(0, 1, 3),
        FakeFunction::new(0x8086, 0x7113, 0x068000, 3, 0),
    );
    config.add(
        NVME,
        FakeFunction::new(0x1b36, 0x0010, 0x010802, 2, 0)
            .mem64_bar(0, 0xe0_0000_0000, 0x4000, false)
            .subsystem(0x1af4, 0x1100)
            .command(0x0006)
            .caps(&[
                (
                    0x11,
                    0x40,
                    &[0x40, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00],
                ),
                (0x01, 0x80, &[0x03, 0x00]),
                (0x10, 0x60, &[0x02, 0x00]),
            ]),
    );
    config.add(
        BRIDGE,
        FakeFunction::new(0x1b36, 0x0001, 0x060400, 0, 0x01)
            .mem32_bar(0, 0xfebf_0000, 0x100, false)
            .bridge_buses(0, 1, 1)
            .caps(&[(0x05, 0x50, &[0x86, 0x00])]),
    );
    config.add(
        BEHIND,
        FakeFunction::new(0x8086, 0x100e, 0x020000, 3, 0)
            .mem32_bar(0, 0xfe80_0000, 0x20000, false)
            .io_bar(1, 0xd000, 64)
            .mem32_bar(2, 0xc000_0000, 0x1000_0000, true)
            .command(0x3),
    );
    // A bridge whose secondary bus is 0: must not send the walk in a circle.
    config.add(
        Bdf::new(1, 3, 0),
        FakeFunction::new(0x1b36, 0x0001, 0x060400, 0, 0x01).bridge_buses(1, 0, 0),
    );
    config
}

#[test]
fn enumerates_every_function_behind_bridges_once() {
    let config = qemu_like();
    let found: Vec<Bdf> = pci::enumerate(&config).iter().map(|f| f.bdf).collect();
    assert_eq!(
        found,
        [
            Bdf::new(0, 0, 0),
            Bdf::new(0, 1, 0),
            Bdf::new(0, 1, 1),
            Bdf::new(0, 1, 3),
            NVME,
            BRIDGE,
            BEHIND,
            Bdf::new(1, 3, 0),
        ]
    );
}

#[test]
fn a_function_1_without_the_multi_function_bit_is_not_scanned() {
    let config = qemu_like();
    // A function at 00:04.1 exists in config space but 00:04.0 does not say multi-function:
    // real hardware may alias function 0 there, so it must not be listed.
    config.add(
        Bdf::new(0, 4, 1),
        FakeFunction::new(0x1b36, 0x0010, 0x010802, 2, 0),
    );
    let found = pci::enumerate(&config);
    assert!(found.iter().all(|f| f.bdf != Bdf::new(0, 4, 1)));
}

#[test]
fn decodes_ids_class_and_64bit_bar_above_4g() {
    let config = qemu_like();
    let nvme = pci::probe(&config, NVME).unwrap();
    assert_eq!((nvme.vendor_id, nvme.device_id), (0x1b36, 0x0010));
    assert_eq!(nvme.class_code, 0x010802);
    assert_eq!(nvme.revision, 2);
    assert_eq!((nvme.subsystem_vendor, nvme.subsystem_id), (0x1af4, 0x1100));
    match nvme.bars[0] {
        BarSlot::Bar(bar) => {
            assert_eq!(bar.kind, BarKind::Memory64);
            assert_eq!(bar.address, 0xe0_0000_0000);
            assert_eq!(bar.size, 0x4000);
            assert!(!bar.prefetchable);
        }
        other => panic!("BAR0 decoded as {other:?}"),
    }
    assert_eq!(nvme.bars[1], BarSlot::Upper64);
    assert!(nvme.bars[2..].iter().all(|b| *b == BarSlot::Unused));
}

#[test]
fn decodes_io_32bit_and_prefetchable_bars() {
    let config = qemu_like();
    let nic = pci::probe(&config, BEHIND).unwrap();
    let bars: Vec<_> = pci::bars_of(&nic.bars).copied().collect();
    assert_eq!(bars.len(), 3);
    assert_eq!(
        (bars[0].kind, bars[0].address, bars[0].size),
        (BarKind::Memory32, 0xfe80_0000, 0x20000)
    );
    assert_eq!(
        (bars[1].kind, bars[1].address, bars[1].size),
        (BarKind::Io, 0xd000, 64)
    );
    assert!(bars[2].prefetchable);
    assert_eq!(bars[2].size, 0x1000_0000);
    let ide = pci::probe(&config, Bdf::new(0, 1, 1)).unwrap();
    let io: Vec<_> = pci::bars_of(&ide.bars).collect();
    assert_eq!(
        (io[0].index, io[0].kind, io[0].address, io[0].size),
        (4, BarKind::Io, 0xc040, 16)
    );
}

#[test]
fn sizing_never_leaves_decode_on_and_restores_everything() {
    let config = qemu_like();
    let before: Vec<_> = [NVME, BEHIND, Bdf::new(0, 1, 1), BRIDGE]
        .iter()
        .map(|bdf| config.snapshot(*bdf))
        .collect();
    let _ = pci::enumerate(&config);
    assert!(config.sized_while_decoding.borrow().is_empty());
    let after: Vec<_> = [NVME, BEHIND, Bdf::new(0, 1, 1), BRIDGE]
        .iter()
        .map(|bdf| config.snapshot(*bdf))
        .collect();
    assert_eq!(
        before, after,
        "config space must be exactly as before sizing"
    );
    // And sizing really happened (a BAR was written with all ones).
    assert!(config
        .writes
        .borrow()
        .iter()
        .any(|w| w.0 == NVME && w.1 == 0x14 && w.2 == u32::MAX));
}

#[test]
fn capability_list_with_msix_details() {
    let config = qemu_like();
    let nvme = pci::probe(&config, NVME).unwrap();
    let ids: Vec<u8> = nvme.capabilities.iter().map(|c| c.id).collect();
    assert_eq!(ids, [0x11, 0x01, 0x10]);
    assert_eq!(
        nvme.capabilities[0].detail,
        CapDetail::MsiX {
            enabled: false,
            table_size: 65,
            table_bar: 0,
            table_offset: 0x2000,
            pba_bar: 0,
            pba_offset: 0x3000,
        }
    );
    let bridge = pci::probe(&config, BRIDGE).unwrap();
    assert_eq!(
        bridge.capabilities[0].detail,
        CapDetail::Msi {
            enabled: false,
            is_64bit: true,
            max_vectors: 8
        }
    );
    assert_eq!(bridge.bridge.unwrap().secondary, 1);
}

#[test]
fn a_looping_capability_list_ends() {
    let config = FakeConfig::default();
    let bdf = Bdf::new(0, 3, 0);
    // 0x40 -> 0x50 -> 0x40 ...
    let mut f = FakeFunction::new(0x1234, 0x5678, 0x020000, 0, 0)
        .caps(&[(0x05, 0x40, &[]), (0x09, 0x50, &[])]);
    f.bytes[0x51] = 0x40;
    config.add(bdf, f);
    let info = pci::probe(&config, bdf).unwrap();
    assert_eq!(info.capabilities.len(), 2);
}

struct NoClock;
impl Clock for NoClock {
    fn now_us(&self) -> u64 {
        0
    }
}

#[test]
fn map_bar_enables_decode_maps_once_and_names_every_refusal() {
    let config = qemu_like();
    config
        .functions
        .borrow_mut()
        .get_mut(&NVME)
        .unwrap()
        .set16(0x04, 0);
    let mut mapper = FakeMapper::default();
    let (mut pool, _) = leaked_pool(0x10_0000, 4 * 4096);
    let mut hw = Hw {
        config: &config,
        mmio: &mut mapper,
        clock: &NoClock,
        dma: &mut pool,
        memory: &NoMemory,
        cpu: &drivers::platform::NullCpu,
        ports: &drivers::platform::NullPorts,
        firmware: &drivers::platform::NoFirmware,
        irq: &drivers::platform::NoInterrupts,
    };
    let (first, bar) = pci::map_bar(&mut hw, NVME, 0, true).unwrap();
    assert_eq!(
        (bar.address, bar.size, bar.kind),
        (0xe0_0000_0000, 0x4000, BarKind::Memory64)
    );
    assert!(first.newly_mapped);
    assert_eq!(
        hw.config.read16(NVME, 0x04) & 0x6,
        0x6,
        "memory decode + bus master on"
    );
    let (second, _) = pci::map_bar(&mut hw, NVME, 0, false).unwrap();
    assert_eq!(second.window, first.window);
    assert!(!second.newly_mapped);

    let err = |bdf, bar| {
        pci::map_bar(
            &mut Hw {
                config: &config,
                mmio: &mut FakeMapper::default(),
                clock: &NoClock,
                dma: &mut leaked_pool(0, 4096).0,
                memory: &NoMemory,
                cpu: &drivers::platform::NullCpu,
                ports: &drivers::platform::NullPorts,
                firmware: &drivers::platform::NoFirmware,
                irq: &drivers::platform::NoInterrupts,
            },
            bdf,
            bar,
            false,
        )
        .err()
        .unwrap()
    };
    assert!(matches!(err(NVME, 1), PciError::UpperHalf { bar: 1, .. }));
    assert!(matches!(err(NVME, 2), PciError::UnusedBar { .. }));
    assert!(matches!(err(NVME, 6), PciError::NoSuchBar { count: 6, .. }));
    assert!(matches!(
        err(BRIDGE, 2),
        PciError::NoSuchBar { count: 2, .. }
    ));
    assert!(matches!(err(BEHIND, 1), PciError::IoBar { .. }));
    assert!(matches!(
        err(Bdf::new(7, 0, 0), 0),
        PciError::NoSuchFunction(_)
    ));
    let unassigned = Bdf::new(0, 9, 0);
    config.add(
        unassigned,
        FakeFunction::new(0x1b36, 0x0010, 0x010802, 2, 0).mem64_bar(0, 0, 0x4000, false),
    );
    assert!(matches!(err(unassigned, 0), PciError::Unassigned { .. }));
    assert!(err(unassigned, 0).to_string().contains("unassigned"));
}
