//! KVM's paravirtual clock: the hypervisor writes its TSC-to-nanoseconds scale
//! (`tsc_to_system_mul`, `tsc_shift`) into a structure the guest names with
//! MSR_KVM_SYSTEM_TIME_NEW, which gives the TSC rate exactly (drivers::clock::rates).
//!
//! Where the structure lives: a static in the monitor's own image. The image is identity
//! mapped (virtual = physical) and nothing else ever owns it, unlike the heap (reused)
//! or the DMA pool (handed to devices). The clock is enabled only for the read and then
//! disabled again, so the hypervisor stops writing guest memory; even if the disable
//! failed, it would only ever write this static.
//! Layout and MSR: Linux Documentation/virt/kvm/x86/msr.rst (pvclock_vcpu_time_info).

use core::cell::UnsafeCell;

use drivers::clock::{Evidence, Reading, Rejection, Source};
use drivers::platform::Cpu;

/// MSR_KVM_SYSTEM_TIME_NEW: bit 0 enables, bits 63:1 the 4-byte aligned guest physical
/// address of the structure.
const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
const ENABLE: u64 = 1;
/// Word offsets in `pvclock_vcpu_time_info` (32 bytes): version @0, tsc_to_system_mul
/// @24, tsc_shift (i8) @28.
const VERSION_WORD: usize = 0;
const MUL_WORD: usize = 6;
const SHIFT_WORD: usize = 7;
/// Polls for the hypervisor's first update (it writes before the guest runs again after
/// the WRMSR; the bound keeps a broken hypervisor from hanging the boot).
const MAX_POLLS: u32 = 100_000;

/// 64-byte aligned, so the 32 bytes never cross a page.
#[repr(C, align(64))]
struct PvclockArea(UnsafeCell<[u32; 8]>);

// SAFETY: only `read` touches the area, once at boot on the only CPU the monitor runs.
unsafe impl Sync for PvclockArea {}

static AREA: PvclockArea = PvclockArea(UnsafeCell::new([0; 8]));

fn word(index: usize) -> u32 {
    // SAFETY: the area is a live static; volatile because the hypervisor writes it.
    unsafe { (AREA.0.get() as *const u32).add(index).read_volatile() }
}

/// The pvclock's scale, where CPUID says KVM offers it.
pub fn read(cpu: &dyn Cpu) -> Reading {
    if !drivers::clock::cpuid::has_kvmclock(cpu) {
        return Reading::rejected(Source::KvmClock, Rejection::Absent);
    }
    // SAFETY: as `word`; zeroed so a stale value from an earlier boot is never taken.
    unsafe { (*AREA.0.get()) = [0; 8] };
    // Identity mapped image: the static's address is its physical address.
    let phys = AREA.0.get() as u64;
    if cpu
        .write_msr(MSR_KVM_SYSTEM_TIME_NEW, phys | ENABLE)
        .is_err()
    {
        return Reading::rejected(Source::KvmClock, Rejection::NoAnswer);
    }
    let mut scale = None;
    for _ in 0..MAX_POLLS {
        // An odd version is an update in progress; a stable even one brackets the fields.
        let version = word(VERSION_WORD);
        if version == 0 || version & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let (mul, shift) = (word(MUL_WORD), word(SHIFT_WORD) as u8 as i8);
        if word(VERSION_WORD) == version {
            scale = Some((mul, shift));
            break;
        }
    }
    let _ = cpu.write_msr(MSR_KVM_SYSTEM_TIME_NEW, 0);
    match scale {
        Some((mul, shift)) => {
            Reading::from_evidence(Source::KvmClock, Evidence::Pvclock { mul, shift })
        }
        None => Reading::rejected(Source::KvmClock, Rejection::NoAnswer),
    }
}
