//! The door every service enters by. A service is built by its model's `build` from two things:
//! its [`ServiceConfig`](crate::config::ServiceConfig) and what its [`Host`] provides — the
//! transport it talks over, where its store lives, the clock of event time, where order ids
//! come from, the jitter of its backoff, the safeguards. A process (`serve`) makes a host of
//! real sockets, brokers and files; the lab's simulated world makes one of its in-memory
//! transports and virtual clock. Both then run what `build` returns, a [`Built`] service: its
//! HTTP face and its loops.

use std::sync::Arc;

use axum::Router;
use tokio::sync::watch;

use crate::model::Service;
use crate::retry::Policy;
use crate::safeguards::Safeguards;
use crate::services::order::OrderIds;
use crate::services::EventClock;
use crate::store::{Storage, StoreError};
use crate::telemetry::log::CountedLog;
use crate::telemetry::queue::CountedQueue;
use crate::telemetry::trace_http::TracedCalls;
use crate::telemetry::trace_log::TracedLog;
use crate::telemetry::trace_queue::TracedQueue;
use crate::telemetry::{ServiceMetrics, Tracer};
use crate::transport::log::{EventLog, LogError};
use crate::transport::queue::{MessageQueue, QueueError};
use crate::transport::{BoxFuture, RequestReply};

/// The transport a service talks over: its model's.
#[derive(Clone)]
pub enum Transport {
    /// Part A: Order's calls to Inventory and Notification (the others call no one).
    RequestReply(Arc<dyn RequestReply>),
    /// Part B: the queues.
    Queue(Arc<dyn MessageQueue>),
    /// Part C: the log.
    Log(Arc<dyn EventLog>),
}

/// What a host gives a service besides its configuration.
#[derive(Clone)]
pub struct Host {
    pub transport: Transport,
    /// Where a Part B service keeps its state (unused by the others).
    pub storage: Storage,
    /// Event time (`placed_at_ms`): the wall clock, or the simulation's virtual one.
    pub clock: EventClock,
    /// Order ids: random in a process, from the seed in the simulation (one counter per
    /// deployment, so that a restarted service goes on where it stopped).
    pub ids: OrderIds,
    /// The seed of the reconnect backoff's jitter; `None`: random (production).
    pub jitter_seed: Option<u64>,
    pub safeguards: Safeguards,
    /// The service's metrics (`GET /metrics`): new with each host, as a process starts afresh.
    pub metrics: ServiceMetrics,
    /// The service's spans ([`crate::telemetry::trace`]): on the host's clock, or off.
    pub tracer: Tracer,
}

impl Host {
    /// This host with its transport counted into its metrics (Part B's queue, Part C's log;
    /// Part A's calls are timed where they are answered).
    pub fn counted(&self) -> Host {
        let transport = match &self.transport {
            Transport::Queue(mq) => Transport::Queue(Arc::new(CountedQueue::new(mq.clone(), &self.metrics))),
            Transport::Log(log) => Transport::Log(Arc::new(CountedLog::new(log.clone(), &self.metrics))),
            other @ Transport::RequestReply(_) => other.clone(),
        };
        Host { transport, ..self.clone() }
    }

    /// This host with its transport traced ([`crate::telemetry::trace`]): Part A's calls, Part
    /// B's publishes, Part C's appends — unchanged if its tracer is off.
    pub fn traced(&self) -> Host {
        if !self.tracer.is_on() {
            return self.clone();
        }
        let tracer = &self.tracer;
        let transport = match &self.transport {
            Transport::RequestReply(calls) => Transport::RequestReply(Arc::new(TracedCalls::new(calls.clone(), tracer))),
            Transport::Queue(mq) => Transport::Queue(Arc::new(TracedQueue::new(mq.clone(), tracer))),
            Transport::Log(log) => Transport::Log(Arc::new(TracedLog::new(log.clone(), tracer))),
        };
        Host { transport, ..self.clone() }
    }

    /// How the service's loops meet a broker that goes away.
    pub fn policy(&self) -> Policy {
        let Safeguards { reconnect, stall_watch, ack_after_commit, .. } = self.safeguards;
        Policy { reconnect, stall_watch, ack_after_commit, seed: self.jitter_seed }
    }
}

/// The switch that asks a loop to stop: it finishes what it is doing (a consumer leaves its
/// group) and returns.
pub type Stop = watch::Receiver<bool>;

/// Why a loop ended. A loop ends only when asked to, or when its broker failed for good.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("writing {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// One loop a service runs beside its HTTP face: a consumer, Order's relay, a producer's
/// watermarks, Analytics' metrics file.
pub struct Loop {
    pub name: &'static str,
    run: Box<dyn FnOnce(Stop) -> BoxFuture<'static, Result<(), LoopError>> + Send>,
}

impl Loop {
    /// A loop that honours its stop switch.
    pub fn new<F, Fut, E>(name: &'static str, run: F) -> Self
    where
        F: FnOnce(Stop) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: Into<LoopError>,
    {
        Loop { name, run: Box::new(move |stop| Box::pin(async move { run(stop).await.map_err(Into::into) })) }
    }

    /// A loop that runs until its broker fails for good and has nothing to finish when asked
    /// to stop: stopping it drops it. (A stop switch whose sender is gone never stops it.)
    pub fn endless<Fut, E>(name: &'static str, run: Fut) -> Self
    where
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: Into<LoopError>,
    {
        Loop::new(name, move |mut stop: Stop| async move {
            let asked = async move {
                if stop.wait_for(|stopping| *stopping).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                biased;
                ended = run => ended.map_err(Into::into),
                () = asked => Ok(()),
            }
        })
    }

    /// Runs the loop until it ends or `stop` says so.
    pub fn run(self, stop: Stop) -> BoxFuture<'static, Result<(), LoopError>> {
        (self.run)(stop)
    }
}

/// A service, built: its HTTP face and its loops (in the order they are to be started).
pub struct Built {
    pub service: Service,
    pub app: Router,
    pub loops: Vec<Loop>,
}

/// Why a service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{model} has no {service} service; its services are {}", Service::of(*model).iter().map(|s| s.name()).collect::<Vec<_>>().join(", "))]
    NoSuchService { model: crate::Model, service: Service },
    #[error("{service} needs {needs}, and its host gave it another transport")]
    Transport { service: Service, needs: &'static str },
    #[error("{service}'s store: {source}")]
    Store { service: Service, source: StoreError },
}
