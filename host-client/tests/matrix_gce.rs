//! `bringup matrix --gce` against stand-ins on a private PATH: a fake `gcloud` that keeps its
//! VMs as files, answers like gcloud (JSON for `list`, ERROR lines and exit 1 for quota and
//! not-found), takes time like gcloud (create 1 s, delete and list 0.2 s), runs each create
//! as an insert operation in its own session that finishes even after gcloud was killed
//! (as GCE does; `operations list` shows it RUNNING, then DONE) and logs every call with
//! timestamps; and a fake `ssh` that prints the serial gateway's
//! `serialport: Connected` banner and then either boots the real monitor image in QEMU on
//! its stdio (a VM's serial console) or stays silent (a VM that never shows a prompt).
//! The tests prove: creation in parallel, quota and permission errors named per target, deletion after a
//! passing proof, a failing proof, a timeout and Ctrl-C (while creates were in flight), and
//! that `gce vm list` / `cleanup` find and delete the leftover of a killed run by label.
//! The dry run needs nothing; the others need target/bringup.img and qemu-system-x86_64.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const FAKE_GCLOUD: &str = r#"#!/bin/bash
# Stand-in for gcloud (the calls bringup makes). State: $FAKE_GCLOUD_DIR/vms/NAME.
d="$FAKE_GCLOUD_DIR"
args="$*"
echo "begin $(date +%s%3N) $args" >> "$d/log"
finish() { echo "end $(date +%s%3N) $args" >> "$d/log"; exit "$1"; }
get() { local key=$1; shift; for a in "$@"; do case "$a" in --$key=*) echo "${a#--$key=}"; return;; esac; done; }
mkdir -p "$d/vms"
case "$1 $2 $3" in
"compute instances create")
  name=$4; mt=$(get machine-type "$@"); zone=$(get zone "$@"); labels=$(get labels "$@")
  project=$(get project "$@")
  if [ -n "$FAKE_GCLOUD_CREATE_BARRIER" ]; then
    # Hold every create until this many are in flight (up to 60 s): a client that ran them
    # one after the other leaves a barrier-timeout in the log, whatever the machine's load.
    met=0
    for _ in $(seq 1 1200); do
      n=$(grep -c '^begin [0-9]* compute instances create' "$d/log")
      [ "$n" -ge "$FAKE_GCLOUD_CREATE_BARRIER" ] && { met=1; break; }
      sleep 0.05
    done
    [ $met = 1 ] || echo "barrier-timeout $(date +%s%3N) $name" >> "$d/log"
  fi
  if [ -n "$FAKE_GCLOUD_QUOTA_TYPE" ] && [ "$mt" = "$FAKE_GCLOUD_QUOTA_TYPE" ]; then
    sleep "${FAKE_GCLOUD_CREATE_SECS:-1}"   # the API refuses the insert itself: no operation
    echo "ERROR: (gcloud.compute.instances.create) Could not fetch resource:" >&2
    echo " - Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region us-central1." >&2
    finish 1
  fi
  if [ -n "$FAKE_GCLOUD_DENY_TYPE" ] && [ "$mt" = "$FAKE_GCLOUD_DENY_TYPE" ]; then
    sleep "${FAKE_GCLOUD_CREATE_SECS:-1}"
    echo "ERROR: (gcloud.compute.instances.create) Could not fetch resource:" >&2
    echo " - Required 'compute.instances.create' permission for 'projects/$project/zones/$zone/instances/$name'" >&2
    finish 1
  fi
  # GCE's insert operation: it runs to the end whether or not this client still waits
  # (its own session, so killing gcloud's process group does not stop it).
  mkdir -p "$d/ops"
  t0=$(date +%s%3N)
  op() { printf '{"name":"operation-%s","operationType":"insert","status":"%s","insertTime":"%s","targetLink":"https://www.googleapis.com/compute/v1/projects/%s/zones/%s/instances/%s"}' "$t0" "$1" "$t0" "$project" "$zone" "$name"; }
  op RUNNING > "$d/ops/$name"
  vm=$(printf '{"name":"%s","zone":"https://www.googleapis.com/compute/v1/projects/%s/zones/%s","status":"RUNNING","labels":{"%s":"%s"}}' \
    "$name" "$project" "$zone" "${labels%%=*}" "${labels#*=}")
  setsid bash -c 'sleep "$1"; printf "%s" "$2" > "$3.tmp" && mv "$3.tmp" "$3"
    echo "made $(date +%s%3N) $6" >> "$7"
    printf "%s" "$4" > "$5.tmp" && mv "$5.tmp" "$5"' _ "${FAKE_GCLOUD_CREATE_SECS:-1}" "$vm" \
    "$d/vms/$name" "$(op DONE)" "$d/ops/$name" "$name" "$d/log" </dev/null >/dev/null 2>&1 &
  until grep -q '"DONE"' "$d/ops/$name" 2>/dev/null; do sleep 0.05; done
  echo "Created [https://www.googleapis.com/compute/v1/projects/p/zones/$zone/instances/$name]." >&2
  finish 0;;
"compute operations list")
  sleep 0.2
  filter=$(get filter "$@"); name=${filter##*/instances/}; name=${name%\$}
  printf '['; [ -f "$d/ops/$name" ] && cat "$d/ops/$name"; printf ']\n'
  finish 0;;
"compute instances delete")
  name=$4; sleep 0.2
  if [ -n "$FAKE_GCLOUD_DELETE_FAIL" ]; then
    echo "ERROR: (gcloud.compute.instances.delete) Could not fetch resource:" >&2
    echo " - Internal error. Please try again or contact Google Support." >&2
    finish 1
  fi
  if [ ! -f "$d/vms/$name" ]; then
    echo "ERROR: (gcloud.compute.instances.delete) Could not fetch resource:" >&2
    echo " - The resource 'projects/p/zones/z/instances/$name' was not found" >&2
    finish 1
  fi
  rm -f "$d/vms/$name"; echo "Deleted [$name]." >&2
  finish 0;;
"compute instances list")
  sleep 0.2
  filter=$(get filter "$@"); want=""
  case "$filter" in name=*) want="\"name\":\"${filter#name=}\"";; labels.*=*) kv=${filter#labels.}; want="\"${kv%%=*}\":\"${kv#*=}\"";; labels.*:\*) k=${filter#labels.}; want="\"${k%%:*}\":";; esac
  first=1; printf '['
  for f in "$d"/vms/*; do
    [ -f "$f" ] || continue; grep -q -- "$want" "$f" || continue
    [ $first = 1 ] || printf ','; first=0; cat "$f"
  done
  printf ']\n'
  finish 0;;
*) echo "ERROR: fake gcloud does not know: $*" >&2; finish 2;;
esac
"#;

const FAKE_SSH: &str = r#"#!/bin/bash
# Stand-in for ssh to the serial gateway: the banner, then the VM's serial console.
dest="${@: -1}"
echo "ssh $(date +%s%3N) $dest" >> "$FAKE_GCLOUD_DIR/log"
printf 'serialport: Connected to %s port 1 (session ID: fake, active connections: 1)\r\n' "${dest%%@*}"
if [ -n "$FAKE_SSH_STALL" ] && [[ "$dest" == *"$FAKE_SSH_STALL"* ]]; then
  while read -r _; do :; done   # a VM that never answers; ends when bringup goes away
  exit 0
fi
# exec, and die with bringup: killing this "ssh" must stop the VM (no QEMU left behind).
exec setpriv --pdeathsig KILL -- qemu-system-x86_64 -machine pc -m 256M -accel tcg -display none -vga none \
  -monitor none -parallel none -nic none -no-reboot -serial stdio \
  -fw_cfg name=etc/sercon-port,string=0 \
  -drive "file=$FAKE_SSH_IMAGE,format=raw,if=ide,index=0,media=disk,snapshot=on"
"#;

struct Fakes {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// One logged call: `begin`/`end`/`ssh`, the time in ms, the arguments.
#[derive(Debug, Clone)]
struct Call {
    kind: String,
    ms: u64,
    args: String,
}

impl Fakes {
    fn new(extra_env: &[(&str, &str)]) -> Fakes {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for (name, text) in [("gcloud", FAKE_GCLOUD), ("ssh", FAKE_SSH)] {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            let status = Command::new("chmod").arg("755").arg(&p).status().unwrap();
            assert!(status.success());
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut env = vec![
            ("PATH".to_string(), path),
            (
                "FAKE_GCLOUD_DIR".to_string(),
                dir.path().display().to_string(),
            ),
            ("FAKE_SSH_IMAGE".to_string(), image().display().to_string()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Fakes { dir, env }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bringup"));
        c.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn calls(&self) -> Vec<Call> {
        let text = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut parts = l.splitn(3, ' ');
                Call {
                    kind: parts.next().unwrap().into(),
                    ms: parts.next().unwrap().parse().unwrap(),
                    args: parts.next().unwrap_or("").into(),
                }
            })
            .collect()
    }

    /// (begin, end) of the gcloud calls whose arguments start with `prefix` and name `vm`.
    fn span(&self, prefix: &str, vm: &str) -> Option<(u64, u64)> {
        let calls = self.calls();
        let hit = |c: &&Call| c.args.starts_with(prefix) && c.args.split(' ').any(|w| w == vm);
        let begin = calls.iter().filter(|c| c.kind == "begin").find(hit)?.ms;
        let end = calls.iter().filter(|c| c.kind == "end").find(hit)?.ms;
        Some((begin, end))
    }

    fn ssh_at(&self, vm: &str) -> Option<u64> {
        self.calls()
            .iter()
            .find(|c| c.kind == "ssh" && c.args.contains(&format!(".{vm}.")))
            .map(|c| c.ms)
    }

    /// VMs the fake holds (created and not deleted).
    fn vms(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join("vms"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn report_dir(&self) -> PathBuf {
        self.dir.path().join("report")
    }

    fn script(&self, text: &str) -> String {
        let p = self.dir.path().join("proof.bringup");
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn matrix_json(&self) -> Value {
        let text = std::fs::read_to_string(self.report_dir().join("matrix.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn image() -> PathBuf {
    host_client::qemu::default_image()
}

fn need_image() {
    assert!(
        image().is_file(),
        "target/bringup.img is missing: run `make image` first (`make test` builds it)"
    );
}

/// `bringup matrix SCRIPT --gce ...` arguments for these machine types.
fn gce_args<'a>(script: &'a str, report: &'a str, types: &'a str) -> Vec<&'a str> {
    vec![
        "matrix",
        script,
        "--gce",
        "--project",
        "proj",
        "--zone",
        "us-central1-a",
        "--machine-types",
        types,
        "--image",
        "bu-img",
        "--user",
        "tester",
        "--report",
        report,
        "--no-progress",
    ]
}

fn targets_by_id(m: &Value) -> BTreeMap<String, Value> {
    m["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

fn vm_name(t: &Value) -> String {
    t["vm"]["name"].as_str().unwrap().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn dry_run_prints_create_run_delete_for_every_machine_type() {
    let fakes = Fakes::new(&[]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let types = "c3-standard-4,n2-standard-2,a3-highgpu-1g";
    let mut args = gce_args(&script, &report, types);
    args.push("--dry-run");
    let out = fakes.command(&args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "{text}");
    for (i, mt) in types.split(',').enumerate() {
        let block = &lines[i * 4..i * 4 + 4];
        assert!(block[0].starts_with(&format!("# {mt}:")), "{text}");
        let create: Vec<&str> = block[1].split(' ').collect();
        assert_eq!(&create[..4], ["gcloud", "compute", "instances", "create"]);
        let vm = create[4];
        assert!(vm.starts_with("bu-m-m") && vm.ends_with(mt), "{vm}");
        for flag in [
            format!("--machine-type={mt}"),
            "--image=bu-img".into(),
            "--zone=us-central1-a".into(),
            "--network-interface=nic-type=GVNIC,no-address".into(),
            "--metadata=serial-port-enable=TRUE".into(),
        ] {
            assert!(create.contains(&flag.as_str()), "{flag} in {}", block[1]);
        }
        let label = create
            .iter()
            .find_map(|a| a.strip_prefix("--labels=bringup-matrix="))
            .expect("labelled");
        assert!(vm.contains(label), "the label is the run id in the name");
        assert!(block[2].starts_with("ssh "), "{}", block[2]);
        assert!(
            block[2].ends_with(&format!(
                "proj.us-central1-a.{vm}.tester.port=1@us-central1-ssh-serialport.googleapis.com"
            )),
            "{}",
            block[2]
        );
        let delete: Vec<&str> = block[3].split(' ').collect();
        assert_eq!(
            &delete[..5],
            ["gcloud", "compute", "instances", "delete", vm]
        );
    }
    assert!(fakes.calls().is_empty(), "a dry run calls nothing");
}

#[test]
fn parallel_creates_quota_and_permission_named_vms_deleted_after_pass_and_timeout() {
    need_image();
    let fakes = Fakes::new(&[
        // The fake holds each create until all four are in flight: their overlap is the
        // fake's own observation, not a race against the machine's load.
        ("FAKE_GCLOUD_CREATE_BARRIER", "4"),
        ("FAKE_GCLOUD_QUOTA_TYPE", "a3-highgpu-1g"),
        ("FAKE_GCLOUD_DENY_TYPE", "c4-standard-2"),
        ("FAKE_SSH_STALL", "n2-standard-2"),
    ]);
    let script = fakes.script("version\nexpect-text \"bringup\"\n");
    let report = fakes.report_dir().display().to_string();
    let mut args = gce_args(
        &script,
        &report,
        "c3-standard-4,n2-standard-2,a3-highgpu-1g,c4-standard-2",
    );
    args.extend(["--boot-timeout", "20s"]);
    let out = fakes.command(&args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");

    let m = fakes.matrix_json();
    assert_eq!(m["schema"], "bringup.matrix/1");
    let t = targets_by_id(&m);
    let (c3, n2, a3) = (
        &t["c3-standard-4"],
        &t["n2-standard-2"],
        &t["a3-highgpu-1g"],
    );
    assert_eq!(c3["outcome"], "passed", "{err}\n{c3:#}");
    assert_eq!(c3["report"]["passed"], true);
    assert_eq!(
        c3["report"]["boot"]["banner"]["firmware"], "Bios",
        "the console saw the VM boot"
    );
    assert_eq!(n2["outcome"], "failed", "{n2:#}");
    assert_eq!(n2["error_code"], "no-prompt", "{n2:#}");
    let why = n2["error"].as_str().unwrap();
    assert!(
        why.contains("timed out after 20"),
        "a timeout, not a closed line: {why}"
    );
    assert_eq!(a3["outcome"], "error");
    assert_eq!(a3["error_code"], "gce-quota", "named per target: {a3:#}");
    assert!(a3["error"].as_str().unwrap().contains("Quota"), "{a3:#}");
    let c4 = &t["c4-standard-2"];
    assert_eq!(c4["outcome"], "error");
    assert_eq!(c4["error_code"], "gce-permission", "{c4:#}");

    // Four creates at once: every one was in flight while the others were (the barrier).
    let calls = fakes.calls();
    assert!(
        !calls.iter().any(|c| c.kind == "barrier-timeout"),
        "creates were not all in flight at once: {calls:?}"
    );
    let spans: Vec<(u64, u64)> = [c3, n2, a3, c4]
        .iter()
        .map(|t| fakes.span("compute instances create", &vm_name(t)).unwrap())
        .collect();
    let last_begin = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(last_begin < first_end, "creates were serial: {spans:?}");
    // The two VMs that exist are deleted after their proof ran; the refused one never was.
    for t in [c3, n2] {
        let vm = vm_name(t);
        let created = fakes.span("compute instances create", &vm).unwrap();
        let ssh = fakes.ssh_at(&vm).expect("console opened");
        let deleted = fakes
            .span("compute instances delete", &vm)
            .expect("deleted");
        assert!(
            created.1 <= ssh && ssh < deleted.0,
            "{vm}: {created:?} {ssh} {deleted:?}"
        );
        assert_eq!(t["vm"]["deleted"], true);
        assert_eq!(
            t["report_file"],
            format!("{}/report.json", t["id"].as_str().unwrap())
        );
        assert!(fakes
            .report_dir()
            .join(t["report_file"].as_str().unwrap())
            .is_file());
    }
    for refused in [a3, c4] {
        assert!(fakes
            .span("compute instances delete", &vm_name(refused))
            .is_none());
        assert_eq!(refused["vm"]["created"], false);
    }
    assert!(fakes.vms().is_empty(), "left behind: {:?}", fakes.vms());
    assert!(err.contains("ERROR gce-quota"), "table: {err}");
    assert!(err.contains("ERROR gce-permission"), "table: {err}");
}

#[test]
fn a_failing_proof_still_deletes_its_vm() {
    need_image();
    let fakes = Fakes::new(&[]);
    // No gVNIC on this "VM": the command fails with the monitor's error code.
    let script = fakes.script("version\ngvnic describe\nversion\n");
    let report = fakes.report_dir().display().to_string();
    let out = fakes
        .command(&gce_args(&script, &report, "c3-standard-4"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let m = fakes.matrix_json();
    let t = &m["targets"][0];
    assert_eq!(t["outcome"], "failed", "{t:#}");
    let code = t["report"]["commands"][1]["outcome"]["code"]
        .as_str()
        .expect("gvnic describe failed with a code")
        .to_string();
    assert_eq!(t["error_code"], code.as_str());
    assert!(err.contains(&format!("FAIL {code}")), "{err}");
    let vm = vm_name(t);
    let ssh = fakes.ssh_at(&vm).unwrap();
    let deleted = fakes.span("compute instances delete", &vm).unwrap();
    assert!(ssh < deleted.0);
    assert_eq!(t["vm"]["deleted"], true);
    assert!(fakes.vms().is_empty());
}

#[test]
fn max_vms_bounds_how_many_vms_exist_at_once() {
    let fakes = Fakes::new(&[("FAKE_SSH_STALL", "bu-m-")]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let mut args = gce_args(&script, &report, "c3-standard-4,n2-standard-2");
    args.extend(["--max-vms", "1", "--boot-timeout", "2s", "--settle", "0"]);
    let out = fakes.command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let m = fakes.matrix_json();
    assert_eq!(m["jobs"], 1);
    let t = targets_by_id(&m);
    let first = vm_name(&t["c3-standard-4"]);
    let second = vm_name(&t["n2-standard-2"]);
    let deleted = fakes.span("compute instances delete", &first).unwrap();
    let created = fakes.span("compute instances create", &second).unwrap();
    assert!(
        deleted.1 <= created.0,
        "the second VM was created before the first was gone: {deleted:?} {created:?}"
    );
    assert!(fakes.vms().is_empty());
}

#[test]
fn keep_leaves_the_vm_and_says_how_to_clean_up() {
    let fakes = Fakes::new(&[("FAKE_SSH_STALL", "bu-m-")]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let mut args = gce_args(&script, &report, "c3-standard-4");
    args.extend(["--keep", "--boot-timeout", "2s", "--settle", "0"]);
    let out = fakes.command(&args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let m = fakes.matrix_json();
    let t = &m["targets"][0];
    assert_eq!(t["vm"]["deleted"], false);
    assert_eq!(t["vm"]["delete_error"], "kept");
    assert_eq!(fakes.vms(), [vm_name(t)]);
    assert!(
        err.contains("bringup gce vm cleanup --project proj --run-id"),
        "{err}"
    );
}

#[test]
fn a_create_that_finishes_after_gcloud_gave_up_is_found_and_deleted() {
    // gcloud is killed after 1 s; GCE finishes the insert 4 s in.
    let fakes = Fakes::new(&[("FAKE_GCLOUD_CREATE_SECS", "4")]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let mut args = gce_args(&script, &report, "c3-standard-4");
    args.extend(["--gcloud-timeout", "1s"]);
    let out = fakes.command(&args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let m = fakes.matrix_json();
    let t = &m["targets"][0];
    assert_eq!(t["outcome"], "error");
    assert_eq!(t["error_code"], "gcloud-timeout", "{t:#}");
    assert!(
        t["error"]
            .as_str()
            .unwrap()
            .contains("appeared after gcloud gave up"),
        "{t:#}"
    );
    let vm = vm_name(t);
    let calls = fakes.calls();
    let create_ended = calls
        .iter()
        .any(|c| c.kind == "end" && c.args.starts_with("compute instances create"));
    assert!(!create_ended, "gcloud's create was killed, not finished");
    let made = calls
        .iter()
        .find(|c| c.kind == "made" && c.args == vm)
        .unwrap_or_else(|| panic!("GCE never finished the insert: {calls:?}"))
        .ms;
    let deleted = fakes
        .span("compute instances delete", &vm)
        .unwrap_or_else(|| panic!("{vm} was never deleted: {calls:?}"));
    assert!(
        made <= deleted.0,
        "deleted before it existed: {made} {deleted:?}"
    );
    assert!(fakes.vms().is_empty(), "left running: {:?}", fakes.vms());
    assert!(!err.contains("vm-not-deleted"), "{err}");
}

#[test]
fn a_vm_that_cannot_be_deleted_ends_the_run_vm_not_deleted() {
    let fakes = Fakes::new(&[
        ("FAKE_GCLOUD_DELETE_FAIL", "1"),
        ("FAKE_SSH_STALL", "bu-m-"),
    ]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let mut args = gce_args(&script, &report, "c3-standard-4");
    args.extend(["--boot-timeout", "2s", "--settle", "0"]);
    let out = fakes.command(&args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let m = fakes.matrix_json();
    let t = &m["targets"][0];
    let vm = vm_name(t);
    assert_eq!(fakes.vms(), std::slice::from_ref(&vm), "the fake kept it");
    assert_eq!(t["error_code"], "vm-not-deleted", "{t:#}");
    assert_eq!(t["vm"]["deleted"], false);
    let why = t["error"].as_str().unwrap();
    assert!(
        why.contains(&format!("gcloud compute instances delete {vm}")),
        "names the cleanup command: {why}"
    );
    assert!(
        err.contains("error vm-not-deleted") && err.contains(&vm),
        "the run ends naming the VM: {err}"
    );
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("bringup matrix did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_quiet(mut c: Command) -> Child {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn ctrl_c_during_creation_waits_for_the_creates_and_deletes_every_vm() {
    let fakes = Fakes::new(&[
        ("FAKE_GCLOUD_CREATE_SECS", "2"),
        ("FAKE_SSH_STALL", "bu-m-"),
    ]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let mut child =
        spawn_quiet(fakes.command(&gce_args(&script, &report, "c3-standard-4,n2-standard-2")));
    wait_for("both creates to start", Duration::from_secs(20), || {
        fakes
            .calls()
            .iter()
            .filter(|c| c.kind == "begin" && c.args.starts_with("compute instances create"))
            .count()
            == 2
    });
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let interrupted_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    let creates: Vec<String> = fakes
        .calls()
        .iter()
        .filter(|c| c.kind == "end" && c.args.starts_with("compute instances create"))
        .map(|c| c.args.split(' ').nth(3).unwrap().to_string())
        .collect();
    assert_eq!(creates.len(), 2, "the creates in flight finished");
    for vm in &creates {
        let created = fakes.span("compute instances create", vm).unwrap();
        let deleted = fakes
            .span("compute instances delete", vm)
            .unwrap_or_else(|| panic!("{vm} not deleted: {:?}", fakes.calls()));
        assert!(created.0 < interrupted_at && created.1 <= deleted.0);
    }
    assert!(fakes.vms().is_empty(), "left behind: {:?}", fakes.vms());
}

#[test]
fn sigterm_while_the_proof_runs_deletes_every_vm() {
    let fakes = Fakes::new(&[("FAKE_SSH_STALL", "bu-m-")]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let mut args = gce_args(&script, &report, "c3-standard-4,n2-standard-2");
    args.extend(["--boot-timeout", "120s"]);
    let mut child = spawn_quiet(fakes.command(&args));
    wait_for("both consoles", Duration::from_secs(30), || {
        fakes.calls().iter().filter(|c| c.kind == "ssh").count() == 2
    });
    assert_eq!(fakes.vms().len(), 2);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    assert!(fakes.vms().is_empty(), "left behind: {:?}", fakes.vms());
    let deletes = fakes
        .calls()
        .iter()
        .filter(|c| c.kind == "end" && c.args.starts_with("compute instances delete"))
        .count();
    assert_eq!(
        deletes,
        2,
        "each VM deleted exactly once: {:?}",
        fakes.calls()
    );
}

#[test]
fn list_and_cleanup_find_the_leftover_of_a_killed_run() {
    let fakes = Fakes::new(&[("FAKE_SSH_STALL", "bu-m-")]);
    let script = fakes.script("version\n");
    let report = fakes.report_dir().display().to_string();
    let mut args = gce_args(&script, &report, "c3-standard-4");
    args.extend(["--boot-timeout", "120s"]);
    let mut child = spawn_quiet(fakes.command(&args));
    wait_for("the console", Duration::from_secs(20), || {
        fakes.calls().iter().any(|c| c.kind == "ssh")
    });
    // SIGKILL: no handler runs, the VM stays.
    child.kill().unwrap();
    child.wait().unwrap();
    let left = fakes.vms();
    assert_eq!(left.len(), 1);
    let vm = &left[0];
    let run_id = vm
        .strip_prefix("bu-m-")
        .and_then(|r| r.split('-').next())
        .unwrap()
        .to_string();

    let list = fakes
        .command(&[
            "gce",
            "vm",
            "list",
            "--project",
            "proj",
            "--label",
            "bringup-matrix",
        ])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", stderr(&list));
    let text = String::from_utf8_lossy(&list.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with(vm.as_str()))
        .unwrap_or_else(|| panic!("{vm} not listed:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols,
        [vm.as_str(), "us-central1-a", "RUNNING", run_id.as_str()]
    );

    let other_run = fakes
        .command(&[
            "gce",
            "vm",
            "cleanup",
            "--project",
            "proj",
            "--run-id",
            "m00000000",
        ])
        .output()
        .unwrap();
    assert!(other_run.status.success());
    assert_eq!(fakes.vms(), left, "another run's cleanup leaves it alone");

    let cleanup = fakes
        .command(&[
            "gce",
            "vm",
            "cleanup",
            "--project",
            "proj",
            "--run-id",
            &run_id,
        ])
        .output()
        .unwrap();
    assert!(cleanup.status.success(), "{}", stderr(&cleanup));
    assert!(fakes.vms().is_empty());
    let deleted = fakes.span("compute instances delete", vm).unwrap();
    let zone_ok = fakes.calls().iter().any(|c| {
        c.args.starts_with("compute instances delete") && c.args.contains("--zone=us-central1-a")
    });
    assert!(deleted.0 > 0 && zone_ok);
    let again = fakes
        .command(&["gce", "vm", "list", "--project", "proj"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("no VMs"));
}
