//! The NVMe driver against the in-memory fake: correct data, pipelining, and every failure
//! path QEMU cannot produce, each with its named error and the ledger the rules require.

mod nvme_fake;
mod pci_fake;

use std::cell::Cell;
use std::rc::Rc;

use drivers::nvme::{Controller, NvmeError, State, Wait};
use drivers::platform::{Bdf, ConfigSpace};
use nvme_fake::bench::{Bench, BDF};
use nvme_fake::{random_bytes, Dev, Faults, Namespace, BAR0, BAR0_SIZE};
use pci_fake::FakeFunction;

#[test]
fn identify_reports_what_the_device_holds() {
    let mut bench = Bench::new(Faults::default());
    let c = bench.bind().unwrap();
    let id = c.identity.as_ref().unwrap();
    assert_eq!((id.vid, id.ssvid), (0x1b36, 0x1af4));
    assert_eq!(id.serial, "fake-serial-1");
    assert_eq!(id.model, "QEMU NVMe Ctrl");
    assert_eq!(id.version, 0x0001_0400);
    assert_eq!(id.namespaces, 256);
    assert_eq!(c.max_transfer(), 128 * 1024, "MDTS 5 with 4 KiB pages");
    let ns: Vec<_> = c
        .namespaces
        .iter()
        .map(|n| (n.nsid, n.blocks, n.block_size))
        .collect();
    assert_eq!(
        ns,
        [(1, 5000, 512), (2, 300, 4096)],
        "phantom namespace 7 (size 0) skipped"
    );
    assert_eq!(c.namespaces[0].gce_device_name, "disk-1");
    assert_eq!(c.state(), State::Ready);
    // The enable protocol: AQA/ASQ/ACQ before EN, CC with IOSQES=6/IOCQES=4, MPS=0.
    let log = bench.dev.borrow().log.clone();
    let en = log
        .iter()
        .position(|l| l == "w 0x14=0x460001")
        .expect("CC write with EN");
    let aqa = log.iter().position(|l| l.starts_with("w 0x24=")).unwrap();
    assert!(aqa < en);
    bench.assert_no_violations();
}

#[test]
fn reads_match_the_disk_byte_for_byte() {
    let mut bench = Bench::new(Faults::default());
    let mut c = bench.bind().unwrap();
    for (lba, count) in [
        (0, 1),
        (3, 8),
        (17, 255),
        (100, 256),
        (1000, 2048),
        (4999, 1),
        (0, 5000),
        (4744, 256),
    ] {
        let got = bench.read(&mut c, 1, lba, count).unwrap();
        assert!(
            got == bench.disk(1, lba, count),
            "ns1 lba {lba} count {count}"
        );
    }
    for (lba, count) in [(0, 1), (1, 2), (5, 33), (299, 1), (0, 300)] {
        let got = bench.read(&mut c, 2, lba, count).unwrap();
        assert!(
            got == bench.disk(2, lba, count),
            "ns2 lba {lba} count {count}"
        );
    }
    // 5000 blocks of 512 B in 128 KiB commands is 20 commands: several were in flight.
    assert!(
        bench.dev.borrow().max_io_outstanding >= 4,
        "reads are pipelined"
    );
    bench.assert_no_violations();
    // Read buffers are released after each read; only queues and the identify page remain.
    let purposes: Vec<_> = bench.pool.ledger().iter().map(|e| e.purpose).collect();
    assert_eq!(
        purposes,
        ["admin-sq", "admin-cq", "identify", "io-sq", "io-cq"]
    );
}

#[test]
fn bad_requests_are_refused_before_the_device_sees_them() {
    let mut bench = Bench::new(Faults::default());
    let mut c = bench.bind().unwrap();
    let reads_before = bench.dev.borrow().reads;
    assert!(matches!(
        bench.read(&mut c, 1, 0, 0),
        Err(NvmeError::ZeroCount)
    ));
    let past = bench.read(&mut c, 1, 5000, 1).unwrap_err();
    assert!(matches!(past, NvmeError::OutOfRange { blocks: 5000, .. }));
    assert_eq!(
        past.to_string(),
        "lba 0x1388 is past the end of namespace 1 (5000 blocks)"
    );
    let over = bench.read(&mut c, 1, 4990, 11).unwrap_err();
    assert!(over.to_string().contains("runs past the end"));
    assert!(matches!(
        bench.read(&mut c, 1, u64::MAX, 2),
        Err(NvmeError::OutOfRange { .. })
    ));
    assert!(matches!(
        bench.read(&mut c, 1, 1, u64::MAX),
        Err(NvmeError::OutOfRange { .. })
    ));
    assert!(matches!(
        bench.read(&mut c, 7, 0, 1),
        Err(NvmeError::NoSuchNamespace { nsid: 7 })
    ));
    assert_eq!(bench.dev.borrow().reads, reads_before);
    assert_eq!(c.state(), State::Ready);
}

#[test]
fn teardown_goes_in_reverse_and_the_controller_binds_again() {
    let mut bench = Bench::new(Faults::default());
    let mut c = bench.bind().unwrap();
    bench.read(&mut c, 1, 0, 16).unwrap();
    bench.dev.borrow_mut().log.clear();
    let steps = c.teardown(&mut bench.hw());
    let names: Vec<_> = steps.iter().map(|s| (s.step, s.ok)).collect();
    assert_eq!(
        names,
        [
            ("delete-io-sq", true),
            ("delete-io-cq", true),
            ("shutdown", true),
            ("disable", true),
            ("bus-master-off", true),
            ("release-dma", true),
            ("unmap", true),
        ]
    );
    let log = bench.dev.borrow().log.clone();
    let sq = log
        .iter()
        .position(|l| l.starts_with("admin 0x00"))
        .unwrap();
    let cq = log
        .iter()
        .position(|l| l.starts_with("admin 0x04"))
        .unwrap();
    let shn = log.iter().position(|l| l == "w 0x14=0x464001").unwrap();
    let off = log
        .iter()
        .rposition(|l| l.starts_with("w 0x14=") && !l.ends_with('1'))
        .unwrap();
    assert!(sq < cq && cq < shn && shn < off, "{log:?}");
    assert!(bench.ledger_is_empty());
    assert_eq!(bench.mapper.unmapped, [(BAR0, BAR0_SIZE)]);
    assert_eq!(bench.config.read16(BDF, 0x04) & 0x4, 0, "bus mastering off");

    let mut again = bench.bind().unwrap();
    assert_eq!(
        bench.config.read16(BDF, 0x04) & 0x6,
        0x6,
        "decode and bus mastering on again"
    );
    let got = bench.read(&mut again, 1, 4000, 1000).unwrap();
    assert!(got == bench.disk(1, 4000, 1000));
    bench.assert_no_violations();
}

#[test]
fn a_controller_left_enabled_by_firmware_is_reset_first() {
    let mut bench = Bench::new(Faults::default());
    let c = bench.bind().unwrap();
    // Forget the controller without teardown, as firmware hands it over: EN=1, RDY=1.
    drop(c);
    bench.dev.borrow_mut().log.clear();
    let c = bench.bind().unwrap();
    let log = bench.dev.borrow().log.clone();
    assert!(
        log[0].starts_with("w 0x14=") && log[0].ends_with("0x460000"),
        "first EN=0: {log:?}"
    );
    assert_eq!(c.state(), State::Ready);
}

#[test]
fn doorbell_stride_from_cap_is_honoured() {
    let mut bench = Bench::new(Faults::default());
    bench.dev.borrow_mut().cap = nvme_fake::cap(2);
    let mut c = bench.bind().unwrap();
    assert!(bench.read(&mut c, 1, 10, 300).unwrap() == bench.disk(1, 10, 300));
    bench.assert_no_violations();
}

#[test]
fn cfs_during_enable_is_controller_fatal_and_the_reset_frees_everything() {
    let mut bench = Bench::new(Faults {
        cfs_on_enable: true,
        ..Faults::default()
    });
    let err = bench.bind().err().unwrap();
    assert_eq!(
        err,
        NvmeError::ControllerFatal {
            during: Wait::Ready
        }
    );
    assert_eq!(err.code(), "nvme-controller-fatal");
    // The reset cleared CFS: the controller demonstrably stopped, so nothing is kept.
    assert!(bench.ledger_is_empty(), "{:?}", bench.pool.ledger());
}

#[test]
fn rdy_that_never_comes_times_out_and_quarantines() {
    let mut bench = Bench::new(Faults {
        never_ready: true,
        ..Faults::default()
    });
    let err = bench.bind().err().unwrap();
    assert!(
        matches!(
            err,
            NvmeError::Timeout {
                wait: Wait::Ready,
                after_us: 1_500_000
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("controller ready"));
    // It never confirmed it was enabled, so it may still be reading our queues.
    assert!(bench.ledger_all_quarantined(), "{:?}", bench.pool.ledger());
    assert!(bench.pool.ledger()[0]
        .quarantine
        .as_deref()
        .unwrap()
        .contains("did not confirm"));
}

/// CC writes with EN = 0 after the log position `from`, then with EN = 1 after that.
fn reset_then_enable_logged(log: &[String], from: usize) -> bool {
    let en = |l: &String| l.starts_with("w 0x14=") && l.ends_with('1');
    let off = |l: &String| l.starts_with("w 0x14=") && !l.ends_with('1');
    let Some(disable) = log[from..].iter().position(off) else {
        return false;
    };
    log[from + disable..].iter().any(en)
}

#[test]
fn a_read_that_never_completes_times_out_after_the_default_and_the_controller_is_reset() {
    let mut bench = Bench::new(Faults {
        swallow_io_opcode: Some(0x02),
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    let started = bench.clock.now.get();
    let log_from = bench.dev.borrow().log.len();
    let err = bench.read(&mut c, 1, 0, 8).unwrap_err();
    assert_eq!(
        err,
        NvmeError::Timeout {
            wait: Wait::Read,
            after_us: drivers::nvme::IO_TIMEOUT_US
        }
    );
    assert_eq!(
        drivers::nvme::IO_TIMEOUT_US,
        30_000_000,
        "documented default"
    );
    assert!(bench.clock.now.get() - started >= 30_000_000);
    // Recovered without a teardown: reset (EN=0, RDY=0), then the queues again.
    assert!(reset_then_enable_logged(&bench.dev.borrow().log, log_from));
    assert_eq!(c.state(), State::Ready);
    assert!(
        bench.pool.ledger().iter().all(|e| e.purpose != "read-data"),
        "the reset was confirmed, so the read's buffers were released: {:?}",
        bench.pool.ledger()
    );
    bench.dev.borrow_mut().faults.swallow_io_opcode = None;
    assert!(bench.read(&mut c, 1, 0, 100).unwrap() == bench.disk(1, 0, 100));
    let steps = c.teardown(&mut bench.hw());
    assert!(steps.iter().all(|s| s.ok), "{steps:?}");
    assert!(bench.ledger_is_empty());
    bench.assert_free_pages_untouched();
    bench.assert_no_violations();
}

#[test]
fn a_stalled_read_times_out_at_the_chosen_deadline_and_can_be_retried() {
    // One READ stalls for 5 s (Persistent Disk does that); the user allowed 1 s.
    let mut bench = Bench::new(Faults {
        stall_reads: Some((1, 5_000_000)),
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    c.set_io_timeout_us(1_000_000);
    let started = bench.clock.now.get();
    let err = bench.read(&mut c, 1, 0, 8).unwrap_err();
    assert_eq!(
        err,
        NvmeError::Timeout {
            wait: Wait::Read,
            after_us: 1_000_000
        }
    );
    let took = bench.clock.now.get() - started;
    assert!((1_000_000..5_000_000).contains(&took), "{took} us");
    assert_eq!(c.state(), State::Ready, "{:?}", c.failure());
    assert_eq!(
        bench.dev.borrow().outstanding(),
        0,
        "the reset ended the stall"
    );
    // The retry gets the right bytes: no late completion of the stalled command.
    assert!(bench.read(&mut c, 1, 0, 8).unwrap() == bench.disk(1, 0, 8));
    assert!(bench.read(&mut c, 1, 100, 1000).unwrap() == bench.disk(1, 100, 1000));
    bench.assert_free_pages_untouched();
    bench.assert_no_violations();
}

#[test]
fn a_lost_read_on_a_controller_that_will_not_stop_is_quarantined() {
    let mut bench = Bench::new(Faults {
        swallow_io_opcode: Some(0x02),
        never_disable: true,
        never_shutdown: true,
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    c.set_io_timeout_us(100_000);
    assert!(bench.read(&mut c, 1, 0, 8).is_err());
    // The reset was not confirmed: the device may still write the read's buffers, so they
    // stay allocated (not freed, not reused) and the controller is failed.
    assert_eq!(c.state(), State::Failed);
    assert!(
        c.failure().unwrap().contains("recovery failed"),
        "{:?}",
        c.failure()
    );
    assert!(bench
        .pool
        .ledger()
        .iter()
        .any(|e| e.purpose == "read-data" && e.quarantine.is_none()));
    let steps = c.teardown(&mut bench.hw());
    let failed: Vec<_> = steps.iter().filter(|s| !s.ok).map(|s| s.step).collect();
    assert_eq!(
        failed,
        ["delete-io-sq", "delete-io-cq", "disable", "release-dma"]
    );
    assert!(bench.ledger_all_quarantined());
    assert_eq!(bench.pool.usage().used_pages, 0);
}

#[test]
fn error_status_is_named_and_the_controller_stays_usable() {
    let mut bench = Bench::new(Faults {
        read_status_from_lba: Some((1000, 2, 0x81)),
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    let err = bench.read(&mut c, 1, 0, 2000).unwrap_err();
    match &err {
        NvmeError::CommandFailed {
            command: "READ",
            status,
        } => {
            assert_eq!(status.name(), "unrecovered-read-error")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "nvme-command-failed");
    assert_eq!(c.state(), State::Ready);
    assert!(
        bench.pool.ledger().iter().all(|e| e.purpose != "read-data"),
        "buffers freed"
    );
    assert!(bench.read(&mut c, 1, 0, 100).unwrap() == bench.disk(1, 0, 100));
}

#[test]
fn an_admin_error_during_bind_is_named_and_undone() {
    let mut bench = Bench::new(Faults {
        fail_identify_cns: Some(1),
        ..Faults::default()
    });
    let err = bench.bind().err().unwrap();
    assert!(
        matches!(
            err,
            NvmeError::CommandFailed {
                command: "IDENTIFY CONTROLLER",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("invalid-field"));
    assert!(bench.ledger_is_empty());
    assert_eq!(bench.mapper.unmapped.len(), 1);
}

#[test]
fn cfs_during_a_read_and_ctrl_c_are_named() {
    let mut bench = Bench::new(Faults {
        cfs_on_read: true,
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    let err = bench.read(&mut c, 1, 0, 1).unwrap_err();
    assert_eq!(err, NvmeError::ControllerFatal { during: Wait::Read });
    assert_eq!(c.state(), State::Failed);
    c.teardown(&mut bench.hw());
    assert!(bench.ledger_is_empty());

    let mut bench = Bench::new(Faults {
        swallow_io_opcode: Some(0x02),
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    bench
        .clock
        .interrupt_after
        .set(Some(bench.clock.relaxes.get() + 10));
    let err = bench.read(&mut c, 1, 0, 1).unwrap_err();
    assert_eq!(err, NvmeError::Interrupted { wait: Wait::Read });
    assert_eq!(err.code(), "interrupted");
}

#[test]
fn binding_something_else_is_refused() {
    let mut bench = Bench::new(Faults::default());
    bench.config.add(
        Bdf::new(0, 5, 0),
        FakeFunction::new(0x8086, 0x100e, 0x020000, 3, 0),
    );
    let err = Controller::bind(&mut bench.hw(), Bdf::new(0, 5, 0))
        .err()
        .unwrap();
    assert_eq!(err.code(), "nvme-unsupported");
    let err = Controller::bind(&mut bench.hw(), Bdf::new(0, 9, 0))
        .err()
        .unwrap();
    assert_eq!(err.code(), "no-such-function");
    assert!(bench.ledger_is_empty());
}

#[test]
fn ctrl_c_stops_a_long_read_and_keeps_the_controller() {
    let mut bench = Bench::new(Faults::default());
    let mut c = bench.bind().unwrap();
    let before = bench.pool.ledger().len();
    // 4096 blocks of 512 B at 128 KiB per command is 16 commands, 8 in flight at most:
    // interrupt after the first few polls, while more remain to be issued.
    bench
        .clock
        .interrupt_after
        .set(Some(bench.clock.relaxes.get() + 2));
    let Err(err) = bench.read(&mut c, 1, 0, 4096) else {
        panic!("the read must stop");
    };
    assert_eq!(err, NvmeError::Interrupted { wait: Wait::Read });
    // Everything issued was drained: the controller stays usable and the read's bounce
    // buffers went back to the pool.
    assert_eq!(c.state(), State::Ready);
    assert_eq!(bench.pool.ledger().len(), before);
    bench.clock.interrupt_after.set(None);
    assert_eq!(bench.read(&mut c, 1, 8, 16).unwrap(), bench.disk(1, 8, 16));
    bench.assert_no_violations();
}

#[test]
fn ctrl_c_during_enable_aborts_bind_and_the_confirmed_reset_frees_everything() {
    let mut bench = Bench::new(Faults::default());
    bench.clock.press_ctrl_c_when(|dev| dev.enabling());
    let err = bench.bind().err().unwrap();
    assert_eq!(err, NvmeError::Interrupted { wait: Wait::Ready });
    // The disable waited (ignoring Ctrl-C) for the enable to finish, then for RDY = 0.
    assert!(bench.ledger_is_empty(), "{:?}", bench.pool.ledger());
    bench.assert_no_violations();
    bench.clock.release_ctrl_c();
    assert!(bench.bind().is_ok());
}

#[test]
fn ctrl_c_during_an_admin_command_aborts_bind_cleanly() {
    let mut bench = Bench::new(Faults::default());
    bench.clock.press_ctrl_c_when(|dev| dev.running(true, 0x06));
    let err = bench.bind().err().unwrap();
    assert_eq!(
        err,
        NvmeError::Interrupted {
            wait: Wait::Admin("IDENTIFY CONTROLLER")
        }
    );
    assert!(bench.ledger_is_empty(), "{:?}", bench.pool.ledger());
    bench.assert_no_violations();
}

#[test]
fn ctrl_c_during_identify_of_a_bound_controller_recovers_it() {
    let mut bench = Bench::new(Faults::default());
    let mut c = bench.bind().unwrap();
    bench.clock.press_ctrl_c_when(|dev| dev.running(true, 0x06));
    let err = c.refresh_identity(&mut bench.hw()).unwrap_err();
    assert!(
        matches!(
            err,
            NvmeError::Interrupted {
                wait: Wait::Admin(_)
            }
        ),
        "{err:?}"
    );
    assert_eq!(c.state(), State::Ready, "{:?}", c.failure());
    bench.clock.release_ctrl_c();
    c.refresh_identity(&mut bench.hw()).unwrap();
    assert!(bench.read(&mut c, 2, 0, 3).unwrap() == bench.disk(2, 0, 3));
    bench.assert_no_violations();
}

#[test]
fn ctrl_c_during_teardown_queue_deletion_shutdown_or_disable_is_ignored() {
    for (what, when) in [
        (
            "delete-io-sq",
            Box::new(|d: &Dev| d.running(true, 0x00)) as Box<dyn Fn(&Dev) -> bool>,
        ),
        ("delete-io-cq", Box::new(|d: &Dev| d.running(true, 0x04))),
        ("shutdown", Box::new(|d: &Dev| d.shutting_down())),
        ("disable", Box::new(|d: &Dev| d.disabling())),
    ] {
        let mut bench = Bench::new(Faults::default());
        let c = bench.bind().unwrap();
        let pressed = Rc::new(Cell::new(false));
        let seen = pressed.clone();
        bench.clock.press_ctrl_c_when(move |d| {
            let now = when(d);
            seen.set(seen.get() || now);
            now
        });
        let steps = c.teardown(&mut bench.hw());
        assert!(pressed.get(), "{what}: the wait was never reached");
        assert!(bench.clock.ctrl_c_pressed.get());
        assert!(steps.iter().all(|s| s.ok), "{what}: {steps:?}");
        assert!(bench.ledger_is_empty(), "{what}: {:?}", bench.pool.ledger());
        bench.assert_no_violations();
    }
}

#[test]
fn ctrl_c_during_a_stalled_read_drains_then_resets_and_the_retry_works() {
    let mut bench = Bench::new(Faults {
        stall_reads: Some((1, 10_000_000)),
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    bench
        .clock
        .press_ctrl_c_when(|dev| dev.running(false, 0x02));
    let started = bench.clock.now.get();
    let err = bench.read(&mut c, 1, 0, 8).unwrap_err();
    assert_eq!(err, NvmeError::Interrupted { wait: Wait::Read });
    let took = bench.clock.now.get() - started;
    // The drain ignored Ctrl-C for its 1 s grace, then the controller was reset.
    assert!((1_000_000..3_000_000).contains(&took), "{took} us");
    assert_eq!(c.state(), State::Ready, "{:?}", c.failure());
    assert!(bench.pool.ledger().iter().all(|e| e.purpose != "read-data"));
    bench.clock.release_ctrl_c();
    assert!(bench.read(&mut c, 1, 0, 8).unwrap() == bench.disk(1, 0, 8));
    bench.assert_free_pages_untouched();
    bench.assert_no_violations();
}

#[test]
fn quarantined_pages_are_released_when_a_later_reset_is_confirmed() {
    let mut bench = Bench::new(Faults::default());
    let c = bench.bind().unwrap();
    // This disable takes 2.5 s, longer than CAP.TO allows (1.5 s): teardown quarantines.
    bench.dev.borrow_mut().latencies.disable_us = 2_500_000;
    let steps = c.teardown(&mut bench.hw());
    assert!(
        steps.iter().any(|s| s.step == "release-dma" && !s.ok),
        "{steps:?}"
    );
    assert!(bench.ledger_all_quarantined());
    let quarantined = bench.pool.usage().quarantined_pages;
    bench.dev.borrow_mut().latencies = nvme_fake::Latencies::default();
    // Bind again: RDY was still 1 and now goes to 0: the reset is confirmed at last.
    let mut c = bench.bind().unwrap();
    let releases = c.take_releases();
    assert_eq!(releases.len(), 1, "{releases:?}");
    assert_eq!(releases[0].owner, "nvme 00:04.0");
    assert_eq!(releases[0].allocations, 5);
    assert_eq!(releases[0].pages, quarantined);
    assert!(releases[0].after.contains("bind"));
    assert_eq!(bench.pool.usage().quarantined_pages, 0);
    assert!(c.take_releases().is_empty(), "reported once");
    assert!(bench.read(&mut c, 1, 0, 4).unwrap() == bench.disk(1, 0, 4));
    c.teardown(&mut bench.hw());
    assert!(bench.ledger_is_empty());
}

#[test]
fn intx_is_disabled_while_bound_and_restored_at_teardown() {
    let mut bench = Bench::new(Faults::default());
    let intx = |b: &Bench| b.config.read16(BDF, 0x04) & (1 << 10) != 0;
    assert!(!intx(&bench));
    let c = bench.bind().unwrap();
    assert!(intx(&bench), "polling: INTx masked while bound");
    c.teardown(&mut bench.hw());
    assert!(!intx(&bench), "restored as found");
    // Found disabled: left disabled.
    bench.config.write16(BDF, 0x04, 1 << 10);
    let c = bench.bind().unwrap();
    c.teardown(&mut bench.hw());
    assert!(intx(&bench));
}

#[test]
fn separate_metadata_goes_to_a_pool_buffer_never_to_address_0() {
    let mut ns = Namespace::new(1, 9, random_bytes(2000 * 512, 5));
    ns.metadata_size = 8;
    let mut bench = Bench::with(Faults::default(), vec![ns]);
    let mut c = bench.bind().unwrap();
    assert_eq!(c.namespaces[0].metadata_size, 8);
    assert!(!c.namespaces[0].extended_lba);
    for (lba, count) in [(0, 1), (5, 300), (0, 2000)] {
        assert!(bench.read(&mut c, 1, lba, count).unwrap() == bench.disk(1, lba, count));
    }
    let summary = c.read(&mut bench.hw(), 1, 77, 3, &mut |_, _| {}).unwrap();
    assert_eq!(summary.metadata_size, 8);
    let want = bench.dev.borrow().namespaces[0].metadata(77);
    assert_eq!(
        summary.first_metadata[..8],
        want[..],
        "MPTR got the metadata"
    );
    // Every device write (data and the 8 bytes a block of metadata) landed in the pool.
    bench.assert_no_violations();
    assert!(bench
        .pool
        .ledger()
        .iter()
        .all(|e| e.purpose != "read-metadata"));
}

#[test]
fn a_completion_during_the_reset_lands_in_buffers_the_driver_still_owns() {
    // The stalled READ completes 300 us after its 1 s deadline: after the driver wrote
    // CC.EN = 0, before CSTS.RDY reads 0 (600 us later). Its data lands in the read buffers,
    // which must still be allocated then; they are freed only once the reset is confirmed.
    let mut bench = Bench::new(Faults {
        stall_reads: Some((1, 1_000_000)),
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    c.set_io_timeout_us(1_000_000);
    let err = bench.read(&mut c, 1, 0, 64).unwrap_err();
    assert!(matches!(err, NvmeError::Timeout { .. }), "{err:?}");
    assert_eq!(
        bench.dev.borrow().completed_while_disabling,
        1,
        "the late completion came while the reset was in progress"
    );
    assert_eq!(c.state(), State::Ready);
    bench.assert_free_pages_untouched();
    assert!(bench.read(&mut c, 1, 0, 64).unwrap() == bench.disk(1, 0, 64));
    bench.assert_no_violations();
}

/// While the sink works on chunk k (hashing, on the monitor), the device already holds the
/// next eight commands: the read refills it before handing the chunk over, and keeps a spare
/// buffer for that. 5000 blocks in 128 KiB commands is 20 commands.
#[test]
fn the_sink_runs_while_the_next_commands_are_at_the_device() {
    let mut bench = Bench::new(Faults::default());
    let mut c = bench.bind().unwrap();
    let dev = bench.dev.clone();
    let mut seen = Vec::new();
    let mut hw = bench.hw();
    let summary = c
        .read(&mut hw, 1, 0, 5000, &mut |_, _| {
            seen.push(dev.borrow().io_submitted());
        })
        .unwrap();
    assert_eq!(summary.commands, 20);
    assert_eq!(summary.depth, 8);
    for (k, submitted) in seen.iter().enumerate() {
        let want = (k as u32 + 1 + 8).min(20);
        assert!(
            *submitted >= want,
            "chunk {k}: only {submitted} commands handed to the device, want {want} ({seen:?})"
        );
    }
    bench.assert_no_violations();
}
