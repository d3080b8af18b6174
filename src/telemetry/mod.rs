//! What a service tells an operator about itself: its Prometheus metrics at `GET /metrics`
//! ([`metrics`]), counted where they happen — every HTTP request at the door, every delivery a
//! Part B consumer settles ([`queue`]), every group a Part C consumer joins and how far behind
//! it reads ([`log`]) — or read, when scraped, from the counts a service keeps anyway (its
//! store's statistics). `docs/metrics.md` lists them.
//!
//! And its traces ([`trace`]): spans of every request, call, publish and message handled, the
//! trace context handed on in HTTP, AMQP and Kafka headers ([`trace_http`], [`trace_queue`],
//! [`trace_log`]; the consumers' side is in the parts' consumer loops), exported as OTLP.
//! `docs/tracing.md` says what is traced and where the spans go.
//!
//! And what a binary logs on stderr ([`stderr`]).

pub mod log;
pub mod metrics;
pub mod queue;
pub mod stats;
pub mod stderr;
pub mod trace;
pub mod trace_http;
pub mod trace_log;
pub mod trace_queue;

pub use metrics::{Kind, Labels, Reconnects, Sample, ServiceMetrics};
pub use trace::{SpanSink, Tracer};
