//! `nvme read`: blocks through the bounce pool, with a digest and the throughput.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use drivers::digest::Hasher;
use evidence::Body;

use super::{namespace_arg, range_args, target, wanted_bdf};
use crate::args::Args;
use crate::core_cmds::hexdump;
use crate::nvme_wait::{error_after, read_timeout_us, report_releases};
use crate::rate::throughput;
use crate::table::{CmdError, Ctx};

pub(super) fn run(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let (lba, count) = range_args(args)?;
    let dump = args.flag("--dump");
    let digest_kind = crate::digest::requested(args)?;
    let timeout_us = read_timeout_us(args)?;
    let index = target(ctx, wanted_bdf(args, None)?)?;
    let hw = &mut *ctx.hw;
    let controller = &mut ctx.devices.nvme.controllers[index];
    let nsid = namespace_arg(controller, args)?;
    let bdf = controller.bdf;
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
        bus: bdf.bus,
        device: bdf.device,
        function: bdf.function,
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
