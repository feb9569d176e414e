//! gcloud wrappers: upload the GCE image tarball and create/delete the image and the VM
//! (reference part 1.2 and 1.4), list VMs by label. Each operation is a list of argv's,
//! printed by `--dry-run` and otherwise run one after the other, stopping at the first
//! failure; [`run_captured`] runs one and names the failure (quota, permission, ...).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::shell_line;

/// Default VM shape: the first series built around Google's IPU, gVNIC + NVMe.
pub const DEFAULT_MACHINE_TYPE: &str = "c3-standard-4";
/// Guest OS features the image declares: UEFI boot (NVMe series need it) and gVNIC.
pub const GUEST_OS_FEATURES: &str = "UEFI_COMPATIBLE,GVNIC";
/// The label every `bringup matrix` VM carries; its value is the run id.
pub const MATRIX_LABEL: &str = "bringup-matrix";

/// `bringup gce image create`.
#[derive(Debug, Clone)]
pub struct ImageCreate {
    pub project: String,
    pub name: String,
    pub bucket: String,
    /// The tarball from `make gce-image` (holding `disk.raw`).
    pub tarball: PathBuf,
}

impl ImageCreate {
    fn object(&self) -> String {
        format!(
            "gs://{}/{}.tar.gz",
            self.bucket
                .trim_start_matches("gs://")
                .trim_end_matches('/'),
            self.name
        )
    }

    pub fn commands(&self) -> Result<Vec<Vec<String>>> {
        check_name("image", &self.name)?;
        if self.bucket.trim_start_matches("gs://").is_empty() {
            bail!(
                "--bucket is required: the tarball is uploaded there before the image is created"
            );
        }
        Ok(vec![
            argv(&[
                "gcloud",
                "storage",
                "cp",
                &self.tarball.display().to_string(),
                &self.object(),
                &format!("--project={}", self.project),
            ]),
            argv(&[
                "gcloud",
                "compute",
                "images",
                "create",
                &self.name,
                &format!("--project={}", self.project),
                &format!("--source-uri={}", self.object()),
                &format!("--guest-os-features={GUEST_OS_FEATURES}"),
            ]),
        ])
    }
}

/// `bringup gce image delete` (and the uploaded tarball when the bucket is given).
pub fn image_delete(project: &str, name: &str, bucket: Option<&str>) -> Result<Vec<Vec<String>>> {
    check_name("image", name)?;
    let mut cmds = vec![argv(&[
        "gcloud",
        "compute",
        "images",
        "delete",
        name,
        &format!("--project={project}"),
        "--quiet",
    ])];
    if let Some(bucket) = bucket {
        let bucket = bucket.trim_start_matches("gs://").trim_end_matches('/');
        cmds.push(argv(&[
            "gcloud",
            "storage",
            "rm",
            &format!("gs://{bucket}/{name}.tar.gz"),
            &format!("--project={project}"),
        ]));
    }
    Ok(cmds)
}

/// `bringup gce vm create`.
#[derive(Debug, Clone)]
pub struct VmCreate {
    pub project: String,
    pub zone: String,
    pub name: String,
    pub image: String,
    pub machine_type: String,
    /// `--enable-display-device` (off by default, as on GCE).
    pub display: bool,
    /// `--labels=KEY=VALUE,...` (the matrix runner's run id, so leftovers can be found).
    pub labels: Vec<(String, String)>,
}

impl VmCreate {
    pub fn commands(&self) -> Result<Vec<Vec<String>>> {
        check_name("vm", &self.name)?;
        check_name("image", &self.image)?;
        let mut cmd = argv(&[
            "gcloud",
            "compute",
            "instances",
            "create",
            &self.name,
            &format!("--project={}", self.project),
            &format!("--zone={}", self.zone),
            &format!("--machine-type={}", self.machine_type),
            &format!("--image={}", self.image),
            &format!("--image-project={}", self.project),
            "--network-interface=nic-type=GVNIC,no-address",
            "--metadata=serial-port-enable=TRUE",
            "--no-shielded-secure-boot",
            "--maintenance-policy=TERMINATE",
        ]);
        if self.display {
            cmd.push("--enable-display-device".into());
        }
        if !self.labels.is_empty() {
            for (k, v) in &self.labels {
                check_label(k, v)?;
            }
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            cmd.push(format!("--labels={}", labels.join(",")));
        }
        Ok(vec![cmd])
    }
}

/// `bringup gce vm delete`.
pub fn vm_delete(project: &str, zone: &str, name: &str) -> Result<Vec<Vec<String>>> {
    check_name("vm", name)?;
    Ok(vec![argv(&[
        "gcloud",
        "compute",
        "instances",
        "delete",
        name,
        &format!("--project={project}"),
        &format!("--zone={zone}"),
        "--quiet",
    ])])
}

/// `gcloud compute instances list` of the VMs carrying a label: `KEY` (any value) or
/// `KEY=VALUE`, as JSON for [`parse_vm_list`].
pub fn vm_list(project: &str, label: &str) -> Result<Vec<String>> {
    let filter = match label.split_once('=') {
        Some((k, v)) => {
            check_label(k, v)?;
            format!("labels.{k}={v}")
        }
        None => {
            check_label(label, "")?;
            format!("labels.{label}:*")
        }
    };
    Ok(argv(&[
        "gcloud",
        "compute",
        "instances",
        "list",
        &format!("--project={project}"),
        &format!("--filter={filter}"),
        "--format=json",
    ]))
}

/// One VM of `gcloud compute instances list --format=json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListedVm {
    pub name: String,
    /// A URL in gcloud's output (`.../zones/us-central1-a`); [`parse_vm_list`] keeps the
    /// last segment.
    pub zone: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, rename = "creationTimestamp")]
    pub created: String,
}

/// Parses the JSON list gcloud prints; zones become plain names.
pub fn parse_vm_list(json: &str) -> Result<Vec<ListedVm>> {
    let mut vms: Vec<ListedVm> = serde_json::from_str(json)
        .context("gcloud's instance list is not the JSON list expected")?;
    for vm in &mut vms {
        if let Some(last) = vm.zone.rsplit('/').next() {
            vm.zone = last.to_string();
        }
    }
    Ok(vms)
}

/// Why a gcloud command failed, named: `gce-quota`, `gce-permission`, `gce-resources`
/// (zone out of capacity), `gce-not-found`, `gce-bad-request`, `gcloud-missing`,
/// `gcloud-timeout`, `gcloud-failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct GcloudError {
    pub code: &'static str,
    /// gcloud's own words (its last lines of stderr).
    pub message: String,
}

/// Names a failure from what gcloud printed. Only the API's own words count: the message
/// lines of gcloud's `ERROR:` report (the line itself and the ` - ` lines under it), with
/// every quoted string, bracketed name and resource path removed first, so a project id or
/// VM name (`lab-4031`, `bu-m-m1404beef-c3`) can never decide it. An HTTP status counts only
/// where gcloud states one as a field (`HTTPError 404`, `Error 403`, `"code": 400`,
/// `httpErrorStatusCode: 404`). Anything else is `gcloud-failed`: unknown, so callers must
/// not assume that nothing was made.
pub fn classify(stderr: &str) -> &'static str {
    let message = api_message(stderr);
    let lower = message.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["quota_exceeded"]) || (lower.contains("quota") && lower.contains("exceeded")) {
        return "gce-quota";
    }
    if has(&[
        "zone_resource_pool_exhausted",
        "does not have enough resources",
    ]) {
        return "gce-resources";
    }
    match http_status(&message) {
        Some(403) => return "gce-permission",
        Some(404) => return "gce-not-found",
        Some(400) => return "gce-bad-request",
        Some(_) => return "gcloud-failed",
        None => {}
    }
    if has(&[
        "permission",
        "forbidden",
        "not authorized",
        "permission_denied",
    ]) {
        "gce-permission"
    } else if has(&["was not found", "notfound", "not_found"]) {
        "gce-not-found"
    } else if has(&["invalid value", "invalid_argument", "badrequest"]) {
        "gce-bad-request"
    } else {
        "gcloud-failed"
    }
}

/// The message part of gcloud's error report with names taken out (see [`classify`]).
fn api_message(stderr: &str) -> String {
    let mut lines = Vec::new();
    let mut in_error = false;
    for line in stderr.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("ERROR:") {
            in_error = true;
            // `(gcloud.compute.instances.create)`: the command, not the API's words.
            let rest = rest.trim_start();
            let rest = match rest.strip_prefix('(') {
                Some(r) => r.split_once(')').map_or("", |(_, after)| after),
                None => rest,
            };
            lines.push(rest.to_string());
        } else if in_error && (t.starts_with("- ") || t.starts_with("-\t")) {
            lines.push(t[1..].to_string());
        } else if in_error && !t.is_empty() && line.starts_with(char::is_whitespace) {
            lines.push(t.to_string());
        } else {
            in_error = false;
        }
    }
    // gcloud without an ERROR: line (an old version, a wrapper): the whole text.
    let text = if lines.is_empty() {
        stderr.to_string()
    } else {
        lines.join("\n")
    };
    strip_names(&text)
}

/// Removes quoted strings, bracketed names and words holding a `/` (resource paths).
fn strip_names(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let close = match c {
            '\'' => Some('\''),
            '"' => Some('"'),
            '[' => Some(']'),
            _ => None,
        };
        match close {
            // `"code": 404` keeps its key: a quoted word followed by `:` is a field name.
            Some(end) => {
                let inner: String = chars.by_ref().take_while(|&x| x != end).collect();
                if chars.peek() == Some(&':') && !inner.contains(['/', ' ']) {
                    out.push_str(&inner);
                } else {
                    out.push(' ');
                }
            }
            None => out.push(c),
        }
    }
    out.split(' ')
        .filter(|w| !w.contains('/'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An HTTP status gcloud states as a field: `HTTPError 404`, `Error 404`, `code: 404`,
/// `httpErrorStatusCode: 404`.
fn http_status(message: &str) -> Option<u16> {
    let words: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).find_map(|pair| {
        let key = pair[0].trim_end_matches(':').to_ascii_lowercase();
        let is_key = matches!(
            key.as_str(),
            "httperror" | "error" | "code" | "httperrorstatuscode"
        );
        let value = pair[1].trim_end_matches([':', '.']);
        (is_key && value.len() == 3)
            .then(|| value.parse().ok())
            .flatten()
            .filter(|s| (100..600).contains(s))
    })
}

/// Policy: the longest one gcloud call may take before it is killed (a create usually
/// takes under a minute; gcloud itself waits for its operation for several).
pub const DEFAULT_GCLOUD_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs one gcloud command and returns its stdout ([`run_captured_within`] with
/// [`DEFAULT_GCLOUD_TIMEOUT`]).
pub fn run_captured(cmd: &[String]) -> std::result::Result<String, GcloudError> {
    run_captured_within(cmd, DEFAULT_GCLOUD_TIMEOUT)
}

/// Runs one gcloud command and returns its stdout; after `timeout` it is killed (its whole
/// process group) and the error is `gcloud-timeout`. Its own process group: a Ctrl-C at the
/// terminal must not kill a create halfway (the VM might appear after we gave up on it), so
/// the matrix runner lets it finish and deletes what it made.
pub fn run_captured_within(
    cmd: &[String],
    timeout: Duration,
) -> std::result::Result<String, GcloudError> {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| GcloudError {
            code: "gcloud-missing",
            message: format!(
                "cannot run {} (is the Google Cloud SDK installed?): {e}",
                cmd[0]
            ),
        })?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                // SAFETY: kill(2) on the process group we created for this child.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(GcloudError {
                    code: "gcloud-timeout",
                    message: format!(
                        "`{}` did not finish within {timeout:?} and was killed",
                        cmd[..cmd.len().min(4)].join(" ")
                    ),
                });
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if status.success() {
        return Ok(stdout);
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(GcloudError {
        code: classify(&stderr),
        message: format!(
            "`{}` failed ({status}): {}",
            cmd[..cmd.len().min(4)].join(" "),
            lines[lines.len().saturating_sub(4)..].join(" / ")
        ),
    })
}

/// Reads a child's pipe to the end in a thread (so a chatty gcloud never blocks on a full pipe).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Prints the commands (dry run) or runs them in order.
pub fn execute(commands: &[Vec<String>], dry_run: bool) -> Result<()> {
    for cmd in commands {
        println!("{}", shell_line(cmd));
        if dry_run {
            continue;
        }
        let status = Command::new(&cmd[0])
            .args(&cmd[1..])
            .status()
            .with_context(|| {
                format!("cannot run {} (is the Google Cloud SDK installed?)", cmd[0])
            })?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}); stopping",
                cmd[..cmd.len().min(4)].join(" ")
            );
        }
    }
    Ok(())
}

/// Image files must exist before uploading (not checked in dry runs).
pub fn check_tarball(path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!(
            "{} not found: build it with `make gce-image`",
            path.file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// GCE resource names: lowercase letter first, then lowercase letters, digits, dashes.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!("{what} name {name:?} is not a valid GCE name (lowercase letters, digits, dashes; starts with a letter; at most 63)");
    }
    Ok(())
}

/// Label keys and values: lowercase letters, digits, `-` and `_`, at most 63 (keys non-empty,
/// starting with a letter).
fn check_label(key: &str, value: &str) -> Result<()> {
    let chars_ok = |s: &str| {
        s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if !(chars_ok(key) && key.starts_with(|c: char| c.is_ascii_lowercase()) && chars_ok(value)) {
        bail!("label {key}={value} is not a valid GCE label (lowercase letters, digits, - and _)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag<'a>(cmd: &'a [String], name: &str) -> Option<&'a str> {
        cmd.iter().find_map(|a| a.strip_prefix(&format!("{name}=")))
    }

    #[test]
    fn image_create_uploads_then_creates_with_features() {
        let cmds = ImageCreate {
            project: "p1".into(),
            name: "bringup-1".into(),
            bucket: "gs://my-bucket/".into(),
            tarball: "target/gce/bringup-gce.tar.gz".into(),
        }
        .commands()
        .unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(&cmds[0][..3], &["gcloud", "storage", "cp"]);
        assert_eq!(cmds[0][3], "target/gce/bringup-gce.tar.gz");
        assert_eq!(cmds[0][4], "gs://my-bucket/bringup-1.tar.gz");
        assert_eq!(
            &cmds[1][..5],
            &["gcloud", "compute", "images", "create", "bringup-1"]
        );
        assert_eq!(
            flag(&cmds[1], "--source-uri"),
            Some("gs://my-bucket/bringup-1.tar.gz")
        );
        assert_eq!(
            flag(&cmds[1], "--guest-os-features"),
            Some("UEFI_COMPATIBLE,GVNIC")
        );
        assert_eq!(flag(&cmds[1], "--project"), Some("p1"));
    }

    #[test]
    fn vm_create_has_gvnic_no_address_serial_and_no_secure_boot() {
        let cmds = VmCreate {
            project: "p1".into(),
            zone: "us-central1-a".into(),
            name: "bu-vm".into(),
            image: "bringup-1".into(),
            machine_type: DEFAULT_MACHINE_TYPE.into(),
            display: false,
            labels: vec![(MATRIX_LABEL.into(), "m0000abcd".into())],
        }
        .commands()
        .unwrap();
        let c = &cmds[0];
        assert_eq!(
            &c[..5],
            &["gcloud", "compute", "instances", "create", "bu-vm"]
        );
        assert_eq!(flag(c, "--machine-type"), Some("c3-standard-4"));
        assert_eq!(flag(c, "--zone"), Some("us-central1-a"));
        assert_eq!(flag(c, "--image"), Some("bringup-1"));
        assert_eq!(
            flag(c, "--network-interface"),
            Some("nic-type=GVNIC,no-address")
        );
        assert_eq!(flag(c, "--metadata"), Some("serial-port-enable=TRUE"));
        assert!(c.contains(&"--no-shielded-secure-boot".to_string()));
        assert!(!c.contains(&"--enable-display-device".to_string()));
        assert_eq!(flag(c, "--labels"), Some("bringup-matrix=m0000abcd"));
    }

    #[test]
    fn list_filters_by_label_and_parses_zones() {
        let c = vm_list("p1", "bringup-matrix").unwrap();
        assert_eq!(flag(&c, "--filter"), Some("labels.bringup-matrix:*"));
        assert_eq!(flag(&c, "--format"), Some("json"));
        let c = vm_list("p1", "bringup-matrix=m1").unwrap();
        assert_eq!(flag(&c, "--filter"), Some("labels.bringup-matrix=m1"));
        assert!(vm_list("p1", "Bad Label").is_err());
        let vms = parse_vm_list(
            r#"[{"name":"bu-m-m1-c3-standard-4","zone":"https://www.googleapis.com/compute/v1/projects/p1/zones/us-central1-a",
                "status":"RUNNING","labels":{"bringup-matrix":"m1"},"creationTimestamp":"2026-12-01T09:00:00.000-08:00"}]"#,
        )
        .unwrap();
        assert_eq!(vms[0].zone, "us-central1-a");
        assert_eq!(vms[0].labels["bringup-matrix"], "m1");
        assert!(parse_vm_list("not json").is_err());
    }

    #[test]
    fn failures_are_named() {
        assert_eq!(
            classify("ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n - Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1."),
            "gce-quota"
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n - Required 'compute.instances.create' permission for 'projects/p1/zones/z/instances/x'"),
            "gce-permission"
        );
        assert_eq!(
            classify("The zone 'projects/p/zones/z' does not have enough resources available to fulfill the request."),
            "gce-resources"
        );
        assert_eq!(
            classify("Invalid value for field 'resource.machineType': 'zones/z/machineTypes/c9-x'. Machine type with name 'c9-x' does not exist in zone 'z'."),
            "gce-bad-request"
        );
        assert_eq!(classify("something odd"), "gcloud-failed");
    }

    #[test]
    fn digits_in_names_and_projects_never_name_a_failure() {
        // A transient error about a VM and a project whose names hold 404 and 403.
        let transient = "ERROR: (gcloud.compute.instances.delete) Could not fetch resource:\n - Internal error. Please try again. Resource 'projects/lab-4031/zones/us-central1-a/instances/bu-m-m1404beef-c3-standard-4'\n";
        assert_eq!(classify(transient), "gcloud-failed");
        let unquoted = "ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n - Backend error on projects/lab-4031/zones/z/instances/bu-m-m1400beef\n";
        assert_eq!(classify(unquoted), "gcloud-failed");
        // The real not-found of that VM is still named.
        let gone = "ERROR: (gcloud.compute.instances.delete) Could not fetch resource:\n - The resource 'projects/lab-4031/zones/z/instances/bu-m-m1404beef' was not found\n";
        assert_eq!(classify(gone), "gce-not-found");
        // An HTTP status stated as a field counts.
        assert_eq!(
            classify("ERROR: (gcloud.storage.cp) HTTPError 403: caller does not have storage.objects.create access"),
            "gce-permission"
        );
        assert_eq!(
            classify(
                "ERROR: (gcloud.compute.images.describe) {\"code\": 404, \"message\": \"gone\"}"
            ),
            "gce-not-found"
        );
        assert_eq!(
            classify("ERROR: (gcloud.compute.instances.list) HTTPError 503: backend unavailable"),
            "gcloud-failed"
        );
    }

    #[test]
    fn deletes_are_quiet_and_names_checked() {
        let c = &vm_delete("p1", "z", "bu-vm").unwrap()[0];
        assert_eq!(
            &c[..5],
            &["gcloud", "compute", "instances", "delete", "bu-vm"]
        );
        assert!(c.contains(&"--quiet".to_string()));
        let cmds = image_delete("p1", "bringup-1", Some("b")).unwrap();
        assert_eq!(cmds[1][3], "gs://b/bringup-1.tar.gz");
        assert!(vm_delete("p1", "z", "Bad_Name").is_err());
    }
}
