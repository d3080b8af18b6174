//! Part C's topology, written once, on whichever hosts: the producer; Inventory as one instance
//! deciding every partition in event-time order, or as scaled-out members of its group;
//! Analytics, throttled or not — each with the run's stock and batch. In the simulation they
//! are the world's hosts over its `SimLog`; for real, `campus-sim serve … --model
//! streaming-kafka` processes over fresh topics of a real Apache Kafka. The producer is fed
//! through its face (`POST /orders`) and the accounts read through theirs in both.
//!
//! The experiments see only this type: they feed the producer, crash or stop and start the
//! consumers, reset Analytics' group, take the broker away, and read the log through the lab's
//! own client (never through Inventory). Every method takes `&self`, so that an experiment can
//! restart a service, or the broker, while the producer is appending.

use std::sync::Arc;

use anyhow::bail;
use campus::config::ServiceConfig;
use campus::domain::OrderPlaced;
use campus::store::InventoryStats;
use campus::streaming_kafka::api::{BulkAppended, MetricsReport, MAX_BULK};
use campus::streaming_kafka::consumers::{ANALYTICS_GROUP, INVENTORY_GROUP};
use campus::transport::log::{EventLog, Topic};
use campus::{Model, Service};

use super::Config;
use crate::client::{get_json, post_json};
use crate::hosts::{Away, Hosts};
use crate::Mode;

/// Part C's services, running.
pub struct Deployment<'w> {
    hosts: Hosts<'w>,
    stock: u32,
    batch: usize,
}

impl<'w> Deployment<'w> {
    /// Starts the producer on `hosts` (Inventory and Analytics start when an experiment asks).
    pub async fn start(hosts: Hosts<'w>, config: &Config) -> anyhow::Result<Self> {
        let d = Deployment { hosts, stock: config.stock, batch: config.batch };
        d.hosts.start(&d.config(Service::Producer), 0).await?;
        Ok(d)
    }

    /// `service`'s configuration in this deployment.
    fn config(&self, service: Service) -> ServiceConfig {
        ServiceConfig { stock: self.stock, batch: self.batch as u32, ..ServiceConfig::new(Model::StreamingKafka, service) }
    }

    pub fn mode(&self) -> Mode {
        self.hosts.mode()
    }

    /// The lab's own look at the services (in the simulation, at no cost in virtual time).
    pub fn observer(&self) -> Arc<dyn campus::transport::RequestReply> {
        self.hosts.observer()
    }

    /// The lab's own client of the log.
    pub fn log(&self) -> Arc<dyn EventLog> {
        self.hosts.log()
    }

    /// Hands `events` to the producer (`POST /orders`), which appends them and a watermark on
    /// every partition; returns once the log acknowledged them.
    pub async fn produce(&self, events: &[OrderPlaced]) -> anyhow::Result<()> {
        let producer = self.observer();
        for chunk in events.chunks(MAX_BULK) {
            let reply: BulkAppended = post_json(producer.as_ref(), Service::Producer, "/orders", &chunk).await?;
            if reply.appended != chunk.len() {
                bail!("the producer appended {} of {} events", reply.appended, chunk.len());
            }
        }
        Ok(())
    }

    /// Inventory starts (a new instance: it restores its state from the changelog).
    pub async fn start_inventory(&self) -> anyhow::Result<()> {
        self.hosts.start(&self.config(Service::Inventory), 0).await
    }

    /// Inventory dies where it stands (its memory gone); returns once its group evicted it (in
    /// the simulation after the session timeout; Kafka does it by itself).
    pub async fn kill_inventory(&self) -> anyhow::Result<()> {
        self.hosts.kill(Service::Inventory, 0).await?;
        self.hosts.await_eviction(INVENTORY_GROUP).await;
        Ok(())
    }

    /// `n` scaled-out Inventory instances start together (named 0 to n-1), members of
    /// Inventory's group; each decides the partitions it is assigned, each partition with
    /// `--stock` of its own.
    pub async fn start_instances(&self, n: usize) -> anyhow::Result<()> {
        for i in 0..n {
            self.start_member(i, &i.to_string()).await?;
        }
        Ok(())
    }

    /// Inventory as `n` instances: one (`start_inventory`), or `n` scaled out
    /// (`start_instances`).
    pub async fn start_inventories(&self, n: usize) -> anyhow::Result<()> {
        if n == 1 {
            self.start_inventory().await
        } else {
            self.start_instances(n).await
        }
    }

    /// A scaled-out Inventory member named `name` starts in slot `slot`.
    pub async fn start_member(&self, slot: usize, name: &str) -> anyhow::Result<()> {
        self.hosts.start(&ServiceConfig { instance: Some(name.to_owned()), ..self.config(Service::Inventory) }, slot).await
    }

    /// Instance `instance` of `service` dies where it stands; its group keeps the silent member
    /// until it is evicted (the caller's business).
    pub async fn kill(&self, service: Service, instance: usize) -> anyhow::Result<()> {
        self.hosts.kill(service, instance).await
    }

    /// The instances of `service` running now.
    pub fn running(&self, service: Service) -> Vec<usize> {
        self.hosts.running(service)
    }

    /// `service`'s consumers' fetches go silent (real: see [`Hosts::silence`]).
    pub fn silence(&self, service: Service) -> anyhow::Result<()> {
        self.hosts.silence(service)
    }

    /// The next instances that crashed by themselves (real only: see [`Hosts::aborted`]).
    pub async fn aborted(&self) -> Vec<(Service, usize)> {
        self.hosts.aborted().await
    }

    /// The running instance with the most work still ahead of it: the most `order-events`
    /// records not yet committed in the partitions it holds a shard of. A member makes a
    /// partition's shard when it first reads from it, so all of them may hold only drained
    /// partitions while their others wait: then the one with the most decisions (it holds
    /// partitions, it is not idle). None if no instance has decided anything.
    pub async fn busiest_instance(&self) -> anyhow::Result<Option<usize>> {
        let log = self.log();
        let ends = log.end_offsets(Topic::OrderEvents).await?;
        let committed = log.committed(INVENTORY_GROUP, Topic::OrderEvents).await?;
        let left = |partitions: &[u32]| {
            partitions
                .iter()
                .map(|&p| ends.get(p as usize).zip(committed.get(p as usize)).map_or(0, |(e, c)| e.saturating_sub(*c)))
                .sum::<u64>()
        };
        // (instance, records left in its partitions, decisions)
        let mut work = Vec::new();
        for i in self.hosts.running(Service::Inventory) {
            let stats: InventoryStats =
                get_json(self.hosts.instance(Service::Inventory, i)?.as_ref(), Service::Inventory, "/stats").await?;
            work.push((i, left(&stats.partitions), stats.reserved + stats.failed));
        }
        let most = |key: fn(&(usize, u64, u64)) -> u64| {
            work.iter().filter(|w| key(w) > 0).max_by_key(|w| (key(w), std::cmp::Reverse(w.0))).map(|w| w.0)
        };
        Ok(most(|w| w.1).or_else(|| most(|w| w.2)))
    }

    /// Instance `i` dies where it stands; its group evicts it once it has been silent for the
    /// session timeout, in the background. Returns at once: the others go on meanwhile.
    pub async fn kill_instance(&self, i: usize) -> anyhow::Result<()> {
        self.hosts.kill(Service::Inventory, i).await?;
        self.hosts.evict_later(INVENTORY_GROUP);
        Ok(())
    }

    /// Analytics starts with an empty state, reading on from its group's committed offsets, at
    /// most `throttle` records per second if given.
    pub async fn start_analytics(&self, throttle: Option<u32>) -> anyhow::Result<()> {
        self.hosts.start(&ServiceConfig { throttle_per_s: throttle, ..self.config(Service::Analytics) }, 0).await
    }

    /// Analytics stops cleanly, leaving its group.
    pub async fn stop_analytics(&self) -> anyhow::Result<()> {
        self.hosts.stop(Service::Analytics, 0).await
    }

    /// Each running service process's name and pid (none in the simulation).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.hosts.pids()
    }

    /// Analytics' metrics so far (`GET /analytics`).
    pub async fn metrics(&self) -> anyhow::Result<MetricsReport> {
        get_json(self.hosts.observer().as_ref(), Service::Analytics, "/analytics").await
    }

    /// Inventory's accounting (`GET /stats`): an error while it restores its state from the
    /// changelog (a new instance answers 503 `restoring` until then).
    pub async fn inventory_stats(&self) -> anyhow::Result<InventoryStats> {
        get_json(self.hosts.observer().as_ref(), Service::Inventory, "/stats").await
    }

    /// The same, once Inventory has restored its state: asked again every 100 ms while it does
    /// not answer, for up to `within`.
    pub async fn restored_inventory_stats(&self, within: std::time::Duration) -> anyhow::Result<InventoryStats> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.inventory_stats().await {
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "Inventory's accounts not there yet");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                answered => return answered,
            }
        }
    }

    /// Sets Analytics' group back to the beginning of both topics while it has no member, the
    /// way a user does. Returns the command (for the report).
    pub async fn reset_analytics(&self) -> anyhow::Result<String> {
        self.hosts.reset_group(ANALYTICS_GROUP, &Topic::EVENTS).await
    }

    /// The broker goes away (real: SIGKILL of the Kafka JVM).
    pub async fn stop_broker(&self) -> anyhow::Result<()> {
        self.hosts.take_away(Away::Broker).await
    }

    /// The broker comes back (real: until it serves).
    pub async fn start_broker(&self) -> anyhow::Result<()> {
        self.hosts.bring_back(Away::Broker).await
    }

    /// The broker hangs: its connections stay open and nothing answers (real: the Kafka JVM
    /// SIGSTOPped).
    pub async fn hang_broker(&self) -> anyhow::Result<()> {
        self.hosts.take_away(Away::Hang).await
    }

    /// The hung broker answers again (real: SIGCONT, then until it serves).
    pub async fn thaw_broker(&self) -> anyhow::Result<()> {
        self.hosts.bring_back(Away::Hang).await
    }

    /// Broker 1 of the cluster dies (its clients fail over after the world's node failover).
    pub async fn lose_node(&self) -> anyhow::Result<()> {
        self.hosts.take_away(Away::Node).await
    }

    /// The lost broker starts again and rejoins.
    pub async fn restore_node(&self) -> anyhow::Result<()> {
        self.hosts.bring_back(Away::Node).await
    }

    /// Stops every service and, in real mode, brings the broker back if an experiment left it
    /// dead and deletes the run's topics; the services' spans, if traced.
    pub async fn teardown(self) -> Vec<campus::telemetry::trace::Request> {
        self.hosts.teardown().await
    }
}
