//! The services' logic, written once and transport-agnostic: each takes validated domain
//! values and returns outcomes. How a request arrives (HTTP, a queue, a log) is the caller's
//! business: the HTTP faces are in `api`, the loops that consume a queue or a log in the
//! models' own modules (`async_rabbitmq`, `streaming_kafka`).

pub mod analytics;
pub mod completions;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod recent;

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

    /// Now as a point in time, to the clock's full resolution: the wall clock, or the Unix
    /// epoch plus the virtual time since `start` (a span's timestamps in the simulation).
    pub fn system_time(&self) -> std::time::SystemTime {
        match self {
            EventClock::Wall => std::time::SystemTime::now(),
            EventClock::Since(start) => std::time::UNIX_EPOCH + start.elapsed(),
        }
    }
}
