//! Where Part C runs: its three services — the producer, Inventory, Analytics — as tasks over
//! the world's `SimLog` in virtual time, or as `campus-sim serve … --model streaming-kafka`
//! processes over fresh topics of a real Apache Kafka. Both are wired by
//! `campus::streaming_kafka`. The experiments see only this type: they feed the
//! producer, crash or stop and start the consumers, reset Analytics' group, take the broker
//! away, and read the log through the lab's own client (never through Inventory).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use campus::domain::OrderPlaced;
use campus::retry::Policy;
use campus::services::analytics::Analytics;
use campus::services::inventory::Inventory;
use campus::services::EventClock;
use campus::store::InventoryStats;
use campus::streaming_kafka::api::{BulkAppended, MetricsReport, MAX_BULK};
use campus::streaming_kafka::consumers::{self, InventoryConfig, InventoryView, Writes, ANALYTICS_GROUP, INVENTORY_GROUP};
use campus::streaming_kafka::partitioned::{self, ShardsView};
use campus::streaming_kafka::producer::Producer;
use campus::streaming_kafka::{self as wiring, Consumer};
use campus::transport::http::HttpRequestReply;
use campus::transport::kafka::KafkaLog;
use campus::transport::log::{EventLog, LogError, Topic};
use campus::transport::RequestReply;
use campus::Model;
use campus::Service;

use super::Config;
use crate::client::{get_json, post_json};
use crate::real::{Broker, BrokerHost, BrokerOutage, ServiceProcess};
use crate::world::World;
use crate::Mode;

/// How long the simulated group coordinator waits before it evicts a member that died (the
/// services' `session.timeout.ms` on Kafka).
const SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6);

/// Part C's services, running. Every method takes `&self`, so that an experiment can crash or
/// restart a service, or the broker, while the producer is appending.
pub struct Deployment<'w> {
    /// The lab's own client of the log: lag, the decisions a reader that is not Inventory
    /// sees, the dead letters.
    log: Arc<dyn EventLog>,
    stock: u32,
    batch: usize,
    /// How long the clients of a lost broker node are without a broker (simulation).
    node_failover: std::time::Duration,
    /// The producer's front door (held apart from the rest, so that appending never waits
    /// for a restart).
    producer: Front,
    kind: tokio::sync::Mutex<Kind<'w>>,
}

enum Front {
    Sim(Arc<Producer>),
    Real(Arc<dyn RequestReply>),
}

enum Kind<'w> {
    Sim(SimParts<'w>),
    Real(Box<RealParts>),
}

struct SimParts<'w> {
    world: &'w World,
    policy: Policy,
    idle_watermarks: Option<Consumer>,
    view: InventoryView,
    inventory: Option<Consumer>,
    /// Scaled-out Inventory instances (`scale-out`), by index; `None` once killed.
    instances: Vec<Option<Consumer>>,
    /// Their shards, by index.
    instance_views: Vec<ShardsView>,
    analytics_state: Arc<Mutex<Analytics>>,
    analytics: Option<Consumer>,
}

struct RealParts {
    exe: PathBuf,
    kafka: Arc<KafkaLog>,
    /// Where Kafka runs (how it is killed and started, where its tools are).
    brokers: BrokerHost,
    common: Vec<String>,
    producer: ServiceProcess,
    inventory: Option<ServiceProcess>,
    /// Scaled-out Inventory instances (`scale-out`), by index; `None` once killed.
    instances: Vec<Option<ServiceProcess>>,
    analytics: Option<ServiceProcess>,
    http: Arc<dyn RequestReply>,
    /// Kafka while the lab has it killed (restarted on drop, whatever happens).
    outage: Option<BrokerOutage>,
}

impl<'w> Deployment<'w> {
    /// The producer and Inventory as tasks of `world` (Analytics starts when an experiment
    /// asks), over the world's log.
    pub fn sim(world: &'w World, config: &Config) -> Self {
        Deployment::sim_partitioned(world, config, campus::transport::log::PARTITIONS)
    }

    /// The same over a log of `partitions` partitions per topic.
    pub fn sim_partitioned(world: &'w World, config: &Config, partitions: u32) -> Self {
        let log = world.log_with(partitions);
        let policy = world.policy(true);
        let (producer, idle) = wiring::producer(log.clone(), EventClock::Since(tokio::time::Instant::now()), policy);
        let view = Arc::new(Mutex::new(Inventory::with_stock(config.stock)));
        let parts = SimParts {
            world,
            policy,
            idle_watermarks: Some(idle),
            view,
            inventory: None,
            instances: Vec::new(),
            instance_views: Vec::new(),
            analytics_state: Arc::new(Mutex::new(Analytics::default())),
            analytics: None,
        };
        Deployment {
            log,
            stock: config.stock,
            batch: config.batch,
            node_failover: config.node_failover,
            producer: Front::Sim(producer),
            kind: tokio::sync::Mutex::new(Kind::Sim(parts)),
        }
    }

    /// The producer as a `campus-sim serve producer` process over fresh topics
    /// (`campus-sim.<experiment>.<pid>.<ms>.*`) of the Kafka at `bootstrap`.
    pub async fn real(config: &Config, exe: &Path, bootstrap: &str, experiment: &str) -> anyhow::Result<Deployment<'static>> {
        Deployment::real_partitioned(config, exe, bootstrap, experiment, campus::transport::log::PARTITIONS).await
    }

    /// The same over topics of `partitions` partitions.
    pub async fn real_partitioned(
        config: &Config,
        exe: &Path,
        bootstrap: &str,
        experiment: &str,
        partitions: u32,
    ) -> anyhow::Result<Deployment<'static>> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let namespace = format!("campus-sim.{experiment}.{}.{stamp}", std::process::id());
        let kafka = KafkaLog::connect_with(bootstrap, &namespace, partitions).await.with_context(|| {
            format!("Kafka is not reachable at {bootstrap}; {} (or set KAFKA_BOOTSTRAP_SERVERS)", config.brokers.how_to_start("kafka"))
        })?;
        crate::progress::step(&format!("{experiment}: topics {namespace}.*"));
        let kafka = Arc::new(kafka);
        let (batch, stock, partitions) = (config.batch.to_string(), config.stock.to_string(), partitions.to_string());
        let common: Vec<String> = [
            "--port",
            "0",
            "--kafka-bootstrap",
            bootstrap,
            "--namespace",
            &namespace,
            "--batch",
            &batch,
            "--stock",
            &stock,
            "--partitions",
            &partitions,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let producer = ServiceProcess::spawn(exe, "producer", Model::StreamingKafka, &common).await?;
        let http: Arc<dyn RequestReply> = Arc::new(HttpRequestReply::new([(Service::Producer, producer.url().to_owned())]));
        let parts = RealParts {
            exe: exe.to_owned(),
            kafka: kafka.clone(),
            brokers: config.brokers,
            common,
            producer,
            inventory: None,
            instances: Vec::new(),
            analytics: None,
            http: http.clone(),
            outage: None,
        };
        let kind = tokio::sync::Mutex::new(Kind::Real(Box::new(parts)));
        Ok(Deployment {
            log: kafka,
            stock: config.stock,
            batch: config.batch,
            node_failover: config.node_failover,
            producer: Front::Real(http),
            kind,
        })
    }

    pub fn mode(&self) -> Mode {
        match self.producer {
            Front::Sim(_) => Mode::Sim,
            Front::Real(_) => Mode::Real,
        }
    }

    /// The lab's own client of the log.
    pub fn log(&self) -> Arc<dyn EventLog> {
        self.log.clone()
    }

    /// Hands `events` to the producer (real: `POST /orders`), which appends them and a
    /// watermark on every partition; returns once the log acknowledged them.
    pub async fn produce(&self, events: &[OrderPlaced]) -> anyhow::Result<()> {
        match &self.producer {
            Front::Sim(producer) => {
                producer.append(events.to_vec()).await?;
            }
            Front::Real(http) => {
                for chunk in events.chunks(MAX_BULK) {
                    let reply: BulkAppended = post_json(http.as_ref(), Service::Producer, "/orders", &chunk).await?;
                    if reply.appended != chunk.len() {
                        bail!("the producer appended {} of {} events", reply.appended, chunk.len());
                    }
                }
            }
        }
        Ok(())
    }

    /// Inventory starts (a new instance: it restores its state from the changelog).
    pub async fn start_inventory(&self) -> anyhow::Result<()> {
        let config = InventoryConfig { stock: self.stock, batch: self.batch, writes: Writes::Transactional };
        match &mut *self.kind.lock().await {
            Kind::Sim(s) => s.inventory = Some(wiring::inventory(self.log.clone(), s.view.clone(), config, s.policy)),
            Kind::Real(r) => {
                let process = ServiceProcess::spawn(&r.exe, "inventory", Model::StreamingKafka, &r.common).await?;
                r.inventory = Some(process);
                r.rewire();
            }
        }
        Ok(())
    }

    /// Inventory dies where it stands (sim: its task aborted, its memory gone, its member
    /// evicted after the session timeout; real: SIGKILL, and Kafka evicts it).
    pub async fn kill_inventory(&self) -> anyhow::Result<()> {
        let (world, consumer) = match &mut *self.kind.lock().await {
            Kind::Sim(s) => {
                *s.view.lock().expect("inventory lock") = Inventory::with_stock(self.stock);
                (s.world, s.inventory.take())
            }
            Kind::Real(r) => {
                if let Some(mut process) = r.inventory.take() {
                    process.kill().await?;
                }
                return Ok(());
            }
        };
        if let Some(consumer) = consumer {
            consumer.abort().await;
        }
        // As Kafka's coordinator does with a member that stopped heartbeating.
        tokio::time::sleep(SESSION_TIMEOUT).await;
        world.log().evict_group(INVENTORY_GROUP);
        Ok(())
    }

    /// `n` scaled-out Inventory instances start together (named 0 to n-1), members of
    /// Inventory's group; each decides the partitions it is assigned, each partition with
    /// `--stock` of its own (real: `serve inventory --instance <i>` processes).
    pub async fn start_instances(&self, n: usize) -> anyhow::Result<()> {
        let config = InventoryConfig { stock: self.stock, batch: self.batch, writes: Writes::Transactional };
        match &mut *self.kind.lock().await {
            Kind::Sim(s) => {
                s.instance_views = (0..n).map(|_| ShardsView::default()).collect();
                s.instances = s
                    .instance_views
                    .iter()
                    .enumerate()
                    .map(|(i, view)| Some(wiring::partitioned_inventory(self.log.clone(), view.clone(), config, &i.to_string(), s.policy)))
                    .collect();
            }
            Kind::Real(r) => {
                for i in 0..n {
                    let mut args = r.common.clone();
                    args.extend(["--instance".to_owned(), i.to_string()]);
                    r.instances.push(Some(ServiceProcess::spawn(&r.exe, "inventory", Model::StreamingKafka, &args).await?));
                }
            }
        }
        Ok(())
    }

    /// The running instance with the most work still ahead of it: the most `order-events`
    /// records not yet committed in the partitions it holds a shard of. A member makes a
    /// partition's shard when it first reads from it, so all of them may hold only drained
    /// partitions while their others wait: then the one with the most decisions (it holds
    /// partitions, it is not idle). None if no instance has decided anything.
    pub async fn busiest_instance(&self) -> anyhow::Result<Option<usize>> {
        let ends = self.log.end_offsets(Topic::OrderEvents).await?;
        let committed = self.log.committed(INVENTORY_GROUP, Topic::OrderEvents).await?;
        let left = |partitions: &[u32]| {
            partitions
                .iter()
                .map(|&p| ends.get(p as usize).zip(committed.get(p as usize)).map_or(0, |(e, c)| e.saturating_sub(*c)))
                .sum::<u64>()
        };
        let decided = |s: &InventoryStats| s.reserved + s.failed;
        // (instance, records left in its partitions, decisions)
        let mut work = Vec::new();
        let urls: Vec<Option<String>> = match &*self.kind.lock().await {
            Kind::Sim(s) => {
                for (i, (consumer, view)) in s.instances.iter().zip(&s.instance_views).enumerate() {
                    if consumer.is_some() {
                        let stats = partitioned::stats(&view.lock().expect("shards lock"), self.stock);
                        work.push((i, left(&stats.partitions), decided(&stats)));
                    }
                }
                Vec::new()
            }
            Kind::Real(r) => r.instances.iter().map(|p| p.as_ref().map(|p| p.url().to_owned())).collect(),
        };
        for (i, url) in urls.into_iter().enumerate() {
            let Some(url) = url else { continue };
            let http = HttpRequestReply::new([(Service::Inventory, url)]);
            let stats = get_json::<InventoryStats>(&http, Service::Inventory, "/stats").await?;
            work.push((i, left(&stats.partitions), decided(&stats)));
        }
        let most = |key: fn(&(usize, u64, u64)) -> u64| {
            work.iter().filter(|w| key(w) > 0).max_by_key(|w| (key(w), std::cmp::Reverse(w.0))).map(|w| w.0)
        };
        Ok(most(|w| w.1).or_else(|| most(|w| w.2)))
    }

    /// Instance `i` dies where it stands (sim: its task aborted; the group evicts it once it
    /// has been silent for the session timeout, in the background; real: SIGKILL, and Kafka
    /// evicts it after `session.timeout.ms`). Returns at once: the others go on meanwhile.
    pub async fn kill_instance(&self, i: usize) -> anyhow::Result<()> {
        match &mut *self.kind.lock().await {
            Kind::Sim(s) => {
                if let Some(consumer) = s.instances.get_mut(i).and_then(Option::take) {
                    consumer.abort().await;
                    let log = s.world.log();
                    tokio::spawn(async move {
                        tokio::time::sleep(SESSION_TIMEOUT).await;
                        log.evict_silent(INVENTORY_GROUP, SESSION_TIMEOUT);
                    });
                }
            }
            Kind::Real(r) => {
                if let Some(mut process) = r.instances.get_mut(i).and_then(Option::take) {
                    process.kill().await?;
                }
            }
        }
        Ok(())
    }

    /// Analytics starts with an empty state (real: a new process), reading on from its
    /// group's committed offsets, at most `throttle` records per second if given.
    pub async fn start_analytics(&self, throttle: Option<u32>) -> anyhow::Result<()> {
        match &mut *self.kind.lock().await {
            Kind::Sim(s) => {
                s.analytics_state = Arc::new(Mutex::new(Analytics::default()));
                s.analytics =
                    Some(wiring::analytics(self.log.clone(), ANALYTICS_GROUP, s.analytics_state.clone(), self.batch, throttle, s.policy));
            }
            Kind::Real(r) => {
                let mut args = r.common.clone();
                if let Some(rate) = throttle {
                    args.extend(["--throttle-per-s".to_owned(), rate.to_string()]);
                }
                r.analytics = Some(ServiceProcess::spawn(&r.exe, "analytics", Model::StreamingKafka, &args).await?);
                r.rewire();
            }
        }
        Ok(())
    }

    /// Analytics stops cleanly (real: SIGTERM), leaving its group.
    pub async fn stop_analytics(&self) -> anyhow::Result<()> {
        match &mut *self.kind.lock().await {
            Kind::Sim(s) => {
                if let Some(consumer) = s.analytics.take() {
                    consumer.stop().await.context("stopping analytics")?;
                }
            }
            Kind::Real(r) => {
                if let Some(mut process) = r.analytics.take() {
                    process.terminate().await?;
                }
            }
        }
        Ok(())
    }

    /// Each running service process's name and pid (none in the simulation).
    pub async fn pids(&self) -> Vec<(String, u32)> {
        match &*self.kind.lock().await {
            Kind::Real(r) => std::iter::once(&r.producer)
                .chain(r.inventory.iter())
                .chain(r.instances.iter().flatten())
                .chain(r.analytics.iter())
                .filter_map(ServiceProcess::pid)
                .collect(),
            Kind::Sim(_) => Vec::new(),
        }
    }

    /// Analytics' metrics so far (real: `GET /metrics`).
    pub async fn metrics(&self) -> anyhow::Result<MetricsReport> {
        let http = match &*self.kind.lock().await {
            Kind::Sim(s) => return Ok(MetricsReport::of(&s.analytics_state.lock().expect("analytics lock"))),
            Kind::Real(r) => r.http.clone(),
        };
        get_json(http.as_ref(), Service::Analytics, "/metrics").await
    }

    /// Inventory's accounting (real: `GET /stats`).
    pub async fn inventory_stats(&self) -> anyhow::Result<InventoryStats> {
        let http = match &*self.kind.lock().await {
            Kind::Sim(s) => return Ok(consumers::stats(&s.view.lock().expect("inventory lock"), self.stock)),
            Kind::Real(r) => r.http.clone(),
        };
        get_json(http.as_ref(), Service::Inventory, "/stats").await
    }

    /// Sets Analytics' group back to the beginning of both topics while it has no member, the
    /// way a user does: sim through the log; real with Kafka's own `kafka-consumer-groups.sh
    /// --reset-offsets --to-earliest --execute`. Returns the command (for the report).
    pub async fn reset_analytics(&self) -> anyhow::Result<String> {
        let kafka = match &*self.kind.lock().await {
            Kind::Sim(_) => None,
            Kind::Real(r) => Some((r.kafka.clone(), r.brokers)),
        };
        match kafka {
            None => {
                self.log.reset_to_beginning(ANALYTICS_GROUP, &Topic::EVENTS).await?;
                Ok(format!("SimLog::reset_to_beginning({ANALYTICS_GROUP:?}, order-events, inventory-events)"))
            }
            Some((kafka, host)) => {
                let mut args = vec!["--group".to_owned(), kafka.group_id(ANALYTICS_GROUP)];
                args.extend(["--reset-offsets", "--to-earliest", "--execute"].map(str::to_owned));
                for topic in Topic::EVENTS {
                    args.extend(["--topic".to_owned(), kafka.topic_name(topic)]);
                }
                let (mut tool, shown) = host.kafka_consumer_groups(kafka.bootstrap(), &args)?;
                let output = tool.output().await.with_context(|| format!("running {shown}"))?;
                if !output.status.success() {
                    bail!("{shown} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
                }
                // The tool prints "Error: Assignments can only be reset if the group is
                // inactive" and exits 0 when the group still has members.
                let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
                if said.contains("Error") {
                    return Err(LogError::GroupActive { group: ANALYTICS_GROUP.into() }).context(said.trim().to_owned());
                }
                Ok(shown)
            }
        }
    }

    /// The broker goes away (sim: the world's outage; real: SIGKILL of the Kafka JVM).
    pub async fn stop_broker(&self) -> anyhow::Result<()> {
        match &mut *self.kind.lock().await {
            Kind::Sim(s) => s.world.set_broker(false),
            Kind::Real(r) => r.outage = Some(BrokerOutage::begin(Broker::Kafka, r.brokers).await?),
        }
        Ok(())
    }

    /// Broker 1 of the cluster dies (sim: the world's node loss, `node_failover` for its
    /// clients; real: `scripts/brokers.sh kill kafka-node 1`).
    pub async fn lose_node(&self) -> anyhow::Result<()> {
        match &mut *self.kind.lock().await {
            Kind::Sim(s) => s.world.lose_node(self.node_failover),
            Kind::Real(r) => r.outage = Some(BrokerOutage::begin(Broker::KafkaNode(1), r.brokers).await?),
        }
        Ok(())
    }

    /// The lost broker starts again and rejoins (real: `scripts/brokers.sh up --cluster kafka`,
    /// until it serves); its clients failed over already: in the simulation nothing changes.
    pub async fn restore_node(&self) -> anyhow::Result<()> {
        let outage = match &mut *self.kind.lock().await {
            Kind::Sim(_) => None,
            Kind::Real(r) => r.outage.take(),
        };
        if let Some(outage) = outage {
            outage.end().await?;
        }
        Ok(())
    }

    /// The broker comes back (real: `scripts/brokers.sh up kafka`, until it serves).
    pub async fn start_broker(&self) -> anyhow::Result<()> {
        // Out of the lock: a real broker takes seconds to come back, and the experiment reads
        // the services meanwhile.
        let outage = match &mut *self.kind.lock().await {
            Kind::Sim(s) => {
                s.world.set_broker(true);
                None
            }
            Kind::Real(r) => r.outage.take(),
        };
        if let Some(outage) = outage {
            outage.end().await?;
        }
        Ok(())
    }

    /// Stops every service and, in real mode, starts the broker again if an experiment left
    /// it dead and deletes the run's topics.
    pub async fn teardown(self) {
        match self.kind.into_inner() {
            Kind::Sim(s) => {
                for consumer in [s.analytics, s.inventory, s.idle_watermarks].into_iter().chain(s.instances).flatten() {
                    consumer.abort().await;
                }
            }
            Kind::Real(mut r) => {
                let instances = r.instances.iter_mut().map(Option::as_mut);
                for process in [r.analytics.as_mut(), r.inventory.as_mut(), Some(&mut r.producer)].into_iter().chain(instances).flatten() {
                    if let Err(e) = process.kill().await {
                        tracing::warn!(error = %e, "stopping a service");
                    }
                }
                if let Some(outage) = r.outage.take() {
                    if let Err(e) = outage.end().await {
                        tracing::error!(error = %e, "could not start Kafka again");
                    }
                }
                if let Err(e) = r.kafka.delete_topics().await {
                    tracing::warn!(error = %e, "could not delete the run's topics");
                }
            }
        }
    }
}

impl RealParts {
    /// The HTTP client, pointed at the services that run now.
    fn rewire(&mut self) {
        let mut bases = vec![(Service::Producer, self.producer.url().to_owned())];
        bases.extend(self.inventory.as_ref().map(|p| (Service::Inventory, p.url().to_owned())));
        bases.extend(self.analytics.as_ref().map(|p| (Service::Analytics, p.url().to_owned())));
        self.http = Arc::new(HttpRequestReply::new(bases));
    }
}
