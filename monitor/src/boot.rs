//! The multiboot2 header and the 32-bit to long-mode trampoline.
//!
//! GRUB enters `_start` in 32-bit protected mode with paging off, EAX = multiboot2 magic and
//! EBX = physical address of the boot information. The trampoline identity maps the low
//! 4 GiB with 2 MiB pages (enough for the kernel, the boot information, RAM below 4 GiB and
//! the DMA pool), enables PAE + EFER.LME/NXE + paging, loads a 64-bit GDT and calls
//! `kmain(magic, info)`. Everything after that is Rust's job: the stack guard page, cutting
//! the identity map down to RAM once the memory map is known ([`restrict_identity_map`],
//! `monitor::identity`), and MMIO mappings (the uncached window, `mmio`).

use core::arch::global_asm;
use core::ptr::{addr_of, addr_of_mut};

use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{PageTable, PageTableFlags};
use x86_64::{PhysAddr, VirtAddr};

use monitor::identity::{Caching, LargePage, Plan, IDENTITY_LIMIT, PAGE_2M as LARGE, PAGE_4K};

/// Boot stack size; commands format text and frames on it, so be generous.
pub const STACK_BYTES: usize = 256 * 1024;
/// The page directly below the stack, left unmapped by [`install_stack_guard`] so that a
/// stack overflow faults instead of overwriting the boot page tables that sit below it.
pub const GUARD_BYTES: u64 = 4096;
const PAGE_2M: u64 = 2 * 1024 * 1024;

global_asm!(
    r#"
    .set MB2_MAGIC, 0xe85250d6
    .set MB2_ARCH_I386, 0
    .set MB2_LEN, mb2_header_end - mb2_header

    .section .multiboot2_header, "a"
    .balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long MB2_LEN
    .long -(MB2_MAGIC + MB2_ARCH_I386 + MB2_LEN)
    /* end tag: type 0, flags 0, size 8 */
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .bss
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    /* Never used: unmapped once in Rust, so the stack's growth runs into a fault. The
       stack grows down towards it; without it the next thing below is boot_pd. */
    .balign 4096
boot_stack_guard:
    .skip {guard_bytes}
boot_stack_bottom:
    .skip {stack_bytes}
boot_stack_top:

    .section .rodata
    .balign 8
boot_gdt:
    .quad 0
    /* 0x08: 64-bit code, present, DPL0, L=1 */
    .quad 0x00209a0000000000
    /* 0x10: data, present, writable */
    .quad 0x0000920000000000
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .boot32, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    movl $boot_stack_top, %esp
    movl %eax, %edi
    movl %ebx, %esi

    /* Zero the tables: do not rely on the loader clearing .bss. */
    movl $boot_pml4, %ebx
    xorl %eax, %eax
    movl $((4096 * 6) / 4), %ecx
    pushl %edi
    movl %ebx, %edi
    rep stosl
    popl %edi

    /* PML4[0] -> PDPT, PDPT[0..4] -> 4 PDs, each PD: 512 x 2 MiB, present|writable|PS. */
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4

    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jne 1b

    /* 2048 entries: entry i maps i * 2 MiB; the high dword holds bits 32.. of the address. */
    xorl %ecx, %ecx
2:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, boot_pd(,%ecx,8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, boot_pd+4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 2b

    /* CR4.PAE */
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4

    movl $boot_pml4, %eax
    movl %eax, %cr3

    /* EFER: LME (bit 8) and NXE (bit 11) */
    movl $0xc0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr

    /* CR0: PG (31), WP (16), PE (0) */
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode_entry

    .code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    /* zero-extend (magic, info) into the SysV argument registers */
    movl %edi, %edi
    movl %esi, %esi
    call kmain
3:
    cli
    hlt
    jmp 3b

    .section .text
    "#,
    stack_bytes = const STACK_BYTES,
    guard_bytes = const GUARD_BYTES,
    options(att_syntax)
);

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static boot_stack_guard: u8;
}

/// The 4 KiB page table that replaces the 2 MiB identity page holding the guard page.
/// Static (not heap) so the guard is in place before the heap or anything else runs.
static mut GUARD_PAGE_TABLE: PageTable = PageTable::new();

/// Physical (= virtual) address of the unmapped page below the boot stack.
pub fn stack_guard() -> u64 {
    // Only the symbol's address is taken; the page itself is never read.
    addr_of!(boot_stack_guard) as u64
}

/// True if `addr` lies in the stack guard page.
pub fn in_stack_guard(addr: u64) -> bool {
    let guard = stack_guard();
    (guard..guard + GUARD_BYTES).contains(&addr)
}

/// Unmaps the guard page below the boot stack and returns its address.
///
/// The trampoline maps the image with 2 MiB pages, so the stack, the guard page, the boot
/// page tables and the TSS/IDT all share one writable page and an overflowing stack would
/// silently rewrite the identity map. Here the 2 MiB page holding the guard becomes a
/// 4 KiB page table with the same flags and the same physical pages, except the guard,
/// which is not present: a push into it page-faults; the CPU cannot push that fault's
/// frame on the same stack either, so it raises a double fault, which runs on its own IST
/// stack (see `exceptions`) and gets the usual dump and recovery.
///
/// Call once, first thing in `kmain`, while the boot page tables are the active ones.
pub fn install_stack_guard() -> u64 {
    let guard = stack_guard();
    let virt = VirtAddr::new(guard);
    let (pml4_frame, _) = Cr3::read();
    let pml4 = pml4_frame.start_address().as_u64() as *const PageTable;
    // SAFETY: the boot tables are identity mapped (each table's physical address is its
    // virtual address), nothing else edits them yet (the MMIO window takes them over
    // later), and interrupts are off. The 4 KiB table maps exactly what the 2 MiB entry
    // mapped, with the same flags, except the guard page, which nothing uses: so every
    // address other than the guard translates as before, including the code running now
    // and its stack. The TLB flush drops the old 2 MiB translation.
    unsafe {
        let pml4 = &*pml4;
        let pdpt = &*(pml4[virt.p4_index()].addr().as_u64() as *const PageTable);
        let pd = &mut *(pdpt[virt.p3_index()].addr().as_u64() as *mut PageTable);
        let pde = &mut pd[virt.p2_index()];
        let flags = pde.flags();
        if !flags.contains(PageTableFlags::PRESENT | PageTableFlags::HUGE_PAGE) {
            // Not the trampoline's layout: the guard is already a 4 KiB page (or absent).
            crate::halt_with("boot page tables do not map the stack guard with a 2 MiB page");
        }
        // The trampoline never sets the 2 MiB PAT bit (bit 12), so the low 21 bits of the
        // entry's address are zero and bit 7 of a 4 KiB entry (PAT there) stays clear.
        let base = pde.addr().as_u64() & !(PAGE_2M - 1);
        let small = flags & !PageTableFlags::HUGE_PAGE;
        let table = &mut *addr_of_mut!(GUARD_PAGE_TABLE);
        for (i, entry) in table.iter_mut().enumerate() {
            entry.set_addr(PhysAddr::new(base + i as u64 * 4096), small);
        }
        table[virt.p1_index()].set_unused();
        // Intermediate entries only narrow access: give the table the widest rights and
        // let the 4 KiB entries carry the 2 MiB page's own flags.
        let table_addr = PhysAddr::new(table as *mut PageTable as u64);
        pde.set_addr(
            table_addr,
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
        );
    }
    tlb::flush_all();
    guard
}

/// Physical range `[start, end)` occupied by the loaded monitor image (code, data, bss,
/// boot page tables, stack guard and stack).
pub fn kernel_range() -> (u64, u64) {
    // Only the addresses of the linker-script symbols are taken, never their values.
    (
        core::ptr::addr_of!(__kernel_start) as u64,
        core::ptr::addr_of!(__kernel_end) as u64,
    )
}

/// The identity map in force (after [`restrict_identity_map`]).
static IDENTITY: spin::Once<Plan> = spin::Once::new();

/// True if `[start, end)` below 4 GiB is identity mapped (always false before the map was
/// restricted: then nobody asks). Addresses at or above 4 GiB are not the identity map's.
pub fn identity_covers(start: u64, end: u64) -> bool {
    IDENTITY.get().is_some_and(|plan| plan.covers(start, end))
}

/// True if any byte of `[start, end)` is identity mapped (always false before the map was
/// restricted).
pub fn identity_overlaps(start: u64, end: u64) -> bool {
    IDENTITY.get().is_some_and(|plan| plan.overlaps(start, end))
}

/// The flags of an identity page of `caching` (the 4 KiB / 2 MiB bit added by the caller).
fn identity_flags(caching: Caching) -> PageTableFlags {
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    match caching {
        Caching::WriteBack => flags,
        // PCD|PWT selects PAT entry 3, uncached with the power-on PAT.
        Caching::Uncached => flags | PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH,
    }
}

/// Cuts the trampoline's identity map of the low 4 GiB down to `plan` (RAM write-back, the
/// VGA aperture uncached, nothing else; see `monitor::identity`).
///
/// Call once, after the heap exists (mixed 2 MiB pages get 4 KiB tables from it) and
/// before anything maps MMIO. The 2 MiB pages the running code, its stack, the page tables
/// and the heap live in are RAM the plan keeps whole (or, for the stack guard, already a
/// 4 KiB table, whose entries get the plan too: the first MiB and the VGA aperture sit in
/// it when the image is loaded below 2 MiB), so no translation in use changes.
pub fn restrict_identity_map(plan: Plan) {
    let plan = IDENTITY.call_once(|| plan);
    let (pml4_frame, _) = Cr3::read();
    let pml4 = pml4_frame.start_address().as_u64() as *const PageTable;
    // SAFETY: the boot tables are identity mapped; only this function edits them now
    // (interrupts off, the MMIO window not created yet). Heap frames are identity-mapped
    // RAM the plan keeps. Every entry still in use maps what it mapped before.
    unsafe {
        let pml4 = &*pml4;
        let pdpt = &*(pml4[0].addr().as_u64() as *const PageTable);
        for (gib, pdpte) in pdpt
            .iter()
            .take((IDENTITY_LIMIT >> 30) as usize)
            .enumerate()
        {
            let pd = &mut *(pdpte.addr().as_u64() as *mut PageTable);
            for (index, pde) in pd.iter_mut().enumerate() {
                let base = ((gib as u64) << 30) + index as u64 * LARGE;
                if !pde.flags().contains(PageTableFlags::PRESENT) {
                    continue;
                }
                if !pde.flags().contains(PageTableFlags::HUGE_PAGE) {
                    // Already split (the stack guard's 4 KiB table, which also maps the
                    // first MiB and the VGA aperture): apply the plan page by page.
                    let table = &mut *(pde.addr().as_u64() as *mut PageTable);
                    apply_to_split_table(plan, base, table);
                    continue;
                }
                match plan.large_page(base) {
                    LargePage::Whole(caching) => pde.set_addr(
                        PhysAddr::new(base),
                        identity_flags(caching) | PageTableFlags::HUGE_PAGE,
                    ),
                    LargePage::Empty => pde.set_unused(),
                    LargePage::Mixed => {
                        let Some(table) = small_table(plan, base) else {
                            crate::halt_with("out of heap for identity page tables");
                        };
                        pde.set_addr(
                            PhysAddr::new(table),
                            PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
                        );
                    }
                }
            }
        }
    }
    tlb::flush_all();
    // Pages that became uncached (VGA) may still have write-back lines in the caches from
    // before; changing a page's type needs the TLBs and then the caches flushed (SDM vol. 3A
    // §12.12.4). Once, at boot.
    // SAFETY: WBINVD writes back and invalidates the caches; no memory changes meaning.
    unsafe { core::arch::asm!("wbinvd", options(nostack, preserves_flags)) };
}

/// Rewrites the 4 KiB entries of an existing table for the 2 MiB at `base` per `plan`.
/// An entry that is not present stays so: that is the stack guard (inside the image, which
/// the plan keeps), and mapping it would undo the guard.
fn apply_to_split_table(plan: &Plan, base: u64, table: &mut PageTable) {
    for (i, entry) in table.iter_mut().enumerate() {
        if !entry.flags().contains(PageTableFlags::PRESENT) {
            continue;
        }
        let addr = base + i as u64 * PAGE_4K;
        match plan.page(addr) {
            Some(caching) => entry.set_addr(PhysAddr::new(addr), identity_flags(caching)),
            None => entry.set_unused(),
        }
    }
}

/// A fresh 4 KiB page table for the 2 MiB at `base`, per `plan`; its physical address.
fn small_table(plan: &Plan, base: u64) -> Option<u64> {
    let layout = core::alloc::Layout::from_size_align(4096, 4096).ok()?;
    // SAFETY: non-zero size; the frame is never freed (page tables live forever).
    let table = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut PageTable;
    if table.is_null() {
        return None;
    }
    // SAFETY: a fresh, zeroed, aligned allocation nothing else references.
    let entries = unsafe { &mut *table };
    for (i, entry) in entries.iter_mut().enumerate() {
        let addr = base + i as u64 * PAGE_4K;
        if let Some(caching) = plan.page(addr) {
            entry.set_addr(PhysAddr::new(addr), identity_flags(caching));
        }
    }
    Some(table as u64)
}
