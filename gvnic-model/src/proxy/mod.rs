//! QEMU 7.2 multi-process front end: the model plays the remote end of
//! `-device x-pci-proxy-dev,fd=N` (reference/qemu-multiprocess-proxy.md). The proxy has no
//! interrupt path: MSI-X messages to the LAPIC are recorded only (msix.rs). Model time is
//! wall-clock time here, so the configured latencies are real.

mod memory;
pub mod protocol;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::Context;

pub use memory::MappedMemory;
use protocol::*;

use crate::{Gvnic, ModelConfig};

/// Idle poll interval: model time advances at least this often so delayed completions and
/// responder replies happen while the guest polls memory (which sends no messages).
const IDLE_TICK_MS: i32 = 5;

/// Serve one QEMU connection until QEMU closes the socket.
pub fn serve(stream: UnixStream, config: ModelConfig, pcap: Option<PathBuf>) -> anyhow::Result<()> {
    let mut dev = Gvnic::new(config);
    if let Some(p) = &pcap {
        dev.set_pcap(p)
            .with_context(|| format!("opening pcap {}", p.display()))?;
    }
    serve_device(stream, &mut dev)
}

/// Like `serve`, for a caller that prepared the device (peer socket, custom faults...).
pub fn serve_device(mut stream: UnixStream, dev: &mut Gvnic) -> anyhow::Result<()> {
    let mut mem = MappedMemory::default();
    // GVNIC_MODEL_TRACE=1 logs every message and reply to stderr (debugging a guest).
    let trace = std::env::var_os("GVNIC_MODEL_TRACE").is_some();
    let start = std::time::Instant::now();
    let base = dev.now_us();
    let clock = |dev: &mut Gvnic, mem: &MappedMemory| {
        dev.advance_to(base + start.elapsed().as_micros() as u64, mem);
    };
    loop {
        if !readable(&stream, IDLE_TICK_MS)? {
            clock(dev, &mem);
            continue;
        }
        let Some(msg) = recv(&mut stream).context("reading from QEMU")? else {
            return Ok(()); // QEMU closed the socket: exit cleanly
        };
        let (cmd, data) = (msg.cmd, msg.data.clone());
        let reply = handle(dev, &mut mem, msg);
        if trace {
            trace_msg(cmd, &data, reply, &mem);
        }
        if let Some(v) = reply {
            if let Err(e) = send_ret(&mut stream, v) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e).context("replying to QEMU");
            }
        }
        clock(dev, &mem);
    }
}

/// One message; returns the RET value to send, if the message wants one.
fn handle(dev: &mut Gvnic, mem: &mut MappedMemory, msg: Message) -> Option<u64> {
    match msg.cmd {
        SYNC_SYSMEM => {
            match parse_sync_sysmem(&msg.data, msg.fds.len()) {
                Some(layout) => mem.remap(&layout, msg.fds),
                None => eprintln!(
                    "gvnic-model: SYNC_SYSMEM with {} fds and {} bytes: guest RAM not shared? (use memory-backend-memfd,share=on)",
                    msg.fds.len(),
                    msg.data.len()
                ),
            }
            None
        }
        // The proxy hands us INTx eventfds; the model never raises interrupts.
        SET_IRQFD => None,
        PCI_CFGREAD => Some(match parse_pci_conf(&msg.data) {
            Some(c) => u64::from(dev.config_read(c.addr as u16, c.len as u8)),
            None => RET_ERROR,
        }),
        PCI_CFGWRITE => Some(match parse_pci_conf(&msg.data) {
            Some(c) => {
                dev.config_write(c.addr as u16, c.len as u8, c.val);
                0
            }
            None => RET_ERROR,
        }),
        BAR_READ => Some(match parse_bar_access(&msg.data) {
            Some(a) if a.memory => match dev.decode_bar(a.addr) {
                Some((bar, off)) => dev.bar_read(bar, off, a.size as u8, mem),
                None => crate::regs::all_ones(a.size as u8),
            },
            _ => RET_ERROR,
        }),
        BAR_WRITE => Some(match parse_bar_access(&msg.data) {
            Some(a) if a.memory => {
                if let Some((bar, off)) = dev.decode_bar(a.addr) {
                    dev.bar_write(bar, off, a.size as u8, a.val, mem);
                }
                0
            }
            _ => RET_ERROR,
        }),
        DEVICE_RESET => {
            dev.pci_reset();
            Some(0)
        }
        other => {
            eprintln!(
                "gvnic-model: unknown message {other} ({} bytes) ignored",
                msg.data.len()
            );
            Some(RET_ERROR)
        }
    }
}

fn readable(stream: &UnixStream, timeout_ms: i32) -> anyhow::Result<bool> {
    let mut p = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd on the stack for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("poll");
        }
    }
}

fn trace_msg(cmd: i32, data: &[u8], reply: Option<u64>, mem: &MappedMemory) {
    let r = reply.map(|v| format!(" -> {v:#x}")).unwrap_or_default();
    match cmd {
        PCI_CFGREAD | PCI_CFGWRITE => {
            if let Some(c) = parse_pci_conf(data) {
                let w = if cmd == PCI_CFGWRITE {
                    format!(" = {:#x}", c.val)
                } else {
                    String::new()
                };
                eprintln!(
                    "gvnic-model: cfg{} {:#04x}/{}{w}{r}",
                    if cmd == PCI_CFGREAD { "read" } else { "write" },
                    c.addr,
                    c.len
                );
            }
        }
        BAR_READ | BAR_WRITE => {
            if let Some(a) = parse_bar_access(data) {
                let w = if cmd == BAR_WRITE {
                    format!(" = {:#x}", a.val)
                } else {
                    String::new()
                };
                eprintln!(
                    "gvnic-model: bar{} {:#x}/{}{w}{r}",
                    if cmd == BAR_READ { "read" } else { "write" },
                    a.addr,
                    a.size
                );
            }
        }
        SYNC_SYSMEM => eprintln!("gvnic-model: sync_sysmem {:x?}", mem.regions()),
        _ => eprintln!("gvnic-model: message {cmd}{r}"),
    }
}
