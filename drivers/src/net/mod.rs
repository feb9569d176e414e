//! Just enough networking to prove a NIC works: build a DHCP DISCOVER (Ethernet, IPv4, UDP,
//! BOOTP/DHCP, with correct checksums) and make sense of what comes back.
pub mod checksum;
pub mod dhcp;
pub mod ethernet;
pub mod ipv4;
pub mod udp;
