//! NVMe WRITE, FLUSH, FUA, the boot-disk guard and small pools against the in-memory fake:
//! the disk holds exactly the pattern in exactly the written blocks, write errors are named,
//! a stalled write times out or is interrupted without the device ever reading a freed page,
//! and a 512 KiB pool still reads and writes (issue 22).

mod nvme_fake;
mod pci_fake;

use drivers::gpt::{Guid, HEADER_SIGNATURE};
use drivers::nvme::{Controller, NvmeError, State, TransferSummary, Wait, WriteOptions};
use drivers::pattern::{Pattern, Verifier};
use nvme_fake::bench::Bench;
use nvme_fake::{random_bytes, Faults, Namespace};

const PLAIN: WriteOptions = WriteOptions {
    fua: false,
    protect: None,
};

fn write(
    bench: &mut Bench,
    c: &mut Controller,
    nsid: u32,
    lba: u64,
    count: u64,
    pattern: Pattern,
    options: WriteOptions,
) -> Result<TransferSummary, NvmeError> {
    let block = if nsid == 2 { 4096 } else { 512 };
    let mut next = lba;
    c.write(
        &mut bench.hw(),
        nsid,
        lba,
        count,
        options,
        &mut |at, buf: &mut [u8]| {
            assert_eq!(at, next, "the source is asked in LBA order");
            pattern.fill(at * block, buf);
            next += buf.len() as u64 / block;
        },
    )
}

fn verify(
    bench: &mut Bench,
    c: &mut Controller,
    nsid: u32,
    lba: u64,
    count: u64,
    p: Pattern,
) -> Verifier {
    let mut verifier = Verifier::new(p, if nsid == 2 { 4096 } else { 512 });
    c.read(&mut bench.hw(), nsid, lba, count, &mut |at, data| {
        verifier.feed(at, data)
    })
    .unwrap();
    verifier
}

#[test]
fn a_seeded_write_lands_in_exactly_the_written_blocks_with_fua_and_flush() {
    let mut bench = Bench::new(Faults::default());
    let before = bench.disk(1, 0, 5000);
    let mut c = bench.bind().unwrap();
    let p = Pattern::Seeded(0x5eed);
    // 1000 blocks of 512 B in 128 KiB commands (MDTS 5): 4 commands, pipelined.
    let fua = WriteOptions {
        fua: true,
        protect: None,
    };
    let summary = write(&mut bench, &mut c, 1, 300, 1000, p, fua).unwrap();
    assert_eq!((summary.bytes, summary.commands), (512_000, 4));
    assert!(summary.depth > 1, "several WRITEs in flight");
    assert_eq!(bench.dev.borrow().fua_writes, 4, "FUA on every WRITE");
    let after = bench.disk(1, 0, 5000);
    assert!(
        after[..300 * 512] == before[..300 * 512],
        "nothing before the range changed"
    );
    assert!(
        after[1300 * 512..] == before[1300 * 512..],
        "nothing after the range changed"
    );
    assert!(after[300 * 512..1300 * 512] == p.bytes(300 * 512, 512_000));
    // The 4 KiB namespace, one byte pattern, no FUA.
    write(&mut bench, &mut c, 2, 7, 3, Pattern::Byte(0xa5), PLAIN).unwrap();
    assert!(bench.disk(2, 7, 3).iter().all(|b| *b == 0xa5));
    assert_eq!(bench.dev.borrow().fua_writes, 4);
    // FLUSH reaches the device with the namespace's id.
    let flushed = c.flush(&mut bench.hw(), 1).unwrap();
    assert_eq!(flushed.nsid, 1);
    assert_eq!(bench.dev.borrow().flushes, [1]);
    assert_eq!(
        c.flush(&mut bench.hw(), 9).unwrap_err(),
        NvmeError::NoSuchNamespace { nsid: 9 }
    );
    // Verify reads it back: ok, then the first byte the "host" changed.
    let v = verify(&mut bench, &mut c, 1, 300, 1000, p);
    assert_eq!((v.first_mismatch(), v.blocks_checked()), (None, 1000));
    {
        let mut dev = bench.dev.borrow_mut();
        let ns = dev.namespaces.iter_mut().find(|n| n.nsid == 1).unwrap();
        ns.data[777 * 512 + 33] ^= 0x40;
        ns.data[900 * 512] ^= 0x01;
    }
    let m = verify(&mut bench, &mut c, 1, 300, 1000, p)
        .first_mismatch()
        .unwrap();
    assert_eq!((m.lba, m.offset, m.found ^ m.expected), (777, 33, 0x40));
    // A sub-range of a seeded write verifies on its own (the stream follows the LBA).
    assert_eq!(
        verify(&mut bench, &mut c, 1, 301, 5, p).first_mismatch(),
        None
    );
    assert!(c.teardown(&mut bench.hw()).iter().all(|s| s.ok));
    assert!(bench.ledger_is_empty());
    bench.assert_free_pages_untouched();
    bench.assert_no_violations();
}

#[test]
fn write_errors_are_named_and_the_controller_stays_usable() {
    let mut bench = Bench::new(Faults {
        write_status_from_lba: Some((4000, 2, 0x80)),
        write_protected: vec![2],
        ..Faults::default()
    });
    let before = bench.disk(1, 0, 5000);
    let mut c = bench.bind().unwrap();
    let err = write(&mut bench, &mut c, 1, 3990, 20, Pattern::Byte(1), PLAIN).unwrap_err();
    let NvmeError::CommandFailed { command, status } = err else {
        panic!("{err:?}")
    };
    assert_eq!((command, status.name()), ("WRITE", "write-fault"));
    assert_eq!(err_code(command, status), "nvme-command-failed");
    let err = write(&mut bench, &mut c, 2, 0, 1, Pattern::Byte(1), PLAIN).unwrap_err();
    assert!(
        matches!(err, NvmeError::CommandFailed { status, .. } if status.name() == "namespace-write-protected"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("namespace-write-protected"),
        "{err}"
    );
    assert_eq!(c.state(), State::Ready);
    assert!(
        bench.disk(1, 0, 5000) == before,
        "a failed WRITE wrote nothing"
    );
    // Out of range and a zero count never reach the device.
    let writes = bench.dev.borrow().writes;
    assert!(matches!(
        write(&mut bench, &mut c, 1, 4999, 2, Pattern::Byte(1), PLAIN),
        Err(NvmeError::OutOfRange { .. })
    ));
    assert_eq!(
        write(&mut bench, &mut c, 1, 0, 0, Pattern::Byte(1), PLAIN).unwrap_err(),
        NvmeError::ZeroCount
    );
    assert_eq!(bench.dev.borrow().writes, writes);
    // Still usable: a good write works.
    write(&mut bench, &mut c, 1, 0, 8, Pattern::Byte(9), PLAIN).unwrap();
    assert!(bench.disk(1, 0, 8).iter().all(|b| *b == 9));
    assert!(bench
        .pool
        .ledger()
        .iter()
        .all(|e| e.purpose != "write-data"));
    bench.assert_no_violations();
}

fn err_code(command: &'static str, status: drivers::nvme::status::CommandStatus) -> &'static str {
    NvmeError::CommandFailed { command, status }.code()
}

#[test]
fn a_stalled_write_times_out_is_reset_and_the_retry_works() {
    let mut bench = Bench::new(Faults {
        stall_writes: Some((1, 5_000_000)),
        ..Faults::default()
    });
    let mut c = bench.bind().unwrap();
    c.set_io_timeout_us(1_000_000);
    let started = bench.clock.now.get();
    let err = write(&mut bench, &mut c, 1, 0, 8, Pattern::Byte(3), PLAIN).unwrap_err();
    assert_eq!(
        err,
        NvmeError::Timeout {
            wait: Wait::Write,
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
    write(&mut bench, &mut c, 1, 0, 8, Pattern::Byte(4), PLAIN).unwrap();
    assert!(bench.disk(1, 0, 8).iter().all(|b| *b == 4));
    bench.assert_free_pages_untouched();
    bench.assert_no_violations();
}

#[test]
fn ctrl_c_during_a_write_keeps_the_buffers_until_the_device_is_done_with_them() {
    // The stalled WRITE is taken 1.2 s after the Ctrl-C: past the 1 s drain, while the
    // reset is in progress (disable takes 0.5 s here). The device reads its data then, so the
    // buffers must still hold the pattern: freed (zeroed) pages would put zeros on the disk.
    let mut bench = Bench::new(Faults {
        stall_writes: Some((1, 1_200_000)),
        ..Faults::default()
    });
    bench.dev.borrow_mut().latencies.disable_us = 500_000;
    let before = bench.disk(1, 0, 5000);
    let mut c = bench.bind().unwrap();
    bench
        .clock
        .press_ctrl_c_when(|dev| dev.running(false, 0x01));
    let p = Pattern::Seeded(77);
    let err = write(&mut bench, &mut c, 1, 0, 2000, p, PLAIN).unwrap_err();
    assert_eq!(err, NvmeError::Interrupted { wait: Wait::Write });
    assert_eq!(bench.dev.borrow().completed_while_disabling, 1);
    assert_eq!(c.state(), State::Ready, "{:?}", c.failure());
    let after = bench.disk(1, 0, 5000);
    for lba in 0..5000usize {
        let block = &after[lba * 512..(lba + 1) * 512];
        let written = p.bytes(lba as u64 * 512, 512);
        assert!(
            block == &before[lba * 512..(lba + 1) * 512] || block == written.as_slice(),
            "block {lba} is neither the old data nor the pattern"
        );
    }
    assert!(after[..512] == p.bytes(0, 512), "the first WRITE landed");
    assert!(bench
        .pool
        .ledger()
        .iter()
        .all(|e| e.purpose != "write-data"));
    bench.clock.release_ctrl_c();
    write(&mut bench, &mut c, 1, 0, 2000, p, PLAIN).unwrap();
    assert_eq!(
        verify(&mut bench, &mut c, 1, 0, 2000, p).first_mismatch(),
        None
    );
    bench.assert_free_pages_untouched();
    bench.assert_no_violations();
}

#[test]
fn the_boot_disk_is_refused_unless_forced() {
    let guid = Guid::parse("6B1C2E4A-0D3F-4E5A-9B8C-7D6E5F4A3B2C").unwrap();
    let mut disk = random_bytes(2000 * 512, 5);
    disk[512..520].copy_from_slice(HEADER_SIGNATURE);
    disk[512 + 56..512 + 72].copy_from_slice(&guid.0);
    let other = random_bytes(300 * 4096, 6);
    let mut bench = Bench::with(
        Faults::default(),
        vec![
            Namespace::new(1, 9, disk.clone()),
            Namespace::new(2, 12, other),
        ],
    );
    let mut c = bench.bind().unwrap();
    assert_eq!(c.gpt_disk_guid(&mut bench.hw(), 1).unwrap(), Some(guid));
    assert_eq!(c.gpt_disk_guid(&mut bench.hw(), 2).unwrap(), None);
    let protect = WriteOptions {
        fua: false,
        protect: Some(guid),
    };
    let err = write(&mut bench, &mut c, 1, 100, 4, Pattern::Byte(0), protect).unwrap_err();
    assert_eq!(err, NvmeError::BootDisk { nsid: 1, guid });
    assert_eq!(err.code(), "boot-disk");
    assert_eq!(bench.dev.borrow().writes, 0, "nothing was written");
    assert!(bench.disk(1, 0, 2000) == disk);
    // Another namespace (no GPT) is not the boot disk.
    write(&mut bench, &mut c, 2, 0, 1, Pattern::Byte(0), protect).unwrap();
    // Forced (no protection asked): the write goes through.
    write(&mut bench, &mut c, 1, 100, 4, Pattern::Byte(0), PLAIN).unwrap();
    assert!(bench.disk(1, 100, 4).iter().all(|b| *b == 0));
    bench.assert_no_violations();
}

#[test]
fn a_512k_pool_reads_and_writes_with_smaller_chunks() {
    // Issue 22: buffers were sized for MDTS (512 KiB on QEMU, MDTS 7) whatever the request,
    // so `dma=512K` could not read 8 blocks. Now the request and the pool decide.
    let mut bench = Bench::with_pool(Faults::default(), 512 << 10);
    bench.dev.borrow_mut().mdts = 7;
    let mut c = bench.bind().unwrap();
    assert_eq!(bench.read(&mut c, 1, 0, 8).unwrap(), bench.disk(1, 0, 8));
    // A long read: the pool holds far less than 8 x 512 KiB, so fewer and smaller commands.
    assert!(bench.read(&mut c, 1, 0, 5000).unwrap() == bench.disk(1, 0, 5000));
    let p = Pattern::Seeded(9);
    let summary = write(&mut bench, &mut c, 1, 0, 5000, p, PLAIN).unwrap();
    // 123 pages free: two 512 KiB or 256 KiB buffers do not fit, two of 128 KiB do, and two
    // keep the device busy while the next chunk is filled.
    assert_eq!(
        (summary.depth, summary.chunk_bytes),
        (2, 128 << 10),
        "{summary:?}"
    );
    assert!(bench.disk(1, 0, 5000) == p.bytes(0, 5000 * 512));
    assert!(c.teardown(&mut bench.hw()).iter().all(|s| s.ok));
    bench.assert_no_violations();
}

#[test]
fn a_pool_without_room_for_one_block_fails_with_the_pool_error() {
    let mut bench = Bench::with_pool(Faults::default(), 512 << 10);
    let mut c = bench.bind().unwrap();
    // Take every free page, leaving nothing for a data buffer.
    let free = bench.pool.usage().free_pages as usize;
    let hog = bench.pool.alloc("test", "hog", free * 4096).unwrap();
    let err = bench.read(&mut c, 1, 0, 1).unwrap_err();
    assert_eq!(err.code(), "dma-error", "{err}");
    assert!(err.to_string().contains("DMA pool exhausted"), "{err}");
    bench.pool.free(hog).unwrap();
    assert_eq!(bench.read(&mut c, 1, 0, 1).unwrap(), bench.disk(1, 0, 1));
}
