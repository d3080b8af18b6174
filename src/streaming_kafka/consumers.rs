//! The services as log consumers (Part C).
//!
//! **Inventory** is crash-safe and effectively-once, the way Kafka's consume–transform–produce
//! is meant to be used: it claims its transactional identity (fencing a predecessor and
//! aborting its open transaction), restores its state — stock and decided order ids — from its
//! changelog topic (read `read_committed`), joins its group, and then, per batch, decides what
//! the event-time merge releases ([`super::merge`]) and writes, in **one transaction**, the
//! outcomes to `inventory-events`, each decision to `inventory-changelog`, the poison to
//! `dead-letters`, and the consumed offsets. A SIGKILL at any moment leaves either all of a
//! batch or none of it; the next instance restores exactly the decisions a `read_committed`
//! reader sees, and reads on from exactly the offsets after them. Any failed step (the broker
//! away, a rebalance, a lost answer) ends the session the same way a crash does: the
//! transaction is aborted and the service starts over from the log.
//!
//! *Why a changelog topic, not a database*: the state must change in the same atomic step as
//! the outputs and the offsets, and only the log's transaction spans all three. A database
//! would need its own commit to agree with Kafka's (two-phase commit, or offsets kept in the
//! database and outputs deduplicated downstream). See [`super::changelog`]; a restore reads
//! it from the beginning (10,000 decisions: well under a second).
//!
//! **Analytics** polls a batch, folds it into its state and commits after it (at-least-once;
//! the state is keyed by order id, so a repeat changes nothing) — after a batch that took all
//! there was to read, and otherwise at most every [`ANALYTICS_COMMIT_EVERY`]: a synchronous
//! commit per batch of 500 halved what it reads per second from a backlog (`campus-sim
//! --real-brokers bench --model streaming-kafka`: 370,000 records/s against 770,000 with no
//! commit), and a crash re-reads at most that much more, which the keyed state absorbs.
//!
//! **When the broker goes away** every call is retried (backoff with jitter, [`Policy`]);
//! Inventory starts its session over once the broker is back. **When a consumer's fetches go
//! silent** over records to read (a client that did not come back after a broker loss), the
//! loop's [`Watch`] finds it within two of its checks and the consumer is replaced: Inventory
//! starts its session over, Analytics joins its group again ([`super::stall`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::changelog::{self, ChangelogEntry, Decision, FLOORS_KEY};
use super::merge::{Merge, Next, WATERMARK_HEADER};
use super::stall::Watch;
use crate::domain::{Envelope, Event};
use crate::retry::Policy;
use crate::services::analytics::Counting;
use crate::services::inventory::Inventory;
use crate::store::InventoryStats;
use crate::telemetry::trace::{self, Span, Tracer};
use crate::transport::log::{ConsumerId, EventLog, LogError, Outgoing, Position, Record, Topic};
use crate::transport::TRACEPARENT;

/// Inventory's consumer group.
pub const INVENTORY_GROUP: &str = "inventory";
/// Analytics' consumer group.
pub const ANALYTICS_GROUP: &str = "analytics";
/// While a backlog fills each batch, Analytics commits at most this often.
pub const ANALYTICS_COMMIT_EVERY: Duration = Duration::from_millis(100);

/// Whether Analytics commits after a poll that took `taken` records of at most `batch`, its
/// last commit `since` ago: after a batch that took all there was, else every
/// [`ANALYTICS_COMMIT_EVERY`].
pub fn analytics_commits(taken: usize, batch: usize, since: Duration) -> bool {
    taken < batch || since >= ANALYTICS_COMMIT_EVERY
}
/// Inventory's transactional identity (one instance; a scaled-out instance appends its name).
pub const INVENTORY_WRITER: &str = "inventory";
/// The header of a dead letter that says why (a `DecodeError` label: `not_json`,
/// `schema_violation`, `unsupported_version`), and the one with the parser's words.
pub const DEAD_LETTER_REASON: &str = "campus.dead-letter-reason";
pub const DEAD_LETTER_DETAIL: &str = "campus.dead-letter-detail";

/// How Inventory writes a batch's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// One transaction: outcomes, changelog, dead letters and offsets together.
    Transactional,
    /// Each in its own call, outcomes first — only the lab's `--break no-transaction`, to show
    /// the duplicate decision a crash between them leaves.
    Separate,
}

/// Inventory's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryConfig {
    /// Units of each menu item at the very start (before any decision in the changelog).
    pub stock: u32,
    /// Records per poll.
    pub batch: usize,
    pub writes: Writes,
}

/// Inventory's state as its HTTP face and the lab see it: the restored and decided state;
/// `None` until the instance first restored it from the changelog (a new instance knows
/// nothing yet, and says so rather than show an empty stock's accounts).
pub type InventoryView = Arc<Mutex<Option<Inventory>>>;

/// The accounting of a streaming Inventory's state: `units_taken` from the stock levels,
/// `units_of_reserved_orders` from the decisions (each reserved order's units, once): equal
/// unless an order took stock twice.
pub fn stats(inventory: &Inventory, stock: u32) -> InventoryStats {
    let mut s = InventoryStats::default();
    (s.reserved, s.failed) = inventory.decided();
    s.stock = inventory.levels().iter().map(|(sku, units)| (sku.as_str().to_owned(), u64::from(*units))).collect();
    s.units_taken = inventory.levels().values().map(|units| u64::from(stock - units)).sum();
    s.units_of_reserved_orders = inventory.units_reserved();
    s.stock_applications = s.reserved;
    s
}

/// How long a poll waits for the first record before the loop checks whether to stop.
pub(crate) const POLL_WAIT: Duration = Duration::from_millis(200);

fn decode(record: &Record) -> Option<Event> {
    match Envelope::decode(&record.value) {
        Ok(event) => Some(event),
        Err(e) => {
            // Inventory dead-letters these; Analytics only skips them.
            tracing::debug!(topic = %record.topic, partition = record.partition, offset = record.offset, error = %e, "skipping an undecodable record");
            None
        }
    }
}

/// What to do after a commit: go on, or — the group moved on without this member (a
/// rebalance, or a coordinator that forgot it across a broker restart) — join the group again
/// as a new member, which reads on from the group's committed offsets (the batch whose commit
/// was refused is read again; the stores absorb the repeat). Any other error stands.
fn rejoin_after(result: Result<(), LogError>) -> Result<bool, LogError> {
    match result {
        Ok(()) => Ok(false),
        Err(LogError::Rebalanced(detail)) => {
            tracing::warn!(%detail, "a commit was refused: the group moved on; joining it again");
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Leaves (as far as the log lets it) and joins `group` again as a new member.
async fn rejoin(
    log: &dyn EventLog,
    me: ConsumerId,
    group: &str,
    topics: &[Topic],
    policy: Policy,
    backoff: &mut crate::retry::Backoff,
) -> Result<ConsumerId, LogError> {
    if let Err(e) = log.leave(me).await {
        tracing::debug!(error = %e, "leaving the group before joining again");
    }
    policy.until_ok(backoff, "joining the group again", LogError::is_transient, || log.join(group, topics)).await
}

/// What Inventory writes for a batch, and the `process` spans of the orders it decided: they
/// end once the writes are committed (or failed, and say so).
#[derive(Default)]
pub(crate) struct Decided {
    pub writes: Vec<Outgoing>,
    pub spans: Vec<Span>,
}

impl Decided {
    /// Ends the spans, failed if the writes were not committed.
    pub fn settled<T>(self, committed: &Result<T, LogError>) {
        if let Err(e) = committed {
            self.spans.iter().for_each(|span| span.fail(e.to_string()));
        }
    }
}

/// The span Inventory decides an order in: under, and linked to, the `publish` span of the
/// record it read (`trace`); the outcome it writes is published under it.
fn deciding(tracer: &Tracer, order_id: &str, partition: u32, offset: u64, trace: Option<&str>) -> Span {
    let span = tracer.consuming("process order-events", trace);
    span.set(trace::ORDER_ID, order_id.to_owned());
    span.set("messaging.system", "kafka");
    span.set("messaging.destination.partition.id", i64::from(partition));
    span.set("messaging.kafka.offset", offset as i64);
    span
}

/// Decides what the merge released against `inventory`: the records to write (outcomes and
/// changelog entries for first decisions, dead letters). A repeated order id (a duplicate
/// `OrderPlaced`) is consumed without a second decision.
pub(crate) fn decide(inventory: &mut Inventory, released: Vec<Next>, tracer: &Tracer) -> Decided {
    let Decided { mut writes, mut spans } = Decided::default();
    for item in released {
        match item {
            Next::Decide { placed, partition, offset, trace } => {
                let id = &placed.order.order_id;
                let reservation = inventory.reserve(id, &placed.order.items);
                if !reservation.first_attempt {
                    continue;
                }
                let span = deciding(tracer, id.as_str(), partition, offset, trace.as_deref());
                let decision = Decision { order_id: id.clone(), items: placed.order.items.clone(), outcome: reservation.outcome };
                let event = Envelope::new(placed.outcome_event(&decision.outcome)).encode();
                let outcome = Outgoing::new(Topic::InventoryEvents, id.to_string(), event);
                writes.push(match span.traceparent() {
                    Some(traceparent) => outcome.with_header(TRACEPARENT, traceparent),
                    None => outcome,
                });
                spans.push(span);
                let entry = serde_json::to_vec(&ChangelogEntry::Decision(decision)).expect("a decision serializes");
                writes.push(Outgoing::new(Topic::InventoryChangelog, id.to_string(), entry));
            }
            Next::DeadLetter { record, reason, detail } => {
                // Info, not warn: the record and its reason are kept in `dead-letters`, which is
                // where an operator looks (and what the lab counts).
                tracing::info!(partition = record.partition, offset = record.offset, reason, %detail, "dead-lettering an unreadable record");
                writes.push(
                    Outgoing::new(Topic::DeadLetters, record.key, record.value)
                        .with_header(DEAD_LETTER_REASON, reason)
                        .with_header(DEAD_LETTER_DETAIL, detail)
                        .with_header("campus.source", format!("{}[{}]@{}", record.topic, record.partition, record.offset)),
                );
            }
        }
    }
    Decided { writes, spans }
}

/// Inventory on the log (see the module's documentation): sessions of claim–restore–join–
/// decide, each ended by a stop (it leaves its group) or a failure (it starts over after a
/// backoff). Only a fenced identity, a corrupt changelog or a consumer the log does not know
/// end it with an error.
pub async fn run_inventory(
    log: Arc<dyn EventLog>,
    view: InventoryView,
    config: InventoryConfig,
    policy: Policy,
    tracer: Tracer,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let mut backoff = policy.backoff("inventory");
    loop {
        match session(log.as_ref(), &view, config, policy, &tracer, &mut stop).await {
            Ok(()) => return Ok(()),
            Err(e) => start_over(e, policy, &mut backoff, "inventory").await?,
        }
    }
}

/// After an Inventory session failed with `e`: the error back if it ends the service (a fenced
/// identity, a corrupt changelog, a consumer the log does not know, or `policy` says not to
/// reconnect), or `Ok` after a backoff, to start a new session from the log. One Inventory and
/// each scaled-out member (`who`) decide this the same way.
pub(crate) async fn start_over(e: LogError, policy: Policy, backoff: &mut crate::retry::Backoff, who: &str) -> Result<(), LogError> {
    if matches!(e, LogError::Fenced(_) | LogError::Corrupt(_) | LogError::UnknownConsumer(_) | LogError::GroupActive { .. })
        || !policy.reconnect
    {
        return Err(e);
    }
    tracing::warn!(error = %e, who, "inventory starts its session over from the log");
    tokio::time::sleep(backoff.next_delay()).await;
    Ok(())
}

async fn session(
    log: &dyn EventLog,
    view: &InventoryView,
    config: InventoryConfig,
    policy: Policy,
    tracer: &Tracer,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), LogError> {
    if config.writes == Writes::Transactional {
        log.fence(INVENTORY_WRITER).await?;
    }
    let restored = changelog::restore(log, config.stock).await?;
    let mut merge = Merge::resume(log.partitions(), &restored.floors);
    *view.lock().expect("inventory lock") = Some(restored.inventory);
    let topics = [Topic::OrderEvents];
    let me = log.join(INVENTORY_GROUP, &topics).await?;
    let mut committed = Vec::new();
    let mut watch = Watch::new(INVENTORY_GROUP, &topics, true, policy);
    let result = async {
        while !*stop.borrow_and_update() {
            for record in log.poll(me, config.batch, POLL_WAIT).await? {
                merge.push(record);
            }
            watch.check(log, me).await?;
            let released = merge.release();
            let done = merge.committable();
            if released.is_empty() && done == committed {
                continue;
            }
            // Decided in place: if the writes fail, the session ends and the state is restored.
            let mut decided = decide(view.lock().expect("inventory lock").as_mut().expect("restored above"), released, tracer);
            let floors = ChangelogEntry::Floors { floors: merge.floors() };
            let mut writes = std::mem::take(&mut decided.writes);
            writes.push(Outgoing::new(Topic::InventoryChangelog, FLOORS_KEY, serde_json::to_vec(&floors).expect("floors serialize")));
            let positions: Vec<Position> =
                done.iter().map(|&(partition, next)| Position { topic: Topic::OrderEvents, partition, next }).collect();
            let written = match config.writes {
                Writes::Transactional => log.transact(INVENTORY_WRITER, me, writes, positions).await,
                Writes::Separate => {
                    let (outcomes, rest): (Vec<Outgoing>, Vec<Outgoing>) =
                        writes.into_iter().partition(|w| w.topic != Topic::InventoryChangelog);
                    async {
                        log.append(outcomes).await?;
                        log.append(rest).await?;
                        log.commit(me, positions).await
                    }
                    .await
                }
            };
            decided.settled(&written);
            written?;
            committed = done;
        }
        Ok(())
    }
    .await;
    if let Err(e) = log.leave(me).await {
        tracing::debug!(error = %e, "inventory leaving its group");
    }
    result
}

/// The span Analytics counts a record in: under, and linked to, the span that published it. A
/// record read again (a replay, a batch read again after a rebalance) is counted in one more.
fn counting(tracer: &Tracer, record: &Record) -> Span {
    let span = tracer.consuming(format!("process {}", record.topic), record.header(TRACEPARENT));
    span.set("messaging.system", "kafka");
    span.set("messaging.destination.partition.id", i64::from(record.partition));
    span.set("messaging.kafka.offset", record.offset as i64);
    span.set(trace::ORDER_ID, record.key.clone());
    span
}

/// Analytics on the log: reads both topics into `state`, at most `throttle` records per
/// second if given, and commits its consumer's positions after each batch that took all there
/// was (a short one, and an empty poll that stepped over commit markers) — so that a group
/// that has read everything shows a lag of 0 — and after full ones at most every
/// [`ANALYTICS_COMMIT_EVERY`]. Stops when `stop` says so, leaving the group.
pub async fn run_analytics(
    log: Arc<dyn EventLog>,
    group: &str,
    state: Counting,
    batch: usize,
    throttle: Option<u32>,
    policy: Policy,
    tracer: Tracer,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LogError> {
    let mut backoff = policy.backoff(group);
    let retry = LogError::is_transient;
    let topics = Topic::EVENTS;
    let mut me = policy.until_ok(&mut backoff, "analytics joining its group", retry, || log.join(group, &topics)).await?;
    let batch = throttle.map_or(batch, |rate| batch.min((rate as usize / 10).max(1)));
    let started = Instant::now();
    let mut handled: u64 = 0;
    let mut committed: Vec<Position> = Vec::new();
    let mut last_commit = Instant::now();
    let mut watch = Watch::new(group, &topics, true, policy);
    while !*stop.borrow_and_update() {
        let records = policy.until_ok(&mut backoff, "analytics polling", retry, || log.poll(me, batch, POLL_WAIT)).await?;
        let events: Vec<&Record> = records.iter().filter(|r| r.header(WATERMARK_HEADER).is_none()).collect();
        let spans: Vec<Span> = events.iter().map(|r| counting(&tracer, r)).collect();
        state.count(events.into_iter().filter_map(decode));
        drop(spans);
        handled += records.len() as u64;
        if let Err(e) = watch.check(log.as_ref(), me).await {
            tracing::warn!(error = %e, "analytics replaces its consumer: it joins its group again");
            me = rejoin(log.as_ref(), me, group, &topics, policy, &mut backoff).await?;
            watch = Watch::new(group, &topics, true, policy);
            committed.clear();
            continue;
        }
        if analytics_commits(records.len(), batch, last_commit.elapsed()) {
            let next = policy.until_ok(&mut backoff, "analytics reading its positions", retry, || log.positions(me)).await?;
            // Right after a rebalance the consumer may know no position yet: nothing to commit.
            if !next.is_empty() && next != committed {
                if rejoin_after(policy.until_ok(&mut backoff, "analytics committing", retry, || log.commit(me, next.clone())).await)? {
                    me = rejoin(log.as_ref(), me, group, &topics, policy, &mut backoff).await?;
                    committed.clear();
                } else {
                    committed = next;
                }
                last_commit = Instant::now();
            }
        }
        if let Some(rate) = throttle {
            tokio::time::sleep_until(started + Duration::from_secs_f64(handled as f64 / f64::from(rate))).await;
        }
    }
    policy.until_ok(&mut backoff, "analytics leaving its group", retry, || log.leave(me)).await
}
