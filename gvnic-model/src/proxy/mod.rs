//! QEMU 7.2 multi-process front end (placeholder until the protocol module lands).
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use crate::ModelConfig;

pub fn serve(stream: UnixStream, config: ModelConfig, pcap: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = (stream, config, pcap);
    anyhow::bail!("not yet implemented")
}
