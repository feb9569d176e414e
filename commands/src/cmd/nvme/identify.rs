//! `nvme identify`: bind (on first use) and show the controller and its namespaces.

use alloc::string::String;
use core::fmt::Write;

use evidence::Body;

use super::{target, wanted_bdf};
use crate::args::Args;
use crate::nvme_wait::{error_after, report_releases};
use crate::pci::human_size;
use crate::table::{CmdError, Ctx};

pub(super) fn run(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let wanted = wanted_bdf(args, Some(0))?;
    let bound_before = ctx.devices.nvme.controllers.len();
    let index = target(ctx, wanted)?;
    let was_bound = index < bound_before;
    let hw = &mut *ctx.hw;
    let controller = &mut ctx.devices.nvme.controllers[index];
    if was_bound {
        // Re-read so the output proves the admin queue still works.
        let refreshed = controller.refresh_identity(hw);
        report_releases(&mut ctx.out, &controller.take_releases());
        refreshed.map_err(|err| error_after(err, controller.state()))?;
    }
    let controller = &*controller;
    let id = controller
        .identity
        .clone()
        .ok_or_else(|| CmdError::new("nvme-protocol-error", "no identify data"))?;
    let version = controller.version;
    let mdts = controller.max_transfer();
    let raw_mdts = id.mdts_bytes(controller.cap.min_page_size());
    let _ = writeln!(
        ctx.out,
        "NVMe {} vid {:04x} ssvid {:04x}\n  model    \"{}\"\n  serial   \"{}\"\n  firmware \"{}\"\n  \
         version {}.{}.{}, MDTS {} (per command: {}), CAP.TO {} ms, MQES {}, {} namespaces, {} active",
        controller.bdf,
        id.vid,
        id.ssvid,
        id.model,
        id.serial,
        id.firmware,
        version >> 16,
        (version >> 8) & 0xff,
        version & 0xff,
        if raw_mdts == 0 { String::from("unlimited") } else { human_size(raw_mdts) },
        human_size(mdts),
        controller.cap.timeout_units as u64 * 500,
        controller.cap.mqes as u32 + 1,
        id.namespaces,
        controller.namespaces.len()
    );
    let namespaces = controller.namespaces.clone();
    let bdf = controller.bdf;
    for ns in &namespaces {
        let _ = writeln!(
            ctx.out,
            "  ns {}: {} blocks x {} B = {} ({} bytes){}",
            ns.nsid,
            ns.blocks,
            ns.block_size,
            capacity(ns.capacity_bytes()),
            ns.capacity_bytes(),
            if ns.gce_device_name.is_empty() {
                String::new()
            } else {
                alloc::format!(", GCE disk \"{}\"", ns.gce_device_name)
            }
        );
    }
    ctx.out
        .frame(Body::NvmeController(evidence::NvmeController {
            bus: bdf.bus,
            device: bdf.device,
            function: bdf.function,
            vid: id.vid,
            ssvid: id.ssvid,
            serial: id.serial.clone(),
            model: id.model.clone(),
            firmware: id.firmware.clone(),
            version,
            mdts_bytes: raw_mdts,
            namespaces: id.namespaces,
            active_namespaces: namespaces.iter().map(|n| n.nsid).collect(),
        }));
    for ns in namespaces {
        ctx.out.frame(Body::NvmeNamespace(evidence::NvmeNamespace {
            nsid: ns.nsid,
            blocks: ns.blocks,
            block_size: ns.block_size,
            capacity_bytes: ns.capacity_bytes(),
            gce_device_name: ns.gce_device_name.clone(),
        }));
    }
    Ok(())
}

/// Decimal-ish capacity for people: "64.0 MiB", "10.0 GiB".
pub(super) fn capacity(bytes: u64) -> String {
    let (unit, shift) = match bytes {
        b if b >= 1 << 40 => ("TiB", 40),
        b if b >= 1 << 30 => ("GiB", 30),
        b if b >= 1 << 20 => ("MiB", 20),
        b if b >= 1 << 10 => ("KiB", 10),
        _ => ("B", 0),
    };
    let whole = bytes >> shift;
    let tenth = if shift == 0 {
        0
    } else {
        ((bytes >> (shift - 10)) & 0x3ff) * 10 / 1024
    };
    alloc::format!("{whole}.{tenth} {unit}")
}
