//! The matrix plan: which targets a `bringup matrix` run has, each with a stable id.
//!
//! Local targets are the product of axes (firmware × machine × accel × gVNIC format set ×
//! gVNIC revision), or the `[[target]]` tables of a TOML file; GCE targets are one VM per
//! machine type. An id names a target in the terminal table, in matrix.json and as its report
//! directory, so it is derived from what the target is (`uefi-q35-tcg-dqo-rda-rev1`), never
//! from its position. This module decides nothing about running them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::qemu::{Accel, GvnicOptions, NvmeDrive, QemuConfig};
use crate::GvnicTransport;

/// SeaBIOS or OVMF.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// The formats one model offers: `gqi-qpl+dqo-rda`, or `none` (a device with no format
/// option at all, which drivers treat as GQI-QPL, facts §3.1). The model's own `--formats`
/// list, with `+` joining because `,` separates the axis's values on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatSet(pub gvnic_model::Formats);

impl FromStr for FormatSet {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<FormatSet> {
        let formats: gvnic_model::Formats =
            text.trim().replace('+', ",").parse().map_err(|e: String| {
                anyhow::anyhow!("gVNIC formats {text:?}: {e} (joined with +)")
            })?;
        Ok(FormatSet(formats))
    }
}

impl fmt::Display for FormatSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_string().replace(',', "+"))
    }
}

impl Serialize for FormatSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The gVNIC model on a local target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GvnicCell {
    pub formats: FormatSet,
    pub revision: u8,
    /// The device generation (`--gvnic-profile` axis).
    #[serde(serialize_with = "profile_name")]
    pub profile: gvnic_model::Profile,
    /// How the model is attached; None: chosen from the QEMU binary's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<GvnicTransport>,
}

fn profile_name<S: serde::Serializer>(
    p: &gvnic_model::Profile,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(p)
}

/// One local QEMU target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalTarget {
    pub firmware: Firmware,
    pub machine: String,
    #[serde(serialize_with = "accel_name")]
    pub accel: Accel,
    pub gvnic: Option<GvnicCell>,
    /// Raw NVMe disks (file names only in reports; see [`Cell::describe`]).
    #[serde(skip)]
    pub nvme: Vec<PathBuf>,
    pub memory_mib: u32,
}

fn accel_name<S: serde::Serializer>(a: &Accel, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(match a {
        Accel::Tcg => "tcg",
        Accel::Kvm => "kvm",
    })
}

impl LocalTarget {
    /// `bios-pc-tcg`, `uefi-q35-tcg-dqo-rda-rev1`: what the target is, as an id.
    pub fn id(&self) -> String {
        let mut id = format!(
            "{}-{}-{}",
            self.firmware.name(),
            self.machine,
            match self.accel {
                Accel::Tcg => "tcg",
                Accel::Kvm => "kvm",
            }
        );
        if let Some(g) = &self.gvnic {
            id.push_str(&format!("-{}-rev{}", g.formats, g.revision));
            // The default generation keeps the ids the matrix always had.
            if g.profile != gvnic_model::Profile::default() {
                id.push_str(&format!("-{}", g.profile));
            }
            if let Some(t) = g.transport {
                id.push_str(&format!("-{t}"));
            }
        }
        id
    }

    /// The QEMU configuration; `pcap` is where this target's gVNIC model writes its wire.
    pub fn qemu_config(&self, image: Option<&Path>, pcap: Option<PathBuf>) -> QemuConfig {
        let mut cfg = QemuConfig {
            uefi: self.firmware == Firmware::Uefi,
            accel: self.accel,
            machine: self.machine.clone(),
            memory_mib: self.memory_mib,
            ..QemuConfig::default()
        };
        if let Some(image) = image {
            cfg.image = image.to_path_buf();
        }
        cfg.nvme = NvmeDrive::numbered(&self.nvme);
        cfg.gvnic = self.gvnic.as_ref().map(|g| GvnicOptions {
            pcap,
            revision: g.revision,
            formats: Some(g.formats.0.clone()),
            profile: Some(g.profile),
            ..GvnicOptions::default()
        });
        if let Some(t) = self.gvnic.as_ref().and_then(|g| g.transport) {
            cfg.gvnic_transport = Some(t);
            // vfio-user needs QEMU 10.1+: the one `make qemu11` unpacks, when there.
            if t == GvnicTransport::VfioUser {
                if let Some(q) = crate::qemu::qemu11_binary() {
                    cfg.qemu_binary = q.display().to_string();
                }
            }
        }
        cfg
    }
}

/// One GCE VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GceCell {
    pub machine_type: String,
    /// `bu-m-RUNID-MACHINE-TYPE`, at most 63 characters.
    pub vm_name: String,
}

/// What a target is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CellKind {
    Local(LocalTarget),
    Gce(GceCell),
}

/// One target of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub id: String,
    #[serde(flatten)]
    pub kind: CellKind,
}

/// The local axes as given on the command line; an empty axis takes its default.
#[derive(Debug, Clone, Default)]
pub struct LocalAxes {
    pub firmware: Vec<Firmware>,
    pub machine: Vec<String>,
    pub accel: Vec<Accel>,
    /// Attach the model even when neither gVNIC axis is given.
    pub gvnic: bool,
    pub gvnic_formats: Vec<FormatSet>,
    pub gvnic_revision: Vec<u8>,
    pub gvnic_profile: Vec<gvnic_model::Profile>,
    /// gVNIC transport axis (empty: chosen from the QEMU binary, no id suffix).
    pub gvnic_transport: Vec<GvnicTransport>,
    pub nvme: Vec<PathBuf>,
    pub memory_mib: u32,
}

fn or_default<T: Clone>(axis: &[T], default: T) -> Vec<T> {
    if axis.is_empty() {
        vec![default]
    } else {
        axis.to_vec()
    }
}

impl LocalAxes {
    /// The product of the axes, in the order given (firmware outermost).
    pub fn cells(&self) -> Result<Vec<Cell>> {
        let with_gvnic = self.gvnic
            || !self.gvnic_formats.is_empty()
            || !self.gvnic_revision.is_empty()
            || !self.gvnic_profile.is_empty()
            || !self.gvnic_transport.is_empty();
        let gvnic: Vec<Option<GvnicCell>> = if with_gvnic {
            let formats = or_default(
                &self.gvnic_formats,
                "gqi-qpl".parse().expect("a known format"),
            );
            let revisions = or_default(&self.gvnic_revision, 0);
            let profiles = or_default(&self.gvnic_profile, gvnic_model::Profile::default());
            let transports: Vec<Option<GvnicTransport>> = if self.gvnic_transport.is_empty() {
                vec![None]
            } else {
                self.gvnic_transport.iter().copied().map(Some).collect()
            };
            let mut cells = Vec::new();
            for f in &formats {
                for r in &revisions {
                    for p in &profiles {
                        for t in &transports {
                            cells.push(Some(GvnicCell {
                                formats: f.clone(),
                                revision: *r,
                                profile: *p,
                                transport: *t,
                            }));
                        }
                    }
                }
            }
            cells
        } else {
            vec![None]
        };
        let mut cells = Vec::new();
        for firmware in or_default(&self.firmware, Firmware::Bios) {
            for machine in or_default(&self.machine, "pc".to_string()) {
                for accel in or_default(&self.accel, Accel::Tcg) {
                    for g in &gvnic {
                        let t = LocalTarget {
                            firmware,
                            machine: machine.clone(),
                            accel,
                            gvnic: g.clone(),
                            nvme: self.nvme.clone(),
                            memory_mib: self.memory_mib,
                        };
                        cells.push(Cell {
                            id: t.id(),
                            kind: CellKind::Local(t),
                        });
                    }
                }
            }
        }
        check_ids(&cells)?;
        Ok(cells)
    }
}

/// `--targets FILE`: `[[target]]` tables. Every key is optional; paths are relative to the
/// file's directory.
///
/// ```toml
/// [[target]]
/// name = "gce-like"          # the id; derived from the fields when left out
/// firmware = "uefi"
/// machine = "pc"
/// gvnic_formats = "gqi-qpl+dqo-rda"
/// gvnic_revision = 1
/// gvnic_profile = "2024"
/// gvnic_transport = "vfio-user"   # or "proxy"; default: from the QEMU version
/// nvme = ["disk.raw"]
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    target: Vec<TargetEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    name: Option<String>,
    firmware: Option<Firmware>,
    machine: Option<String>,
    accel: Option<String>,
    gvnic: Option<bool>,
    gvnic_formats: Option<String>,
    gvnic_revision: Option<u8>,
    gvnic_profile: Option<String>,
    gvnic_transport: Option<String>,
    #[serde(default)]
    nvme: Vec<PathBuf>,
    memory: Option<u32>,
}

/// Parses a targets file's text; `base` resolves relative NVMe paths.
pub fn targets_from_toml(text: &str, base: &Path, default_memory: u32) -> Result<Vec<Cell>> {
    let file: TargetsFile = toml::from_str(text).context("bad targets file")?;
    if file.target.is_empty() {
        bail!("the targets file lists no [[target]]");
    }
    let mut cells = Vec::new();
    for (i, e) in file.target.into_iter().enumerate() {
        let accel = match e.accel.as_deref() {
            None | Some("tcg") => Accel::Tcg,
            Some("kvm") => Accel::Kvm,
            Some(other) => bail!("target {}: accel {other:?} is not tcg or kvm", i + 1),
        };
        if e.gvnic_revision.is_some_and(|r| r > 1) {
            bail!("target {}: gvnic_revision must be 0 or 1", i + 1);
        }
        let transport = match e.gvnic_transport.as_deref() {
            None => None,
            Some("proxy") => Some(GvnicTransport::Proxy),
            Some("vfio-user") => Some(GvnicTransport::VfioUser),
            Some(other) => bail!(
                "target {}: gvnic_transport {other:?} is not proxy or vfio-user",
                i + 1
            ),
        };
        let with_gvnic = e.gvnic.unwrap_or(false)
            || e.gvnic_formats.is_some()
            || e.gvnic_revision.is_some()
            || e.gvnic_profile.is_some()
            || transport.is_some();
        let gvnic = if with_gvnic {
            let formats = e.gvnic_formats.as_deref().unwrap_or("gqi-qpl");
            Some(GvnicCell {
                formats: formats
                    .parse()
                    .with_context(|| format!("target {}", i + 1))?,
                revision: e.gvnic_revision.unwrap_or(0),
                profile: match e.gvnic_profile.as_deref() {
                    Some(p) => p
                        .parse()
                        .map_err(|m: String| anyhow::anyhow!("target {}: {m}", i + 1))?,
                    None => gvnic_model::Profile::default(),
                },
                transport,
            })
        } else {
            None
        };
        let t = LocalTarget {
            firmware: e.firmware.unwrap_or(Firmware::Bios),
            machine: e.machine.unwrap_or_else(|| "pc".into()),
            accel,
            gvnic,
            nvme: e.nvme.iter().map(|p| base.join(p)).collect(),
            memory_mib: e.memory.unwrap_or(default_memory),
        };
        cells.push(Cell {
            id: e.name.unwrap_or_else(|| t.id()),
            kind: CellKind::Local(t),
        });
    }
    check_ids(&cells)?;
    Ok(cells)
}

/// One VM per machine type, named after the run and the type.
pub fn gce_cells(run_id: &str, machine_types: &[String]) -> Result<Vec<Cell>> {
    if machine_types.is_empty() {
        bail!("--machine-types lists no machine type");
    }
    let cells: Vec<Cell> = machine_types
        .iter()
        .map(|mt| {
            let mut vm_name = format!("bu-m-{run_id}-{mt}");
            vm_name.truncate(63);
            let vm_name = vm_name.trim_end_matches('-').to_string();
            Cell {
                id: mt.clone(),
                kind: CellKind::Gce(GceCell {
                    machine_type: mt.clone(),
                    vm_name,
                }),
            }
        })
        .collect();
    check_ids(&cells)?;
    Ok(cells)
}

/// Ids are directory names and table rows: unique, and only `[a-z0-9._+-]`.
fn check_ids(cells: &[Cell]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for c in cells {
        let ok = !c.id.is_empty()
            && !c.id.starts_with('.')
            && c.id
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._+-".contains(ch));
        if !ok {
            bail!(
                "target id {:?} must be lowercase letters, digits, '.', '_', '+', '-'",
                c.id
            );
        }
        if !seen.insert(c.id.as_str()) {
            bail!("two targets have the id {:?}: give one a name", c.id);
        }
    }
    Ok(())
}

/// A short id for one matrix run (`m` + 8 hex digits from the clock and the pid): the
/// value of the VMs' `bringup-matrix` label and part of their names.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = nanos ^ (u64::from(std::process::id()) << 32);
    // Fold 64 bits to 32 so the name stays short; collisions only matter within one project.
    format!("m{:08x}", (mixed ^ (mixed >> 32)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cells: &[Cell]) -> Vec<&str> {
        cells.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn the_gvnic_transport_axis_multiplies_names_and_reaches_the_qemu_config() {
        let cells = LocalAxes {
            gvnic_transport: vec![GvnicTransport::Proxy, GvnicTransport::VfioUser],
            memory_mib: 512,
            ..LocalAxes::default()
        }
        .cells()
        .unwrap();
        assert_eq!(
            ids(&cells),
            [
                "bios-pc-tcg-gqi-qpl-rev0-proxy",
                "bios-pc-tcg-gqi-qpl-rev0-vfio-user"
            ]
        );
        let CellKind::Local(t) = &cells[1].kind else {
            panic!("local")
        };
        let cfg = t.qemu_config(None, None);
        assert!(cfg.gvnic.is_some(), "the transport axis implies the model");
        assert_eq!(cfg.gvnic_transport, Some(GvnicTransport::VfioUser));
        let text = "[[target]]\ngvnic_transport = \"vfio-user\"\n";
        let cells = targets_from_toml(text, Path::new("."), 512).unwrap();
        assert!(cells[0].id.ends_with("-vfio-user"), "{}", cells[0].id);
        let bad = "[[target]]\ngvnic_transport = \"pigeon\"\n";
        assert!(targets_from_toml(bad, Path::new("."), 512).is_err());
    }

    #[test]
    fn the_gvnic_profile_axis_multiplies_and_reaches_the_model() {
        use gvnic_model::Profile;
        let cells = LocalAxes {
            gvnic_profile: vec![Profile::Y2024, Profile::Y2026],
            memory_mib: 512,
            ..LocalAxes::default()
        }
        .cells()
        .unwrap();
        assert_eq!(
            ids(&cells),
            ["bios-pc-tcg-gqi-qpl-rev0-2024", "bios-pc-tcg-gqi-qpl-rev0"]
        );
        let CellKind::Local(t) = &cells[0].kind else {
            panic!("local")
        };
        let g = t
            .qemu_config(None, None)
            .gvnic
            .expect("the profile axis implies the model");
        assert_eq!(g.profile, Some(Profile::Y2024));
        let text = "[[target]]\ngvnic_profile = \"2024\"\n[[target]]\nname = \"x\"\ngvnic_profile = \"2025\"\n";
        assert!(targets_from_toml(text, Path::new("."), 512).is_err());
        let text = "[[target]]\ngvnic_profile = \"2024\"\n";
        let cells = targets_from_toml(text, Path::new("."), 512).unwrap();
        assert!(cells[0].id.ends_with("-2024"), "{}", cells[0].id);
    }

    #[test]
    fn axes_multiply_and_missing_axes_take_defaults() {
        let axes = LocalAxes {
            firmware: vec![Firmware::Bios, Firmware::Uefi],
            gvnic_formats: vec!["gqi-qpl".parse().unwrap(), "dqo-rda".parse().unwrap()],
            memory_mib: 512,
            ..LocalAxes::default()
        };
        let cells = axes.cells().unwrap();
        assert_eq!(
            ids(&cells),
            [
                "bios-pc-tcg-gqi-qpl-rev0",
                "bios-pc-tcg-dqo-rda-rev0",
                "uefi-pc-tcg-gqi-qpl-rev0",
                "uefi-pc-tcg-dqo-rda-rev0"
            ]
        );
        let CellKind::Local(t) = &cells[3].kind else {
            panic!()
        };
        let cfg = t.qemu_config(None, None);
        assert!(cfg.uefi);
        let formats = cfg.gvnic.unwrap().formats.unwrap();
        assert!(formats.dqo_rda && !formats.gqi_qpl && !formats.none);
        let plain = LocalAxes::default().cells().unwrap();
        assert_eq!(ids(&plain), ["bios-pc-tcg"]);
    }

    #[test]
    fn format_sets_parse_join_and_refuse() {
        let s: FormatSet = "dqo-rda+gqi-qpl".parse().unwrap();
        assert_eq!(s.to_string(), "gqi-qpl+dqo-rda");
        assert!(s.0.dqo_rda && s.0.gqi_qpl && !s.0.gqi_rda);
        let none: FormatSet = "none".parse().unwrap();
        assert!(none.0.none);
        let err = "gqi-xyz".parse::<FormatSet>().unwrap_err().to_string();
        assert!(err.contains("unknown queue format"), "{err}");
    }

    #[test]
    fn targets_file_names_defaults_and_duplicates() {
        let text = r#"
            [[target]]
            firmware = "uefi"
            machine = "q35"
            gvnic_formats = "dqo-rda"
            gvnic_revision = 1
            nvme = ["disk.raw"]

            [[target]]
            name = "plain"
        "#;
        let cells = targets_from_toml(text, Path::new("/t"), 256).unwrap();
        assert_eq!(ids(&cells), ["uefi-q35-tcg-dqo-rda-rev1", "plain"]);
        let CellKind::Local(t) = &cells[0].kind else {
            panic!()
        };
        assert_eq!(t.nvme, [PathBuf::from("/t/disk.raw")]);
        assert_eq!(t.memory_mib, 256);
        let dup = "[[target]]\n[[target]]\n";
        let err = targets_from_toml(dup, Path::new("."), 512).unwrap_err();
        assert!(err.to_string().contains("two targets"), "{err}");
        let typo = "[[target]]\nfirmwre = \"bios\"\n";
        assert!(targets_from_toml(typo, Path::new("."), 512).is_err());
    }

    #[test]
    fn gce_cells_are_valid_vm_names() {
        let long = "a3-highgpu-1g-with-a-very-long-made-up-machine-type-name-x".to_string();
        let cells = gce_cells("m0000abcd", &["c3-standard-4".into(), long]).unwrap();
        let CellKind::Gce(g) = &cells[0].kind else {
            panic!()
        };
        assert_eq!(g.vm_name, "bu-m-m0000abcd-c3-standard-4");
        let CellKind::Gce(g) = &cells[1].kind else {
            panic!()
        };
        assert!(g.vm_name.len() <= 63 && !g.vm_name.ends_with('-'));
        let id = new_run_id();
        assert!(id.len() == 9 && id.starts_with('m'), "{id}");
    }
}
