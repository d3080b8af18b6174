//! When each order's workflow ended, as the service at its end saw it: Part B's Notification
//! when it records the confirmation, Part C's Analytics when it counts the outcome. The lab
//! reads them (`GET /completions`) to measure completion latency per order, from the order's
//! intended start on the same clock ([`EventClock`]: the wall clock for real processes on one
//! machine, the virtual one in the simulation).
//!
//! The first time counts: a redelivery or a replay does not move an order's completion. Like
//! the services' other memories ([`super::recent`]), it holds the last [`REMEMBERED`] orders
//! of this process, so it stays flat however many orders pass; a restarted service starts
//! with none (the lab measures completion where the end service runs throughout).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::recent::{Recent, REMEMBERED};
use super::EventClock;
use crate::domain::OrderId;

/// One order's end: its id and when, in milliseconds of the service's [`EventClock`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub order_id: OrderId,
    pub at_ms: u64,
}

/// The completions a service recorded, shared between its loop and its HTTP face.
#[derive(Clone)]
pub struct Completions {
    clock: EventClock,
    at: Arc<Mutex<Recent<OrderId, u64>>>,
}

impl Completions {
    pub fn new(clock: EventClock) -> Self {
        Completions { clock, at: Arc::new(Mutex::new(Recent::new(REMEMBERED))) }
    }

    /// `order_id` ended now, unless it ended before.
    pub fn record(&self, order_id: &OrderId) {
        let now = self.clock.now_ms();
        self.at.lock().expect("completions lock").insert(order_id.clone(), now);
    }

    /// Every completion remembered, oldest first.
    pub fn list(&self) -> Vec<Completion> {
        let at = self.at.lock().expect("completions lock");
        at.iter().map(|(order_id, at_ms)| Completion { order_id: order_id.clone(), at_ms: *at_ms }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_order_completes_once_at_its_first_record() {
        let completions = Completions::new(EventClock::Since(tokio::time::Instant::now()));
        let id = OrderId::parse("o-1").unwrap();
        tokio::time::advance(std::time::Duration::from_millis(40)).await;
        completions.record(&id);
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        completions.record(&id);
        assert_eq!(completions.list(), [Completion { order_id: id, at_ms: 40 }]);
    }
}
