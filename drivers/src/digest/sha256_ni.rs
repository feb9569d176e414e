//! The SHA-256 compression function with the x86 SHA extensions (SHA-NI), in assembly.
//!
//! Why assembly: on `x86_64-unknown-none` (a soft-float target) LLVM cannot lower the
//! `core::arch` SHA intrinsics, but the same instructions in `global_asm!` assemble, for that
//! target and for the host (`x86_64-unknown-linux-gnu`), so host tests run the very code the
//! monitor runs (tests/digest.rs).
//!
//! The register layout follows the instruction definitions (Intel SDM vol. 2, SHA256RNDS2,
//! SHA256MSG1, SHA256MSG2): SHA256RNDS2 keeps the working variables in two registers, lanes
//! high to low `A B E F` and `C D G H`, and takes two (message word + round constant) sums
//! from the low lanes of the implicit XMM0. Two rounds turn `(CDGH, ABEF)` into
//! `(ABEF', ABEF)`: the old ABEF is exactly the new CDGH, so the two state registers swap
//! roles every two rounds and no moves are needed. The message schedule runs four words at a
//! time: `W[t..t+4] = MSG2(MSG1(W[t-16..], W[t-12..]) + W[t-7..t-3], W[t-4..])`.
//!
//! ABI: `extern "sysv64"`. It uses XMM0-XMM10 (all caller-saved in the System V ABI, so a
//! plain call is enough), RAX and RCX (caller-saved), reads `count * 64` bytes at `data` and
//! reads and writes the eight state words at `state`. No stack, no other memory. The CPU must
//! have SHA, SSSE3 (PSHUFB, PALIGNR) and SSE4.1 (PBLENDW), and the OS (the monitor, see
//! monitor/src/sse.rs) must have enabled SSE, or the first instruction raises #UD.

use core::arch::global_asm;

unsafe extern "sysv64" {
    /// Runs the compression function over `count` 64-byte blocks at `data`, updating
    /// `state` (a, b, c, d, e, f, g, h as in FIPS 180-4).
    fn bringup_sha256_ni_blocks(state: *mut [u32; 8], data: *const u8, count: usize);
}

/// Compresses whole 64-byte blocks into `state` with the SHA extensions.
///
/// # Safety
/// The CPU must support SHA, SSSE3 and SSE4.1 (CPUID leaf 7 EBX bit 29, leaf 1 ECX bits 9 and
/// 19) and SSE must be enabled (CR0.EM clear, CR4.OSFXSR set); otherwise the CPU raises #UD.
pub unsafe fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % 64, 0);
    let count = blocks.len() / 64;
    if count == 0 {
        return;
    }
    // SAFETY: the pointers come from live references; the routine reads exactly
    // `count * 64` bytes at `data` and the 32 bytes of `state`, and the caller vouched for
    // the CPU features.
    unsafe { bringup_sha256_ni_blocks(state, blocks.as_ptr(), count) }
}

// Registers: xmm1 = ABEF, xmm2 = CDGH, xmm3..xmm6 = the rotating message groups, xmm7 = the
// byte-swap mask (message words are big-endian), xmm8/xmm9 = state at block start,
// xmm10 = scratch, xmm0 = W+K (implicit operand). rdi = state, rsi = data, rdx = blocks,
// rcx = round constants.
global_asm!(
    r#"
    .pushsection .text.bringup_sha256_ni_blocks,"ax",@progbits
    .globl bringup_sha256_ni_blocks
    .type bringup_sha256_ni_blocks,@function
    .p2align 4

    /* Four rounds with message group \m and the constants at byte offset \k. */
    .macro BRINGUP_SHA_RNDS4 m, k
    movdqa xmm0, \m
    paddd xmm0, xmmword ptr [rcx + \k]
    sha256rnds2 xmm2, xmm1, xmm0
    pshufd xmm0, xmm0, 0x0e
    sha256rnds2 xmm1, xmm2, xmm0
    .endm

    /* The next message group into \a (which holds W[t-16..t-12]); \b = W[t-12..],
       \c = W[t-8..], \d = W[t-4..]. */
    .macro BRINGUP_SHA_SCHED a, b, c, d
    sha256msg1 \a, \b
    movdqa xmm10, \d
    palignr xmm10, \c, 4
    paddd \a, xmm10
    sha256msg2 \a, \d
    .endm

bringup_sha256_ni_blocks:
    test rdx, rdx
    jz 3f
    lea rcx, [rip + bringup_sha256_k]
    movdqa xmm7, xmmword ptr [rip + bringup_sha256_bswap]

    /* state a b c d / e f g h (lane 0 first) into ABEF / CDGH (lane 3 first). */
    movdqu xmm10, xmmword ptr [rdi]
    movdqu xmm2, xmmword ptr [rdi + 16]
    pshufd xmm10, xmm10, 0xb1
    pshufd xmm2, xmm2, 0x1b
    movdqa xmm1, xmm10
    palignr xmm1, xmm2, 8
    pblendw xmm2, xmm10, 0xf0

2:
    movdqa xmm8, xmm1
    movdqa xmm9, xmm2

    movdqu xmm3, xmmword ptr [rsi]
    pshufb xmm3, xmm7
    BRINGUP_SHA_RNDS4 xmm3, 0
    movdqu xmm4, xmmword ptr [rsi + 16]
    pshufb xmm4, xmm7
    BRINGUP_SHA_RNDS4 xmm4, 16
    movdqu xmm5, xmmword ptr [rsi + 32]
    pshufb xmm5, xmm7
    BRINGUP_SHA_RNDS4 xmm5, 32
    movdqu xmm6, xmmword ptr [rsi + 48]
    pshufb xmm6, xmm7
    BRINGUP_SHA_RNDS4 xmm6, 48

    BRINGUP_SHA_SCHED xmm3, xmm4, xmm5, xmm6
    BRINGUP_SHA_RNDS4 xmm3, 64
    BRINGUP_SHA_SCHED xmm4, xmm5, xmm6, xmm3
    BRINGUP_SHA_RNDS4 xmm4, 80
    BRINGUP_SHA_SCHED xmm5, xmm6, xmm3, xmm4
    BRINGUP_SHA_RNDS4 xmm5, 96
    BRINGUP_SHA_SCHED xmm6, xmm3, xmm4, xmm5
    BRINGUP_SHA_RNDS4 xmm6, 112

    BRINGUP_SHA_SCHED xmm3, xmm4, xmm5, xmm6
    BRINGUP_SHA_RNDS4 xmm3, 128
    BRINGUP_SHA_SCHED xmm4, xmm5, xmm6, xmm3
    BRINGUP_SHA_RNDS4 xmm4, 144
    BRINGUP_SHA_SCHED xmm5, xmm6, xmm3, xmm4
    BRINGUP_SHA_RNDS4 xmm5, 160
    BRINGUP_SHA_SCHED xmm6, xmm3, xmm4, xmm5
    BRINGUP_SHA_RNDS4 xmm6, 176

    BRINGUP_SHA_SCHED xmm3, xmm4, xmm5, xmm6
    BRINGUP_SHA_RNDS4 xmm3, 192
    BRINGUP_SHA_SCHED xmm4, xmm5, xmm6, xmm3
    BRINGUP_SHA_RNDS4 xmm4, 208
    BRINGUP_SHA_SCHED xmm5, xmm6, xmm3, xmm4
    BRINGUP_SHA_RNDS4 xmm5, 224
    BRINGUP_SHA_SCHED xmm6, xmm3, xmm4, xmm5
    BRINGUP_SHA_RNDS4 xmm6, 240

    paddd xmm1, xmm8
    paddd xmm2, xmm9
    add rsi, 64
    dec rdx
    jnz 2b

    /* ABEF / CDGH back to a b c d / e f g h. */
    pshufd xmm1, xmm1, 0x1b
    pshufd xmm2, xmm2, 0xb1
    movdqa xmm10, xmm1
    pblendw xmm1, xmm2, 0xf0
    palignr xmm2, xmm10, 8
    movdqu xmmword ptr [rdi], xmm1
    movdqu xmmword ptr [rdi + 16], xmm2
3:
    ret
    .size bringup_sha256_ni_blocks, . - bringup_sha256_ni_blocks
    .purgem BRINGUP_SHA_RNDS4
    .purgem BRINGUP_SHA_SCHED
    .popsection

    .pushsection .rodata.bringup_sha256_k,"a",@progbits
    .p2align 4
    /* PSHUFB mask: reverse the bytes of each dword. */
bringup_sha256_bswap:
    .byte 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12
    /* FIPS 180-4 section 4.2.2: the 64 round constants. */
bringup_sha256_k:
    .long 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5
    .long 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5
    .long 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3
    .long 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174
    .long 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc
    .long 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da
    .long 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7
    .long 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967
    .long 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13
    .long 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85
    .long 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3
    .long 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070
    .long 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5
    .long 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3
    .long 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208
    .long 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
    .popsection
"#
);
