//! Holding a run to the gVNIC model's record: a run whose model recorded a violation or
//! answered an admin command with an error status fails with the named verdict
//! `model-violation` and the record's words, unless the command file says
//! `allow-model-violations` (docs/SCRIPTS.md). The report carries the record's summary either
//! way (docs/REPORT.md `gvnic_model`). `Tolerated` violations (what GCE accepts) never fail a
//! run; they are counted.

use gvnic_model::record_file::{RecordFile, Summary};
use serde::Serialize;

use crate::report::Report;

/// The verdict (and matrix error code) of a run failed by the model's record.
pub const MODEL_VIOLATION: &str = "model-violation";

/// The model's part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// `clean`; `model-violation` (the run failed for it); or `allowed` (the record has
    /// problems and the command file says `allow-model-violations`).
    pub verdict: &'static str,
    /// The record's words: counts, then the first refused commands and violations.
    pub words: String,
    pub profile: String,
    pub formats: String,
    pub summary: Summary,
}

/// Puts the record's summary into `report` and fails it when the record is not clean and
/// `allowed` is false.
pub fn judge(report: &mut Report, record: &RecordFile, allowed: bool) {
    let s = &record.summary;
    let verdict = match (s.clean(), allowed) {
        (true, _) => "clean",
        (false, true) => "allowed",
        (false, false) => MODEL_VIOLATION,
    };
    if verdict == MODEL_VIOLATION {
        report.passed = false;
    }
    report.gvnic_model = Some(ModelReport {
        verdict,
        words: s.words(),
        profile: record.profile.clone(),
        formats: record.formats.clone(),
        summary: s.clone(),
    });
}

/// `model-violation: WORDS` when the report failed for the model's record.
pub fn failure(report: &Report) -> Option<String> {
    let m = report.gvnic_model.as_ref()?;
    (m.verdict == MODEL_VIOLATION).then(|| format!("{MODEL_VIOLATION}: {}", m.words))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse_script;
    use gvnic_model::{Gvnic, ModelConfig, VecMemory};

    /// A model that saw a driver write a doorbell nobody owns (one UnknownDoorbell).
    fn violated() -> RecordFile {
        let mut dev = Gvnic::new(ModelConfig::default());
        let mem = VecMemory::new(0, 4096);
        dev.config_write(0x04, 2, 0x0006);
        dev.bar_write(2, 0, 4, 1, &mem);
        dev.record_file()
    }

    fn passed_report() -> Report {
        Report {
            passed: true,
            ..Report::default()
        }
    }

    #[test]
    fn a_violation_fails_the_run_with_the_records_words() {
        let mut r = passed_report();
        judge(&mut r, &violated(), false);
        assert!(!r.passed);
        let why = failure(&r).expect("a named verdict");
        assert!(why.starts_with("model-violation: 0 refused, 0 unimplemented admin command(s), 1 violation(s): UnknownDoorbell: doorbell 0"), "{why}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["gvnic_model"]["verdict"], "model-violation");
        assert_eq!(json["gvnic_model"]["summary"]["violations"], 1);
        assert_eq!(json["gvnic_model"]["profile"], "2026");
    }

    #[test]
    fn allow_model_violations_keeps_the_run_and_the_summary() {
        let script = parse_script("allow-model-violations\nversion\n").unwrap();
        assert!(script.allow_model_violations);
        assert!(!parse_script("version\n").unwrap().allow_model_violations);
        assert!(parse_script("allow-model-violations yes\nversion\n").is_err());
        let mut r = passed_report();
        judge(&mut r, &violated(), script.allow_model_violations);
        assert!(r.passed);
        assert_eq!(failure(&r), None);
        assert_eq!(r.gvnic_model.as_ref().unwrap().verdict, "allowed");
    }

    #[test]
    fn a_clean_record_changes_nothing_but_is_reported() {
        let dev = Gvnic::new(ModelConfig::default());
        let mut r = passed_report();
        judge(&mut r, &dev.record_file(), false);
        assert!(r.passed);
        assert_eq!(r.gvnic_model.as_ref().unwrap().verdict, "clean");
        // A failed run stays failed, and is not blamed on the model.
        let mut r = Report::default();
        judge(&mut r, &dev.record_file(), false);
        assert!(!r.passed && failure(&r).is_none());
    }
}
