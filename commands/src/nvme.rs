//! `nvme identify`, `nvme read` and the NVMe half of `teardown` (issue 4).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::digest::Hasher;
use drivers::nvme::{Controller, NvmeError, State, NVME_CLASS_CODE};
use drivers::pci;
use drivers::platform::Bdf;
use evidence::Body;

use crate::args::{parse_number, Args};
use crate::core_cmds::{hexdump, report_teardown_step};
use crate::nvme_wait::{error_after, read_timeout_us, report_releases, READ_TIMEOUT_HELP};
use crate::pci::{human_size, parse_bdf};
use crate::rate::throughput;
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "nvme identify",
        usage: "nvme identify [bdf]",
        summary: "bind the NVMe controller and show controller and namespaces",
        details: "Binds the controller on first use (reset, admin queue, enable, one I/O queue pair; all DMA \
                  from the bounce pool), then runs Identify Controller, the active namespace list and Identify \
                  Namespace. Prints vendor, subsystem vendor, serial, model, firmware, version, MDTS, and per \
                  namespace its blocks, block size, capacity and (on GCE) the disk name. The bdf may be omitted \
                  when there is exactly one NVMe function. Emits nvme.identify and nvme.namespace frames.",
        examples: &["nvme identify", "nvme identify 03:00.0"],
        min_args: 0,
        max_args: 1,
        flags: &[],
        run: identify,
    },
    CommandSpec {
        name: "nvme read",
        usage: "nvme read <lba> [count] [--ns N] [--dump] [--digest sha256|crc32|none] [--no-digest] [--timeout MS]",
        summary: "read blocks through the bounce pool; SHA-256 or CRC-32, and throughput",
        details: "Reads count blocks (default 1) from lba of namespace N (default: the first active one), \
                  split by MDTS with several commands in flight. Prints lba, count, bytes, elapsed time, \
                  throughput, the digest of the data and its first 16 bytes; --dump adds a hexdump of the \
                  first block. --digest picks the digest: sha256 (default; SHA-NI where the CPU has it, \
                  else portable code, and the line says which), crc32 (the IEEE CRC-32 U-Boot's crc32 and \
                  zlib print), none (pure throughput; --no-digest is the same). Completed chunks are \
                  hashed while later commands are still at the device. Each command may take --timeout MS \
                  (default 30000, Linux's default; Persistent Disk can stall far longer, so raise it there). \
                  Ctrl-C stops a read: issued commands drain first. After a timeout, or a drain that does \
                  not finish within 1 s, the controller is reset and its queues re-created, so the read can \
                  be retried without 'teardown nvme'. Emits an nvme.read frame.",
        examples: &["nvme read 0", "nvme read 0 8 --dump", "nvme read 0x100 2048 --ns 2", "nvme read 0 131072 --digest crc32", "nvme read 0 131072 --no-digest", "nvme read 0 8 --timeout 120000"],
        min_args: 1,
        max_args: 2,
        flags: &[
            Flag { name: "--ns", takes_value: true, help: "namespace id" },
            Flag { name: "--dump", takes_value: false, help: "hexdump the first block" },
            Flag { name: "--digest", takes_value: true, help: "sha256 (default), crc32 or none" },
            Flag { name: "--no-digest", takes_value: false, help: "same as --digest none" },
            Flag { name: "--timeout", takes_value: true, help: READ_TIMEOUT_HELP },
        ],
        run: read,
    },
];

/// The bound NVMe controller, if any.
#[derive(Default)]
pub struct NvmeState {
    controller: Option<Controller>,
}

impl NvmeState {
    /// The bound controller, for other command groups (`irq test`).
    pub(crate) fn controller_mut(&mut self) -> Option<&mut Controller> {
        self.controller.as_mut()
    }
}

/// A failed bind: the driver already undid it (its teardown ran), so nothing is bound.
fn bind_error(err: NvmeError) -> CmdError {
    CmdError::new(err.code(), alloc::format!("{err}; nothing is bound"))
}

/// The NVMe functions on every reachable bus.
fn nvme_functions(ctx: &Ctx) -> Vec<Bdf> {
    pci::enumerate(ctx.hw.config)
        .into_iter()
        .filter(|f| f.class_code == NVME_CLASS_CODE)
        .map(|f| f.bdf)
        .collect()
}

/// The bound controller, binding `wanted` (or the only NVMe function) on first use.
fn bound<'c>(ctx: &'c mut Ctx, wanted: Option<Bdf>) -> Result<&'c mut Controller, CmdError> {
    if let Some(current) = &ctx.devices.nvme.controller {
        if wanted.is_some_and(|bdf| bdf != current.bdf) {
            return Err(CmdError::new(
                "nvme-busy",
                alloc::format!(
                    "controller {} is bound; run 'teardown nvme' before using another",
                    current.bdf
                ),
            ));
        }
    } else {
        let bdf = match wanted {
            Some(bdf) => bdf,
            None => {
                let found = nvme_functions(ctx);
                match found.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(CmdError::new(
                            "no-controller",
                            "no NVMe controller found (class 010802) on any bus",
                        ))
                    }
                    many => {
                        let list: Vec<String> =
                            many.iter().map(|b| alloc::format!("{b}")).collect();
                        return Err(CmdError::new(
                            "ambiguous-controller",
                            alloc::format!(
                                "{} NVMe controllers ({}); name one, e.g. 'nvme identify {}'",
                                many.len(),
                                list.join(", "),
                                list[0]
                            ),
                        ));
                    }
                }
            }
        };
        let mut controller = Controller::bind(ctx.hw, bdf).map_err(bind_error)?;
        report_releases(&mut ctx.out, &controller.take_releases());
        let _ = writeln!(
            ctx.out,
            "bound NVMe controller {bdf}: BAR0 {:#x} ({}) at window {:#x}, I/O queue ready",
            controller.bar.address,
            human_size(controller.bar.size),
            controller.window
        );
        ctx.devices.nvme.controller = Some(controller);
    }
    ctx.devices
        .nvme
        .controller
        .as_mut()
        .ok_or_else(|| CmdError::new("no-controller", "no NVMe controller bound"))
}

fn identify(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let wanted = args.get(0).map(parse_bdf).transpose()?;
    let was_bound = ctx.devices.nvme.controller.is_some();
    bound(ctx, wanted)?;
    let hw = &mut *ctx.hw;
    let controller = ctx
        .devices
        .nvme
        .controller
        .as_mut()
        .ok_or_else(|| CmdError::new("no-controller", "no NVMe controller bound"))?;
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
fn capacity(bytes: u64) -> String {
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

fn read(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let lba = parse_number("lba", args.get(0).unwrap_or(""))?;
    let count = args.get(1).map_or(Ok(1), |t| parse_number("count", t))?;
    if count == 0 {
        return Err(CmdError::new("bad-argument", "count must be at least 1"));
    }
    let ns_arg = args
        .value("--ns")
        .map(|t| parse_number("--ns", t))
        .transpose()?;
    let dump = args.flag("--dump");
    let digest_kind = crate::digest::requested(args)?;
    let timeout_us = read_timeout_us(args)?;
    bound(ctx, None)?;
    let hw = &mut *ctx.hw;
    let controller = ctx
        .devices
        .nvme
        .controller
        .as_mut()
        .ok_or_else(|| CmdError::new("no-controller", "no NVMe controller bound"))?;
    let nsid = match ns_arg {
        Some(n) => u32::try_from(n).map_err(|_| {
            CmdError::new(
                "bad-number",
                alloc::format!("--ns {n} is not a namespace id"),
            )
        })?,
        None => controller
            .namespaces
            .first()
            .map(|n| n.nsid)
            .ok_or_else(|| {
                CmdError::new(
                    "nvme-no-namespace",
                    "the controller has no active namespace",
                )
            })?,
    };
    let block_size = controller
        .namespace(nsid)
        .map_or(0, |n| n.block_size as usize);
    let mut hasher = Hasher::new(digest_kind, hw.cpu);
    let mut first_block: Vec<u8> = Vec::new();
    let mut sink = |_lba: u64, data: &[u8]| {
        hasher.update(data);
        if first_block.len() < block_size.max(16) {
            let take = (block_size.max(16) - first_block.len()).min(data.len());
            first_block.extend_from_slice(&data[..take]);
        }
    };
    controller.set_io_timeout_us(timeout_us);
    let result = controller.read(hw, nsid, lba, count, &mut sink);
    report_releases(&mut ctx.out, &controller.take_releases());
    let summary = result.map_err(|err| error_after(err, controller.state()))?;
    let digest = hasher.finish();
    let mut first_bytes = [0u8; 16];
    let n = first_block.len().min(16);
    first_bytes[..n].copy_from_slice(&first_block[..n]);
    let _ = writeln!(
        ctx.out,
        "read ns {nsid} lba {lba:#x} count {count}: {} bytes in {}.{:03} ms ({} commands, {} in flight), {}",
        summary.bytes,
        summary.elapsed_us / 1000,
        summary.elapsed_us % 1000,
        summary.commands,
        summary.depth,
        throughput(summary.bytes, summary.elapsed_us)
    );
    let _ = writeln!(ctx.out, "{}", crate::digest::text(&digest));
    let mut first = String::new();
    for byte in first_bytes {
        let _ = write!(first, "{byte:02x} ");
    }
    let _ = writeln!(ctx.out, "first 16 bytes: {}", first.trim_end());
    if summary.metadata_size != 0 {
        let shown = (summary.metadata_size as usize).min(summary.first_metadata.len());
        let _ = writeln!(
            ctx.out,
            "metadata: {} bytes a block, separate (MPTR in the bounce pool); lba {lba:#x}: {}",
            summary.metadata_size,
            hex_bytes(&summary.first_metadata[..shown])
        );
    }
    if dump {
        let base = lba.saturating_mul(block_size as u64);
        hexdump(ctx, base, &first_block);
    }
    let (sha256, digest, digest_engine, crc32) = crate::digest::frame_fields(&digest);
    ctx.out.frame(Body::NvmeRead(evidence::NvmeRead {
        nsid,
        lba,
        count,
        bytes: summary.bytes,
        elapsed_us: summary.elapsed_us,
        sha256,
        first_bytes,
        digest,
        digest_engine,
        crc32,
    }));
    Ok(())
}

/// "01 02 ab" for people.
fn hex_bytes(bytes: &[u8]) -> String {
    let mut text = String::new();
    for byte in bytes {
        let _ = write!(text, "{byte:02x} ");
    }
    text.trim_end().into()
}

/// Tears the controller down if one is bound; Ok when nothing was bound.
pub fn teardown(ctx: &mut Ctx) -> Result<(), CmdError> {
    let Some(controller) = ctx.devices.nvme.controller.take() else {
        ctx.out.print("nvme: nothing bound\n");
        return Ok(());
    };
    let bdf = controller.bdf;
    if controller.state() == State::Failed {
        let _ = writeln!(
            ctx.out,
            "nvme {bdf}: failed ({}); resetting",
            controller.failure().unwrap_or("unknown")
        );
    }
    let (steps, releases) = controller.teardown_reporting(ctx.hw);
    let mut failed = Vec::new();
    for step in steps {
        report_teardown_step(ctx, "nvme", bdf, step.step, step.ok, &step.detail);
        if !step.ok {
            failed.push(step.step);
        }
    }
    report_releases(&mut ctx.out, &releases);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CmdError::new(
            "teardown-incomplete",
            alloc::format!("nvme {bdf} teardown: {} failed", failed.join(", ")),
        ))
    }
}
