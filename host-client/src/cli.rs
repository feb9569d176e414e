//! The `bringup` command line (clap derive): declarations and value parsers only. Each
//! subcommand's `exec` lives in cmd/.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use host_client::console::FrameDisplay;
use host_client::matrix::plan::{Firmware, FormatSet};
use host_client::{Accel, GvnicTransport, Pacing};

const EXAMPLES: &str = "\
Examples:
  bringup qemu                                  # boot target/bringup.img under SeaBIOS, console
  bringup qemu --uefi --nvme disk.raw           # OVMF, one NVMe disk
  bringup run proofs/nvme.bringup --nvme disk.raw --report nvme.json
  bringup run proofs/full.bringup --gce --project P --zone Z --instance bu-vm --report gce.json
  bringup run proofs/nvme.bringup --connect unix:/tmp/serial.sock
  bringup decode serial.log                     # frames in a captured log, per boot
  bringup gce connect --project P --zone Z --instance bu-vm --dry-run
  bringup matrix proofs/gvnic.bringup --firmware bios,uefi --gvnic-formats gqi-qpl,dqo-rda --jobs 2
  bringup matrix proofs/full.bringup --gce --project P --zone Z --machine-types c3-standard-4,n2-standard-2

Quit the console with Ctrl-]. Command files: docs/SCRIPTS.md. Reports: docs/REPORT.md.";

#[derive(Parser, Debug)]
#[command(
    name = "bringup",
    version,
    about = "Drive the bringup bare-metal debug monitor over QEMU, GCE's serial console, or a socket",
    after_long_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Boot the monitor image in QEMU and open an interactive console.
    #[command(
        after_long_help = "Examples:\n  bringup qemu --uefi\n  bringup qemu --nvme disk.raw --gvnic --gvnic-pcap tx.pcap\n  bringup qemu -- -device pci-bridge,id=br1,chassis_nr=1\n\nQuit with Ctrl-]. Frames show as one-line summaries (--frames hidden|raw to change)."
    )]
    Qemu(QemuCmd),
    /// Run a command file against a monitor and write a JSON proof report.
    #[command(
        after_long_help = "Examples:\n  bringup run proofs/nvme.bringup --nvme disk.raw --report r.json\n  bringup run proofs/gvnic.bringup --uefi --gvnic --gvnic-pcap tx.pcap\n  bringup run proofs/full.bringup --gce --project P --zone us-central1-a --instance bu-vm\n  bringup run my.bringup --connect tcp:127.0.0.1:4444\n\nExit status: 0 when every command's result matched and every expectation held,\n1 when something failed, 2 when the run could not start (bad script, no image).\nThe command-file format is in docs/SCRIPTS.md, the report schema in docs/REPORT.md."
    )]
    Run(Box<RunCmd>),
    /// Decode evidence frames out of a captured serial log, grouped by boot.
    #[command(
        after_long_help = "Examples:\n  gcloud compute instances get-serial-port-output bu-vm --zone Z > serial.log 2>&1\n  bringup decode serial.log\n  bringup decode serial.log --json > frames.json\n  bringup decode - < serial.log\n\nDamaged frames (bad CRC/base64) are reported, never accepted; sequence gaps are listed.\nExit status 1 with --strict when any frame was damaged or missing."
    )]
    Decode(DecodeCmd),
    /// Google Compute Engine: serial console, image and VM lifecycle.
    #[command(subcommand)]
    Gce(GceCmd),
    /// Run one command file on many targets at once: local QEMU axes or GCE machine types.
    #[command(after_long_help = MATRIX_HELP)]
    Matrix(Box<MatrixCmd>),
}

const MATRIX_HELP: &str = "\
Examples:
  bringup matrix proofs/gvnic.bringup --firmware bios,uefi --gvnic-formats gqi-qpl,dqo-rda --jobs 2
  bringup matrix proofs/nvme.bringup --machine pc,q35 --nvme disk.raw --report target/matrix
  bringup matrix proofs/full.bringup --targets targets.toml
  bringup matrix proofs/full.bringup --gce --project P --zone us-central1-a \\
      --machine-types c3-standard-4,n2-standard-2 --image bringup --dry-run
  bringup gce vm list --project P --label bringup-matrix     # leftovers of a killed run
  bringup gce vm cleanup --project P

Local targets are the product of the axes (an axis left out takes its default); a gVNIC
format set joins formats with `+` (gqi-qpl+dqo-rda) because `,` separates targets.
GCE: one VM per machine type, labelled bringup-matrix=RUN_ID, deleted on success, failure,
timeout and Ctrl-C (unless --keep). The report directory holds matrix.json and
TARGET/report.json per target. Exit status: 0 when every target passed, 1 otherwise,
2 when the matrix could not start.";

/// `30s`, `500ms`, `2m` or bare seconds (the command-file grammar).
pub fn duration(text: &str) -> Result<Duration, String> {
    host_client::script::parse_duration(text).map_err(|e| e.to_string())
}

/// `BYTES:MILLISECONDS`: chunk size and pause between chunks.
pub fn pace(text: &str) -> Result<Pacing, String> {
    let (bytes, ms) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected BYTES:MILLISECONDS, e.g. 16:2"))?;
    let chunk_bytes: usize = bytes
        .parse()
        .map_err(|_| format!("{text:?}: bad byte count"))?;
    let ms: u64 = ms
        .parse()
        .map_err(|_| format!("{text:?}: bad milliseconds"))?;
    if chunk_bytes == 0 {
        return Err(format!("{text:?}: the chunk must be at least one byte"));
    }
    Ok(Pacing {
        chunk_bytes,
        pause: Duration::from_millis(ms),
    })
}

/// A gVNIC format set: `gqi-qpl`, `gqi-qpl+dqo-rda`, or `none`.
fn format_set(text: &str) -> Result<FormatSet, String> {
    text.parse().map_err(|e: anyhow::Error| e.to_string())
}

/// How a command file runs on each target (shared by `run` and `matrix`).
#[derive(Args, Debug, Clone)]
pub struct RunTuning {
    /// Per-command timeout unless the script sets one (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// Time allowed for boot (banner and prompt) or, when attaching, for the first prompt.
    #[arg(long, default_value = "180s", value_parser = duration)]
    pub boot_timeout: Duration,
    /// Input pacing as BYTES:MILLISECONDS (chunk size and pause between chunks).
    #[arg(long, default_value = "16:2", value_parser = pace)]
    pub pace: Pacing,
    /// Do not fail the run for damaged frames, sequence gaps or foreign-boot frames.
    #[arg(long)]
    pub tolerate_frame_damage: bool,
    /// Never show the progress display.
    #[arg(long)]
    pub no_progress: bool,
}

/// How QEMU is started (shared by `qemu` and `run --qemu`).
#[derive(Args, Debug, Clone)]
pub struct QemuOpts {
    /// Boot under OVMF (UEFI) instead of SeaBIOS.
    #[arg(long)]
    pub uefi: bool,
    /// Attach a raw file as an NVMe controller (repeatable; serials nvme0, nvme1, ...).
    #[arg(long, value_name = "FILE")]
    pub nvme: Vec<PathBuf>,
    /// Attach the gVNIC device model (vfio-user-pci on QEMU 10.1+, else x-pci-proxy-dev).
    #[arg(long)]
    pub gvnic: bool,
    /// How the gVNIC model is attached (implies --gvnic): vfio-user (QEMU 10.1+, MSI-X
    /// reaches the guest) or proxy (x-pci-proxy-dev, no interrupts) [default: vfio-user when
    /// the QEMU binary is 10.1 or newer].
    #[arg(long, value_enum, value_name = "T")]
    pub gvnic_transport: Option<GvnicTransport>,
    /// Write the gVNIC model's wire traffic to this pcap file (implies --gvnic).
    #[arg(long, value_name = "FILE")]
    pub gvnic_pcap: Option<PathBuf>,
    /// The model's PCI revision: 0 = AQ_PFN admin queue, 1 = base/length/RUN (implies --gvnic).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=1))]
    pub gvnic_revision: Option<u8>,
    /// Queue formats the gVNIC model offers (implies --gvnic): a comma list of gqi-qpl,
    /// gqi-rda, dqo-rda, dqo-qpl, or `none` (no format option: drivers fall back to GQI-QPL)
    /// [default: gqi-qpl].
    #[arg(long, value_name = "LIST")]
    pub gvnic_formats: Option<gvnic_model::Formats>,
    /// Connect the gVNIC model's wire to Linux TAP interface IFNAME instead of its built-in
    /// DHCP/ARP responder (implies --gvnic; created if missing; needs CAP_NET_ADMIN).
    #[arg(long, value_name = "IFNAME")]
    pub gvnic_tap: Option<String>,
    /// The gVNIC device generation (implies --gvnic): 2024 (queue-format options only) or
    /// 2026 (also MODIFY_RING, JUMBO_FRAMES, BUFFER_SIZES, FLOW_STEERING, NIC_TIMESTAMP,
    /// RSS_CONFIG) [default: 2026].
    #[arg(long, value_name = "YEAR")]
    pub gvnic_profile: Option<gvnic_model::Profile>,
    /// Accelerator: tcg (portable) or kvm.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Boot image [default: target/bringup.img, or $BRINGUP_IMAGE].
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// QEMU machine type (pc = i440fx like GCE, or q35).
    #[arg(long, default_value = "pc")]
    pub machine: String,
    /// The QEMU binary [default: qemu-system-x86_64; `make qemu10` unpacks QEMU 10, whose
    /// TCG has SHA-NI, behind target/qemu-10/bin/qemu-system-x86_64].
    #[arg(long, value_name = "PATH")]
    pub qemu_binary: Option<String>,
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true, value_name = "QEMU ARGS")]
    pub qemu_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct QemuCmd {
    #[command(flatten)]
    pub qemu: QemuOpts,
    /// How evidence frames appear.
    #[arg(long, value_enum, default_value_t = FrameDisplay::Summary)]
    pub frames: FrameDisplay,
}

/// Which GCE serial port to reach (shared by `gce connect` and `run --gce`).
#[derive(Args, Debug, Clone)]
pub struct GceOpts {
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub instance: Option<String>,
    /// Gateway user (your metadata/OS Login user) [default: $USER].
    #[arg(long)]
    pub user: Option<String>,
    /// Serial port, 1 to 4.
    #[arg(long, default_value_t = 1)]
    pub port: u8,
    /// Ask the gateway to replay this many recent lines on connect.
    #[arg(long, value_name = "N")]
    pub replay_lines: Option<u32>,
    /// Region of the regional gateway REGION-ssh-serialport.googleapis.com [default: from
    /// --zone, us-central1-a -> us-central1]; must be the zone's own region.
    #[arg(long, conflicts_with = "global_gateway")]
    pub region: Option<String>,
    /// Use the global gateway ssh-serialport.googleapis.com instead of the regional one.
    #[arg(long)]
    pub global_gateway: bool,
    /// Connect to HOST:PORT instead of the gateway (tests against a local sshd).
    #[arg(long, value_name = "HOST:PORT")]
    pub gateway: Option<String>,
    /// Private key [default: ~/.ssh/google_compute_engine].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Known-hosts file [default: ~/.ssh/google_compute_known_hosts].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// How long to wait for the gateway's `serialport: Connected` banner (30s, or bare seconds).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub connect_timeout: Duration,
    /// Quiet time after the banner before anything is sent (the gateway still trims output
    /// for a few seconds), e.g. 5s, 1500ms, 0.
    #[arg(long, default_value = "5s", value_parser = settle_duration)]
    pub settle: Duration,
    /// Waits between tries after "Permission denied (publickey)", in ms (tests).
    #[arg(long, value_delimiter = ',', value_name = "MS,..", hide = true)]
    pub auth_backoff_ms: Option<Vec<u64>>,
    /// Waits between reconnect tries after the line dropped, in ms (tests).
    #[arg(long, value_delimiter = ',', value_name = "MS,..", hide = true)]
    pub redial_backoff_ms: Option<Vec<u64>>,
}

/// `0` (no settle time) or a duration like `5s`.
fn settle_duration(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    host_client::script::parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct RunCmd {
    /// The command file.
    pub script: PathBuf,
    /// Boot the image in QEMU (the default when no other transport is given).
    #[arg(long, conflicts_with_all = ["connect", "gce"])]
    pub qemu: bool,
    /// Attach to a running monitor: tcp:HOST:PORT, unix:PATH or exec:CMD.
    #[arg(long, value_name = "SPEC", conflicts_with = "gce")]
    pub connect: Option<String>,
    /// Attach through the GCE serial console (needs --project, --zone, --instance).
    #[arg(long)]
    pub gce: bool,
    #[command(flatten)]
    pub qemu_opts: QemuOpts,
    #[command(flatten)]
    pub gce_opts: GceOpts,
    /// Write the JSON report here (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the gVNIC model's whole record here as JSON (the format of `gvnic-model
    /// --record`; needs the model).
    #[arg(long, value_name = "FILE")]
    pub gvnic_record: Option<PathBuf>,
    #[command(flatten)]
    pub tuning: RunTuning,
}

#[derive(Args, Debug)]
pub struct MatrixCmd {
    /// The command file every target runs.
    pub script: PathBuf,
    /// Targets run at once [default: the number of CPUs]. GCE: see --max-vms.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Directory for matrix.json and one TARGET/report.json per target.
    #[arg(long, value_name = "DIR", default_value = "target/matrix")]
    pub report: PathBuf,
    /// Local targets from a TOML file (`[[target]]` tables, each with its own NVMe disks)
    /// instead of the axes.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["firmware", "machine", "accel", "gvnic", "gvnic_formats", "gvnic_revision", "gvnic_profile", "gvnic_transport", "nvme", "gce"])]
    pub targets: Option<PathBuf>,
    /// Firmware axis: bios, uefi (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "gce")]
    pub firmware: Vec<Firmware>,
    /// QEMU machine axis: pc, q35.
    #[arg(long, value_delimiter = ',', conflicts_with = "gce")]
    pub machine: Vec<String>,
    /// Accelerator axis: tcg, kvm.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "gce")]
    pub accel: Vec<Accel>,
    /// Attach the gVNIC model to every local target (implied by the two gVNIC axes).
    #[arg(long, conflicts_with = "gce")]
    pub gvnic: bool,
    /// gVNIC format axis: each value a `+`-joined set of gqi-qpl, gqi-rda, dqo-rda, dqo-qpl, or none.
    #[arg(long, value_delimiter = ',', value_parser = format_set, conflicts_with = "gce")]
    pub gvnic_formats: Vec<FormatSet>,
    /// gVNIC PCI revision axis: 0, 1.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(0..=1), conflicts_with = "gce")]
    pub gvnic_revision: Vec<u8>,
    /// gVNIC device generation axis: 2024, 2026.
    #[arg(long, value_delimiter = ',', conflicts_with = "gce")]
    pub gvnic_profile: Vec<gvnic_model::Profile>,
    /// gVNIC transport axis: proxy (QEMU 7.2's x-pci-proxy-dev), vfio-user (QEMU 10.1+,
    /// target/qemu-11 when present) [default: from the QEMU version, no axis].
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "gce")]
    pub gvnic_transport: Vec<GvnicTransport>,
    /// A raw NVMe disk attached to every local target (repeatable).
    #[arg(long, value_name = "FILE", conflicts_with = "gce")]
    pub nvme: Vec<PathBuf>,
    /// Boot image for local targets [default: target/bringup.img, or $BRINGUP_IMAGE].
    #[arg(long, value_name = "FILE", conflicts_with = "gce")]
    pub boot_image: Option<PathBuf>,
    /// Guest memory in MiB for local targets.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// Run on GCE: one VM per --machine-types entry.
    #[arg(long, requires_all = ["project", "zone", "machine_types"])]
    pub gce: bool,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub zone: Option<String>,
    /// GCE machine types, one VM each (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "gce")]
    pub machine_types: Vec<String>,
    /// The GCE image the VMs boot (from `bringup gce image create`).
    #[arg(long, default_value = "bringup", requires = "gce")]
    pub image: String,
    /// At most this many VMs exist at once (bounds spending) [default: one per machine type].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), requires = "gce")]
    pub max_vms: Option<u32>,
    /// Kill a gcloud create or delete that takes longer (a killed create is followed by a delete).
    #[arg(long, default_value = "10m", value_parser = duration, requires = "gce")]
    pub gcloud_timeout: Duration,
    /// Leave the VMs running after the run (for debugging; `bringup gce vm cleanup` later).
    #[arg(long, requires = "gce")]
    pub keep: bool,
    /// Print the create/run/delete commands for every machine type instead of running them.
    #[arg(long, requires = "gce")]
    pub dry_run: bool,
    /// Serial gateway user [default: $USER].
    #[arg(long, requires = "gce")]
    pub user: Option<String>,
    /// Region of the regional gateway [default: from --zone]; must be the zone's own region.
    #[arg(long, requires = "gce", conflicts_with = "global_gateway")]
    pub region: Option<String>,
    /// Use the global gateway ssh-serialport.googleapis.com instead of the regional one.
    #[arg(long, requires = "gce")]
    pub global_gateway: bool,
    /// Quiet time after the gateway's banner before anything is sent, e.g. 5s, 0.
    #[arg(long, default_value = "5s", value_parser = settle_duration)]
    pub settle: Duration,
    /// Connect to HOST:PORT instead of the gateway.
    #[arg(long, value_name = "HOST:PORT", requires = "gce")]
    pub gateway: Option<String>,
    /// Private key [default: ~/.ssh/google_compute_engine].
    #[arg(long, value_name = "FILE", requires = "gce")]
    pub key: Option<PathBuf>,
    /// Known-hosts file [default: ~/.ssh/google_compute_known_hosts].
    #[arg(long, value_name = "FILE", requires = "gce")]
    pub known_hosts: Option<PathBuf>,
    #[command(flatten)]
    pub tuning: RunTuning,
}

#[derive(Args, Debug)]
pub struct DecodeCmd {
    /// The log file (`-` for stdin).
    pub log: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a frame was damaged, missing, or from an unexpected boot.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Subcommand, Debug)]
pub enum GceCmd {
    /// Open the VM's interactive serial console through the ssh gateway.
    #[command(
        after_long_help = "Examples:\n  bringup gce connect --project P --zone us-central1-a --instance bu-vm\n  bringup gce connect --project P --zone Z --instance bu-vm --replay-lines 200\n  bringup gce connect --project P --zone Z --instance bu-vm --dry-run\n\nThe VM needs metadata serial-port-enable=TRUE and your key in its metadata (as for\n`gcloud compute ssh`). Quit with Ctrl-]."
    )]
    Connect {
        #[command(flatten)]
        gce: GceOpts,
        /// Print the ssh command instead of running it.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = FrameDisplay::Summary)]
        frames: FrameDisplay,
    },
    /// Create or delete the bringup image.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Create or delete a VM running the image.
    #[command(subcommand)]
    Vm(VmCmd),
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Upload target/gce/bringup-gce.tar.gz and create an image (UEFI_COMPATIBLE, GVNIC).
    #[command(
        after_long_help = "Example:\n  make gce-image\n  bringup gce image create --project P --bucket my-bucket --name bringup-1"
    )]
    Create {
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "bringup")]
        name: String,
        /// Cloud Storage bucket for the upload (gs:// optional).
        #[arg(long)]
        bucket: String,
        /// The tarball [default: target/gce/bringup-gce.tar.gz].
        #[arg(long, value_name = "FILE")]
        tarball: Option<PathBuf>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the image (and its uploaded tarball when --bucket is given).
    Delete {
        #[arg(long)]
        project: String,
        #[arg(long, default_value = "bringup")]
        name: String,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum VmCmd {
    /// Create a VM (gVNIC, no external address, serial console on, Secure Boot off).
    #[command(
        after_long_help = "Example:\n  bringup gce vm create --project P --zone us-central1-a --name bu-vm --image bringup"
    )]
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        zone: String,
        #[arg(long, default_value = "bringup-vm")]
        name: String,
        #[arg(long, default_value = "bringup")]
        image: String,
        #[arg(long, default_value = host_client::gce::gcloud::DEFAULT_MACHINE_TYPE)]
        machine_type: String,
        /// Add a display device (GCE has none by default).
        #[arg(long)]
        display: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the VM.
    Delete {
        #[arg(long)]
        project: String,
        #[arg(long)]
        zone: String,
        #[arg(long, default_value = "bringup-vm")]
        name: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// List VMs by label, e.g. the leftovers of a matrix run that was killed.
    #[command(
        after_long_help = "Examples:\n  bringup gce vm list --project P --label bringup-matrix\n  bringup gce vm list --project P --label bringup-matrix=m1a2b3c4"
    )]
    List {
        #[arg(long)]
        project: String,
        /// KEY (any value) or KEY=VALUE.
        #[arg(long, default_value = host_client::gce::gcloud::MATRIX_LABEL)]
        label: String,
    },
    /// Delete every VM a matrix run left behind (label bringup-matrix, or one run's id).
    #[command(
        after_long_help = "Examples:\n  bringup gce vm cleanup --project P\n  bringup gce vm cleanup --project P --run-id m1a2b3c4 --dry-run"
    )]
    Cleanup {
        #[arg(long)]
        project: String,
        /// Only this matrix run's VMs.
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
}
