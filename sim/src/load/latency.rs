//! Latency percentiles from an HdrHistogram: every latency recorded in microseconds with three
//! significant digits (a percentile is within 0.1% of the latency it stands for), up to an
//! hour (longer ones count as an hour), p50, p90, p99, p99.9 and the exact maximum.

use std::time::Duration;

use hdrhistogram::Histogram;

const HOUR_US: u64 = 3_600_000_000;

/// Latencies recorded so far.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
    max: Duration,
}

impl Default for Latencies {
    fn default() -> Self {
        let histogram = Histogram::new_with_bounds(1, HOUR_US, 3).expect("1 µs to an hour at 3 digits is a valid histogram");
        Latencies { histogram, max: Duration::ZERO }
    }
}

impl FromIterator<Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = Duration>>(latencies: I) -> Self {
        let mut all = Latencies::default();
        latencies.into_iter().for_each(|l| all.record(l));
        all
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        // To the nearest microsecond, as the CSVs write it (milliseconds with 3 decimals).
        let us = (latency.as_nanos() + 500) / 1000;
        self.histogram.saturating_record(us.min(u128::from(u64::MAX)) as u64);
        self.max = self.max.max(latency);
    }

    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The latency at quantile `q` (0.5 for the median): HdrHistogram's value, the top of the
    /// bucket holding it (within 0.1% above the latency it stands for), never above the exact
    /// maximum; zero when nothing was recorded.
    pub fn at(&self, q: f64) -> Duration {
        Duration::from_micros(self.histogram.value_at_quantile(q)).min(self.max)
    }

    /// The percentiles; `None` when nothing was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.is_empty() {
            return None;
        }
        let at = |q| self.at(q);
        Some(Percentiles { count: self.len(), p50: at(0.50), p90: at(0.90), p99: at(0.99), p999: at(0.999), max: self.max })
    }
}

/// What the report shows of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentiles_of_a_thousand_latencies_are_within_a_tenth_of_a_percent() {
        let latencies: Latencies = (1..=1000).map(Duration::from_millis).collect();
        let p = latencies.percentiles().unwrap();
        let near = |got: Duration, want_ms: u64| {
            let want = Duration::from_millis(want_ms);
            assert!(got >= want && got.as_secs_f64() <= want.as_secs_f64() * 1.001, "{got:?} for {want:?}");
        };
        near(p.p50, 500);
        near(p.p90, 900);
        near(p.p99, 990);
        near(p.p999, 999);
        assert_eq!((p.count, p.max), (1000, Duration::from_millis(1000)), "the maximum is exact");
        let same: Latencies = [Duration::from_millis(2012); 3].into_iter().collect();
        assert_eq!(same.at(0.999), Duration::from_millis(2012), "no percentile above the maximum");
        assert_eq!(Latencies::default().percentiles(), None);
    }
}
