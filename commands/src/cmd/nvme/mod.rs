//! The `nvme` commands (issues 4 and 23) and the NVMe half of `teardown`: the command table
//! here, one file per command beside it (`identify`, `list`, `read`, `write`: write and
//! verify, `flush`), and the bound controllers: several can be bound at once (a GCE VM with
//! Local SSD has one controller per disk beside the Persistent Disk's), each command picks
//! one with `--bdf` (or the positional of `nvme identify`), and `teardown nvme` tears them
//! all down.

mod flush;
mod identify;
mod list;
mod read;
mod write;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use drivers::nvme::{Controller, NvmeError, State, NVME_CLASS_CODE};
use drivers::pci;
use drivers::platform::Bdf;

use crate::args::{parse_bdf, parse_number, Args};
use crate::core_cmds::report_teardown_step;
use crate::nvme_wait::{report_releases, READ_TIMEOUT_HELP};
use crate::pci::human_size;
use crate::table::{CmdError, CommandSpec, Ctx, Flag};

const BDF_FLAG: Flag = Flag {
    name: "--bdf",
    takes_value: true,
    help: "the controller (bb:dd.f); needed when several are bound or present",
};
const NS_FLAG: Flag = Flag {
    name: "--ns",
    takes_value: true,
    help: "namespace id (default: the first active one)",
};
const TIMEOUT_FLAG: Flag = Flag {
    name: "--timeout",
    takes_value: true,
    help: READ_TIMEOUT_HELP,
};
const PATTERN_FLAG: Flag = Flag {
    name: "--pattern",
    takes_value: true,
    help: "fill every byte with BYTE (0-255)",
};
const SEED_FLAG: Flag = Flag {
    name: "--seed",
    takes_value: true,
    help: "the SplitMix64 stream from seed N, addressed by namespace byte offset",
};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "nvme identify",
        usage: "nvme identify [bdf] [--bdf BDF]",
        summary: "bind an NVMe controller and show controller and namespaces",
        details: "Binds the controller on first use (reset, admin queue, enable, one I/O queue pair; all DMA \
                  from the bounce pool), then runs Identify Controller, the active namespace list and Identify \
                  Namespace. Prints vendor, subsystem vendor, serial, model, firmware, version, MDTS, and per \
                  namespace its blocks, block size, capacity and (on GCE) the disk name. The bdf may be omitted \
                  when there is exactly one NVMe function (or one bound). Several controllers may be bound at \
                  once. Emits nvme.identify and nvme.namespace frames.",
        examples: &["nvme identify", "nvme identify 03:00.0"],
        min_args: 0,
        max_args: 1,
        flags: &[BDF_FLAG],
        run: identify::run,
    },
    CommandSpec {
        name: "nvme list",
        usage: "nvme list",
        summary: "every NVMe function, bound, with its namespaces, formats and GCE disk names",
        details: "Finds every NVMe function (class 010802: Google's 1ae0:001f, QEMU's 1b36:0010, any other), \
                  binds each one not yet bound, and prints per controller its model and serial and per \
                  namespace the size, the LBA format in use (block size and separate metadata), the GCE \
                  device name where Identify Namespace carries it, and 'boot disk' where LBA 1 holds the \
                  GPT disk GUID the image recorded. A function that fails to bind is reported and the rest \
                  are still listed. Emits one nvme.disk frame per namespace.",
        examples: &["nvme list"],
        min_args: 0,
        max_args: 0,
        flags: &[],
        run: list::run,
    },
    CommandSpec {
        name: "nvme read",
        usage: "nvme read <lba> [count] [--ns N] [--bdf BDF] [--dump] [--digest sha256|crc32|none] [--no-digest] [--timeout MS]",
        summary: "read blocks through the bounce pool; SHA-256 or CRC-32, and throughput",
        details: "Reads count blocks (default 1) from lba of namespace N (default: the first active one), \
                  split by MDTS and by what the bounce pool holds, with several commands in flight. Prints \
                  lba, count, bytes, elapsed time, throughput, the digest of the data and its first 16 bytes; \
                  --dump adds a hexdump of the first block. --digest picks the digest: sha256 (default; \
                  SHA-NI where the CPU has it, else portable code, and the line says which), crc32 (the IEEE \
                  CRC-32 U-Boot's crc32 and zlib print), none (pure throughput; --no-digest is the same). \
                  Completed chunks are hashed while later commands are still at the device. Each command \
                  may take --timeout MS (default 30000, Linux's default; Persistent Disk can stall far \
                  longer, so raise it there). Ctrl-C stops a read: issued commands drain first. After a \
                  timeout, or a drain that does not finish within 1 s, the controller is reset and its \
                  queues re-created, so the read can be retried without 'teardown nvme'. Emits an \
                  nvme.read frame.",
        examples: &["nvme read 0", "nvme read 0 8 --dump", "nvme read 0x100 2048 --ns 2", "nvme read 0 131072 --digest crc32", "nvme read 0 131072 --no-digest", "nvme read 0 8 --timeout 120000", "nvme read 0 8 --bdf 00:05.0"],
        min_args: 1,
        max_args: 2,
        flags: &[
            NS_FLAG,
            BDF_FLAG,
            Flag { name: "--dump", takes_value: false, help: "hexdump the first block" },
            Flag { name: "--digest", takes_value: true, help: "sha256 (default), crc32 or none" },
            Flag { name: "--no-digest", takes_value: false, help: "same as --digest none" },
            TIMEOUT_FLAG,
        ],
        run: read::run,
    },
    CommandSpec {
        name: "nvme write",
        usage: "nvme write <lba> [count] (--pattern BYTE | --seed N) [--ns N] [--bdf BDF] [--fua] [--force-boot-disk] [--digest sha256|crc32|none] [--no-digest] [--timeout MS]",
        summary: "write a byte pattern or a seeded stream through the bounce pool; digest and throughput",
        details: "Writes count blocks (default 1) from lba of namespace N: every byte BYTE (--pattern), or the \
                  SplitMix64 stream from seed N (--seed; byte k of the namespace is byte k mod 8 of word k/8, \
                  so any sub-range verifies and the host can recompute it). Split by MDTS and by what the \
                  bounce pool holds, several commands in flight; each buffer is filled just before its WRITE \
                  is issued. --fua sets Force Unit Access on every WRITE. Prints bytes, commands, \
                  throughput and the digest of what was written (sha256 default, crc32, none). The disk \
                  the monitor booted from (LBA 1 holds the GPT disk GUID the image put on the command line \
                  as bootdisk=) is refused with boot-disk unless --force-boot-disk. A write-protected \
                  namespace or a device write error is named from the NVMe status. Ctrl-C and --timeout as \
                  for nvme read. Emits an nvme.write frame.",
        examples: &["nvme write 0 8 --pattern 0xa5", "nvme write 2048 65536 --seed 7 --fua", "nvme write 0 1 --seed 1 --ns 2 --bdf 00:05.0"],
        min_args: 1,
        max_args: 2,
        flags: &[
            PATTERN_FLAG,
            SEED_FLAG,
            NS_FLAG,
            BDF_FLAG,
            Flag { name: "--fua", takes_value: false, help: "Force Unit Access on every WRITE" },
            Flag { name: "--force-boot-disk", takes_value: false, help: "write even to the disk the monitor booted from" },
            Flag { name: "--digest", takes_value: true, help: "sha256 (default), crc32 or none" },
            Flag { name: "--no-digest", takes_value: false, help: "same as --digest none" },
            TIMEOUT_FLAG,
        ],
        run: write::run_write,
    },
    CommandSpec {
        name: "nvme verify",
        usage: "nvme verify <lba> [count] (--pattern BYTE | --seed N) [--ns N] [--bdf BDF] [--timeout MS]",
        summary: "read blocks back and compare with a pattern or seeded stream: ok, or the first mismatch",
        details: "Reads count blocks (default 1) from lba of namespace N and compares them, while they sit in \
                  the bounce pool, with what 'nvme write' with the same --pattern or --seed wrote there. \
                  Prints ok, or the first mismatching LBA, the byte offset in that block, and the expected \
                  and found values, and then fails with nvme-verify-mismatch. Emits an nvme.verify frame.",
        examples: &["nvme verify 0 8 --pattern 0xa5", "nvme verify 2048 65536 --seed 7"],
        min_args: 1,
        max_args: 2,
        flags: &[PATTERN_FLAG, SEED_FLAG, NS_FLAG, BDF_FLAG, TIMEOUT_FLAG],
        run: write::run_verify,
    },
    CommandSpec {
        name: "nvme flush",
        usage: "nvme flush [--ns N] [--bdf BDF] [--timeout MS]",
        summary: "FLUSH: what was written is on non-volatile media",
        details: "Sends FLUSH for namespace N, or for every active namespace of the controller when --ns is \
                  not given, and waits for each completion (--timeout as for nvme read). Emits one nvme.flush \
                  frame per namespace.",
        examples: &["nvme flush", "nvme flush --ns 2 --bdf 00:05.0"],
        min_args: 0,
        max_args: 0,
        flags: &[NS_FLAG, BDF_FLAG, TIMEOUT_FLAG],
        run: flush::run,
    },
];

/// The bound NVMe controllers, in bind order.
#[derive(Default)]
pub struct NvmeState {
    controllers: Vec<Controller>,
}

impl NvmeState {
    /// The first bound controller, for other command groups (`irq test`, `msix`).
    pub(crate) fn controller_mut(&mut self) -> Option<&mut Controller> {
        self.controllers.first_mut()
    }

    /// The controller bound at `bdf`.
    pub(crate) fn controller_at_mut(&mut self, bdf: Bdf) -> Option<&mut Controller> {
        self.controllers.iter_mut().find(|c| c.bdf == bdf)
    }

    fn index_of(&self, bdf: Bdf) -> Option<usize> {
        self.controllers.iter().position(|c| c.bdf == bdf)
    }
}

/// A failed bind: the driver already undid it (its teardown ran), so nothing is bound.
fn bind_error(bdf: Bdf, err: NvmeError) -> CmdError {
    CmdError::new(
        err.code(),
        alloc::format!("{bdf}: {err}; nothing is bound there"),
    )
}

/// The NVMe functions on every reachable bus.
fn nvme_functions(ctx: &Ctx) -> Vec<pci::PciFunctionInfo> {
    pci::enumerate(ctx.hw.config)
        .into_iter()
        .filter(|f| f.class_code == NVME_CLASS_CODE)
        .collect()
}

/// `--bdf BDF`, or the positional at `index` (identify), or None.
fn wanted_bdf(args: &Args, positional: Option<usize>) -> Result<Option<Bdf>, CmdError> {
    let flag = args.value("--bdf").map(parse_bdf).transpose()?;
    let pos = positional
        .and_then(|i| args.get(i))
        .map(parse_bdf)
        .transpose()?;
    match (flag, pos) {
        (Some(a), Some(b)) if a != b => Err(CmdError::new(
            "bad-argument",
            alloc::format!("two controllers named: {b} and --bdf {a}"),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// Binds `bdf` and keeps it; prints the bind line.
fn bind(ctx: &mut Ctx, bdf: Bdf) -> Result<usize, CmdError> {
    let mut controller = Controller::bind(ctx.hw, bdf).map_err(|err| bind_error(bdf, err))?;
    report_releases(&mut ctx.out, &controller.take_releases());
    let _ = writeln!(
        ctx.out,
        "bound NVMe controller {bdf}: BAR0 {:#x} ({}) at window {:#x}, I/O queue ready",
        controller.bar.address,
        human_size(controller.bar.size),
        controller.window
    );
    ctx.devices.nvme.controllers.push(controller);
    Ok(ctx.devices.nvme.controllers.len() - 1)
}

/// The index of the controller a command works on: `wanted` (bound on first use), else the
/// only bound controller, else the only NVMe function (bound now).
fn target(ctx: &mut Ctx, wanted: Option<Bdf>) -> Result<usize, CmdError> {
    if let Some(bdf) = wanted {
        return match ctx.devices.nvme.index_of(bdf) {
            Some(index) => Ok(index),
            None => bind(ctx, bdf),
        };
    }
    let bound: Vec<Bdf> = ctx.devices.nvme.controllers.iter().map(|c| c.bdf).collect();
    match bound.as_slice() {
        [_] => return Ok(0),
        [] => {}
        many => return Err(ambiguous(many, "bound")),
    }
    let found: Vec<Bdf> = nvme_functions(ctx).iter().map(|f| f.bdf).collect();
    match found.as_slice() {
        [one] => bind(ctx, *one),
        [] => Err(CmdError::new(
            "no-controller",
            "no NVMe controller found (class 010802) on any bus",
        )),
        many => Err(ambiguous(many, "present")),
    }
}

fn ambiguous(many: &[Bdf], how: &str) -> CmdError {
    let list: Vec<String> = many.iter().map(|b| alloc::format!("{b}")).collect();
    CmdError::new(
        "ambiguous-controller",
        alloc::format!(
            "{} NVMe controllers {how} ({}); name one with --bdf, e.g. --bdf {}",
            many.len(),
            list.join(", "),
            list[0]
        ),
    )
}

/// `--ns N`, or the controller's first active namespace.
fn namespace_arg(controller: &Controller, args: &Args) -> Result<u32, CmdError> {
    match args.value("--ns") {
        Some(text) => {
            let n = parse_number("--ns", text)?;
            u32::try_from(n).map_err(|_| {
                CmdError::new(
                    "bad-number",
                    alloc::format!("--ns {n} is not a namespace id"),
                )
            })
        }
        None => controller
            .namespaces
            .first()
            .map(|n| n.nsid)
            .ok_or_else(|| {
                CmdError::new(
                    "nvme-no-namespace",
                    "the controller has no active namespace",
                )
            }),
    }
}

/// `<lba> [count]` of read, write and verify.
fn range_args(args: &Args) -> Result<(u64, u64), CmdError> {
    let lba = parse_number("lba", args.get(0).unwrap_or(""))?;
    let count = args.get(1).map_or(Ok(1), |t| parse_number("count", t))?;
    if count == 0 {
        return Err(CmdError::new("bad-argument", "count must be at least 1"));
    }
    Ok((lba, count))
}

/// Tears every bound controller down (last bound first); Ok when nothing was bound.
pub fn teardown(ctx: &mut Ctx) -> Result<(), CmdError> {
    if ctx.devices.nvme.controllers.is_empty() {
        ctx.out.print("nvme: nothing bound\n");
        return Ok(());
    }
    let mut failed = Vec::new();
    while let Some(controller) = ctx.devices.nvme.controllers.pop() {
        let bdf = controller.bdf;
        if controller.state() == State::Failed {
            let _ = writeln!(
                ctx.out,
                "nvme {bdf}: failed ({}); resetting",
                controller.failure().unwrap_or("unknown")
            );
        }
        let (steps, releases) = controller.teardown_reporting(ctx.hw);
        for step in steps {
            report_teardown_step(ctx, "nvme", bdf, step.step, step.ok, &step.detail);
            if !step.ok {
                failed.push(alloc::format!("{bdf} {}", step.step));
            }
        }
        report_releases(&mut ctx.out, &releases);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CmdError::new(
            "teardown-incomplete",
            alloc::format!("nvme teardown: {} failed", failed.join(", ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> &'static CommandSpec {
        COMMANDS.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_controller_is_named_by_flag_or_positional_never_two() {
        let parse = |name: &str, words: &[&str], pos| {
            wanted_bdf(&Args::parse(spec(name), words).unwrap(), pos)
        };
        let bdf = Bdf::new(0, 5, 0);
        assert_eq!(
            parse("nvme identify", &["00:05.0"], Some(0)).unwrap(),
            Some(bdf)
        );
        assert_eq!(
            parse("nvme identify", &["--bdf", "00:05.0"], Some(0)).unwrap(),
            Some(bdf)
        );
        assert_eq!(
            parse("nvme identify", &["00:05.0", "--bdf", "00:05.0"], Some(0)).unwrap(),
            Some(bdf)
        );
        let two = parse("nvme identify", &["00:04.0", "--bdf", "00:05.0"], Some(0)).unwrap_err();
        assert_eq!(two.code, "bad-argument");
        assert_eq!(parse("nvme read", &["0"], None).unwrap(), None);
        let bad = parse("nvme read", &["0", "--bdf", "5"], None).unwrap_err();
        assert_eq!(bad.code, "bad-bdf");
        let err = ambiguous(&[Bdf::new(0, 4, 0), bdf], "bound");
        assert_eq!(err.code, "ambiguous-controller");
        assert!(err.message.contains("00:04.0, 00:05.0"), "{}", err.message);
    }

    #[test]
    fn range_arguments() {
        let range = |words: &[&str]| range_args(&Args::parse(spec("nvme write"), words).unwrap());
        assert_eq!(range(&["0x10", "8", "--seed", "1"]).unwrap(), (16, 8));
        assert_eq!(range(&["7", "--seed", "1"]).unwrap(), (7, 1));
        assert_eq!(
            range(&["7", "0", "--seed", "1"]).unwrap_err().code,
            "bad-argument"
        );
    }
}
