//! Issue 19 item 5 against the model's 2026 profile (every device option a 2024+ driver
//! parses): the driver decodes each option as the model sends it, applies the limits for
//! the format it runs (ring sizes inside MODIFY_RING, a packet buffer BUFFER_SIZES allows,
//! the MTU up to JUMBO_FRAMES), and every format still brings up, exchanges and tears down
//! with no model violation. The 2024 profile sends format options only: no limit applies.

mod gvnic_support;

use drivers::gvnic::options::{option_id, OptionBody};
use drivers::gvnic::State;
use drivers::net::dhcp;
use gvnic_model::options::{buffers, jumbo, ring};
use gvnic_model::{Formats, ModelConfig, Profile, QueueFormat};
use gvnic_support::{rig, Rig};

fn exchange(rig: &mut Rig, xid: u32) {
    let frame = dhcp::discover_frame([0x42, 1, 10, 128, 0, 2], xid);
    rig.nic.transmit(&rig.clock, &mut rig.pool, &frame).unwrap();
    let offer = rig
        .nic
        .receive(&rig.clock, &mut rig.pool, 1_000_000)
        .unwrap();
    assert!(dhcp::classify(&offer, xid).is_offer_for(xid));
}

#[test]
fn every_option_of_the_2026_profile_is_decoded_and_its_limits_applied_in_every_format() {
    for format in QueueFormat::ALL {
        let what = format.name();
        let mut rig = rig(ModelConfig {
            formats: Formats::only(&[format]),
            // Below MODIFY_RING's minimum of 512: the driver must move its RX ring up.
            rx_queue_entries: 128,
            ..ModelConfig::default()
        });
        rig.bring_up(State::QueuesUp)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let info = rig.nic.info().unwrap().clone();
        let body = |id: u16| {
            info.descriptor
                .options
                .iter()
                .find(|o| o.id == id)
                .unwrap_or_else(|| panic!("{what}: no option {id:#x}"))
                .body
                .clone()
        };
        match body(option_id::MODIFY_RING) {
            OptionBody::ModifyRing(r) => assert_eq!(
                (r.max_rx, r.max_tx, r.min_rx, r.min_tx),
                (
                    ring::LIMITS.max_rx,
                    ring::LIMITS.max_tx,
                    ring::LIMITS.min_rx,
                    ring::LIMITS.min_tx
                ),
                "{what}"
            ),
            other => panic!("{what}: {other:?}"),
        }
        assert!(
            matches!(body(option_id::JUMBO_FRAMES), OptionBody::JumboFrames(m) if m.0 == jumbo::GCE_MAX_MTU),
            "{what}"
        );
        assert!(
            matches!(body(option_id::BUFFER_SIZES), OptionBody::BufferSizes(b)
                if b.packet_buffer_bytes == buffers::SIZES.packet && b.header_buffer_bytes == buffers::SIZES.header),
            "{what}"
        );
        assert!(matches!(
            body(option_id::FLOW_STEERING),
            OptionBody::FlowSteering { max_flow_rules } if max_flow_rules > 0
        ));
        assert!(matches!(
            body(option_id::RSS_CONFIG),
            OptionBody::RssConfig { .. }
        ));
        assert_eq!(body(option_id::NIC_TIMESTAMP), OptionBody::NicTimestamp);
        // Applied: the RX ring moved into MODIFY_RING's range, TX as described, 2 KiB buffers.
        let plan = rig.nic.ring_plan().unwrap();
        assert_eq!(plan.rx_entries, ring::LIMITS.min_rx, "{what}");
        assert_eq!(plan.tx_entries, 1024, "{what}");
        assert_eq!(plan.packet_buffer_bytes, 2048, "{what}");
        // The MTU: a lease asking for 8896 is allowed by JUMBO_FRAMES, the data path caps it.
        rig.nic.set_lease_mtu(Some(8896));
        let mtu = rig.nic.mtu_plan().unwrap();
        assert_eq!(mtu.device_max, jumbo::GCE_MAX_MTU, "{what}");
        assert_eq!(mtu.mtu, drivers::gvnic::limits::DATAPATH_MAX_MTU, "{what}");
        exchange(&mut rig, 5);
        let (result, steps) = rig.teardown_steps();
        result.unwrap_or_else(|e| panic!("{what}: {e} {steps:?}"));
        rig.assert_ledger_clean();
        rig.assert_no_violations();
    }
}

#[test]
fn the_2024_profile_sends_no_limits_and_none_is_applied() {
    let mut rig = rig(ModelConfig {
        profile: Profile::Y2024,
        rx_queue_entries: 128,
        ..ModelConfig::default()
    });
    rig.bring_up(State::QueuesUp).unwrap();
    let info = rig.nic.info().unwrap();
    assert!(info
        .descriptor
        .options
        .iter()
        .all(|o| matches!(o.body, OptionBody::Format | OptionBody::DqoQpl { .. })));
    assert_eq!(rig.nic.ring_plan().unwrap().rx_entries, 128);
    rig.nic.set_lease_mtu(Some(8896));
    assert_eq!(rig.nic.mtu_plan().unwrap().mtu, 1460);
    exchange(&mut rig, 6);
    rig.teardown_steps().0.unwrap();
    rig.assert_no_violations();
}
