//! Networking for the monitor: smoltcp (no_std, polling) over any [`nic::Nic`], plus the
//! hand-built DHCP DISCOVER and classifier `gvnic txdhcp` keeps as wire evidence.
//!
//! - [`nic`]: the driver seam (`Nic`); [`gvnic_nic`] implements it for the gVNIC.
//! - [`phy`]: smoltcp's device over a `Nic`, and the frame trace. Imports smoltcp.
//! - [`iface`]: the interface and its poll loop: DHCP lease, ping, one TCP exchange.
//!   Imports smoltcp.
//! - [`lease`]: the lease, GCE's /32 widening and option 121 (pure).
//! - [`http`]: URL, request bytes, bounded response reader with a digest (pure).
//! - [`error`]: `NetError` and its stable codes.
//! - `dhcp`, `ethernet`, `ipv4`, `udp`, `checksum`: the hand-built DISCOVER/OFFER probe.
pub mod checksum;
pub mod dhcp;
pub mod error;
pub mod ethernet;
pub mod gvnic_nic;
pub mod http;
pub mod iface;
pub mod ipv4;
pub mod lease;
pub mod nic;
pub mod phy;
pub mod udp;
