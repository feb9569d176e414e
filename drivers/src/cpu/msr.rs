//! Model-specific registers the monitor names (Intel SDM vol. 4; AMD APM vol. 2).

/// IA32_APIC_BASE: the local APIC's physical base and mode bits (facts: SDM 10.4.4).
pub const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_APIC_BASE bit 8: this CPU is the bootstrap processor.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE bit 10: x2APIC mode (registers are MSRs 0x800.., not MMIO).
pub const APIC_BASE_X2APIC: u64 = 1 << 10;
/// IA32_APIC_BASE bit 11: the APIC is globally enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// Bits 12..51 of IA32_APIC_BASE: the xAPIC MMIO page.
pub const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The fields of IA32_APIC_BASE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApicBase {
    pub address: u64,
    pub bsp: bool,
    pub x2apic: bool,
    pub enabled: bool,
}

impl ApicBase {
    pub fn from_raw(raw: u64) -> ApicBase {
        ApicBase {
            address: raw & APIC_BASE_ADDR_MASK,
            bsp: raw & APIC_BASE_BSP != 0,
            x2apic: raw & APIC_BASE_X2APIC != 0,
            enabled: raw & APIC_BASE_ENABLE != 0,
        }
    }
}

/// A few words on the MSRs a bring-up engineer reads first (for `msr read`'s human line).
pub fn name(index: u32) -> Option<&'static str> {
    Some(match index {
        0x10 => "IA32_TIME_STAMP_COUNTER",
        IA32_APIC_BASE => "IA32_APIC_BASE",
        0x3a => "IA32_FEATURE_CONTROL",
        0x1a0 => "IA32_MISC_ENABLE",
        0x277 => "IA32_PAT",
        0xc000_0080 => "IA32_EFER",
        0xc000_0100 => "IA32_FS_BASE",
        0xc000_0101 => "IA32_GS_BASE",
        0xc001_0131 => "SEV_STATUS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apic_base_fields() {
        let base = ApicBase::from_raw(0xfee0_0900);
        assert_eq!(base.address, 0xfee0_0000);
        assert!(base.bsp && base.enabled && !base.x2apic);
    }
}
