//! sync-rest: an order over the three `campus-sim serve` processes (Order → Inventory →
//! Notification, three hops) against two floors, each called with the very same client
//! (`HttpRequestReply`: pooled keep-alive HTTP/1.1 for REST, one HTTP/2 channel per peer for
//! gRPC) at the same concurrency, once over each protocol:
//!
//! - three bare hops: a `POST` to an axum handler that does nothing (over gRPC, a `PlaceOrder`
//!   that answers at once), in a process of its own, its latency times three;
//! - the bare chain: our topology with nothing in it — a relay process that decodes the body
//!   and calls two bare hops in turn with the services' own client, then answers — the same
//!   work an order does minus the services' logic and state.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use campus::proto::order_server::OrderServer;
use campus::transport::http::HttpRequestReply;
use campus::transport::RequestReply;
use campus::{Model, Protocol, Service};

use super::{Row, Samples, Target};
use crate::hosts::process::ServiceProcess;
use crate::hosts::{Hosts, Place};
use crate::reporting::percentile;
use crate::simulator::world::{self, Scope, Stream};
use crate::sync_rest;
use crate::sync_rest::{drive, Door};
use crate::workload;
use campus::faults::FaultPlan;

/// Requests per measured round, by concurrency (about a second of our order round trips).
fn requests(concurrency: usize) -> usize {
    match concurrency {
        1 => 800,
        8 => 3000,
        _ => 5000,
    }
}

/// The bare hop: an axum handler that answers 201 and does nothing else, in a process of its
/// own (`campus-sim bench-hop`, hidden) on the same one-thread runtime as the services — a
/// hop between two processes over loopback, as each of the order's three hops is. It is
/// started and awaited like a service.
const BARE_HOP: &str = "bench-hop";

/// `campus-sim bench-hop`: serves the bare hop on a free loopback port, announces
/// `READY bench-hop http://<addr>` (the services' handshake) and serves until killed.
///
/// With `relay` (the bare chain's relay): each `POST /order` body is parsed as JSON and sent on
/// to each URL's `/order` in turn, as Order calls Inventory then Notification, with the client
/// the services use; the answer is 201 once both answered. Over gRPC (`protocol`), the same
/// with `campus.v1.Order/PlaceOrder`.
pub async fn serve_bare_hop(relay: Vec<String>, protocol: Protocol) -> anyhow::Result<()> {
    use std::io::Write;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("READY {BARE_HOP} http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let app = if protocol == Protocol::Grpc {
        let peers = [Service::Inventory, Service::Notification];
        let client: Arc<dyn RequestReply> = Arc::new(HttpRequestReply::new(peers.into_iter().zip(relay.clone())));
        let relay_to = if relay.is_empty() { Vec::new() } else { peers.to_vec() };
        let hop = GrpcHop { client, relay_to };
        Router::new().route_service(&format!("/{}/{{*method}}", ORDER_SERVICE), OrderServer::new(hop))
    } else if relay.is_empty() {
        Router::new().route("/order", post(|| async { StatusCode::CREATED }))
    } else {
        let peers = [Service::Inventory, Service::Notification];
        let client: Arc<dyn RequestReply> = Arc::new(HttpRequestReply::new(peers.into_iter().zip(relay)));
        Router::new().route(
            "/order",
            post(move |Json(body): Json<serde_json::Value>| {
                let client = client.clone();
                async move {
                    for peer in peers {
                        match client.post_json(peer, "/order", &body).await {
                            Ok(reply) if reply.status().is_success() => {}
                            _ => return StatusCode::BAD_GATEWAY,
                        }
                    }
                    StatusCode::CREATED
                }
            }),
        )
    };
    campus::transport::http::serve(listener, app, std::future::pending()).await?;
    Ok(())
}

/// The bare gRPC hop (and, with peers to relay to, the bare gRPC chain's relay).
struct GrpcHop {
    client: Arc<dyn RequestReply>,
    relay_to: Vec<Service>,
}

const ORDER_SERVICE: &str = <OrderServer<GrpcHop> as tonic::server::NamedService>::NAME;

#[tonic::async_trait]
impl campus::proto::order_server::Order for GrpcHop {
    async fn place_order(
        &self,
        request: tonic::Request<campus::proto::PlaceOrderRequest>,
    ) -> Result<tonic::Response<campus::proto::PlaceOrderReply>, tonic::Status> {
        let message = request.into_inner();
        for &peer in &self.relay_to {
            let mut client = campus::proto::order_client::OrderClient::new(self.client.clone().grpc(peer));
            client.place_order(message.clone()).await?;
        }
        Ok(tonic::Response::new(campus::proto::PlaceOrderReply::default()))
    }
}

struct Round {
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
}

async fn round(door: &Door, concurrency: usize, n: usize, seed: u64, round: u64) -> anyhow::Result<Round> {
    let orders = workload::orders(&mut world::stream(seed, Model::SyncRest, &Scope::Bench { round }, Stream::Workload), n);
    let (answers, elapsed) = drive(door.clone(), orders, concurrency, Duration::from_secs(10)).await;
    let failed = answers.iter().filter(|a| !(200..300).contains(&a.status)).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {n} requests failed during the benchmark");
    }
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    latencies.sort();
    Ok(Round {
        p50_ms: percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        p99_ms: percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        rps: n as f64 / elapsed.as_secs_f64(),
    })
}

/// Each protocol's rounds, REST then gRPC.
pub async fn run(exe: &Path, repeats: usize, seed: u64) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for protocol in Protocol::ALL {
        rows.extend(run_over(exe, repeats, seed, protocol).await?);
    }
    Ok(rows)
}

async fn run_over(exe: &Path, repeats: usize, seed: u64, protocol: Protocol) -> anyhow::Result<Vec<Row>> {
    let hosts = Hosts::real(exe, Model::SyncRest, "bench", Place::default()).await?;
    let settings = sync_rest::Settings::new(1_000_000_000, Duration::from_secs(5)).over(protocol);
    let deployment = sync_rest::Deployment::start(hosts, &settings, &FaultPlan::healthy()).await?;
    let ours = deployment.door();
    let hop_args: &[&str] = if protocol == Protocol::Grpc { &[BARE_HOP, "--grpc"] } else { &[BARE_HOP] };
    let bare_hop = ServiceProcess::start(exe, BARE_HOP, hop_args).await?;
    let door = |url: &str| Door { client: Arc::new(HttpRequestReply::new([(Service::Order, url.to_owned())])), protocol };
    let bare = door(bare_hop.url());
    let (first, second) = (ServiceProcess::start(exe, BARE_HOP, hop_args).await?, ServiceProcess::start(exe, BARE_HOP, hop_args).await?);
    let relay_to = format!("{},{}", first.url(), second.url());
    let relay = ServiceProcess::start(exe, BARE_HOP, &[hop_args, &["--relay", &relay_to]].concat()).await?;
    let chain = door(relay.url());
    let over = match protocol {
        Protocol::Rest => String::new(),
        Protocol::Grpc => " over gRPC".to_owned(),
    };
    let mut rows = Vec::new();
    for concurrency in [1usize, 8, 64] {
        let n = requests(concurrency);
        // Warm-up: connections opened, caches and allocators warm.
        round(&ours, concurrency, n / 4, seed, 0).await?;
        round(&bare, concurrency, n / 4, seed, 0).await?;
        round(&chain, concurrency, n / 4, seed, 0).await?;
        let (mut p50, mut p99, mut rps) = (Samples::default(), Samples::default(), Samples::default());
        let (mut bare_p50x3, mut bare_p99x3, mut bare_rps) = (Samples::default(), Samples::default(), Samples::default());
        let (mut chain_p50, mut chain_rps) = (Samples::default(), Samples::default());
        for i in 0..repeats {
            let o = round(&ours, concurrency, n, seed, i as u64 + 1).await?;
            let b = round(&bare, concurrency, n, seed, i as u64 + 1).await?;
            p50.0.push(o.p50_ms);
            p99.0.push(o.p99_ms);
            rps.0.push(o.rps);
            bare_p50x3.0.push(3.0 * b.p50_ms);
            bare_p99x3.0.push(3.0 * b.p99_ms);
            bare_rps.0.push(b.rps);
            let c = round(&chain, concurrency, n, seed, i as u64 + 1).await?;
            chain_p50.0.push(c.p50_ms);
            chain_rps.0.push(c.rps);
        }
        crate::progress::step(&format!(
            "sync-rest{over} c={concurrency}: order p50 {:.2} ms vs the bare chain {:.2} ms, 3 bare hops {:.2} ms",
            p50.median(),
            chain_p50.median(),
            bare_p50x3.median()
        ));
        let case = format!("order round trip{over}, concurrency {concurrency}");
        rows.push(Row {
            model: "sync-rest",
            case: case.clone(),
            metric: "p50_ms",
            ours: p50.clone(),
            floor: Some(chain_p50),
            target: Some(Target::AtMost(1.3)),
            floor_is: "the bare chain: a relay calling two bare hops",
        });
        rows.push(Row {
            model: "sync-rest",
            case: case.clone(),
            metric: "requests_per_s",
            ours: rps.clone(),
            floor: Some(chain_rps),
            target: Some(Target::AtLeast(0.75)),
            floor_is: "the bare chain's requests per second",
        });
        rows.push(Row {
            model: "sync-rest",
            case: case.clone(),
            metric: "p50_ms",
            ours: p50,
            floor: Some(bare_p50x3),
            target: Some(Target::AtMost(1.3)),
            floor_is: "3 × a bare hop's p50",
        });
        rows.push(Row {
            model: "sync-rest",
            case: case.clone(),
            metric: "p99_ms",
            ours: p99,
            floor: Some(bare_p99x3),
            target: None,
            floor_is: "3 × a bare hop's p99",
        });
        rows.push(Row {
            model: "sync-rest",
            case,
            metric: "requests_per_s",
            ours: rps,
            floor: Some(bare_rps),
            target: Some(Target::AtLeast(0.3)),
            floor_is: "bare hops per second",
        });
    }
    Ok(rows)
}
