//! Arbitrary text into the host's frame decoder: it never panics, and whatever it accepts
//! re-encodes to a frame that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(frame) = evidence::decode_line(&text) {
        let again = evidence::decode_line(&evidence::encode_line(&frame))
            .expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
});
