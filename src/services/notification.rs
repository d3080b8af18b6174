//! Notification: records the confirmation sent to a student, once per order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{OrderId, StudentId};

/// One confirmation as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub order_id: OrderId,
    pub student_id: StudentId,
    pub message: String,
}

#[derive(Debug, Default, Clone)]
pub struct Notifier {
    sent: BTreeMap<OrderId, Confirmation>,
}

impl Notifier {
    /// Sends (records) the confirmation; returns false, and sends nothing, if this order was
    /// already confirmed.
    pub fn send(&mut self, order_id: OrderId, student_id: StudentId) -> bool {
        if self.sent.contains_key(&order_id) {
            return false;
        }
        let message = format!("Order {order_id} confirmed: your food is being prepared.");
        self.sent.insert(order_id.clone(), Confirmation { order_id, student_id, message });
        true
    }

    pub fn sent(&self) -> &BTreeMap<OrderId, Confirmation> {
        &self.sent
    }
}
