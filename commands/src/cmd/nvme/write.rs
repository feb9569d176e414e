//! `nvme write` and `nvme verify`: a byte pattern or a seeded stream (drivers::pattern) out
//! to a namespace and back. Parsing, one driver call, and pure renderers for text and frames.

use alloc::string::String;
use core::fmt::Write;

use drivers::digest::{DigestValue, Hasher};
use drivers::gpt::{self, Guid};
use drivers::nvme::{TransferSummary, WriteOptions};
use drivers::pattern::{Mismatch, Pattern, Verifier};
use drivers::platform::Bdf;
use evidence::Body;

use super::{namespace_arg, range_args, target, wanted_bdf};
use crate::args::{parse_number, Args};
use crate::nvme_wait::{error_after, read_timeout_us, report_releases};
use crate::rate::throughput;
use crate::table::{CmdError, Ctx};

/// `--pattern BYTE` or `--seed N`: exactly one.
pub fn pattern_arg(args: &Args) -> Result<Pattern, CmdError> {
    match (args.value("--pattern"), args.value("--seed")) {
        (Some(_), Some(_)) => Err(CmdError::new(
            "bad-argument",
            "--pattern and --seed contradict each other; use one",
        )),
        (None, None) => Err(CmdError::new(
            "bad-argument",
            "say what to write: --pattern BYTE (0-255) or --seed N",
        )),
        (Some(text), None) => {
            let value = parse_number("--pattern", text)?;
            u8::try_from(value).map(Pattern::Byte).map_err(|_| {
                CmdError::new(
                    "bad-argument",
                    alloc::format!("--pattern {value} is not a byte (0-255)"),
                )
            })
        }
        (None, Some(text)) => Ok(Pattern::Seeded(parse_number("--seed", text)?)),
    }
}

/// The pattern's name and value as frames carry them.
fn pattern_fields(pattern: Pattern) -> (String, u64) {
    match pattern {
        Pattern::Byte(value) => ("byte".into(), value as u64),
        Pattern::Seeded(seed) => ("seed".into(), seed),
    }
}

/// The boot disk's GPT GUID the image put on the command line, if any.
pub fn boot_disk(cmdline: &str) -> Option<Guid> {
    gpt::boot_disk_from_cmdline(cmdline)
}

pub(super) fn run_write(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let (lba, count) = range_args(args)?;
    let pattern = pattern_arg(args)?;
    let digest_kind = crate::digest::requested(args)?;
    let timeout_us = read_timeout_us(args)?;
    let fua = args.flag("--fua");
    let forced = args.flag("--force-boot-disk");
    let boot = boot_disk(&ctx.info.cmdline);
    let index = target(ctx, wanted_bdf(args, None)?)?;
    let hw = &mut *ctx.hw;
    let controller = &mut ctx.devices.nvme.controllers[index];
    let nsid = namespace_arg(controller, args)?;
    let bdf = controller.bdf;
    let block_size = controller
        .namespace(nsid)
        .map_or(0, |n| n.block_size as u64);
    let mut hasher = Hasher::new(digest_kind, hw.cpu);
    let mut source = |at: u64, buf: &mut [u8]| {
        pattern.fill(at * block_size, buf);
        hasher.update(buf);
    };
    let options = WriteOptions {
        fua,
        protect: if forced { None } else { boot },
    };
    controller.set_io_timeout_us(timeout_us);
    let result = controller.write(hw, nsid, lba, count, options, &mut source);
    report_releases(&mut ctx.out, &controller.take_releases());
    let summary = result.map_err(|err| error_after(err, controller.state()))?;
    let digest = hasher.finish();
    let done = Written {
        bdf,
        nsid,
        lba,
        count,
        pattern,
        fua,
        forced,
        summary,
    };
    ctx.out.print(&write_text(&done, &digest));
    if boot.is_none() {
        ctx.out.print(
            "note: no bootdisk= GUID on the command line, so the boot disk is not recognised\n",
        );
    }
    ctx.out.frame(write_frame(&done, &digest));
    Ok(())
}

/// A finished write, for the renderers.
pub struct Written {
    pub bdf: Bdf,
    pub nsid: u32,
    pub lba: u64,
    pub count: u64,
    pub pattern: Pattern,
    pub fua: bool,
    pub forced: bool,
    pub summary: TransferSummary,
}

pub fn write_text(w: &Written, digest: &DigestValue) -> String {
    let s = &w.summary;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "wrote {} ns {} lba {:#x} count {} ({}{}{}): {} bytes in {}.{:03} ms ({} commands of up to {} KiB, {} in flight), {}",
        w.bdf,
        w.nsid,
        w.lba,
        w.count,
        w.pattern,
        if w.fua { ", FUA" } else { "" },
        if w.forced { ", boot-disk guard overridden" } else { "" },
        s.bytes,
        s.elapsed_us / 1000,
        s.elapsed_us % 1000,
        s.commands,
        s.chunk_bytes / 1024,
        s.depth,
        throughput(s.bytes, s.elapsed_us)
    );
    let _ = writeln!(text, "{} of the data written", crate::digest::text(digest));
    text
}

pub fn write_frame(w: &Written, digest: &DigestValue) -> Body {
    let (pattern, pattern_value) = pattern_fields(w.pattern);
    let (sha256, digest, digest_engine, crc32) = crate::digest::frame_fields(digest);
    Body::NvmeWrite(evidence::NvmeWrite {
        bus: w.bdf.bus,
        device: w.bdf.device,
        function: w.bdf.function,
        nsid: w.nsid,
        lba: w.lba,
        count: w.count,
        bytes: w.summary.bytes,
        elapsed_us: w.summary.elapsed_us,
        commands: w.summary.commands,
        pattern,
        pattern_value,
        fua: w.fua,
        digest,
        digest_engine,
        sha256,
        crc32,
        forced_boot_disk: w.forced,
    })
}

pub(super) fn run_verify(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let (lba, count) = range_args(args)?;
    let pattern = pattern_arg(args)?;
    let timeout_us = read_timeout_us(args)?;
    let index = target(ctx, wanted_bdf(args, None)?)?;
    let hw = &mut *ctx.hw;
    let controller = &mut ctx.devices.nvme.controllers[index];
    let nsid = namespace_arg(controller, args)?;
    let bdf = controller.bdf;
    let block_size = controller.namespace(nsid).map_or(512, |n| n.block_size);
    let mut verifier = Verifier::new(pattern, block_size);
    controller.set_io_timeout_us(timeout_us);
    let result = controller.read(hw, nsid, lba, count, &mut |at, data| {
        verifier.feed(at, data)
    });
    report_releases(&mut ctx.out, &controller.take_releases());
    let summary = result.map_err(|err| error_after(err, controller.state()))?;
    let checked = Checked {
        bdf,
        nsid,
        lba,
        count,
        pattern,
        elapsed_us: summary.elapsed_us,
        mismatch: verifier.first_mismatch(),
    };
    ctx.out.print(&verify_text(&checked));
    ctx.out.frame(verify_frame(&checked));
    match checked.mismatch {
        None => Ok(()),
        Some(m) => Err(CmdError::new(
            "nvme-verify-mismatch",
            alloc::format!(
                "lba {:#x} byte {} differs from the {}: expected {:02x}, found {:02x}",
                m.lba,
                m.offset,
                pattern,
                m.expected,
                m.found
            ),
        )),
    }
}

/// A finished verify, for the renderers.
pub struct Checked {
    pub bdf: Bdf,
    pub nsid: u32,
    pub lba: u64,
    pub count: u64,
    pub pattern: Pattern,
    pub elapsed_us: u64,
    pub mismatch: Option<Mismatch>,
}

pub fn verify_text(c: &Checked) -> String {
    let head = alloc::format!(
        "verify {} ns {} lba {:#x} count {} against the {} ({}.{:03} ms)",
        c.bdf,
        c.nsid,
        c.lba,
        c.count,
        c.pattern,
        c.elapsed_us / 1000,
        c.elapsed_us % 1000
    );
    match c.mismatch {
        None => alloc::format!("{head}: ok, every byte matches\n"),
        Some(m) => alloc::format!(
            "{head}: MISMATCH, first at lba {:#x} byte {} (expected {:02x}, found {:02x})\n",
            m.lba,
            m.offset,
            m.expected,
            m.found
        ),
    }
}

pub fn verify_frame(c: &Checked) -> Body {
    let (pattern, pattern_value) = pattern_fields(c.pattern);
    let m = c.mismatch.unwrap_or(Mismatch {
        lba: 0,
        offset: 0,
        expected: 0,
        found: 0,
    });
    Body::NvmeVerify(evidence::NvmeVerify {
        bus: c.bdf.bus,
        device: c.bdf.device,
        function: c.bdf.function,
        nsid: c.nsid,
        lba: c.lba,
        count: c.count,
        pattern,
        pattern_value,
        elapsed_us: c.elapsed_us,
        ok: c.mismatch.is_none(),
        mismatch_lba: m.lba,
        mismatch_offset: m.offset,
        expected: m.expected,
        found: m.found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::CommandSpec;

    fn spec(name: &str) -> &'static CommandSpec {
        super::super::COMMANDS
            .iter()
            .find(|c| c.name == name)
            .unwrap()
    }

    #[test]
    fn pattern_or_seed_exactly_once() {
        let s = spec("nvme write");
        let parse = |words: &[&str]| pattern_arg(&Args::parse(s, words).unwrap());
        assert_eq!(
            parse(&["0", "--pattern", "0xa5"]).unwrap(),
            Pattern::Byte(0xa5)
        );
        assert_eq!(parse(&["0", "--seed", "7"]).unwrap(), Pattern::Seeded(7));
        assert_eq!(parse(&["0"]).unwrap_err().code, "bad-argument");
        assert_eq!(
            parse(&["0", "--pattern", "256"]).unwrap_err().code,
            "bad-argument"
        );
        let both = parse(&["0", "--pattern", "1", "--seed", "2"]).unwrap_err();
        assert!(both.message.contains("contradict"));
    }

    #[test]
    fn verify_text_and_frame_name_the_first_mismatch() {
        let c = Checked {
            bdf: Bdf::new(0, 5, 0),
            nsid: 2,
            lba: 16,
            count: 8,
            pattern: Pattern::Seeded(9),
            elapsed_us: 1500,
            mismatch: Some(Mismatch {
                lba: 19,
                offset: 100,
                expected: 0x12,
                found: 0x34,
            }),
        };
        let text = verify_text(&c);
        assert!(
            text.contains("MISMATCH, first at lba 0x13 byte 100"),
            "{text}"
        );
        let Body::NvmeVerify(f) = verify_frame(&c) else {
            panic!()
        };
        assert_eq!(
            (f.ok, f.mismatch_lba, f.mismatch_offset, f.device),
            (false, 19, 100, 5)
        );
        assert_eq!((f.pattern.as_str(), f.pattern_value), ("seed", 9));
        let ok = Checked {
            mismatch: None,
            ..c
        };
        assert!(verify_text(&ok).contains(": ok"));
    }

    #[test]
    fn boot_disk_comes_from_the_command_line() {
        assert!(boot_disk("dma=64M").is_none());
        let g = boot_disk("dma=64M bootdisk=C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(g.text(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    }
}
