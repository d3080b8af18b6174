//! The lab's tests, one module per subject, built as one test binary: one compile and one link
//! of the lab instead of one per file (docs/benchmarks.md: the two test binaries build in 100 s
//! on 2 cores, the 21 they were in 230 s). The modules' tests run side by side; those against
//! the real brokers (ignored in a plain `cargo test`) take them through `brokers`.

mod brokers;

mod broker_hang;
mod cli;
mod compose;
mod dialect;
mod metrics;
mod otlp_export;
mod out_files;
mod properties;
mod sync_grpc_tcp;
mod sync_rest_tcp;
mod traces;
