//! QEMU 7.2 multi-process wire format (reference/qemu-multiprocess-proxy.md, "Wire format"):
//! a 16-byte header (`i32 cmd`, 4 pad, `u64 size`) then `size` payload bytes, all native
//! little-endian C structs; file descriptors ride on the same `sendmsg` as SCM_RIGHTS.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

pub const SYNC_SYSMEM: i32 = 0;
pub const RET: i32 = 1;
pub const PCI_CFGWRITE: i32 = 2;
pub const PCI_CFGREAD: i32 = 3;
pub const BAR_WRITE: i32 = 4;
pub const BAR_READ: i32 = 5;
pub const SET_IRQFD: i32 = 6;
pub const DEVICE_RESET: i32 = 7;

pub const HEADER_SIZE: usize = 16;
/// REMOTE_MAX_FDS: regions per SYNC_SYSMEM.
pub const MAX_FDS: usize = 8;
pub const SYNC_SYSMEM_SIZE: usize = 8 * MAX_FDS * 3;
pub const PCI_CONF_SIZE: usize = 12;
pub const BAR_ACCESS_SIZE: usize = 24;
/// Largest payload we accept (the biggest real one is SYNC_SYSMEM's 192 bytes).
const MAX_PAYLOAD: u64 = 4096;
/// "A u64 of all ones means error."
pub const RET_ERROR: u64 = u64::MAX;

/// One received message.
pub struct Message {
    pub cmd: i32,
    pub data: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Read one message; Ok(None) when QEMU closed the socket.
pub fn recv(stream: &mut UnixStream) -> io::Result<Option<Message>> {
    let mut hdr = [0u8; HEADER_SIZE];
    let mut got = 0;
    let mut fds = Vec::new();
    while got < HEADER_SIZE {
        let n = recvmsg_fds(stream, &mut hdr[got..], &mut fds)?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "socket closed inside a message header",
            ));
        }
        got += n;
    }
    let cmd = i32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let size = le_u64(&hdr, 8);
    if size > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message {cmd} claims {size} payload bytes"),
        ));
    }
    let mut data = vec![0u8; size as usize];
    stream.read_exact(&mut data)?;
    Ok(Some(Message { cmd, data, fds }))
}

/// recvmsg with room for MAX_FDS descriptors of SCM_RIGHTS.
fn recvmsg_fds(stream: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<libc::c_int>()) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)]; // u64 for cmsghdr alignment
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct; all-zero is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at a live iovec over `buf` and a control buffer of `space` bytes,
        // both outliving the call; the fd is the stream's open socket.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk it within
    // those bounds, and every SCM_RIGHTS payload is an array of c_int fds now owned by us.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const libc::c_int;
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<libc::c_int>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        eprintln!("gvnic-model: control data truncated (more than {MAX_FDS} fds?)");
    }
    Ok(n)
}

/// Send RET with a u64 (the read value, 0 for writes, all ones for an error).
pub fn send_ret(stream: &mut UnixStream, value: u64) -> io::Result<()> {
    let mut m = [0u8; HEADER_SIZE + 8];
    m[0..4].copy_from_slice(&RET.to_le_bytes());
    m[8..16].copy_from_slice(&8u64.to_le_bytes());
    m[16..24].copy_from_slice(&value.to_le_bytes());
    stream.write_all(&m)
}

/// PCI_CFGREAD / PCI_CFGWRITE payload.
pub struct PciConf {
    pub addr: u32,
    pub val: u32,
    pub len: i32,
}

pub fn parse_pci_conf(d: &[u8]) -> Option<PciConf> {
    (d.len() >= PCI_CONF_SIZE).then(|| PciConf {
        addr: le_u32(d, 0),
        val: le_u32(d, 4),
        len: le_u32(d, 8) as i32,
    })
}

/// BAR_READ / BAR_WRITE payload.
pub struct BarAccess {
    pub addr: u64,
    pub val: u64,
    pub size: u32,
    pub memory: bool,
}

pub fn parse_bar_access(d: &[u8]) -> Option<BarAccess> {
    (d.len() >= BAR_ACCESS_SIZE).then(|| BarAccess {
        addr: le_u64(d, 0),
        val: le_u64(d, 8),
        size: le_u32(d, 16),
        memory: d[20] != 0,
    })
}

/// SYNC_SYSMEM payload: (gpa, size, fd offset) per region, in fd order.
pub fn parse_sync_sysmem(d: &[u8], nfds: usize) -> Option<Vec<(u64, u64, i64)>> {
    if d.len() < SYNC_SYSMEM_SIZE || nfds > MAX_FDS {
        return None;
    }
    Some(
        (0..nfds)
            .map(|i| {
                (
                    le_u64(d, 8 * i),
                    le_u64(d, 64 + 8 * i),
                    le_u64(d, 128 + 8 * i) as i64,
                )
            })
            .collect(),
    )
}
