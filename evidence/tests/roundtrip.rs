use evidence::*;

fn sample(seq: u32) -> Frame {
    Frame {
        boot_id: 0x1234_5678_9abc_def0,
        seq,
        cmd: 3,
        body: Body::CommandResult(CommandResult {
            outcome: Outcome::Error {
                code: "unknown-command".into(),
                message: "unknown command 'lsppci' (did you mean 'lspci'?)".into(),
            },
            elapsed_us: 42,
        }),
    }
}

#[test]
fn round_trip() {
    let frame = sample(7);
    let line = encode_line(&frame);
    assert!(line.starts_with(MARKER));
    assert!(line.is_ascii());
    assert_eq!(decode_line(&line).unwrap(), frame);
    // Text before the marker (a prompt, a logger's timestamp) is ignored.
    assert_eq!(
        decode_line(&format!("12:00:01 monitor> {line}\r")).unwrap(),
        frame
    );
}

#[test]
fn every_single_character_change_is_rejected() {
    let line = encode_line(&sample(1));
    let bytes = line.as_bytes();
    for at in MARKER.len()..bytes.len() {
        for replacement in [b'A', b'z', b'0', b'+', b' '] {
            if bytes[at] == replacement {
                continue;
            }
            let mut damaged = bytes.to_vec();
            damaged[at] = replacement;
            let damaged = String::from_utf8(damaged).unwrap();
            assert!(
                decode_line(&damaged).is_err(),
                "accepted damaged frame at byte {at}: {damaged}"
            );
        }
    }
}

#[test]
fn truncated_and_garbage_lines_are_rejected() {
    let line = encode_line(&sample(2));
    for cut in MARKER.len()..line.len() {
        assert!(
            decode_line(&line[..cut]).is_err(),
            "accepted truncation at {cut}"
        );
    }
    assert_eq!(decode_line("hello"), Err(DecodeError::NoMarker));
    assert_eq!(
        decode_line("@@BU1 !!!! 00000000"),
        Err(DecodeError::BadBase64)
    );
    assert_eq!(decode_line("@@BU1 AAAA"), Err(DecodeError::Malformed));
}

#[test]
fn frame_sizes_stay_small() {
    let line = encode_line(&sample(3));
    assert!(line.len() < 200, "{} bytes", line.len());
}
