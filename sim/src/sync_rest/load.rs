//! The load generator of Part A (and of the benchmarks): orders posted to Order in a closed
//! loop (clients each waiting for their answer) or an open one (arrivals on a schedule),
//! recording every answer. The same code drives the simulation and real sockets; only the
//! client differs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campus::domain::OrderRequest;
use campus::transport::RequestReply;
use campus::Service;
use tokio::time::Instant;

/// One request as the load generator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub index: usize,
    /// The order id from the reply body; empty when the reply has none (e.g. invalid input).
    pub order_id: String,
    /// The HTTP status; 0 when no answer came (connection failed, or `client_guard` passed).
    pub status: u16,
    pub latency: Duration,
}

/// How orders arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// `clients` clients, each sending its next order when the last one is answered: the rate
    /// is whatever the answers allow.
    Closed { clients: usize },
    /// One order every `1 / per_s` seconds whatever the answers. Each order's latency is
    /// measured from its intended send time, not from when the sender got to it, so a sender
    /// that falls behind is charged for the wait (no coordinated omission).
    Open { per_s: u32 },
}

/// Sends `orders` to Order's `POST /order` from `concurrency` clients in a closed loop; returns
/// the answers in request order and the time the whole load took. The same code drives the
/// simulation and real sockets: only `client` differs.
pub async fn drive(
    client: Arc<dyn RequestReply>,
    orders: Vec<OrderRequest>,
    concurrency: usize,
    guard: Duration,
) -> (Vec<Answer>, Duration) {
    drive_shown(client, orders, Arrivals::Closed { clients: concurrency }, guard, None).await
}

/// Posts one order; its answer, with the latency counted from `intended` (the moment it was
/// meant to be sent).
async fn post(client: &dyn RequestReply, index: usize, order: &OrderRequest, intended: Instant, guard: Duration) -> Answer {
    let reply = tokio::time::timeout(guard, client.post_json(Service::Order, "/order", order)).await;
    let latency = intended.elapsed();
    let (status, order_id) = match reply {
        Ok(Ok(reply)) => (reply.status().as_u16(), order_id_of(reply.body())),
        Ok(Err(e)) => {
            tracing::warn!(index, error = %e, "no answer from order");
            (0, String::new())
        }
        Err(_) => {
            tracing::warn!(index, guard_ms = guard.as_millis() as u64, "order did not answer within the guard");
            (0, String::new())
        }
    };
    Answer { index, order_id, status, latency }
}

/// Sends `orders` as `arrivals` says, with a live count of the answers on stderr under `label`
/// if given (a real load can take half a minute: 100 requests held 2 s each by 10 clients).
pub async fn drive_shown(
    client: Arc<dyn RequestReply>,
    orders: Vec<OrderRequest>,
    arrivals: Arrivals,
    guard: Duration,
    label: Option<&'static str>,
) -> (Vec<Answer>, Duration) {
    let total = orders.len();
    let orders = Arc::new(orders);
    let answers = Arc::new(Mutex::new(Vec::with_capacity(orders.len())));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    match arrivals {
        Arrivals::Closed { clients } => {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..clients.min(orders.len()) {
                let (client, orders, next, answers) = (client.clone(), orders.clone(), next.clone(), answers.clone());
                senders.spawn(async move {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(order) = orders.get(index) else { break };
                        let answer = post(client.as_ref(), index, order, Instant::now(), guard).await;
                        answers.lock().expect("answers lock").push(answer);
                    }
                });
            }
        }
        Arrivals::Open { per_s } => {
            let (client, orders, answers) = (client.clone(), orders.clone(), answers.clone());
            let every = Duration::from_secs(1) / per_s.max(1);
            senders.spawn(async move {
                let mut in_flight = tokio::task::JoinSet::new();
                for index in 0..orders.len() {
                    let intended = started + every * index as u32;
                    tokio::time::sleep_until(intended).await;
                    let (client, orders, answers) = (client.clone(), orders.clone(), answers.clone());
                    in_flight.spawn(async move {
                        let answer = post(client.as_ref(), index, &orders[index], intended, guard).await;
                        answers.lock().expect("answers lock").push(answer);
                    });
                }
                while let Some(joined) = in_flight.join_next().await {
                    joined.expect("an open-loop request panicked");
                }
            });
        }
    }
    let mut live = label.map(crate::progress::Progress::new);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            joined = senders.join_next() => match joined {
                Some(joined) => joined.expect("a load-generator client panicked"),
                None => break,
            },
            _ = tick.tick(), if live.is_some() => {
                let answered = answers.lock().expect("answers lock").len();
                if let Some(live) = live.as_mut() {
                    live.update(|| format!("{answered} of {total} answered"));
                }
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(live) = live {
        live.finish(&format!("{total} answered in {:.1} s", elapsed.as_secs_f64()));
    }
    let mut answers = std::mem::take(&mut *answers.lock().expect("answers lock"));
    answers.sort_by_key(|a| a.index);
    (answers, elapsed)
}

fn order_id_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("order_id").and_then(|id| id.as_str()).map(str::to_owned))
        .unwrap_or_default()
}
