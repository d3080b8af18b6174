//! The stores on PostgreSQL, shared by several instances (`serve --store postgres://…`): the
//! transactions that keep one instance honest must hold when several run at once. These run
//! against the PostgreSQL that `scripts/brokers.sh up postgres` starts (`CAMPUS_TEST_STORE`
//! points elsewhere) and fail, never skip, when it is not there.

use std::collections::BTreeMap;
use std::sync::Arc;

use campus::domain::{Order, OrderId, OrderPlaced, OrderRequest, OrderStatus};
use campus::store::postgres::DEFAULT_POSTGRES_URL;
use campus::store::{InventoryStore, NotificationStore, OrderStore, Postgres};
use serde_json::json;

fn url() -> String {
    std::env::var("CAMPUS_TEST_STORE").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `n` pools (one per simulated instance) on a namespace of this test's own, emptied of what an
/// aborted earlier run may have left.
async fn instances(test: &str, n: usize) -> Vec<Postgres> {
    let namespace = format!("test.{test}.{}", std::process::id());
    let leftover = Postgres::connect(&url(), &namespace).await.expect("PostgreSQL reachable (scripts/brokers.sh up postgres)");
    leftover.drop_schema().await.unwrap();
    let mut pools = Vec::new();
    for _ in 0..n {
        pools.push(Postgres::connect(&url(), &namespace).await.unwrap());
    }
    pools
}

fn placed(i: usize, sku: &str, qty: u32) -> OrderPlaced {
    let request: OrderRequest =
        serde_json::from_value(json!({"student_id": format!("s-{i}"), "items": [{"sku": sku, "qty": qty}]})).unwrap();
    OrderPlaced { order: Order::new(OrderId::parse(format!("o-{i:04}")).unwrap(), request), placed_at_ms: i as u64 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh starts it and runs this with --include-ignored"]
async fn four_inventories_racing_over_every_order_twice_reserve_each_once_and_never_oversell() {
    let pools = instances("inventory-race", 4).await;
    let mut stores = Vec::new();
    for pg in pools.iter().cloned() {
        stores.push(Arc::new(InventoryStore::open_postgres(pg, 40).await.unwrap()));
    }
    // 120 orders of 1–3 units of two items (more than the 40 units of each), in windows of
    // three: every window handed to two different instances at the same moment, as a
    // redelivery racing the first delivery would be, the second in the reverse order (their
    // rows locked in opposite orders, were they locked order by order).
    let orders: Vec<OrderPlaced> = (0..120).map(|i| placed(i, if i % 2 == 0 { "pho" } else { "coffee" }, 1 + (i % 3) as u32)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, window) in orders.chunks(3).enumerate() {
        for (k, reversed) in [(i % 4, false), ((i + 1) % 4, true)] {
            let (store, mut window) = (stores[k].clone(), window.to_vec());
            if reversed {
                window.reverse();
            }
            tasks.spawn(async move {
                let handled = store.handle_all(&window.iter().collect::<Vec<_>>()).await.expect("handled");
                window.into_iter().map(|placed| placed.order.order_id).zip(handled).collect::<Vec<_>>()
            });
        }
    }
    let mut answers: BTreeMap<OrderId, Vec<_>> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        for (id, handled) in done.unwrap() {
            answers.entry(id).or_default().push(handled);
        }
    }
    assert_eq!(answers.len(), 120);
    for (id, pair) in &answers {
        assert_eq!(pair.iter().filter(|h| h.first).count(), 1, "{id} decided exactly once");
        assert_eq!(pair[0].event, pair[1].event, "{id}: the repeat re-emits the stored outcome");
    }
    let stats = stores[3].stats().await.unwrap();
    assert_eq!(stats.reserved + stats.failed, 120);
    assert_eq!((stats.double_reservations, stats.stock_applications, stats.repeats), (0, stats.reserved, 120));
    assert_eq!(stats.units_taken, stats.units_of_reserved_orders);
    assert!(stats.failed > 0, "the stock ran out, so some orders failed");
    for sku in ["pho", "coffee"] {
        assert!(stats.stock[sku] <= 40, "{sku} never went below zero (u64) nor above its start");
    }
    pools[0].drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh starts it and runs this with --include-ignored"]
async fn two_notifications_sharing_the_store_confirm_an_order_once() {
    let pools = instances("notification", 2).await;
    let a = Arc::new(NotificationStore::open_postgres(pools[0].clone()).await.unwrap());
    let b = Arc::new(NotificationStore::open_postgres(pools[1].clone()).await.unwrap());
    let order = placed(1, "salad", 1).order;
    let window = [(&order.order_id, &order.student_id)];
    let (first, second) = tokio::join!(a.send_all(&window), b.send_all(&window));
    assert!(first.unwrap()[0] ^ second.unwrap()[0], "exactly one of the two sent it");
    let stats = b.stats().await.unwrap();
    assert_eq!((stats.notified, stats.received), (1, 2));
    pools[0].drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh starts it and runs this with --include-ignored"]
async fn an_order_accepted_on_postgres_waits_in_the_outbox_with_its_trace_until_marked_published() {
    let pools = instances("order", 1).await;
    let store = OrderStore::open_postgres(pools[0].clone()).await.unwrap();
    let order = placed(7, "coffee", 2).order;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    store.accept(&order, 42, Some(traceparent)).await.unwrap();
    let rows = store.unpublished().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].trace.as_deref(), Some(traceparent), "the relay publishes under the request's trace");
    assert_eq!(store.get(order.order_id.as_str()).await.unwrap().unwrap().status, OrderStatus::Accepted);
    store.mark_published(&[rows[0].seq]).await.unwrap();
    assert!(store.unpublished().await.unwrap().is_empty());
    store.record_outcomes(&[(&order.order_id, OrderStatus::Reserved)]).await.unwrap();
    store.record_outcomes(&[(&order.order_id, OrderStatus::Failed)]).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.accepted, stats.published, stats.reserved, stats.failed), (1, 1, 1, 0), "a repeat verdict changes nothing");
    pools[0].drop_schema().await.unwrap();
}
