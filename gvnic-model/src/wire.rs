//! The wire: every TX and RX frame is recorded, optionally written to a pcap file
//! (LINKTYPE_ETHERNET) and optionally exchanged with another process over a datagram socket.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Gvnic;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the guest.
    Tx,
    /// Received from the network (delivered to the guest unless `dropped` says why not).
    Rx,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireFrame {
    pub direction: Direction,
    pub bytes: Vec<u8>,
    /// Model tick (`TICK_US` of model time) at which it crossed the wire.
    pub tick: u64,
    /// For RX frames the guest did not get: why.
    pub dropped: Option<&'static str>,
}

/// Another process on the same "network": one datagram per Ethernet frame.
pub enum Peer {
    Udp {
        socket: UdpSocket,
        remote: SocketAddr,
    },
    /// A connected UNIX datagram socket.
    Unix(UnixDatagram),
    /// A Linux TAP interface (opened non-blocking).
    Tap(crate::tap::Tap),
}

impl Peer {
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Peer::Udp { socket, .. } => socket.set_nonblocking(true),
            Peer::Unix(s) => s.set_nonblocking(true),
            Peer::Tap(_) => Ok(()),
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<usize> {
        match self {
            Peer::Udp { socket, remote } => socket.send_to(frame, remote),
            Peer::Unix(s) => s.send(frame),
            Peer::Tap(t) => t.send(frame),
        }
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Peer::Udp { socket, .. } => socket.recv(buf),
            Peer::Unix(s) => s.recv(buf),
            Peer::Tap(t) => t.recv(buf),
        }
    }
}

#[derive(Default)]
pub(crate) struct Wire {
    pub frames: Vec<WireFrame>,
    /// Inbound frames not yet delivered: (due tick, bytes).
    pub pending_rx: VecDeque<(u64, Vec<u8>)>,
    pub pcap: Option<BufWriter<File>>,
    pub peer: Option<Peer>,
}

/// pcap global header fields.
const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
const PCAP_SNAPLEN: u32 = 65535;
const LINKTYPE_ETHERNET: u32 = 1;

impl Wire {
    pub fn set_pcap(&mut self, path: &Path) -> io::Result<()> {
        let mut w = BufWriter::new(File::create(path)?);
        w.write_all(&PCAP_MAGIC.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?; // version 2.4
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&0i32.to_le_bytes())?; // thiszone
        w.write_all(&0u32.to_le_bytes())?; // sigfigs
        w.write_all(&PCAP_SNAPLEN.to_le_bytes())?;
        w.write_all(&LINKTYPE_ETHERNET.to_le_bytes())?;
        w.flush()?;
        self.pcap = Some(w);
        Ok(())
    }

    fn pcap_write(&mut self, frame: &[u8]) {
        let Some(w) = self.pcap.as_mut() else { return };
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let len = frame.len() as u32;
        let res = (|| -> io::Result<()> {
            w.write_all(&(t.as_secs() as u32).to_le_bytes())?;
            w.write_all(&t.subsec_micros().to_le_bytes())?;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(frame)?;
            // Flushed per frame so the file is readable while the model runs.
            w.flush()
        })();
        if let Err(e) = res {
            eprintln!("gvnic-model: pcap write failed, pcap disabled: {e}");
            self.pcap = None;
        }
    }

    pub fn record_rx(&mut self, bytes: Vec<u8>, tick: u64, dropped: Option<&'static str>) {
        self.pcap_write(&bytes);
        self.frames.push(WireFrame {
            direction: Direction::Rx,
            bytes,
            tick,
            dropped,
        });
    }
}

/// Frames the device holds for the guest at most (guess): more are dropped.
const RX_BACKLOG: usize = crate::format::gqi_rx::RX_BACKLOG;

impl Gvnic {
    /// A frame the guest transmitted: record it, capture it, hand it to the peer and the
    /// built-in responder.
    pub(crate) fn emit_tx(&mut self, frame: Vec<u8>) {
        self.wire.pcap_write(&frame);
        if let Some(p) = self.wire.peer.as_ref() {
            if let Err(e) = p.send(&frame) {
                eprintln!("gvnic-model: peer send failed: {e}");
            }
        }
        let replies = crate::responder::respond(&self.cfg, &frame);
        let due =
            self.now + u64::from(self.cfg.responder.reply_delay_ticks) * crate::device::TICK_US;
        for r in replies {
            self.queue_rx(due, r);
        }
        self.wire.frames.push(WireFrame {
            direction: Direction::Tx,
            bytes: frame,
            tick: self.now_ticks(),
            dropped: None,
        });
    }

    /// A frame reaching the device at model time `due`; it is delivered after the RX arrival
    /// latency.
    pub(crate) fn queue_rx(&mut self, due: u64, frame: Vec<u8>) {
        if self.wire.pending_rx.len() >= RX_BACKLOG {
            self.nic_counters.no_buffers += 1;
            let t = self.now_ticks();
            self.wire
                .record_rx(frame, t, Some("device RX backlog full"));
        } else {
            let due = due + self.cfg.latencies.rx_arrival_us;
            self.wire.pending_rx.push_back((due, frame));
        }
    }

    /// Pull datagrams from the peer (non-blocking) into the RX backlog.
    pub(crate) fn poll_peer(&mut self) {
        let mut buf = vec![0u8; 65536];
        for _ in 0..64 {
            let Some(p) = self.wire.peer.as_ref() else {
                return;
            };
            match p.recv(&mut buf) {
                Ok(n) => {
                    let f = buf[..n].to_vec();
                    self.queue_rx(self.now, f);
                }
                Err(_) => return,
            }
        }
    }
}
