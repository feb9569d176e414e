//! Attaching the gVNIC device model to QEMU: a UNIX socketpair, the model serving one end in
//! a thread of this process (`gvnic_model::proxy::serve`), QEMU inheriting the other end as
//! `-device x-pci-proxy-dev,fd=N` (reference: qemu-multiprocess-proxy.md).

use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use anyhow::Result;

use crate::qemu::GvnicOptions;

/// The two ends while QEMU starts.
pub struct Attachment {
    /// Handed to QEMU (FD_CLOEXEC cleared in the child only).
    pub qemu_end: Option<UnixStream>,
    /// The model thread serving the other end until QEMU closes it.
    pub thread: Option<JoinHandle<Result<()>>>,
}

impl Attachment {
    /// Drops our copy of QEMU's end once QEMU has inherited it, so the model sees EOF when
    /// QEMU exits.
    pub fn close_qemu_end(&mut self) {
        // Close, never shut down: the socket itself must stay open for QEMU.
        self.qemu_end = None;
    }
}

pub fn attach(opts: &GvnicOptions) -> Result<Attachment> {
    let (model_end, qemu_end) = UnixStream::pair()?;
    let config = model_config(opts);
    let pcap = opts.pcap.clone();
    let thread = std::thread::Builder::new()
        .name("gvnic-model".into())
        .spawn(move || gvnic_model::proxy::serve(model_end, config, pcap))?;
    Ok(Attachment {
        qemu_end: Some(qemu_end),
        thread: Some(thread),
    })
}

fn model_config(opts: &GvnicOptions) -> gvnic_model::ModelConfig {
    let mut config = opts.extra.clone().unwrap_or_default();
    config.revision = opts.revision;
    if let Some(mac) = opts.mac {
        config.mac = mac;
    }
    if opts.dqo_only {
        config.formats = gvnic_model::Formats::dqo_only();
    }
    config
}
