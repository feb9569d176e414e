//! The arithmetic of each TSC source: raw values in, a TSC rate in Hz out. Pure, so the
//! host tests feed values captured from QEMU/KVM and from the specifications.

/// The ACPI PM timer's input clock (fact: ACPI 6.5 §4.8.3.3, "3.579545 MHz").
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// The 8254 PIT's input clock (fact: the PC architecture's 1.193182 MHz).
pub const PIT_HZ: u64 = 1_193_182;
/// An HPET's COUNTER_CLK_PERIOD may not exceed 100 ns (fact: IA-PC HPET spec 1.0a
/// §2.3.4, "less than or equal to 0x05F5E100").
pub const HPET_MAX_PERIOD_FS: u32 = 100_000_000;
const FS_PER_S: u128 = 1_000_000_000_000_000;
const NS_PER_S: u128 = 1_000_000_000;

/// Ticks a counter of `mask + 1` values advanced from `last` to `now`, across at most
/// one wrap (the caller polls far faster than any counter here wraps).
pub fn wrapping_ticks(last: u64, now: u64, mask: u64) -> u64 {
    now.wrapping_sub(last) & mask
}

/// The TSC rate from a counted window: `tsc_ticks` TSC ticks while a counter of
/// `counter_hz` advanced `ticks`. None when the counter did not move.
pub fn counted_hz(tsc_ticks: u64, ticks: u64, counter_hz: u64) -> Option<u64> {
    if ticks == 0 {
        return None;
    }
    u64::try_from(tsc_ticks as u128 * counter_hz as u128 / ticks as u128).ok()
}

/// The HPET main counter's rate from COUNTER_CLK_PERIOD (femtoseconds per tick, the high
/// 32 bits of the General Capabilities register). None for 0 or a period over the spec's
/// maximum (an absent HPET reads all ones).
pub fn hpet_hz(period_fs: u32) -> Option<u64> {
    if period_fs == 0 || period_fs > HPET_MAX_PERIOD_FS {
        return None;
    }
    Some((FS_PER_S / period_fs as u128) as u64)
}

/// The TSC rate of CPUID leaf 0x15: TSC = crystal (ECX, Hz) * EBX / EAX (fact: Intel SDM
/// vol. 2A, CPUID leaf 15H). None when any of the three is 0 ("not enumerated").
pub fn cpuid15_hz(denominator: u32, numerator: u32, crystal_hz: u32) -> Option<u64> {
    if denominator == 0 || numerator == 0 || crystal_hz == 0 {
        return None;
    }
    Some(crystal_hz as u64 * numerator as u64 / denominator as u64)
}

/// CPUID leaf 0x16 EAX[15:0]: the processor base frequency in MHz (Intel SDM vol. 2A,
/// CPUID leaf 16H). A nominal value in whole MHz, not a measurement of the TSC.
pub fn cpuid16_hz(eax: u32) -> Option<u64> {
    let mhz = eax & 0xffff;
    (mhz != 0).then_some(mhz as u64 * 1_000_000)
}

/// The hypervisor timing leaf 0x4000_0010 EAX: the (virtual) TSC rate in kHz (the
/// VMware-defined leaf that KVM/QEMU fill with `vmware-cpuid-freq`).
pub fn hypervisor_leaf_hz(tsc_khz: u32) -> Option<u64> {
    (tsc_khz != 0).then_some(tsc_khz as u64 * 1_000)
}

/// The TSC rate of a pvclock (KVM's `pvclock_vcpu_time_info`): the guest turns TSC
/// ticks into nanoseconds as `ns = ((delta << shift) * mul) >> 32` (a negative shift
/// shifts right), so one second is `1e9 * 2^32 / mul` ticks shifted the other way.
/// None for `mul == 0` (the structure was never written).
pub fn pvclock_hz(mul: u32, shift: i8) -> Option<u64> {
    if mul == 0 || !(-32..=32).contains(&shift) {
        return None;
    }
    let base = (NS_PER_S << 32) / mul as u128;
    let hz = if shift >= 0 {
        base >> shift
    } else {
        base << (-shift) as u32
    };
    u64::try_from(hz).ok()
}

/// Signed difference of `hz` from `reference` in parts per million.
pub fn deviation_ppm(hz: u64, reference: u64) -> i64 {
    if reference == 0 {
        return i64::MAX;
    }
    let diff = hz as i128 - reference as i128;
    (diff * 1_000_000 / reference as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_wrap_at_their_width() {
        // The 24-bit PM timer from 0xfffff0 to 0x10 advanced 0x20 ticks.
        assert_eq!(wrapping_ticks(0xff_fff0, 0x10, 0xff_ffff), 0x20);
        assert_eq!(wrapping_ticks(0xffff_fff0, 0x10, 0xffff_ffff), 0x20);
        assert_eq!(wrapping_ticks(5, 5, 0xffff), 0);
    }

    #[test]
    fn a_counted_window_gives_the_tsc_rate() {
        // 10 ms of the PM timer (35795.45 ticks) while a 2.5 GHz TSC ran 25 000 000 ticks.
        let hz = counted_hz(25_000_000, 35_795, PM_TIMER_HZ).unwrap();
        assert!((hz as i64 - 2_500_000_000).abs() < 50_000, "{hz}");
        assert_eq!(
            counted_hz(1, 0, PM_TIMER_HZ),
            None,
            "a counter that never moved"
        );
    }

    #[test]
    fn hpet_period_is_femtoseconds_per_tick() {
        // QEMU's HPET: period 10 000 000 fs = 100 MHz (hw/timer/hpet.c HPET_CLK_PERIOD).
        assert_eq!(hpet_hz(10_000_000), Some(100_000_000));
        // The classic 14.31818 MHz ICH HPET: 69 841 279 fs.
        assert_eq!(hpet_hz(69_841_279), Some(14_318_179));
        assert_eq!(hpet_hz(0), None);
        assert_eq!(
            hpet_hz(0xffff_ffff),
            None,
            "all ones: no HPET behind the address"
        );
    }

    #[test]
    fn cpuid_15_needs_all_three_values() {
        // An Ice Lake server style leaf: 25 MHz crystal, ratio 208/2 = 2.6 GHz.
        assert_eq!(cpuid15_hz(2, 208, 25_000_000), Some(2_600_000_000));
        assert_eq!(cpuid15_hz(2, 208, 0), None, "crystal not enumerated");
        assert_eq!(cpuid15_hz(0, 0, 0), None);
        assert_eq!(cpuid16_hz(0x0000_0a28), Some(2_600_000_000));
        assert_eq!(cpuid16_hz(0), None);
        assert_eq!(hypervisor_leaf_hz(2_199_998), Some(2_199_998_000));
    }

    #[test]
    fn pvclock_scale_inverts_to_the_tsc_rate() {
        // A 2 GHz TSC: 0.5 ns per tick = mul 2^31 with shift 0.
        assert_eq!(pvclock_hz(1 << 31, 0), Some(2_000_000_000));
        // A 1 GHz TSC is expressed as mul 2^31, shift 1 (KVM keeps mul in [2^31, 2^32)).
        assert_eq!(pvclock_hz(1 << 31, 1), Some(1_000_000_000));
        // A 3 GHz TSC: 1/3 ns per tick = (2/3) * 2^32 >> 1.
        let hz = pvclock_hz(2_863_311_530, -1).unwrap();
        assert!((hz as i64 - 3_000_000_000).abs() < 2, "{hz}");
        assert_eq!(pvclock_hz(0, 0), None);
    }

    #[test]
    fn deviation_is_signed_ppm() {
        assert_eq!(deviation_ppm(1_001_000, 1_000_000), 1_000);
        assert_eq!(deviation_ppm(999_000, 1_000_000), -1_000);
    }
}
