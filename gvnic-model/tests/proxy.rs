//! The QEMU multi-process front end, driven by a fake QEMU over a socketpair with a memfd as
//! guest RAM: SYNC_SYSMEM + SCM_RIGHTS, config and BAR forwarding by absolute address, RET
//! replies, DMA into the shared mapping, clean exit on close.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use gvnic_model::proxy::protocol::*;
use gvnic_model::ModelConfig;

const RAM: usize = 1 << 20;

fn send(s: &mut UnixStream, cmd: i32, payload: &[u8], fd: Option<i32>) {
    let mut m = Vec::new();
    m.extend_from_slice(&cmd.to_le_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    m.extend_from_slice(payload);
    match fd {
        None => s.write_all(&m).unwrap(),
        Some(fd) => {
            let mut iov = libc::iovec {
                iov_base: m.as_mut_ptr().cast(),
                iov_len: m.len(),
            };
            // SAFETY: test-only sendmsg with one fd; buffers live across the call.
            unsafe {
                let space = libc::CMSG_SPACE(4) as usize;
                let mut cbuf = vec![0u64; space.div_ceil(8)];
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cbuf.as_mut_ptr().cast();
                msg.msg_controllen = space as _;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(4) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut i32, fd);
                assert_eq!(libc::sendmsg(s.as_raw_fd(), &msg, 0), m.len() as isize);
            }
        }
    }
}

fn ret(s: &mut UnixStream) -> u64 {
    let mut b = [0u8; 24];
    s.read_exact(&mut b).unwrap();
    assert_eq!(i32::from_le_bytes(b[0..4].try_into().unwrap()), RET);
    assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 8);
    u64::from_le_bytes(b[16..24].try_into().unwrap())
}

fn cfg(s: &mut UnixStream, write: Option<u32>, addr: u32, len: i32) -> u64 {
    let mut p = Vec::new();
    p.extend_from_slice(&addr.to_le_bytes());
    p.extend_from_slice(&write.unwrap_or(0).to_le_bytes());
    p.extend_from_slice(&len.to_le_bytes());
    send(
        s,
        if write.is_some() {
            PCI_CFGWRITE
        } else {
            PCI_CFGREAD
        },
        &p,
        None,
    );
    ret(s)
}

fn bar(s: &mut UnixStream, write: Option<u64>, addr: u64, size: u32) -> u64 {
    let mut p = Vec::new();
    p.extend_from_slice(&addr.to_le_bytes());
    p.extend_from_slice(&write.unwrap_or(0).to_le_bytes());
    p.extend_from_slice(&size.to_le_bytes());
    p.extend_from_slice(&[1, 0, 0, 0]);
    send(
        s,
        if write.is_some() { BAR_WRITE } else { BAR_READ },
        &p,
        None,
    );
    ret(s)
}

#[test]
fn fake_qemu_drives_describe_through_the_proxy() {
    // SAFETY: memfd_create/ftruncate/mmap on a fresh fd owned by this test.
    let (fd, ram) = unsafe {
        let fd = libc::memfd_create(c"guest-ram".as_ptr(), 0);
        assert!(fd >= 0);
        assert_eq!(libc::ftruncate(fd, RAM as libc::off_t), 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            RAM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        (fd, p as *mut u8)
    };
    let (model_end, mut q) = UnixStream::pair().unwrap();
    let mac = [0x42, 1, 2, 3, 4, 5];
    let model = std::thread::spawn(move || {
        gvnic_model::proxy::serve(
            model_end,
            ModelConfig {
                mac,
                ..Default::default()
            },
            None,
        )
    });

    // Guest RAM: one region at GPA 0 from fd offset 0.
    let mut sys = vec![0u8; 192];
    sys[64..72].copy_from_slice(&(RAM as u64).to_le_bytes());
    send(&mut q, SYNC_SYSMEM, &sys, Some(fd));
    send(&mut q, SET_IRQFD, &[], None);
    assert_eq!(cfg(&mut q, None, 0, 4), 0x0042_1ae0);
    assert_eq!(cfg(&mut q, None, 0x2e, 2), 0x58);
    // Firmware-style BAR sizing and assignment, then memory + bus master.
    assert_eq!(cfg(&mut q, Some(0xffff_ffff), 0x18, 4), 0);
    assert_eq!(cfg(&mut q, None, 0x18, 4), 0xffff_0000);
    cfg(&mut q, Some(0xfebe_0000), 0x18, 4);
    cfg(&mut q, Some(0xfebf_0000), 0x10, 4);
    cfg(&mut q, Some(0xfebf_1000), 0x14, 4);
    cfg(&mut q, Some(0x6), 0x04, 2);

    // BAR0 read by absolute address: MAX_TX_QUEUES (BE32 4).
    assert_eq!(u32::from_be(bar(&mut q, None, 0xfebf_0008, 4) as u32), 4);
    // An address no BAR decodes reads all ones.
    assert_eq!(bar(&mut q, None, 0xfec0_0000, 4), 0xffff_ffff);

    // DESCRIBE_DEVICE through an AQ at 0x10000 in the shared RAM.
    let mut cmd = [0u8; 64];
    cmd[3] = 1;
    cmd[8..16].copy_from_slice(&0x20000u64.to_be_bytes());
    cmd[16..20].copy_from_slice(&1u32.to_be_bytes());
    cmd[20..24].copy_from_slice(&4096u32.to_be_bytes());
    // SAFETY: inside the RAM mapping.
    unsafe { std::ptr::copy_nonoverlapping(cmd.as_ptr(), ram.add(0x10000), 64) };
    bar(&mut q, Some(u64::from(0x10u32.to_be())), 0xfebf_0010, 4); // PFN
    bar(&mut q, Some(u64::from(1u32.to_be())), 0xfebf_0014, 4); // doorbell
                                                                // The admin latency runs on wall-clock time here: poll the event counter.
    let started = std::time::Instant::now();
    while u32::from_be(bar(&mut q, None, 0xfebf_0018, 4) as u32) != 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "no completion"
        );
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    let mut status = [0u8; 4];
    let mut desc_mac = [0u8; 6];
    // SAFETY: inside the RAM mapping.
    unsafe {
        std::ptr::copy_nonoverlapping(ram.add(0x10004), status.as_mut_ptr(), 4);
        std::ptr::copy_nonoverlapping(ram.add(0x20000 + 24), desc_mac.as_mut_ptr(), 6);
    }
    assert_eq!(u32::from_be_bytes(status), 1, "PASSED");
    assert_eq!(desc_mac, mac);

    // DEVICE_RESET resets config space; replies RET.
    send(&mut q, DEVICE_RESET, &[], None);
    assert_eq!(ret(&mut q), 0);
    assert_eq!(cfg(&mut q, None, 0x10, 4), 0);

    drop(q);
    model
        .join()
        .unwrap()
        .expect("clean exit when QEMU closes the socket");
    // SAFETY: unmapping our own mapping and closing our fd.
    unsafe {
        libc::munmap(ram.cast(), RAM);
        libc::close(fd);
    }
}
