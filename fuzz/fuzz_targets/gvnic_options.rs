//! Arbitrary bytes as a DESCRIBE_DEVICE answer: the descriptor and option parser never
//! panics or reads past the buffer, and what it accepts is consistent: the options it
//! returns fit inside total_length, and every limit derived from them is computed without
//! panicking (for every queue format).
#![no_main]

use drivers::gvnic::limits::{MtuPlan, RingPlan};
use drivers::gvnic::options::parse_options;
use drivers::gvnic::{DeviceDescriptor, QueueFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The option walk alone, with the count and end taken from the first bytes.
    if data.len() >= 4 {
        let count = u16::from_be_bytes([data[0], data[1]]);
        let end = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if let Ok(options) = parse_options(data, 4, end, count) {
            let used: usize = options.iter().map(|o| 8 + usize::from(o.length)).sum();
            // Whatever it accepts lies between the start and the end it was given.
            assert!(used <= end.min(data.len()).saturating_sub(4));
            assert_eq!(options.len(), usize::from(count));
        }
    }
    // The whole descriptor.
    if let Ok(d) = DeviceDescriptor::parse(data) {
        assert!(usize::from(d.total_length) <= data.len());
        for format in QueueFormat::PREFERENCE {
            let limits = d.limits(format);
            if let Ok(plan) = RingPlan::new(&d, &limits) {
                assert!(plan.tx_entries.is_power_of_two() && plan.rx_entries.is_power_of_two());
            }
            let mtu = MtuPlan::new(&d, &limits, Some(9000));
            assert!(mtu.mtu <= mtu.device_max.max(d.mtu));
        }
        for option in &d.options {
            let _ = option.decoded_text();
        }
        let _ = d.choose_format(None);
    }
});
