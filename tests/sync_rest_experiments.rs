//! Part A's experiments in the simulation: the shapes the assignment predicts, checked on the
//! measured answers, and runs that are a function of the seed alone.

use crate::common;

use std::time::Duration;

use campus_sim::reporting::percentile;
use campus_sim::sync_rest::invariants;
use campus_sim::sync_rest::rows::{self, Summary};
use campus_sim::sync_rest::{output, protocols};
use campus_sim::sync_rest::{run_sim, CaseRun, Config, Experiment, Scenario};
use campus_sim::Mode;

use campus::Protocol;

/// The protocols the runs went over, in order, once each.
fn protocols(runs: &[CaseRun]) -> Vec<Protocol> {
    let mut p: Vec<Protocol> = runs.iter().map(|r| r.protocol).collect();
    p.dedup();
    p
}

fn config(experiment: Experiment) -> Config {
    Config { experiment, requests: 300, slow_requests: 40, ..Config::default() }
}

fn latencies(run: &CaseRun) -> Vec<Duration> {
    let mut l: Vec<Duration> = run.answers.iter().map(|a| a.latency).collect();
    l.sort();
    l
}

fn statuses(run: &CaseRun) -> Vec<u16> {
    let mut s: Vec<u16> = run.answers.iter().map(|a| a.status).collect();
    s.dedup();
    s
}

#[test]
fn with_a_2s_inventory_delay_the_median_order_takes_at_least_2s_and_succeeds() -> anyhow::Result<()> {
    let runs = run_sim(&config(Experiment::Delay))?;
    let runs: Vec<CaseRun> = runs.into_iter().filter(|r| r.case.scenario == Scenario::Delay).collect();
    assert_eq!(protocols(&runs), Protocol::ALL, "one case over each protocol");
    for run in &runs {
        assert_eq!(run.answers.len(), 40);
        assert_eq!(statuses(run), vec![201], "{}", run.protocol);
        assert!(percentile(&latencies(run), 50.0) >= Duration::from_millis(2000), "{}", run.protocol);
    }
    Ok(())
}

/// A closed loop hides a slow dependency (its clients just send less); students who keep
/// arriving do not wait for each other, so Order holds rate × delay of them open at once.
#[test]
fn with_orders_arriving_regardless_and_inventory_2s_slow_rate_times_delay_pile_up_in_order() -> anyhow::Result<()> {
    let cfg = config(Experiment::Delay);
    let runs = run_sim(&cfg)?;
    let open: Vec<&CaseRun> = runs.iter().filter(|r| r.case.scenario == Scenario::OpenDelay).collect();
    assert_eq!(open.len(), 2, "open-delay over each protocol");
    let piled = (f64::from(cfg.rate) * cfg.delay.as_secs_f64()) as usize;
    for run in open {
        assert_eq!(statuses(run), vec![201], "{}", run.protocol);
        let peak = Summary::of(run).peak_in_flight.expect("an open loop counts its requests in flight");
        assert!((piled..=piled + 2).contains(&peak), "{peak} in flight over {}, rate × delay = {piled}", run.protocol);
    }
    Ok(())
}

#[test]
fn with_a_timeout_below_the_delay_every_order_gets_504_within_the_bound_slow_before_or_after_reserving() -> anyhow::Result<()> {
    let cfg = config(Experiment::Timeout);
    let runs = run_sim(&cfg)?;
    let names: Vec<_> = runs.iter().map(|r| r.case.scenario.name()).collect();
    assert_eq!(names, ["timeout", "timeout-after-reserve", "timeout", "timeout-after-reserve"]);
    assert_eq!(protocols(&runs), Protocol::ALL);
    for run in &runs {
        assert_eq!(statuses(run), vec![504], "{} over {}", run.case.scenario, run.protocol);
        let max = *latencies(run).last().unwrap();
        assert!(max >= cfg.timeout, "{}: a 504 before the timeout: {max:?}", run.case.scenario);
        assert!(max <= cfg.timeout + Duration::from_millis(50), "{}: a 504 after the bound: {max:?}", run.case.scenario);
    }
    Ok(())
}

#[test]
fn a_504_after_reserving_leaves_the_stock_taken_and_a_retry_under_the_same_key_takes_none_twice() -> anyhow::Result<()> {
    let runs = run_sim(&config(Experiment::Timeout))?;
    for protocol in Protocol::ALL {
        let left = |name: &str| {
            runs.iter().find(|r| r.case.scenario.name() == name && r.protocol == protocol).and_then(|r| r.left_behind.clone()).unwrap()
        };
        let before = left("timeout");
        assert_eq!((before.answered_504, before.units_taken, before.units_left_behind), (40, 0, 0), "{protocol}: held before deciding");
        assert_eq!(before.retried_ok, 40);
        assert_eq!(before.units_taken_by_retries, before.units_confirmed_by_retries, "{protocol}: the retries reserve for the first time");
        let after = left("timeout-after-reserve");
        assert_eq!(after.answered_504, 40);
        assert!(after.units_left_behind > 0, "{protocol}: reserved behind the 504s: {after:?}");
        assert_eq!(after.units_left_behind, after.units_confirmed_by_retries, "{protocol}: every unit taken belongs to a confirmed order");
        assert_eq!((after.retried_ok, after.units_taken_by_retries), (40, 0), "{protocol}: each retry found its first attempt's outcome");
    }
    Ok(())
}

#[test]
fn the_checker_fails_a_run_whose_504s_left_stock_the_fault_does_not_explain() -> anyhow::Result<()> {
    let cfg = config(Experiment::Timeout);
    let mut runs = run_sim(&cfg)?;
    let held_before = runs.iter_mut().find(|r| r.case.scenario.name() == "timeout").unwrap();
    let row = held_before.left_behind.as_mut().unwrap();
    row.units_taken += 3;
    row.units_left_behind += 3;
    let violations = invariants::check(&runs, &cfg);
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations.iter().all(|v| v.experiment == "timeout over rest"), "{violations:?}");
    Ok(())
}

#[test]
fn with_orders_arriving_on_a_schedule_part_a_answers_each_and_decides_at_the_offered_rate() -> anyhow::Result<()> {
    let cfg = Config { rate: 50, open_requests: 100, ..config(Experiment::OpenLoop) };
    let runs = run_sim(&cfg)?;
    assert_eq!(protocols(&runs), Protocol::ALL);
    for run in &runs {
        assert_eq!((run.answers.len(), statuses(run)), (100, vec![201]));
        // 100 orders 20 ms apart: the last is sent at 1.98 s, so the load ends soon after.
        assert!(run.elapsed >= Duration::from_millis(1980) && run.elapsed < Duration::from_millis(2100), "{:?}", run.elapsed);
        let rate = Summary::of(run).throughput_rps;
        assert!((49.0..=51.0).contains(&rate), "{}: decided {rate:.1} orders/s with 50 offered", run.protocol);
    }
    Ok(())
}

#[test]
fn with_inventory_down_or_failing_every_order_gets_a_fast_503() -> anyhow::Result<()> {
    let runs = run_sim(&config(Experiment::Failure))?;
    let names: Vec<_> = runs.iter().map(|r| r.case.scenario.name()).collect();
    assert_eq!(names, ["failure-down", "failure-5xx", "failure-down", "failure-5xx"]);
    assert_eq!(protocols(&runs), Protocol::ALL);
    for run in &runs {
        assert_eq!(run.answers.len(), 300);
        assert_eq!(statuses(run), vec![503], "{}", run.case.scenario);
        assert!(percentile(&latencies(run), 99.0) < Duration::from_millis(50), "{}", run.case.scenario);
    }
    Ok(())
}

#[test]
fn the_default_run_passes_every_check_and_explains_each_experiment() -> anyhow::Result<()> {
    let cfg = config(Experiment::All);
    let runs = run_sim(&cfg)?;
    assert_eq!(invariants::check(&runs, &cfg), vec![]);
    let summaries: Vec<Summary> = runs.iter().map(Summary::of).collect();
    let findings = output::findings(&cfg, &summaries);
    for name in
        ["baseline", "open-loop", "delay", "open-delay", "timeout", "timeout-after-reserve", "failure-down", "failure-5xx", "coupling"]
    {
        assert!(findings.iter().any(|f| f.starts_with(&format!("**{name}**"))), "no finding for {name}");
    }
    let left_behind: Vec<_> = runs.iter().filter_map(|r| r.left_behind.clone()).collect();
    let side_by_side = protocols::findings(&cfg, Mode::Sim, &protocols::pairs(&summaries), &left_behind);
    for claim in ["What does not change: the answers", "What does not change: the coupling", "the wire", "where the deadline lives"] {
        assert!(side_by_side.iter().any(|f| f.contains(claim)), "no finding on {claim}: {side_by_side:?}");
    }
    assert!(side_by_side[0].contains("All 8 experiments got the same answers"), "{}", side_by_side[0]);
    Ok(())
}

#[test]
fn the_checker_catches_a_run_whose_answers_do_not_match_the_experiment() -> anyhow::Result<()> {
    let cfg = config(Experiment::Timeout);
    let mut runs = run_sim(&cfg)?;
    runs[0].answers[3].status = 201;
    runs[0].answers[7].latency = cfg.timeout + Duration::from_millis(400);
    let violations = invariants::check(&runs, &cfg);
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[0].message.contains("#3 got 201"), "{}", violations[0]);
    assert!(violations[1].message.contains("worst #7"), "{}", violations[1]);
    Ok(())
}

fn csv_files(seed: u64, name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = common::scratch_dir(name);
    let cfg = Config { seed, ..config(Experiment::All) };
    let runs = run_sim(&cfg).unwrap();
    let summaries: Vec<Summary> = runs.iter().map(Summary::of).collect();
    rows::write_csv(&dir, Mode::Sim, &runs, &summaries).unwrap();
    (std::fs::read(dir.join(rows::REQUESTS_CSV)).unwrap(), std::fs::read(dir.join(rows::SUMMARY_CSV)).unwrap())
}

#[test]
fn the_same_seed_gives_byte_identical_csv_and_another_seed_does_not() {
    let first = csv_files(7, "seed-7-a");
    let again = csv_files(7, "seed-7-b");
    assert!(first == again, "two runs with seed 7 differ");
    let other = csv_files(8, "seed-8");
    assert!(first.0 != other.0, "seed 8 produced the same requests as seed 7: the seed drives nothing");
}

#[test]
fn the_requests_csv_has_one_row_per_request_with_the_agreed_columns() -> anyhow::Result<()> {
    let dir = common::scratch_dir("columns");
    let cfg = config(Experiment::Baseline);
    let runs = run_sim(&cfg)?;
    let summaries: Vec<Summary> = runs.iter().map(Summary::of).collect();
    rows::write_csv(&dir, Mode::Sim, &runs, &summaries)?;
    let mut reader = csv::Reader::from_path(dir.join(rows::REQUESTS_CSV)).unwrap();
    assert_eq!(reader.headers().unwrap(), vec!["experiment", "mode", "protocol", "index", "order_id", "status", "latency_ms"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 600, "300 over each protocol");
    assert!(rows.iter().all(|r| &r[0] == "baseline" && &r[1] == "sim" && r[4].starts_with("o-7ea-")));
    assert_eq!(rows.iter().filter(|r| &r[2] == "grpc").count(), 300);
    let mut summary = csv::Reader::from_path(dir.join(rows::SUMMARY_CSV)).unwrap();
    let header: Vec<String> = summary.headers().unwrap().iter().map(str::to_owned).collect();
    for column in [
        "experiment",
        "mode",
        "protocol",
        "requests",
        "ok",
        "errors",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "throughput_rps",
        "request_bytes",
    ] {
        assert!(header.iter().any(|h| h == column), "summary lacks {column}");
    }
    Ok(())
}
