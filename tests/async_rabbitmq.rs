//! Part B in the simulation: the experiments' shapes and accounting, idempotency across a
//! crash between commit and ack, the outbox, and runs that are a function of the seed.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use campus::async_rabbitmq::consumer;
use campus::domain::{Envelope, Event, Order, OrderId, OrderPlaced, OrderRequest, OrderStatus, Sku};
use campus::retry::Policy;
use campus::services::order::{AsyncOrderService, OrderIds};
use campus::services::EventClock;
use campus::store::{InventoryStore, NotificationStore, OrderStore};
use campus::transport::queue::{MessageQueue, QueueName, Route};
use campus_sim::async_rabbitmq::invariants;
use campus_sim::async_rabbitmq::output;
use campus_sim::async_rabbitmq::rows::{self, Summary};
use campus_sim::async_rabbitmq::{run_sim, Config, Detail, Experiment};
use campus_sim::simulator::net::LinkModel;
use campus_sim::simulator::queue::SimQueue;
use campus_sim::simulator::rng::SimRng;
use campus_sim::{simulator::clock, Mode};
use serde_json::json;

fn small(experiment: Experiment) -> Config {
    Config {
        experiment,
        down_for: Duration::from_secs(5),
        lead: Duration::from_secs(2),
        orders: 60,
        duplicates: 60,
        poison: 10,
        ..Config::default()
    }
}

#[test]
fn during_an_outage_orders_are_still_accepted_and_the_backlog_rises_then_drains() -> anyhow::Result<()> {
    let runs = run_sim(&small(Experiment::Outage))?;
    let run = &runs[0];
    assert_eq!(invariants::check(run), vec![]);
    assert_eq!(run.refused, 0);
    let outage = run.outage().expect("an outage run");
    let (down, _up) = outage.down_window_ms;
    assert!(outage.peak_backlog >= 90, "5 s at 20/s should leave ~100 waiting, peak {}", outage.peak_backlog);
    let depth_before = outage.samples.iter().filter(|s| s.t_ms <= down).map(|s| s.queue_depth).max().unwrap();
    assert!(depth_before <= 1, "a backlog before the outage: {depth_before}");
    assert_eq!(outage.samples.last().unwrap().queue_depth, 0);
    assert!(outage.drain.unwrap() < Duration::from_secs(5));
    let summary = Summary::of(run);
    assert_eq!((summary.orders, summary.reserved + summary.failed, summary.notified), (180, 180, summary.reserved));
    Ok(())
}

#[test]
fn every_order_delivered_twice_is_reserved_and_notified_once() -> anyhow::Result<()> {
    let runs = run_sim(&small(Experiment::Idempotency))?;
    let run = &runs[0];
    assert_eq!(invariants::check(run), vec![]);
    assert_eq!(run.duplicates_injected(), 60);
    assert_eq!(run.end.inventory.repeats, 60);
    assert_eq!(run.end.inventory.double_reservations, 0);
    assert_eq!(run.end.inventory.units_taken, run.end.inventory.units_of_reserved_orders);
    assert_eq!(run.end.notification.received, run.end.notification.notified + 60, "each repeat reached Notification and sent nothing");
    Ok(())
}

#[test]
fn malformed_messages_are_dead_lettered_with_their_reason_and_good_ones_pass() -> anyhow::Result<()> {
    let runs = run_sim(&small(Experiment::Poison))?;
    let run = &runs[0];
    assert_eq!(invariants::check(run), vec![]);
    let reasons = output::reasons(run);
    assert_eq!(reasons.values().sum::<usize>(), 10);
    for label in ["not_json", "schema_violation", "unsupported_version", "unexpected_event"] {
        assert!(reasons.contains_key(label), "no {label} in {reasons:?}");
    }
    assert_eq!(run.end.orders.stats.reserved + run.end.orders.stats.failed, 60);
    Ok(())
}

#[test]
fn while_rabbitmq_is_down_orders_are_still_accepted_and_every_one_is_decided_once_it_is_back() -> anyhow::Result<()> {
    let config = Config { broker_down_for: Duration::from_secs(5), ..small(Experiment::BrokerRestart) };
    let runs = run_sim(&config)?;
    let run = &runs[0];
    assert_eq!(invariants::check(run), vec![]);
    assert_eq!(run.refused, 0, "Order answered 202 throughout");
    let restart = run.broker_restart().expect("a broker-restart run");
    let down = restart.samples.iter().filter(|s| !s.broker_up).collect::<Vec<_>>();
    assert!(!down.is_empty() && down.iter().all(|s| s.queue_depth.is_none()), "the queue cannot be asked while the broker is down");
    assert!(restart.peak_outbox >= 90, "5 s at 20/s waits in the outbox: peak {}", restart.peak_outbox);
    assert!(restart.drain.is_some_and(|d| d <= Duration::from_secs(6)), "drained within the backoff cap: {:?}", restart.drain);
    let summary = Summary::of(run);
    assert_eq!((summary.reserved + summary.failed, summary.notified, summary.double_reservations), (summary.orders, summary.reserved, 0));
    Ok(())
}

#[test]
fn the_accounting_catches_a_lost_order_and_a_double_reservation() -> anyhow::Result<()> {
    let mut run = run_sim(&small(Experiment::Idempotency))?.remove(0);
    let some_order = run.end.orders.statuses.keys().next().unwrap().clone();
    run.end.inventory_outcomes.remove(&some_order);
    run.end.notified.retain(|id| *id != some_order);
    run.end.orders.statuses.insert(some_order.clone(), OrderStatus::Accepted);
    run.end.inventory.double_reservations = 1;
    let violations: Vec<String> = invariants::check(&run).iter().map(|v| v.message.clone()).collect();
    assert!(violations.iter().any(|v| v.contains("not in exactly one terminal state") && v.contains(&some_order)), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("stock taken more than once")), "{violations:?}");
    Ok(())
}

#[test]
fn every_sample_is_one_snapshot_in_time_order_and_the_accounting_catches_one_that_is_not() -> anyhow::Result<()> {
    let mut run = run_sim(&small(Experiment::Outage))?.remove(0);
    assert_eq!(invariants::check(&run), vec![]);
    let Detail::Outage(outage) = &mut run.detail else { anyhow::bail!("not an outage run") };
    let torn = &mut outage.samples[5];
    torn.notified = torn.accepted + 1;
    let at = torn.t_ms;
    outage.samples[7].t_ms = outage.samples[6].t_ms;
    let violations: Vec<String> = invariants::check(&run).iter().map(|v| v.message.clone()).collect();
    assert!(violations.iter().any(|v| v.contains(&format!("the sample at {at} ms is not one snapshot"))), "{violations:?}");
    assert!(violations.iter().any(|v| v.contains("sample times do not increase")), "{violations:?}");
    Ok(())
}

#[test]
fn the_same_seed_gives_byte_identical_part_b_csv() -> anyhow::Result<()> {
    let files = |name: &str| -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let dir = common::scratch_dir(name);
        let config = Config { experiment: Experiment::All, ..small(Experiment::All) };
        let runs = run_sim(&config)?;
        let summaries: Vec<Summary> = runs.iter().map(Summary::of).collect();
        rows::write_csv(&dir, Mode::Sim, &runs, &summaries)?;
        Ok((std::fs::read(dir.join(rows::BACKLOG_CSV))?, std::fs::read(dir.join(rows::SUMMARY_CSV))?))
    };
    assert!(files("b-seed-a")? == files("b-seed-b")?, "two runs with the same seed differ");
    Ok(())
}

fn order(id: &str, sku: &str, qty: i64) -> Order {
    let request: OrderRequest = serde_json::from_value(json!({"student_id": "s-0001", "items": [{"sku": sku, "qty": qty}]})).unwrap();
    Order::new(OrderId::parse(id).unwrap(), request)
}

#[test]
fn an_order_placed_redelivered_after_a_crash_between_commit_and_ack_takes_no_stock_again() {
    clock::block_on(async {
        let mq: Arc<dyn MessageQueue> = Arc::new(SimQueue::new(SimRng::new(5), LinkModel::default()));
        let store = Arc::new(InventoryStore::open(None, 10).unwrap());
        let placed = OrderPlaced { order: order("o-crash", "pho", 4), placed_at_ms: 7 };
        mq.publish(Route::OrderPlaced, Envelope::new(Event::OrderPlaced(placed.clone())).encode().into()).await.unwrap();

        // The first Inventory commits the reservation, then dies before publishing and acking.
        let first = mq.consume(QueueName::InventoryInbox, 1).await.unwrap();
        let delivery = first.deliveries.recv_async().await.unwrap();
        assert!(store.handle_all(&[&placed]).await.unwrap()[0].first);
        drop(first);

        // A restarted Inventory gets the message again and answers from its store.
        let inventory =
            tokio::spawn(consumer::run_inventory(mq.clone(), store.clone(), 1, Policy::seeded(5), campus::telemetry::Tracer::off()));
        let results = mq.consume(QueueName::OrderInbox, 1).await.unwrap();
        let outcome = results.deliveries.recv_async().await.unwrap();
        assert!(!delivery.redelivered && mq.depth(QueueName::InventoryInbox).await.unwrap() == 0);
        assert!(matches!(Envelope::decode(&outcome.body), Ok(Event::InventoryReserved(r)) if r.order_id.as_str() == "o-crash"));
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.repeats, stats.stock_applications, stats.units_taken), (1, 1, 4));
        assert_eq!(stats.stock[Sku::parse("pho").unwrap().as_str()], 6);
        inventory.abort();
    });
}

#[test]
fn an_accepted_order_is_stored_with_its_event_and_published_exactly_from_the_outbox() {
    clock::block_on(async {
        let mq: Arc<dyn MessageQueue> = Arc::new(SimQueue::new(SimRng::new(6), LinkModel::default()));
        let store = Arc::new(OrderStore::open(None).unwrap());
        let service = Arc::new(AsyncOrderService::new(OrderIds::seeded(1), store.clone(), EventClock::Since(tokio::time::Instant::now())));
        let request: OrderRequest = serde_json::from_value(json!({"student_id": "s-9", "items": [{"sku": "coffee", "qty": 2}]})).unwrap();
        let id = service.accept(request, None).await.unwrap().order_id;
        assert_eq!(store.unpublished().await.unwrap().len(), 1, "stored with its outbox row before anything is published");
        assert_eq!(store.get(id.as_str()).await.unwrap().unwrap().status, OrderStatus::Accepted);

        let relay = tokio::spawn({
            let (service, mq) = (service.clone(), mq.clone());
            async move { service.run_relay(mq, Policy::seeded(6)).await }
        });
        let inbox = mq.consume(QueueName::InventoryInbox, 1).await.unwrap();
        let published = inbox.deliveries.recv_async().await.unwrap();
        match Envelope::decode(&published.body) {
            Ok(Event::OrderPlaced(p)) => assert_eq!(p.order.order_id, id),
            other => panic!("expected the OrderPlaced, got {other:?}"),
        }
        tokio::task::yield_now().await;
        assert!(store.unpublished().await.unwrap().is_empty());
        assert_eq!(store.stats().await.unwrap().published, 1);
        relay.abort();
    });
}

#[test]
fn the_outbox_relay_waits_on_an_empty_outbox_until_the_next_accepted_order_wakes_it() {
    clock::block_on(async {
        let mq: Arc<dyn MessageQueue> = Arc::new(SimQueue::new(SimRng::new(7), LinkModel::default()));
        let service = Arc::new(AsyncOrderService::new(
            OrderIds::seeded(1),
            Arc::new(OrderStore::open(None).unwrap()),
            EventClock::Since(tokio::time::Instant::now()),
        ));
        // Polled by hand (tokio-test), so that the order of events is the test's: the relay is
        // asleep before the order arrives, and the order's arrival is what wakes it.
        let mut relay = tokio_test::task::spawn(service.run_relay(mq, Policy::seeded(7)));
        tokio_test::assert_pending!(relay.poll(), "nothing to publish: the relay waits");
        assert!(!relay.is_woken(), "and nothing wakes it while the outbox stays empty (no polling loop)");
        let request: OrderRequest =
            serde_json::from_value(json!({"student_id": "s-7", "items": [{"sku": "pizza-slice", "qty": 1}]})).unwrap();
        service.accept(request, None).await.unwrap();
        assert!(relay.is_woken(), "accepting an order wakes the relay");
    });
}

#[test]
fn an_order_sent_again_under_its_key_is_stored_and_published_once_and_answered_with_its_status() {
    clock::block_on(async {
        let store = Arc::new(OrderStore::open(None).unwrap());
        let service = AsyncOrderService::new(OrderIds::seeded(1), store.clone(), EventClock::Since(tokio::time::Instant::now()));
        let request: OrderRequest =
            serde_json::from_value(json!({"order_id": "client-1", "student_id": "s-1", "items": [{"sku": "pho", "qty": 1}]})).unwrap();
        let first = service.accept(request.clone(), None).await.unwrap();
        assert_eq!((first.order_id.as_str(), first.status, first.repeat), ("client-1", OrderStatus::Accepted, false));
        store.record_outcomes(&[(&first.order_id, OrderStatus::Reserved)]).await.unwrap();
        let again = service.accept(request, None).await.unwrap();
        assert_eq!(
            (again.order_id.as_str(), again.status.as_str(), again.repeat),
            ("client-1", "reserved", true),
            "the order as it stands"
        );
        assert_eq!(store.stats().await.unwrap().accepted, 1);
        assert_eq!(store.unpublished().await.unwrap().len(), 1, "one OrderPlaced in the outbox");
    });
}

#[test]
fn notification_confirms_an_order_once_however_often_it_hears_of_it() {
    clock::block_on(async {
        let store = NotificationStore::open(None).unwrap();
        let order = order("o-n", "salad", 1);
        let once = [(&order.order_id, &order.student_id)];
        assert_eq!(store.send_all(&once).await.unwrap(), [true]);
        assert_eq!(store.send_all(&once).await.unwrap(), [false]);
        // A window that holds it twice more, beside another order: sent for the other only.
        let other = self::order("o-m", "salad", 1);
        let window = [(&order.order_id, &order.student_id), (&other.order_id, &other.student_id), (&order.order_id, &order.student_id)];
        assert_eq!(store.send_all(&window).await.unwrap(), [false, true, false]);
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.notified, stats.received), (2, 5));
    });
}

#[test]
fn a_window_of_orders_is_decided_in_order_in_one_transaction_and_a_repeat_in_it_re_emits_the_first_decision() {
    clock::block_on(async {
        let store = InventoryStore::open(None, 5).unwrap();
        let (a, b) = (
            OrderPlaced { order: order("o-wa", "pho", 4), placed_at_ms: 1 },
            OrderPlaced { order: order("o-wb", "pho", 4), placed_at_ms: 2 },
        );
        // Five pho: the first order takes four, the second finds one and fails, the first again
        // re-emits its reservation.
        let handled = store.handle_all(&[&a, &b, &a]).await.unwrap();
        assert_eq!(handled.iter().map(|h| h.first).collect::<Vec<_>>(), [true, true, false]);
        assert!(matches!(&handled[0].event, Event::InventoryReserved(r) if r.order_id.as_str() == "o-wa"));
        assert!(matches!(&handled[1].event, Event::InventoryFailed(f) if f.order_id.as_str() == "o-wb"));
        assert_eq!(handled[2].event, handled[0].event);
        let stats = store.stats().await.unwrap();
        assert_eq!((stats.reserved, stats.failed, stats.repeats, stats.units_taken), (1, 1, 1, 4));
    });
}
