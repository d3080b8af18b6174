//! The wire contract between the services of Part A: the bodies Order sends to Inventory and
//! Notification, and the replies it reads back. Both sides reach it — `services::order`, which
//! calls, and `api`, which answers — so it sits below both.

use serde::{Deserialize, Serialize};

use crate::domain::{Items, OrderId, StudentId};

/// Order → Inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub order_id: OrderId,
    pub items: Items,
}

/// Order → Notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub order_id: OrderId,
    pub student_id: StudentId,
}

/// A success reply from Inventory or Notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub order_id: OrderId,
    pub status: String,
    /// True when this order id had been handled before and nothing changed now.
    pub repeat: bool,
}

/// The body of every error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable label: `invalid_order`, `insufficient_stock`, `inventory_timeout`, …
    pub error: String,
    /// What happened, for a person.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
}
