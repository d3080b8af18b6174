//! What the samples of an outage show — the backlog a queue or a log held while Inventory was
//! away, read off the cumulative curves of orders accepted and orders decided. Parts B and C
//! quote it in their sections and the comparison sets them side by side, from the same rows.

/// One sample of a queue or a log under Inventory's outage: seconds, Inventory up, orders
/// accepted so far, orders with their outcome so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t_s: f64,
    pub up: bool,
    pub accepted: u64,
    pub decided: u64,
}

/// What the samples of an outage show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// When Inventory went down and came back (s).
    pub down_s: f64,
    pub up_s: f64,
    /// Orders accepted while it was away.
    pub accepted_while_down: u64,
    /// The most orders accepted and not yet decided at a sample, and that sample's time (s).
    pub peak_waiting: u64,
    pub peak_at_s: f64,
    /// Orders accepted and not yet decided at the sample where Inventory went down.
    pub waiting_at_down: u64,
    /// Little's law before the outage: orders waiting on average ÷ orders arriving per second.
    pub outcome_before_s: Option<f64>,
    /// The longest an order waited for its outcome (first sample with it decided minus first
    /// sample with it accepted, first in first out).
    pub longest_wait_s: f64,
    /// Orders decided per second before the outage: the throughput under the offered load.
    pub decided_per_s_before: Option<f64>,
}

impl Backlog {
    pub fn of(points: &[Point]) -> Option<Backlog> {
        let down = points.iter().find(|p| !p.up)?;
        let up = points.iter().skip_while(|p| p.up).find(|p| p.up)?;
        let before: Vec<&Point> = points.iter().take_while(|p| p.up).collect();
        let waiting = |p: &Point| p.accepted.saturating_sub(p.decided);
        let outcome_before_s = match (before.first(), before.last()) {
            (Some(first), Some(last)) if last.t_s > first.t_s && last.accepted > first.accepted => {
                let mean_waiting = before.iter().map(|p| waiting(p) as f64).sum::<f64>() / before.len() as f64;
                let rate = (last.accepted - first.accepted) as f64 / (last.t_s - first.t_s);
                Some(mean_waiting / rate)
            }
            _ => None,
        };
        // The k-th order's wait: from the first sample that counts it accepted to the first
        // that counts it decided.
        let (mut longest, mut decided_at) = (0.0f64, points.iter().peekable());
        let mut accepted_so_far = 0;
        for p in points {
            for k in accepted_so_far + 1..=p.accepted {
                while decided_at.peek().is_some_and(|d| d.decided < k) {
                    decided_at.next();
                }
                if let Some(d) = decided_at.peek() {
                    longest = longest.max(d.t_s - p.t_s);
                }
            }
            accepted_so_far = accepted_so_far.max(p.accepted);
        }
        let decided_per_s_before = match (before.first(), before.last()) {
            (Some(first), Some(last)) if last.t_s > first.t_s => Some((last.decided - first.decided) as f64 / (last.t_s - first.t_s)),
            _ => None,
        };
        // The first sample at the most waiting.
        let peak = points.iter().reduce(|best, p| if waiting(p) > waiting(best) { p } else { best });
        Some(Backlog {
            down_s: down.t_s,
            up_s: up.t_s,
            accepted_while_down: up.accepted.saturating_sub(down.accepted),
            peak_waiting: peak.map_or(0, waiting),
            peak_at_s: peak.map_or(down.t_s, |p| p.t_s),
            waiting_at_down: waiting(down),
            outcome_before_s,
            longest_wait_s: longest,
            decided_per_s_before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t_s: f64, up: bool, accepted: u64, decided: u64) -> Point {
        Point { t_s, up, accepted, decided }
    }

    #[test]
    fn the_backlog_of_an_outage_is_read_off_the_cumulative_curves() {
        // 2 orders a second; Inventory away from 2 s to 4 s; the backlog decided at 4.5 s.
        let points = [
            point(0.0, true, 0, 0),
            point(1.0, true, 2, 1),
            point(2.0, false, 4, 3),
            point(3.0, false, 6, 3),
            point(4.0, true, 8, 3),
            point(4.5, true, 9, 9),
        ];
        let b = Backlog::of(&points).unwrap();
        assert_eq!((b.down_s, b.up_s, b.accepted_while_down, b.peak_waiting, b.peak_at_s, b.waiting_at_down), (2.0, 4.0, 4, 5, 4.0, 1));
        // The 4th order, accepted by 2 s, decided by 4.5 s.
        assert_eq!(b.longest_wait_s, 2.5);
        // Before the outage: (0 + 1) / 2 orders waiting on average, 2 arriving a second.
        assert_eq!(b.outcome_before_s, Some(0.25));
        // 1 decided between the samples before it (0 s and 1 s).
        assert_eq!(b.decided_per_s_before, Some(1.0));
    }

    #[test]
    fn no_outage_in_the_samples_means_no_backlog() {
        assert_eq!(Backlog::of(&[point(0.0, true, 1, 1), point(1.0, true, 2, 2)]), None);
    }
}
