//! Part C's HTTP faces: the producer (`POST /order`, `POST /orders`), Inventory's accounting
//! (`GET /stats`, `GET /stock`) and Analytics (`GET /analytics`, `GET /completions`); `GET
//! /health` on each.
//!
//! | route                | body                         | answer                                   |
//! |----------------------|------------------------------|------------------------------------------|
//! | producer `POST /order`  | an order (`student_id`, `items`) | 202 `{order_id, placed_at_ms}`: appended to `order-events` |
//! | producer `POST /orders` | up to [`MAX_BULK`] `OrderPlaced` (ids and event times given) | 202 `{appended}` |
//! | analytics `GET /analytics` | —                         | orders per minute and the failure rate, overall and per minute |
//! | analytics `GET /completions` | —                     | `[{order_id, at_ms}]`: when each order's outcome was first counted (event clock), oldest first |
//!
//! The producer answers 503 `log_unavailable` when Kafka does not take the records. A student's
//! `POST /order` gets its answer within [`ACCEPT_WITHIN`] whatever Kafka does: 202 once Kafka
//! confirmed the order, else 503 — while Kafka is down, and while it hangs (its connections
//! open, nothing answering), when nothing else would tell the client anything until its own
//! timeout. A 503 for want of an answer does not say the order is not in the log: the record
//! may still be appended once Kafka answers (the Kafka client keeps it), so it says to send the
//! order again under the same `Idempotency-Key`, which Inventory and Analytics count once. The
//! lab's loader (`POST /orders`) waits an outage out instead: it has no student waiting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::{self, ApiError, IdempotencyKey, JsonBody, Probe};
use crate::domain::{OrderId, OrderPlaced, OrderRequest};
use crate::services::analytics::{Analytics, Counting, Metrics, MinuteMetrics};
use crate::services::inventory::Inventory;
use crate::services::order::OrderIds;
use crate::store::InventoryStats;
use crate::streaming_kafka::consumers::{self, InventoryView};
use crate::streaming_kafka::partitioned::{self, ShardsView};
use crate::streaming_kafka::producer::Producer;
use crate::transport::log::LogError;

/// Events per `POST /orders`.
pub const MAX_BULK: usize = 10_000;
/// `POST /order` answers within this: 202 once Kafka confirmed the order, else 503. A healthy
/// single broker confirms in milliseconds (acks from every in-sync replica); a client's own
/// timeout is commonly 5 s or more, so two seconds leaves it an answer to act on.
pub const ACCEPT_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
/// Body limit of `POST /orders` (about 250 bytes an event).
const MAX_BULK_BYTES: usize = 4 * 1024 * 1024;

/// `POST /order`'s 202 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    pub order_id: OrderId,
    pub placed_at_ms: u64,
}

/// `POST /orders`' 202 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkAppended {
    pub appended: usize,
}

struct ProducerState {
    producer: Arc<Producer>,
    ids: OrderIds,
}

fn unavailable(e: LogError) -> ApiError {
    tracing::warn!(error = %e, "the log did not take the records");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "log_unavailable", e.to_string())
}

fn unconfirmed() -> ApiError {
    tracing::warn!(within_s = ACCEPT_WITHIN.as_secs_f64(), "Kafka did not confirm an order in time");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "log_unavailable",
        format!(
            "Kafka did not confirm the order within {} s; it may still be appended: send it again under the same Idempotency-Key, and it is decided once",
            ACCEPT_WITHIN.as_secs()
        ),
    )
}

pub fn producer_app(producer: Arc<Producer>, ids: OrderIds) -> Router {
    let router = Router::new()
        .route("/order", post(place))
        .route("/orders", post(bulk).layer(DefaultBodyLimit::max(MAX_BULK_BYTES)))
        .with_state(Arc::new(ProducerState { producer, ids }));
    api::finish(router, "producer", Probe::None)
}

/// A request under a client's key placed before is appended again (the producer keeps no
/// state): Inventory decides it once and Analytics counts it once, both keyed by order id.
/// Answered within [`ACCEPT_WITHIN`].
async fn place(
    State(state): State<Arc<ProducerState>>,
    key: IdempotencyKey,
    JsonBody(request): JsonBody<OrderRequest>,
) -> Result<(StatusCode, Json<Appended>), ApiError> {
    let placing = state.producer.place(state.ids.assign(key.apply(request)?));
    let placed = tokio::time::timeout(ACCEPT_WITHIN, placing).await.map_err(|_| unconfirmed())?.map_err(unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(Appended { order_id: placed.order.order_id, placed_at_ms: placed.placed_at_ms })))
}

async fn bulk(
    State(state): State<Arc<ProducerState>>,
    JsonBody(events): JsonBody<Vec<OrderPlaced>>,
) -> Result<(StatusCode, Json<BulkAppended>), ApiError> {
    if events.len() > MAX_BULK {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!("{} events; at most {MAX_BULK} per request", events.len()),
        ));
    }
    let appended = state.producer.append(events).await.map_err(unavailable)?.len();
    Ok((StatusCode::ACCEPTED, Json(BulkAppended { appended })))
}

/// Inventory's accounting in the streaming model: `GET /stats`, `GET /stock`.
pub fn inventory_app(view: InventoryView, stock: u32) -> Router {
    let router = Router::new().route("/stats", get(stats)).route("/stock", get(levels)).with_state((view, stock));
    api::finish(router, "inventory", Probe::None)
}

/// 503 `restoring` until the instance restored its state from the changelog.
fn restored<T>(view: &InventoryView, read: impl FnOnce(&Inventory) -> T) -> Result<Json<T>, ApiError> {
    let restored = view.lock().expect("inventory lock");
    let inventory = restored.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "restoring", "Inventory is restoring its state from the changelog")
    })?;
    Ok(Json(read(inventory)))
}

async fn stats(State((view, stock)): State<(InventoryView, u32)>) -> Result<Json<InventoryStats>, ApiError> {
    restored(&view, |inventory| consumers::stats(inventory, stock))
}

async fn levels(State((view, _)): State<(InventoryView, u32)>) -> Result<Json<BTreeMap<String, u32>>, ApiError> {
    restored(&view, |inventory| inventory.levels().iter().map(|(sku, n)| (sku.to_string(), *n)).collect())
}

/// A scaled-out Inventory instance's accounting (`GET /stats`): the partitions it holds now.
pub fn partitioned_inventory_app(view: ShardsView, stock: u32) -> Router {
    let router = Router::new().route("/stats", get(shard_stats)).with_state((view, stock));
    api::finish(router, "inventory", Probe::None)
}

async fn shard_stats(State((view, stock)): State<(ShardsView, u32)>) -> Json<InventoryStats> {
    Json(partitioned::stats(&view.lock().expect("shards lock"), stock))
}

/// One minute of `GET /analytics`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinuteReport {
    pub minute: u64,
    pub orders: u64,
    pub reserved: u64,
    pub failed: u64,
    pub failure_rate: f64,
}

impl MinuteReport {
    fn new(minute: u64, m: &MinuteMetrics) -> Self {
        MinuteReport { minute, orders: m.orders, reserved: m.reserved, failed: m.failed, failure_rate: m.failure_rate() }
    }
}

/// The whole run in `GET /analytics`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TotalReport {
    /// Minutes of event time with any event.
    pub minutes: usize,
    pub orders: u64,
    pub reserved: u64,
    pub failed: u64,
    pub failure_rate: f64,
}

/// `GET /analytics` (and the metrics file): what Analytics has computed so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Distinct orders placed and distinct outcomes seen.
    pub orders_seen: usize,
    pub outcomes_seen: usize,
    pub total: TotalReport,
    pub per_minute: Vec<MinuteReport>,
}

impl MetricsReport {
    pub fn of(analytics: &Analytics) -> Self {
        let metrics = analytics.metrics();
        let (orders_seen, outcomes_seen) = analytics.seen();
        let t = &metrics.total;
        let total = TotalReport {
            minutes: metrics.per_minute.len(),
            orders: t.orders,
            reserved: t.reserved,
            failed: t.failed,
            failure_rate: t.failure_rate(),
        };
        MetricsReport {
            orders_seen,
            outcomes_seen,
            total,
            per_minute: metrics.per_minute.iter().map(|(m, v)| MinuteReport::new(*m, v)).collect(),
        }
    }

    /// The metrics back as the lab compares them.
    pub fn metrics(&self) -> Metrics {
        let counts = |r: &MinuteReport| MinuteMetrics { orders: r.orders, reserved: r.reserved, failed: r.failed };
        let t = &self.total;
        Metrics {
            per_minute: self.per_minute.iter().map(|r| (r.minute, counts(r))).collect(),
            total: MinuteMetrics { orders: t.orders, reserved: t.reserved, failed: t.failed },
        }
    }
}

/// Analytics' face: `GET /analytics`, and `GET /completions` (when each order's outcome was
/// first counted).
pub fn analytics_app(state: Counting) -> Router {
    let router = Router::new().route("/analytics", get(metrics)).with_state(state.analytics).merge(api::completions(state.completions));
    api::finish(router, "analytics", Probe::None)
}

async fn metrics(State(state): State<Arc<Mutex<Analytics>>>) -> Json<MetricsReport> {
    Json(MetricsReport::of(&state.lock().expect("analytics lock")))
}
