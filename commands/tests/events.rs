//! Platform events (NMIs, machine checks) reach the host inside a command's stream: those
//! that happened at the prompt right after the next command's start frame, those during a
//! command before its result, and a machine check that aborted a command before its fault
//! frame, with the `machine-check` code. Sequence numbers stay gapless. After the heap was
//! poisoned (a fault inside the allocator) only `reset` runs.

#[allow(dead_code)]
mod support;

use std::cell::{Cell, RefCell};

use commands::{Events, Shell};
use drivers::dma::testing::leaked_pool;
use drivers::platform::{Clock, Hw};
use evidence::{Body, Fault, Frame, Nmi, Outcome};
use support::bare_machine::{system_info, Captured, NoMmio, NoPci, SmallMemory};

/// Events a test queues, as the monitor's handlers would.
struct Queue(RefCell<Vec<(String, Body)>>);

impl Events for Queue {
    fn take(&self) -> Vec<(String, Body)> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

fn nmi(total: u32, in_command: bool) -> (String, Body) {
    (
        format!("nmi #{total}"),
        Body::Nmi(Nmi {
            total,
            new: 1,
            rip: 0x1234,
            in_command,
            port_61: 0,
        }),
    )
}

/// A clock whose every read may deliver an event "during" the command (the sleep polls it).
struct EventClock<'q> {
    now: Cell<u64>,
    queue: &'q Queue,
    deliver_at: Cell<Option<u64>>,
}

impl Clock for EventClock<'_> {
    fn now_us(&self) -> u64 {
        let t = self.now.get() + 100;
        self.now.set(t);
        if self.deliver_at.get().is_some_and(|at| t >= at) {
            self.deliver_at.set(None);
            self.queue.0.borrow_mut().push(nmi(2, true));
        }
        t
    }
}

fn frames(text: &str) -> Vec<Frame> {
    text.lines()
        .filter(|l| l.contains(evidence::MARKER))
        .map(|l| evidence::decode_line(l).unwrap())
        .collect()
}

#[test]
fn events_are_framed_inside_the_next_or_current_command() {
    let queue: &'static Queue = Box::leak(Box::new(Queue(RefCell::new(Vec::new()))));
    let (mut pool, _) = leaked_pool(0x10_0000, 16 * 4096);
    let clock = EventClock {
        now: Cell::new(0),
        queue,
        deliver_at: Cell::new(None),
    };
    let mut mmio = NoMmio;
    let memory = SmallMemory::default();
    let mut hw = Hw {
        config: &NoPci,
        mmio: &mut mmio,
        clock: &clock,
        dma: &mut pool,
        memory: &memory,
        cpu: &drivers::platform::NullCpu,
        ports: &drivers::platform::NullPorts,
        firmware: &drivers::platform::NoFirmware,
        irq: &drivers::platform::NoInterrupts,
    };
    let mut shell = Shell::new(1, system_info(16 * 4096));
    shell.set_events(queue);
    let mut console = Captured::default();
    shell.banner(&mut console);

    // An NMI at the prompt: reported by the next command, right after its start frame.
    queue.0.borrow_mut().push(nmi(1, false));
    shell.execute("version", &mut hw, &mut console, || 0);
    // One during a 5 ms sleep: before that command's result.
    clock.deliver_at.set(Some(clock.now.get() + 2_000));
    shell.execute("sleep 5", &mut hw, &mut console, || 0);
    // A machine check that aborted a command: its frame first, then fault, then result.
    let check = evidence::MachineCheck {
        mcg_status: 0b101,
        mcg_cap: 10,
        banks: vec![evidence::McBank {
            bank: 1,
            status: 0xb400_0000_0000_0000,
            addr: 0x1234,
            misc: 0,
        }],
        rip: 0x4444,
        in_command: true,
    };
    queue
        .0
        .borrow_mut()
        .push(("machine check".into(), Body::MachineCheck(check.clone())));
    shell.execute("help", &mut hw, &mut console, || 0);
    // The monitor's fault path after a #MC (here with no command left running: the
    // QEMU test covers the aborted command and its `machine-check` result).
    let fault = Fault {
        exception: "machine-check".into(),
        vector: 18,
        rip: 0x4444,
        error_code: 0,
        address: 0,
        recovered: true,
    };
    queue
        .0
        .borrow_mut()
        .push(("machine check".into(), Body::MachineCheck(check.clone())));
    shell.command_faulted(&mut console, fault, 10);

    let all = frames(&console.0);
    for (i, f) in all.iter().enumerate() {
        assert_eq!(f.seq as usize, i, "gapless");
    }
    let kinds = |cmd: u32| -> Vec<&str> {
        all.iter()
            .filter(|f| f.cmd == cmd)
            .map(|f| f.body.kind())
            .collect()
    };
    assert_eq!(
        kinds(1),
        ["command.start", "nmi", "banner", "command.result"]
    );
    assert_eq!(kinds(2), ["command.start", "nmi", "command.result"]);
    assert_eq!(kinds(3)[..2], ["command.start", "machine-check"]);
    // The NMI during the sleep says so.
    let during = all
        .iter()
        .find_map(|f| match &f.body {
            Body::Nmi(n) if f.cmd == 2 => Some(n.clone()),
            _ => None,
        })
        .unwrap();
    assert!(during.in_command && during.total == 2);
    assert!(console.0.contains("nmi #1\r\n") && console.0.contains("nmi #2\r\n"));
    // The fault path outside a command: machine-check frame, then the fault, no result.
    let tail: Vec<&str> = all[all.len() - 2..].iter().map(|f| f.body.kind()).collect();
    assert_eq!(tail, ["machine-check", "fault"]);
    assert!(all
        .iter()
        .all(|f| !matches!(&f.body, Body::CommandResult(r) if r.outcome != Outcome::Ok)));
}

#[test]
fn after_a_heap_poisoning_only_reset_runs() {
    let (mut pool, _) = leaked_pool(0x10_0000, 16 * 4096);
    let clock = support::bare_machine::StepClock(Cell::new(0));
    let mut mmio = NoMmio;
    let memory = SmallMemory::default();
    let mut hw = Hw {
        config: &NoPci,
        mmio: &mut mmio,
        clock: &clock,
        dma: &mut pool,
        memory: &memory,
        cpu: &drivers::platform::NullCpu,
        ports: &drivers::platform::NullPorts,
        firmware: &drivers::platform::NoFirmware,
        irq: &drivers::platform::NoInterrupts,
    };
    let mut shell = Shell::new(1, system_info(16 * 4096));
    let mut console = Captured::default();
    assert_eq!(
        shell.execute("version", &mut hw, &mut console, || 0),
        commands::Action::Continue
    );
    shell.refuse_all_but_reset("the heap is abandoned");
    for line in ["version", "help", "dma", "lspci", "teardown"] {
        shell.execute(line, &mut hw, &mut console, || 0);
    }
    let action = shell.execute("reset", &mut hw, &mut console, || 0);
    assert_eq!(action, commands::Action::Reset);
    let results: Vec<String> = frames(&console.0)
        .iter()
        .filter_map(|f| match &f.body {
            Body::CommandResult(r) => Some(match &r.outcome {
                Outcome::Ok => "ok".to_string(),
                Outcome::Error { code, .. } => code.clone(),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [
            "ok",
            "heap-poisoned",
            "heap-poisoned",
            "heap-poisoned",
            "heap-poisoned",
            "heap-poisoned",
            "ok"
        ]
    );
    assert!(console
        .0
        .contains("the heap is abandoned: only 'reset' runs now"));
}
