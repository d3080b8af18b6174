//! A backlog drained by several consumer instances (`scale-out`, Parts B and C): what a run
//! measures, and its throughput over the drain's steady middle.

use std::time::Duration;

/// A backlog drained by several Inventory instances (Part B: competing consumers of one queue; Part C: members of one consumer group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleOut {
    pub instances: usize,
    /// Orders in the backlog.
    pub backlog: usize,
    /// Orders Inventory decided per second (rounded), from the 10th to the 90th percentile of
    /// the backlog (instance start-up and the last stragglers left out).
    pub orders_per_s: u64,
    /// From the instances' start until the last order was decided.
    pub drain: Duration,
    /// When one instance was SIGKILLed (ms after the instances started), and how many orders
    /// were decided by then.
    pub crashed: Option<(u64, u64)>,
    /// Inventory's decided count over time (ms after the instances started, decided).
    pub progress: Vec<(u64, u64)>,
}

/// Orders per second between the moments 10 % and 90 % of `n` were decided: the drain's steady
/// part, without the instances' start-up or the last stragglers.
pub fn middle_rate(progress: &[(u64, u64)], n: u64, poll: Duration) -> u64 {
    let at = |share: f64| progress.iter().find(|(_, decided)| *decided as f64 >= share * n as f64).map(|(t, _)| *t);
    let rate = match (at(0.1), at(0.9)) {
        (Some(t10), Some(t90)) if t90 > t10 => 0.8 * n as f64 / ((t90 - t10) as f64 / 1e3),
        // The whole middle between two polls: at least that fast.
        _ => 0.8 * n as f64 / poll.as_secs_f64(),
    };
    rate.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_is_timed_over_the_middle_eighty_percent() {
        let progress = [(0, 0), (1000, 50), (2000, 100), (3000, 500), (4000, 950), (5000, 1000)];
        assert_eq!(middle_rate(&progress, 1000, Duration::from_millis(50)), 400);
    }
}
