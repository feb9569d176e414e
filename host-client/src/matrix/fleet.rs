//! The VMs of one GCE matrix run, and the guarantee that each one is deleted.
//!
//! Every VM is registered before its `gcloud compute instances create` starts and stays in
//! the fleet until its delete has run. Deletion happens exactly once, by whoever takes the VM
//! first: the target's [`VmGuard`] (after the proof, on failure, on a timeout, or on unwind),
//! or [`Fleet::interrupt`] (Ctrl-C, SIGTERM), which waits for creates still in flight (a
//! create that finishes after we gave up would leave a VM behind) and then deletes
//! everything. A run killed outright (SIGKILL) cannot clean up: its VMs carry the label
//! `bringup-matrix=RUN_ID`, which `bringup gce vm list` / `cleanup` find.
//!
//! This module knows gcloud (through [`gcloud`]) and nothing about proofs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::gce::follow::{self, Fate};
use crate::gce::gcloud::{self, GcloudError, VmCreate};
use crate::gce::shell_line;

/// Policy: how long an interrupt waits for creates in flight, at most (each create is
/// killed after its own gcloud timeout, then followed for up to `follow::FOLLOW_BUDGET`;
/// one still in flight after this is listed by [`Fleet::remaining`]).
pub const CREATE_DRAIN_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VmState {
    /// `instances create` is running.
    Creating,
    /// Exists (or may exist) and nobody is deleting it.
    Up,
    /// Someone took it and runs `instances delete`.
    Deleting,
    /// Deleted, or never created.
    Gone,
    /// May exist and this run could not delete it (the delete failed, or a create's fate
    /// stayed unknown): listed by [`Fleet::remaining`], reported `vm-not-deleted`.
    Stranded,
}

/// What happened to one VM, for the matrix report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VmRecord {
    pub name: String,
    pub created: bool,
    /// Deleted by this run (false with --keep, or when the delete failed).
    pub deleted: bool,
    /// Why the delete failed, or `kept` with --keep.
    pub delete_error: Option<String>,
}

/// Every VM this run made or is making.
pub struct Fleet {
    project: String,
    zone: String,
    keep: bool,
    /// Each gcloud call's limit.
    gcloud_timeout: Duration,
    vms: Mutex<BTreeMap<String, VmState>>,
    changed: Condvar,
    interrupted: AtomicBool,
    follow: FollowPolicy,
}

/// How long a create whose outcome is unknown is followed ([`follow`]).
#[derive(Debug, Clone, Copy)]
pub struct FollowPolicy {
    /// How long an insert operation may take to be listed.
    pub grace: Duration,
    /// The whole follow-up, at most.
    pub budget: Duration,
}

impl Default for FollowPolicy {
    fn default() -> Self {
        FollowPolicy {
            grace: follow::NO_OPERATION_GRACE,
            budget: follow::FOLLOW_BUDGET,
        }
    }
}

impl Fleet {
    /// `keep`: never delete (debugging); the VMs stay labelled. `gcloud_timeout`: each create
    /// or delete is killed after this long (a killed create is followed by a delete).
    pub fn new(project: &str, zone: &str, keep: bool, gcloud_timeout: Duration) -> Arc<Fleet> {
        Arc::new(Fleet {
            project: project.into(),
            zone: zone.into(),
            keep,
            gcloud_timeout,
            vms: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            interrupted: AtomicBool::new(false),
            follow: FollowPolicy::default(),
        })
    }

    /// [`Self::new`] with another follow-up policy (tests, and `--gcloud-timeout` runs that
    /// want an answer sooner).
    pub fn with_follow(
        project: &str,
        zone: &str,
        keep: bool,
        gcloud_timeout: Duration,
        follow: FollowPolicy,
    ) -> Arc<Fleet> {
        let mut fleet = Fleet::new(project, zone, keep, gcloud_timeout);
        if let Some(f) = Arc::get_mut(&mut fleet) {
            f.follow = follow;
        }
        fleet
    }

    /// Whether this run keeps its VMs (`--keep`).
    pub fn keeps(&self) -> bool {
        self.keep
    }

    /// Set once Ctrl-C arrived: targets not yet created are not created.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    fn set(&self, name: &str, state: VmState) {
        let mut vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
        vms.insert(name.to_string(), state);
        self.changed.notify_all();
    }

    /// Takes `name` for deletion if it is up: true when the caller must delete it.
    fn take(&self, name: &str) -> bool {
        let mut vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
        match vms.get_mut(name) {
            Some(state @ VmState::Up) => {
                *state = VmState::Deleting;
                true
            }
            _ => false,
        }
    }

    /// Creates the VM. On success the guard owns its deletion. On failure the VM may still
    /// appear (GCE finishes an insert whose client went away): the create is followed from
    /// gcloud's JSON ([`follow`]) until the VM provably exists (then it is deleted here) or
    /// provably never will. Only a missing gcloud made nothing for certain.
    pub fn create(self: &Arc<Self>, op: &VmCreate) -> Result<VmGuard, GcloudError> {
        let name = op.name.clone();
        let argv = op
            .commands()
            .map_err(|e| GcloudError {
                code: "gce-bad-request",
                message: format!("{e:#}"),
            })?
            .remove(0);
        {
            // Registration and the interrupt check under one lock: an interrupt either sees
            // this create, or this create sees the interrupt.
            let mut vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
            if self.interrupted() {
                return Err(GcloudError {
                    code: "interrupted",
                    message: "interrupted before the VM was created".into(),
                });
            }
            vms.insert(name.clone(), VmState::Creating);
        }
        match gcloud::run_captured_within(&argv, self.gcloud_timeout) {
            Ok(_) => {
                self.set(&name, VmState::Up);
                Ok(VmGuard {
                    fleet: self.clone(),
                    record: VmRecord {
                        name,
                        created: true,
                        ..VmRecord::default()
                    },
                    done: false,
                })
            }
            Err(e) if e.code == "gcloud-missing" => {
                self.set(&name, VmState::Gone);
                Err(e)
            }
            Err(e) => Err(self.after_failed_create(&name, e)),
        }
    }

    /// Follows a failed create to its end: deletes the VM if it exists after all, and says
    /// so in the error; a VM that could not be deleted (or whose fate stayed unknown) turns
    /// the error into `vm-not-deleted`.
    fn after_failed_create(&self, name: &str, e: GcloudError) -> GcloudError {
        // gcloud said the API refused the insert itself: no operation will appear.
        let refused = matches!(
            e.code,
            "gce-quota" | "gce-permission" | "gce-bad-request" | "gce-resources"
        );
        let fate = follow::follow(&follow::Follow {
            project: &self.project,
            zone: &self.zone,
            name,
            gcloud_timeout: self.gcloud_timeout,
            grace: if refused {
                Duration::ZERO
            } else {
                self.follow.grace
            },
            budget: self.follow.budget,
        });
        match fate {
            Fate::NeverWill(_) => {
                self.set(name, VmState::Gone);
                e
            }
            Fate::Exists => {
                self.set(name, VmState::Up);
                let what = match self.delete(name) {
                    Some(Err(not_deleted)) => return not_deleted,
                    Some(Ok(())) => "was deleted",
                    None if self.keep => "is kept (--keep)",
                    // Taken by the interrupt handler, which deletes it.
                    None => "is being deleted",
                };
                GcloudError {
                    code: e.code,
                    message: format!(
                        "{}; the VM appeared after gcloud gave up on it and {what}",
                        e.message
                    ),
                }
            }
            Fate::Unknown(why) => {
                self.set(name, VmState::Stranded);
                self.not_deleted(
                    name,
                    &format!("{}; whether the VM exists is unknown {why}", e.message),
                )
            }
        }
    }

    /// The `vm-not-deleted` error for `name`, with the command that deletes it.
    fn not_deleted(&self, name: &str, why: &str) -> GcloudError {
        let cleanup = gcloud::vm_delete(&self.project, &self.zone, name)
            .map(|c| shell_line(&c[0]))
            .unwrap_or_default();
        GcloudError {
            code: "vm-not-deleted",
            message: format!("{name} may still be running ({why}); delete it: {cleanup}"),
        }
    }

    /// Deletes `name` if it is up and nobody else is deleting it. `None` when there was
    /// nothing to do for this caller (kept, gone, or taken by someone else). A failed delete
    /// is checked against gcloud's list: a VM still listed (or that cannot be listed) stays
    /// [`Self::remaining`] and the error is `vm-not-deleted`.
    pub fn delete(&self, name: &str) -> Option<Result<(), GcloudError>> {
        if self.keep || !self.take(name) {
            return None;
        }
        let result = gcloud::vm_delete(&self.project, &self.zone, name)
            .map_err(|e| GcloudError {
                code: "gce-bad-request",
                message: format!("{e:#}"),
            })
            .and_then(|mut cmds| {
                gcloud::run_captured_within(&cmds.remove(0), self.gcloud_timeout).map(|_| ())
            });
        let Err(e) = result else {
            self.set(name, VmState::Gone);
            return Some(Ok(()));
        };
        match follow::is_listed(&self.project, &self.zone, name, self.gcloud_timeout) {
            Ok(false) => {
                // Not there (deleted meanwhile, or never made): nothing is left behind.
                self.set(name, VmState::Gone);
                Some(Ok(()))
            }
            Ok(true) => {
                self.set(name, VmState::Stranded);
                Some(Err(self.not_deleted(name, &e.to_string())))
            }
            Err(list) => {
                self.set(name, VmState::Stranded);
                let why = format!("{e}; and listing it failed: {list:#}");
                Some(Err(self.not_deleted(name, &why)))
            }
        }
    }

    /// Ctrl-C: no new creates; waits for creates in flight, deletes every VM that is up
    /// (in parallel), and waits for deletes other threads started. Returns what it deleted.
    pub fn interrupt(&self) -> Vec<(String, Result<(), GcloudError>)> {
        {
            let _vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
            self.interrupted.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + CREATE_DRAIN_TIMEOUT;
        self.wait_while(deadline, VmState::Creating);
        let up: Vec<String> = {
            let vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
            vms.iter()
                .filter(|(_, s)| **s == VmState::Up)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let results: Vec<(String, Result<(), GcloudError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = up
                .iter()
                .map(|name| s.spawn(move || (name.clone(), self.delete(name))))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .filter_map(|(n, r)| r.map(|r| (n, r)))
                .collect()
        });
        self.wait_while(Instant::now() + CREATE_DRAIN_TIMEOUT, VmState::Deleting);
        results
    }

    fn wait_while(&self, deadline: Instant, state: VmState) {
        let mut vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
        while vms.values().any(|s| *s == state) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            vms = self
                .changed
                .wait_timeout(vms, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// VMs that exist (or may) and will not be deleted by this run (`--keep`, failed
    /// deletes, creates whose fate stayed unknown, and creates still being followed when an
    /// interrupt gave up waiting for them).
    pub fn remaining(&self) -> Vec<String> {
        let vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
        vms.iter()
            .filter(|(_, s)| matches!(**s, VmState::Up | VmState::Stranded | VmState::Creating))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// One created VM; dropping it deletes the VM (unless already deleted or kept).
pub struct VmGuard {
    fleet: Arc<Fleet>,
    record: VmRecord,
    done: bool,
}

impl VmGuard {
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Deletes now and says how it went.
    pub fn delete(mut self) -> VmRecord {
        self.finish();
        self.record.clone()
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        match self.fleet.delete(&self.record.name) {
            Some(Ok(())) => self.record.deleted = true,
            Some(Err(e)) => self.record.delete_error = Some(e.to_string()),
            None if self.fleet.keep => self.record.delete_error = Some("kept".into()),
            // Taken by the interrupt handler, which deletes it.
            None => {}
        }
    }
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        self.finish();
    }
}
