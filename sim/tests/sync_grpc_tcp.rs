//! Part A's gRPC face over real processes and HTTP/2 on ephemeral loopback ports: the status
//! each outcome reads as (the table of `campus::api::grpc::status`), the deadline, health and
//! reflection, as a standard gRPC tool would meet them.

use std::time::{Duration, Instant};

use campus::api::grpc::{ERROR_LABEL, ORDER_ID};
use campus::faults::FaultPlan;
use campus::proto::{self, inventory_client::InventoryClient, order_client::OrderClient};
use campus::{Model, Protocol, Service};
use campus_sim::hosts::{Hosts, Place};
use campus_sim::sync_rest::{Deployment, Settings};
use tonic::{Code, Status};

/// Part A as processes of this build, over gRPC, Inventory holding 10 of each item and
/// suffering `fault`, Order's timeout `timeout`.
async fn campus(fault: FaultPlan, timeout: Duration) -> anyhow::Result<Deployment<'static>> {
    let hosts = Hosts::real(std::path::Path::new(env!("CARGO_BIN_EXE_campus-sim")), Model::SyncRest, "grpc", Place::default()).await?;
    Deployment::start(hosts, &Settings::new(10, timeout).over(Protocol::Grpc), &fault).await
}

fn order(sku: &str, qty: u32) -> proto::PlaceOrderRequest {
    proto::PlaceOrderRequest { student_id: "s-0042".into(), items: vec![proto::Line { sku: sku.into(), qty }], order_id: String::new() }
}

/// `PlaceOrder` with a 10 s deadline: the reply's order id, or the status; and how long it took.
async fn place(campus: &Deployment<'_>, message: proto::PlaceOrderRequest) -> (Result<String, Status>, Duration) {
    let mut client = OrderClient::new(campus.client().grpc(Service::Order));
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let reply = client.place_order(request).await.map(|r| r.into_inner().order_id);
    (reply, started.elapsed())
}

fn label(status: &Status) -> &str {
    status.metadata().get(ERROR_LABEL).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_placed_out_of_stock_invalid_and_inventory_down_read_ok_failed_precondition_invalid_argument_and_unavailable(
) -> anyhow::Result<()> {
    let mut campus = campus(FaultPlan::healthy(), Duration::from_secs(2)).await?;
    let (placed, _) = place(&campus, order("burrito", 2)).await;
    let order_id = placed?;
    assert!(order_id.starts_with("o-"), "{order_id}");

    let (short, _) = place(&campus, order("burrito", 9)).await;
    let short = short.expect_err("9 burritos of the 8 left");
    assert_eq!((short.code(), label(&short)), (Code::FailedPrecondition, "insufficient_stock"), "{short:?}");
    assert!(short.metadata().get(ORDER_ID).is_some(), "the refused order's id travels with the status");

    let (invalid, _) = place(&campus, order("burrito", 0)).await;
    let invalid = invalid.expect_err("a line of 0 units");
    assert_eq!((invalid.code(), label(&invalid)), (Code::InvalidArgument, "invalid_order"), "{invalid:?}");

    campus.kill_inventory().await?;
    let (down, _) = place(&campus, order("burrito", 1)).await;
    let down = down.expect_err("Inventory is not running");
    assert_eq!((down.code(), label(&down)), (Code::Unavailable, "inventory_unavailable"), "{down:?}");
    campus.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_hanging_inventory_reads_deadline_exceeded_at_orders_timeout() -> anyhow::Result<()> {
    let timeout = Duration::from_millis(300);
    let campus = campus(FaultPlan::hanging(), timeout).await?;
    let (reply, latency) = place(&campus, order("pho", 1)).await;
    let late = reply.expect_err("Inventory never answers");
    assert_eq!((late.code(), label(&late)), (Code::DeadlineExceeded, "inventory_timeout"), "{late:?}");
    assert!(latency >= timeout && latency < timeout + Duration::from_secs(1), "answered at {latency:?}, timeout {timeout:?}");
    campus.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_failing_inventory_reads_internal_at_inventory_and_unavailable_at_order() -> anyhow::Result<()> {
    let campus = campus(FaultPlan::erroring(http::StatusCode::INTERNAL_SERVER_ERROR), Duration::from_secs(2)).await?;
    let mut inventory = InventoryClient::new(campus.client().grpc(Service::Inventory));
    let direct = inventory
        .reserve(proto::ReserveRequest { order_id: "o-1".into(), items: vec![proto::Line { sku: "pho".into(), qty: 1 }] })
        .await
        .expect_err("Inventory answers every call with its injected 500");
    assert_eq!((direct.code(), label(&direct)), (Code::Internal, "injected_fault"), "{direct:?}");
    let (reply, _) = place(&campus, order("pho", 1)).await;
    let failing = reply.expect_err("Inventory fails");
    assert_eq!((failing.code(), label(&failing)), (Code::Unavailable, "inventory_unavailable"), "{failing:?}");
    campus.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_every_service_answers_grpc_health_and_lists_its_services_by_reflection() -> anyhow::Result<()> {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse, ServerReflectionRequest,
    };
    // Health is never faulted: a hanging Inventory still answers it.
    let campus = campus(FaultPlan::hanging(), Duration::from_secs(2)).await?;
    for (service, name) in [
        (Service::Order, "campus.v1.Order"),
        (Service::Inventory, "campus.v1.Inventory"),
        (Service::Notification, "campus.v1.Notification"),
    ] {
        let mut health = HealthClient::new(campus.client().grpc(service));
        for asked in ["", name] {
            let status = health.check(HealthCheckRequest { service: asked.into() }).await?.into_inner().status;
            assert_eq!(status, ServingStatus::Serving as i32, "{service} health of {asked:?}");
        }
        let mut reflection = ServerReflectionClient::new(campus.client().grpc(service));
        let ask = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
        let mut answers = reflection.server_reflection_info(futures_lite::stream::iter([ask])).await?.into_inner();
        let Some(MessageResponse::ListServicesResponse(listed)) = answers.message().await?.and_then(|a| a.message_response) else {
            panic!("{service}: reflection did not list its services");
        };
        let names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
        for wanted in ["campus.v1.Order", "campus.v1.Inventory", "campus.v1.Notification", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == wanted), "{service} lists {names:?}, without {wanted}");
        }
    }
    campus.teardown().await;
    Ok(())
}
