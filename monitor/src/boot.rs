//! The multiboot2 header and the 32-bit to long-mode trampoline.
//!
//! GRUB enters `_start` in 32-bit protected mode with paging off, EAX = multiboot2 magic and
//! EBX = physical address of the boot information. The trampoline identity maps the low
//! 4 GiB with 2 MiB pages (enough for the kernel, the boot information, RAM below 4 GiB and
//! the DMA pool), enables PAE + EFER.LME/NXE + paging, loads a 64-bit GDT and calls
//! `kmain(magic, info)`. Everything after that (MMIO mappings above 4 GiB) is Rust's job.

use core::arch::global_asm;

/// Boot stack size; commands format text and frames on it, so be generous.
pub const STACK_BYTES: usize = 256 * 1024;

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
    .balign 16
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
    options(att_syntax)
);

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Physical range `[start, end)` occupied by the loaded monitor image (code, data, bss,
/// boot page tables and stack).
pub fn kernel_range() -> (u64, u64) {
    // Only the addresses of the linker-script symbols are taken, never their values.
    (
        core::ptr::addr_of!(__kernel_start) as u64,
        core::ptr::addr_of!(__kernel_end) as u64,
    )
}
