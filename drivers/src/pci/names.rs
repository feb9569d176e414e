//! Readable names for class codes, vendors and the devices this product meets.
//!
//! Only a small table: the devices QEMU's machines and GCE's VMs show, and the ones the
//! monitor has drivers for. Everything else gets its class name, which is always known.

/// The device name for `vendor:device`, if it is one we know.
pub fn device_name(vendor: u16, device: u16) -> Option<&'static str> {
    let name = match (vendor, device) {
        (0x1b36, 0x0010) => "QEMU NVMe controller",
        (0x1ae0, 0x001f) => "Google NVMe controller (Persistent Disk)",
        (0x1ae0, 0x0042) => "Google gVNIC (Compute Engine Virtual Ethernet)",
        (0x1ae0, 0x0f48) => "Google PCIe bridge",
        (0x1b36, 0x0001) => "QEMU PCI-to-PCI bridge",
        (0x1b36, 0x000c) => "QEMU PCIe root port",
        (0x1b36, 0x000e) => "QEMU PCIe-to-PCI bridge",
        (0x8086, 0x1237) => "Intel 440FX host bridge (i440FX)",
        (0x8086, 0x7000) => "Intel PIIX3 ISA bridge",
        (0x8086, 0x7010) => "Intel PIIX3 IDE controller",
        (0x8086, 0x7020) => "Intel PIIX3 USB controller",
        (0x8086, 0x7110) => "Intel PIIX4 ISA bridge",
        (0x8086, 0x7111) => "Intel PIIX4 IDE controller",
        (0x8086, 0x7113) => "Intel PIIX4 ACPI / power management",
        (0x8086, 0x29c0) => "Intel Q35 host bridge (MCH)",
        (0x8086, 0x2918) => "Intel ICH9 LPC bridge",
        (0x8086, 0x2922) => "Intel ICH9 AHCI controller",
        (0x8086, 0x2930) => "Intel ICH9 SMBus controller",
        (0x8086, 0x100e) => "Intel 82540EM Ethernet (e1000)",
        (0x8086, 0x10d3) => "Intel 82574L Ethernet (e1000e)",
        (0x8086, 0x5845) => "QEMU NVMe controller (Intel id)",
        (0x1234, 0x1111) => "QEMU standard VGA",
        (0x1af4, 0x1000) => "virtio network (legacy)",
        (0x1af4, 0x1001) => "virtio block (legacy)",
        (0x1af4, 0x1004) => "virtio SCSI (legacy)",
        (0x1af4, 0x1005) => "virtio RNG (legacy)",
        (0x1af4, 0x1041) => "virtio network",
        (0x1af4, 0x1042) => "virtio block",
        (0x1af4, 0x1044) => "virtio RNG",
        (0x1af4, 0x1048) => "virtio SCSI",
        _ => return None,
    };
    Some(name)
}

/// The vendor name for the vendors in the table above.
pub fn vendor_name(vendor: u16) -> Option<&'static str> {
    Some(match vendor {
        0x8086 => "Intel",
        0x1af4 => "Red Hat (virtio)",
        0x1b36 => "Red Hat (QEMU)",
        0x1ae0 => "Google",
        0x1234 => "QEMU",
        _ => return None,
    })
}

/// A readable name for `class`/`subclass` (the top two bytes of the class code).
pub fn class_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x00, _) => "unclassified device",
        (0x01, 0x00) => "SCSI storage controller",
        (0x01, 0x01) => "IDE interface",
        (0x01, 0x05) => "ATA controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x07) => "SAS controller",
        (0x01, 0x08) => "non-volatile memory controller",
        (0x01, _) => "mass storage controller",
        (0x02, 0x00) => "Ethernet controller",
        (0x02, _) => "network controller",
        (0x03, 0x00) => "VGA compatible controller",
        (0x03, _) => "display controller",
        (0x04, _) => "multimedia controller",
        (0x05, _) => "memory controller",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, 0x07) => "CardBus bridge",
        (0x06, 0x80) => "bridge",
        (0x06, _) => "bridge device",
        (0x07, 0x00) => "serial controller",
        (0x07, _) => "communication controller",
        (0x08, _) => "system peripheral",
        (0x09, _) => "input device controller",
        (0x0c, 0x03) => "USB controller",
        (0x0c, 0x05) => "SMBus",
        (0x0c, _) => "serial bus controller",
        (0x0d, _) => "wireless controller",
        (0x10, _) => "encryption controller",
        (0x11, _) => "signal processing controller",
        (0x12, _) => "processing accelerator",
        (0xff, _) => "unassigned class",
        _ => "unknown class",
    }
}

/// A readable name for a capability id ("Capability IDs", PCI Code and ID Assignment).
pub fn capability_name(id: u8) -> &'static str {
    match id {
        0x01 => "power management",
        0x02 => "AGP",
        0x03 => "VPD",
        0x04 => "slot identification",
        0x05 => "MSI",
        0x06 => "CompactPCI hot swap",
        0x07 => "PCI-X",
        0x08 => "HyperTransport",
        0x09 => "vendor specific",
        0x0a => "debug port",
        0x0b => "CompactPCI resource control",
        0x0c => "PCI hot-plug",
        0x0d => "bridge subsystem vendor id",
        0x0e => "AGP 8x",
        0x0f => "secure device",
        0x10 => "PCI Express",
        0x11 => "MSI-X",
        0x12 => "SATA configuration",
        0x13 => "advanced features",
        0x14 => "enhanced allocation",
        0x15 => "flattening portal bridge",
        _ => "unknown capability",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_the_devices_we_care_about() {
        assert_eq!(device_name(0x1b36, 0x0010), Some("QEMU NVMe controller"));
        assert!(device_name(0x1ae0, 0x0042).unwrap().contains("gVNIC"));
        assert!(device_name(0x1ae0, 0x0f48).unwrap().contains("bridge"));
        assert_eq!(device_name(0xabcd, 0x0001), None);
        assert_eq!(class_name(0x01, 0x08), "non-volatile memory controller");
        assert_eq!(class_name(0x06, 0x04), "PCI bridge");
        assert_eq!(class_name(0x42, 0x00), "unknown class");
        assert_eq!(capability_name(0x11), "MSI-X");
    }
}
