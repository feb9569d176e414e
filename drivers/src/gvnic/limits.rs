//! What the driver uses, given the limits the device options set ([`DeviceLimits`]): ring
//! sizes inside MODIFY_RING's range, a packet buffer size BUFFER_SIZES allows, and the MTU
//! (the lease's when JUMBO_FRAMES allows it). Pure arithmetic, decided before the device is
//! told anything, so a limit this driver cannot meet fails without touching the device.

use alloc::string::String;

use super::addressing::BUF_BYTES;
use super::describe::DeviceDescriptor;
use super::options::DeviceLimits;
use super::GvnicError;

/// The smallest ring we create: GQI RX keeps 64 buffers posted (iPXE's GCE finding), and
/// its data ring must hold them (policy).
pub const MIN_RING_ENTRIES: u16 = 64;
/// The smallest packet buffer we accept from BUFFER_SIZES: an RX frame may span buffers
/// (GQI PKT_CONT, DQO multi-buffer), but below 1 KiB the buffer budget of 64 buffers no
/// longer holds a handful of full-size frames (policy, guess).
pub const MIN_PACKET_BUFFER_BYTES: u16 = 1024;
/// Ethernet header bytes the MTU does not count.
const ETHERNET_HEADER_BYTES: usize = 14;
/// The largest MTU this driver's data path carries: a TX frame is one 2 KiB buffer.
pub const DATAPATH_MAX_MTU: u16 = (BUF_BYTES - ETHERNET_HEADER_BYTES) as u16;

/// The ring sizes and RX packet buffer size CREATE_*_QUEUE will be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPlan {
    pub tx_entries: u16,
    pub rx_entries: u16,
    pub packet_buffer_bytes: u16,
}

/// `default` if it lies in `min..=max`, else the power of two in that range nearest to it.
fn fit_ring(what: &str, default: u16, min: u16, max: u16) -> Result<u16, GvnicError> {
    let min = min.max(MIN_RING_ENTRIES);
    if (min..=max).contains(&default) && default.is_power_of_two() {
        return Ok(default);
    }
    // Largest power of two <= max, then halve towards min.
    let mut size = if max == 0 {
        0
    } else {
        1u16 << (15 - max.leading_zeros())
    };
    while size > default && size / 2 >= min {
        size /= 2;
    }
    if size < min || size == 0 {
        return Err(GvnicError::OptionLimit(alloc::format!(
            "MODIFY_RING allows {what} rings of {min}..{max} entries: no power of two of at \
             least {MIN_RING_ENTRIES} fits"
        )));
    }
    Ok(size)
}

impl RingPlan {
    /// The descriptor's ring sizes, moved into MODIFY_RING's range when the device set one;
    /// our 2 KiB packet buffer, or BUFFER_SIZES' largest when that is smaller.
    pub fn new(d: &DeviceDescriptor, limits: &DeviceLimits) -> Result<RingPlan, GvnicError> {
        let (tx_entries, rx_entries) = match limits.rings {
            Some(r) => (
                fit_ring("TX", d.tx_queue_entries, r.min_tx, r.max_tx)?,
                fit_ring("RX", d.rx_queue_entries, r.min_rx, r.max_rx)?,
            ),
            None => (d.tx_queue_entries, d.rx_queue_entries),
        };
        let ours = BUF_BYTES as u16;
        let packet_buffer_bytes = match limits.buffers {
            Some(b) if b.packet_buffer_bytes >= ours => ours,
            Some(b) if b.packet_buffer_bytes >= MIN_PACKET_BUFFER_BYTES => b.packet_buffer_bytes,
            Some(b) => {
                return Err(GvnicError::OptionLimit(alloc::format!(
                    "BUFFER_SIZES allows packet buffers of at most {} bytes; this driver needs \
                     {MIN_PACKET_BUFFER_BYTES}",
                    b.packet_buffer_bytes
                )))
            }
            None => ours,
        };
        Ok(RingPlan {
            tx_entries,
            rx_entries,
            packet_buffer_bytes,
        })
    }
}

/// The MTU the network stack gets, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtuPlan {
    pub mtu: u16,
    /// The largest the device allows: JUMBO_FRAMES' max MTU when honoured, else the
    /// descriptor's mtu.
    pub device_max: u16,
    /// What the lease asked for (DHCP option 26), if anything.
    pub lease: Option<u16>,
    pub why: String,
}

impl MtuPlan {
    /// The descriptor's MTU, or the lease's when it asks for more and the device allows
    /// it (GCE VPCs may set 8896), capped by what this driver's data path carries.
    pub fn new(d: &DeviceDescriptor, limits: &DeviceLimits, lease: Option<u16>) -> MtuPlan {
        let device_max = limits.max_mtu.map_or(d.mtu, |m| m.0.max(d.mtu));
        let wanted = lease.unwrap_or(d.mtu);
        let mut mtu = wanted.min(device_max);
        let mut why = match lease {
            Some(l) if l > device_max => {
                alloc::format!("the lease asks for {l}, the device allows {device_max}")
            }
            Some(l) => alloc::format!("the lease's {l}"),
            None => alloc::format!("the device's {}", d.mtu),
        };
        if mtu > DATAPATH_MAX_MTU {
            mtu = DATAPATH_MAX_MTU;
            why.push_str(&alloc::format!(
                "; this driver sends one 2 KiB buffer per frame: {DATAPATH_MAX_MTU}"
            ));
        }
        MtuPlan {
            mtu,
            device_max,
            lease,
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gvnic::options::{BufferSizes, MaxMtu, RingLimits};

    fn descriptor(tx: u16, rx: u16, mtu: u16) -> DeviceDescriptor {
        DeviceDescriptor {
            max_registered_pages: 8192,
            tx_queue_entries: tx,
            rx_queue_entries: rx,
            default_num_queues: 1,
            mtu,
            counters: 32,
            tx_pages_per_qpl: 512,
            rx_pages_per_qpl: 1024,
            mac: [0; 6],
            total_length: 40,
            options: alloc::vec::Vec::new(),
        }
    }

    fn rings(min_tx: u16, max_tx: u16, min_rx: u16, max_rx: u16) -> DeviceLimits {
        DeviceLimits {
            rings: Some(RingLimits {
                max_rx,
                max_tx,
                min_rx,
                min_tx,
                min_from_device: true,
            }),
            ..DeviceLimits::default()
        }
    }

    #[test]
    fn ring_sizes_stay_inside_modify_rings_range() {
        let d = descriptor(1024, 1024, 1460);
        let plan = RingPlan::new(&d, &DeviceLimits::default()).unwrap();
        assert_eq!((plan.tx_entries, plan.rx_entries), (1024, 1024));
        assert_eq!(plan.packet_buffer_bytes, 2048);
        // Inside: unchanged.
        let plan = RingPlan::new(&d, &rings(256, 4096, 512, 4096)).unwrap();
        assert_eq!((plan.tx_entries, plan.rx_entries), (1024, 1024));
        // Above the maximum: the largest power of two allowed.
        let plan = RingPlan::new(&d, &rings(64, 512, 64, 768)).unwrap();
        assert_eq!((plan.tx_entries, plan.rx_entries), (512, 512));
        // Below the minimum: the smallest power of two allowed.
        let small = descriptor(128, 128, 1460);
        let plan = RingPlan::new(&small, &rings(256, 4096, 512, 4096)).unwrap();
        assert_eq!((plan.tx_entries, plan.rx_entries), (256, 512));
        // No power of two in range.
        let err = RingPlan::new(&d, &rings(600, 1000, 512, 4096)).unwrap_err();
        assert_eq!(err.code(), "gvnic-option-limit");
        assert!(
            alloc::format!("{err}").contains("TX rings of 600..1000"),
            "{err}"
        );
        // min above max.
        assert!(RingPlan::new(&d, &rings(256, 4096, 4096, 512)).is_err());
    }

    #[test]
    fn packet_buffers_follow_buffer_sizes() {
        let d = descriptor(1024, 1024, 1460);
        let with = |bytes| DeviceLimits {
            buffers: Some(BufferSizes {
                packet_buffer_bytes: bytes,
                header_buffer_bytes: 0,
            }),
            ..DeviceLimits::default()
        };
        assert_eq!(
            RingPlan::new(&d, &with(4096)).unwrap().packet_buffer_bytes,
            2048
        );
        assert_eq!(
            RingPlan::new(&d, &with(1536)).unwrap().packet_buffer_bytes,
            1536
        );
        let err = RingPlan::new(&d, &with(512)).unwrap_err();
        assert_eq!(err.code(), "gvnic-option-limit");
    }

    #[test]
    fn mtu_follows_the_lease_when_jumbo_frames_allows() {
        let d = descriptor(1024, 1024, 1460);
        let jumbo = DeviceLimits {
            max_mtu: Some(MaxMtu(8896)),
            ..DeviceLimits::default()
        };
        let plain = MtuPlan::new(&d, &DeviceLimits::default(), None);
        assert_eq!((plain.mtu, plain.device_max), (1460, 1460));
        // Without JUMBO_FRAMES a lease of 8896 stays at the descriptor's 1460.
        let capped = MtuPlan::new(&d, &DeviceLimits::default(), Some(8896));
        assert_eq!(capped.mtu, 1460);
        assert!(capped.why.contains("device allows 1460"), "{}", capped.why);
        // With it, the lease's 8896 is allowed by the device; the data path caps it.
        let big = MtuPlan::new(&d, &jumbo, Some(8896));
        assert_eq!((big.device_max, big.mtu), (8896, DATAPATH_MAX_MTU));
        assert!(big.why.contains("2 KiB"), "{}", big.why);
        // A lease within the data path's reach is taken as is.
        assert_eq!(MtuPlan::new(&d, &jumbo, Some(1500)).mtu, 1500);
        assert_eq!(MtuPlan::new(&d, &jumbo, Some(1400)).mtu, 1400);
    }
}
