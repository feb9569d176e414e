//! What became of a VM create whose outcome is unknown (gcloud killed at its timeout, or an
//! error we do not recognise). GCE keeps working on an `instances insert` after the client
//! that sent it went away, so "gcloud failed" never means "no VM": the VM may appear minutes
//! later and run (and bill) until someone deletes it.
//!
//! The answer comes from gcloud's JSON only, never from its error text: the zone's insert
//! operation for the name (`operations list --format=json`: `status` PENDING/RUNNING/DONE,
//! `error`, `httpErrorStatusCode`) and the instance itself (`instances list --filter=name=...
//! --format=json`, an empty list when it is not there). Polled with backoff until:
//! - the instance is listed, or its insert operation is DONE without error: it exists
//!   ([`Fate::Exists`], the caller deletes it);
//! - the insert operation is DONE with an error and no instance is listed: it never will
//!   ([`Fate::NeverWill`]);
//! - no insert operation appears within the grace time and no instance is listed: the request
//!   never reached GCE ([`Fate::NeverWill`]);
//! - the budget runs out first: [`Fate::Unknown`] (the caller reports the VM as possibly
//!   left running, with the command that deletes it).
//!
//! This module knows gcloud's JSON, not the fleet or the matrix.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;

use super::gcloud::{parse_vm_list, run_captured_within};

/// Policy: how long to follow one unknown create at most (a create usually takes under a
/// minute; GCE's insert operations can queue for several under load (guess)).
pub const FOLLOW_BUDGET: Duration = Duration::from_secs(15 * 60);
/// Policy: how long an insert operation may take to show in `operations list` after gcloud
/// sent it (the API lists an operation as soon as the insert is accepted; a minute covers a
/// slow listing (guess)).
pub const NO_OPERATION_GRACE: Duration = Duration::from_secs(60);
/// Policy: first pause between polls, doubled each time up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(20);

/// What became of the create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The VM exists (or its insert finished without error): delete it.
    Exists,
    /// It does not exist and will not (why, for the report).
    NeverWill(String),
    /// Still not known when the budget ran out (why).
    Unknown(String),
}

/// How to follow one create.
#[derive(Debug, Clone)]
pub struct Follow<'a> {
    pub project: &'a str,
    pub zone: &'a str,
    pub name: &'a str,
    /// Each gcloud call's limit.
    pub gcloud_timeout: Duration,
    /// How long an absent operation still may appear ([`NO_OPERATION_GRACE`], or zero when
    /// gcloud's error said the API refused the insert itself).
    pub grace: Duration,
    pub budget: Duration,
}

/// `gcloud compute instances list` of exactly this VM, as JSON.
pub fn instance_query(project: &str, zone: &str, name: &str) -> Vec<String> {
    [
        "gcloud",
        "compute",
        "instances",
        "list",
        &format!("--project={project}"),
        &format!("--zones={zone}"),
        &format!("--filter=name={name}"),
        "--format=json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `gcloud compute operations list` of the insert operations of this VM, as JSON.
pub fn insert_query(project: &str, zone: &str, name: &str) -> Vec<String> {
    [
        "gcloud",
        "compute",
        "operations",
        "list",
        &format!("--project={project}"),
        &format!("--zones={zone}"),
        &format!("--filter=operationType=insert AND targetLink~/instances/{name}$"),
        "--format=json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One zone operation of `operations list --format=json` (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct Operation {
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "targetLink")]
    pub target: String,
    #[serde(default)]
    pub error: Option<OperationErrors>,
    #[serde(default, rename = "httpErrorStatusCode")]
    pub http_status: Option<u16>,
    #[serde(default, rename = "insertTime")]
    pub inserted: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OperationErrors {
    #[serde(default)]
    pub errors: Vec<OperationError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OperationError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl Operation {
    /// The operation's errors as one line, `None` when it has none.
    pub fn failure(&self) -> Option<String> {
        let errors = self.error.as_ref().filter(|e| !e.errors.is_empty())?;
        let mut text = errors
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(status) = self.http_status {
            text.push_str(&format!(" (HTTP {status})"));
        }
        Some(text)
    }
}

/// The insert operations of `name` in gcloud's JSON (targets checked again: a filter is not
/// trusted to be exact), latest last.
pub fn parse_inserts(json: &str, name: &str) -> Result<Vec<Operation>> {
    let mut ops: Vec<Operation> =
        serde_json::from_str(json).context("gcloud's operation list is not the JSON expected")?;
    ops.retain(|op| op.target.rsplit('/').next() == Some(name));
    ops.sort_by(|a, b| a.inserted.cmp(&b.inserted));
    Ok(ops)
}

/// One look: `Some(fate)` when the JSON decides it, `None` to look again.
pub fn judge(
    listed: bool,
    inserts: &[Operation],
    waited: Duration,
    grace: Duration,
) -> Option<Fate> {
    if listed {
        return Some(Fate::Exists);
    }
    match inserts.last() {
        Some(op) if op.status == "DONE" => Some(match op.failure() {
            Some(why) => Fate::NeverWill(format!("its insert operation failed: {why}")),
            // Finished without error: it exists even if the list has not caught up.
            None => Fate::Exists,
        }),
        Some(_) => None,
        None if waited >= grace => Some(Fate::NeverWill(format!(
            "no insert operation for it appeared within {grace:?} and it is not listed: the request never reached GCE"
        ))),
        None => None,
    }
}

/// Polls gcloud until the create's fate is known or the budget runs out.
pub fn follow(f: &Follow) -> Fate {
    let started = Instant::now();
    let mut pause = POLL_FIRST;
    let mut last_problem;
    loop {
        match look(f) {
            Ok((listed, inserts)) => {
                if let Some(fate) = judge(listed, &inserts, started.elapsed(), f.grace) {
                    return fate;
                }
                last_problem = match inserts.last() {
                    Some(op) => format!("its insert operation is still {}", op.status),
                    None => "no insert operation listed yet".into(),
                };
            }
            Err(e) => last_problem = format!("{e:#}"),
        }
        if started.elapsed() + pause > f.budget {
            return Fate::Unknown(format!(
                "after following it for {:?}: {last_problem}",
                started.elapsed()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(POLL_MAX);
    }
}

fn look(f: &Follow) -> Result<(bool, Vec<Operation>)> {
    let vms = run_captured_within(&instance_query(f.project, f.zone, f.name), f.gcloud_timeout)?;
    let listed = parse_vm_list(&vms)?.iter().any(|vm| vm.name == f.name);
    if listed {
        return Ok((true, Vec::new()));
    }
    let ops = run_captured_within(&insert_query(f.project, f.zone, f.name), f.gcloud_timeout)?;
    Ok((false, parse_inserts(&ops, f.name)?))
}

/// Whether the VM is listed now (a delete that failed is checked this way before the VM is
/// called left behind). `Err` when gcloud could not say.
pub fn is_listed(project: &str, zone: &str, name: &str, timeout: Duration) -> Result<bool> {
    let vms = run_captured_within(&instance_query(project, zone, name), timeout)?;
    Ok(parse_vm_list(&vms)?.iter().any(|vm| vm.name == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: &str = r#"[
      {"name":"operation-1","operationType":"insert","status":"DONE","insertTime":"2026-12-01T09:00:00.000-08:00",
       "targetLink":"https://www.googleapis.com/compute/v1/projects/lab-4031/zones/us-central1-a/instances/bu-m-m1404beef-c3",
       "httpErrorStatusCode":503,"error":{"errors":[{"code":"ZONE_RESOURCE_POOL_EXHAUSTED","message":"out of c3"}]}},
      {"name":"operation-2","operationType":"insert","status":"RUNNING","insertTime":"2026-12-01T09:01:00.000-08:00",
       "targetLink":"https://www.googleapis.com/compute/v1/projects/lab-4031/zones/us-central1-a/instances/other"}
    ]"#;

    #[test]
    fn operations_are_matched_by_target_and_judged_by_status_and_error() {
        let ops = parse_inserts(OPS, "bu-m-m1404beef-c3").unwrap();
        assert_eq!(ops.len(), 1);
        let fate = judge(false, &ops, Duration::ZERO, NO_OPERATION_GRACE).unwrap();
        assert!(
            matches!(&fate, Fate::NeverWill(why) if why.contains("ZONE_RESOURCE_POOL_EXHAUSTED") && why.contains("HTTP 503")),
            "{fate:?}"
        );
        let running = parse_inserts(OPS, "other").unwrap();
        assert_eq!(
            judge(false, &running, Duration::from_secs(600), Duration::ZERO),
            None
        );
        assert_eq!(
            judge(true, &running, Duration::ZERO, Duration::ZERO),
            Some(Fate::Exists)
        );
        let mut done = running.clone();
        done[0].status = "DONE".into();
        assert_eq!(
            judge(false, &done, Duration::ZERO, Duration::ZERO),
            Some(Fate::Exists)
        );
        // No operation: wait out the grace, then it never reached GCE.
        assert_eq!(
            judge(false, &[], Duration::from_secs(5), NO_OPERATION_GRACE),
            None
        );
        assert!(matches!(
            judge(false, &[], NO_OPERATION_GRACE, NO_OPERATION_GRACE),
            Some(Fate::NeverWill(_))
        ));
        assert!(parse_inserts("ERROR", "x").is_err());
    }

    #[test]
    fn queries_name_the_vm_and_ask_for_json() {
        let q = instance_query("p", "us-central1-a", "bu-vm");
        assert!(q.contains(&"--filter=name=bu-vm".to_string()));
        assert!(q.contains(&"--format=json".to_string()));
        let q = insert_query("p", "us-central1-a", "bu-vm");
        assert_eq!(&q[..4], ["gcloud", "compute", "operations", "list"]);
        assert!(q.contains(&"--zones=us-central1-a".to_string()));
    }
}
