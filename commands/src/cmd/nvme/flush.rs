//! `nvme flush`: FLUSH one namespace, or every active namespace of the controller.

use alloc::vec::Vec;
use core::fmt::Write;

use evidence::Body;

use super::{target, wanted_bdf};
use crate::args::Args;
use crate::nvme_wait::{error_after, read_timeout_us, report_releases};
use crate::table::{CmdError, Ctx};

pub(super) fn run(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let timeout_us = read_timeout_us(args)?;
    let index = target(ctx, wanted_bdf(args, None)?)?;
    let hw = &mut *ctx.hw;
    let controller = &mut ctx.devices.nvme.controllers[index];
    let namespaces: Vec<u32> = if args.value("--ns").is_some() {
        alloc::vec![super::namespace_arg(controller, args)?]
    } else {
        controller.namespaces.iter().map(|n| n.nsid).collect()
    };
    let bdf = controller.bdf;
    controller.set_io_timeout_us(timeout_us);
    for nsid in namespaces {
        let result = controller.flush(hw, nsid);
        report_releases(&mut ctx.out, &controller.take_releases());
        let done = result.map_err(|err| error_after(err, controller.state()))?;
        let _ = writeln!(
            ctx.out,
            "flushed {bdf} ns {nsid} in {}.{:03} ms",
            done.elapsed_us / 1000,
            done.elapsed_us % 1000
        );
        ctx.out.frame(Body::NvmeFlush(evidence::NvmeFlush {
            bus: bdf.bus,
            device: bdf.device,
            function: bdf.function,
            nsid,
            elapsed_us: done.elapsed_us,
        }));
    }
    Ok(())
}
