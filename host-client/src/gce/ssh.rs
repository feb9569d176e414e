//! The GCE interactive serial console: `ssh -p 9600 P.Z.I.U.port=N@ssh-serialport.googleapis.com`
//! with gcloud's key and known-hosts file (reference part 1.1), the wait for the gateway's
//! `serialport: Connected` banner, and clear messages for the known failures.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::transport::{Connection, Recv};

/// The global serial-port gateway.
pub const GATEWAY_HOST: &str = "ssh-serialport.googleapis.com";
/// The gateway's TCP port.
pub const GATEWAY_PORT: u16 = 9600;
/// What the gateway prints once the console is attached.
pub const CONNECTED_BANNER: &str = "serialport: Connected";

/// One VM's serial port, and how to reach it.
#[derive(Debug, Clone)]
pub struct GceTarget {
    pub project: String,
    pub zone: String,
    pub instance: String,
    /// The user whose key is in metadata (or the OS Login user).
    pub user: String,
    /// Serial port 1 to 4 (1 is the console).
    pub port: u8,
    /// Ask the gateway to replay this many recent lines on connect.
    pub replay_lines: Option<u32>,
    /// Use the regional gateway `REGION-ssh-serialport.googleapis.com`.
    pub region: Option<String>,
    /// `HOST:PORT` instead of the gateway (tests against a local sshd).
    pub gateway: Option<String>,
    /// Private key (`~/.ssh/google_compute_engine` by default).
    pub key: PathBuf,
    /// Known-hosts file (`~/.ssh/google_compute_known_hosts` by default).
    pub known_hosts: PathBuf,
    /// How long to wait for the `serialport: Connected` banner.
    pub connect_timeout: Duration,
}

impl GceTarget {
    /// A target with gcloud's default key files under `$HOME/.ssh` and the local user name.
    pub fn new(project: &str, zone: &str, instance: &str) -> Result<GceTarget> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_default();
        let target = GceTarget {
            project: project.into(),
            zone: zone.into(),
            instance: instance.into(),
            user,
            port: 1,
            replay_lines: None,
            region: None,
            gateway: None,
            key: home.join(".ssh/google_compute_engine"),
            known_hosts: home.join(".ssh/google_compute_known_hosts"),
            connect_timeout: Duration::from_secs(30),
        };
        Ok(target)
    }

    /// Checks the fields that end up in the ssh user name.
    pub fn validate(&self) -> Result<()> {
        for (what, value) in [
            ("project", &self.project),
            ("zone", &self.zone),
            ("instance", &self.instance),
            ("user", &self.user),
        ] {
            if value.is_empty() {
                bail!("--{what} is required for the GCE serial console");
            }
            if value.chars().any(|c| c.is_whitespace() || c == '@') {
                bail!("--{what} {value:?} must not contain spaces or '@'");
            }
        }
        if !(1..=4).contains(&self.port) {
            bail!(
                "--port {} is out of range: GCE VMs have serial ports 1 to 4",
                self.port
            );
        }
        if let Some(region) = &self.region {
            if region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                bail!("--region {region:?} is not a region name like us-central1");
            }
        }
        Ok(())
    }

    /// The dotted gateway user name: `PROJECT.ZONE.INSTANCE.USER.port=N[.replay-lines=N]`.
    pub fn username(&self) -> String {
        let mut name = format!(
            "{}.{}.{}.{}.port={}",
            self.project, self.zone, self.instance, self.user, self.port
        );
        if let Some(lines) = self.replay_lines {
            name.push_str(&format!(".replay-lines={lines}"));
        }
        name
    }

    /// The host and port ssh connects to.
    pub fn endpoint(&self) -> Result<(String, u16)> {
        if let Some(gw) = &self.gateway {
            let Some((host, port)) = gw.rsplit_once(':') else {
                bail!("--gateway {gw:?} must be HOST:PORT");
            };
            let port = port
                .parse()
                .map_err(|_| anyhow::anyhow!("--gateway {gw:?}: bad port"))?;
            return Ok((host.to_string(), port));
        }
        Ok(match &self.region {
            Some(region) => (format!("{region}-{GATEWAY_HOST}"), GATEWAY_PORT),
            None => (GATEWAY_HOST.to_string(), GATEWAY_PORT),
        })
    }

    /// The full OpenSSH argv (program first).
    pub fn ssh_argv(&self) -> Result<Vec<String>> {
        self.validate()?;
        let (host, port) = self.endpoint()?;
        let mut argv: Vec<String> = vec!["ssh".into(), "-T".into(), "-e".into(), "none".into()];
        argv.extend(["-p".into(), port.to_string()]);
        argv.extend(["-i".into(), self.key.display().to_string()]);
        for opt in [
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "StrictHostKeyChecking=yes".into(),
            "HostKeyAlgorithms=+ssh-rsa".into(),
            "IdentitiesOnly=yes".into(),
            "CheckHostIP=no".into(),
            "ControlPath=none".into(),
            "PasswordAuthentication=no".into(),
            "ServerAliveInterval=30".into(),
        ] {
            argv.extend(["-o".into(), opt]);
        }
        argv.push(format!("{}@{}", self.username(), host));
        Ok(argv)
    }

    /// Spawns ssh and waits for the gateway's banner. Bytes that came before the banner are
    /// returned with the connection (they are gateway chatter, not console output).
    pub fn connect(&self) -> Result<(Connection, Vec<u8>)> {
        let argv = self.ssh_argv()?;
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        let mut conn = Connection::spawn(command)?;
        let deadline = Instant::now() + self.connect_timeout;
        let mut seen = Vec::new();
        loop {
            if let Some(at) = find(&seen, CONNECTED_BANNER.as_bytes()) {
                // Keep what follows the banner line: it is console output.
                let after = seen[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|p| at + p + 1)
                    .unwrap_or(seen.len());
                return Ok((conn, seen.split_off(after)));
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "{}",
                    explain_failure(
                        self,
                        &String::from_utf8_lossy(&seen),
                        &conn.stderr_tail(),
                        None
                    )
                    .unwrap_or_else(|| format!(
                        "no `{CONNECTED_BANNER}` banner from the gateway within {:?}",
                        self.connect_timeout
                    ))
                );
            }
            match conn.recv((deadline - now).min(Duration::from_millis(200))) {
                Recv::Data(bytes) => seen.extend_from_slice(&bytes),
                Recv::Timeout => {
                    if let Some(status) = conn.child_exit() {
                        std::thread::sleep(Duration::from_millis(100));
                        bail!("{}", self.exit_message(&seen, &conn, status.code()));
                    }
                }
                Recv::Closed(_) => {
                    // Let stderr drain, then explain.
                    std::thread::sleep(Duration::from_millis(300));
                    let code = conn.child_exit().and_then(|s| s.code());
                    bail!("{}", self.exit_message(&seen, &conn, code));
                }
            }
        }
    }

    fn exit_message(&self, seen: &[u8], conn: &Connection, code: Option<i32>) -> String {
        let stdout = String::from_utf8_lossy(seen);
        let stderr = conn.stderr_tail();
        explain_failure(self, &stdout, &stderr, code).unwrap_or_else(|| {
            format!(
                "ssh to the serial gateway ended before `{CONNECTED_BANNER}` (exit status {}).\n{}",
                code.map_or("unknown".into(), |c| c.to_string()),
                last_lines(&format!("{stdout}{stderr}"), 8)
            )
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Turns what ssh and the gateway said into an actionable message, for the failures people
/// meet: key refused, host key unknown or changed, serial port access disabled.
pub fn explain_failure(
    target: &GceTarget,
    stdout: &str,
    stderr: &str,
    exit: Option<i32>,
) -> Option<String> {
    let all = format!("{stdout}\n{stderr}");
    let lower = all.to_lowercase();
    let key = target
        .key
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kh = target
        .known_hosts
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if lower.contains("permission denied") {
        return Some(format!(
            "the serial gateway refused the key {key} (Permission denied) for user {:?}.\n\
             Check that its public half is in the project or instance ssh-keys metadata (with OS Login: \
             `gcloud compute os-login ssh-keys add --key-file=~/.ssh/{key}.pub`), and compare the user with \
             `gcloud compute connect-to-serial-port {} --zone {} --dry-run`. Right after a key is added GCE \
             may refuse for a minute: retry.",
            target.user, target.instance, target.zone
        ));
    }
    if lower.contains("remote host identification has changed")
        || lower.contains("host key verification failed")
        || lower.contains("no rsa host key is known")
        || lower.contains("host key for") && lower.contains("has changed")
    {
        return Some(format!(
            "the gateway's host key is missing from, or does not match, the known-hosts file {kh} \
             (StrictHostKeyChecking is on). Run `gcloud compute connect-to-serial-port {} --zone {}` once: \
             it downloads the gateway key into ~/.ssh/google_compute_known_hosts.",
            target.instance, target.zone
        ));
    }
    if lower.contains("no matching host key type") {
        return Some(
            "the gateway only offers ssh-rsa host keys and this ssh refused them; \
             HostKeyAlgorithms=+ssh-rsa is passed, so check for a system policy that forbids SHA-1"
                .into(),
        );
    }
    if lower.contains("serial-port-enable")
        || lower.contains("serial port access")
        || (lower.contains("serial port") && lower.contains("not enabled"))
    {
        return Some(format!(
            "serial port access is not enabled for {}. Enable it with \
             `gcloud compute instances add-metadata {} --zone {} --metadata serial-port-enable=TRUE` \
             (or in project metadata), then connect again.",
            target.instance, target.instance, target.zone
        ));
    }
    if lower.contains("could not resolve hostname")
        || lower.contains("connection refused")
        || lower.contains("connection timed out")
        || lower.contains("network is unreachable")
    {
        return Some(format!(
            "cannot reach the serial gateway: {}",
            last_lines(&all, 2)
        ));
    }
    if lower.contains("identity file") && lower.contains("no such file") {
        return Some(format!(
            "the key {key} does not exist; `gcloud compute ssh` creates it, or pass --key"
        ));
    }
    let _ = exit;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> GceTarget {
        let mut t = GceTarget::new("proj", "us-central1-a", "vm1").unwrap();
        t.user = "alice".into();
        t.key = "/home/alice/.ssh/google_compute_engine".into();
        t.known_hosts = "/home/alice/.ssh/google_compute_known_hosts".into();
        t
    }

    fn opt_values(argv: &[String]) -> Vec<&str> {
        argv.windows(2)
            .filter(|w| w[0] == "-o")
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn ssh_command_matches_the_gateway_contract() {
        let argv = target().ssh_argv().unwrap();
        assert_eq!(argv[0], "ssh");
        assert!(argv.contains(&"-T".to_string()));
        let e = argv.iter().position(|a| a == "-e").unwrap();
        assert_eq!(argv[e + 1], "none");
        let p = argv.iter().position(|a| a == "-p").unwrap();
        assert_eq!(argv[p + 1], "9600");
        let i = argv.iter().position(|a| a == "-i").unwrap();
        assert_eq!(argv[i + 1], "/home/alice/.ssh/google_compute_engine");
        let opts = opt_values(&argv);
        assert!(opts.contains(&"UserKnownHostsFile=/home/alice/.ssh/google_compute_known_hosts"));
        assert!(opts.contains(&"StrictHostKeyChecking=yes"));
        assert!(opts.contains(&"HostKeyAlgorithms=+ssh-rsa"));
        assert_eq!(
            argv.last().unwrap(),
            "proj.us-central1-a.vm1.alice.port=1@ssh-serialport.googleapis.com"
        );
        assert!(!argv.iter().any(|a| a == "-t" || a == "-tt"), "no pty");
    }

    #[test]
    fn replay_lines_region_and_gateway_override() {
        let mut t = target();
        t.port = 2;
        t.replay_lines = Some(1000);
        t.region = Some("europe-west4".into());
        let argv = t.ssh_argv().unwrap();
        assert_eq!(
            argv.last().unwrap(),
            "proj.us-central1-a.vm1.alice.port=2.replay-lines=1000@europe-west4-ssh-serialport.googleapis.com"
        );
        t.gateway = Some("127.0.0.1:2222".into());
        let argv = t.ssh_argv().unwrap();
        let p = argv.iter().position(|a| a == "-p").unwrap();
        assert_eq!(argv[p + 1], "2222");
        assert!(argv.last().unwrap().ends_with("@127.0.0.1"));
    }

    #[test]
    fn bad_fields_are_refused() {
        let mut t = target();
        t.port = 5;
        assert!(t.ssh_argv().unwrap_err().to_string().contains("1 to 4"));
        let mut t = target();
        t.instance = String::new();
        assert!(t.ssh_argv().unwrap_err().to_string().contains("--instance"));
        let mut t = target();
        t.gateway = Some("nohost".into());
        assert!(t.ssh_argv().is_err());
    }

    #[test]
    fn known_failures_get_clear_messages() {
        let t = target();
        let m =
            explain_failure(&t, "", "alice@x: Permission denied (publickey).", Some(255)).unwrap();
        assert!(m.contains("refused the key google_compute_engine"), "{m}");
        assert!(!m.contains("/home/alice"), "no machine paths: {m}");
        let m = explain_failure(
            &t,
            "",
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@",
            Some(255),
        )
        .unwrap();
        assert!(
            m.contains("known-hosts file google_compute_known_hosts"),
            "{m}"
        );
        let m = explain_failure(
            &t,
            "Serial port access is disabled; set serial-port-enable",
            "",
            Some(0),
        )
        .unwrap();
        assert!(m.contains("serial-port-enable=TRUE"), "{m}");
        assert!(explain_failure(&t, "", "something else", Some(1)).is_none());
    }
}
