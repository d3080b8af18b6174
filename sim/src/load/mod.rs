//! The load every part is measured under, in one place: when requests are meant to start
//! (an open loop at a rate, steady or Poisson from the seed), the latencies measured from
//! those intended starts (so a sender that falls behind is charged for the wait: no
//! coordinated omission), their percentiles from an HdrHistogram, and each order's accept
//! and completion on one clock.
//!
//! | model | accept | completion |
//! |---|---|---|
//! | A (sync-rest) | Order's answer to `POST /order` | the same answer: Order answers once the chain has run |
//! | B (async-rabbitmq) | Order's 202 | Notification records the confirmation (`GET /completions`) |
//! | C (streaming-kafka) | the producer's 202: the order appended to `order-events` | Analytics counts its outcome (`GET /completions`) |

pub mod arrivals;
pub mod latency;
pub mod open_loop;
pub mod rows;
pub mod timeline;

pub use arrivals::{Schedule, Shape};
pub use latency::{Latencies, Percentiles};
pub use open_loop::{drive, drive_in_order, Sent};
pub use timeline::{completed_by, Clock, Timed};
