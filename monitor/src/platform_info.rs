//! Small CPU facts: the per-boot random id.

use core::arch::asm;
use core::arch::x86_64::__cpuid;

use crate::clock::TscClock;

/// CPUID.01H:ECX bit 30.
const CPUID_RDRAND: u32 = 1 << 30;
/// Intel's guidance: retry RDRAND a few times before giving up on it.
const RDRAND_RETRIES: u32 = 10;

fn rdrand() -> Option<u64> {
    let leaf1 = __cpuid(1);
    if leaf1.ecx & CPUID_RDRAND == 0 {
        return None;
    }
    for _ in 0..RDRAND_RETRIES {
        let value: u64;
        let ok: u8;
        // SAFETY: CPUID said RDRAND exists; it only writes the named registers and flags.
        unsafe {
            asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok,
                 options(nomem, nostack));
        }
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

/// SplitMix64 finalizer: spreads the TSC's few changing bits over all 64.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Random per boot: RDRAND when the CPU has it, else derived from the TSC.
pub fn boot_id() -> u64 {
    rdrand().unwrap_or_else(|| mix(TscClock::raw_tsc()))
}
