//! Percentiles and the number formats of the report.

use std::time::Duration;

/// The `q`-quantile (0–1) of `sorted` by the nearest-rank method; `None` when it is empty.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

/// Milliseconds, as a float.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate rounded to three significant digits and grouped: `48,300`, `912`, `7.41`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return "0".to_owned();
    }
    if per_sec < 10.0 {
        return format!("{per_sec:.2}");
    }
    if per_sec < 100.0 {
        return format!("{per_sec:.1}");
    }
    let magnitude = 10f64.powi(per_sec.log10().floor() as i32 - 2);
    thousands(((per_sec / magnitude).round() * magnitude) as u64)
}

/// The durations of a reference run before and after a measurement, in seconds:
/// `2.1 s before, 2.3 s after`.
pub fn before_after(before_secs: f64, after_secs: f64) -> String {
    format!("{before_secs:.1} s before, {after_secs:.1} s after")
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(rate(48_321.7), "48,300");
        assert_eq!(rate(912.4), "912");
        assert_eq!(rate(7.412), "7.41");
    }
}
