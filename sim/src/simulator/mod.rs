//! The deterministic simulator: one process, one seed, virtual time.
//!
//! - [`world`]: the world built once from the seed; it hosts every service of a part as a task,
//!   applies the faults a run injects, and keeps the stores of a killed instance as its disk.
//! - [`net`], [`queue`], [`log`]: the in-memory transports the world hosts (HTTP between
//!   services, the message queue of Part B, the event log of Part C), each with its seeded
//!   latency and jitter.
//! - [`answering`]: the gate a hung broker (queue or log) holds every call at.
//! - [`clock`]: the virtual clock (`block_on`, `now_ms`); [`rng`]: the seeded streams.
//!
//! Every module here imports only the ones after it in this list.

pub mod world;

pub mod log;
pub mod net;
pub mod queue;

pub mod answering;

pub mod clock;
pub mod rng;
