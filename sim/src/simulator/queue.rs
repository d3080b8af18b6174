//! [`SimQueue`]: the messaging model in memory, faithful to the AMQP semantics the lab relies
//! on (see `campus::transport::queue`): durable queues (the queue outlives its consumers),
//! publisher confirms (a publish returns after one network hop), at-least-once delivery with
//! manual acks, a prefetch limit per consumer, unacked deliveries of a cancelled or dropped
//! consumer returned to the head of the queue with `redelivered` set, nack without requeue and
//! the delivery limit dead-lettering, and `dead_letter` recording a reason.
//!
//! A requeued (nacked) message goes to the back of its queue, as a quorum queue does; a dead
//! consumer's unacked deliveries go back to the front in their original order.
//!
//! **Outages** ([`SimQueue::set_down`], applied by the world): while the broker is down every
//! call fails with `Unreachable`, every subscription ends and its unacked deliveries return
//! (as when their consumer dies), and nothing moves; the queues themselves are kept (durable).
//! A publish under way when the broker goes down reaches the queue, but its confirm is lost:
//! the publisher sees an error and publishes again — the harsher of the two possibilities,
//! because it makes a duplicate the consumer's dedup must absorb.
//!
//! **A hang** ([`SimQueue::set_hung`]: RabbitMQ SIGSTOPped, for real): the connections stay
//! open and nothing answers — every call waits until the broker answers again, nothing is
//! delivered, nothing is lost. That is what a real client sees while the hang is shorter than
//! the AMQP heartbeat's timeout (RabbitMQ's 60 s); the schedules' hangs are (at most 3 s of
//! virtual time, 15 s for real at the default scale). What a longer hang does to a client's
//! connection is not modelled (closed by the client, it would be the outage above).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use campus::transport::queue::{self, Delivery, MessageQueue, QueueError, QueueName, Subscription, DELIVERY_LIMIT, DELIVERY_LIMIT_REASON};
use campus::transport::{BoxFuture, Headers};

use crate::simulator::answering::Answering;
use crate::simulator::net::LinkModel;
use crate::simulator::rng::SimRng;

#[derive(Debug, Clone)]
struct Message {
    body: Bytes,
    headers: Headers,
    redelivered: bool,
    /// Times returned to the queue (nack with requeue, or its consumer went away).
    returns: u32,
    reason: Option<String>,
}

struct Consumer {
    queue: QueueName,
    prefetch: usize,
    unacked: BTreeMap<u64, Message>,
    tx: flume::Sender<Delivery>,
}

#[derive(Default)]
struct State {
    ready: BTreeMap<QueueName, VecDeque<Message>>,
    consumers: BTreeMap<u64, Consumer>,
    next_id: u64,
    next_tag: u64,
    /// The broker is away (an outage).
    down: bool,
    /// The broker hangs (answers nothing, drops nothing).
    hung: bool,
}

fn unreachable() -> QueueError {
    QueueError::Unreachable("the broker is down".into())
}

impl State {
    fn enqueue(&mut self, queue: QueueName, message: Message) {
        self.ready.entry(queue).or_default().push_back(message);
    }

    fn dead_letter(&mut self, mut message: Message, reason: &str) {
        message.reason = Some(reason.to_owned());
        message.redelivered = false;
        self.enqueue(QueueName::DeadLetter, message);
    }

    /// A consumer is gone: its unacked deliveries go back to the front of the queue, in order,
    /// unless they reached the delivery limit.
    fn cancel(&mut self, id: u64) {
        let Some(consumer) = self.consumers.remove(&id) else { return };
        for (_, mut message) in consumer.unacked.into_iter().rev() {
            message.returns += 1;
            message.redelivered = true;
            if message.returns > DELIVERY_LIMIT {
                self.dead_letter(message, DELIVERY_LIMIT_REASON);
            } else {
                self.ready.entry(consumer.queue).or_default().push_front(message);
            }
        }
    }

    fn settle(&mut self, delivery: &Delivery) -> Result<Message, QueueError> {
        if self.down {
            return Err(unreachable());
        }
        self.consumers
            .get_mut(&delivery.consumer)
            .and_then(|c| c.unacked.remove(&delivery.tag))
            .ok_or_else(|| QueueError::Broker(format!("unknown delivery tag {} on subscription {}", delivery.tag, delivery.consumer)))
    }

    /// `delivery` and every earlier unacknowledged delivery of its subscription settled at once
    /// (AMQP's `multiple`); as with RabbitMQ, an unknown tag is an error.
    fn settle_through(&mut self, delivery: &Delivery) -> Result<(), QueueError> {
        self.settle(delivery)?;
        let consumer = self.consumers.get_mut(&delivery.consumer).expect("settled above");
        consumer.unacked = consumer.unacked.split_off(&delivery.tag);
        Ok(())
    }

    /// Hands ready messages to consumers with room under their prefetch, round robin in
    /// subscription order. Consumers whose receiver was dropped are cancelled first.
    fn pump(&mut self) {
        if self.down || self.hung {
            return;
        }
        let gone: Vec<u64> = self.consumers.iter().filter(|(_, c)| c.tx.is_disconnected()).map(|(id, _)| *id).collect();
        for id in gone {
            self.cancel(id);
        }
        loop {
            let mut delivered = false;
            let ids: Vec<u64> = self.consumers.keys().copied().collect();
            for id in ids {
                let consumer = self.consumers.get(&id).expect("listed above");
                if consumer.unacked.len() >= consumer.prefetch {
                    continue;
                }
                let queue = consumer.queue;
                let Some(message) = self.ready.get_mut(&queue).and_then(VecDeque::pop_front) else { continue };
                self.next_tag += 1;
                let tag = self.next_tag;
                let delivery = Delivery {
                    queue,
                    consumer: id,
                    tag,
                    body: message.body.clone(),
                    redelivered: message.redelivered,
                    reason: message.reason.clone(),
                    headers: message.headers.clone(),
                };
                let consumer = self.consumers.get_mut(&id).expect("listed above");
                if consumer.tx.send(delivery).is_ok() {
                    consumer.unacked.insert(tag, message);
                    delivered = true;
                } else {
                    self.ready.entry(queue).or_default().push_front(message);
                    self.cancel(id);
                }
            }
            if !delivered {
                return;
            }
        }
    }
}

/// The in-memory broker. Publishes take one seeded network hop of the runtime's (virtual)
/// time — the publisher confirm's round trip; acks are fire-and-forget, as in AMQP.
pub struct SimQueue {
    state: Arc<Mutex<State>>,
    rng: Mutex<SimRng>,
    link: LinkModel,
    /// Wakes the calls waiting out a hang.
    answering: Answering,
}

impl SimQueue {
    pub fn new(rng: SimRng, link: LinkModel) -> Self {
        SimQueue { state: Arc::new(Mutex::new(State::default())), rng: Mutex::new(rng), link, answering: Answering::default() }
    }

    fn hop(&self) -> Duration {
        let (lo, hi) = (self.link.min.as_millis() as u64, self.link.max.as_millis() as u64);
        Duration::from_millis(self.rng.lock().expect("rng lock").between(lo, hi))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().expect("queue state lock");
        let out = f(&mut state);
        state.pump();
        out
    }

    /// The broker goes down (`true`) or comes back (`false`). Going down ends every
    /// subscription: their unacked deliveries return to their queues, redelivered.
    pub fn set_down(&self, down: bool) {
        let mut state = self.state.lock().expect("queue state lock");
        if down && !state.down {
            let ids: Vec<u64> = state.consumers.keys().copied().collect();
            for id in ids {
                state.cancel(id);
            }
        }
        state.down = down;
        state.pump();
    }

    /// The broker hangs (`true`: every call waits, nothing is delivered) or answers again.
    pub fn set_hung(&self, hung: bool) {
        let mut state = self.state.lock().expect("queue state lock");
        state.hung = hung;
        state.pump();
        self.answering.set_hung(hung);
    }

    /// Whether the broker is away now (down, or its clients failing over).
    pub fn is_down(&self) -> bool {
        self.state.lock().expect("queue state lock").down
    }

    /// Messages ready in `queue`, whether or not the broker is up (the lab's own view).
    pub fn ready(&self, queue: QueueName) -> u64 {
        self.state.lock().expect("queue state lock").ready.get(&queue).map_or(0, |q| q.len() as u64)
    }

    /// Messages delivered and not yet settled, over all consumers of `queue`.
    pub fn unacked(&self, queue: QueueName) -> usize {
        let state = self.state.lock().expect("queue state lock");
        state.consumers.values().filter(|c| c.queue == queue).map(|c| c.unacked.len()).sum()
    }
}

impl MessageQueue for SimQueue {
    /// All in flight at once: one hop for the lot, as with pipelined AMQP confirms.
    fn publish_all(&self, messages: Vec<queue::Message>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            self.answering.wait().await;
            if self.with(|s| s.down) {
                return Err(unreachable());
            }
            tokio::time::sleep(self.hop()).await;
            self.answering.wait().await;
            self.with(|s| {
                for message in messages {
                    for queue in message.route.queues() {
                        let (body, headers) = (message.body.clone(), message.headers.clone());
                        s.enqueue(*queue, Message { body, headers, redelivered: false, returns: 0, reason: None });
                    }
                }
                // Down since the publish left: stored, but the confirm is lost.
                if s.down {
                    Err(unreachable())
                } else {
                    Ok(())
                }
            })
        })
    }

    fn consume(&self, queue: QueueName, prefetch: u16) -> BoxFuture<'_, Result<Subscription, QueueError>> {
        Box::pin(async move {
            self.answering.wait().await;
            let (tx, rx) = flume::unbounded();
            let id = self.with(|s| {
                if s.down {
                    return Err(unreachable());
                }
                s.next_id += 1;
                s.consumers.insert(s.next_id, Consumer { queue, prefetch: usize::from(prefetch.max(1)), unacked: BTreeMap::new(), tx });
                Ok(s.next_id)
            })?;
            let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
            let state = self.state.clone();
            tokio::spawn(async move {
                let _ = cancelled.await;
                let mut state = state.lock().expect("queue state lock");
                state.cancel(id);
                state.pump();
            });
            Ok(Subscription::new(id, rx, cancel))
        })
    }

    fn ack(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        let delivery = delivery.clone();
        Box::pin(async move {
            self.answering.wait().await;
            self.with(|s| s.settle(&delivery).map(drop))
        })
    }

    fn ack_through(&self, delivery: &Delivery) -> BoxFuture<'_, Result<(), QueueError>> {
        let delivery = delivery.clone();
        Box::pin(async move {
            self.answering.wait().await;
            self.with(|s| s.settle_through(&delivery))
        })
    }

    fn nack(&self, delivery: &Delivery, requeue: bool) -> BoxFuture<'_, Result<(), QueueError>> {
        let delivery = delivery.clone();
        Box::pin(async move {
            self.answering.wait().await;
            self.with(|s| {
                let mut message = s.settle(&delivery)?;
                if !requeue {
                    s.dead_letter(message, "rejected");
                } else {
                    message.returns += 1;
                    message.redelivered = true;
                    if message.returns > DELIVERY_LIMIT {
                        s.dead_letter(message, DELIVERY_LIMIT_REASON);
                    } else {
                        s.enqueue(delivery.queue, message);
                    }
                }
                Ok(())
            })
        })
    }

    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> BoxFuture<'_, Result<(), QueueError>> {
        let (delivery, reason) = (delivery.clone(), reason.to_owned());
        Box::pin(async move {
            self.answering.wait().await;
            if self.with(|s| s.down) {
                return Err(unreachable());
            }
            tokio::time::sleep(self.hop()).await;
            self.answering.wait().await;
            self.with(|s| {
                let message = s.settle(&delivery)?;
                s.dead_letter(message, &reason);
                Ok(())
            })
        })
    }

    fn depth(&self, queue: QueueName) -> BoxFuture<'_, Result<u64, QueueError>> {
        Box::pin(async move {
            self.answering.wait().await;
            if self.with(|s| s.down) {
                Err(unreachable())
            } else {
                Ok(self.ready(queue))
            }
        })
    }

    fn is_connected(&self) -> bool {
        !self.state.lock().expect("queue state lock").down
    }
}
