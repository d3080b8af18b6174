//! The load generator of Part A (and of the benchmarks): orders posted to Order in a closed
//! loop (clients each waiting for their answer) or an open one (arrivals on a schedule),
//! recording every answer. The same code drives the simulation and real sockets; only the
//! client differs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campus::api::grpc::{order_id_of, status};
use campus::domain::OrderRequest;
use campus::proto;
use campus::transport::RequestReply;
use campus::{Protocol, Service};
use tokio::time::Instant;

/// Where the load generator sends orders: Order, through `client`, over `protocol` — `POST
/// /order`, or gRPC `PlaceOrder` with the client's guard as its deadline.
#[derive(Clone)]
pub struct Door {
    pub client: Arc<dyn RequestReply>,
    pub protocol: Protocol,
}

impl Door {
    /// Order's REST face through `client`.
    pub fn rest(client: Arc<dyn RequestReply>) -> Self {
        Door { client, protocol: Protocol::Rest }
    }

    /// The bytes `order`'s request carries on the wire: its JSON body over REST; over gRPC its
    /// protobuf message and the 5-byte frame gRPC puts before it (HTTP headers aside, in both).
    pub fn body_bytes(&self, order: &OrderRequest) -> usize {
        match self.protocol {
            Protocol::Rest => serde_json::to_vec(order).map_or(0, |body| body.len()),
            Protocol::Grpc => prost::Message::encoded_len(&proto::PlaceOrderRequest::from(order)) + 5,
        }
    }

    /// Places `order`, giving it `within`: the answer's status as Order's REST face gives it
    /// (a gRPC answer read by the one table, `api::grpc::status`, its `OK` as 201) and the
    /// order id the answer names (empty when none); an error when no answer came.
    pub async fn place(&self, order: &OrderRequest, within: Duration) -> Result<(u16, String), String> {
        match self.protocol {
            Protocol::Rest => {
                let reply = self.client.post_json(Service::Order, "/order", order).await.map_err(|e| e.to_string())?;
                Ok((reply.status().as_u16(), order_id_of_body(reply.body())))
            }
            Protocol::Grpc => {
                let mut client = proto::order_client::OrderClient::new(self.client.clone().grpc(Service::Order));
                let mut request = tonic::Request::new(proto::PlaceOrderRequest::from(order));
                request.set_timeout(within);
                match client.place_order(request).await {
                    Ok(reply) => Ok((201, reply.into_inner().order_id)),
                    // A status without Order's error label is the channel's own: Order was
                    // not reached, or did not answer within the deadline — no answer, as for REST.
                    Err(s) if s.metadata().get(campus::api::grpc::ERROR_LABEL).is_none() => {
                        Err(format!("no answer ({:?}): {}", s.code(), s.message()))
                    }
                    Err(s) => Ok((status::status_for(s.code()).as_u16(), order_id_of(&s).unwrap_or_default())),
                }
            }
        }
    }
}

/// One request as the load generator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub index: usize,
    /// When it was meant to go, from the load's start: in a closed loop, when its client sent
    /// it; in an open loop, its place on the schedule.
    pub intended: Duration,
    /// The order id from the reply body; empty when the reply has none (e.g. invalid input).
    pub order_id: String,
    /// The HTTP status; 0 when no answer came (connection failed, or `client_guard` passed).
    pub status: u16,
    pub latency: Duration,
}

/// How orders arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrivals {
    /// `clients` clients, each sending its next order when the last one is answered: the rate
    /// is whatever the answers allow.
    Closed { clients: usize },
    /// Each order at its offset from the start whatever the answers ([`crate::load`]'s
    /// schedule). Its latency is measured from that intended start, not from when the sender
    /// got to it, so a sender that falls behind is charged for the wait (no coordinated
    /// omission).
    Open { offsets: Vec<Duration> },
}

/// Sends `orders` to Order through `door` from `concurrency` clients in a closed loop; returns
/// the answers in request order and the time the whole load took. The same code drives the
/// simulation and real sockets: only `client` differs.
pub async fn drive(door: Door, orders: Vec<OrderRequest>, concurrency: usize, guard: Duration) -> (Vec<Answer>, Duration) {
    drive_shown(door, orders, Arrivals::Closed { clients: concurrency }, guard, None).await
}

/// Posts one order; its answer, with the latency counted from `intended` (the moment it was
/// meant to be sent).
async fn post(door: &Door, index: usize, order: &OrderRequest, start: Instant, intended: Instant, guard: Duration) -> Answer {
    let reply = tokio::time::timeout(guard, door.place(order, guard)).await;
    let latency = intended.elapsed();
    let (status, order_id) = match reply {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::warn!(index, error = %e, "no answer from order");
            (0, String::new())
        }
        Err(_) => {
            tracing::warn!(index, guard_ms = guard.as_millis() as u64, "order did not answer within the guard");
            (0, String::new())
        }
    };
    Answer { index, intended: intended - start, order_id, status, latency }
}

/// Sends `orders` as `arrivals` says, with a live count of the answers on stderr under `label`
/// if given (a real load can take half a minute: 100 requests held 2 s each by 10 clients).
pub async fn drive_shown(
    door: Door,
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
                let (door, orders, next, answers) = (door.clone(), orders.clone(), next.clone(), answers.clone());
                senders.spawn(async move {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(order) = orders.get(index) else { break };
                        let answer = post(&door, index, order, started, Instant::now(), guard).await;
                        answers.lock().expect("answers lock").push(answer);
                    }
                });
            }
        }
        Arrivals::Open { mut offsets } => {
            offsets.truncate(orders.len());
            let schedule = crate::load::Schedule::starting_at(started, offsets);
            let (door, orders, answers) = (door.clone(), orders.clone(), answers.clone());
            senders.spawn(async move {
                crate::load::drive(&schedule, |index, intended| {
                    let (door, orders, answers) = (door.clone(), orders.clone(), answers.clone());
                    async move {
                        let answer = post(&door, index, &orders[index], started, intended, guard).await;
                        answers.lock().expect("answers lock").push(answer);
                    }
                })
                .await;
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

/// `answers` on one clock (the load's, from its start): Part A's accept is its completion,
/// Order answering once the whole chain has run; an order not answered 201 has neither.
pub fn timed(answers: &[Answer]) -> Vec<crate::load::Timed> {
    answers
        .iter()
        .map(|a| {
            let done = (a.status == 201).then_some(a.latency);
            let intended_ms = a.intended.as_millis() as u64;
            crate::load::Timed { index: a.index, order_id: a.order_id.clone(), intended_ms, accept: done, completion: done }
        })
        .collect()
}

fn order_id_of_body(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("order_id").and_then(|id| id.as_str()).map(str::to_owned))
        .unwrap_or_default()
}
