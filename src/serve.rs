//! Running one service as its own process: what the `campus` binary does (and the lab's
//! `campus-sim serve`, the same entry inside the lab's binary), what real mode starts as
//! children and what compose runs as containers (configured by the `CAMPUS_*` environment
//! variables). Part A's Inventory takes the faults the assignment injects (`crate::faults`).
//!
//! A process makes its [`Host`] of real things — sockets, the broker its flags name, its store's
//! file or database, the wall clock — and builds its service through [`build`], the door the
//! lab's simulated world enters by too.
//!
//! Once listening, the process prints `READY <service> http://<addr>` on stdout (a harness
//! waits for that line), then serves until SIGINT or SIGTERM and finishes in-flight requests;
//! its loops are asked to stop and waited for (a consumer leaves its group; Analytics writes its
//! metrics file once more).
//! A Part B service never stops because its broker went away: it starts even while the broker
//! is down, and its consumers and relay reconnect (backoff with jitter) for as long as it
//! takes; `/health` says meanwhile what it can do (see `crate::api::Probe`). Only a loop that
//! ends for good (it cannot, short of a bug) stops the process with an error: a service that
//! no longer consumes must not look healthy.
//!
//! Part C's services (`--model streaming-kafka`: `producer`, `inventory`, `analytics`) connect
//! to Kafka before they announce READY (retrying while it is away) and create the namespace's
//! topics if they are missing.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::ServiceConfig;
use crate::faults::{self, FaultArgs, FaultPlan, FaultSwitch};
use crate::host::{BuildError, Built, Host, LoopError, Transport};
use crate::model::{Model, Service};
use crate::retry::{Backoff, Policy};
use crate::safeguards::Safeguards;
use crate::services::order::OrderIds;
use crate::services::EventClock;
use crate::store::{Postgres, Storage, StoreError};
use crate::telemetry::trace::{self, SpanSink, Tracer};
use crate::telemetry::ServiceMetrics;
use crate::transport::amqp::AmqpQueue;
use crate::transport::http::{serve, HttpRequestReply};
use crate::transport::kafka::KafkaLog;
use crate::transport::log::{EventLog, LogError};
use crate::transport::queue::{MessageQueue, Topology};

/// The flags of one service process (`campus`, and the lab's `campus-sim serve`): the service's
/// configuration and the faults Part A's Inventory may suffer from its start.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ServiceConfig,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Why a service process stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("binding {addr} for {service}: {source}")]
    Bind { service: Service, addr: SocketAddr, source: std::io::Error },
    #[error("{service}'s store: {source}")]
    Store { service: Service, source: StoreError },
    #[error("{service}'s {name} loop ended (the broker closed the connection?)")]
    LoopEnded { service: Service, name: &'static str },
    #[error("{service}'s {name} loop failed: {source}")]
    LoopFailed { service: Service, name: &'static str, source: LoopError },
    #[error("{service}'s log: {source}")]
    Log { service: Service, source: LogError },
    #[error("fault flags (--delay-ms, --error-status, --hang) apply to `inventory --model sync-rest` only, not to {service} of {model}")]
    FaultNotTaken { model: Model, service: Service },
    #[error("--menu: {0}")]
    Menu(crate::domain::ValidationError),
    #[error("serving {service}: {source}")]
    Io { service: Service, source: std::io::Error },
}

/// The service `config` names, built on `host`: the one door, for a process and for the lab's
/// simulated world alike. Every service comes out of it the same way: its queue or log
/// counted, and its metrics at `GET /metrics`, every request timed; its calls, publishes and
/// requests traced if its host's tracer is on ([`crate::telemetry`]).
pub async fn build(config: &ServiceConfig, host: &Host) -> Result<Built, BuildError> {
    if !Service::of(config.model).contains(&config.service) {
        return Err(BuildError::NoSuchService { model: config.model, service: config.service });
    }
    let host = &host.counted().traced();
    let built = match config.model {
        Model::SyncRest => crate::sync_rest::build(config, host),
        Model::AsyncRabbitmq => crate::async_rabbitmq::build(config, host).await,
        Model::StreamingKafka => crate::streaming_kafka::build(config, host),
    }?;
    let app = crate::telemetry::trace_http::traced(built.app, &host.tracer);
    Ok(Built { app: host.metrics.expose(app), ..built })
}

/// Runs the service `config` names until a signal (or until one of its loops ends, which is an
/// error), suffering `faults` from the start if it takes faults (Part A's Inventory, which also
/// answers its loopback-only `/admin/fault`); any other service refuses a fault.
pub async fn run(config: ServiceConfig, faults: FaultPlan) -> Result<(), ServeError> {
    run_with(config, faults, |host| host).await
}

/// [`run`], the process's host first handed to `adapt` (the lab's `campus-sim serve` wraps its
/// transport in the crashes `explore --real-brokers` plays, and switches a safeguard off for a
/// `--break`; the `campus` binary adapts nothing).
pub async fn run_with(config: ServiceConfig, faults: FaultPlan, adapt: impl FnOnce(Host) -> Host) -> Result<(), ServeError> {
    let service = config.service;
    if !Service::of(config.model).contains(&service) {
        return Err(BuildError::NoSuchService { model: config.model, service }.into());
    }
    let faultable = faults::takes_faults(config.model, service);
    if !faults.is_healthy() && !faultable {
        return Err(ServeError::FaultNotTaken { model: config.model, service });
    }
    if !faults.is_healthy() {
        tracing::info!(fault = %faults, "inventory runs with an injected fault");
    }
    let switch = FaultSwitch::new(faults);
    // An empty CAMPUS_MENU (a compose file passing the variable through unset) adds nothing.
    let extra: Vec<String> = config.menu.iter().filter(|item| !item.is_empty()).cloned().collect();
    if !extra.is_empty() {
        crate::domain::widen_menu(&extra).map_err(ServeError::Menu)?;
        tracing::info!(items = %extra.join(","), "menu widened");
    }
    // Spans are made when there is somewhere to put them: written to the trace file as each
    // ends, posted to a collector every second and once more when the process stops.
    let export = trace::Export::from_env(config.trace_file.clone());
    let spans = SpanSink::exporting(&export).map_err(|source| ServeError::Io { service, source })?;
    let tracer = if export.is_none() { Tracer::off() } else { Tracer::new(service, Arc::new(std::time::SystemTime::now), &spans) };
    let host = adapt(Host { tracer, ..real_host(&config).await? });
    let built = build(&config, &host).await?;
    let posting = export.endpoint.clone().map(|endpoint| {
        let spans = spans.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                spans.post(&endpoint).await;
            }
        })
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut loops = tokio::task::JoinSet::new();
    for each in built.loops {
        let (name, stopped) = (each.name, stopped.clone());
        loops.spawn(async move { (name, each.run(stopped).await) });
    }
    let served = {
        // The first loop to end ends the service: a loop ends only when asked to.
        let work = async {
            match loops.join_next().await {
                Some(Ok((name, Ok(())))) => Err(ServeError::LoopEnded { service, name }),
                Some(Ok((name, Err(source)))) => Err(ServeError::LoopFailed { service, name, source }),
                Some(Err(_panicked)) => Err(ServeError::LoopEnded { service, name: "a" }),
                None => std::future::pending().await,
            }
        };
        let app = if faultable { faults::switchable(built.app, &switch) } else { built.app };
        listen(&config, app, work).await
    };
    // A signal: every loop finishes what it is doing (a consumer leaves its group, so that a
    // replay can reset it now).
    let _ = stop.send(true);
    while let Some(done) = loops.join_next().await {
        if let Ok((name, Err(e))) = done {
            tracing::warn!(error = %e, "{service}'s {name} loop did not stop cleanly");
        }
    }
    if let (Some(posting), Some(endpoint)) = (posting, &export.endpoint) {
        posting.abort();
        spans.post(endpoint).await;
    }
    served
}

/// What a process gives its service: the transport its flags name (connected, for Part C:
/// waiting while Kafka is away), its store where its flags say, the wall clock, random ids and
/// jitter, every safeguard.
async fn real_host(config: &ServiceConfig) -> Result<Host, ServeError> {
    let service = config.service;
    let policy = Policy::production();
    let transport = match config.model {
        Model::SyncRest => Transport::RequestReply(Arc::new(HttpRequestReply::new([
            (Service::Inventory, config.inventory_url.clone()),
            (Service::Notification, config.notification_url.clone()),
        ]))),
        // Connects when it can: a service started while the broker is down starts anyway.
        Model::AsyncRabbitmq => {
            let mq: Arc<dyn MessageQueue> = Arc::new(AmqpQueue::new(&config.amqp_url, Topology::new(&config.namespace), Backoff::random()));
            Transport::Queue(mq)
        }
        Model::StreamingKafka => {
            let mut backoff = policy.backoff("kafka");
            let kafka = policy
                .until_ok(&mut backoff, "connecting to Kafka", LogError::is_transient, || {
                    Box::pin(KafkaLog::connect_with(&config.kafka_bootstrap, &config.namespace, config.partitions))
                })
                .await
                .map_err(|source| ServeError::Log { service, source })?;
            // A scaled-out Inventory: a dead member's open transaction holds its partitions
            // back until the broker aborts it.
            let kafka = match (service, &config.instance) {
                (Service::Inventory, Some(_)) => {
                    kafka.with_transaction_timeout(crate::streaming_kafka::partitioned::MEMBER_TRANSACTION_TIMEOUT)
                }
                _ => kafka,
            };
            let log: Arc<dyn EventLog> = Arc::new(kafka);
            Transport::Log(log)
        }
    };
    // A shared store is waited for like a broker: the service needs it to do anything at all.
    let storage = match (&config.store, config.model) {
        (Some(url), Model::AsyncRabbitmq) => {
            let mut backoff = policy.backoff("postgres");
            let connect = || Postgres::connect(url, &config.namespace);
            let pg = policy
                .until_ok(&mut backoff, "connecting to PostgreSQL", StoreError::is_transient, connect)
                .await
                .map_err(|source| ServeError::Store { service, source })?;
            Storage::Postgres(pg)
        }
        _ => Storage::Files(config.data_dir.clone()),
    };
    Ok(Host {
        transport,
        storage,
        clock: EventClock::Wall,
        ids: OrderIds::Random,
        jitter_seed: None,
        safeguards: Safeguards::ALL,
        metrics: ServiceMetrics::new(),
        tracer: Tracer::off(),
    })
}

/// Binds, prints the READY line, serves `app` until a signal or until `work` ends.
async fn listen(args: &ServiceConfig, app: Router, work: impl Future<Output = Result<(), ServeError>>) -> Result<(), ServeError> {
    let service = args.service;
    let addr = SocketAddr::new(args.host, args.port.unwrap_or(service.default_port()));
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback");
    }
    let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { service, addr, source })?;
    let io = |source| ServeError::Io { service, source };
    let bound = listener.local_addr().map_err(io)?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "READY {service} http://{bound}").map_err(io)?;
        stdout.flush().map_err(io)?;
    }
    tokio::select! {
        served = serve(listener, app, shutdown_signal()) => served.map_err(io),
        worked = work => worked,
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
