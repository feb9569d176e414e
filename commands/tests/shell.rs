//! The shell's contract, on a machine with no devices: every non-empty line gives one start
//! frame and exactly one result frame, sequence numbers never skip, and no input panics.

mod support;

use commands::Shell;
use drivers::dma::testing::leaked_pool;
use drivers::platform::Hw;
use evidence::{Body, Frame, Outcome};
use std::cell::Cell;
use support::bare_machine::{
    system_info, Captured, FakeCpu, FakePorts, NoMmio, NoPci, SmallMemory, StepClock,
};

fn frames(text: &str) -> Vec<Frame> {
    text.lines()
        .filter(|l| l.contains(evidence::MARKER))
        .map(|l| evidence::decode_line(l).unwrap())
        .collect()
}

fn run(lines: &[&str]) -> (String, Vec<Frame>) {
    run_with(|_| {}, lines)
}

fn run_with(
    setup: impl FnOnce(&mut drivers::dma::DmaPool),
    lines: &[&str],
) -> (String, Vec<Frame>) {
    drive(setup, |shell, hw, console| {
        for line in lines {
            shell.execute(line, hw, console, || 0);
        }
    })
}

/// Boots a shell (banner) on the bare machine and lets `steps` use it; returns the output.
fn drive(
    setup: impl FnOnce(&mut drivers::dma::DmaPool),
    steps: impl FnOnce(&mut Shell, &mut Hw, &mut Captured),
) -> (String, Vec<Frame>) {
    let (mut pool, _) = leaked_pool(0x10_0000, 64 * 4096);
    setup(&mut pool);
    let clock = StepClock(Cell::new(0));
    let mut mmio = NoMmio;
    let (memory, cpu, ports) = (
        SmallMemory::default(),
        FakeCpu::default(),
        FakePorts::default(),
    );
    let mut hw = Hw {
        config: &NoPci,
        mmio: &mut mmio,
        clock: &clock,
        dma: &mut pool,
        memory: &memory,
        cpu: &cpu,
        ports: &ports,
        firmware: &drivers::platform::NoFirmware,
        irq: &drivers::platform::NoInterrupts,
    };
    let mut shell = Shell::new(0xfeed, system_info(64 * 4096));
    let mut console = Captured::default();
    shell.banner(&mut console);
    steps(&mut shell, &mut hw, &mut console);
    let frames = frames(&console.0);
    (console.0, frames)
}

fn results(frames: &[Frame]) -> Vec<&Outcome> {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::CommandResult(r) => Some(&r.outcome),
            _ => None,
        })
        .collect()
}

fn assert_framing(frames: &[Frame], commands: usize) {
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.seq, i as u32, "sequence gap");
        assert_eq!(frame.boot_id, 0xfeed);
    }
    assert!(matches!(frames[0].body, Body::Banner(_)));
    for cmd in 1..=commands as u32 {
        let own: Vec<&Frame> = frames.iter().filter(|f| f.cmd == cmd).collect();
        assert!(
            matches!(own.first().unwrap().body, Body::CommandStart(_)),
            "cmd {cmd} starts with a start frame"
        );
        assert!(
            matches!(own.last().unwrap().body, Body::CommandResult(_)),
            "cmd {cmd} ends with its result"
        );
        let result_count = own
            .iter()
            .filter(|f| matches!(f.body, Body::CommandResult(_)))
            .count();
        assert_eq!(result_count, 1, "cmd {cmd} has exactly one result frame");
    }
}

fn error_code(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Error { code, .. } => code,
    }
}

#[test]
fn help_version_and_errors() {
    let (text, frames) = run(&[
        "help",
        "version",
        "",
        "   ",
        "lsppcii",
        "help nvme",
        "version extra",
        "help bogus",
        "dma",
    ]);
    assert_framing(&frames, 7);
    let codes: Vec<&str> = results(&frames).into_iter().map(error_code).collect();
    assert_eq!(
        codes,
        [
            "ok",
            "ok",
            "unknown-command",
            "unknown-command",
            "usage",
            "unknown-command",
            "ok"
        ]
    );
    assert!(text.contains("help [command]"));
    assert!(text.contains("error: 'version' takes 0 argument(s), got 1; usage: version"));
    assert!(text.contains("ledger empty"));
}

#[test]
fn hostile_input_never_breaks_framing() {
    let long = "a".repeat(4096);
    let mut seed = 0x1234_5678u32;
    let mut garbage = Vec::new();
    for _ in 0..64 {
        let mut line = String::new();
        for _ in 0..(seed % 200) {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            line.push(char::from_u32((seed >> 8) % 0x800).unwrap_or('\u{fffd}'));
        }
        garbage.push(line);
    }
    let mut lines: Vec<&str> = vec![
        &long,
        "ls\u{1b}[A\u{7}",
        "\u{fffd}\u{fffd}",
        "peek 0xffffffffffffffff 2",
        "peek 0x1000 0",
    ];
    lines.extend(garbage.iter().map(String::as_str));
    lines.push("version");
    let (_, frames) = run(&lines);
    let nonempty = lines.iter().filter(|l| !l.trim().is_empty()).count();
    assert_framing(&frames, nonempty);
    let outcomes = results(&frames);
    assert_eq!(error_code(outcomes[0]), "line-too-long");
    assert_eq!(error_code(outcomes[1]), "bad-input");
    assert_eq!(error_code(outcomes[3]), "bad-address");
    assert_eq!(error_code(outcomes[4]), "bad-argument");
    assert_eq!(error_code(outcomes.last().unwrap()), "ok");
}

#[test]
fn peek_dumps_memory() {
    let (text, frames) = run(&["peek 0x1000 20"]);
    assert_framing(&frames, 1);
    assert!(text.contains("0000000000001000  00 01 02 03"), "{text}");
    assert!(text.contains("0000000000001010  10 11 12 13"), "{text}");
}

#[test]
fn a_busy_ledger_is_split_into_small_frames() {
    let (text, frames) = run_with(
        |pool| {
            for i in 0..16 {
                let purpose = ["admin-queue", "counter-array", "tx-qpl", "rx-data-ring"][i % 4];
                let buf = pool.alloc("gvnic 00:05.0", purpose, 4096).unwrap();
                if i % 3 == 0 {
                    pool.quarantine(
                        buf,
                        &"reset never completed; the device may still write ".repeat(4),
                    )
                    .unwrap();
                }
            }
        },
        &["dma"],
    );
    assert_framing(&frames, 1);
    for line in text.lines().filter(|l| l.contains(evidence::MARKER)) {
        assert!(line.len() < 512, "{} bytes: {line}", line.len());
    }
    let ledgers: Vec<&evidence::DmaLedger> = frames
        .iter()
        .filter_map(|f| match &f.body {
            Body::DmaLedger(l) => Some(l),
            _ => None,
        })
        .collect();
    assert!(ledgers.len() > 1);
    assert_eq!(ledgers.iter().map(|l| l.entries.len()).sum::<usize>(), 16);
    assert!(ledgers
        .iter()
        .all(|l| l.quarantined_pages == 6 && l.used_pages == 10));
    assert_eq!(
        ledgers
            .iter()
            .flat_map(|l| &l.entries)
            .filter(|e| e.quarantined)
            .count(),
        6
    );
}

#[test]
fn device_commands_without_devices_say_so() {
    let (_, frames) = run(&[
        "nvme identify",
        "nvme read 0",
        "gvnic describe",
        "gvnic txdhcp",
        "bar map 00:1f.0 0",
        "teardown",
        "lspci",
    ]);
    assert_framing(&frames, 7);
    let codes: Vec<&str> = results(&frames).into_iter().map(error_code).collect();
    assert_eq!(
        codes[..5],
        [
            "no-controller",
            "no-controller",
            "no-gvnic",
            "no-gvnic",
            "no-such-function"
        ],
        "{codes:?}"
    );
    assert_eq!(
        codes[5..],
        ["ok", "ok"],
        "teardown with nothing bound, and an empty bus, are not errors"
    );
    assert!(frames.iter().all(|f| !matches!(
        f.body,
        Body::NvmeController(_)
            | Body::NvmeRead(_)
            | Body::GvnicDescriptor(_)
            | Body::GvnicTx(_)
            | Body::BarMapping(_)
    )));
}

#[test]
fn a_refused_line_is_one_command_with_one_error_result() {
    let (text, frames) = drive(
        |_| {},
        |shell, hw, console| {
            let error =
                commands::CmdError::new("line-too-long", "line too long (700 bytes, max 512)");
            shell.refuse(&"y".repeat(700), error, console);
            shell.execute("version", hw, console, || 0);
        },
    );
    assert_framing(&frames, 2);
    let codes: Vec<&str> = results(&frames).into_iter().map(error_code).collect();
    assert_eq!(codes, ["line-too-long", "ok"]);
    assert!(text.contains("error: line too long (700 bytes, max 512)"));
}
