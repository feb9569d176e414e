//! The `--digest sha256|crc32|none` option of reading commands, and how a digest is shown:
//! parsing into a [`DigestKind`], the human line, and the frame fields. Pure functions, so
//! they are tested without a machine.

use alloc::string::String;
use core::fmt::Write;

use drivers::digest::{DigestKind, DigestValue};

use crate::args::Args;
use crate::table::CmdError;

/// The digest a read should compute: `--digest NAME`, `--no-digest` (= none), default sha256.
pub fn requested(args: &Args) -> Result<DigestKind, CmdError> {
    let named = args.value("--digest");
    if named.is_some() && args.flag("--no-digest") {
        return Err(CmdError::new(
            "bad-argument",
            "--digest and --no-digest contradict each other; use one",
        ));
    }
    match named {
        None if args.flag("--no-digest") => Ok(DigestKind::None),
        None => Ok(DigestKind::Sha256),
        Some(name) => DigestKind::parse(name).ok_or_else(|| {
            CmdError::new(
                "bad-digest",
                alloc::format!("unknown digest {name:?}: use sha256, crc32 or none"),
            )
        }),
    }
}

/// The human line: `sha256 <hex> (sha-ni)`, `crc32 <8 hex> (slicing-by-16)`, or the skip note.
pub fn text(value: &DigestValue) -> String {
    let mut line = String::new();
    match value {
        DigestValue::Sha256 { digest, path } => {
            line.push_str("sha256 ");
            for byte in digest {
                let _ = write!(line, "{byte:02x}");
            }
            let _ = write!(line, " ({path})");
        }
        DigestValue::Crc32(crc) => {
            let _ = write!(line, "crc32 {crc:08x} ({})", value.engine());
        }
        DigestValue::None => line.push_str("digest skipped (--digest none)"),
    }
    line
}

/// The digest fields of a read frame: (sha256, digest name, engine, crc32).
pub fn frame_fields(value: &DigestValue) -> ([u8; 32], String, String, u32) {
    let sha256 = match value {
        DigestValue::Sha256 { digest, .. } => *digest,
        _ => [0; 32],
    };
    let crc32 = match value {
        DigestValue::Crc32(crc) => *crc,
        _ => 0,
    };
    (
        sha256,
        value.kind().name().into(),
        value.engine().into(),
        crc32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::digest::Sha256Path;

    #[test]
    fn lines_say_the_value_and_the_engine() {
        let sha = DigestValue::Sha256 {
            digest: [0xab; 32],
            path: Sha256Path::ShaNi,
        };
        assert_eq!(
            text(&sha),
            alloc::format!("sha256 {} (sha-ni)", "ab".repeat(32))
        );
        assert_eq!(
            text(&DigestValue::Crc32(0x0bf4_3926)),
            "crc32 0bf43926 (slicing-by-16)"
        );
        let (s, name, engine, crc) = frame_fields(&DigestValue::Crc32(7));
        assert_eq!(
            (s, name.as_str(), engine.as_str(), crc),
            ([0; 32], "crc32", "slicing-by-16", 7)
        );
        let (s, name, engine, _) = frame_fields(&sha);
        assert_eq!(
            (s[0], name.as_str(), engine.as_str()),
            (0xab, "sha256", "sha-ni")
        );
        let (_, name, engine, _) = frame_fields(&DigestValue::None);
        assert_eq!((name.as_str(), engine.as_str()), ("none", "none"));
    }
}
