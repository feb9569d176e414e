//! The vfio-user front end and the `Interrupts` hook.
//!
//! - The hook: with it set, an asserted vector goes to the hook, never to the device's own
//!   MSI-X table (which stays disabled and masked, as under vfio-user where QEMU owns it), and
//!   the notification-block rules still decide when (a masked GQI block raises nothing).
//! - The protocol: rust-vmm's own `vfio_user::Client` against `vfio_user::serve` over a real
//!   socket: config space (identity, MSI-X capability in BAR1), the region sizes, DMA through
//!   a mapped memfd (the admin queue runs from it), and an MSI-X vector raised through the
//!   eventfd SET_IRQS installed.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gvnic_model::adminq::status;
use gvnic_model::regs::*;
use gvnic_model::{Gvnic, Interrupts, ModelConfig};

#[derive(Clone, Default)]
struct Raised(Arc<Mutex<Vec<u16>>>);

impl Interrupts for Raised {
    fn raise(&mut self, vector: u16) -> bool {
        self.0.lock().unwrap().push(vector);
        true
    }
}

#[test]
fn the_hook_gets_block_vectors_and_the_device_table_is_bypassed() {
    let mut h = H::rev(0);
    let raised = Raised::default();
    h.dev.set_interrupts(Box::new(raised.clone()));
    h.bring_up(); // both blocks masked (iPXE's order)
    h.send(&udp_test_frame(60, 1), 0);
    assert!(
        raised.0.lock().unwrap().is_empty(),
        "block masked: no vector"
    );
    let db = h.irq_db(0);
    h.db(db, 0); // unmask, as Linux's turn-up does: the held event raises vector 0
    assert_eq!(raised.0.lock().unwrap().as_slice(), &[0]);
    h.send(&udp_test_frame(60, 1), 1);
    assert_eq!(raised.0.lock().unwrap().as_slice(), &[0, 0]);
    // MSI-X was never enabled in the device's config space and every table entry is still
    // masked: the vector went out only because the transport owns the table.
    assert_eq!(h.dev.config_read(0x42, 2) & 0x8000, 0);
    let irq = h.dev.record().interrupts.last().cloned().unwrap();
    assert_eq!((irq.vector, irq.address, irq.written_to_ram), (0, 0, false));
}

const MEM_BYTES: u64 = 4 << 20;

fn memfd() -> std::fs::File {
    // SAFETY: a NUL-terminated name and no flags; the fd is owned by the File below.
    let fd = unsafe { libc::memfd_create(c"guest-ram".as_ptr(), 0) };
    assert!(fd >= 0);
    // SAFETY: a fresh fd nothing else owns.
    let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.set_len(MEM_BYTES).unwrap();
    f
}

fn eventfd() -> std::fs::File {
    // SAFETY: plain eventfd creation; the fd is owned by the File below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(fd >= 0);
    // SAFETY: a fresh fd nothing else owns.
    std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pwrite(f: &std::fs::File, at: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    f.write_all_at(data, at).unwrap();
}

fn pread(f: &std::fs::File, at: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0; len];
    f.read_exact_at(&mut b, at).unwrap();
    b
}

#[test]
fn qemus_side_of_the_protocol_sees_the_device_its_dma_and_its_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gvnic.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (dev, served) =
            gvnic_model::vfio_user::serve(listener, Gvnic::new(ModelConfig::default()));
        (dev.record().commands.clone(), served.is_ok())
    });
    let mut c = vfio_user::Client::new(&path).expect("version negotiation");
    let cfg = |c: &mut vfio_user::Client, off: u64, len: usize| {
        let mut b = vec![0u8; len];
        c.region_read(7, off, &mut b).unwrap();
        b
    };
    assert_eq!(cfg(&mut c, 0, 4), [0xe0, 0x1a, 0x42, 0x00], "1ae0:0042");
    let cap = cfg(&mut c, 0x40, 12);
    assert_eq!(cap[0], 0x11, "MSI-X capability at 0x40");
    assert_eq!(cap[4] & 7, 1, "table in BAR1");
    assert_eq!(cap[8] & 7, 1, "PBA in BAR1");
    let vectors = (u16::from_le_bytes([cap[2], cap[3]]) & 0x7ff) + 1;
    let sizes: Vec<u64> = (0..3).map(|i| c.region(i).unwrap().size).collect();
    assert_eq!(sizes, [0x1000, 0x1000, 0x10000]);

    // Guest RAM: a memfd mapped at 0 (QEMU maps guest RAM at its guest physical address).
    let ram = memfd();
    c.dma_map(0, 0, MEM_BYTES, ram.as_raw_fd()).unwrap();
    c.region_write(7, 0x04, &0x0006u16.to_le_bytes()).unwrap(); // memory + bus master
                                                                // The admin queue runs from the mapped memory: DESCRIBE answered in RAM.
    c.region_write(0, ADMINQ_PFN, &((AQ >> 12) as u32).to_be_bytes())
        .unwrap();
    let mut cmd = be_cmd(gvnic_model::adminq::opcode::DESCRIBE_DEVICE);
    put64(&mut cmd, 8, DESC);
    put32(&mut cmd, 16, 1); // version
    put32(&mut cmd, 20, 4096);
    pwrite(&ram, AQ, &cmd);
    c.region_write(0, ADMINQ_DOORBELL, &1u32.to_be_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pread(&ram, AQ + 4, 4) != status::PASSED.to_be_bytes() {
        assert!(
            Instant::now() < deadline,
            "DESCRIBE never completed in the memfd"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mac = pread(&ram, DESC + 24, 6);
    assert_eq!(
        mac,
        [0x42, 0x01, 0x0a, 0x80, 0x00, 0x02],
        "DESCRIBE wrote the MAC"
    );

    // MSI-X: one eventfd for the last vector (the management vector with base index 0);
    // DATA_NONE | TRIGGER raises it, as QEMU's loopback does.
    let ev = eventfd();
    let last = u32::from(vectors) - 1;
    use vfio_bindings::bindings::vfio::*;
    c.set_irqs(
        VFIO_PCI_MSIX_IRQ_INDEX,
        VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        last,
        1,
        &[ev.as_raw_fd()],
    )
    .unwrap();
    c.set_irqs(
        VFIO_PCI_MSIX_IRQ_INDEX,
        VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
        last,
        1,
        &[],
    )
    .unwrap();
    let mut n = [0u8; 8];
    (&ev)
        .read_exact(&mut n)
        .expect("the vector's eventfd was signalled");
    assert_eq!(u64::from_ne_bytes(n), 1);
    c.shutdown().unwrap();
    drop(c);
    let (commands, ok) = server.join().unwrap();
    assert!(ok, "QEMU closing the socket ends serving cleanly");
    assert_eq!(commands.len(), 1);
    let _ = std::io::stdout().flush();
}

/// `gvnic-model --vfio-user PATH --record FILE`: the record is written when QEMU closes the
/// socket, and on SIGTERM while QEMU is connected or before it ever connected.
#[test]
fn the_vfio_user_binary_writes_its_record_on_close_and_on_sigterm() {
    for case in ["close", "sigterm", "sigterm-before-connect"] {
        let dir = tempfile::tempdir().unwrap();
        let (sock, rec) = (
            dir.path().join("gvnic.sock"),
            dir.path().join("record.json"),
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gvnic-model"))
            .arg("--vfio-user")
            .arg(&sock)
            .arg("--record")
            .arg(&rec)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "{case}: no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        let client = (case != "sigterm-before-connect").then(|| {
            let mut c = vfio_user::Client::new(&sock).expect("version negotiation");
            let mut id = [0u8; 4];
            c.region_read(7, 0, &mut id).unwrap();
            assert_eq!(id, [0xe0, 0x1a, 0x42, 0x00]);
            c
        });
        if case == "close" {
            drop(client);
        } else {
            // SAFETY: kill(2) on our own child's pid.
            assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        }
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "{case}: the model did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{case}: {status}");
        let r = gvnic_model::record_file::read_record(&rec).expect("record written");
        assert!(r.summary.clean(), "{case}");
        assert!(r.final_state.is_reset, "{case}");
    }
}
