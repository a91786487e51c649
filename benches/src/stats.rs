//! Small descriptive statistics (nearest-rank percentiles) and interval arithmetic.

use serde_json::{json, Value};

/// Nearest-rank percentile of an ascending slice (`p` in 0..=100).
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v
}

pub fn median(xs: &[f64]) -> f64 {
    percentile_sorted(&sorted(xs), 50.0)
}

pub fn mean(xs: &[f64]) -> f64 {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// Rounds for JSON output (3 decimals), keeping NaN out of the document.
pub fn r3(x: f64) -> Value {
    if x.is_finite() { json!((x * 1000.0).round() / 1000.0) } else { Value::Null }
}

/// `{n, min, p50, p90, p95, p99, max, mean}`.
pub fn summary(xs: &[f64]) -> Value {
    let s = sorted(xs);
    if s.is_empty() {
        return json!({"n": 0});
    }
    json!({
        "n": s.len(),
        "min": r3(s[0]),
        "p50": r3(percentile_sorted(&s, 50.0)),
        "p90": r3(percentile_sorted(&s, 90.0)),
        "p95": r3(percentile_sorted(&s, 95.0)),
        "p99": r3(percentile_sorted(&s, 99.0)),
        "max": r3(s[s.len() - 1]),
        "mean": r3(mean(&s)),
    })
}

/// Splits `[from, to]` among labelled intervals: each instant goes to the
/// lowest-numbered label whose interval covers it, or to `labels` (the "rest"
/// bucket) if none does. Returns the time per label, rest last.
pub fn attribute(from: f64, to: f64, intervals: &[(usize, f64, f64)], labels: usize) -> Vec<f64> {
    let mut out = vec![0.0; labels + 1];
    if !(to > from) {
        return out;
    }
    let mut cuts: Vec<f64> = vec![from, to];
    for &(_, a, b) in intervals {
        if b > from && a < to {
            cuts.push(a.max(from));
            cuts.push(b.min(to));
        }
    }
    cuts.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    cuts.dedup();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mid = (a + b) / 2.0;
        let label = intervals
            .iter()
            .filter(|&&(_, s, e)| s <= mid && mid < e)
            .map(|&(l, _, _)| l)
            .min()
            .unwrap_or(labels);
        out[label] += b - a;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = sorted(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(percentile_sorted(&s, 50.0), 3.0);
        assert_eq!(percentile_sorted(&s, 100.0), 5.0);
        assert_eq!(percentile_sorted(&s, 1.0), 1.0);
    }

    #[test]
    fn attribution_prefers_lower_labels_and_fills_the_rest() {
        // label 0 covers 2..4, label 1 covers 3..6, window 0..10
        let out = attribute(0.0, 10.0, &[(0, 2.0, 4.0), (1, 3.0, 6.0)], 2);
        assert_eq!(out, vec![2.0, 2.0, 6.0]);
    }
}
