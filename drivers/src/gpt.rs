//! Just enough GPT to recognise the disk the monitor booted from: the header's signature
//! and its disk GUID (UEFI 2.10 §5.3.2, GPT Header: "EFI PART" at byte 0, DiskGUID at byte
//! 56), and the text form of a GUID as sgdisk prints it and the image puts on the kernel
//! command line (`bootdisk=<GUID>`). Nothing here reads partitions.
//!
//! Byte order: a GUID's text is `AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE`; on disk the first
//! three groups are little-endian and the last two are bytes in text order (UEFI 2.10
//! Appendix A, "EFI_GUID" layout).

use alloc::string::String;

/// "EFI PART", the GPT header signature at byte 0 of LBA 1.
pub const HEADER_SIGNATURE: &[u8; 8] = b"EFI PART";
/// DiskGUID's byte offset in the GPT header.
pub const DISK_GUID_OFFSET: usize = 56;
/// The LBA of the primary GPT header, for every block size.
pub const HEADER_LBA: u64 = 1;

/// A GUID in its on-disk byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses `AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE` (either case).
    pub fn parse(text: &str) -> Option<Guid> {
        let groups: alloc::vec::Vec<&str> = text.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != 5 || groups.iter().zip(lens).any(|(g, len)| g.len() != len) {
            return None;
        }
        let hex = |s: &str| -> Option<alloc::vec::Vec<u8>> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect()
        };
        let mut out = [0u8; 16];
        let mut at = 0;
        for (i, group) in groups.iter().enumerate() {
            let mut bytes = hex(group)?;
            if i < 3 {
                bytes.reverse();
            }
            out[at..at + bytes.len()].copy_from_slice(&bytes);
            at += bytes.len();
        }
        Some(Guid(out))
    }

    /// The text form, upper case as sgdisk prints it.
    pub fn text(&self) -> String {
        let b = &self.0;
        alloc::format!(
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12],
            b[13], b[14], b[15]
        )
    }
}

impl core::fmt::Display for Guid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

/// The disk GUID of the GPT header in `lba1` (the bytes of LBA 1), or None when LBA 1 is
/// not a GPT header.
pub fn disk_guid(lba1: &[u8]) -> Option<Guid> {
    if lba1.get(..8)? != HEADER_SIGNATURE {
        return None;
    }
    let bytes = lba1.get(DISK_GUID_OFFSET..DISK_GUID_OFFSET + 16)?;
    let mut guid = [0u8; 16];
    guid.copy_from_slice(bytes);
    Some(Guid(guid))
}

/// The boot disk's GUID from the kernel command line (`bootdisk=<GUID>`, written by image/).
pub fn boot_disk_from_cmdline(cmdline: &str) -> Option<Guid> {
    cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("bootdisk="))
        .and_then(Guid::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_disk_order() {
        // The EFI System Partition type GUID: its on-disk bytes are well known.
        let esp = Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(
            esp.0,
            [
                0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
                0xc9, 0x3b
            ]
        );
        assert_eq!(esp.text(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(
            Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
            Some(esp)
        );
        for bad in [
            "",
            "C12A7328F81F11D2BA4B00A0C93EC93B",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93",
            "G12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        ] {
            assert_eq!(Guid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_and_cmdline() {
        let mut lba1 = [0u8; 512];
        assert_eq!(disk_guid(&lba1), None);
        lba1[..8].copy_from_slice(HEADER_SIGNATURE);
        lba1[56..72].copy_from_slice(&[7; 16]);
        assert_eq!(disk_guid(&lba1), Some(Guid([7; 16])));
        let g = boot_disk_from_cmdline("dma=64M bootdisk=C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(g.map(|g| g.0[0]), Some(0x28));
        assert_eq!(boot_disk_from_cmdline("dma=64M"), None);
    }
}
