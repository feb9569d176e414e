//! The `bringup` command line (clap derive). Execution lives in main.rs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use host_client::console::FrameDisplay;
use host_client::Accel;

const EXAMPLES: &str = "\
Examples:
  bringup qemu                                  # boot target/bringup.img under SeaBIOS, console
  bringup qemu --uefi --nvme disk.raw           # OVMF, one NVMe disk
  bringup run proofs/nvme.bringup --nvme disk.raw --report nvme.json
  bringup run proofs/full.bringup --gce --project P --zone Z --instance bu-vm --report gce.json
  bringup run proofs/nvme.bringup --connect unix:/tmp/serial.sock
  bringup decode serial.log                     # frames in a captured log, per boot
  bringup gce connect --project P --zone Z --instance bu-vm --dry-run

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
    /// Attach the gVNIC device model (x-pci-proxy-dev).
    #[arg(long)]
    pub gvnic: bool,
    /// Write the gVNIC model's wire traffic to this pcap file (implies --gvnic).
    #[arg(long, value_name = "FILE")]
    pub gvnic_pcap: Option<PathBuf>,
    /// Queue formats the gVNIC model offers (implies --gvnic): a comma list of gqi-qpl,
    /// gqi-rda, dqo-rda, dqo-qpl, or `none` (no format option: drivers fall back to GQI-QPL)
    /// [default: gqi-qpl].
    #[arg(long, value_name = "LIST")]
    pub gvnic_formats: Option<gvnic_model::Formats>,
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
    /// Use the regional gateway REGION-ssh-serialport.googleapis.com.
    #[arg(long)]
    pub region: Option<String>,
    /// Connect to HOST:PORT instead of the gateway (tests against a local sshd).
    #[arg(long, value_name = "HOST:PORT")]
    pub gateway: Option<String>,
    /// Private key [default: ~/.ssh/google_compute_engine].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Known-hosts file [default: ~/.ssh/google_compute_known_hosts].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Seconds to wait for the gateway's `serialport: Connected` banner.
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
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
    /// Per-command timeout unless the script sets one (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Time allowed for boot (banner and prompt) or, when attaching, for the first prompt.
    #[arg(long, default_value = "180s")]
    pub boot_timeout: String,
    /// Input pacing as BYTES:MILLISECONDS (chunk size and pause between chunks).
    #[arg(long, default_value = "16:2")]
    pub pace: String,
    /// Do not fail the run for damaged frames, sequence gaps or foreign-boot frames.
    #[arg(long)]
    pub tolerate_frame_damage: bool,
    /// Never show the progress display.
    #[arg(long)]
    pub no_progress: bool,
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
}
