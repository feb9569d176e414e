//! `bringup decode`: frames out of a captured serial log.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::DecodeCmd;
use host_client::decode;

pub fn exec(d: DecodeCmd) -> Result<ExitCode> {
    let mut bytes = Vec::new();
    if d.log == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes =
            std::fs::read(&d.log).with_context(|| format!("cannot read {}", d.log.display()))?;
    }
    let decoded = decode::decode_log(&bytes);
    if d.json {
        println!("{}", serde_json::to_string_pretty(&decoded)?);
    } else {
        print!("{}", decode::render_text(&decoded));
    }
    Ok(if d.strict && !decoded.is_clean() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
