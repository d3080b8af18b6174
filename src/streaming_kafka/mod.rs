//! Part C, streaming: its services wired over an [`EventLog`], and what belongs to the log
//! alone: Inventory's and Analytics' consumers ([`consumers`]), the event-time merge
//! ([`merge`]), Inventory's changelog ([`changelog`]), scaled-out Inventory members
//! ([`partitioned`]), the watch that replaces a consumer whose fetches went silent ([`stall`]),
//! the producer ([`producer`]) and their HTTP faces ([`api`]).
//!
//! Part C's services: the producer, and Inventory and Analytics as consumer tasks on an
//! [`EventLog`], each with the switch that stops it (it then leaves its group).

pub mod api;
pub mod changelog;
pub mod consumers;
pub mod merge;
pub mod partitioned;
pub mod producer;
pub mod stall;

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ServiceConfig;
use crate::host::{BuildError, Built, Host, Loop, LoopError, Transport};
use crate::model::{Model, Service};
use crate::retry::Policy;
use crate::services::analytics::{Analytics, Counting};
use crate::services::EventClock;
use crate::telemetry::{self, stats, Sample, Tracer};
use crate::transport::log::Topic;
use crate::transport::log::{EventLog, LogError};
use consumers::{InventoryConfig, InventoryView, Writes, ANALYTICS_GROUP, INVENTORY_GROUP};
use partitioned::ShardsView;
use producer::Producer;

/// A running consumer and the switch that stops it.
pub struct Consumer {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), LogError>>,
}

/// Why a consumer did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("the consumer task panicked or was aborted: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Consumer {
    fn spawn(work: impl FnOnce(watch::Receiver<bool>) -> futures_lite::future::Boxed<Result<(), LogError>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        Consumer { stop, task: tokio::spawn(work(stopped)) }
    }

    /// Asks the consumer to stop (it leaves its group) and waits for it.
    pub async fn stop(self) -> Result<(), ConsumerError> {
        let _ = self.stop.send(true);
        Ok(self.task.await??)
    }

    /// Asks the consumer to stop without waiting: it finishes the batch it is in.
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Kills the task where it stands (a crash: nothing more is committed, the group keeps the
    /// member until the log evicts it).
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// The task, to await its end.
    pub fn finished(&mut self) -> &mut JoinHandle<Result<(), LogError>> {
        &mut self.task
    }
}

/// The producer, and its idle-watermark task (stopped like a consumer).
pub fn producer(log: Arc<dyn EventLog>, clock: EventClock, policy: Policy) -> (Arc<Producer>, Consumer) {
    let producer = Arc::new(Producer::new(log, clock, policy));
    let idle = producer.clone();
    (producer, Consumer::spawn(move |stopped| Box::pin(async move { idle.run_idle_watermarks(stopped).await })))
}

/// Inventory: restores its state into `view` from the changelog, then decides each
/// `OrderPlaced` in event-time order, writing each batch's results in one transaction.
pub fn inventory(log: Arc<dyn EventLog>, view: InventoryView, config: InventoryConfig, policy: Policy) -> Consumer {
    Consumer::spawn(move |stopped| Box::pin(consumers::run_inventory(log, view, config, policy, Tracer::off(), stopped)))
}

/// Analytics in `group`: reads both topics into `state`, at most `throttle` records per second.
pub fn analytics(log: Arc<dyn EventLog>, group: &str, state: Counting, batch: usize, throttle: Option<u32>, policy: Policy) -> Consumer {
    let group = group.to_owned();
    Consumer::spawn(move |stopped| {
        Box::pin(async move { consumers::run_analytics(log, &group, state, batch, throttle, policy, Tracer::off(), stopped).await })
    })
}

/// One scaled-out Inventory instance named `instance`: a member of Inventory's group that
/// decides the partitions it is assigned, each with its own stock, into `view`.
pub fn partitioned_inventory(
    log: Arc<dyn EventLog>,
    view: ShardsView,
    config: InventoryConfig,
    instance: &str,
    policy: Policy,
) -> Consumer {
    let instance = instance.to_owned();
    Consumer::spawn(move |stopped| Box::pin(partitioned::run(log, view, config, instance, policy, Tracer::off(), stopped)))
}

/// A Part C service as `config` says, on `host`, over the host's log: the producer (its face,
/// and the watermarks it appends while idle); Inventory (one deciding every partition, or the
/// scaled-out member `--instance` names), restoring from its changelog; Analytics (and, with
/// `--metrics-file`, the file it writes its metrics to every second and once more when it
/// stops).
pub fn build(config: &ServiceConfig, host: &Host) -> Result<Built, BuildError> {
    let service = config.service;
    let Transport::Log(log) = &host.transport else { return Err(BuildError::Transport { service, needs: "an event log" }) };
    let (log, policy, batch, tracer) = (log.clone(), host.policy(), config.batch as usize, host.tracer.clone());
    let writes = if host.safeguards.transactional { Writes::Transactional } else { Writes::Separate };
    let inventory_config = InventoryConfig { stock: config.stock, batch, writes };
    let (app, run) = match service {
        Service::Producer => {
            let producer = Arc::new(Producer::new(log, host.clock, policy));
            let counted = producer.clone();
            host.metrics.source(move || Box::pin(std::future::ready(vec![stats::accepted(counted.orders_appended())])));
            let app = api::producer_app(producer.clone(), host.ids.clone());
            (app, Loop::new("watermarks", move |stop| async move { producer.run_idle_watermarks(stop).await }))
        }
        Service::Inventory => match &config.instance {
            Some(instance) => {
                let (view, instance) = (ShardsView::default(), instance.clone());
                let (counted, stock) = (view.clone(), config.stock);
                host.metrics.source(move || {
                    Box::pin(std::future::ready(stats::inventory(&partitioned::stats(&counted.lock().expect("shards lock"), stock))))
                });
                telemetry::log::report_lag(&host.metrics, log.clone(), INVENTORY_GROUP, &[Topic::OrderEvents]);
                let app = api::partitioned_inventory_app(view.clone(), config.stock);
                (app, Loop::new("inventory", move |stop| partitioned::run(log, view, inventory_config, instance, policy, tracer, stop)))
            }
            None => {
                let view: InventoryView = Arc::new(Mutex::new(None));
                let (counted, stock) = (view.clone(), config.stock);
                host.metrics.source(move || {
                    let restored = counted.lock().expect("inventory lock");
                    Box::pin(std::future::ready(
                        restored.as_ref().map(|i| stats::inventory(&consumers::stats(i, stock))).unwrap_or_default(),
                    ))
                });
                telemetry::log::report_lag(&host.metrics, log.clone(), INVENTORY_GROUP, &[Topic::OrderEvents]);
                let app = api::inventory_app(view.clone(), config.stock);
                (app, Loop::new("inventory", move |stop| consumers::run_inventory(log, view, inventory_config, policy, tracer, stop)))
            }
        },
        Service::Analytics => {
            let state = Counting::new(host.clock);
            let counted = state.analytics.clone();
            host.metrics.source(move || Box::pin(std::future::ready(analytics_samples(&counted.lock().expect("analytics lock")))));
            telemetry::log::report_lag(&host.metrics, log.clone(), ANALYTICS_GROUP, &Topic::EVENTS);
            let (throttle, file) = (config.throttle_per_s, config.metrics_file.clone());
            let app = api::analytics_app(state.clone());
            let run = Loop::new("analytics", move |stop| async move {
                let consume = consumers::run_analytics(log, ANALYTICS_GROUP, state.clone(), batch, throttle, policy, tracer, stop);
                let Some(path) = file else { return consume.await.map_err(LoopError::from) };
                // The file follows the metrics every second, and holds the last ones once the
                // consumer has stopped.
                tokio::pin!(consume);
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    tokio::select! {
                        biased;
                        ended = &mut consume => {
                            write_metrics(&path, &state.analytics)?;
                            return ended.map_err(LoopError::from);
                        }
                        _ = tick.tick() => write_metrics(&path, &state.analytics)?,
                    }
                }
            });
            (app, run)
        }
        Service::Order | Service::Notification => return Err(BuildError::NoSuchService { model: Model::StreamingKafka, service }),
    };
    Ok(Built { service, app, loops: vec![run] })
}

/// What Analytics has counted, as Prometheus samples: the orders placed and decided it counted
/// (each once, repeats and replays absorbed) and the failure rate.
fn analytics_samples(analytics: &Analytics) -> Vec<Sample> {
    let total = analytics.metrics().total;
    let mut samples = vec![Sample::counter("campus_analytics_orders_placed", "Distinct orders Analytics counted as placed", total.orders)];
    samples.extend(stats::decided(total.reserved, total.failed));
    samples.push(Sample::gauge(
        "campus_analytics_failure_ratio",
        "Failed over decided orders Analytics counted: failed / (reserved + failed), 0 before any",
        total.failure_rate(),
    ));
    samples
}

/// Writes Analytics' metrics (JSON, as `GET /analytics` answers) to `path`, replacing it whole.
fn write_metrics(path: &std::path::Path, state: &Mutex<Analytics>) -> Result<(), LoopError> {
    let report = api::MetricsReport::of(&state.lock().expect("analytics lock"));
    let json = serde_json::to_vec_pretty(&report).expect("metrics serialize");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| LoopError::File { path: path.display().to_string(), source })
}
