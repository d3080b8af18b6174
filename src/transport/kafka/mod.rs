//! [`EventLog`] over a real Apache Kafka with rdkafka: topics created with [`PARTITIONS`]
//! partitions (or as many as asked, [`KafkaLog::connect_with`]) under a namespace, an
//! idempotent producer with `acks=all` and Kafka's murmur2 partitioner, consumers in groups
//! with auto-commit off (the services commit after processing) reading `read_committed`,
//! offsets read and reset through Kafka's own group coordinator, and one transactional
//! producer per writer identity (`transactional.id = <namespace>.<writer>`) for
//! [`EventLog::transact`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

mod renewing;

use renewing::Renewing;

use super::log::{ConsumerId, EventLog, Headers, LogError, Outgoing, Position, Record, Topic, PARTITIONS};
use crate::transport::BoxFuture;

/// `KAFKA_BOOTSTRAP_SERVERS` when it is not set.
pub const DEFAULT_BOOTSTRAP_SERVERS: &str = "127.0.0.1:9092";

/// How long a metadata, offset or commit request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a transaction step (init, send offsets, commit, abort) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Every consumer reads only committed transactions.
const ISOLATION: (&str, &str) = ("isolation.level", "read_committed");

fn broker(e: KafkaError) -> LogError {
    LogError::Broker(e.to_string())
}

/// An error event librdkafka queues for a reader while a broker is away (a connection to it
/// failing) and recovers from by itself: a scan reads on through it, within its deadline. On
/// the cluster, a scan while broker 1 is lost met one and failed the whole read.
fn passing(e: &KafkaError) -> bool {
    matches!(e, KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown))
}

pub struct KafkaLog {
    bootstrap: String,
    namespace: String,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Asks watermarks and metadata; belongs to no group.
    inspector: Arc<Renewing<BaseConsumer>>,
    consumers: Mutex<HashMap<ConsumerId, (String, Arc<StreamConsumer>)>>,
    /// One group-bound client per group, for reading and resetting committed offsets
    /// without joining the group.
    group_clients: Mutex<HashMap<String, Arc<Renewing<BaseConsumer>>>>,
    /// The transactional producer of each writer identity this process holds.
    writers: Mutex<HashMap<String, Arc<FutureProducer>>>,
    next_id: AtomicU64,
    /// Partitions of every topic of the namespace (as the broker has them).
    partitions: u32,
    /// How long the broker lets a transaction of ours stay open before it aborts it
    /// (`transaction.timeout.ms`): also how long a writer that died mid-transaction holds back
    /// `read_committed` readers of the partitions it wrote to.
    transaction_timeout: Duration,
}

impl KafkaLog {
    /// Connects and creates the namespace's topics with [`PARTITIONS`] partitions (if they
    /// exist already, they are kept).
    pub async fn connect(bootstrap: &str, namespace: &str) -> Result<Self, LogError> {
        KafkaLog::connect_with(bootstrap, namespace, PARTITIONS).await
    }

    /// Connects and creates the namespace's topics with `partitions` partitions each. Topics
    /// that exist already are kept as they are, and their partitions count: every process of a
    /// deployment works with whatever the first one created.
    pub async fn connect_with(bootstrap: &str, namespace: &str, partitions: u32) -> Result<Self, LogError> {
        let producer: FutureProducer = producer_config(bootstrap).set("message.timeout.ms", "30000").create().map_err(broker)?;
        let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create().map_err(broker)?;
        let owned = bootstrap.to_owned();
        let inspector = Renewing::new(move || client_config(&owned).set(ISOLATION.0, ISOLATION.1).create().map_err(broker))?;
        let mut log = KafkaLog {
            partitions,
            transaction_timeout: TRANSACTION_TIMEOUT,
            bootstrap: bootstrap.to_owned(),
            namespace: namespace.to_owned(),
            producer,
            admin,
            inspector: Arc::new(inspector),
            consumers: Mutex::new(HashMap::new()),
            group_clients: Mutex::new(HashMap::new()),
            writers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        };
        log.partitions = log.create_topics().await?;
        Ok(log)
    }

    /// The same log, its transactions aborted by the broker after `timeout` open (instead of
    /// 30 s).
    pub fn with_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    fn name(&self, topic: Topic) -> String {
        topic.name(&self.namespace)
    }

    /// The topic's name on the broker (`<namespace>.<topic>`).
    pub fn topic_name(&self, topic: Topic) -> String {
        self.name(topic)
    }

    /// The consumer group's id on the broker: groups are namespaced like the topics, so that
    /// runs sharing a broker never join each other's groups (`<namespace>.<group>`).
    pub fn group_id(&self, group: &str) -> String {
        format!("{}.{group}", self.namespace)
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn topic_of(&self, name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| self.name(*t) == name)
    }

    /// Creates the topics that do not exist yet; returns the partitions `order-events` has.
    async fn create_topics(&self) -> Result<u32, LogError> {
        let names: Vec<String> = Topic::ALL.iter().map(|t| self.name(*t)).collect();
        let topics: Vec<NewTopic<'_>> = Topic::ALL
            .iter()
            .zip(&names)
            .map(|(topic, n)| {
                // The broker's default replication (-1): 1 on the single node, 3 on the lab's
                // cluster (`default.replication.factor=3`, `min.insync.replicas=2`).
                let new = NewTopic::new(n, self.partitions as i32, TopicReplication::Fixed(-1));
                // A changelog keeps the last record per key: what a restore needs.
                if *topic == Topic::InventoryChangelog {
                    new.set("cleanup.policy", "compact")
                } else {
                    new
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = tokio::time::timeout(REQUEST_TIMEOUT, self.admin.create_topics(&topics, &options))
            .await
            .map_err(|_| LogError::Unreachable(format!("no answer from Kafka at {} within {:?}", self.bootstrap, REQUEST_TIMEOUT)))?
            .map_err(|e| LogError::Unreachable(format!("{}: {e}", self.bootstrap)))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(LogError::Broker(format!("creating topic {name}: {code}"))),
            }
        }
        // Wait until the new topics' partitions have leaders (metadata says so).
        let mut partitions = Vec::new();
        for name in &names {
            let inspector = self.inspector.clone();
            let name = name.clone();
            let count = blocking(move || {
                let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
                loop {
                    // A failed metadata request right after creation counts as "not yet".
                    let ready = inspector.ask(|c| c.fetch_metadata(Some(&name), REQUEST_TIMEOUT)).ok().and_then(|metadata| {
                        metadata
                            .topics()
                            .iter()
                            .find(|t| t.error().is_none() && !t.partitions().is_empty() && t.partitions().iter().all(|p| p.leader() >= 0))
                            .map(|t| t.partitions().len() as i32)
                    });
                    if let Some(count) = ready {
                        // And until each partition's leader answers for its offsets.
                        for p in 0..count {
                            watermarks(&inspector, &name, p)?;
                        }
                        return Ok(count as u32);
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(LogError::Broker(format!("topic {name} has no leader after {REQUEST_TIMEOUT:?}")));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .await?;
            partitions.push(count);
        }
        // Topics made by hand with different counts would break the partitioner's promise
        // (an order's decisions and changelog on the partition of its order).
        if partitions.iter().any(|c| *c != partitions[0]) {
            return Err(LogError::Broker(format!("the topics of {} have different partition counts: {partitions:?}", self.namespace)));
        }
        Ok(partitions[0])
    }

    /// Deletes the namespace's topics (end of a test or experiment).
    pub async fn delete_topics(&self) -> Result<(), LogError> {
        let names: Vec<String> = Topic::ALL.iter().map(|t| self.name(*t)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.admin.delete_topics(&refs, &AdminOptions::new()).await.map_err(broker)?;
        Ok(())
    }

    fn group_client(&self, group: &str) -> Result<Arc<Renewing<BaseConsumer>>, LogError> {
        let mut clients = self.group_clients.lock().expect("group clients lock");
        if let Some(c) = clients.get(group) {
            return Ok(c.clone());
        }
        let (bootstrap, group_id) = (self.bootstrap.clone(), self.group_id(group));
        let client = Arc::new(Renewing::new(move || {
            client_config(&bootstrap)
                .set("group.id", &group_id)
                .set("enable.auto.commit", "false")
                .set(ISOLATION.0, ISOLATION.1)
                .create()
                .map_err(broker)
        })?);
        clients.insert(group.to_owned(), client.clone());
        Ok(client)
    }

    fn consumer(&self, id: ConsumerId) -> Result<Arc<StreamConsumer>, LogError> {
        self.consumers.lock().expect("consumers lock").get(&id).map(|(_, c)| c.clone()).ok_or(LogError::UnknownConsumer(id))
    }

    /// Sends `records` through `producer` and waits for every delivery report.
    async fn produce(&self, producer: &FutureProducer, records: Vec<Outgoing>) -> Result<Vec<(u32, u64)>, LogError> {
        let mut pending = VecDeque::new();
        let mut done = Vec::with_capacity(records.len());
        for outgoing in &records {
            let name = self.name(outgoing.topic);
            let mut record = FutureRecord::to(&name).key(outgoing.key.as_bytes()).payload(outgoing.value.as_ref());
            if !outgoing.headers.is_empty() {
                let headers =
                    outgoing.headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(value) }));
                record = record.headers(headers);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        match pending.pop_front() {
                            Some(first) => done.push(delivered(first.await)?),
                            None => tokio::time::sleep(Duration::from_millis(1)).await,
                        }
                    }
                    Err((e, _)) => return Err(broker(e)),
                }
            }
        }
        while let Some(delivery) = pending.pop_front() {
            done.push(delivered(delivery.await)?);
        }
        Ok(done)
    }

    fn writer(&self, writer: &str) -> Result<Arc<FutureProducer>, LogError> {
        self.writers
            .lock()
            .expect("writers lock")
            .get(writer)
            .cloned()
            .ok_or_else(|| LogError::Broker(format!("no transactional producer for {writer}; fence first")))
    }

    /// One transaction on `producer`; on an error the caller aborts it.
    async fn transaction(
        &self,
        producer: &Arc<FutureProducer>,
        consumer: ConsumerId,
        records: Vec<Outgoing>,
        positions: Vec<Position>,
    ) -> Result<(), LogError> {
        let c = self.consumer(consumer)?;
        let tpl = self.partition_list(&positions)?;
        producer.begin_transaction().map_err(transaction_error)?;
        self.produce(producer, records).await?;
        let producer = producer.clone();
        transaction_call("committing the transaction", move || {
            let metadata = c.group_metadata().ok_or_else(|| LogError::Rebalanced("the consumer has no group metadata".into()))?;
            producer.send_offsets_to_transaction(&tpl, &metadata, TRANSACTION_TIMEOUT).map_err(transaction_error)?;
            producer.commit_transaction(TRANSACTION_TIMEOUT).map_err(transaction_error)
        })
        .await
    }

    fn partition_list(&self, positions: &[Position]) -> Result<TopicPartitionList, LogError> {
        let mut tpl = TopicPartitionList::new();
        for p in positions {
            tpl.add_partition_offset(&self.name(p.topic), p.partition as i32, Offset::Offset(p.next as i64)).map_err(broker)?;
        }
        Ok(tpl)
    }
}

/// A fenced producer is an answer (another instance holds the identity), so is a group that
/// moved on; anything else a transaction meets is worth a fresh start (abort, fence again,
/// re-read the state).
fn transaction_error(e: KafkaError) -> LogError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch) => LogError::Fenced(e.to_string()),
        // The group moved on since the poll (KIP-447: the offsets carry the consumer's
        // generation): the transaction is aborted, and the member is handed its partitions again.
        Some(
            RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId,
        ) => LogError::Rebalanced(format!("transaction: {e}")),
        _ => LogError::Broker(format!("transaction: {e}")),
    }
}

/// A message read from `topic` as the log's [`Record`], headers included.
fn record_of(topic: Topic, message: &impl Message) -> Record {
    let headers: Headers = message
        .headers()
        .map(|h| {
            h.iter().map(|header| (header.key.to_owned(), String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned())).collect()
        })
        .unwrap_or_default();
    Record {
        topic,
        partition: message.partition() as u32,
        offset: message.offset() as u64,
        key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        value: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
        headers,
    }
}

/// What every client of ours sets: the brokers to start from, and how often to ask again which
/// broker leads which partition. librdkafka's default is 5 minutes; after a broker of a cluster
/// dies, a client can be left waiting that long on a partition whose leadership has already
/// moved (librdkafka #891 and #3399 describe such leaderless waits until the next refresh).
/// Part C's Inventory stalled for about that long in one of three real node losses; every 10 s
/// bounds the wait at the price of one small request per client and 10 s.
///
/// librdkafka's own log goes through the `log` crate into tracing, under the target
/// `librdkafka`, at warning and above: its debug chatter is never produced. The binaries keep
/// that target off by default (our adapters log a lost broker once, with what it means);
/// `RUST_LOG=librdkafka=warn` brings it back.
fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("topic.metadata.refresh.interval.ms", "10000");
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    c
}

/// The producer settings every producer here shares: idempotent, `acks=all`, Kafka's murmur2
/// partitioner (the same partition for a key as `partition_for`), batches of 1 ms.
fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("enable.idempotence", "true").set("acks", "all").set("partitioner", "murmur2_random").set("linger.ms", "1");
    c
}

fn delivered<Canceled>(result: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Canceled>) -> Result<(u32, u64), LogError> {
    match result {
        Ok(Ok(d)) => Ok((d.partition as u32, d.offset as u64)),
        Ok(Err((e, _))) => Err(broker(e)),
        Err(_) => Err(LogError::Broker("the producer was dropped before the delivery report".into())),
    }
}

/// The version of librdkafka this build links.
pub fn client_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// A partition's (low, high) watermarks. Right after a topic is created (or a leader moves)
/// the broker may answer "not leader" or "leader not available" for a moment although the
/// metadata already names a leader: such answers are retried for up to `REQUEST_TIMEOUT`.
fn watermarks(inspector: &Renewing<BaseConsumer>, name: &str, partition: i32) -> Result<(i64, i64), LogError> {
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        match inspector.ask(|c| c.fetch_watermarks(name, partition, REQUEST_TIMEOUT)) {
            Ok(marks) => return Ok(marks),
            Err(e) => {
                let transient = matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::NotLeaderForPartition
                            | RDKafkaErrorCode::LeaderNotAvailable
                            | RDKafkaErrorCode::UnknownTopicOrPartition
                            | RDKafkaErrorCode::NotCoordinator
                    )
                );
                if !transient || std::time::Instant::now() > deadline {
                    return Err(broker(e));
                }
                tracing::debug!(topic = name, partition, error = %e, "watermarks not available yet; retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A `read_committed` reader outside every group, for reading a topic from its beginning
/// (`eof`: it reports each partition's end).
fn scan_reader(bootstrap: &str, eof: bool) -> Result<BaseConsumer, LogError> {
    client_config(bootstrap)
        .set("group.id", "campus-scan")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if eof { "true" } else { "false" })
        .set(ISOLATION.0, ISOLATION.1)
        .create()
        .map_err(broker)
}

/// How long the lab waits for one of librdkafka's transaction calls: their own timeout and a
/// margin.
const TRANSACTION_CALL_WITHIN: Duration = Duration::from_secs(TRANSACTION_TIMEOUT.as_secs() + 5);

/// A transaction call of librdkafka's ([`blocking`]) that the caller stops waiting for after
/// [`TRANSACTION_CALL_WITHIN`]: `send_offsets_to_transaction` can outlive its own timeout,
/// waiting for a group coordinator that was lost (librdkafka issues 5456 and 5511: CI's node
/// loss held Inventory there, silent, for five minutes). The error is transient: the writer
/// starts a new session, whose fence replaces the stuck producer (the call itself goes on in
/// its thread until librdkafka lets it go).
async fn transaction_call<T: Send + 'static>(what: &str, f: impl FnOnce() -> Result<T, LogError> + Send + 'static) -> Result<T, LogError> {
    tokio::time::timeout(TRANSACTION_CALL_WITHIN, blocking(f))
        .await
        .map_err(|_| LogError::Broker(format!("{what}: librdkafka did not return within {TRANSACTION_CALL_WITHIN:?}")))?
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, LogError> + Send + 'static) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LogError::Broker(format!("blocking task failed: {e}")))?
}

impl EventLog for KafkaLog {
    fn append(&self, records: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<(u32, u64)>, LogError>> {
        Box::pin(self.produce(&self.producer, records))
    }

    fn fence(&self, writer: &str) -> BoxFuture<'_, Result<(), LogError>> {
        let id = format!("{}.{writer}", self.namespace);
        let writer = writer.to_owned();
        Box::pin(async move {
            // A record not delivered within two thirds of the transaction's timeout fails the
            // transaction, and its writer starts over (librdkafka's default, 300 s, is ten
            // times the transaction's own).
            let message_timeout = self.transaction_timeout * 2 / 3;
            let producer: FutureProducer = producer_config(&self.bootstrap)
                .set("transactional.id", &id)
                .set("transaction.timeout.ms", self.transaction_timeout.as_millis().to_string())
                .set("message.timeout.ms", message_timeout.as_millis().to_string())
                .create()
                .map_err(broker)?;
            let producer = Arc::new(producer);
            let init = producer.clone();
            // Fences the identity's earlier holder and aborts its open transaction.
            transaction_call("claiming the writer's identity", move || {
                init.init_transactions(TRANSACTION_TIMEOUT).map_err(transaction_error)
            })
            .await?;
            self.writers.lock().expect("writers lock").insert(writer, producer);
            Ok(())
        })
    }

    fn transact(
        &self,
        writer: &str,
        consumer: ConsumerId,
        records: Vec<Outgoing>,
        positions: Vec<Position>,
    ) -> BoxFuture<'_, Result<(), LogError>> {
        let producer = self.writer(writer);
        Box::pin(async move {
            let producer = producer?;
            let mut result = self.transaction(&producer, consumer, records, positions).await;
            // librdkafka may report a fenced producer only as purged sends; its fatal error or
            // the abort's answer say `Fenced` where they can. Where neither does, the caller
            // sees a transient error, starts over and claims the identity again (one instance
            // per identity is the deployment this supports: a successor that is fenced back
            // restarts in turn, and neither ever makes a half transaction visible).
            if let Some((code @ (RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch), detail)) =
                producer.client().fatal_error()
            {
                result = Err(LogError::Fenced(format!("{code}: {detail}")));
            }
            if result.is_err() {
                let abort = producer.clone();
                match transaction_call("aborting the transaction", move || {
                    abort.abort_transaction(TRANSACTION_TIMEOUT).map_err(transaction_error)
                })
                .await
                {
                    // The abort says what the sends did not: another instance holds the identity.
                    Err(fenced @ LogError::Fenced(_)) => result = Err(fenced),
                    Err(e) => tracing::debug!(error = %e, "aborting the failed transaction"),
                    Ok(()) => {}
                }
            }
            result
        })
    }

    fn scan(&self, topic: Topic) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        let (bootstrap, name, inspector, partitions) = (self.bootstrap.clone(), self.name(topic), self.inspector.clone(), self.partitions);
        Box::pin(blocking(move || {
            let reader = scan_reader(&bootstrap, true)?;
            let mut tpl = TopicPartitionList::new();
            let mut open = 0;
            for p in 0..partitions as i32 {
                // The last stable offset: the end of what committed transactions wrote.
                let (_, end) = watermarks(&inspector, &name, p)?;
                if end > 0 {
                    tpl.add_partition_offset(&name, p, Offset::Beginning).map_err(broker)?;
                    open += 1;
                }
            }
            let mut records = Vec::new();
            if open == 0 {
                return Ok(records);
            }
            reader.assign(&tpl).map_err(broker)?;
            let deadline = std::time::Instant::now() + TRANSACTION_TIMEOUT;
            // A partition is read once the reader reports its end (past any commit marker).
            while open > 0 {
                if std::time::Instant::now() > deadline {
                    return Err(LogError::Broker(format!("reading {name} did not reach its end within {TRANSACTION_TIMEOUT:?}")));
                }
                match reader.poll(Duration::from_millis(200)) {
                    None => {}
                    Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
                    Some(Err(e)) if passing(&e) => {}
                    Some(Err(e)) => return Err(broker(e)),
                    Some(Ok(message)) => records.push(record_of(topic, &message)),
                }
            }
            Ok(records)
        }))
    }

    fn scan_partition(&self, topic: Topic, partition: u32) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        let (bootstrap, name, inspector) = (self.bootstrap.clone(), self.name(topic), self.inspector.clone());
        Box::pin(blocking(move || {
            let p = partition as i32;
            // The high watermark, not the last stable offset: everything written so far,
            // including a transaction still open, must be decided (committed or aborted) and
            // passed before the partition counts as read.
            let (_, end) = watermarks(&inspector, &name, p)?;
            let mut records = Vec::new();
            if end <= 0 {
                return Ok(records);
            }
            let reader = scan_reader(&bootstrap, false)?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&name, p, Offset::Beginning).map_err(broker)?;
            reader.assign(&tpl).map_err(broker)?;
            let deadline = std::time::Instant::now() + TRANSACTION_TIMEOUT;
            loop {
                let position = reader.position().map_err(broker)?.find_partition(&name, p).map(|e| e.offset());
                if matches!(position, Some(Offset::Offset(next)) if next >= end) {
                    return Ok(records);
                }
                if std::time::Instant::now() > deadline {
                    return Err(LogError::Broker(format!("reading {name}[{p}] did not reach offset {end} within {TRANSACTION_TIMEOUT:?}")));
                }
                match reader.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Err(e)) if passing(&e) => {}
                    Some(Err(e)) => return Err(broker(e)),
                    Some(Ok(message)) => records.push(record_of(topic, &message)),
                }
            }
        }))
    }

    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn join(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<ConsumerId, LogError>> {
        let group = self.group_id(group);
        let names: Vec<String> = topics.iter().map(|t| self.name(*t)).collect();
        Box::pin(async move {
            let consumer: StreamConsumer = client_config(&self.bootstrap)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("enable.partition.eof", "false")
                .set("session.timeout.ms", "6000")
                .set(ISOLATION.0, ISOLATION.1)
                .create()
                .map_err(broker)?;
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            consumer.subscribe(&refs).map_err(broker)?;
            let id = ConsumerId(self.next_id.fetch_add(1, Ordering::Relaxed));
            self.consumers.lock().expect("consumers lock").insert(id, (group, Arc::new(consumer)));
            Ok(id)
        })
    }

    fn poll(&self, consumer: ConsumerId, max: usize, wait: Duration) -> BoxFuture<'_, Result<Vec<Record>, LogError>> {
        Box::pin(async move {
            let c = self.consumer(consumer)?;
            let mut records = Vec::new();
            // librdkafka queues an error event for every failed connection attempt while a
            // broker is away (AllBrokersDown, transport failures) and recovers by itself. They
            // are drained here in one go — returning at the first one left a backlog that took
            // minutes to read, one per retry — and the last one is the answer only if nothing
            // else came. The drain is bounded by `wait` like the rest of the poll: errors that
            // keep coming faster than that must not hold the caller here, unseen, for good.
            let deadline = tokio::time::Instant::now() + wait;
            let (mut error, mut errors) = (None, 0usize);
            while records.len() < max {
                // What is already fetched is taken without arming a timer per record; the first
                // record is waited for until the deadline, more once none is ready for 1 ms.
                let until = if records.is_empty() { deadline } else { tokio::time::Instant::now() + Duration::from_millis(1) };
                let received = match futures_lite::future::poll_once(c.recv()).await {
                    Some(received) => Ok(received),
                    None => tokio::time::timeout_at(until, c.recv()).await,
                };
                let message = match received {
                    Err(_) => break,
                    Ok(Err(e)) => {
                        error = Some(e);
                        errors += 1;
                        if tokio::time::Instant::now() >= deadline {
                            break;
                        }
                        continue;
                    }
                    Ok(Ok(m)) => m,
                };
                let Some(topic) = self.topic_of(message.topic()) else { continue };
                records.push(record_of(topic, &message));
            }
            if errors > 0 {
                tracing::debug!(errors, records = records.len(), last = ?error, "poll drained the consumer's error events");
            }
            // A rebalance served between two `recv`s may have taken partitions whose records
            // were already gathered: they belong to their new owner now (who reads them from
            // the committed offset), and deciding them here too would decide them twice.
            if !records.is_empty() {
                let assigned = c.assignment().map_err(broker)?;
                records.retain(|r| assigned.find_partition(&self.name(r.topic), r.partition as i32).is_some());
            }
            match error {
                Some(e) if records.is_empty() => Err(broker(e)),
                _ => Ok(records),
            }
        })
    }

    fn positions(&self, consumer: ConsumerId) -> BoxFuture<'_, Result<Vec<Position>, LogError>> {
        Box::pin(async move {
            let c = self.consumer(consumer)?;
            let tpl = c.position().map_err(broker)?;
            Ok(tpl
                .elements()
                .iter()
                .filter_map(|e| match (self.topic_of(e.topic()), e.offset()) {
                    (Some(topic), Offset::Offset(next)) if next >= 0 => {
                        Some(Position { topic, partition: e.partition() as u32, next: next as u64 })
                    }
                    _ => None,
                })
                .collect())
        })
    }

    fn commit(&self, consumer: ConsumerId, positions: Vec<Position>) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(async move {
            let c = self.consumer(consumer)?;
            // Nothing to commit (librdkafka would answer NoOffset, which no retry changes).
            if positions.is_empty() {
                return Ok(());
            }
            let tpl = self.partition_list(&positions)?;
            blocking(move || {
                c.commit(&tpl, CommitMode::Sync).map_err(|e| match e {
                    KafkaError::ConsumerCommit(
                        code @ (RDKafkaErrorCode::UnknownMemberId
                        | RDKafkaErrorCode::IllegalGeneration
                        | RDKafkaErrorCode::RebalanceInProgress),
                    ) => LogError::Rebalanced(code.to_string()),
                    other => broker(other),
                })
            })
            .await
        })
    }

    fn leave(&self, consumer: ConsumerId) -> BoxFuture<'_, Result<(), LogError>> {
        let removed = self.consumers.lock().expect("consumers lock").remove(&consumer);
        Box::pin(async move {
            let (_, c) = removed.ok_or(LogError::UnknownConsumer(consumer))?;
            // Dropping the last handle closes the consumer, which leaves the group.
            blocking(move || {
                c.unsubscribe();
                drop(c);
                Ok(())
            })
            .await
        })
    }

    fn end_offsets(&self, topic: Topic) -> BoxFuture<'_, Result<Vec<u64>, LogError>> {
        let (inspector, name, partitions) = (self.inspector.clone(), self.name(topic), self.partitions);
        Box::pin(blocking(move || {
            (0..partitions as i32).map(|p| watermarks(&inspector, &name, p).map(|(_, high)| high.max(0) as u64)).collect()
        }))
    }

    fn committed(&self, group: &str, topic: Topic) -> BoxFuture<'_, Result<Vec<u64>, LogError>> {
        let client = self.group_client(group);
        let (name, partitions) = (self.name(topic), self.partitions);
        Box::pin(async move {
            let client = client?;
            blocking(move || {
                let mut tpl = TopicPartitionList::new();
                for p in 0..partitions as i32 {
                    tpl.add_partition(&name, p);
                }
                let committed = client.ask(|c| c.committed_offsets(tpl.clone(), REQUEST_TIMEOUT)).map_err(broker)?;
                Ok((0..partitions as i32)
                    .map(|p| match committed.find_partition(&name, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) if o >= 0 => o as u64,
                        _ => 0,
                    })
                    .collect())
            })
            .await
        })
    }

    fn reset_to_beginning(&self, group: &str, topics: &[Topic]) -> BoxFuture<'_, Result<(), LogError>> {
        let client = self.group_client(group);
        let (inspector, group, partitions) = (self.inspector.clone(), self.group_id(group), self.partitions);
        let names: Vec<String> = topics.iter().map(|t| self.name(*t)).collect();
        Box::pin(async move {
            let client = client?;
            blocking(move || {
                // Commit each partition's low watermark (its first offset still on disk) as a
                // client outside the group: Kafka accepts this only while the group is empty.
                let mut tpl = TopicPartitionList::new();
                for name in &names {
                    for p in 0..partitions as i32 {
                        let (low, _) = watermarks(&inspector, name, p)?;
                        tpl.add_partition_offset(name, p, Offset::Offset(low.max(0))).map_err(broker)?;
                    }
                }
                client.ask(|c| c.commit(&tpl, CommitMode::Sync)).map_err(|e| match e {
                    KafkaError::ConsumerCommit(
                        RDKafkaErrorCode::UnknownMemberId | RDKafkaErrorCode::IllegalGeneration | RDKafkaErrorCode::RebalanceInProgress,
                    ) => LogError::GroupActive { group },
                    other => broker(other),
                })
            })
            .await
        })
    }
}
