//! Real hosts ([`Processes`]): each service instance a `campus-sim serve` process on a free
//! loopback port, over the real broker, in a namespace of the run's own (its queues or topics,
//! its schema, its data directory), removed at teardown.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use campus::config::ServiceConfig;
use campus::store::Postgres;
use campus::transport::amqp::AmqpQueue;
use campus::transport::http::HttpRequestReply;
use campus::transport::kafka::KafkaLog;
use campus::transport::log::{EventLog, LogError, Topic};
use campus::transport::queue::{MessageQueue, Topology};
use campus::transport::RequestReply;
use campus::{Model, Service};

use super::broker::{Broker, BrokerHost, BrokerOutage};
use super::process::ServiceProcess;
use super::Away;
use crate::client::post_json;
use campus::faults::switch::FaultBody;
use campus::faults::FaultPlan;

/// Where a run's real services find their broker and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The RabbitMQ (Part B; its first node for a cluster).
    pub amqp_url: String,
    /// The Kafka (Part C; comma-separated brokers for a cluster).
    pub bootstrap: String,
    /// Part B: the PostgreSQL every service keeps its state in (instances share it); `None`: a
    /// SQLite file per service.
    pub store: Option<String>,
    /// Part C: the partitions of each topic.
    pub partitions: u32,
    /// Where the brokers run (how one is taken away).
    pub brokers: BrokerHost,
}

impl Default for Place {
    /// The single brokers at their usual addresses, run by `scripts/brokers.sh`.
    fn default() -> Self {
        Place::new(campus::transport::amqp::DEFAULT_AMQP_URL, campus::transport::kafka::DEFAULT_BOOTSTRAP_SERVERS, BrokerHost::Script)
    }
}

impl Place {
    /// The brokers at these addresses, run where `brokers` says, the topics at their usual
    /// partitions.
    pub fn new(amqp_url: &str, bootstrap: &str, brokers: BrokerHost) -> Self {
        Place {
            amqp_url: amqp_url.into(),
            bootstrap: bootstrap.into(),
            store: None,
            partitions: campus::transport::log::PARTITIONS,
            brokers,
        }
    }
}

/// The real hosts of one run.
pub struct Processes {
    exe: PathBuf,
    model: Model,
    place: Place,
    namespace: String,
    data_dir: PathBuf,
    running: Mutex<BTreeMap<(Service, usize), ServiceProcess>>,
    /// What the run has away now (brought back on teardown, whatever happens).
    outages: Mutex<BTreeMap<Away, BrokerOutage>>,
    /// The lab's own connections: to the run's queues (Part B), its topics (Part C), its schema.
    queue: Option<Arc<AmqpQueue>>,
    log: Option<Arc<KafkaLog>>,
    pg: Option<Postgres>,
    /// Where every service appends its spans, if the run is traced.
    traces: Option<PathBuf>,
    /// The lab's faults for each service instance (`explore --real-brokers`), as flags.
    lab: Option<LabFlags>,
}

/// The lab's flags for instance `k` of a service, given the run's data directory.
pub type LabFlags = Arc<dyn Fn(Service, usize, &std::path::Path) -> Vec<String> + Send + Sync>;

impl Processes {
    /// Hosts for `experiment` of `model`, services run by `exe`: a namespace of their own
    /// (`campus-sim.<experiment>.<pid>.<ms>`), its queues or topics created on the broker
    /// `place` names, a data directory, a trace file. The stamp is unique in this process (a
    /// test binary starts the same experiment's hosts from concurrent tests: two runs sharing
    /// a namespace would share, and tear down, each other's trace file and data).
    pub async fn new(exe: &std::path::Path, model: Model, experiment: &str, place: Place) -> anyhow::Result<Processes> {
        let namespace = format!("campus-sim.{experiment}.{}.{}", std::process::id(), unique_stamp());
        let (mut queue, mut log, mut pg) = (None, None, None);
        match model {
            Model::SyncRest => {}
            Model::AsyncRabbitmq => {
                let amqp = AmqpQueue::connect(&place.amqp_url, Topology::new(&namespace)).await.with_context(|| {
                    let redacted = campus::transport::amqp::redacted(&place.amqp_url);
                    format!("RabbitMQ is not reachable at {redacted}; {} (or set AMQP_URL)", place.brokers.how_to_start("rabbitmq"))
                })?;
                queue = Some(Arc::new(amqp));
                if let Some(url) = &place.store {
                    let redacted = campus::transport::amqp::redacted(url);
                    pg = Some(Postgres::connect(url, &namespace).await.with_context(|| {
                        format!("PostgreSQL is not reachable at {redacted}; start it with `scripts/brokers.sh up postgres`")
                    })?);
                }
            }
            Model::StreamingKafka => {
                let kafka = KafkaLog::connect_with(&place.bootstrap, &namespace, place.partitions).await.with_context(|| {
                    format!(
                        "Kafka is not reachable at {}; {} (or set KAFKA_BOOTSTRAP_SERVERS)",
                        place.bootstrap,
                        place.brokers.how_to_start("kafka")
                    )
                })?;
                crate::progress::step(&format!("{experiment}: topics {namespace}.*"));
                log = Some(Arc::new(kafka));
            }
        }
        // The run's files: Part B's stores, and in every model what the lab's flags keep across
        // a process's lives (a crash's count); removed when the hosts are dropped.
        let data_dir = std::env::temp_dir().join(&namespace);
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        Ok(Processes {
            exe: exe.to_owned(),
            model,
            place,
            namespace,
            data_dir,
            running: Mutex::new(BTreeMap::new()),
            outages: Mutex::new(BTreeMap::new()),
            queue,
            log,
            pg,
            traces: None,
            lab: None,
        })
    }

    /// The same hosts, each service instance started with the lab's flags `lab` gives it.
    pub fn with_lab_flags(mut self, lab: LabFlags) -> Self {
        self.lab = Some(lab);
        self
    }

    /// The next instances that abort themselves (a lab crash), forgotten as running. The hosts
    /// own each child; its exit is looked for every 20 ms, as a supervisor's watchdog would.
    pub async fn aborted(&self) -> Vec<(Service, usize)> {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let mut running = self.lock();
            let aborted: Vec<(Service, usize)> = running.iter_mut().filter_map(|(key, p)| p.aborted().then_some(*key)).collect();
            for key in &aborted {
                running.remove(key);
            }
            if !aborted.is_empty() {
                return aborted;
            }
        }
    }

    /// The same hosts, every service tracing into one file of the run's (read back by
    /// [`Processes::teardown`]).
    pub fn traced(mut self) -> Self {
        self.traces = Some(std::env::temp_dir().join(format!("{}.traces.jsonl", self.namespace)));
        self
    }

    /// `config`, placed: a free port, the run's namespace, broker, store and data directory.
    fn placed(&self, config: &ServiceConfig) -> ServiceConfig {
        ServiceConfig {
            port: Some(0),
            amqp_url: self.place.amqp_url.clone(),
            kafka_bootstrap: self.place.bootstrap.clone(),
            store: self.place.store.clone(),
            partitions: self.place.partitions,
            namespace: self.namespace.clone(),
            data_dir: self.data_dir.clone(),
            trace_file: self.traces.clone(),
            ..config.clone()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Service, usize), ServiceProcess>> {
        self.running.lock().expect("processes lock")
    }

    pub async fn start(&self, config: &ServiceConfig, plan: &FaultPlan, instance: usize) -> anyhow::Result<()> {
        let lab = self.lab.as_ref().map(|flags| flags(config.service, instance, &self.data_dir)).unwrap_or_default();
        let process = ServiceProcess::serve(&self.exe, &self.placed(config), plan, &lab).await?;
        let old = self.lock().insert((config.service, instance), process);
        if let Some(mut old) = old {
            old.kill().await?;
        }
        Ok(())
    }

    pub async fn kill(&self, service: Service, instance: usize) -> anyhow::Result<()> {
        let process = self.lock().remove(&(service, instance));
        match process {
            Some(mut process) => process.kill().await,
            None => Ok(()),
        }
    }

    pub async fn stop(&self, service: Service, instance: usize) -> anyhow::Result<()> {
        let process = self.lock().remove(&(service, instance));
        match process {
            Some(mut process) => process.terminate().await,
            None => Ok(()),
        }
    }

    pub fn running(&self, service: Service) -> Vec<usize> {
        self.lock().keys().filter(|(s, _)| *s == service).map(|(_, k)| *k).collect()
    }

    /// HTTP to the services that run now: each service's first instance running.
    pub fn http(&self) -> Arc<dyn RequestReply> {
        let mut bases: BTreeMap<Service, String> = BTreeMap::new();
        for ((service, _), process) in self.lock().iter() {
            bases.entry(*service).or_insert_with(|| process.url().to_owned());
        }
        Arc::new(HttpRequestReply::new(bases))
    }

    /// The URL of `service`'s first instance running.
    pub fn url(&self, service: Service) -> anyhow::Result<String> {
        let running = self.lock();
        let first = running.iter().find(|((s, _), _)| *s == service);
        first.map(|(_, process)| process.url().to_owned()).with_context(|| format!("{service} does not run"))
    }

    /// HTTP to one instance of `service`.
    pub fn instance(&self, service: Service, instance: usize) -> anyhow::Result<Arc<dyn RequestReply>> {
        let url = self
            .lock()
            .get(&(service, instance))
            .map(|p| p.url().to_owned())
            .with_context(|| format!("{service} #{instance} does not run"))?;
        Ok(Arc::new(HttpRequestReply::new([(service, url)])))
    }

    /// Through the instance's loopback `/admin/fault`.
    pub async fn set_fault(&self, service: Service, instance: usize, plan: &FaultPlan) -> anyhow::Result<()> {
        let _: FaultBody = post_json(self.instance(service, instance)?.as_ref(), service, "/admin/fault", &FaultBody::of(plan)).await?;
        Ok(())
    }

    pub async fn take_away(&self, what: Away) -> anyhow::Result<()> {
        let broker = match (self.model, what) {
            (Model::AsyncRabbitmq, Away::Broker) => Broker::RabbitMq,
            (Model::AsyncRabbitmq, Away::Node) => Broker::RabbitMqNode(1),
            (Model::AsyncRabbitmq, Away::Hang) => Broker::RabbitMqHung,
            (Model::StreamingKafka, Away::Hang) => Broker::KafkaHung,
            (Model::StreamingKafka, Away::Broker) => Broker::Kafka,
            (Model::StreamingKafka, Away::Node) => Broker::KafkaNode(1),
            (Model::AsyncRabbitmq, Away::Database) if self.place.store.is_some() => Broker::Postgres,
            (_, Away::Database) => bail!(
                "the services' stores are SQLite files of their own here: there is no database to restart (PostgreSQL stores: the cluster)"
            ),
            (Model::SyncRest, _) => bail!("Part A has no broker to take away"),
        };
        let outage = BrokerOutage::begin(broker, self.place.brokers).await?;
        self.outages.lock().expect("outage lock").insert(what, outage);
        Ok(())
    }

    /// Out of any lock: a broker takes seconds to come back, and the run reads the services
    /// meanwhile.
    pub async fn bring_back(&self, what: Away) -> anyhow::Result<()> {
        let outage = self.outages.lock().expect("outage lock").remove(&what);
        match outage {
            Some(outage) => outage.end().await,
            None => Ok(()),
        }
    }

    pub fn queue(&self) -> Option<Arc<dyn MessageQueue>> {
        self.queue.clone().map(|q| q as Arc<dyn MessageQueue>)
    }

    pub fn log(&self) -> Option<Arc<dyn EventLog>> {
        self.log.clone().map(|l| l as Arc<dyn EventLog>)
    }

    /// With Kafka's own `kafka-consumer-groups.sh`, where Kafka runs.
    pub async fn reset_group(&self, group: &str, topics: &[Topic]) -> anyhow::Result<String> {
        let kafka = self.log.as_ref().context("a deployment over Kafka")?;
        let mut args = vec!["--group".to_owned(), kafka.group_id(group)];
        args.extend(["--reset-offsets", "--to-earliest", "--execute"].map(str::to_owned));
        for topic in topics {
            args.extend(["--topic".to_owned(), kafka.topic_name(*topic)]);
        }
        let (mut tool, shown) = self.place.brokers.kafka_consumer_groups(kafka.bootstrap(), &args)?;
        let output = tool.output().await.with_context(|| format!("running {shown}"))?;
        if !output.status.success() {
            bail!("{shown} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        }
        // The tool prints "Error: Assignments can only be reset if the group is inactive" and
        // exits 0 when the group still has members.
        let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        if said.contains("Error") {
            return Err(LogError::GroupActive { group: group.into() }).context(said.trim().to_owned());
        }
        Ok(shown)
    }

    pub fn storage(&self) -> campus::store::Storage {
        match &self.pg {
            Some(pg) => campus::store::Storage::Postgres(pg.clone()),
            None => campus::store::Storage::Files(self.data_dir.clone()),
        }
    }

    pub fn pids(&self) -> Vec<(String, u32)> {
        self.lock().values().filter_map(ServiceProcess::pid).collect()
    }

    /// Sends SIGUSR1 to every running instance of `service` (the lab's silence of its fetches,
    /// `--lab-silence-on-usr1`).
    pub fn signal_usr1(&self, service: Service) -> anyhow::Result<()> {
        self.lock().iter().filter(|((s, _), _)| *s == service).try_for_each(|(_, process)| process.signal("USR1"))
    }

    pub async fn teardown(self) -> Vec<campus::telemetry::trace::Request> {
        let running = std::mem::take(&mut *self.lock());
        for (_, mut process) in running {
            if let Err(e) = process.kill().await {
                tracing::warn!(error = %e, "stopping a service");
            }
        }
        let spans = match &self.traces {
            Some(path) => {
                let spans = campus::telemetry::trace::read_file(path).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading the run's spans");
                    Vec::new()
                });
                let _ = std::fs::remove_file(path);
                spans
            }
            None => Vec::new(),
        };
        let outages = std::mem::take(&mut *self.outages.lock().expect("outage lock"));
        for (what, outage) in outages {
            if let Err(e) = outage.end().await {
                tracing::error!(error = %e, ?what, "could not bring it back");
            }
        }
        if let Some(amqp) = &self.queue {
            if let Err(e) = amqp.delete_topology().await {
                tracing::warn!(error = %e, "could not delete the run's queues");
            }
            amqp.close().await;
        }
        if let Some(kafka) = &self.log {
            if let Err(e) = kafka.delete_topics().await {
                tracing::warn!(error = %e, "could not delete the run's topics");
            }
        }
        if let Some(pg) = &self.pg {
            if let Err(e) = pg.drop_schema().await {
                tracing::warn!(error = %e, "could not drop the run's schema");
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        spans
    }
}

/// Now in milliseconds since the epoch, or one more than the last stamp this process drew if
/// that is not later.
fn unique_stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let previous =
        LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(now.max(last + 1))).expect("the update always returns a value");
    now.max(previous + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_started_in_the_same_millisecond_get_stamps_of_their_own() {
        let stamps: Vec<u64> = (0..1000).map(|_| super::unique_stamp()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "every stamp later than the one before");
    }
}
