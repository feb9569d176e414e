//! A Linux TAP device as the model's wire: every frame the guest sends is written to the
//! TAP, every frame read from it goes to the guest, so real servers (a DHCP server, the
//! kernel's ARP and ICMP, an HTTP server) answer the driver instead of the built-in
//! responder.
//!
//! The device is attached by name (TUNSETIFF with IFF_TAP | IFF_NO_PI: plain Ethernet
//! frames, no packet-information header); a missing one is created and goes away when the
//! model closes it. The open file keeps working if the interface is then moved into
//! another network namespace, which is how the system tests keep it away from the host's
//! own network.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

/// Linux limits interface names to IFNAMSIZ (16) bytes including the NUL.
const IFNAMSIZ: usize = 16;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (a short) at the start of
/// the union; the union is 24 bytes on 64-bit Linux.
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Opens (or creates) TAP interface `name`, non-blocking.
    pub fn open(name: &str) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['/', ' ', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a Linux interface name (1 to 15 bytes, no '/' or space)"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; IFNAMSIZ],
            flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is a live, properly
        // sized and aligned ifreq for the duration of the call, on a descriptor we own.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain fcntl on a descriptor we own; no memory is passed.
        let rc = unsafe {
            let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One frame out (the whole frame, or an error).
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }

    /// One frame in, or WouldBlock.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }
}
