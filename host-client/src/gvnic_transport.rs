//! Which way the gVNIC model is attached to QEMU, and how that is chosen.
//!
//! - `proxy`: QEMU 7.2's multi-process `x-pci-proxy-dev` (an inherited socket). No interrupt
//!   path: MSI-X messages are recorded by the model only.
//! - `vfio-user`: QEMU 10.1+'s `vfio-user-pci` client; QEMU emulates the MSI-X table and the
//!   model raises vectors through eventfds, so interrupts reach the guest.
//!
//! The default is decided by asking the QEMU binary its version (`--version`): vfio-user from
//! 10.1 on (the first release with the client), the proxy before. The answer is cached per
//! binary for the life of the process.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// How the model is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GvnicTransport {
    /// QEMU 7.2's x-pci-proxy-dev (no interrupts reach the guest).
    Proxy,
    /// QEMU 10.1+'s vfio-user-pci (MSI-X delivered).
    VfioUser,
}

impl GvnicTransport {
    /// The first QEMU with the vfio-user client.
    pub const VFIO_USER_SINCE: (u32, u32) = (10, 1);

    /// The kebab-case name (`proxy`, `vfio-user`), as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GvnicTransport::Proxy => "proxy",
            GvnicTransport::VfioUser => "vfio-user",
        }
    }

    /// The default for a QEMU of this version (None: unknown, the proxy).
    pub fn for_version(version: Option<(u32, u32)>) -> GvnicTransport {
        match version {
            Some(v) if v >= Self::VFIO_USER_SINCE => GvnicTransport::VfioUser,
            _ => GvnicTransport::Proxy,
        }
    }

    /// The default for this QEMU binary (asks it its version once).
    pub fn for_binary(binary: &str) -> GvnicTransport {
        Self::for_version(qemu_version(binary))
    }
}

impl std::fmt::Display for GvnicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `(major, minor)` from "QEMU emulator version 11.1.3 (Debian ...)".
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// QEMU binary -> its version (None: it did not say).
type VersionCache = HashMap<String, Option<(u32, u32)>>;

/// The binary's version, None when it cannot be run or says something else.
pub fn qemu_version(binary: &str) -> Option<(u32, u32)> {
    static CACHE: OnceLock<Mutex<VersionCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().ok().and_then(|c| c.get(binary).copied()) {
        return v;
    }
    let v = Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)));
    if let Ok(mut c) = cache.lock() {
        c.insert(binary.to_string(), v);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_and_the_default_it_implies() {
        let v = |t| parse_version(t);
        assert_eq!(
            v("QEMU emulator version 11.1.3 (Debian 1:11.1.3+ds-2~bpo13+1)\nCopyright"),
            Some((11, 1))
        );
        assert_eq!(
            v("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u18)"),
            Some((7, 2))
        );
        assert_eq!(v("QEMU emulator version 10.0.2"), Some((10, 0)));
        assert_eq!(v("not qemu"), None);
        let t = GvnicTransport::for_version;
        assert_eq!(t(Some((7, 2))), GvnicTransport::Proxy);
        assert_eq!(t(Some((10, 0))), GvnicTransport::Proxy);
        assert_eq!(t(Some((10, 1))), GvnicTransport::VfioUser);
        assert_eq!(t(Some((11, 1))), GvnicTransport::VfioUser);
        assert_eq!(t(None), GvnicTransport::Proxy);
    }

    #[test]
    fn a_binary_that_does_not_run_means_the_proxy() {
        assert_eq!(
            GvnicTransport::for_binary("/nonexistent/qemu-system-x86_64"),
            GvnicTransport::Proxy
        );
    }
}
