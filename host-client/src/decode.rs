//! `bringup decode`: evidence frames out of any captured serial log (a `bringup` transcript,
//! `gcloud compute instances get-serial-port-output` output with its stderr hints mixed in,
//! a terminal capture), grouped by boot, with damaged frames and sequence gaps.

use evidence::{Body, Frame};
use serde::Serialize;
use serde_json::Value;

use crate::frames::{DamagedFrame, ForeignFrame, SeqGap};
use crate::json::{body_json, boot_id_text, frame_json};
use crate::serial::SerialLog;

/// Everything found in one log.
#[derive(Debug, Clone, Serialize)]
pub struct Decoded {
    pub lines: usize,
    pub frames: usize,
    pub boots: Vec<BootGroup>,
    pub damaged_frames: Vec<DamagedFrame>,
    pub sequence_gaps: Vec<SeqGap>,
    pub foreign_frames: Vec<ForeignFrame>,
    /// gcloud notes found in the log (`Specify --start=N ...`, lost output warnings).
    pub notes: Vec<String>,
}

/// The frames of one boot.
#[derive(Debug, Clone, Serialize)]
pub struct BootGroup {
    pub boot_id: String,
    pub first_seq: u32,
    pub last_seq: u32,
    /// Missing frames inside this boot (sum of its gaps).
    pub missing: u32,
    pub banner: Option<Value>,
    pub commands_ok: usize,
    pub commands_failed: usize,
    pub frames: Vec<Value>,
    #[serde(skip)]
    pub raw: Vec<Frame>,
}

impl Decoded {
    pub fn is_clean(&self) -> bool {
        self.damaged_frames.is_empty()
            && self.sequence_gaps.is_empty()
            && self.foreign_frames.is_empty()
    }
}

/// Decodes a whole log.
pub fn decode_log(bytes: &[u8]) -> Decoded {
    let mut log = SerialLog::new();
    log.push(bytes);
    // A last line without a terminator still counts.
    if !bytes.ends_with(b"\n") {
        log.push(b"\n");
    }
    let frames = log.frames();
    let notes = log
        .transcript()
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.contains("Specify --start=")
                || l.contains("output was lost")
                || l.starts_with("WARNING:")
        })
        .map(str::to_string)
        .collect();
    let boots = frames
        .boots()
        .iter()
        .map(|&id| {
            let raw: Vec<Frame> = frames
                .frames()
                .iter()
                .filter(|f| f.boot_id == id)
                .cloned()
                .collect();
            let results = raw.iter().filter_map(|f| match &f.body {
                Body::CommandResult(r) => Some(matches!(r.outcome, evidence::Outcome::Ok)),
                _ => None,
            });
            let (ok, failed) =
                results.fold((0, 0), |(o, f), r| if r { (o + 1, f) } else { (o, f + 1) });
            BootGroup {
                boot_id: boot_id_text(id),
                first_seq: raw.first().map_or(0, |f| f.seq),
                last_seq: raw.last().map_or(0, |f| f.seq),
                missing: frames
                    .gaps()
                    .iter()
                    .filter(|g| g.boot_id == id)
                    .map(|g| g.missing)
                    .sum(),
                banner: raw
                    .iter()
                    .find(|f| matches!(f.body, Body::Banner(_)))
                    .map(|f| body_json(&f.body)),
                commands_ok: ok,
                commands_failed: failed,
                frames: raw.iter().map(frame_json).collect(),
                raw,
            }
        })
        .collect();
    Decoded {
        lines: log.transcript().lines().count(),
        frames: frames.frames().len(),
        boots,
        damaged_frames: frames.damaged().to_vec(),
        sequence_gaps: frames.gaps().to_vec(),
        foreign_frames: frames.foreign().to_vec(),
        notes,
    }
}

/// The human rendering of [`Decoded`].
pub fn render_text(d: &Decoded) -> String {
    let mut out = format!(
        "{} lines, {} frames, {} boot(s)\n",
        d.lines,
        d.frames,
        d.boots.len()
    );
    for note in &d.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for b in &d.boots {
        out.push_str(&format!(
            "\nboot {}: seq {}..{}, {} frames, {} missing, commands {} ok / {} failed\n",
            b.boot_id,
            b.first_seq,
            b.last_seq,
            b.raw.len(),
            b.missing,
            b.commands_ok,
            b.commands_failed
        ));
        for f in &b.raw {
            out.push_str(&format!("  {}\n", crate::json::frame_summary(f)));
        }
    }
    for g in &d.sequence_gaps {
        out.push_str(&format!(
            "gap: boot {} expected seq {} got {} ({} missing)\n",
            boot_id_text(g.boot_id),
            g.expected,
            g.got,
            g.missing
        ));
    }
    for f in &d.foreign_frames {
        out.push_str(&format!(
            "foreign frame: boot {} seq {} inside another boot\n",
            boot_id_text(f.boot_id),
            f.seq
        ));
    }
    for x in &d.damaged_frames {
        out.push_str(&format!(
            "damaged frame at line {}: {}\n",
            x.line_no, x.error
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use evidence::*;

    fn f(boot_id: u64, seq: u32, cmd: u32, body: Body) -> String {
        encode_line(&Frame {
            boot_id,
            seq,
            cmd,
            body,
        })
    }

    fn banner() -> Body {
        Body::Banner(Banner {
            format_version: 1,
            version: "0.1.0".into(),
            build: "b".into(),
            firmware: Firmware::Uefi,
            memory_bytes: 1 << 29,
            dma_base: 0x100000,
            dma_bytes: 1 << 22,
            cmdline: String::new(),
            boot_us: 5,
            confidential: "none".into(),
            sha256_path: String::new(),
            tsc_hz: 2_000_000_000,
            tsc_source: "acpi-pm-timer".into(),
            tsc_disagreement_ppm: 0,
        })
    }

    fn start(line: &str) -> Body {
        Body::CommandStart(CommandStart { line: line.into() })
    }

    fn result(ok: bool) -> Body {
        Body::CommandResult(CommandResult {
            outcome: if ok {
                Outcome::Ok
            } else {
                Outcome::Error {
                    code: "unknown-command".into(),
                    message: "x".into(),
                }
            },
            elapsed_us: 1,
        })
    }

    /// What `gcloud compute instances get-serial-port-output` leaves in a captured file when
    /// stderr is mixed in: firmware noise, the monitor's lines, gcloud's hints.
    fn gcloud_log() -> String {
        let a = 0x1111_2222_3333_4444;
        let b = 0x5555_6666_7777_8888;
        let damaged = {
            let good = f(a, 3, 2, start("lsppci"));
            let mut bytes = good.into_bytes();
            let n = bytes.len();
            bytes[n - 1] = if bytes[n - 1] == b'0' { b'1' } else { b'0' }; // break the CRC text
            String::from_utf8(bytes).unwrap()
        };
        [
            "SeaBIOS (version 1.8.2-google)".to_string(),
            "Booting from Hard Disk 0...".into(),
            "bringup 0.1.0".into(),
            f(a, 0, 0, banner()),
            "bringup> version\r".to_string(),
            f(a, 1, 1, start("version")),
            "bringup 0.1.0 (build b)".into(),
            f(a, 2, 1, result(true)),
            damaged,
            // seq 4 (the result of lsppci) never arrived: a gap.
            f(a, 5, 3, start("help")),
            f(a, 6, 3, result(true)),
            "WARNING: Some serial port output was lost due to a limited buffer.".into(),
            "UEFI firmware starting.".into(),
            f(b, 0, 0, banner()),
            f(b, 1, 1, start("lsppci")),
            f(b, 2, 1, result(false)),
            "".into(),
            "Specify --start=14823 in the next get-serial-port-output invocation to get only the new output starting from here.".into(),
        ]
        .join("\r\n")
    }

    #[test]
    fn gcloud_log_with_damage_gap_two_boots_and_hints() {
        let d = decode_log(gcloud_log().as_bytes());
        assert_eq!(d.frames, 8);
        assert_eq!(d.boots.len(), 2);
        let (a, b) = (&d.boots[0], &d.boots[1]);
        assert_eq!(a.boot_id, "1111222233334444");
        assert_eq!((a.first_seq, a.last_seq, a.missing), (0, 6, 2));
        assert_eq!((a.commands_ok, a.commands_failed), (2, 0));
        assert_eq!(a.banner.as_ref().unwrap()["firmware"], "Uefi");
        assert_eq!((b.first_seq, b.last_seq, b.missing), (0, 2, 0));
        assert_eq!(b.commands_failed, 1);
        assert_eq!(d.damaged_frames.len(), 1);
        assert_eq!(d.damaged_frames[0].line_no, 9);
        assert_eq!(d.damaged_frames[0].boot_id, Some(0x1111_2222_3333_4444));
        assert_eq!(d.sequence_gaps.len(), 1);
        assert_eq!(
            (d.sequence_gaps[0].expected, d.sequence_gaps[0].got),
            (3, 5)
        );
        assert!(
            d.foreign_frames.is_empty(),
            "a banner starts a new boot: not foreign"
        );
        assert_eq!(d.notes.len(), 2);
        assert!(d.notes[1].starts_with("Specify --start=14823"));
        assert!(!d.is_clean());
        let text = render_text(&d);
        assert!(
            text.contains("boot 1111222233334444: seq 0..6, 5 frames, 2 missing"),
            "{text}"
        );
        assert!(text.contains("damaged frame at line 9"), "{text}");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["boots"][1]["frames"][2]["kind"], "command.result");
    }

    #[test]
    fn clean_log_and_last_line_without_newline() {
        let log = format!("{}\n{}", f(9, 0, 0, banner()), f(9, 1, 1, start("help")));
        let d = decode_log(log.as_bytes());
        assert_eq!(d.frames, 2);
        assert!(d.is_clean());
    }
}
