//! Part C, streaming: its services wired over an [`EventLog`], and what belongs to the log
//! alone: Inventory's and Analytics' consumers ([`consumers`]), the event-time merge
//! ([`merge`]), Inventory's changelog ([`changelog`]), scaled-out Inventory members
//! ([`partitioned`]), the producer ([`producer`]) and their HTTP faces ([`api`]).
//!
//! Part C's services: the producer, and Inventory and Analytics as consumer tasks on an
//! [`EventLog`], each with the switch that stops it (it then leaves its group).

pub mod api;
pub mod changelog;
pub mod consumers;
pub mod merge;
pub mod partitioned;
pub mod producer;

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::retry::Policy;
use crate::services::analytics::Analytics;
use crate::services::EventClock;
use crate::transport::log::{EventLog, LogError};
use consumers::{InventoryConfig, InventoryView};
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
    Consumer::spawn(move |stopped| Box::pin(consumers::run_inventory(log, view, config, policy, stopped)))
}

/// Analytics in `group`: reads both topics into `state`, at most `throttle` records per second.
pub fn analytics(
    log: Arc<dyn EventLog>,
    group: &str,
    state: Arc<Mutex<Analytics>>,
    batch: usize,
    throttle: Option<u32>,
    policy: Policy,
) -> Consumer {
    let group = group.to_owned();
    Consumer::spawn(move |stopped| {
        Box::pin(async move { consumers::run_analytics(log, &group, state, batch, throttle, policy, stopped).await })
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
    Consumer::spawn(move |stopped| Box::pin(partitioned::run(log, view, config, instance, policy, stopped)))
}
