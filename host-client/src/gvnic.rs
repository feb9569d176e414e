//! Attaching the gVNIC device model to QEMU, the model serving in a thread of this process:
//!
//! - proxy: a UNIX socketpair, `gvnic_model::proxy::serve_device` on one end, QEMU inheriting
//!   the other as `-device x-pci-proxy-dev,fd=N` (reference: qemu-multiprocess-proxy.md);
//! - vfio-user: a listening UNIX socket in the run directory, `gvnic_model::vfio_user::serve`
//!   on it, QEMU connecting as `vfio-user-pci` (reference: qemu11-vfio-user.md).

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use gvnic_model::{CommandRecord, InterruptRecord, ResetRecord, Violation};

use crate::qemu::GvnicOptions;
use crate::GvnicTransport;

/// What the model held and saw when it stopped serving (QEMU gone): the device's own view,
/// to check against what the monitor reported.
///
/// It is taken when the proxy loop ends, i.e. after QEMU closed its end of the socket. A
/// session kills QEMU (SIGKILL: no PCI reset reaches the model on the way out), so this is
/// the state the guest's last command left.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelState {
    /// The device holds nothing: no admin queue, resources, QPLs or queues.
    pub is_reset: bool,
    /// Pages registered across all queue page lists.
    pub registered_pages: usize,
    /// Driver mistakes the model detected (alignment, DMA outside RAM, wrong state...).
    pub violations: Vec<Violation>,
    /// Every admin command executed, in order, with its status.
    pub admin_commands: Vec<CommandRecord>,
    /// Every reset, in order (PCI resets from QEMU included).
    pub resets: Vec<ResetRecord>,
    /// Every MSI-X vector the device asserted. Proxy: the message (address, data), recorded
    /// only (no interrupt path). vfio-user: raised through QEMU's eventfd (address and data 0:
    /// QEMU owns the table).
    pub interrupts: Vec<InterruptRecord>,
    /// The whole record as `gvnic-model --record FILE` writes it (summary, names, final
    /// state): what `bringup run`/`matrix` hold a run to (crate::model_verdict).
    pub record: gvnic_model::record_file::RecordFile,
    /// The queue format of every CONFIGURE_DEVICE_RESOURCES the device accepted, in order.
    pub configured_formats: Vec<gvnic_model::QueueFormat>,
}

impl ModelState {
    pub fn of(dev: &gvnic_model::Gvnic) -> ModelState {
        let record = dev.record();
        ModelState {
            is_reset: dev.is_reset(),
            registered_pages: dev.registered_pages(),
            violations: record.violations.clone(),
            admin_commands: record.commands.clone(),
            resets: record.resets.clone(),
            interrupts: record.interrupts.clone(),
            record: dev.record_file(),
            configured_formats: record.configured_formats.clone(),
        }
    }
}

/// Where the model thread leaves its final [`ModelState`] (None while it still serves).
pub type FinalState = Arc<Mutex<Option<ModelState>>>;

/// The two ends while QEMU starts.
pub struct Attachment {
    /// Proxy: handed to QEMU (FD_CLOEXEC cleared in the child only).
    pub qemu_end: Option<UnixStream>,
    /// vfio-user: the socket the model listens on, for QEMU to connect to.
    pub vfio_user_socket: Option<PathBuf>,
    /// The model thread serving the other end until QEMU closes it.
    pub thread: Option<JoinHandle<Result<()>>>,
    /// Filled in by the model thread when it stops serving.
    pub final_state: FinalState,
}

impl Attachment {
    /// Drops our copy of QEMU's end once QEMU has inherited it, so the model sees EOF when
    /// QEMU exits.
    pub fn close_qemu_end(&mut self) {
        // Close, never shut down: the socket itself must stay open for QEMU.
        self.qemu_end = None;
    }
}

/// Starts the model thread for `transport`; vfio-user listens on `socket` (in the run
/// directory, one per model).
pub fn attach(opts: &GvnicOptions, transport: GvnicTransport, socket: &Path) -> Result<Attachment> {
    match transport {
        GvnicTransport::Proxy => attach_proxy(opts),
        GvnicTransport::VfioUser => attach_vfio_user(opts, socket),
    }
}

/// The device as the options describe it, pcap and TAP attached (in the model thread).
fn device(
    config: gvnic_model::ModelConfig,
    pcap: Option<PathBuf>,
    tap: Option<gvnic_model::tap::Tap>,
) -> Result<gvnic_model::Gvnic> {
    let mut dev = gvnic_model::Gvnic::new(config);
    if let Some(p) = &pcap {
        dev.set_pcap(p)
            .with_context(|| format!("opening pcap {}", p.display()))?;
    }
    if let Some(tap) = tap {
        dev.set_peer(gvnic_model::wire::Peer::Tap(tap))?;
    }
    Ok(dev)
}

/// Opened here, before QEMU starts, so a bad name fails the start with its reason.
fn open_tap(opts: &GvnicOptions) -> Result<Option<gvnic_model::tap::Tap>> {
    opts.tap
        .as_deref()
        .map(|name| {
            gvnic_model::tap::Tap::open(name).with_context(|| format!("opening TAP {name}"))
        })
        .transpose()
}

fn attach_vfio_user(opts: &GvnicOptions, path: &Path) -> Result<Attachment> {
    let path = path.to_path_buf();
    // Bound before QEMU starts: vfio-user-pci connects during realize.
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("binding the vfio-user socket {}", path.display()))?;
    let (config, pcap, tap) = (model_config(opts), opts.pcap.clone(), open_tap(opts)?);
    let final_state = FinalState::default();
    let publish = final_state.clone();
    let thread = std::thread::Builder::new()
        .name("gvnic-model".into())
        .spawn(move || {
            let dev = device(config, pcap, tap)?;
            let (dev, served) = gvnic_model::vfio_user::serve(listener, dev);
            if let Ok(mut slot) = publish.lock() {
                *slot = Some(ModelState::of(&dev));
            }
            served
        })?;
    Ok(Attachment {
        qemu_end: None,
        vfio_user_socket: Some(path),
        thread: Some(thread),
        final_state,
    })
}

fn attach_proxy(opts: &GvnicOptions) -> Result<Attachment> {
    let (model_end, qemu_end) = UnixStream::pair()?;
    let config = model_config(opts);
    let pcap = opts.pcap.clone();
    let tap = open_tap(opts)?;
    let final_state = FinalState::default();
    let publish = final_state.clone();
    // `proxy::serve`, with the device kept here so its state outlives the connection.
    let thread = std::thread::Builder::new()
        .name("gvnic-model".into())
        .spawn(move || {
            let mut dev = device(config, pcap, tap)?;
            let served = gvnic_model::proxy::serve_device(model_end, &mut dev);
            if let Ok(mut slot) = publish.lock() {
                *slot = Some(ModelState::of(&dev));
            }
            served
        })?;
    Ok(Attachment {
        qemu_end: Some(qemu_end),
        vfio_user_socket: None,
        thread: Some(thread),
        final_state,
    })
}

fn model_config(opts: &GvnicOptions) -> gvnic_model::ModelConfig {
    let mut config = opts.extra.clone().unwrap_or_default();
    config.revision = opts.revision;
    if let Some(mac) = opts.mac {
        config.mac = mac;
    }
    if let Some(formats) = &opts.formats {
        config.formats = formats.clone();
    }
    if let Some(profile) = opts.profile {
        config.profile = profile;
    }
    // The real network behind the TAP answers; two DHCP servers would race.
    if opts.tap.is_some() {
        config.responder.enabled = false;
    }
    config
}
