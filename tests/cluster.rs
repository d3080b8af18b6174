//! The clustered deployment in the simulation: a lost broker node (Part B's RabbitMQ, Part C's
//! Kafka), and Inventory scaled out over several instances sharing one store. The same
//! accounting as the parts' own experiments.

use crate::common;

use std::time::Duration;

use campus_sim::async_rabbitmq;
use campus_sim::cluster::rows::{self, Summary};
use campus_sim::cluster::{run_sim, Config, Experiment, Run};
use campus_sim::Mode;

fn small(experiment: Experiment) -> Config {
    let mut config = Config { experiment, instances: vec![1, 2, 4], ..Config::default() };
    config.messaging.lead = Duration::from_secs(3);
    config.messaging.node_down_for = Duration::from_secs(5);
    config.messaging.backlog = 400;
    config.streaming.events = 3000;
    config.streaming.node_down_for = Duration::from_secs(15);
    config
}

/// The Part B runs of `runs`.
fn messaging(runs: &[Run]) -> Vec<&async_rabbitmq::Run> {
    runs.iter().filter_map(|r| if let Run::Messaging(r) = r { Some(r) } else { None }).collect()
}

#[test]
fn when_the_node_the_services_use_is_lost_orders_keep_flowing_and_none_is_lost_or_doubled() -> anyhow::Result<()> {
    let runs = run_sim(&small(Experiment::NodeLoss))?;
    let run = messaging(&runs)[0];
    assert_eq!(runs[0].violations(), vec![]);
    let summary = Summary::of(&runs[0]);
    assert_eq!((summary.refused, summary.lost, summary.double), (0, 0, 0));
    let loss = run.node_loss().expect("a node-loss run");
    let (down, up) = loss.down_window_ms;
    let decided = |t: u64| loss.samples.iter().rfind(|s| s.t_ms <= t).map_or(0, |s| s.reserved + s.failed);
    assert!(decided(up) > decided(down + 3000), "orders were decided while the lost node was still down");
    let stall = summary.stall_s.expect("a stall is measured").0;
    assert!(stall <= 2.0, "the failover (0.6 s, then the consumers' backoff) costs at most a sample or two, got {stall} s");
    Ok(())
}

#[test]
fn when_a_kafka_broker_is_lost_every_event_is_decided_once_after_its_partitions_move() -> anyhow::Result<()> {
    let runs = run_sim(&small(Experiment::NodeLoss))?;
    let streaming = runs.iter().find(|r| matches!(r, Run::Streaming(_))).expect("Part C's node loss");
    assert_eq!(streaming.violations(), vec![]);
    let summary = Summary::of(streaming);
    assert_eq!((summary.model.as_str(), summary.orders, summary.lost, summary.double), ("streaming-kafka", 3000, 0, 0));
    let stall = summary.stall_s.expect("a stall is measured").0;
    assert!((9.0..=15.0).contains(&stall), "the partitions' leadership moves after the 9 s failover, got a stall of {stall} s");
    Ok(())
}

#[test]
fn more_inventory_instances_drain_a_backlog_faster_in_the_model_and_a_crashed_one_loses_nothing() -> anyhow::Result<()> {
    let all = run_sim(&small(Experiment::ScaleOut))?;
    for run in &all {
        assert_eq!(run.violations(), vec![], "{}", Summary::of(run).experiment);
    }
    let runs = messaging(&all);
    let rate = |n: usize, crashed: bool| {
        let run = runs.iter().find(|r| r.scale_out().is_some_and(|s| s.instances == n && s.crashed.is_some() == crashed)).unwrap();
        run.scale_out().unwrap().orders_per_s
    };
    assert!(rate(2, false) > rate(1, false) && rate(4, false) > rate(2, false), "{} {} {}", rate(1, false), rate(2, false), rate(4, false));
    let crash = runs.iter().filter_map(|r| r.scale_out()).find(|s| s.crashed.is_some()).expect("a run with a crash");
    let (_, decided_then) = crash.crashed.unwrap();
    assert!(decided_then >= 200 && decided_then < 400, "the instance died halfway, at {decided_then}");
    assert_eq!(crash.progress.last().unwrap().1, 400, "the survivors decided every order");
    Ok(())
}

#[test]
fn the_same_seed_gives_byte_identical_cluster_csv() -> anyhow::Result<()> {
    let files = |name: &str| -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let dir = common::scratch_dir(name);
        let runs = run_sim(&small(Experiment::All))?;
        let summaries: Vec<Summary> = runs.iter().map(Summary::of).collect();
        rows::write_csv(&dir, Mode::Sim, &runs, &summaries)?;
        Ok((std::fs::read(dir.join(rows::SUMMARY_CSV))?, std::fs::read(dir.join(rows::NODE_LOSS_CSV))?))
    };
    assert!(files("cluster-seed-a")? == files("cluster-seed-b")?, "two runs with the same seed differ");
    Ok(())
}

#[test]
fn a_consumer_group_keeps_each_partitions_order_and_a_dead_members_partitions_wait_for_its_eviction() -> anyhow::Result<()> {
    let all = run_sim(&small(Experiment::ScaleOut))?;
    let streaming: Vec<Summary> = all.iter().filter(|r| matches!(r, Run::Streaming(_))).map(Summary::of).collect();
    assert_eq!(streaming.len(), 8, "1, 2, 4 instances and a crash, over 3 and over 6 partitions");
    for s in &streaming {
        assert_eq!((s.orders, s.lost, s.double, s.out_of_order), (3000, 0, 0, Some(0)), "{} over {:?}", s.experiment, s.partitions);
    }
    for crash in streaming.iter().filter(|s| s.experiment.ends_with("crash")) {
        let drain = crash.drain_s.expect("a drain is timed").0;
        assert!(drain >= 6.0, "the dead member's partitions wait out the 6 s session timeout, drained in {drain} s");
    }
    Ok(())
}
