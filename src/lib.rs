//! campus: the production side of the campus food-ordering lab.
//!
//! One workflow — Order → Inventory reserve → Notification, plus Analytics — written once and
//! carried by three communication models. The lab crate (`campus-sim`) runs it in memory
//! under a seeded virtual clock, or over the real transports defined here.
//!
//! Every module imports only modules above it in this list:
//!
//! - [`model`]: the closed sets every command shares (the models, the services).
//! - [`domain`]: ids, orders, events; validated on construction (deserializing is parsing),
//!   and the reservation rule ([`domain::Items::shortfall`]).
//! - [`wire`]: the bodies the services of Part A exchange.
//! - [`retry`]: backoff with jitter, and how loops retry a broker that went away.
//! - [`transport`]: the traits of the communication models and their real adapters.
//! - [`store`]: the stores of Part B, SQLite (a file per store) or PostgreSQL shared by several
//!   instances (Part C's Inventory keeps its state in a changelog topic).
//! - [`services`]: the services' logic, transport-agnostic.
//! - [`api`]: the HTTP faces of the services (`fn app(state) -> Router` each).
//! - [`deploy`]: each model's services wired from their transports and stores, once.
//! - [`serve`]: one service as its own process (READY line, signals, health).

pub mod api;
pub mod deploy;
pub mod domain;
pub mod model;
pub mod retry;
pub mod serve;
pub mod services;
pub mod store;
pub mod transport;
pub mod wire;

pub use model::{Model, Service};
