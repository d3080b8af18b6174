//! Part A's gRPC faces (`campus.v1`, see `proto/campus/v1/campus.proto`): Order `PlaceOrder`,
//! Inventory `Reserve`, Notification `Send`. Each is served beside the service's REST face, on
//! the same port and by the same process — HTTP/1.1 and HTTP/2 are told apart per connection —
//! over the same state: one Inventory, one Notifier, one Order logic, two faces each. With them
//! on every Part A service: `grpc.health.v1.Health` (the service's own name and "" answer
//! `SERVING`) and reflection (`grpc.reflection.v1` and `v1alpha`), so standard tools can list
//! and call the methods without the `.proto`.
//!
//! A message is parsed into the same validated domain values as a JSON body
//! ([`crate::proto`]), and an error is the REST face's [`ApiError`] read as a gRPC status by
//! the one table in [`status`]; its `error` label travels as the `campus-error` metadata and
//! the order's id, when there is one, as `campus-order-id`.

pub mod deadline;
pub mod status;

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::inventory::SharedInventory;
use super::notification::SharedNotifier;
use super::ApiError;
use crate::domain::{OrderId, OrderRequest};
use crate::proto;
use crate::services::inventory::ReserveOutcome;
use crate::services::order::{Notified, SyncOrderService};
use crate::telemetry::trace;
use crate::wire::{ReserveRequest, SendRequest};

/// Metadata that carries an error's `error` label.
pub const ERROR_LABEL: &str = "campus-error";
/// Metadata that carries the order id of an error about one order.
pub const ORDER_ID: &str = "campus-order-id";

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let mut metadata = MetadataMap::new();
        if let Ok(label) = MetadataValue::try_from(e.body.error.as_str()) {
            metadata.insert(ERROR_LABEL, label);
        }
        if let Some(id) = e.body.order_id.as_ref().and_then(|id| MetadataValue::try_from(id.as_str()).ok()) {
            metadata.insert(ORDER_ID, id);
        }
        Status::with_metadata(status::code_for(e.status), e.body.detail, metadata)
    }
}

/// The order id an error status names (see [`ORDER_ID`]).
pub fn order_id_of(status: &Status) -> Option<String> {
    status.metadata().get(ORDER_ID).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn invalid(e: crate::domain::ValidationError) -> Status {
    ApiError::new(http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_order", e.to_string()).into()
}

/// Inventory's gRPC face over the state its REST face serves.
pub struct InventoryFace(pub SharedInventory);

#[tonic::async_trait]
impl proto::inventory_server::Inventory for InventoryFace {
    async fn reserve(&self, request: Request<proto::ReserveRequest>) -> Result<Response<proto::Ack>, Status> {
        let request = ReserveRequest::try_from(request.into_inner()).map_err(invalid)?;
        let reservation = self.0.lock().expect("inventory lock").reserve(&request.order_id, &request.items);
        match reservation.outcome {
            ReserveOutcome::Reserved => Ok(Response::new(proto::Ack {
                order_id: request.order_id.to_string(),
                status: "reserved".into(),
                repeat: !reservation.first_attempt,
            })),
            ReserveOutcome::Rejected { reason } => {
                Err(ApiError::new(http::StatusCode::CONFLICT, "insufficient_stock", reason).for_order(request.order_id).into())
            }
        }
    }
}

/// Notification's gRPC face over the state its REST face serves.
pub struct NotificationFace(pub SharedNotifier);

#[tonic::async_trait]
impl proto::notification_server::Notification for NotificationFace {
    async fn send(&self, request: Request<proto::SendRequest>) -> Result<Response<proto::Ack>, Status> {
        let request = SendRequest::try_from(request.into_inner()).map_err(invalid)?;
        let first = self.0.lock().expect("notifier lock").send(request.order_id.clone(), request.student_id);
        Ok(Response::new(proto::Ack { order_id: request.order_id.to_string(), status: "sent".into(), repeat: !first }))
    }
}

/// Order's gRPC face over the service its REST face serves. The caller's deadline
/// (`grpc-timeout`) bounds each of Order's own calls, besides Order's `--timeout-ms`.
pub struct OrderFace(pub std::sync::Arc<SyncOrderService>);

#[tonic::async_trait]
impl proto::order_server::Order for OrderFace {
    async fn place_order(&self, request: Request<proto::PlaceOrderRequest>) -> Result<Response<proto::PlaceOrderReply>, Status> {
        let within: Option<Duration> = deadline::of(request.metadata());
        let request = OrderRequest::try_from(request.into_inner()).map_err(invalid)?;
        let placed =
            self.0.place_within(request, within).await.inspect_err(|e| trace::tag_order(e.order_id().as_str())).map_err(ApiError::from)?;
        trace::tag_order(placed.order_id.as_str());
        let (notification, notification_detail) = match placed.notified {
            Notified::Sent => ("sent", String::new()),
            Notified::Failed { detail } => ("failed", detail),
        };
        Ok(Response::new(proto::PlaceOrderReply {
            order_id: OrderId::to_string(&placed.order_id),
            status: "confirmed".into(),
            notification: notification.into(),
            notification_detail,
        }))
    }
}

/// `rest` with the gRPC service `face` beside it (named `name` for health), and health and
/// reflection.
pub fn beside<S>(rest: Router, face: S) -> Router
where
    S: NamedService + Clone + Send + Sync + 'static,
    S: tower::Service<http::Request<axum::body::Body>, Error = std::convert::Infallible> + 'static,
    S::Response: axum::response::IntoResponse + 'static,
    S::Future: Send + 'static,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    futures_lite::future::block_on(health.set_service_status(S::NAME, tonic_health::ServingStatus::Serving));
    rest.route_service(&format!("/{}/{{*method}}", S::NAME), face)
        .route_service(&format!("/{}/{{*method}}", tonic_health::pb::health_server::HealthServer::<()>::NAME), health_service)
        .merge(reflection().clone())
}

/// The reflection services (built once: every service of every deployment shares them).
fn reflection() -> &'static Router {
    static REFLECTION: OnceLock<Router> = OnceLock::new();
    REFLECTION.get_or_init(|| {
        let builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::DESCRIPTORS)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let v1 = builder().build_v1().expect("campus.v1's descriptors are valid");
        let v1alpha = builder().build_v1alpha().expect("campus.v1's descriptors are valid");
        fn path<S: NamedService>(_: &S) -> String {
            format!("/{}/{{*method}}", S::NAME)
        }
        Router::new().route_service(&path(&v1), v1).route_service(&path(&v1alpha), v1alpha)
    })
}
