//! System test (issue 15): `nvme read --digest crc32` prints what U-Boot's own `crc32` command
//! prints for the same disk bytes. U-Boot (Debian's qemu-x86_64 build, the monitor the bench
//! measures against) and bringup boot side by side on the same NVMe disk file; U-Boot reads
//! the blocks into RAM with `nvme read` and checksums them with `crc32`, bringup reads the same
//! LBAs with `--digest crc32`. Both values must be equal (and equal zlib's).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use evidence::Body;
use host_client::{QemuConfig, Session};

const UBOOT_ROM: &str = "/usr/lib/u-boot/qemu-x86_64/u-boot.rom";
const BLOCKS: u64 = 16_384; // 512-byte blocks: 8 MiB
/// Where U-Boot reads to: above its low memory, far below its relocation at the top of RAM.
const LOAD_ADDR: u64 = 0x100_0000;
/// (lba, count): one block, a read that ends mid-command, the whole disk.
const READS: [(u64, u64); 3] = [(0, 1), (5, 3001), (0, BLOCKS)];

fn disk_bytes(len: usize) -> Vec<u8> {
    let mut state = 0xc2c_3232u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// U-Boot on a serial line over stdio, driven expect-style.
struct UBoot {
    child: Child,
    output: Receiver<Vec<u8>>,
    seen: String,
}

impl UBoot {
    fn boot(disk: &Path) -> UBoot {
        let mut child = Command::new("qemu-system-x86_64")
            .args([
                "-machine", "pc", "-m", "512", "-accel", "tcg", "-bios", UBOOT_ROM,
            ])
            .args([
                "-display", "none", "-vga", "none", "-monitor", "none", "-nic", "none",
            ])
            .args(["-parallel", "none", "-no-reboot", "-serial", "stdio"])
            .arg("-drive")
            .arg(format!(
                "file={},if=none,format=raw,id=d0,readonly=on",
                disk.display()
            ))
            .args(["-device", "nvme,serial=crc,drive=d0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64");
        let mut stdout = child.stdout.take().unwrap();
        let (tx, output) = channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 || tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut u = UBoot {
            child,
            output,
            seen: String::new(),
        };
        // U-Boot drains its input before the countdown: send the key only once it asks.
        u.expect("Hit any key to stop autoboot");
        u.send(" ");
        u.expect("=> ");
        u
    }

    fn send(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Everything up to and including `pattern`; the rest stays for the next call.
    fn expect(&mut self, pattern: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(pos) = self.seen.find(pattern) {
                let end = pos + pattern.len();
                let text = self.seen[..end].to_string();
                self.seen.drain(..end);
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("U-Boot: no {pattern:?}; last output:\n{}", self.seen),
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r"));
        let text = self.expect("\n=> ");
        eprintln!("[u-boot] => {line}\n{}", text.trim_end());
        text
    }

    /// `nvme read` + `crc32` of the same blocks: the value U-Boot prints.
    fn crc32(&mut self, lba: u64, count: u64) -> u32 {
        let text = self.command(&format!("nvme read {LOAD_ADDR:#x} {lba:#x} {count:#x}"));
        assert!(
            text.contains(&format!("{count} blocks read: OK")),
            "U-Boot read failed: {text}"
        );
        let text = self.command(&format!("crc32 {LOAD_ADDR:#x} {:#x}", count * 512));
        text.rsplit("==> ")
            .next()
            .and_then(|s| u32::from_str_radix(s.get(..8)?, 16).ok())
            .unwrap_or_else(|| panic!("no crc32 in U-Boot's answer {text:?}"))
    }
}

impl Drop for UBoot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bringup_crc32s(disk: &Path) -> Vec<u32> {
    let cfg = QemuConfig {
        extra_args: [
            "-drive",
            &format!(
                "file={},if=none,format=raw,id=d1,readonly=on",
                disk.display()
            ),
            "-device",
            "nvme,serial=crc,drive=d1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..QemuConfig::default()
    };
    assert!(
        cfg.image.is_file(),
        "target/bringup.img is missing: run `make image`"
    );
    let mut s = Session::start_qemu(&cfg).unwrap();
    s.wait_for_prompt(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("no prompt: {e:#}\n{}", s.qemu_stderr()));
    let values = READS
        .iter()
        .map(|(lba, count)| {
            let out = s
                .command(
                    &format!("nvme read {lba} {count} --digest crc32"),
                    Duration::from_secs(120),
                )
                .unwrap();
            eprintln!("[bringup] {}\n{}", out.line, out.text.trim_end());
            assert!(out.is_ok(), "{:?}", out.result);
            match out.bodies_of_kind("nvme.read").first() {
                Some(Body::NvmeRead(r)) => {
                    assert_eq!(r.digest, "crc32");
                    assert!(
                        out.text.contains(&format!("crc32 {:08x}", r.crc32)),
                        "{}",
                        out.text
                    );
                    r.crc32
                }
                _ => panic!("no nvme.read frame"),
            }
        })
        .collect();
    s.close().unwrap();
    values
}

#[test]
fn bringup_crc32_equals_uboot_crc32_of_the_same_blocks() {
    assert!(
        Path::new(UBOOT_ROM).is_file(),
        "{UBOOT_ROM} is missing: install u-boot-qemu (make deps)"
    );
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let bytes = disk_bytes((BLOCKS * 512) as usize);
    std::fs::write(&disk, &bytes).unwrap();
    let (theirs, ours) = std::thread::scope(|scope| {
        let ours = scope.spawn(|| bringup_crc32s(&disk));
        let mut uboot = UBoot::boot(&disk);
        uboot.command("nvme scan");
        let theirs: Vec<u32> = READS.iter().map(|&(l, c)| uboot.crc32(l, c)).collect();
        (theirs, ours.join().unwrap())
    });
    for (((lba, count), u), b) in READS.iter().zip(&theirs).zip(&ours) {
        let range = &bytes[(*lba * 512) as usize..((lba + count) * 512) as usize];
        assert_eq!(
            (*b, *u),
            (crc32fast::hash(range), crc32fast::hash(range)),
            "lba {lba} count {count}: bringup {b:08x}, U-Boot {u:08x}"
        );
    }
    // Different ranges give different values (the comparison is not vacuous).
    assert!(
        theirs[0] != theirs[1] && theirs[1] != theirs[2],
        "{theirs:x?}"
    );
}
