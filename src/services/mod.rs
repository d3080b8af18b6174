//! The services' logic, written once and transport-agnostic: each takes validated domain
//! values and returns outcomes. How a request arrives (HTTP, a queue, a log) is the caller's
//! business (the HTTP faces are the `api` module, built on these); [`messaging`] is the consumer loop.

pub mod analytics;
pub mod changelog;
pub mod inventory;
pub mod merge;
pub mod messaging;
pub mod notification;
pub mod order;
pub mod partitioned;
pub mod producer;
pub mod recent;
pub mod streaming;

/// Where event time (`placed_at_ms`) comes from.
#[derive(Debug, Clone, Copy)]
pub enum EventClock {
    /// Milliseconds since the Unix epoch (real mode).
    Wall,
    /// Milliseconds since `start` on the runtime's clock (virtual in the simulation).
    Since(tokio::time::Instant),
}

impl EventClock {
    pub fn now_ms(&self) -> u64 {
        match self {
            EventClock::Wall => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            EventClock::Since(start) => start.elapsed().as_millis() as u64,
        }
    }
}
