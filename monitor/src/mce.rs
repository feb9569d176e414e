//! Machine checks (#MC, vector 18): report the MCG and bank status, clear MCIP, abort the
//! command (or, at the prompt, carry on if the CPU says the interrupted code can restart).
//!
//! Facts (Intel SDM vol. 3 ch. 16, AMD APM vol. 2 ch. 9): CPUID.1:EDX bit 7 (MCE) means
//! #MC exists and CR4.MCE (bit 6) enables it; without CR4.MCE a machine check shuts the
//! CPU down (QEMU: "triple fault"). Bit 14 (MCA) means the MSRs exist: IA32_MCG_CAP 0x179
//! (bits 7:0 bank count), IA32_MCG_STATUS 0x17A (bit 0 RIPV restart IP valid, bit 1 EIPV,
//! bit 2 MCIP in progress: a second #MC while it is set shuts the CPU down, so it is cleared
//! before leaving), and per bank i IA32_MCi_STATUS 0x401+4i (bit 63 VAL, 61 UC, 59 MISCV,
//! 58 ADDRV, 57 PCC), MCi_ADDR 0x402+4i, MCi_MISC 0x403+4i. Writing 0 to MCi_STATUS
//! clears a logged error. The bank enables (MCi_CTL) are left as firmware set them.
//!
//! Like the NMI handler this allocates nothing: the record goes into a fixed-size static
//! and becomes a frame at the shell's next safe point.

use alloc::string::String;
use core::fmt::Write;

use evidence::{Body, MachineCheck, McBank};
use spin::Mutex;
use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;

use crate::{serial, vga};

const CPUID_1_EDX_MCE: u32 = 1 << 7;
const CPUID_1_EDX_MCA: u32 = 1 << 14;
const IA32_MCG_CAP: u32 = 0x179;
const IA32_MCG_STATUS: u32 = 0x17A;
const IA32_MC0_STATUS: u32 = 0x401;
const MCG_CAP_COUNT_MASK: u64 = 0xff;
const MCG_STATUS_RIPV: u64 = 1 << 0;
const MCI_STATUS_VAL: u64 = 1 << 63;
const MCI_STATUS_MISCV: u64 = 1 << 59;
const MCI_STATUS_ADDRV: u64 = 1 << 58;
/// Banks kept in a record (policy: more than any CPU we met reports at once).
const BANKS_MAX: usize = 32;

struct Record {
    mcg_status: u64,
    mcg_cap: u64,
    banks: heapless::Vec<McBank, BANKS_MAX>,
    rip: u64,
    in_command: bool,
}

static PENDING: Mutex<Option<Record>> = Mutex::new(None);

fn has_mca() -> bool {
    core::arch::x86_64::__cpuid(1).edx & CPUID_1_EDX_MCA != 0
}

/// Sets CR4.MCE where the CPU has #MC, so a machine check is reported instead of shutting
/// the machine down. Returns whether it did.
pub fn enable() -> bool {
    if core::arch::x86_64::__cpuid(1).edx & CPUID_1_EDX_MCE == 0 {
        return false;
    }
    // SAFETY: setting CR4.MCE only enables the #MC exception, whose IDT entry is installed.
    unsafe { Cr4::update(|flags| flags.insert(Cr4Flags::MACHINE_CHECK_EXCEPTION)) };
    true
}

fn read(index: u32) -> u64 {
    // SAFETY: only called when CPUID says MCA, so these architectural MSRs exist.
    unsafe { Msr::new(index).read() }
}

fn write_msr(index: u32, value: u64) {
    // SAFETY: as `read`; 0 is a valid value for MCi_STATUS and MCG_STATUS.
    unsafe { Msr::new(index).write(value) }
}

/// Reads, prints and clears the machine-check state. Returns true if the interrupted code
/// can be restarted (MCG_STATUS.RIPV).
pub fn handle(rip: u64, in_command: bool) -> bool {
    let mut record = Record {
        mcg_status: 0,
        mcg_cap: 0,
        banks: heapless::Vec::new(),
        rip,
        in_command,
    };
    if has_mca() {
        record.mcg_cap = read(IA32_MCG_CAP);
        record.mcg_status = read(IA32_MCG_STATUS);
        let count = (record.mcg_cap & MCG_CAP_COUNT_MASK) as u32;
        for bank in 0..count {
            let base = IA32_MC0_STATUS + 4 * bank;
            let status = read(base);
            if status & MCI_STATUS_VAL == 0 {
                continue;
            }
            let addr = if status & MCI_STATUS_ADDRV != 0 {
                read(base + 1)
            } else {
                0
            };
            let misc = if status & MCI_STATUS_MISCV != 0 {
                read(base + 2)
            } else {
                0
            };
            write_msr(base, 0);
            let _ = record.banks.push(McBank {
                bank: bank as u8,
                status,
                addr,
                misc,
            });
        }
        // Clears MCIP (and RIPV/EIPV): the next machine check is an exception again, not
        // a shutdown.
        write_msr(IA32_MCG_STATUS, 0);
    }
    LINE_PENDING.store(!print(&record), core::sync::atomic::Ordering::SeqCst);
    let restartable = record.mcg_status & MCG_STATUS_RIPV != 0;
    if let Some(mut pending) = PENDING.try_lock() {
        *pending = Some(record);
    }
    restartable
}

/// The handler's report could not be printed (the console was busy).
static LINE_PENDING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Called by the input loop while it waits: the report a machine check at the prompt could
/// not print at once (it is printed with its frame by the next command otherwise).
pub fn print_deferred() {
    use core::sync::atomic::Ordering;
    if !LINE_PENDING.load(Ordering::SeqCst) {
        return;
    }
    if let Some(pending) = PENDING.try_lock() {
        if let Some(record) = pending.as_ref() {
            if !print(record) {
                return;
            }
        }
        LINE_PENDING.store(false, Ordering::SeqCst);
    }
}

/// Prints the report if the console is free; false if it was busy.
fn print(record: &Record) -> bool {
    let mut text: heapless::String<1024> = heapless::String::new();
    let _ = write!(
        text,
        "\r\n*** machine check at rip {:#x}: MCG_STATUS {:#x}, MCG_CAP {:#x} ({} banks)\r\n",
        record.rip,
        record.mcg_status,
        record.mcg_cap,
        record.mcg_cap & MCG_CAP_COUNT_MASK
    );
    for bank in &record.banks {
        let _ = write!(
            text,
            "    bank {}: status {:#018x} addr {:#x} misc {:#x}\r\n",
            bank.bank, bank.status, bank.addr, bank.misc
        );
    }
    if record.banks.is_empty() {
        let _ = write!(text, "    no bank holds a valid error\r\n");
    }
    let _ = write!(
        text,
        "    MCIP cleared; {}\r\n",
        if record.in_command {
            "the running command is aborted"
        } else {
            "at the prompt"
        }
    );
    let printed = serial::try_write(text.as_bytes());
    if printed {
        vga::try_write(text.as_bytes());
    }
    printed
}

/// The machine check not reported yet, as one line and one frame (normal context only).
pub fn take() -> Option<(String, Body)> {
    let record = PENDING.lock().take()?;
    let line = alloc::format!(
        "machine check at rip {:#x}: MCG_STATUS {:#x}, {} bank(s) with an error{}",
        record.rip,
        record.mcg_status,
        record.banks.len(),
        if record.in_command {
            ", command aborted"
        } else {
            " (at the prompt)"
        }
    );
    Some((
        line,
        Body::MachineCheck(MachineCheck {
            mcg_status: record.mcg_status,
            mcg_cap: record.mcg_cap,
            banks: record.banks.iter().cloned().collect(),
            rip: record.rip,
            in_command: record.in_command,
        }),
    ))
}
