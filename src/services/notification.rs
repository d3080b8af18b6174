//! Notification: records the confirmation sent to a student, once per order. It counts every
//! confirmation and keeps the last [`REMEMBERED`] (to recognise a repeat), so its memory stays
//! flat however many orders pass ([`super::recent`]).

use serde::{Deserialize, Serialize};

use super::recent::{Recent, REMEMBERED};
use crate::domain::{OrderId, StudentId};

/// One confirmation as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub order_id: OrderId,
    pub student_id: StudentId,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Notifier {
    recent: Recent<OrderId, Confirmation>,
    sent: u64,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier { recent: Recent::new(REMEMBERED), sent: 0 }
    }
}

impl Notifier {
    /// Sends (records) the confirmation; returns false, and sends nothing, if this order was
    /// confirmed recently.
    pub fn send(&mut self, order_id: OrderId, student_id: StudentId) -> bool {
        if self.recent.contains(&order_id) {
            return false;
        }
        let message = format!("Order {order_id} confirmed: your food is being prepared.");
        self.recent.insert(order_id.clone(), Confirmation { order_id, student_id, message });
        self.sent += 1;
        true
    }

    /// Confirmations sent in all.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether `order_id` was confirmed recently.
    pub fn confirmed(&self, order_id: &OrderId) -> bool {
        self.recent.contains(order_id)
    }

    /// The last `n` confirmations, oldest first.
    pub fn latest(&self, n: usize) -> Vec<Confirmation> {
        let mut latest: Vec<Confirmation> = self.recent.iter().rev().take(n).map(|(_, c)| c.clone()).collect();
        latest.reverse();
        latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notifier_counts_every_confirmation_but_remembers_only_the_latest() {
        let mut notifier = Notifier::default();
        let id = |i: usize| OrderId::parse(format!("o-{i:07}")).unwrap();
        let student = StudentId::parse("s-1").unwrap();
        for i in 0..REMEMBERED + 10 {
            assert!(notifier.send(id(i), student.clone()));
        }
        assert!(!notifier.send(id(REMEMBERED + 9), student.clone()), "a recent repeat sends nothing");
        assert_eq!(notifier.sent(), (REMEMBERED + 10) as u64);
        assert!(!notifier.confirmed(&id(0)) && notifier.confirmed(&id(10)), "the oldest ten are forgotten");
        let latest = notifier.latest(2);
        assert_eq!(latest.iter().map(|c| c.order_id.clone()).collect::<Vec<_>>(), [id(REMEMBERED + 8), id(REMEMBERED + 9)]);
    }
}
