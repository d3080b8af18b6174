//! The services as message consumers (Part B). One loop, [`consume`], does what every consumer
//! must: take a window of deliveries, decode them, hand the events to the service, settle the
//! window. The services only say what they made of each event ([`Verdict`]).
//!
//! **A window** is what the subscription holds when the consumer looks (at most `prefetch`
//! deliveries, at least one): the service decides it in one store transaction (Inventory also
//! publishes its outcomes together, their confirms awaited at once), and the window is then
//! acknowledged with one `multiple` ack on its last delivery. Under load a window is as large as
//! the backlog the broker has handed over; with `prefetch` 1, or a trickle, it is one delivery.
//!
//! Settling order matters and is the same everywhere: the service commits its state change
//! (and publishes what follows from it, with a confirm) **before** the window is acked. A
//! crash anywhere before the ack means the whole window is delivered again — the unit a crash
//! costs is a window — and the services' stores make the repeats harmless (see `crate::store`).
//! A message that can never be handled (malformed, or not of this queue) is dead-lettered on its
//! own, and one to try again returned to the queue on its own, before the window's ack, which
//! then covers only what was done.
//!
//! **When the broker goes away** the subscription ends and settling fails: the consumer stops
//! taking deliveries, waits (backoff with jitter, [`Policy`]) and subscribes again, for as long
//! as it takes. What it held unacknowledged comes back as redeliveries, which the stores absorb.
//! The consumer never exits because of the broker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;

use crate::domain::{Envelope, Event, OrderId, OrderPlaced, OrderStatus, StudentId};
use crate::retry::Policy;
use crate::services::completions::Completions;
use crate::store::{InventoryStore, NotificationStore, OrderStore, StoreError};
use crate::telemetry::trace::{self, Kind, Span, Tracer, WithContext};
use crate::transport::queue::{Delivery, Message, MessageQueue, QueueError, QueueName, Route, Subscription};
use crate::transport::TRACEPARENT;

/// What a service made of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled (or a harmless repeat): ack.
    Done,
    /// Can never be handled here: dead-letter with this reason, ack.
    Poison(String),
    /// Could not be handled now (store or broker trouble): back to the queue. After
    /// `DELIVERY_LIMIT` returns the broker dead-letters it.
    Retry(String),
}

/// The events of one window, in delivery order, each with the span it is handled in.
pub struct Window {
    events: Vec<Event>,
    spans: Vec<Context>,
}

impl Window {
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// A `store commit` span under each event's `process` span, all timing the window's one
    /// commit: each order's trace shows the commit its message was decided in.
    fn committing(&self, tracer: &Tracer) -> Vec<Span> {
        self.spans.iter().map(|cx| tracer.start("store commit", Kind::Internal, cx, Vec::new())).collect()
    }

    /// The `traceparent` of the `process` span of event `i`: what is published because of it
    /// belongs to its order's trace.
    fn traceparent(&self, i: usize) -> Option<String> {
        trace::traceparent_of(&self.spans[i])
    }
}

/// Consumes `queue`: subscribes, handles windows of deliveries, and when the subscription ends
/// or the broker fails, subscribes again after a backoff — unless `policy` says not to
/// reconnect, in which case it returns (the lab's `--break no-reconnect`).
///
/// `handle` decides a [`Window`] and returns one verdict per event, in order. Windows may
/// overlap: while one waits (for its store's commit, for the broker's confirms) the next is
/// taken from what arrived meanwhile, up to `prefetch` deliveries held in all; they are settled
/// strictly in the order they were taken, so that a window's `multiple` ack never covers a
/// later window's deliveries. Repeats of one order are safe because the stores serialize their
/// transactions.
///
/// Each delivery is handled in a `process` span ([`crate::telemetry::trace`]): a child of, and
/// linked to, the `publish` span its `traceparent` names, so that what the handler publishes is
/// in the order's trace; a redelivery is one more such span.
pub async fn consume<F>(
    mq: &dyn MessageQueue,
    queue: QueueName,
    prefetch: u16,
    policy: Policy,
    tracer: &Tracer,
    mut handle: F,
) -> Result<(), QueueError>
where
    F: FnMut(Window) -> futures_lite::future::Boxed<Vec<Verdict>>,
{
    let mut backoff = policy.backoff(queue.suffix());
    let what = format!("the consumer of {queue} subscribing");
    loop {
        let subscription = policy.until_ok(&mut backoff, &what, QueueError::is_transient, || mq.consume(queue, prefetch)).await?;
        let ended = drain(mq, queue, prefetch, policy, &subscription, tracer, &mut handle).await;
        if !policy.reconnect {
            return ended;
        }
        match ended {
            Ok(()) => tracing::warn!(%queue, "the subscription ended (the broker went away?); subscribing again"),
            Err(e) => tracing::warn!(%queue, error = %e, "settling failed (the broker went away?); subscribing again"),
        }
        backoff.wait().await;
    }
}

/// One window being handled: its deliveries, what was made of each, and their spans.
type Handled = (Vec<Delivery>, Vec<Verdict>, Vec<Span>);

/// The windows in flight, oldest first, each a task of its own. Dropped — the subscription
/// failed, or the consumer's own task was aborted as a crash aborts it — they are aborted
/// with it: a dead consumer does no more work, and what it held comes back.
#[derive(Default)]
struct InFlight(VecDeque<tokio::task::JoinHandle<Handled>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.iter().for_each(|window| window.abort());
    }
}

/// Handles `subscription`'s deliveries, window by window, until it ends (then waits for the
/// windows in flight) or a settle fails (then the windows in flight are dropped: their
/// deliveries come back).
async fn drain<F>(
    mq: &dyn MessageQueue,
    queue: QueueName,
    prefetch: u16,
    policy: Policy,
    subscription: &Subscription,
    tracer: &Tracer,
    handle: &mut F,
) -> Result<(), QueueError>
where
    F: FnMut(Window) -> futures_lite::future::Boxed<Vec<Verdict>>,
{
    let limit = usize::from(prefetch.max(1));
    let mut windows = InFlight::default();
    let (mut held, mut open) = (0, true);
    while open || !windows.0.is_empty() {
        let oldest = async {
            match windows.0.front_mut() {
                Some(window) => window.await.expect("a message handler panicked"),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            (deliveries, verdicts, spans) = oldest => {
                windows.0.pop_front();
                held -= deliveries.len();
                settle(mq, queue, policy, &deliveries, verdicts, &spans).await?;
            }
            next = subscription.deliveries.recv_async(), if open && held < limit => {
                let Ok(first) = next else {
                    open = false;
                    continue;
                };
                let mut deliveries = vec![first];
                while held + deliveries.len() < limit {
                    let Ok(more) = subscription.deliveries.try_recv() else { break };
                    deliveries.push(more);
                }
                held += deliveries.len();
                if !policy.ack_after_commit {
                    // The lab's `--break ack-before-commit`: the window's events are gone from
                    // the broker before anything was done with them (a malformed message is
                    // still dead-lettered, which a broker allows only before the ack).
                    for delivery in deliveries.iter().filter(|d| belongs(queue, d)) {
                        mq.ack(delivery).await?;
                    }
                }
                windows.0.push_back(tokio::spawn(take(queue, tracer, deliveries, handle)));
            }
        }
    }
    Ok(())
}

/// The work of one window: its deliveries decoded (those that do not decode are poison at
/// once), the events handed to the service in one call, the verdicts put back in delivery
/// order.
fn take<F>(queue: QueueName, tracer: &Tracer, deliveries: Vec<Delivery>, handle: &mut F) -> futures_lite::future::Boxed<Handled>
where
    F: FnMut(Window) -> futures_lite::future::Boxed<Vec<Verdict>>,
{
    let spans: Vec<Span> = deliveries.iter().map(|d| processing(tracer, queue, d)).collect();
    let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(deliveries.len());
    let mut window = Window { events: Vec::new(), spans: Vec::new() };
    for (delivery, span) in deliveries.iter().zip(&spans) {
        match Envelope::decode(&delivery.body) {
            Err(e) => verdicts.push(Some(Verdict::Poison(format!("{}: {e}", e.label())))),
            Ok(event) => {
                span.set(trace::ORDER_ID, event.order_id().to_string());
                window.events.push(event);
                window.spans.push(span.context());
                verdicts.push(None);
            }
        }
    }
    let work = if window.events.is_empty() {
        None
    } else {
        let first = window.spans[0].clone();
        Some(handle(window).with_context(first))
    };
    Box::pin(async move {
        let mut decided = match work {
            Some(work) => work.await.into_iter(),
            None => Vec::new().into_iter(),
        };
        let verdicts = verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(|| decided.next().unwrap_or_else(|| Verdict::Retry("the service gave no verdict".into()))))
            .collect();
        (deliveries, verdicts, spans)
    })
}

/// Whether `delivery` carries an event of `queue` (what a consumer acks on receipt under
/// `--break ack-before-commit`; anything else is poison, dead-lettered as usual).
fn belongs(queue: QueueName, delivery: &Delivery) -> bool {
    Envelope::decode(&delivery.body).is_ok_and(|event| Route::of(&event).queues().contains(&queue))
}

/// The span a delivery is handled in, under and linked to the span that published it.
fn processing(tracer: &Tracer, queue: QueueName, delivery: &Delivery) -> Span {
    let span = tracer.consuming(format!("process {queue}"), delivery.header(TRACEPARENT));
    span.set("messaging.system", "rabbitmq");
    span.set("messaging.destination.name", queue.suffix());
    span.set("messaging.rabbitmq.redelivered", delivery.redelivered);
    span
}

/// Settles a window: each poison message dead-lettered and each one to retry returned, on its
/// own; then one `multiple` ack on the last delivery that was done, which covers every done
/// delivery of the window (nothing earlier on the subscription is left unsettled: windows are
/// settled in order). Under `--break ack-before-commit` the window's events were acked when
/// taken, and only a malformed message is left to settle.
async fn settle(
    mq: &dyn MessageQueue,
    queue: QueueName,
    policy: Policy,
    deliveries: &[Delivery],
    verdicts: Vec<Verdict>,
    spans: &[Span],
) -> Result<(), QueueError> {
    let mut last_done = None;
    let mut paused = false;
    for ((delivery, verdict), span) in deliveries.iter().zip(verdicts).zip(spans) {
        match verdict {
            Verdict::Done => last_done = Some(delivery),
            Verdict::Poison(reason) => {
                span.fail(reason.clone());
                if policy.ack_after_commit || !belongs(queue, delivery) {
                    tracing::info!(%queue, %reason, "dead-lettering a message");
                    mq.dead_letter(delivery, &reason).await?;
                }
            }
            Verdict::Retry(detail) => {
                span.fail(detail.clone());
                if policy.ack_after_commit {
                    tracing::warn!(%queue, %detail, "handling failed; returning the message to the queue");
                    if !paused {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        paused = true;
                    }
                    mq.nack(delivery, true).await?;
                }
            }
        }
    }
    match last_done {
        Some(delivery) if policy.ack_after_commit => mq.ack_through(delivery).await,
        _ => Ok(()),
    }
}

/// `commit`, the window's one store transaction, timed in a `store commit` span under each of
/// its messages' `process` spans. While the store does not answer (its database restarting:
/// [`StoreError::is_transient`]) the commit is tried again in place, with backoff, for as long
/// as it takes: the window stays in hand, unacknowledged, and never goes back to the queue for
/// it. Returned to the queue instead, a good message would count towards the delivery limit
/// and be dead-lettered after five quick returns, though nothing was wrong with it. Any other
/// error is the caller's (and under the lab's `--break no-reconnect`, every error).
async fn committed<T, Fut>(
    tracer: &Tracer,
    window: &Window,
    policy: Policy,
    what: &str,
    commit: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let spans = window.committing(tracer);
    let result = policy.until_ok(&mut policy.backoff(what), what, StoreError::is_transient, commit).await;
    if let Err(e) = &result {
        spans.iter().for_each(|span| span.fail(e.to_string()));
    }
    result
}

/// Sorts a window's events into those the service takes (`pick` gives what it needs of one)
/// and those that do not belong on `queue`: one verdict per event, poison for the latter and
/// `Done` for the former until the service says otherwise; the places of the taken.
fn sorted<'a, T>(window: &'a Window, queue: QueueName, pick: impl Fn(&'a Event) -> Option<T>) -> (Vec<Verdict>, Vec<usize>, Vec<T>) {
    let (mut verdicts, mut places, mut taken) = (Vec::new(), Vec::new(), Vec::new());
    for (i, event) in window.events.iter().enumerate() {
        match pick(event) {
            Some(t) => {
                verdicts.push(Verdict::Done);
                places.push(i);
                taken.push(t);
            }
            None => verdicts.push(unexpected(event, queue)),
        }
    }
    (verdicts, places, taken)
}

/// Every taken event's verdict (at `places`) set to `Retry(why)`.
fn retry_all(mut verdicts: Vec<Verdict>, places: &[usize], why: String) -> Vec<Verdict> {
    for &i in places {
        verdicts[i] = Verdict::Retry(why.clone());
    }
    verdicts
}

fn unexpected(event: &Event, queue: QueueName) -> Verdict {
    Verdict::Poison(format!("unexpected_event: {} does not belong on {queue}", event.kind()))
}

/// Inventory: reserve a window's orders (idempotently) in one transaction, publish their
/// outcomes with their confirms awaited together, then ack the window.
pub async fn run_inventory(
    mq: Arc<dyn MessageQueue>,
    store: Arc<InventoryStore>,
    prefetch: u16,
    policy: Policy,
    tracer: Tracer,
) -> Result<(), QueueError> {
    let (publisher, timer) = (mq.clone(), tracer.clone());
    consume(mq.as_ref(), QueueName::InventoryInbox, prefetch, policy, &tracer, move |window| {
        let (mq, store, tracer) = (publisher.clone(), store.clone(), timer.clone());
        Box::pin(async move {
            let placed = |event: &Event| match event {
                Event::OrderPlaced(placed) => Some(placed.clone()),
                _ => None,
            };
            let (verdicts, places, orders) = sorted(&window, QueueName::InventoryInbox, placed);
            if orders.is_empty() {
                return verdicts;
            }
            let refs: Vec<&OrderPlaced> = orders.iter().collect();
            let handled = match committed(&tracer, &window, policy, "Inventory's store", || store.handle_all(&refs)).await {
                Ok(handled) => handled,
                Err(e) => return retry_all(verdicts, &places, e.to_string()),
            };
            let mut outcomes = Vec::with_capacity(handled.len());
            for (&i, handled) in places.iter().zip(handled) {
                if !handled.first {
                    tracing::info!(order_id = %handled.event.order_id(), "repeat OrderPlaced: re-emitting the stored outcome");
                }
                let message = Message::new(Route::of(&handled.event), Envelope::new(handled.event).encode());
                outcomes.push(match window.traceparent(i) {
                    Some(traceparent) => message.with_header(TRACEPARENT, traceparent),
                    None => message,
                });
            }
            match mq.publish_all(outcomes).await {
                Ok(()) => verdicts,
                Err(e) => retry_all(verdicts, &places, format!("publishing the outcomes: {e}")),
            }
        })
    })
    .await
}

/// Notification: one confirmation per reserved order, a window's in one transaction, then ack.
pub async fn run_notification(
    mq: Arc<dyn MessageQueue>,
    store: Arc<NotificationStore>,
    prefetch: u16,
    policy: Policy,
    completions: Completions,
    tracer: Tracer,
) -> Result<(), QueueError> {
    let timer = tracer.clone();
    consume(mq.as_ref(), QueueName::NotificationInbox, prefetch, policy, &tracer, move |window| {
        let (store, completions, tracer) = (store.clone(), completions.clone(), timer.clone());
        Box::pin(async move {
            let reserved = |event: &Event| match event {
                Event::InventoryReserved(reserved) => Some((reserved.order_id.clone(), reserved.student_id.clone())),
                _ => None,
            };
            let (verdicts, places, confirmations) = sorted(&window, QueueName::NotificationInbox, reserved);
            if confirmations.is_empty() {
                return verdicts;
            }
            let refs: Vec<(&OrderId, &StudentId)> = confirmations.iter().map(|(o, s)| (o, s)).collect();
            match committed(&tracer, &window, policy, "Notification's store", || store.send_all(&refs)).await {
                Ok(firsts) => {
                    for ((order_id, _), first) in confirmations.iter().zip(firsts) {
                        if first {
                            completions.record(order_id);
                        }
                    }
                    verdicts
                }
                Err(e) => retry_all(verdicts, &places, e.to_string()),
            }
        })
    })
    .await
}

/// Order: record a window of Inventory's verdicts as the orders' statuses, in one
/// transaction, then ack.
pub async fn run_order_status(
    mq: Arc<dyn MessageQueue>,
    store: Arc<OrderStore>,
    prefetch: u16,
    policy: Policy,
    tracer: Tracer,
) -> Result<(), QueueError> {
    let timer = tracer.clone();
    consume(mq.as_ref(), QueueName::OrderInbox, prefetch, policy, &tracer, move |window| {
        let (store, tracer) = (store.clone(), timer.clone());
        Box::pin(async move {
            let status = |event: &Event| OrderStatus::of(event).map(|status| (event.order_id().clone(), status));
            let (verdicts, places, outcomes) = sorted(&window, QueueName::OrderInbox, status);
            if outcomes.is_empty() {
                return verdicts;
            }
            let refs: Vec<(&OrderId, OrderStatus)> = outcomes.iter().map(|(o, s)| (o, *s)).collect();
            match committed(&tracer, &window, policy, "Order's store", || store.record_outcomes(&refs)).await {
                Ok(()) => verdicts,
                Err(e) => retry_all(verdicts, &places, e.to_string()),
            }
        })
    })
    .await
}
