//! gcloud wrappers: upload the GCE image tarball and create/delete the image and the VM
//! (reference part 1.2 and 1.4). Each operation is a list of argv's, printed by `--dry-run`
//! and otherwise run one after the other, stopping at the first failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::shell_line;

/// Default VM shape: the first series built around Google's IPU, gVNIC + NVMe.
pub const DEFAULT_MACHINE_TYPE: &str = "c3-standard-4";
/// Guest OS features the image declares: UEFI boot (NVMe series need it) and gVNIC.
pub const GUEST_OS_FEATURES: &str = "UEFI_COMPATIBLE,GVNIC";

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
