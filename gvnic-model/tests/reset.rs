//! Issue 22: the power-on state of DEVICE_IS_RESET is an option, and a PCI reset returns to
//! it; a pristine device reads PFN 0 either way (iPXE's test for "already reset").

mod common;

use common::H;
use gvnic_model::regs::*;
use gvnic_model::ModelConfig;

fn revision_1(at_power_on: bool) -> H {
    H::new(ModelConfig {
        revision: 1,
        device_is_reset_at_power_on: at_power_on,
        ..ModelConfig::default()
    })
}

#[test]
fn device_is_reset_at_power_on_is_an_option_and_a_pci_reset_returns_to_it() {
    for at_power_on in [true, false] {
        let mut h = revision_1(at_power_on);
        let bit = |h: &mut H| h.r32(DEVICE_STATUS) & device_status::DEVICE_IS_RESET != 0;
        assert_eq!(bit(&mut h), at_power_on);
        assert_eq!(h.r32(ADMINQ_PFN), 0, "pristine: PFN reads 0 either way");
        // A requested reset that completes sets it whatever the power-on state.
        h.start_aq();
        assert_ne!(h.r32(ADMINQ_PFN), 0);
        h.w32(ADMINQ_PFN, 0);
        h.run_us(10_000);
        assert_eq!(h.r32(ADMINQ_PFN), 0);
        assert!(bit(&mut h));
        // A PCI reset is a power-on.
        h.dev.pci_reset();
        h.dev.config_write(0x04, 2, 0x0006);
        assert_eq!(bit(&mut h), at_power_on);
    }
}
