//! `msix <bdf>` (the vector table and pending bits) and `irq test <bdf>` (prove that an
//! NVMe controller or a gVNIC delivers an MSI-X interrupt to the boot CPU; the gVNIC half
//! is in [`crate::cmd::gvnic::irq`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::nvme::{self, IrqReport};
use drivers::pci::msix::{self, MsixState};
use drivers::platform::Bdf;
use evidence::{Body, IrqTest, MsixInfo, MsixVector};

use crate::args::Args;
use crate::cmd::gvnic::irq as gvnic_irq;
use crate::table::{CmdError, CommandSpec, Ctx};

/// Vectors per `msix` frame.
const VECTORS_PER_FRAME: usize = 8;

/// `msix` only reads: it never hands memory to a device.
pub static MSIX_COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "msix",
        usage: "msix [bdf]",
        summary: "a function's MSI-X table entries and pending bits",
        details: "Maps the BAR(s) holding the MSI-X table and PBA (as 'bar map' does: memory decode on) and \
                  prints the control word (enabled, function mask, table size) and every vector: message \
                  address, data, masked, pending. Only 32-bit accesses touch the table. Without a bdf: the \
                  NVMe controller 'nvme identify' bound. Emits msix frames (8 vectors each).",
        examples: &["msix 00:04.0", "msix"],
        min_args: 0,
        max_args: 1,
        flags: &[],
        run: msix_cmd,
    },
];

/// `irq test` has the controller DMA (a queue pair, a FLUSH).
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "irq test",
        usage: "irq test [bdf]",
        summary: "prove an NVMe's or gVNIC's MSI-X interrupt reaches the boot CPU",
        details: "For the NVMe controller bound by 'nvme identify' (default: that one): points MSI-X entry 1 \
                  at the boot CPU's local APIC, enables MSI-X, rebuilds the I/O queue pair with its completion \
                  queue on that vector, submits one FLUSH, and counts the interrupt on its own IDT vector \
                  (count, vector, latency from the doorbell to the interrupt). Then rebuilds the polling queue \
                  pair and restores the entry, the MSI-X control word and the command register, checking \
                  they read back as before (the admin vector's pending bit may stay set: admin completions \
                  while MSI-X was on found it masked). Interrupts are enabled only inside this command, with \
                  the legacy PIC and the local APIC's own sources masked. Emits an irq.test frame; no \
                  interrupt is a 'no-interrupt' error. For a gVNIC (bound and its queues brought up as \
                  'gvnic txdhcp' does): routes the RX notification block's entry to the boot CPU, unmasks \
                  the block, sends a DHCP DISCOVER and counts the interrupt the OFFER raises (latency from \
                  the DISCOVER); then routes the management entry and watches it (the device raises it only \
                  for a status change); restores every entry, the control word, the command register and \
                  the IRQ doorbells. A device that raised the vector (its pending bit clear) while nothing \
                  reached the CPU is 'irq-not-delivered': this machine carries no device interrupts (QEMU \
                  7.2's proxy). One irq.test frame per vector.",
        examples: &["nvme identify", "irq test", "irq test 00:04.0", "irq test 00:05.0"],
        min_args: 0,
        max_args: 1,
        flags: &[],
        run: irq_test,
    },
];

/// The bdf argument, or the bound NVMe controller's, or the bound gVNIC's.
fn bdf_or_bound(ctx: &mut Ctx, args: &Args) -> Result<Bdf, CmdError> {
    if args.get(0).is_some() {
        return args.bdf(0);
    }
    if let Some(bdf) = ctx.devices.nvme.controller_mut().map(|c| c.bdf) {
        return Ok(bdf);
    }
    gvnic_irq::bound_bdf(ctx).ok_or_else(|| {
        CmdError::new(
            "nvme-not-bound",
            "no bdf given and no NVMe controller or gVNIC is bound: run 'nvme identify' or \
             'gvnic describe' first, or name the function",
        )
    })
}

fn msix_cmd(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let bdf = bdf_or_bound(ctx, args)?;
    let state = msix::read_state(ctx.hw, bdf)
        .map_err(|err| CmdError::new(err.code(), alloc::format!("{err}")))?;
    ctx.out.print(&msix_text(&state));
    let vectors: Vec<MsixVector> = state
        .vectors
        .iter()
        .enumerate()
        .map(|(i, (entry, pending))| MsixVector {
            index: i as u16,
            address: entry.message.address,
            data: entry.message.data,
            masked: entry.masked(),
            pending: *pending,
        })
        .collect();
    for chunk in vectors
        .chunks(VECTORS_PER_FRAME)
        .chain(vectors.is_empty().then_some(&[][..]))
    {
        ctx.out.frame(Body::Msix(MsixInfo {
            bus: bdf.bus,
            device: bdf.device,
            function: bdf.function,
            table_size: state.cap.table_size,
            enabled: state.enabled(),
            function_masked: state.function_masked(),
            vectors: chunk.to_vec(),
        }));
    }
    Ok(())
}

/// The human text of `msix` (pure).
pub fn msix_text(s: &MsixState) -> String {
    let mut out = alloc::format!(
        "MSI-X {}, function {}masked, {} vectors; table BAR{}+{:#x}, PBA BAR{}+{:#x}\n",
        if s.enabled() { "enabled" } else { "disabled" },
        if s.function_masked() { "" } else { "not " },
        s.cap.table_size,
        s.cap.table_bar,
        s.cap.table_offset,
        s.cap.pba_bar,
        s.cap.pba_offset
    );
    for (i, (entry, pending)) in s.vectors.iter().enumerate() {
        let _ = writeln!(
            out,
            "  vector {i:>4}: address {:#018x} data {:#010x}{}{}",
            entry.message.address,
            entry.message.data,
            if entry.masked() { "  masked" } else { "" },
            if *pending { "  PENDING" } else { "" }
        );
    }
    out
}

fn irq_test(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let bdf = bdf_or_bound(ctx, args)?;
    if gvnic_irq::is_gvnic(ctx, bdf) {
        return gvnic_irq::irq_test(ctx, bdf);
    }
    let Some(controller) = ctx.devices.nvme.controller_at_mut(bdf) else {
        return Err(CmdError::new(
            "nvme-not-bound",
            alloc::format!("no NVMe controller is bound at {bdf}: run 'nvme identify {bdf}' first"),
        ));
    };
    let report = nvme::irq_test(controller, ctx.hw)
        .map_err(|err| CmdError::new(err.code(), alloc::format!("{err}")))?;
    ctx.out.print(&irq_text(bdf, &report));
    ctx.out.frame(Body::IrqTest(IrqTest {
        bus: bdf.bus,
        device: bdf.device,
        function: bdf.function,
        entry: report.entry,
        vector: report.vector,
        address: report.message.address,
        data: report.message.data,
        count: report.delivery.count,
        latency_us: report.latency_us,
        other: report.delivery.other,
        restored: true,
        device_kind: String::from("nvme"),
        role: String::from("io-cq"),
        trigger: String::from("FLUSH on the I/O queue pair"),
    }));
    Ok(())
}

/// The human text of `irq test` (pure).
pub fn irq_text(bdf: Bdf, r: &IrqReport) -> String {
    alloc::format!(
        "{bdf}: MSI-X entry {} -> address {:#x} data {:#x} (vector {:#04x} on the boot CPU)\n  \
         {} interrupt(s) on vector {:#04x}, {} µs from doorbell to interrupt; {} on other vectors\n  \
         entry, MSI-X control and command register restored\n",
        r.entry,
        r.message.address,
        r.message.data,
        r.vector,
        r.delivery.count,
        r.vector,
        r.latency_us,
        r.delivery.other
    )
}
