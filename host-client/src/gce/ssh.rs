//! The GCE interactive serial console: who and where (`GceTarget`), the user-name rule, the
//! endpoint, and the OpenSSH argv: `ssh -p 9600 P.Z.I.U.port=N@REGION-ssh-serialport.googleapis.com`
//! with gcloud's key and known-hosts file (platform-notes §6). Connecting (banner, settle,
//! retries) is [`super::connect`]; this module starts no process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

/// The global serial-port gateway.
pub const GATEWAY_HOST: &str = "ssh-serialport.googleapis.com";
/// The gateway's TCP port.
pub const GATEWAY_PORT: u16 = 9600;
/// What the gateway prints once the console is attached (on ssh's stdout or stderr).
pub const CONNECTED_BANNER: &str = "serialport: Connected";
/// Policy, from syzkaller (platform-notes §6): the gateway was seen still trimming output for
/// about 5 s after its banner, so nothing is sent before this much time passed.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);
/// Policy: waits before the 2nd, 3rd and 4th try when the gateway answers
/// "Permission denied (publickey)", which syzkaller saw spuriously on GCE (platform-notes §6).
pub const AUTH_RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// Policy: waits before the 2nd, 3rd and 4th reconnect after the line dropped, when the
/// gateway refuses or ends the new session (a preempted or migrating VM is away for a while;
/// guess).
pub const REDIAL_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// Policy: the longest user name accepted (Linux `useradd` and OS Login both stop at 32).
pub const USER_MAX_CHARS: usize = 32;

/// One VM's serial port, and how to reach it.
#[derive(Debug, Clone)]
pub struct GceTarget {
    pub project: String,
    pub zone: String,
    pub instance: String,
    /// The user whose key is in metadata (or the OS Login user).
    pub user: String,
    /// Whether `user` came from `$USER`/`$LOGNAME` (for the error message).
    pub user_from_env: bool,
    /// Serial port 1 to 4 (1 is the console).
    pub port: u8,
    /// Ask the gateway to replay this many recent lines on connect.
    pub replay_lines: Option<u32>,
    /// The region of the regional gateway `REGION-ssh-serialport.googleapis.com`; `None`
    /// derives it from `zone` (unless `global_gateway`).
    pub region: Option<String>,
    /// Use the global gateway `ssh-serialport.googleapis.com` instead of the regional one.
    pub global_gateway: bool,
    /// `HOST:PORT` instead of the gateway (tests against a local sshd).
    pub gateway: Option<String>,
    /// Private key (`~/.ssh/google_compute_engine` by default).
    pub key: PathBuf,
    /// Known-hosts file (`~/.ssh/google_compute_known_hosts` by default).
    pub known_hosts: PathBuf,
    /// How long to wait for the `serialport: Connected` banner.
    pub connect_timeout: Duration,
    /// Quiet time after the banner before anything is sent ([`DEFAULT_SETTLE`]).
    pub settle: Duration,
    /// Waits between tries after "Permission denied (publickey)" ([`AUTH_RETRY_BACKOFF`]).
    pub auth_backoff: Vec<Duration>,
    /// Waits between tries when a reconnect after a drop fails ([`REDIAL_BACKOFF`]).
    pub redial_backoff: Vec<Duration>,
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
            user_from_env: true,
            port: 1,
            replay_lines: None,
            region: None,
            global_gateway: false,
            gateway: None,
            key: home.join(".ssh/google_compute_engine"),
            known_hosts: home.join(".ssh/google_compute_known_hosts"),
            connect_timeout: Duration::from_secs(30),
            settle: DEFAULT_SETTLE,
            auth_backoff: AUTH_RETRY_BACKOFF.to_vec(),
            redial_backoff: REDIAL_BACKOFF.to_vec(),
        };
        Ok(target)
    }

    /// Checks the fields that end up in the ssh user name and host.
    pub fn validate(&self) -> Result<()> {
        for (what, value) in [
            ("project", &self.project),
            ("zone", &self.zone),
            ("instance", &self.instance),
        ] {
            if value.is_empty() {
                bail!("--{what} is required for the GCE serial console");
            }
            if value.chars().any(|c| c.is_whitespace() || c == '@') {
                bail!("--{what} {value:?} must not contain spaces or '@'");
            }
        }
        check_user(&self.user, self.user_from_env)?;
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
            // The regional gateway only knows its own region's VMs, and its host key is that
            // region's: a mismatch would connect elsewhere and then name the wrong key.
            // (A zone not named REGION-X is taken as given: then --region is how to say it.)
            if let Some(of_zone) = region_of_zone(&self.zone).ok().filter(|r| r != region) {
                bail!(
                    "--region {region} does not hold --zone {} (its region is {of_zone}): drop --region, it is derived from the zone",
                    self.zone
                );
            }
        }
        if self.gateway.is_none() {
            self.gateway_host()?;
        }
        Ok(())
    }

    /// The dotted gateway user name: `PROJECT.ZONE.INSTANCE.USER.port=N[.replay-lines=N]`.
    pub fn username(&self) -> String {
        self.username_with_replay(self.replay_lines)
    }

    /// [`Self::username`] with another replay count (reconnects ask for more).
    pub fn username_with_replay(&self, replay_lines: Option<u32>) -> String {
        let mut name = format!(
            "{}.{}.{}.{}.port={}",
            self.project, self.zone, self.instance, self.user, self.port
        );
        if let Some(lines) = replay_lines {
            name.push_str(&format!(".replay-lines={lines}"));
        }
        name
    }

    /// The gateway's host name: regional (from `--region`, else the zone) unless
    /// `global_gateway`. Regional endpoints are Google's recommendation since 2024
    /// (platform-notes §6, syzkaller bf3b32eb4).
    pub fn gateway_host(&self) -> Result<String> {
        if self.global_gateway {
            return Ok(GATEWAY_HOST.to_string());
        }
        let region = match &self.region {
            Some(region) => region.clone(),
            None => region_of_zone(&self.zone)?,
        };
        Ok(format!("{region}-{GATEWAY_HOST}"))
    }

    /// One line saying which gateway is used and why (for `--dry-run`).
    pub fn endpoint_note(&self) -> Result<String> {
        let (host, port) = self.endpoint()?;
        Ok(if self.gateway.is_some() {
            format!("gateway override {host}:{port}")
        } else if self.global_gateway {
            format!("global gateway {host}:{port} (--global-gateway)")
        } else {
            let from = match &self.region {
                Some(_) => "--region".to_string(),
                None => format!("--zone {}", self.zone),
            };
            format!(
                "regional gateway {host}:{port} (from {from}; --global-gateway for {GATEWAY_HOST})"
            )
        })
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
        Ok((self.gateway_host()?, GATEWAY_PORT))
    }

    /// The full OpenSSH argv (program first).
    pub fn ssh_argv(&self) -> Result<Vec<String>> {
        self.ssh_argv_with_replay(self.replay_lines)
    }

    /// [`Self::ssh_argv`] asking the gateway to replay `replay_lines`.
    pub fn ssh_argv_with_replay(&self, replay_lines: Option<u32>) -> Result<Vec<String>> {
        self.validate()?;
        let (host, port) = self.endpoint()?;
        let mut argv: Vec<String> = vec!["ssh".into(), "-T".into(), "-e".into(), "none".into()];
        argv.extend(["-p".into(), port.to_string()]);
        argv.extend(["-i".into(), self.key.display().to_string()]);
        for opt in [
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "StrictHostKeyChecking=yes".into(),
            // The gateway's host key is ssh-rsa only, which OpenSSH 8.8+ no longer offers
            // by default (platform-notes §6, syzkaller serialPortArgs).
            "HostKeyAlgorithms=+ssh-rsa".into(),
            "IdentitiesOnly=yes".into(),
            "CheckHostIP=no".into(),
            "ControlPath=none".into(),
            "PasswordAuthentication=no".into(),
            // A connection that goes silent (half-open TCP: the gateway or a NAT on the
            // way dropped it without a word) must end well within a command's timeout (30 s
            // by default), so the run reconnects and resumes as for a drop; ssh's usual 30 s
            // x 3 would turn it into a plain command timeout.
            format!("ServerAliveInterval={}", KEEPALIVE_INTERVAL.as_secs()),
            format!("ServerAliveCountMax={KEEPALIVE_COUNT}"),
        ] {
            argv.extend(["-o".into(), opt]);
        }
        argv.push(format!(
            "{}@{}",
            self.username_with_replay(replay_lines),
            host
        ));
        Ok(argv)
    }
}

/// Policy: seconds between ssh's keepalive requests to the gateway, and how many may go
/// unanswered before ssh gives up: a silent line is found within 15 s, half the default
/// command timeout, for a few bytes every 5 s.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
pub const KEEPALIVE_COUNT: u32 = 3;

/// `us-central1-a` -> `us-central1`: a zone is its region plus `-` and one letter.
pub fn region_of_zone(zone: &str) -> Result<String> {
    let region = zone
        .rsplit_once('-')
        .filter(|(region, suffix)| {
            suffix.len() == 1
                && suffix.chars().all(|c| c.is_ascii_lowercase())
                && region.contains('-')
                && region.ends_with(|c: char| c.is_ascii_digit())
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map(|(region, _)| region.to_string());
    match region {
        Some(region) => Ok(region),
        None => bail!(
            "--zone {zone:?} does not look like REGION-X (e.g. us-central1-a), so the regional \
             gateway cannot be derived: pass --region REGION or --global-gateway"
        ),
    }
}

/// The gateway login is `PROJECT.ZONE.INSTANCE.USER.port=N`, split at dots, and the user is
/// the Linux account the guest agent makes from the metadata key (or the OS Login name,
/// `alice_example_com`). So the rule is the portable Linux user name: a lowercase letter or
/// `_`, then lowercase letters, digits, `_` or `-`, at most [`USER_MAX_CHARS`]. A dot would
/// shift every field after it; uppercase and spaces are not Linux account names. (Policy:
/// gcloud itself only refuses spaces and non-ASCII, then logs in as someone else.)
pub fn check_user(user: &str, from_env: bool) -> Result<()> {
    let source = if from_env {
        format!("$USER is {user:?}, which")
    } else {
        format!("--user {user:?}")
    };
    if user.is_empty() {
        bail!("--user is required ($USER is not set)");
    }
    let mut chars = user.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !first_ok || !rest_ok || user.chars().count() > USER_MAX_CHARS {
        bail!(
            "{source} is not a valid gateway user name: use lowercase letters, digits, '_' and \
             '-', starting with a letter or '_', at most {USER_MAX_CHARS} characters (the gateway \
             splits its login at dots). Pass --user with your metadata or OS Login user name \
             (`gcloud compute connect-to-serial-port INSTANCE --dry-run` shows it)."
        );
    }
    Ok(())
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
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
        let host = target
            .gateway_host()
            .unwrap_or_else(|_| GATEWAY_HOST.to_string());
        let location = match host.strip_suffix(&format!("-{GATEWAY_HOST}")) {
            Some(region) => format!(" --location {region}"),
            None => String::new(),
        };
        return Some(format!(
            "the gateway's host key for [{host}]:{GATEWAY_PORT} is missing from, or does not match, \
             the known-hosts file {kh} (StrictHostKeyChecking is on). Run \
             `gcloud compute connect-to-serial-port {} --zone {}{location}` once: it downloads that \
             gateway's key into ~/.ssh/google_compute_known_hosts (or pass --global-gateway to use \
             the global one).",
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
        t.user_from_env = false;
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
            "proj.us-central1-a.vm1.alice.port=1@us-central1-ssh-serialport.googleapis.com",
            "the regional gateway, derived from the zone"
        );
        assert!(!argv.iter().any(|a| a == "-t" || a == "-tt"), "no pty");
    }

    #[test]
    fn global_gateway_is_an_option() {
        let mut t = target();
        t.global_gateway = true;
        assert_eq!(
            t.ssh_argv().unwrap().last().unwrap(),
            "proj.us-central1-a.vm1.alice.port=1@ssh-serialport.googleapis.com"
        );
        assert_eq!(t.endpoint().unwrap(), (GATEWAY_HOST.to_string(), 9600));
    }

    #[test]
    fn region_comes_from_the_zone() {
        assert_eq!(region_of_zone("us-central1-a").unwrap(), "us-central1");
        assert_eq!(region_of_zone("europe-west4-c").unwrap(), "europe-west4");
        assert_eq!(
            region_of_zone("northamerica-northeast2-b").unwrap(),
            "northamerica-northeast2"
        );
        for bad in [
            "z",
            "us-central1",
            "us-central1-ab",
            "US-CENTRAL1-A",
            "central1-a",
        ] {
            let err = region_of_zone(bad).unwrap_err().to_string();
            assert!(
                err.contains("--region") && err.contains("--global-gateway"),
                "{bad}: {err}"
            );
        }
        let mut t = target();
        t.zone = "z".into();
        assert!(t
            .ssh_argv()
            .unwrap_err()
            .to_string()
            .contains("--zone \"z\""));
        t.region = Some("asia-east1".into());
        assert!(t
            .ssh_argv()
            .unwrap()
            .last()
            .unwrap()
            .ends_with("@asia-east1-ssh-serialport.googleapis.com"));
    }

    #[test]
    fn user_names_that_would_log_in_as_someone_else_are_refused() {
        for good in ["alice", "_svc", "a-b_c9", "alice_example_com"] {
            check_user(good, false).unwrap();
        }
        for bad in [
            "first.last",
            "Alice",
            "two words",
            "9lives",
            "-x",
            "a@b",
            &"a".repeat(33),
        ] {
            let err = check_user(bad, false).unwrap_err().to_string();
            assert!(
                err.contains("--user") && err.contains("not a valid gateway user name"),
                "{bad}: {err}"
            );
        }
        let err = check_user("First.Last", true).unwrap_err().to_string();
        assert!(err.starts_with("$USER is \"First.Last\""), "{err}");
        assert!(err.contains("Pass --user"), "{err}");
        let mut t = target();
        t.user = "jane.doe".into();
        assert!(t
            .ssh_argv()
            .unwrap_err()
            .to_string()
            .contains("--user \"jane.doe\""));
    }

    #[test]
    fn replay_lines_region_and_gateway_override() {
        let mut t = target();
        t.port = 2;
        t.replay_lines = Some(1000);
        t.region = Some("europe-west4".into());
        let err = t.ssh_argv().unwrap_err().to_string();
        assert!(err.contains("does not hold --zone us-central1-a"), "{err}");
        t.zone = "europe-west4-b".into();
        let argv = t.ssh_argv().unwrap();
        assert_eq!(
            argv.last().unwrap(),
            "proj.europe-west4-b.vm1.alice.port=2.replay-lines=1000@europe-west4-ssh-serialport.googleapis.com"
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
