//! The specifications of the services, one module per subject, built as one test binary: one
//! compile and one link of the lab instead of one per file (docs/benchmarks.md: the two test
//! binaries build in 100 s on 2 cores, the 21 they were in 230 s). The modules' tests run side
//! by side; those against a real broker (ignored in a plain `cargo test`) share it without
//! stopping it, each in a namespace of its own. `scripts/test.sh` runs the Docker engine's
//! (`compose_engine::`) on their own, last.

mod common;

mod async_rabbitmq;
mod cluster;
mod compose_engine;
mod domain;
mod event_log_semantics;
mod queue_semantics;
mod store_postgres;
mod streaming_kafka;
mod sync_rest_api;
mod sync_rest_experiments;
