pub mod bare_machine;
#[allow(dead_code)]
pub mod fake_firmware;
