//! Each order on one clock: when it was meant to arrive, when it was accepted, when its
//! workflow ended; and what a run's orders show over time (accept and completion percentiles
//! per window of arrivals, requests in flight).

use std::collections::HashMap;
use std::time::Duration;

use campus::services::completions::Completion;
use campus::services::EventClock;
use campus::transport::RequestReply;
use campus::Service;
use tokio::time::Instant;

use super::{Latencies, Percentiles};
use crate::Mode;

/// The clock the lab reads a run's orders on: the services' own event clock — the wall clock
/// that every process on the machine shares, or the simulation's virtual one — so a
/// completion a service recorded and an intended start the lab took are on the same clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock(EventClock);

impl Clock {
    pub fn of(mode: Mode) -> Self {
        Clock(match mode {
            Mode::Sim => EventClock::Since(crate::simulator::clock::started()),
            Mode::Real => EventClock::Wall,
        })
    }

    /// `instant` (of the runtime's clock) in milliseconds of this clock.
    pub fn ms_at(&self, instant: Instant) -> u64 {
        let now = Instant::now();
        let ms = self.0.now_ms();
        if instant <= now {
            ms.saturating_sub((now - instant).as_millis() as u64)
        } else {
            ms + (instant - now).as_millis() as u64
        }
    }
}

/// One order of an open loop, on the run's [`Clock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed {
    pub index: usize,
    /// Empty when it was not accepted.
    pub order_id: String,
    /// Its intended start, in milliseconds of the run's clock.
    pub intended_ms: u64,
    /// From its intended start to its answer, measured by the lab; `None`: no answer, or not
    /// accepted.
    pub accept: Option<Duration>,
    /// From its intended start to the end of its workflow; `None`: it never ended (not
    /// accepted, or its outcome was a failure no end service records).
    pub completion: Option<Duration>,
}

impl Timed {
    /// `completed_ms`, when the service at the workflow's end recorded the order, read on the
    /// same clock as `intended_ms` (so the completion is good to the clock's millisecond).
    pub fn completed_at(mut self, completed_ms: Option<u64>) -> Self {
        self.completion = completed_ms.map(|c| Duration::from_millis(c.saturating_sub(self.intended_ms)));
        self
    }
}

/// `orders`, each completed when `service` (the workflow's end: Part B's Notification, Part C's
/// Analytics) recorded it, as its `GET /completions` says now.
pub async fn completed_by(http: &dyn RequestReply, service: Service, orders: &[Timed]) -> anyhow::Result<Vec<Timed>> {
    let completions: Vec<Completion> = crate::client::get_json(http, service, "/completions").await?;
    let at: HashMap<String, u64> = completions.into_iter().map(|c| (c.order_id.as_str().to_owned(), c.at_ms)).collect();
    Ok(orders.iter().map(|t| t.clone().completed_at(at.get(&t.order_id).copied())).collect())
}

/// Accept and completion percentiles of `orders`.
pub fn percentiles(orders: &[Timed]) -> (Option<Percentiles>, Option<Percentiles>) {
    let accept: Latencies = orders.iter().filter_map(|o| o.accept).collect();
    let completion: Latencies = orders.iter().filter_map(|o| o.completion).collect();
    (accept.percentiles(), completion.percentiles())
}

/// The orders meant to arrive in one window of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Its start, from the first order's intended start.
    pub from_ms: u64,
    pub accept: Option<Percentiles>,
    pub completion: Option<Percentiles>,
}

/// `orders` grouped by intended start into windows `width` wide, from the first one's.
pub fn windows(orders: &[Timed], width: Duration) -> Vec<Window> {
    let Some(t0) = orders.iter().map(|o| o.intended_ms).min() else { return Vec::new() };
    let width = width.as_millis().max(1) as u64;
    let mut by_window: std::collections::BTreeMap<u64, Vec<Timed>> = Default::default();
    for o in orders {
        by_window.entry((o.intended_ms - t0) / width).or_default().push(o.clone());
    }
    by_window
        .into_iter()
        .map(|(w, orders)| {
            let (accept, completion) = percentiles(&orders);
            Window { from_ms: w * width, accept, completion }
        })
        .collect()
}

/// How many requests were in flight (started, not answered) at each step of `every` from the
/// first start, given each request's `(start, answered)`.
pub fn in_flight(spans: &[(Duration, Duration)], every: Duration) -> Vec<(Duration, usize)> {
    let Some(end) = spans.iter().map(|s| s.1).max() else { return Vec::new() };
    let mut out = Vec::new();
    let mut t = Duration::ZERO;
    while t <= end {
        out.push((t, spans.iter().filter(|(start, answered)| *start <= t && t < *answered).count()));
        t += every;
    }
    out
}

/// The most requests in flight at any one instant, exactly: a sweep over the starts and
/// answers (an answer at the very instant of a start ends first).
pub fn peak_in_flight(spans: &[(Duration, Duration)]) -> usize {
    let mut edges: Vec<(Duration, i8)> = spans.iter().flat_map(|(start, answered)| [(*start, 1), (*answered, -1)]).collect();
    edges.sort();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, step) in edges {
        now += i64::from(step);
        peak = peak.max(now);
    }
    peak as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(intended_ms: u64, accept_ms: u64, completed_ms: Option<u64>) -> Timed {
        let accept = Some(Duration::from_millis(accept_ms));
        Timed { index: 0, order_id: "o".into(), intended_ms, accept, completion: None }.completed_at(completed_ms)
    }

    #[test]
    fn completion_counts_from_the_intended_start_not_from_the_answer() {
        let o = timed(1_000, 3, Some(61_000));
        assert_eq!(o.completion, Some(Duration::from_secs(60)));
    }

    #[test]
    fn windows_group_orders_by_when_they_were_meant_to_arrive() {
        let orders = [timed(500, 2, Some(510)), timed(900, 4, Some(920)), timed(1_600, 2, None)];
        let w = windows(&orders, Duration::from_secs(1));
        assert_eq!(w.iter().map(|w| w.from_ms).collect::<Vec<_>>(), [0, 1000]);
        assert_eq!(w[0].completion.map(|p| p.count), Some(2));
        assert_eq!(w[1].completion, None, "an order not completed has no completion latency");
    }

    #[test]
    fn in_flight_counts_requests_started_and_not_yet_answered() {
        let s = |a: u64, b: u64| (Duration::from_millis(a), Duration::from_millis(b));
        let counts = in_flight(&[s(0, 250), s(100, 350), s(200, 210)], Duration::from_millis(100));
        assert_eq!(counts.iter().map(|c| c.1).collect::<Vec<_>>(), [1, 2, 3, 1]);
        assert_eq!(peak_in_flight(&[s(0, 250), s(100, 350), s(200, 210)]), 3);
        assert_eq!(peak_in_flight(&[s(0, 100), s(100, 200)]), 1, "one answered as the next starts");
    }
}
