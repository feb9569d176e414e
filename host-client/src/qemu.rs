//! Launching QEMU for the monitor: the command line (pure, unit-tested), the process with
//! its serial socket, and the gVNIC model attachment through the multi-process proxy.

use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::disk_view::DiskView;
use anyhow::{bail, Context, Result};

use crate::GvnicTransport;

/// OVMF firmware code (read-only pflash).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF variable store template (copied per run).
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// TCG (portable, what tests use) or KVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Accel {
    #[default]
    Tcg,
    Kvm,
}

/// One NVMe controller backed by a raw file.
#[derive(Debug, Clone, PartialEq)]
pub struct NvmeDrive {
    pub path: PathBuf,
    pub serial: String,
}

impl NvmeDrive {
    /// One controller per file, serials `nvme0`, `nvme1`, ... in order (what `--nvme`
    /// promises, and what `nvme identify` shows).
    pub fn numbered(paths: &[PathBuf]) -> Vec<NvmeDrive> {
        paths
            .iter()
            .enumerate()
            .map(|(i, path)| NvmeDrive {
                path: path.clone(),
                serial: format!("nvme{i}"),
            })
            .collect()
    }
}

/// The gVNIC device model, attached as `x-pci-proxy-dev`.
#[derive(Debug, Clone, Default)]
pub struct GvnicOptions {
    /// Write every frame the guest transmits (and the model's answers) here.
    pub pcap: Option<PathBuf>,
    /// PCI revision the model reports.
    pub revision: u8,
    /// MAC the model reports (the model's default when None).
    pub mac: Option<[u8; 6]>,
    /// The queue formats DESCRIBE_DEVICE offers (`--gvnic-formats`); None keeps the base
    /// configuration's (GQI-QPL by default).
    pub formats: Option<gvnic_model::Formats>,
    /// PCI slot on bus 0 (default 5).
    pub slot: Option<u8>,
    /// The model's full configuration (faults, responder, formats...) as a base;
    /// `revision`, `mac` and `formats` (when set) are applied on top.
    pub extra: Option<gvnic_model::ModelConfig>,
    /// Exchange frames with this Linux TAP interface (opened by the model thread, created if
    /// missing) instead of the built-in responder, which is then off.
    pub tap: Option<String>,
    /// The device generation (`--gvnic-profile`); None keeps the base configuration's (2026
    /// by default).
    pub profile: Option<gvnic_model::Profile>,
}

/// Boot a Linux kernel directly (`-kernel/-initrd/-append`) instead of the boot disk: used to
/// hold the gVNIC model to Google's own Linux driver (host-client/tests/linux_gve.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectBoot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
}

/// Everything about one QEMU run.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Boot disk; default `<workspace>/target/bringup.img`, `BRINGUP_IMAGE` overrides.
    pub image: PathBuf,
    /// OVMF instead of SeaBIOS.
    pub uefi: bool,
    pub accel: Accel,
    pub memory_mib: u32,
    /// `pc` (i440fx, like GCE) or `q35`.
    pub machine: String,
    pub nvme: Vec<NvmeDrive>,
    pub gvnic: Option<GvnicOptions>,
    /// QMP on a private UNIX socket (see `Session::qmp`).
    pub qmp: bool,
    /// Raw QEMU arguments, appended last.
    pub extra_args: Vec<String>,
    /// The QEMU binary.
    pub qemu_binary: String,
    /// A kernel and initramfs to boot instead of `image`.
    pub direct_boot: Option<DirectBoot>,
    /// Further gVNIC models beside `gvnic` (which must be set), each its own
    /// x-pci-proxy-dev and model thread: one boot of a Linux guest meets several device
    /// configurations (host-client/tests/linux_gve.rs). Give each its own `slot`.
    pub more_gvnics: Vec<GvnicOptions>,
    /// SeaBIOS's serial console on COM1 (`etc/sercon-port` 0x3f8): what a boot loader
    /// prints through the BIOS (Debian's ipxe.lkrn) reaches the serial socket, and serial
    /// input reaches it as keys. Off by default (the monitor drives COM1 itself).
    pub bios_serial_console: bool,
    /// How the NVMe disk files are opened (see [`crate::disk_view`]).
    pub nvme_view: DiskView,
    /// How `gvnic` (and `more_gvnics`) are attached; None: vfio-user when `qemu_binary` is
    /// 10.1 or newer, else the proxy ([`GvnicTransport::for_binary`]).
    pub gvnic_transport: Option<GvnicTransport>,
}

impl QemuConfig {
    /// The gVNIC transport this run uses (asks the binary its version when not set).
    pub fn resolved_gvnic_transport(&self) -> GvnicTransport {
        self.gvnic_transport
            .unwrap_or_else(|| GvnicTransport::for_binary(&self.qemu_binary))
    }
}

/// Where QEMU finds one gVNIC model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GvnicEndpoint {
    /// x-pci-proxy-dev: this inherited socket fd.
    ProxyFd(i32),
    /// vfio-user-pci: the model listens on this UNIX socket.
    VfioUser(PathBuf),
}

impl GvnicEndpoint {
    fn of(a: &crate::gvnic::Attachment) -> Option<GvnicEndpoint> {
        match (&a.qemu_end, &a.vfio_user_socket) {
            (Some(s), _) => Some(GvnicEndpoint::ProxyFd(s.as_raw_fd())),
            (None, Some(p)) => Some(GvnicEndpoint::VfioUser(p.clone())),
            (None, None) => None,
        }
    }

    /// The `-device` value for the model `id` at `slot`. vfio-user takes the JSON form: its
    /// socket is a SocketAddress (reference/qemu11-vfio-user.md §1).
    fn device(&self, id: &str, slot: u8) -> String {
        match self {
            GvnicEndpoint::ProxyFd(fd) => format!("x-pci-proxy-dev,id={id},fd={fd},addr={slot:#x}"),
            GvnicEndpoint::VfioUser(path) => serde_json::json!({
                "driver": "vfio-user-pci",
                "id": id,
                "addr": format!("{slot:02x}.0"),
                "socket": {"type": "unix", "path": path.display().to_string()},
            })
            .to_string(),
        }
    }
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            image: default_image(),
            uefi: false,
            accel: Accel::Tcg,
            memory_mib: 512,
            machine: "pc".into(),
            nvme: Vec::new(),
            gvnic: None,
            qmp: false,
            extra_args: Vec::new(),
            qemu_binary: "qemu-system-x86_64".into(),
            direct_boot: None,
            more_gvnics: Vec::new(),
            bios_serial_console: false,
            nvme_view: DiskView::default(),
            gvnic_transport: None,
        }
    }
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `BRINGUP_IMAGE`, else `<workspace>/target/bringup.img`.
pub fn default_image() -> PathBuf {
    std::env::var_os("BRINGUP_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/bringup.img"))
}

/// QEMU 11.1 (trixie-backports with its trixie runtime, unpacked by `make qemu11`; the
/// vfio-user client): `BRINGUP_QEMU11`, else
/// `<workspace>/target/qemu-11/bin/qemu-system-x86_64` (a wrapper). None when neither exists.
pub fn qemu11_binary() -> Option<PathBuf> {
    let path = std::env::var_os("BRINGUP_QEMU11")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/qemu-11/bin/qemu-system-x86_64"));
    path.is_file().then_some(path)
}

/// QEMU 10 (bookworm-backports, unpacked by `make qemu10`; its TCG emulates SHA-NI, 7.2's
/// does not): `BRINGUP_QEMU10`, else `<workspace>/target/qemu-10/bin/qemu-system-x86_64` (a
/// wrapper that keeps it off the system QEMU's modules).
/// None when neither exists.
pub fn qemu10_binary() -> Option<PathBuf> {
    let path = std::env::var_os("BRINGUP_QEMU10")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/qemu-10/bin/qemu-system-x86_64"));
    path.is_file().then_some(path)
}

/// Paths of the per-run files the command line refers to.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub serial: PathBuf,
    pub qmp: PathBuf,
    pub ovmf_vars: PathBuf,
}

/// The QEMU argv (without the program). `gvnic` is where the model serves.
pub fn qemu_args(cfg: &QemuConfig, files: &RunFiles, gvnic: Option<&GvnicEndpoint>) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    let mem = format!("{}M", cfg.memory_mib);
    if cfg.gvnic.is_some() {
        // The model needs guest RAM as a shared fd, or it gets no DMA.
        push(&[
            "-object",
            &format!("memory-backend-memfd,id=mem,size={mem},share=on"),
        ]);
        push(&["-machine", &format!("{},memory-backend=mem", cfg.machine)]);
    } else {
        push(&["-machine", &cfg.machine]);
    }
    push(&["-m", &mem]);
    push(&[
        "-accel",
        match cfg.accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        },
    ]);
    push(&[
        "-display",
        "none",
        "-vga",
        "none",
        "-monitor",
        "none",
        "-parallel",
        "none",
    ]);
    push(&["-nic", "none", "-no-reboot"]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=ser0,path={},server=on,wait=on",
            files.serial.display()
        ),
        "-serial",
        "chardev:ser0",
    ]);
    if cfg.uefi {
        push(&[
            "-drive",
            &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
        ]);
        push(&[
            "-drive",
            &format!(
                "if=pflash,format=raw,unit=1,file={}",
                files.ovmf_vars.display()
            ),
        ]);
    } else if cfg.bios_serial_console {
        // fw_cfg wants the port as a little-endian integer file; `string=` is not read as
        // a number by SeaBIOS (reference qemu11-vfio-user.md §4). Written by `spawn`.
        push(&[
            "-fw_cfg",
            &format!("name=etc/sercon-port,file={}", sercon_file(files).display()),
        ]);
    } else {
        // Keep SeaBIOS's serial VGA emulation off COM1 (no display adapter).
        push(&["-fw_cfg", "name=etc/sercon-port,string=0"]);
    }
    if let Some(d) = &cfg.direct_boot {
        push(&["-kernel", &d.kernel.display().to_string()]);
        push(&["-initrd", &d.initrd.display().to_string()]);
        push(&["-append", &d.append]);
    } else {
        // snapshot=on: runs never write the shared image, so tests can run side by side.
        push(&[
            "-drive",
            &format!(
                "file={},format=raw,if=ide,index=0,media=disk,snapshot=on",
                cfg.image.display()
            ),
        ]);
    }
    for (i, d) in cfg.nvme.iter().enumerate() {
        push(&[
            "-drive",
            &format!(
                "file={},if=none,format=raw,id=nvme{i}{}",
                d.path.display(),
                cfg.nvme_view.drive_options()
            ),
        ]);
        push(&[
            "-device",
            &format!("nvme,serial={},drive=nvme{i}", d.serial),
        ]);
    }
    if let (Some(g), Some(end)) = (&cfg.gvnic, gvnic) {
        push(&["-device", &end.device("gve0", g.slot.unwrap_or(5))]);
    }
    if cfg.qmp {
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", files.qmp.display()),
        ]);
    }
    a.extend(cfg.extra_args.iter().cloned());
    a
}

/// Where the run keeps SeaBIOS's sercon-port value (beside the serial socket).
fn sercon_file(files: &RunFiles) -> PathBuf {
    files.serial.with_file_name("sercon-port")
}

/// COM1's I/O port as SeaBIOS reads `etc/sercon-port`: a little-endian 64-bit integer.
const SERCON_COM1: [u8; 8] = 0x3f8u64.to_le_bytes();

/// A `-device` for each of [`QemuConfig::more_gvnics`] at its endpoint.
fn more_gvnic_args(cfg: &QemuConfig, ends: &[GvnicEndpoint]) -> Vec<String> {
    cfg.more_gvnics
        .iter()
        .zip(ends)
        .enumerate()
        .flat_map(|(i, (g, end))| {
            let slot = g.slot.unwrap_or(6 + i as u8);
            [
                "-device".to_string(),
                end.device(&format!("gve{}", i + 1), slot),
            ]
        })
        .collect()
}

/// A running QEMU. Killed (and reaped) on drop; it also dies with this process.
pub struct QemuProcess {
    child: Child,
    dir: tempfile::TempDir,
    files: RunFiles,
    stderr_tail: Arc<Mutex<String>>,
    gvnic_thread: Option<JoinHandle<Result<()>>>,
    /// Where the gVNIC model thread leaves its final state.
    gvnic_state: Option<crate::gvnic::FinalState>,
    /// The threads and final states of [`QemuConfig::more_gvnics`].
    more_gvnics: Vec<(Option<JoinHandle<Result<()>>>, crate::gvnic::FinalState)>,
    /// vfio-user: the models' sockets (to end a model still waiting for QEMU).
    gvnic_sockets: Vec<PathBuf>,
    pub(crate) started: Instant,
}

impl QemuProcess {
    /// Starts QEMU. It waits (wait=on) until something connects to [`Self::serial_path`].
    pub fn spawn(cfg: &QemuConfig) -> Result<QemuProcess> {
        check_inputs(cfg)?;
        let dir = tempfile::Builder::new().prefix("bringup-qemu-").tempdir()?;
        let files = RunFiles {
            serial: dir.path().join("serial.sock"),
            qmp: dir.path().join("qmp.sock"),
            ovmf_vars: dir.path().join("OVMF_VARS_4M.fd"),
        };
        if cfg.uefi {
            std::fs::copy(OVMF_VARS, &files.ovmf_vars)
                .context("cannot copy the OVMF variable store (is the ovmf package installed?)")?;
        }
        if cfg.bios_serial_console && !cfg.uefi {
            std::fs::write(sercon_file(&files), SERCON_COM1)?;
        }
        let transport = cfg.resolved_gvnic_transport();
        let socket = |i: usize| dir.path().join(format!("gvnic{i}.sock"));
        let mut gvnic = match &cfg.gvnic {
            Some(opts) => Some(crate::gvnic::attach(opts, transport, &socket(0))?),
            None => None,
        };
        let mut more: Vec<crate::gvnic::Attachment> = cfg
            .more_gvnics
            .iter()
            .enumerate()
            .map(|(i, opts)| crate::gvnic::attach(opts, transport, &socket(i + 1)))
            .collect::<Result<_>>()?;
        let end = gvnic.as_ref().and_then(GvnicEndpoint::of);
        let more_ends: Vec<GvnicEndpoint> = more.iter().filter_map(GvnicEndpoint::of).collect();
        let mut args = qemu_args(cfg, &files, end.as_ref());
        args.extend(more_gvnic_args(cfg, &more_ends));
        let gvnic_sockets: Vec<PathBuf> = gvnic
            .iter()
            .chain(&more)
            .filter_map(|g| g.vfio_user_socket.clone())
            .collect();
        // The proxy's sockets are inherited by QEMU (vfio-user's are connected to by path).
        let fd = match end {
            Some(GvnicEndpoint::ProxyFd(fd)) => Some(fd),
            _ => None,
        };
        let more_fds: Vec<i32> = more_ends
            .iter()
            .filter_map(|e| match e {
                GvnicEndpoint::ProxyFd(fd) => Some(*fd),
                GvnicEndpoint::VfioUser(_) => None,
            })
            .collect();
        let mut command = Command::new(&cfg.qemu_binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let inherit: Vec<i32> = fd.into_iter().chain(more_fds.iter().copied()).collect();
        // SAFETY: only async-signal-safe libc calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Die with the test or tool that started us: no leaked QEMUs.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                for &fd in &inherit {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start {} (is qemu-system-x86 installed?)",
                cfg.qemu_binary
            )
        })?;
        let stderr = child.stderr.take().context("qemu has no stderr")?;
        let stderr_tail = crate::transport::collect_tail(stderr);
        let gvnic_state = gvnic.as_ref().map(|g| g.final_state.clone());
        let gvnic_thread = gvnic.as_mut().map(|g| {
            // Our copy of QEMU's end is no longer needed once QEMU has it.
            g.close_qemu_end();
            g.thread.take()
        });
        let more_gvnics = more
            .iter_mut()
            .map(|g| {
                g.close_qemu_end();
                (g.thread.take(), g.final_state.clone())
            })
            .collect();
        Ok(QemuProcess {
            child,
            dir,
            files,
            stderr_tail,
            gvnic_thread: gvnic_thread.flatten(),
            gvnic_state,
            more_gvnics,
            gvnic_sockets,
            started,
        })
    }

    pub fn serial_path(&self) -> &Path {
        &self.files.serial
    }

    pub fn qmp_path(&self) -> &Path {
        &self.files.qmp
    }

    /// The per-run directory (sockets, OVMF vars).
    pub fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Connects to the serial socket, waiting for QEMU to create it.
    pub fn connect_serial(&mut self, timeout: Duration) -> Result<UnixStream> {
        let deadline = Instant::now() + timeout;
        loop {
            match UnixStream::connect(&self.files.serial) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    if let Some(status) = self.child.try_wait()? {
                        std::thread::sleep(Duration::from_millis(100));
                        bail!(
                            "QEMU exited ({status}) before its serial socket was ready:\n{}",
                            self.stderr_tail()
                        );
                    }
                    if Instant::now() >= deadline {
                        bail!("QEMU's serial socket did not appear within {timeout:?}: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// What QEMU wrote to stderr (last 8 KiB).
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Whether QEMU is still running.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills QEMU and reports how the gVNIC model thread ended (if one ran).
    pub fn shutdown(&mut self) -> Option<Result<()>> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.gvnic_thread.is_some() || self.more_gvnics.iter().any(|(t, _)| t.is_some()) {
            // QEMU may have died before connecting: a vfio-user model would wait in accept
            // forever. A connection of ours that closes at once ends it (harmless after
            // QEMU connected: the server accepts one connection).
            for path in &self.gvnic_sockets {
                let _ = UnixStream::connect(path);
            }
        }
        let join = |t: JoinHandle<Result<()>>| {
            t.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the gVNIC model thread panicked")))
        };
        let mut more_served = Ok(());
        for (t, _) in &mut self.more_gvnics {
            if let Some(Err(e)) = t.take().map(join) {
                more_served = Err(e);
            }
        }
        self.gvnic_thread.take().map(|t| join(t).and(more_served))
    }
}

impl QemuProcess {
    /// The gVNIC model's state when it stopped serving: `None` without a model, or while the
    /// model still serves (QEMU running; see [`Self::shutdown`]).
    pub fn gvnic_model_state(&self) -> Option<crate::gvnic::ModelState> {
        self.gvnic_state
            .as_ref()
            .and_then(|s| s.lock().ok().and_then(|s| s.clone()))
    }

    /// The final states of [`QemuConfig::more_gvnics`], in order (None while serving).
    pub fn more_gvnic_model_states(&self) -> Vec<Option<crate::gvnic::ModelState>> {
        self.more_gvnics
            .iter()
            .map(|(_, s)| s.lock().ok().and_then(|s| s.clone()))
            .collect()
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn check_inputs(cfg: &QemuConfig) -> Result<()> {
    if let Some(d) = &cfg.direct_boot {
        for f in [&d.kernel, &d.initrd] {
            if !f.is_file() {
                bail!("direct-boot file {} not found", f.display());
            }
        }
    } else if !cfg.image.is_file() {
        bail!(
            "boot image {} not found: build it with `make image` (or set BRINGUP_IMAGE / --image)",
            cfg.image
                .file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        );
    }
    if cfg.uefi && !Path::new(OVMF_CODE).is_file() {
        bail!("OVMF firmware not found: install the ovmf package for --uefi");
    }
    for d in &cfg.nvme {
        if !d.path.is_file() {
            bail!("NVMe backing file {} not found", d.path.display());
        }
        if d.serial.is_empty() || d.serial.contains(',') {
            bail!(
                "NVMe serial {:?} must be non-empty and contain no commas",
                d.serial
            );
        }
    }
    if cfg.memory_mib < 64 {
        bail!("memory {} MiB is too small (at least 64)", cfg.memory_mib);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> RunFiles {
        RunFiles {
            serial: "/run/x/serial.sock".into(),
            qmp: "/run/x/qmp.sock".into(),
            ovmf_vars: "/run/x/vars.fd".into(),
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn direct_boot_replaces_the_disk_with_kernel_initrd_and_append() {
        let cfg = QemuConfig {
            direct_boot: Some(DirectBoot {
                kernel: "/k/vmlinuz".into(),
                initrd: "/k/initrd".into(),
                append: "console=ttyS0".into(),
            }),
            ..Default::default()
        };
        let a = qemu_args(&cfg, &files(), None);
        assert_eq!(value_after(&a, "-kernel"), ["/k/vmlinuz"]);
        assert_eq!(value_after(&a, "-initrd"), ["/k/initrd"]);
        assert_eq!(value_after(&a, "-append"), ["console=ttyS0"]);
        assert!(value_after(&a, "-drive").is_empty(), "no boot disk");
    }

    #[test]
    fn bios_defaults_have_no_display_and_serial_on_socket() {
        let cfg = QemuConfig {
            image: "/img/bringup.img".into(),
            ..Default::default()
        };
        let a = qemu_args(&cfg, &files(), None);
        assert_eq!(value_after(&a, "-vga"), ["none"]);
        assert_eq!(value_after(&a, "-display"), ["none"]);
        assert_eq!(value_after(&a, "-accel"), ["tcg"]);
        assert_eq!(value_after(&a, "-m"), ["512M"]);
        assert_eq!(value_after(&a, "-serial"), ["chardev:ser0"]);
        assert!(value_after(&a, "-chardev")[0].contains("path=/run/x/serial.sock,server=on"));
        assert!(!a.iter().any(|x| x.contains("pflash")));
        assert!(value_after(&a, "-drive")[0].starts_with("file=/img/bringup.img,format=raw"));
    }

    #[test]
    fn bios_serial_console_points_sercon_at_a_com1_file() {
        let cfg = QemuConfig {
            bios_serial_console: true,
            ..Default::default()
        };
        let a = qemu_args(&cfg, &files(), None);
        assert_eq!(
            value_after(&a, "-fw_cfg"),
            ["name=etc/sercon-port,file=/run/x/sercon-port"]
        );
        assert_eq!(SERCON_COM1, [0xf8, 0x03, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn more_gvnics_are_devices_of_their_own_at_their_slots() {
        let cfg = QemuConfig {
            gvnic: Some(GvnicOptions::default()),
            more_gvnics: vec![
                GvnicOptions {
                    slot: Some(9),
                    ..Default::default()
                },
                GvnicOptions::default(),
            ],
            ..Default::default()
        };
        let a = more_gvnic_args(
            &cfg,
            &[
                GvnicEndpoint::ProxyFd(11),
                GvnicEndpoint::VfioUser("/run/x/gve2/gvnic.sock".into()),
            ],
        );
        let devices = value_after(&a, "-device");
        assert_eq!(devices[0], "x-pci-proxy-dev,id=gve1,fd=11,addr=0x9");
        let vfio: serde_json::Value = serde_json::from_str(devices[1]).unwrap();
        assert_eq!(vfio["driver"], "vfio-user-pci");
        assert_eq!(vfio["id"], "gve2");
        assert_eq!(vfio["addr"], "07.0");
        assert_eq!(vfio["socket"]["path"], "/run/x/gve2/gvnic.sock");
    }

    #[test]
    fn uefi_nvme_gvnic_qmp_and_extra_args() {
        let cfg = QemuConfig {
            image: "/img/b.img".into(),
            uefi: true,
            accel: Accel::Kvm,
            nvme: vec![NvmeDrive {
                path: "/d/disk.raw".into(),
                serial: "nvme_card-pd".into(),
            }],
            gvnic: Some(GvnicOptions::default()),
            qmp: true,
            extra_args: vec!["-device".into(), "pci-bridge,id=br1,chassis_nr=1".into()],
            ..Default::default()
        };
        let a = qemu_args(&cfg, &files(), Some(&GvnicEndpoint::ProxyFd(7)));
        let drives = value_after(&a, "-drive");
        assert!(drives[0].contains("readonly=on") && drives[0].contains(OVMF_CODE));
        assert!(drives[1].contains("unit=1,file=/run/x/vars.fd"));
        assert!(drives.contains(&"file=/d/disk.raw,if=none,format=raw,id=nvme0"));
        let devices = value_after(&a, "-device");
        assert!(devices.contains(&"nvme,serial=nvme_card-pd,drive=nvme0"));
        assert!(devices.contains(&"x-pci-proxy-dev,id=gve0,fd=7,addr=0x5"));
        assert_eq!(
            value_after(&a, "-object"),
            ["memory-backend-memfd,id=mem,size=512M,share=on"]
        );
        assert_eq!(value_after(&a, "-machine"), ["pc,memory-backend=mem"]);
        assert_eq!(value_after(&a, "-accel"), ["kvm"]);
        assert_eq!(
            value_after(&a, "-qmp"),
            ["unix:/run/x/qmp.sock,server=on,wait=off"]
        );
        assert_eq!(
            &a[a.len() - 2..],
            &["-device", "pci-bridge,id=br1,chassis_nr=1"]
        );
    }

    #[test]
    fn vfio_user_device_is_json_with_a_unix_socket_and_shared_memfd_ram() {
        let cfg = QemuConfig {
            gvnic: Some(GvnicOptions::default()),
            more_gvnics: vec![GvnicOptions::default()],
            ..Default::default()
        };
        let end = GvnicEndpoint::VfioUser("/run/x/gvnic0.sock".into());
        let a = qemu_args(&cfg, &files(), Some(&end));
        let devices = value_after(&a, "-device");
        let dev: serde_json::Value = serde_json::from_str(devices[0]).expect("JSON -device");
        assert_eq!(dev["driver"], "vfio-user-pci");
        assert_eq!(dev["addr"], "05.0");
        assert_eq!(dev["socket"]["type"], "unix");
        assert_eq!(dev["socket"]["path"], "/run/x/gvnic0.sock");
        assert_eq!(
            value_after(&a, "-object"),
            ["memory-backend-memfd,id=mem,size=512M,share=on"]
        );
        assert!(!a.iter().any(|x| x.contains("x-pci-proxy-dev")));
        let more = more_gvnic_args(
            &cfg,
            &[GvnicEndpoint::VfioUser("/run/x/gvnic1.sock".into())],
        );
        let dev: serde_json::Value = serde_json::from_str(&more[1]).unwrap();
        assert_eq!(
            (dev["id"].as_str(), dev["addr"].as_str()),
            (Some("gve1"), Some("06.0"))
        );
    }

    #[test]
    fn missing_image_is_a_clear_error() {
        let cfg = QemuConfig {
            image: "/nonexistent/bringup.img".into(),
            ..Default::default()
        };
        let err = check_inputs(&cfg).unwrap_err().to_string();
        assert!(err.contains("make image"), "{err}");
        assert!(!err.contains("/nonexistent"), "no machine paths: {err}");
    }
}
