//! The services' logic, written once and transport-agnostic: each takes validated domain
//! values and returns outcomes. How a request arrives (HTTP, a queue, a log) is the caller's
//! business; see `crate::api` for the HTTP faces.

pub mod inventory;
pub mod notification;
pub mod order;
