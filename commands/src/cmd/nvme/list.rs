//! `nvme list`: every NVMe function, each bound, with its namespaces (size, LBA format, GCE
//! device name, and whether it is the disk the monitor booted from).

use alloc::string::String;
use core::fmt::Write;

use drivers::nvme::Controller;
use drivers::pci::PciFunctionInfo;
use drivers::platform::Hw;
use evidence::{Body, NvmeDisk};

use super::identify::capacity;
use super::write::boot_disk;
use super::{bind, nvme_functions};
use crate::args::Args;
use crate::table::{CmdError, Ctx};

pub(super) fn run(ctx: &mut Ctx, _: &Args) -> Result<(), CmdError> {
    let functions = nvme_functions(ctx);
    if functions.is_empty() {
        return Err(CmdError::new(
            "no-controller",
            "no NVMe controller found (class 010802) on any bus",
        ));
    }
    let boot = boot_disk(&ctx.info.cmdline);
    let mut first_error = None;
    for function in &functions {
        let index = match ctx.devices.nvme.index_of(function.bdf) {
            Some(index) => index,
            None => match bind(ctx, function.bdf) {
                Ok(index) => index,
                Err(err) => {
                    let _ = writeln!(
                        ctx.out,
                        "{} {:04x}:{:04x}: not bound: {}",
                        function.bdf, function.vendor_id, function.device_id, err.message
                    );
                    first_error.get_or_insert(err);
                    continue;
                }
            },
        };
        let controller = &mut ctx.devices.nvme.controllers[index];
        let disks = describe(controller, ctx.hw, function, boot);
        ctx.out.print(&text(controller, function, &disks));
        for disk in disks {
            ctx.out.frame(Body::NvmeDisk(disk));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One `nvme.disk` per namespace; the boot-disk mark reads each namespace's LBA 1.
fn describe(
    controller: &mut Controller,
    hw: &mut Hw,
    function: &PciFunctionInfo,
    boot: Option<drivers::gpt::Guid>,
) -> alloc::vec::Vec<NvmeDisk> {
    let (model, serial) = controller
        .identity
        .as_ref()
        .map(|id| (id.model.clone(), id.serial.clone()))
        .unwrap_or_default();
    let namespaces = controller.namespaces.clone();
    namespaces
        .iter()
        .map(|ns| {
            let is_boot = match boot {
                Some(guid) if ns.blocks > 1 => {
                    controller.gpt_disk_guid(hw, ns.nsid).ok().flatten() == Some(guid)
                }
                _ => false,
            };
            NvmeDisk {
                bus: function.bdf.bus,
                device: function.bdf.device,
                function: function.bdf.function,
                vendor_id: function.vendor_id,
                device_id: function.device_id,
                model: model.clone(),
                serial: serial.clone(),
                nsid: ns.nsid,
                blocks: ns.blocks,
                block_size: ns.block_size,
                metadata_size: ns.metadata_size,
                lba_format: ns.lba_format,
                capacity_bytes: ns.capacity_bytes(),
                gce_device_name: ns.gce_device_name.clone(),
                boot_disk: is_boot,
            }
        })
        .collect()
}

/// The controller line and one line per namespace.
pub fn text(controller: &Controller, function: &PciFunctionInfo, disks: &[NvmeDisk]) -> String {
    let mut out = String::new();
    let (model, serial) = controller
        .identity
        .as_ref()
        .map(|id| (id.model.as_str(), id.serial.as_str()))
        .unwrap_or(("?", "?"));
    let _ = writeln!(
        out,
        "{} {:04x}:{:04x} \"{model}\" serial \"{serial}\": {} namespace{}",
        function.bdf,
        function.vendor_id,
        function.device_id,
        disks.len(),
        if disks.len() == 1 { "" } else { "s" }
    );
    for d in disks {
        let metadata = if d.metadata_size == 0 {
            String::from("no metadata")
        } else {
            alloc::format!("{} B metadata", d.metadata_size)
        };
        let _ = writeln!(
            out,
            "  ns {}: {} ({} blocks), LBA format {}: {} B blocks, {metadata}{}{}",
            d.nsid,
            capacity(d.capacity_bytes),
            d.blocks,
            d.lba_format,
            d.block_size,
            if d.gce_device_name.is_empty() {
                String::new()
            } else {
                alloc::format!(", GCE disk \"{}\"", d.gce_device_name)
            },
            if d.boot_disk { ", boot disk" } else { "" }
        );
    }
    out
}
