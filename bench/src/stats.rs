//! Samples per metric and their summary (median and spread), plus pairwise ratios.

use std::collections::BTreeMap;

use serde::Serialize;

/// One run's values, by metric name (times in seconds, rates in MiB/s, sizes in bytes).
pub type Run = BTreeMap<String, f64>;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// (max - min) / median, in percent.
    pub spread_pct: f64,
}

pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let (min, max) = (v[0], v[n - 1]);
    let spread_pct = if median != 0.0 {
        (max - min) / median.abs() * 100.0
    } else {
        0.0
    };
    Some(Summary {
        n,
        median,
        min,
        max,
        spread_pct,
    })
}

pub fn median(values: &[f64]) -> f64 {
    summarize(values).map_or(f64::NAN, |s| s.median)
}

/// All values of `metric` across runs (runs that lack it are skipped).
pub fn column(runs: &[Run], metric: &str) -> Vec<f64> {
    runs.iter().filter_map(|r| r.get(metric).copied()).collect()
}

/// `num / den` computed run by run (only runs that have both), then summarized.
pub fn ratio(runs: &[Run], num: &str, den: &str) -> Option<Summary> {
    let pairs: Vec<f64> = runs
        .iter()
        .filter_map(|r| Some(r.get(num)? / r.get(den)?))
        .collect();
    summarize(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = summarize(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert!((s.spread_pct - 360.0).abs() < 1e-9);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn ratio_is_pairwise() {
        let runs: Vec<Run> = [(2.0, 1.0), (9.0, 3.0)]
            .iter()
            .map(|&(a, b)| Run::from([("a".into(), a), ("b".into(), b)]))
            .collect();
        let r = ratio(&runs, "a", "b").unwrap();
        assert_eq!(r.median, 2.5); // median of 2 and 3, not 5.5 / 2
    }
}
