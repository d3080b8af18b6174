//! Part C in the simulation: lag under throttling, replay, metrics against the workload, and
//! runs that are a function of the seed.

use crate::common;

use campus::domain::{Envelope, Event, InventoryFailed, Items, OrderId, ReserveOutcome};
use campus::services::analytics::Analytics;
use campus::services::inventory::Inventory;
use campus::streaming_kafka::consumers;
use campus_sim::streaming_kafka::invariants;
use campus_sim::streaming_kafka::rows;
use campus_sim::streaming_kafka::{run_sim, Config, Detail, Experiment};
use campus_sim::Mode;

fn small(experiment: Experiment) -> Config {
    Config { experiment, events: 2000, throttle_per_s: 400, stock: 1000, ..Config::default() }
}

#[test]
fn a_throttled_consumer_falls_behind_a_full_speed_producer_and_catches_up() -> anyhow::Result<()> {
    let runs = run_sim(&small(Experiment::Lag))?;
    let run = &runs[0];
    assert_eq!(invariants::check(run), vec![]);
    let lag = run.lag().expect("a lag run");
    assert!(lag.peak > 3000, "4000 records at 400/s: the lag should near 4000, peaked at {}", lag.peak);
    let catch_up = lag.catch_up.unwrap().as_secs_f64();
    assert!((8.0..=12.0).contains(&catch_up), "about 4000 / 400 = 10 s to catch up, took {catch_up}");
    let last = lag.samples.last().unwrap().t_ms;
    assert!(lag.samples.iter().filter(|s| s.t_ms == last).all(|s| s.lag() == 0));
    Ok(())
}

#[test]
fn when_the_broker_dies_mid_stream_every_order_is_decided_once_and_the_consumers_catch_up() -> anyhow::Result<()> {
    let runs = run_sim(&Config { broker_down_for: std::time::Duration::from_secs(5), ..small(Experiment::BrokerRestart) })?;
    let run = &runs[0];
    assert_eq!(invariants::check(run), vec![]);
    let inventory = run.inventory.as_ref().unwrap();
    assert_eq!((inventory.reserved + inventory.failed, inventory.double_reservations), (2000, 0));
    let restart = run.restart().expect("a broker-restart run");
    assert!(restart.samples.iter().any(|s| !s.broker_up && s.analytics_lag.is_none()), "sampled while the broker was down");
    let (down, up) = restart.down_window_ms;
    assert!(up - down >= 5000, "down for the 5 s asked: {down}..{up}");
    assert!(restart.recover.is_some());
    assert_eq!(run.metrics.as_ref().unwrap().total.orders, 2000);
    assert!(restart.samples.windows(2).all(|w| w[0].t_ms < w[1].t_ms), "one sample per instant, in time order");
    let mut torn = runs[0].clone();
    let Detail::BrokerRestart(restart) = &mut torn.detail else { anyhow::bail!("not a broker-restart run") };
    restart.samples[3].t_ms = restart.samples[2].t_ms;
    let violations: Vec<String> = invariants::check(&torn).iter().map(|v| v.message.clone()).collect();
    assert!(violations.iter().any(|v| v.contains("sample times do not increase")), "{violations:?}");
    Ok(())
}

#[test]
fn a_replay_from_the_beginning_reproduces_the_metrics_which_match_the_workload() -> anyhow::Result<()> {
    let runs = run_sim(&small(Experiment::Replay))?;
    let run = &runs[0];
    assert_eq!(invariants::check(run), vec![]);
    assert_eq!(run.replay_equal(), Some(true));
    let metrics = run.metrics.as_ref().unwrap();
    assert_eq!(metrics.total.orders, 2000);
    assert!(metrics.total.failed > 0, "stock 1000 per item runs out: some orders must fail");
    assert!(metrics.per_minute.len() > 10, "2000 orders span many minutes of event time");
    Ok(())
}

#[test]
fn analytics_counts_each_order_once_however_often_its_events_are_read() {
    let events = small(Experiment::Produce).events();
    let mut once = Analytics::default();
    let mut twice = Analytics::default();
    for e in &events[..100] {
        let event = Event::OrderPlaced(e.clone());
        once.apply(&event);
        twice.apply(&event);
        twice.apply(&event);
    }
    let failed = Event::InventoryFailed(InventoryFailed {
        order_id: OrderId::parse("o-7ea-000001").unwrap(),
        reason: "x".into(),
        placed_at_ms: events[0].placed_at_ms,
    });
    for a in [&mut once, &mut twice] {
        a.apply(&failed);
    }
    twice.apply(&failed);
    assert_eq!(once.metrics(), twice.metrics());
    assert_eq!(once.metrics().total.failed, 1);
    assert!(Envelope::decode(&Envelope::new(failed).encode()).is_ok());
}

#[test]
fn inventorys_stats_count_the_units_of_its_reserved_orders_once_however_often_an_order_is_decided() -> anyhow::Result<()> {
    let items = |json: serde_json::Value| -> anyhow::Result<Items> { Ok(serde_json::from_value(json)?) };
    let mut inventory = Inventory::with_stock(10);
    let two_pizzas = items(serde_json::json!([{"sku": "pizza-slice", "qty": 2}]))?;
    let first = OrderId::parse("o-7ea-000001")?;
    inventory.reserve(&first, &two_pizzas);
    inventory.reserve(&first, &two_pizzas);
    inventory.restore(OrderId::parse("o-7ea-000002")?, &items(serde_json::json!([{"sku": "salad", "qty": 3}]))?, ReserveOutcome::Reserved);
    inventory.reserve(&OrderId::parse("o-7ea-000003")?, &items(serde_json::json!([{"sku": "pizza-slice", "qty": 9}]))?);
    let stats = consumers::stats(&inventory, 10);
    assert_eq!((stats.reserved, stats.failed), (2, 1));
    assert_eq!(stats.units_of_reserved_orders, 5);
    assert_eq!(stats.units_taken, stats.units_of_reserved_orders);
    Ok(())
}

#[test]
fn the_same_seed_gives_byte_identical_part_c_csv() -> anyhow::Result<()> {
    let files = |name: &str| -> anyhow::Result<Vec<Vec<u8>>> {
        let dir = common::scratch_dir(name);
        let runs = run_sim(&small(Experiment::All))?;
        rows::write_csv(&dir, Mode::Sim, &runs)?;
        let csv = [rows::METRICS_CSV, rows::LAG_CSV, rows::REPLAY_CSV, rows::SUMMARY_CSV];
        Ok(csv.iter().map(|f| std::fs::read(dir.join(f))).collect::<Result<_, _>>()?)
    };
    assert!(files("c-seed-a")? == files("c-seed-b")?, "two runs with the same seed differ");
    Ok(())
}
