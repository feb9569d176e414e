pub mod bare_machine;
