//! The text armor around a postcard-encoded [`Frame`].

use alloc::string::String;
use alloc::vec::Vec;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::Frame;

/// Every frame line starts with this marker. `@@` never starts a line of human output.
pub const MARKER: &str = "@@BU1 ";

/// Why a candidate frame line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The line does not carry the marker.
    NoMarker,
    /// Marker present but the base64/CRC fields are missing or malformed.
    Malformed,
    /// The base64 armor does not decode.
    BadBase64,
    /// The CRC-32 does not match the payload.
    BadCrc { expected: u32, actual: u32 },
    /// The checksum is right but the payload is not a frame we understand.
    BadPayload,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::NoMarker => write!(f, "no frame marker"),
            DecodeError::Malformed => write!(f, "malformed frame line"),
            DecodeError::BadBase64 => write!(f, "frame armor is not valid base64"),
            DecodeError::BadCrc { expected, actual } => {
                write!(
                    f,
                    "frame CRC mismatch (line says {expected:08x}, payload is {actual:08x})"
                )
            }
            DecodeError::BadPayload => write!(f, "frame payload does not decode"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Encodes `frame` as one line (without the line terminator).
pub fn encode_line(frame: &Frame) -> String {
    // Serializing into a Vec cannot fail for our types (no maps, no unsupported types).
    let payload: Vec<u8> = postcard::to_allocvec(frame).unwrap_or_default();
    let crc = crc32fast::hash(&payload);
    let mut line = String::with_capacity(MARKER.len() + payload.len() * 4 / 3 + 16);
    line.push_str(MARKER);
    STANDARD.encode_string(&payload, &mut line);
    line.push(' ');
    push_hex32(&mut line, crc);
    line
}

fn is_lower_hex8(text: &str) -> bool {
    text.len() == 8
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn push_hex32(out: &mut String, value: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize] as char);
    }
}

/// Returns the frame part of `line` (from the marker on), if the line holds one.
/// Anything before the marker (a prompt, a timestamp a logger added) is ignored.
pub fn find_frame(line: &str) -> Option<&str> {
    line.find(MARKER).map(|at| line[at..].trim_end())
}

/// Decodes one line that holds a frame; text before the marker is ignored.
pub fn decode_line(line: &str) -> Result<Frame, DecodeError> {
    let framed = find_frame(line).ok_or(DecodeError::NoMarker)?;
    let rest = framed.get(MARKER.len()..).ok_or(DecodeError::Malformed)?;
    let mut parts = rest.split(' ');
    let (armor, crc_text) = match (parts.next(), parts.next(), parts.next()) {
        // Only the exact form the encoder writes: 8 lowercase hex digits.
        (Some(a), Some(c), None) if !a.is_empty() && is_lower_hex8(c) => (a, c),
        _ => return Err(DecodeError::Malformed),
    };
    let expected = u32::from_str_radix(crc_text, 16).map_err(|_| DecodeError::Malformed)?;
    let payload = STANDARD.decode(armor).map_err(|_| DecodeError::BadBase64)?;
    let actual = crc32fast::hash(&payload);
    if actual != expected {
        return Err(DecodeError::BadCrc { expected, actual });
    }
    postcard::from_bytes::<Frame>(&payload).map_err(|_| DecodeError::BadPayload)
}
