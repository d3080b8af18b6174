//! The log semantics the lab relies on, written once and checked against both
//! implementations: `SimLog` in virtual time, and `KafkaLog` against the real Apache Kafka that
//! `scripts/brokers.sh up` starts (these tests fail, never skip, when it is not running).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use campus::domain::{Envelope, Event, Order, OrderPlaced, OrderRequest, StudentId};
use campus::faults::silence::SilencedLog;
use campus::retry::Policy;
use campus::services::analytics::Counting;
use campus::services::order::OrderIds;
use campus::services::EventClock;
use campus::streaming_kafka::consumers::run_analytics;
use campus::streaming_kafka::stall::CHECK_EVERY;
use campus::telemetry::Tracer;
use campus::transport::kafka::{KafkaLog, DEFAULT_BOOTSTRAP_SERVERS};
use campus::transport::log::{partition_for, ConsumerId, EventLog, LogError, Outgoing, Position, Record, Topic, PARTITIONS};
use campus_sim::simulator::clock;
use campus_sim::simulator::log::SimLog;
use campus_sim::simulator::net::LinkModel;
use campus_sim::simulator::rng::SimRng;

/// How long a real broker may take to hand over records that are there (a first poll includes
/// joining the group).
const PATIENCE: Duration = Duration::from_secs(30);

fn records(prefix: &str, n: usize) -> Vec<Outgoing> {
    (0..n).map(|i| Outgoing::new(Topic::OrderEvents, format!("{prefix}-{i}"), Bytes::from(format!("value-{i}")))).collect()
}

/// Polls until `n` records arrived (or patience ran out).
async fn read(log: &dyn EventLog, me: ConsumerId, n: usize) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} records within the patience", got.len());
        got.extend(log.poll(me, n - got.len(), Duration::from_millis(500)).await.unwrap());
    }
    got
}

fn next_positions(records: &[Record]) -> Vec<Position> {
    let mut next = std::collections::BTreeMap::new();
    for r in records {
        let e = next.entry((r.topic, r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    next.into_iter().map(|((topic, partition), next)| Position { topic, partition, next }).collect()
}

async fn records_go_to_the_key_hash_partition_with_growing_offsets(log: Arc<dyn EventLog>) {
    let placed = log.append(records("k", 30)).await.unwrap();
    let mut last = [None::<u64>; PARTITIONS as usize];
    for (i, (partition, offset)) in placed.iter().enumerate() {
        assert_eq!(*partition, partition_for(format!("k-{i}").as_bytes(), PARTITIONS), "record {i}");
        if let Some(prev) = last[*partition as usize] {
            assert_eq!(*offset, prev + 1, "offsets grow by one in a partition");
        }
        last[*partition as usize] = Some(*offset);
    }
    let ends = log.end_offsets(Topic::OrderEvents).await.unwrap();
    assert_eq!(ends.iter().sum::<u64>(), 30);
    let again = log.append(vec![Outgoing::new(Topic::OrderEvents, "k-0", Bytes::from_static(b"again"))]).await.unwrap();
    assert_eq!(again[0].0, placed[0].0, "the same key, the same partition");
}

async fn what_was_read_but_not_committed_is_read_again_by_the_next_member(log: Arc<dyn EventLog>) {
    log.append(records("r", 20)).await.unwrap();
    let first = log.join("g", &[Topic::OrderEvents]).await.unwrap();
    let all = read(log.as_ref(), first, 20).await;
    // Commit only the records of partition 0, then die.
    let p0: Vec<Record> = all.iter().filter(|r| r.partition == 0).cloned().collect();
    log.commit(first, next_positions(&p0)).await.unwrap();
    log.leave(first).await.unwrap();
    let committed = log.committed("g", Topic::OrderEvents).await.unwrap();
    assert_eq!(committed[0], p0.len() as u64);
    assert_eq!(&committed[1..], &[0, 0]);

    let second = log.join("g", &[Topic::OrderEvents]).await.unwrap();
    let again = read(log.as_ref(), second, 20 - p0.len()).await;
    let mut keys: Vec<String> = again.iter().map(|r| r.key.clone()).collect();
    let mut expected: Vec<String> = all.iter().filter(|r| r.partition != 0).map(|r| r.key.clone()).collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected, "exactly the uncommitted records come again");
    log.leave(second).await.unwrap();
}

async fn a_group_is_reset_to_the_beginning_only_when_it_has_no_members(log: Arc<dyn EventLog>) {
    log.append(records("z", 12)).await.unwrap();
    let member = log.join("replayers", &[Topic::OrderEvents]).await.unwrap();
    let all = read(log.as_ref(), member, 12).await;
    log.commit(member, next_positions(&all)).await.unwrap();
    assert_eq!(log.committed("replayers", Topic::OrderEvents).await.unwrap().iter().sum::<u64>(), 12);
    assert!(
        matches!(log.reset_to_beginning("replayers", &[Topic::OrderEvents]).await, Err(LogError::GroupActive { .. })),
        "reset must be refused while a member is active"
    );
    log.leave(member).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match log.reset_to_beginning("replayers", &[Topic::OrderEvents]).await {
            Ok(()) => break,
            Err(LogError::GroupActive { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("reset failed: {e}"),
        }
    }
    assert_eq!(log.committed("replayers", Topic::OrderEvents).await.unwrap(), vec![0; PARTITIONS as usize]);
    let replayer = log.join("replayers", &[Topic::OrderEvents]).await.unwrap();
    assert_eq!(read(log.as_ref(), replayer, 12).await.len(), 12, "everything is read again");
    log.leave(replayer).await.unwrap();
}

async fn a_transaction_lands_whole_and_a_reader_steps_over_its_commit_marker(log: Arc<dyn EventLog>) {
    log.append(records("t", 9)).await.unwrap();
    log.fence("writer").await.unwrap();
    let me = log.join("transformers", &[Topic::OrderEvents]).await.unwrap();
    let input = read(log.as_ref(), me, 9).await;
    let outputs: Vec<Outgoing> = input
        .iter()
        .map(|r| Outgoing::new(Topic::InventoryEvents, r.key.clone(), r.value.clone()).with_header("from", r.offset.to_string()))
        .collect();
    log.transact("writer", me, outputs, next_positions(&input)).await.unwrap();
    assert_eq!(
        log.committed("transformers", Topic::OrderEvents).await.unwrap().iter().sum::<u64>(),
        9,
        "the offsets came with the records"
    );
    let written = log.scan(Topic::InventoryEvents).await.unwrap();
    assert_eq!(written.len(), 9, "a read_committed reader sees the whole transaction");
    assert!(written.iter().all(|r| r.header("from").is_some()), "headers travel with the records");
    log.leave(me).await.unwrap();

    let reader = log.join("readers", &[Topic::InventoryEvents]).await.unwrap();
    assert_eq!(read(log.as_ref(), reader, 9).await.len(), 9);
    // One more poll: nothing more to read, but the commit markers are stepped over.
    assert!(log.poll(reader, 10, Duration::from_millis(500)).await.unwrap().is_empty());
    let ends = log.end_offsets(Topic::InventoryEvents).await.unwrap();
    let positions = log.positions(reader).await.unwrap();
    assert!(!positions.is_empty());
    for p in &positions {
        assert_eq!(p.next, ends[p.partition as usize], "partition {}: the position is past the marker", p.partition);
        let records_there = written.iter().filter(|r| r.partition == p.partition).count() as u64;
        assert!(p.next > records_there, "partition {}: the marker takes an offset of its own", p.partition);
    }
    log.leave(reader).await.unwrap();
}

async fn one_partition_is_scanned_alone_to_its_end_and_topics_have_the_partitions_asked_for(log: Arc<dyn EventLog>) {
    assert_eq!(log.partitions(), 6, "the log was made with 6 partitions");
    let placed = log.append(records("p", 40)).await.unwrap();
    for (i, (partition, _)) in placed.iter().enumerate() {
        assert_eq!(*partition, partition_for(format!("p-{i}").as_bytes(), 6), "record {i}: murmur2 over 6 partitions");
    }
    for partition in 0..6 {
        let scanned = log.scan_partition(Topic::OrderEvents, partition).await.unwrap();
        let expected: Vec<u64> = placed.iter().filter(|(p, _)| *p == partition).map(|(_, o)| *o).collect();
        assert_eq!(
            scanned.iter().map(|r| r.offset).collect::<Vec<_>>(),
            expected,
            "partition {partition}: all of it, in order, nothing else"
        );
        assert!(scanned.iter().all(|r| r.partition == partition));
    }
}

/// `OrderPlaced` events `range` of one workload, encoded for `order-events`.
fn orders(range: std::ops::Range<usize>) -> Vec<Outgoing> {
    let ids = OrderIds::seeded(5);
    let items = serde_json::from_str(r#"[{"sku":"burrito","qty":1}]"#).unwrap();
    let all: Vec<OrderPlaced> = (0..range.end)
        .map(|i| {
            let request = OrderRequest::new(StudentId::parse(format!("s-{i:04}")).unwrap(), Clone::clone(&items));
            OrderPlaced { order: Order::new(ids.next(), request), placed_at_ms: i as u64 }
        })
        .collect();
    all[range]
        .iter()
        .map(|p| Outgoing::new(Topic::OrderEvents, p.order.order_id.to_string(), Envelope::new(Event::OrderPlaced(p.clone())).encode()))
        .collect()
}

/// Waits until `done` holds; how long that took, or `None` after `within`.
async fn until(done: impl Fn() -> bool, within: Duration) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    while !done() {
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(start.elapsed())
}

/// A consumer loop (Analytics') whose fetches go silent over records to read stays silent
/// until its stall watch finds it, one to two checks later, and replaces the consumer; the new
/// one reads on.
async fn a_consumer_whose_fetches_go_silent_is_replaced_by_its_loop_and_reads_on(log: Arc<dyn EventLog>) {
    let silenced = Arc::new(SilencedLog::new(log));
    let state = Counting::new(EventClock::Wall);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task =
        tokio::spawn(run_analytics(silenced.clone(), "watched", state.clone(), 50, None, Policy::production(), Tracer::off(), stopped));
    let seen = |n: usize| {
        let state = state.clone();
        move || state.analytics.lock().unwrap().seen().0 >= n
    };
    silenced.append(orders(0..20)).await.unwrap();
    assert!(until(seen(20), PATIENCE).await.is_some(), "the first 20 orders read");
    assert_eq!(silenced.silence("watched").len(), 1, "one member silenced");
    // The poll in flight completes as it would have; the next one is silent.
    assert!(until(|| silenced.silent_polls() > 0, PATIENCE).await.is_some(), "the silence took hold");
    silenced.append(orders(20..40)).await.unwrap();
    let took = until(seen(40), 2 * CHECK_EVERY + PATIENCE).await;
    assert_eq!(silenced.joins("watched"), 2, "the silent consumer was replaced once");
    let took = took.expect("the 20 orders appended after the silence read by the new consumer");
    assert!(took >= CHECK_EVERY, "read after {took:?}: the silence held until a check found it");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}

// ------------------------------------------------------------------------- simulation

fn sim() -> Arc<dyn EventLog> {
    Arc::new(SimLog::new(SimRng::new(9), LinkModel::default()))
}

#[test]
fn sim_records_go_to_the_key_hash_partition_with_growing_offsets() {
    clock::block_on(records_go_to_the_key_hash_partition_with_growing_offsets(sim()));
}

#[test]
fn sim_what_was_read_but_not_committed_is_read_again_by_the_next_member() {
    clock::block_on(what_was_read_but_not_committed_is_read_again_by_the_next_member(sim()));
}

#[test]
fn sim_a_group_is_reset_to_the_beginning_only_when_it_has_no_members() {
    clock::block_on(a_group_is_reset_to_the_beginning_only_when_it_has_no_members(sim()));
}

#[test]
fn sim_a_transaction_lands_whole_and_a_reader_steps_over_its_commit_marker() {
    clock::block_on(a_transaction_lands_whole_and_a_reader_steps_over_its_commit_marker(sim()));
}

#[test]
fn sim_one_partition_is_scanned_alone_to_its_end_and_topics_have_the_partitions_asked_for() {
    clock::block_on(one_partition_is_scanned_alone_to_its_end_and_topics_have_the_partitions_asked_for(Arc::new(SimLog::with_partitions(
        SimRng::new(9),
        LinkModel::default(),
        6,
    ))));
}

#[test]
fn sim_a_consumer_whose_fetches_go_silent_is_replaced_by_its_loop_and_reads_on() {
    clock::block_on(a_consumer_whose_fetches_go_silent_is_replaced_by_its_loop_and_reads_on(sim()));
}

/// Kafka refuses a transactional offset commit of a generation the group has left (KIP-447);
/// the real scale-out's crash runs go through it. The simulated log refuses offsets of a
/// partition it has dealt to another member.
#[test]
fn sim_a_transaction_for_partitions_the_group_dealt_to_another_member_is_refused_whole() {
    clock::block_on(async {
        let log = sim();
        log.append(records("g", 12)).await.unwrap();
        log.fence("inventory-a").await.unwrap();
        let first = log.join("members", &[Topic::OrderEvents]).await.unwrap();
        let input = read(log.as_ref(), first, 12).await;
        // A second member joins before the first one's transaction: the partitions are dealt again.
        let second = log.join("members", &[Topic::OrderEvents]).await.unwrap();
        let outputs: Vec<Outgoing> = input.iter().map(|r| Outgoing::new(Topic::InventoryEvents, r.key.clone(), r.value.clone())).collect();
        let refused = log.transact("inventory-a", first, outputs, next_positions(&input)).await;
        assert!(matches!(refused, Err(LogError::Rebalanced(_))), "{refused:?}");
        assert!(log.scan(Topic::InventoryEvents).await.unwrap().is_empty(), "nothing of the refused transaction is visible");
        assert_eq!(log.committed("members", Topic::OrderEvents).await.unwrap().iter().sum::<u64>(), 0, "no offset moved");
        log.leave(second).await.unwrap();
        log.leave(first).await.unwrap();
    });
}

// -------------------------------------------------------------------------- real Kafka

async fn with_kafka<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Arc<dyn EventLog>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| DEFAULT_BOOTSTRAP_SERVERS.to_owned());
    let namespace = format!("test-{name}-{}", std::process::id());
    let kafka = KafkaLog::connect(&bootstrap, &namespace).await.unwrap_or_else(|e| {
        panic!("Kafka is required for this test and is not reachable ({e}); start it with `scripts/brokers.sh up kafka`")
    });
    let kafka = Arc::new(kafka);
    test(kafka.clone()).await;
    kafka.delete_topics().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn kafka_records_go_to_the_key_hash_partition_with_growing_offsets() {
    with_kafka("partitions", records_go_to_the_key_hash_partition_with_growing_offsets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn kafka_what_was_read_but_not_committed_is_read_again_by_the_next_member() {
    with_kafka("redeliver", what_was_read_but_not_committed_is_read_again_by_the_next_member).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn kafka_a_group_is_reset_to_the_beginning_only_when_it_has_no_members() {
    with_kafka("reset", a_group_is_reset_to_the_beginning_only_when_it_has_no_members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn kafka_a_transaction_lands_whole_and_a_reader_steps_over_its_commit_marker() {
    with_kafka("transaction", a_transaction_lands_whole_and_a_reader_steps_over_its_commit_marker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn kafka_a_writer_fenced_by_its_successor_cannot_make_a_transaction_visible() {
    with_kafka("fencing", |log| async move {
        log.append(records("f", 3)).await.unwrap();
        log.fence("inventory").await.unwrap();
        let me = log.join("fenced", &[Topic::OrderEvents]).await.unwrap();
        let input = read(log.as_ref(), me, 3).await;
        // A second process claims the same identity (a restarted Inventory).
        let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| DEFAULT_BOOTSTRAP_SERVERS.to_owned());
        let successor = KafkaLog::connect(&bootstrap, &format!("test-fencing-{}", std::process::id())).await.unwrap();
        successor.fence("inventory").await.unwrap();
        let outputs = vec![Outgoing::new(Topic::InventoryEvents, "f-0", Bytes::from_static(b"late"))];
        let result = log.transact("inventory", me, outputs, next_positions(&input)).await;
        // librdkafka reports the fencing as the purge of the zombie's sends (or as the fencing
        // itself, when the commit gets that far): either way the transaction is refused.
        assert!(result.is_err(), "the zombie's transaction must be refused");
        assert!(log.scan(Topic::InventoryEvents).await.unwrap().is_empty(), "nothing of it is visible");
        log.leave(me).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn kafka_one_partition_is_scanned_alone_to_its_end_and_topics_have_the_partitions_asked_for() {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| DEFAULT_BOOTSTRAP_SERVERS.to_owned());
    let kafka = KafkaLog::connect_with(&bootstrap, &format!("test-six-{}", std::process::id()), 6).await.unwrap_or_else(|e| {
        panic!("Kafka is required for this test and is not reachable ({e}); start it with `scripts/brokers.sh up kafka`")
    });
    let kafka = Arc::new(kafka);
    one_partition_is_scanned_alone_to_its_end_and_topics_have_the_partitions_asked_for(kafka.clone()).await;
    kafka.delete_topics().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/test.sh starts it and runs this with --include-ignored"]
async fn kafka_a_consumer_whose_fetches_go_silent_is_replaced_by_its_loop_and_reads_on() {
    with_kafka("silence", a_consumer_whose_fetches_go_silent_is_replaced_by_its_loop_and_reads_on).await;
}
