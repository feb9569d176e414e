//! The gVNIC half of `teardown`: the driver's steps reported one by one, then bus mastering
//! off, INTx restored and the BAR windows released.

use alloc::vec::Vec;
use core::fmt::Write;

use drivers::pci;

use super::*;

/// Tears the NIC down if one is bound; Ok when nothing was bound.
pub fn teardown(ctx: &mut Ctx) -> Result<(), CmdError> {
    let Some(mut bound) = ctx.devices.gvnic.bound.take() else {
        ctx.out.print("gvnic: nothing bound\n");
        return Ok(());
    };
    let bdf = bound.bdf;
    let mut steps = Vec::new();
    let result = bound
        .nic
        .teardown(ctx.hw.config, ctx.hw.clock, ctx.hw.dma, &mut |step| {
            steps.push(step)
        });
    if steps.is_empty() {
        let _ = writeln!(ctx.out, "gvnic {bdf}: nothing to tear down");
    }
    for step in steps {
        report_teardown_step(ctx, "gvnic", bdf, step.step, step.ok, &step.detail);
    }
    let released = bound.nic.take_released_quarantine();
    report_release(ctx, bound.nic.owner(), released);
    // Whatever happened, the device must not DMA any more: bus mastering off. (A device
    // that did not confirm its reset keeps its quarantined pages all the same.)
    pci::disable_bus_master(ctx.hw.config, bdf);
    report_teardown_step(
        ctx,
        "gvnic",
        bdf,
        "bus-master-off",
        true,
        "PCI bus mastering disabled",
    );
    if !bound.intx_was_disabled {
        pci::set_intx_disabled(ctx.hw.config, bdf, false);
        report_teardown_step(
            ctx,
            "gvnic",
            bdf,
            "intx-restore",
            true,
            "INTx disable cleared again, as before we bound",
        );
    }
    // Register windows are not DMA: unmapping them is safe even after a failed reset.
    for (phys, len) in bound.mapped {
        ctx.hw.mmio.unmap(phys, len);
        let detail = alloc::format!(
            "BAR window for {phys:#x} ({len:#x} bytes) released (kept while a `bar map` uses it)"
        );
        report_teardown_step(ctx, "gvnic", bdf, "unmap", true, &detail);
    }
    result.map_err(|err| driver_error(bdf, err))
}
