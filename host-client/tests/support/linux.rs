//! Debian's stock Linux kernels as data, for the tests that hold the gVNIC model to Google's
//! own driver (`gve.ko`, unmodified): which kernels, where APT finds them, which queue formats
//! their gve knows, how to fetch and unpack them once into target/linux-cache/, a busybox
//! initramfs builder and a serial-console reader for a direct boot that ends in `poweroff`.
//!
//! Every package comes through `scripts/apt-private.sh` (a private APT configuration under
//! target/apt/, never the system's sources), so a fresh machine needs nothing else. The
//! newest kernel a suite has is resolved from its `linux-image-amd64` meta package when the
//! cache is empty; later runs use what was unpacked, offline (delete
//! target/linux-cache/kernel-NAME to move to a newer kernel). The packages are deleted once
//! unpacked. A lock file serialises the fetch between test processes (cargo runs test
//! binaries one after another, but a developer may run two at once).
#![allow(dead_code)] // each test binary uses part of it

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gvnic_model::QueueFormat;
use host_client::qemu::workspace_root;
use host_client::{QemuConfig, QemuProcess};

/// One Debian kernel generation.
#[derive(Debug)]
pub struct Kernel {
    /// Short name for test rows and the cache directory ("6.1", "6.12", "7.x").
    pub name: &'static str,
    /// The private APT state under target/apt/ and the suites it sees.
    pub apt_state: &'static str,
    pub apt_suites: &'static str,
    /// The suite whose `linux-image-amd64` names the kernel (madison's suite column).
    pub suite: &'static str,
    /// The queue formats this kernel's gve can run (DESCRIBE options it parses).
    pub formats: &'static [QueueFormat],
}

const ALL_FORMATS: &[QueueFormat] = &[
    QueueFormat::GqiQpl,
    QueueFormat::GqiRda,
    QueueFormat::DqoRda,
    QueueFormat::DqoQpl,
];

/// Debian bookworm's 6.1 (what `linux-image-amd64` depends on; its gve has no DQO-QPL),
/// bookworm-backports' 6.12 and trixie-backports' 7.x (split packages: the image is a meta
/// package, the kernel is in linux-binary-*, the modules in linux-modules-*, under
/// /usr/lib/modules). Facts: reference/qemu11-vfio-user.md §3.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "6.1",
        apt_state: "bookworm",
        apt_suites: "bookworm bookworm-backports",
        suite: "bookworm",
        formats: &[
            QueueFormat::GqiQpl,
            QueueFormat::GqiRda,
            QueueFormat::DqoRda,
        ],
    },
    Kernel {
        name: "6.12",
        apt_state: "bookworm",
        apt_suites: "bookworm bookworm-backports",
        suite: "bookworm-backports",
        formats: ALL_FORMATS,
    },
    Kernel {
        name: "7.x",
        apt_state: "trixie",
        apt_suites: "trixie trixie-backports",
        suite: "trixie-backports",
        formats: ALL_FORMATS,
    },
];

/// A kernel unpacked in the cache: what a direct boot needs.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The Debian package version (e.g. 6.12.95-1~bpo12+1).
    pub version: String,
    pub vmlinuz: PathBuf,
    /// gve.ko's dependencies first, gve.ko last (uncompressed: busybox insmod loads them).
    pub modules: Vec<PathBuf>,
}

pub fn cache_dir() -> PathBuf {
    workspace_root().join("target/linux-cache")
}

/// Runs a command, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An exclusive lock on target/linux-cache/.lock, held while the value lives.
pub struct CacheLock(File);

impl CacheLock {
    pub fn take() -> CacheLock {
        std::fs::create_dir_all(cache_dir()).unwrap();
        let f = File::create(cache_dir().join(".lock")).unwrap();
        // SAFETY: flock on a descriptor this File owns; blocks until the lock is ours.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", std::io::Error::last_os_error());
        CacheLock(f)
    }
}

/// `scripts/apt-private.sh` with this state and suites.
fn apt(state: &str, suites: &str, tool: &str) -> Command {
    let mut c = Command::new(workspace_root().join("scripts/apt-private.sh"));
    c.arg(workspace_root().join("target/apt").join(state))
        .arg(suites)
        .arg(tool);
    c
}

/// `apt-get download` of exact `name=version` pins into `dir` (as _apt: the dir is opened up).
pub fn download(state: &str, suites: &str, pins: &[String], dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    run(Command::new("chmod").arg("777").arg(dir));
    run(apt(state, suites, "apt-get")
        .arg("download")
        .args(pins)
        .current_dir(dir));
}

/// The version `pkg` has in exactly `suite` (madison's rows: "pkg | version | url suite/main arch").
fn version_in(k: &Kernel, pkg: &str) -> String {
    let rows = run(apt(k.apt_state, k.apt_suites, "apt-cache")
        .arg("madison")
        .arg(pkg));
    rows.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            let suite = f.get(2)?.split_whitespace().nth(1)?.split('/').next()?;
            (suite == k.suite).then(|| f[1].to_string())
        })
        .next()
        .unwrap_or_else(|| panic!("{pkg} has no version in {}:\n{rows}", k.suite))
}

/// The packages `pkg=version` depends on with exactly that version, named `linux-image-N*`,
/// `linux-binary-N*` or `linux-modules-N*` (the kernel's own packages, not metas or tools).
fn kernel_deps(k: &Kernel, pkg: &str, version: &str) -> Vec<String> {
    let show = run(apt(k.apt_state, k.apt_suites, "apt-cache")
        .arg("show")
        .arg(format!("{pkg}={version}")));
    let depends = show
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or("");
    depends
        .split(',')
        .flat_map(|alt| alt.split('|'))
        .filter_map(|d| {
            let (name, rest) = d.trim().split_once(' ').unwrap_or((d.trim(), ""));
            let exact = rest.replace(' ', "") == format!("(={version})");
            let own = ["linux-image-", "linux-binary-", "linux-modules-"]
                .iter()
                .any(|p| {
                    name.strip_prefix(p)
                        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                });
            (exact && own).then(|| name.to_string())
        })
        .collect()
}

/// The newest kernel of `k`'s suite: the closure of its packages under linux-image-amd64.
fn resolve(k: &Kernel) -> (String, Vec<String>) {
    let version = version_in(k, "linux-image-amd64");
    let mut todo = kernel_deps(k, "linux-image-amd64", &version);
    let mut all = Vec::new();
    while let Some(p) = todo.pop() {
        if !all.contains(&p) {
            todo.extend(kernel_deps(k, &p, &version));
            all.push(p);
        }
    }
    assert!(
        !all.is_empty(),
        "linux-image-amd64={version} names no kernel package"
    );
    (version, all)
}

pub fn debs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Extracts the members matching `patterns` from every .deb into `root`. A package without a
/// match is fine (tar's "not found" is ignored); callers check what they need exists.
pub fn extract(debs: &[PathBuf], root: &Path, patterns: &[String]) {
    std::fs::create_dir_all(root).unwrap();
    for deb in debs {
        let quoted: Vec<String> = patterns.iter().map(|p| format!("'{p}'")).collect();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "dpkg-deb --fsys-tarfile \"$0\" | tar -x -C \"$1\" --wildcards {} 2>/dev/null",
                quoted.join(" ")
            ))
            .arg(deb)
            .arg(root)
            .status();
    }
}

pub fn find(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            if let Some(f) = find(&p, pred) {
                return Some(f);
            }
        } else if pred(&p) {
            return Some(p);
        }
    }
    None
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `NAME.ko` or `NAME.ko.xz` (6.12 and 7.x compress modules) as an uncompressed .ko in `out`.
fn module_from(root: &Path, name: &str, out: &Path) -> Option<PathBuf> {
    let alt = name.replace('_', "-");
    let found = find(root, &|p| {
        let n = file_name(p);
        [name, alt.as_str()]
            .iter()
            .any(|m| n == format!("{m}.ko") || n == format!("{m}.ko.xz"))
    })?;
    let dest = out.join(format!("{name}.ko"));
    if file_name(&found).ends_with(".xz") {
        run(Command::new("sh")
            .arg("-c")
            .arg("xz -dc \"$0\" > \"$1\"")
            .arg(&found)
            .arg(&dest));
    } else {
        std::fs::copy(&found, &dest).unwrap();
    }
    Some(dest)
}

/// The `depends=` list in a module's .modinfo section (NUL-separated key=value strings).
fn module_depends(ko: &Path) -> Vec<String> {
    let data = std::fs::read(ko).unwrap();
    data.split(|b| *b == 0)
        .find_map(|s| s.strip_prefix(b"depends="))
        .map(|d| {
            String::from_utf8_lossy(d)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

const DONE: &str = "unpacked.version";

/// `k`'s kernel and gve (with dependencies), from the cache or fetched and unpacked once.
pub fn kernel(k: &Kernel) -> Unpacked {
    let dir = cache_dir().join(format!("kernel-{}", k.name));
    let out = dir.join("boot");
    let _lock = CacheLock::take();
    if let Some(u) = cached(&out) {
        return u;
    }
    let _ = std::fs::remove_dir_all(&out);
    let (version, packages) = resolve(k);
    let pins: Vec<String> = packages.iter().map(|p| format!("{p}={version}")).collect();
    // Drop debs of an older version the suite no longer has.
    for d in debs(&dir) {
        if !packages
            .iter()
            .any(|p| file_name(&d).starts_with(&format!("{p}_")))
        {
            let _ = std::fs::remove_file(d);
        }
    }
    if debs(&dir).len() < packages.len() {
        download(k.apt_state, k.apt_suites, &pins, &dir);
    }
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    // Only what a boot uses: the whole set unpacks to ~400 MiB.
    extract(
        &debs(&dir),
        &root,
        &["*vmlinuz*".into(), "*/gve.ko*".into()],
    );
    std::fs::create_dir_all(&out).unwrap();
    let vmlinuz = find(&root, &|p| file_name(p).starts_with("vmlinuz"))
        .unwrap_or_else(|| panic!("no vmlinuz in {packages:?}"));
    std::fs::copy(&vmlinuz, out.join("vmlinuz")).unwrap();
    let gve =
        module_from(&root, "gve", &out).unwrap_or_else(|| panic!("no gve.ko in {packages:?}"));
    // Dependencies, deepest first (none in 6.1/6.12/7.3, but a new kernel may add some).
    let mut order = vec!["gve".to_string()];
    let mut todo = module_depends(&gve);
    while let Some(m) = todo.pop() {
        if order.contains(&m) {
            continue;
        }
        extract(
            &debs(&dir),
            &root,
            &[
                format!("*/{m}.ko*"),
                format!("*/{}.ko*", m.replace('_', "-")),
            ],
        );
        let ko = module_from(&root, &m, &out)
            .unwrap_or_else(|| panic!("gve needs {m}, not found in {packages:?}"));
        todo.extend(module_depends(&ko));
        order.insert(0, m);
    }
    std::fs::write(out.join("modules.order"), order.join("\n")).unwrap();
    std::fs::write(out.join(DONE), &version).unwrap();
    let _ = std::fs::remove_dir_all(&root);
    // The packages (~100 MiB each) are not needed once unpacked: keep target/ small.
    for d in debs(&dir) {
        let _ = std::fs::remove_file(d);
    }
    cached(&out).expect("the kernel was just unpacked")
}

fn cached(out: &Path) -> Option<Unpacked> {
    let version = std::fs::read_to_string(out.join(DONE)).ok()?;
    let order = std::fs::read_to_string(out.join("modules.order")).ok()?;
    Some(Unpacked {
        version,
        vmlinuz: Some(out.join("vmlinuz")).filter(|p| p.is_file())?,
        modules: order.lines().map(|m| out.join(format!("{m}.ko"))).collect(),
    })
}

/// bookworm's static busybox (sh, insmod, ip, udhcpc, ping...), cached.
pub fn busybox() -> PathBuf {
    let dir = cache_dir().join("busybox");
    let bin = dir.join("busybox");
    let _lock = CacheLock::take();
    if bin.is_file() {
        return bin;
    }
    let k = &KERNELS[0];
    if debs(&dir).is_empty() {
        download(
            k.apt_state,
            k.apt_suites,
            &["busybox-static".to_string()],
            &dir,
        );
    }
    let root = dir.join("root");
    extract(&debs(&dir), &root, &["./bin/busybox".into()]);
    std::fs::rename(root.join("bin/busybox"), &bin).expect("busybox-static holds /bin/busybox");
    let _ = std::fs::remove_dir_all(&root);
    bin
}

/// A newc initramfs: directories, /dev/console, and files.
#[derive(Default)]
pub struct Initramfs {
    data: Vec<u8>,
    ino: u32,
}

impl Initramfs {
    /// The skeleton every boot needs: /bin/busybox, /dev/console and mount points.
    pub fn with_busybox(busybox: &Path) -> Initramfs {
        let mut i = Initramfs::default();
        for d in ["bin", "dev", "proc", "sys", "tmp"] {
            i.entry(d, 0o040755, &[], (0, 0));
        }
        // The kernel opens /dev/console for init before anything is mounted.
        i.entry("dev/console", 0o020600, &[], (5, 1));
        i.file("bin/busybox", 0o755, &std::fs::read(busybox).unwrap());
        i
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, 0o100000 | perm, data, (0, 0));
        self
    }

    /// Writes the archive (with its trailer) to `out`.
    pub fn write(mut self, out: &Path) {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        std::fs::write(out, self.data).unwrap();
    }

    /// One newc cpio entry.
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let out = &mut self.data;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
}

/// Starts QEMU and collects its serial console until the guest powers off (QEMU closes the
/// socket: `-no-reboot`), panicking after `deadline`. Returns the console and the process
/// (still to be shut down, so the model's final state can be read).
pub fn run_to_poweroff(cfg: &QemuConfig, deadline: Duration) -> (String, QemuProcess) {
    run_console(cfg, None, deadline)
}

/// Like [`run_to_poweroff`], but also stops once the console shows `until`.
pub fn run_console(
    cfg: &QemuConfig,
    until: Option<&str>,
    deadline: Duration,
) -> (String, QemuProcess) {
    let mut q = QemuProcess::spawn(cfg).expect("QEMU starts");
    let mut serial = q
        .connect_serial(Duration::from_secs(10))
        .expect("serial socket");
    serial
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    let mut console = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match serial.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => console.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("serial: {e}"),
        }
        if until.is_some_and(|u| String::from_utf8_lossy(&console).contains(u)) {
            break;
        }
        if started.elapsed() > deadline {
            panic!(
                "the guest did not finish within {deadline:?}; console:\n{}\nQEMU:\n{}",
                String::from_utf8_lossy(&console),
                q.stderr_tail()
            );
        }
    }
    (String::from_utf8_lossy(&console).into_owned(), q)
}

/// Runs `jobs` on `threads` threads (boots side by side on a machine with that many cores);
/// the results in the jobs' order.
pub fn in_parallel<T: Send, R: Send>(
    threads: usize,
    jobs: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let queue = std::sync::Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some((i, job)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let r = f(job);
                done.lock().unwrap().push((i, r));
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}
