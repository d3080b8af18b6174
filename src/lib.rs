//! campus: the production side of the campus food-ordering lab.
//!
//! One workflow — Order → Inventory reserve → Notification, plus Analytics — written once and
//! carried by three communication models. The lab crate (`campus-sim`) runs it in memory
//! under a seeded virtual clock, or over the real transports defined here.
//!
//! - [`domain`]: ids, orders, events; validated on construction (deserializing is parsing).
//! - [`services`]: the services' logic, transport-agnostic.
//! - [`api`]: the HTTP faces of the services (`fn app(state) -> Router` each) and the wire
//!   contract between them.
//! - [`transport`]: the traits of the communication models and their real adapters.

pub mod api;
pub mod domain;
pub mod services;
pub mod store;
pub mod transport;
