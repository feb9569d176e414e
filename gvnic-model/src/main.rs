//! `gvnic-model`: serve the gVNIC model to one QEMU: to 7.2's `x-pci-proxy-dev` over an
//! inherited socket (`--fd N`) or a UNIX socket path it listens on (`--socket PATH`), or as a
//! vfio-user server for QEMU 10.1+'s `vfio-user-pci` (`--vfio-user PATH`).

mod vfio_user_main;

use std::os::fd::FromRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gvnic_model::{DeviceIsReset, Formats, ModelConfig};

#[derive(Parser)]
#[command(
    version,
    about = "gVNIC device model for QEMU: 7.2's x-pci-proxy-dev (--fd/--socket) or 10.1+'s vfio-user-pci (--vfio-user)"
)]
struct Args {
    /// An inherited, connected UNIX stream socket (QEMU has the other end as `fd=`).
    #[arg(long, conflicts_with_all = ["socket", "vfio_user"])]
    fd: Option<i32>,
    /// Listen on this UNIX socket path and serve the first connection (x-pci-proxy-dev).
    #[arg(long, conflicts_with = "vfio_user")]
    socket: Option<PathBuf>,
    /// Listen on this UNIX socket path as a vfio-user server and serve the first connection
    /// (`-device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":PATH}}'`; guest
    /// RAM must be memory-backend-memfd,share=on). MSI-X interrupts reach the guest.
    #[arg(long, value_name = "PATH")]
    vfio_user: Option<PathBuf>,
    /// Write every TX/RX frame to this pcap file.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// PCI revision: 0 (AQ by PFN) or 1 (AQ by base/length/RUN).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    revision: u8,
    /// MAC address, aa:bb:cc:dd:ee:ff.
    #[arg(long, value_parser = parse_mac)]
    mac: Option<[u8; 6]>,
    /// Queue formats DESCRIBE_DEVICE offers: a comma list of gqi-qpl, gqi-rda, dqo-rda,
    /// dqo-qpl, or `none` (no format option: an old device, drivers fall back to GQI-QPL).
    #[arg(long, default_value = "gqi-qpl")]
    formats: Formats,
    /// Device generation: 2024 (queue-format options only) or 2026 (also MODIFY_RING,
    /// JUMBO_FRAMES, BUFFER_SIZES, FLOW_STEERING, NIC_TIMESTAMP, RSS_CONFIG).
    #[arg(long, default_value = "2026")]
    profile: gvnic_model::Profile,
    /// When DEVICE_IS_RESET (revision 1) clears: at RUN, only at the next reset request, or never.
    #[arg(long, value_enum, default_value_t = ResetBit::Run)]
    reset_bit_clears_on: ResetBit,
    /// DEVICE_IS_RESET (revision 1) at power-on and after a PCI reset: set, or clear (a
    /// pristine device that says nothing; PFN reading 0 is what tells it is reset).
    #[arg(long, value_enum, default_value_t = PowerOnBit::Set)]
    power_on_reset_bit: PowerOnBit,
    /// Reset an already-reset device (PFN reads 0) and it resets itself again this many ms
    /// later, as iPXE saw GCE do ("a few seconds"; 3000 is the model's guess). Off unless given.
    #[arg(long, value_name = "MS")]
    delayed_reset_ms: Option<u32>,
    /// No built-in DHCP/ARP responder.
    #[arg(long)]
    no_responder: bool,
    /// Write the record (admin commands with statuses, violations, resets, MSI-X messages,
    /// final device state) to FILE as JSON when QEMU closes the socket or on SIGTERM.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Exchange frames with Linux TAP interface IFNAME (created if missing) instead of the
    /// built-in responder.
    #[arg(long, value_name = "IFNAME")]
    tap: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PowerOnBit {
    Set,
    Clear,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ResetBit {
    Run,
    ResetRequest,
    Never,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s:?}: expected six hex bytes separated by ':'"));
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|e| format!("{s:?}: {e}"))?;
    }
    Ok(mac)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = ModelConfig {
        revision: args.revision,
        ..Default::default()
    };
    if let Some(mac) = args.mac {
        config.mac = mac;
    }
    config.formats = args.formats.clone();
    config.profile = args.profile;
    config.device_is_reset = match args.reset_bit_clears_on {
        ResetBit::Run => DeviceIsReset::ClearedByRun,
        ResetBit::ResetRequest => DeviceIsReset::ClearedByResetRequest,
        ResetBit::Never => DeviceIsReset::NeverCleared,
    };
    config.device_is_reset_at_power_on = args.power_on_reset_bit == PowerOnBit::Set;
    if let Some(ms) = args.delayed_reset_ms {
        let ticks = u64::from(ms) * 1000 / gvnic_model::TICK_US;
        config.faults.delayed_reset_after_redundant_reset =
            Some(u32::try_from(ticks).unwrap_or(u32::MAX));
    }
    config.responder.enabled = !args.no_responder && args.tap.is_none();
    if let Some(path) = &args.vfio_user {
        let dev = device(config, &args)?;
        return vfio_user_main::serve(path, dev, args.record.as_deref());
    }
    let stream = match (args.fd, &args.socket) {
        (Some(fd), _) => {
            if fd < 3 {
                bail!("--fd {fd} is stdin/stdout/stderr, not a socket");
            }
            // SAFETY: the user states fd N is an inherited socket this process now owns;
            // nothing else in the process uses it.
            unsafe { UnixStream::from_raw_fd(fd) }
        }
        (None, Some(path)) => {
            let _ = std::fs::remove_file(path);
            let l =
                UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
            let (s, _) = l.accept().context("accepting QEMU's connection")?;
            s
        }
        (None, None) => bail!("give --fd N, --socket PATH or --vfio-user PATH"),
    };
    let mut dev = device(config, &args)?;
    stop_on_sigterm(&stream)?;
    let served = gvnic_model::proxy::serve_device(stream, &mut dev);
    if let Some(path) = &args.record {
        gvnic_model::record_file::write_record(&dev, path)
            .with_context(|| format!("writing the record to {}", path.display()))?;
    }
    served
}

/// The device with its pcap and TAP attached.
fn device(config: ModelConfig, args: &Args) -> Result<gvnic_model::Gvnic> {
    let mut dev = gvnic_model::Gvnic::new(config);
    if let Some(p) = &args.pcap {
        dev.set_pcap(p)
            .with_context(|| format!("opening pcap {}", p.display()))?;
    }
    if let Some(name) = &args.tap {
        let tap =
            gvnic_model::tap::Tap::open(name).with_context(|| format!("opening TAP {name}"))?;
        dev.set_peer(gvnic_model::wire::Peer::Tap(tap))?;
    }
    Ok(dev)
}

/// SIGTERM ends serving the way QEMU closing the socket does (our end is shut down), so the
/// record is still written. SIGTERM is blocked in every thread and taken by a watcher.
fn stop_on_sigterm(stream: &UnixStream) -> Result<()> {
    let watch = stream.try_clone().context("cloning the QEMU socket")?;
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before use; blocking
    // SIGTERM in this thread (and the threads it spawns) has no memory effects.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: sigwait reads the initialised set and writes the signal number into a
            // local; SIGTERM is blocked, so it is delivered here only.
            while unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                if sig == libc::SIGTERM {
                    eprintln!("gvnic-model: SIGTERM, stopping");
                    let _ = watch.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        })
        .context("starting the SIGTERM watcher")?;
    Ok(())
}
