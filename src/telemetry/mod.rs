//! What a service tells an operator about itself: its Prometheus metrics at `GET /metrics`
//! ([`metrics`]), counted where they happen — every HTTP request at the door, every delivery a
//! Part B consumer settles ([`queue`]), every group a Part C consumer joins and how far behind
//! it reads ([`log`]) — or read, when scraped, from the counts a service keeps anyway (its
//! store's statistics). `docs/metrics.md` lists them.

pub mod log;
pub mod metrics;
pub mod queue;
pub mod stats;

pub use metrics::{Kind, Labels, Reconnects, Sample, ServiceMetrics};
