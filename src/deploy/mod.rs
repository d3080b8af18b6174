//! Each model's services wired from their transports and stores — once. The real processes
//! (the `serve` module), the simulation, `campus-sim explore` and the tests all build a service by
//! calling these functions; only the transports and stores they pass in differ.
//!
//! | model | services | what a service is |
//! |---|---|---|
//! | [`sync_rest`] | order, inventory, notification | an axum `Router` (calls go over a [`crate::transport::RequestReply`]) |
//! | [`async_rabbitmq`] | order, inventory, notification | a `Router` for its HTTP face and the consumers / relay that do its work |
//! | [`streaming_kafka`] | producer, inventory, analytics | the producer (and its idle-watermark task), and a consumer task on the log each, with a switch to stop it |

pub mod async_rabbitmq;
pub mod streaming_kafka;
pub mod sync_rest;
