//! campus: the production side of the campus food-ordering lab.
//!
//! One workflow — Order → Inventory reserve → Notification, plus Analytics — written once and
//! carried by three communication models. The lab crate (`campus-sim`) runs it in memory
//! under a seeded virtual clock, or over the real transports defined here; the `campus`
//! binary (`src/bin/campus.rs`, built by package `campus-server`) serves one service in production.
//!
//! Every module imports only modules above it in this list:
//!
//! - [`model`]: the closed sets every command shares (the models, the services).
//! - [`domain`]: ids, orders and their status, events; validated on construction
//!   (deserializing is parsing); the reservation decision ([`domain::Items::reserve_against`])
//!   and the event that announces it ([`domain::OrderPlaced::outcome_event`]).
//! - [`wire`]: the bodies the services of Part A exchange.
//! - [`proto`]: the same contract as gRPC messages, clients and servers (`campus.v1`), and
//!   their conversion to and from the domain's validated types.
//! - [`retry`]: backoff with jitter, and how loops retry a broker that went away.
//! - [`safeguards`]: the safeguards the guarantees rest on (only the lab ever breaks one),
//!   and the lab's other hooks, named in one place.
//! - [`transport`]: the traits of the communication models and their real adapters.
//! - [`config`]: one service instance's configuration (the binary's flags).
//! - [`store`]: persistence only: the stores of Part B, SQLite (a file per store) or PostgreSQL
//!   shared by several instances.
//! - [`telemetry`]: what a service tells an operator: its Prometheus metrics (`GET /metrics`),
//!   counted at the door, in the transports' counted wrappers, or read from the stores' counts.
//! - [`services`]: the services' logic, transport-agnostic: Order's whole life, Inventory,
//!   Notification, Analytics.
//! - [`host`]: what a host gives a service (transport, storage, clock, ids, jitter,
//!   safeguards) and what a built service is (its face and its loops): the door every service
//!   enters by, in a process and in the simulation.
//! - [`api`]: the HTTP faces the models share (`fn app(state) -> Router` each), and Part A's
//!   gRPC faces beside them on the same port ([`api::grpc`]).
//! - [`faults`]: the assignment's failure injection into Part A's Inventory (delay, error,
//!   hang), from its flags or its loopback-only `/admin/fault`; one layer, in a process and in
//!   the simulation.
//! - [`sync_rest`], [`async_rabbitmq`], [`streaming_kafka`]: each model's services wired from
//!   their transports and stores, once, with what belongs to that model alone (Part B's
//!   consumer loop; Part C's consumers, event-time merge, changelog, producer and faces).
//! - [`serve`]: [`serve::build`], the one door; and one service as its own process (READY
//!   line, signals, health).

pub mod api;
pub mod async_rabbitmq;
pub mod config;
pub mod domain;
pub mod faults;
pub mod host;
pub mod model;
pub mod proto;
pub mod retry;
pub mod safeguards;
pub mod serve;
pub mod services;
pub mod store;
pub mod streaming_kafka;
pub mod sync_rest;
pub mod telemetry;
pub mod transport;
pub mod wire;

pub use model::{Model, Protocol, Service};
