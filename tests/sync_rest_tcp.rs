//! The synchronous model over real TCP on ephemeral loopback ports: the same routers, the
//! pooled HTTP client, real time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Router;
use campus::services::order::OrderIds;
use campus::sync_rest as wiring;
use campus::transport::http::{serve, HttpRequestReply};
use campus::transport::RequestReply;
use campus::Service;
use campus_sim::fault::{self, FaultPlan};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Server {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(app: Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, async {
            let _ = stopped.await;
        }));
        Server { url, stop: Some(stop), task: Some(task) }
    }

    /// Stops accepting, finishes in-flight requests, and returns once the port is closed.
    async fn stop(&mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        self.task.take().expect("stopped once").await.unwrap().unwrap();
    }
}

struct Campus {
    order: Server,
    inventory: Server,
    notification: Server,
    client: Arc<dyn RequestReply>,
}

async fn campus(fault: FaultPlan, timeout: Duration) -> Campus {
    let inventory = Server::start(fault::apply(wiring::inventory(wiring::inventory_state(10)), &fault)).await;
    let notification = Server::start(wiring::notification(wiring::notification_state())).await;
    let peers = HttpRequestReply::new([(Service::Inventory, inventory.url.clone()), (Service::Notification, notification.url.clone())]);
    let order = Server::start(wiring::order(OrderIds::Random, Arc::new(peers), timeout)).await;
    let client: Arc<dyn RequestReply> = Arc::new(HttpRequestReply::new([
        (Service::Order, order.url.clone()),
        (Service::Inventory, inventory.url.clone()),
        (Service::Notification, notification.url.clone()),
    ]));
    Campus { order, inventory, notification, client }
}

async fn place(campus: &Campus) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let reply = campus
        .client
        .post_json(Service::Order, "/order", &json!({"student_id": "s-0042", "items": [{"sku": "burrito", "qty": 2}]}))
        .await
        .expect("order answers");
    (reply.status(), serde_json::from_slice(reply.body()).unwrap(), started.elapsed())
}

async fn get(campus: &Campus, peer: Service, path: &str) -> Value {
    let reply = campus.client.call(peer, http::Request::get(path).body(bytes::Bytes::new()).unwrap()).await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK, "GET {path} on {peer}");
    serde_json::from_slice(reply.body()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_an_order_is_reserved_and_confirmed_and_a_stopped_inventory_gives_503() {
    let mut campus = campus(FaultPlan::healthy(), Duration::from_secs(2)).await;
    let (status, body, _) = place(&campus).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    assert!(order_id.starts_with("o-") && order_id.len() == 34, "a uuid order id in real mode: {order_id}");
    assert_eq!(get(&campus, Service::Inventory, "/stock").await["burrito"], 8);
    let sent = get(&campus, Service::Notification, "/sent").await;
    assert_eq!(sent[0]["order_id"], order_id.as_str());

    campus.inventory.stop().await;
    let (status, body, _) = place(&campus).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "inventory_unavailable");
    campus.order.stop().await;
    campus.notification.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_a_hanging_inventory_gives_504_at_the_timeout() {
    let timeout = Duration::from_millis(300);
    let campus = campus(FaultPlan::hanging(), timeout).await;
    let (status, body, latency) = place(&campus).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"], "inventory_timeout");
    assert!(latency >= timeout, "answered before the timeout: {latency:?}");
    assert!(latency < timeout + Duration::from_secs(1), "answered long after the timeout: {latency:?}");
    assert_eq!(get(&campus, Service::Inventory, "/health").await["status"], "ok", "health is never faulted");
}
