//! Evidence frames: one ASCII line per fact, so a serial log *is* a proof.
//!
//! A frame line is `@@BU1 <base64(postcard(Frame))> <crc32 as 8 lowercase hex digits>`.
//! The CRC covers the postcard bytes (not the base64 text), so a decoder first checks the
//! armor, then the checksum, then the postcard structure; a damaged line is rejected at the
//! first step that fails and is never half-accepted.
//!
//! Compatibility rule: `Body` and every struct in it are postcard-encoded by position, so
//! new variants and new fields are only ever *appended* (a new field goes at the end of its
//! struct and bumps `FORMAT_VERSION`).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod codec;
mod types;

pub use codec::{decode_line, encode_line, find_frame, DecodeError, MARKER};
pub use types::*;

/// Bumped whenever a struct gains a field; carried in the banner.
pub const FORMAT_VERSION: u16 = 1;
