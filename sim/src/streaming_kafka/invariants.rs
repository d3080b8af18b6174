//! Part C's invariants: the replay reproduces the metrics, which match the workload; Inventory
//! decided every event once; under throttling the lag rose and came back to 0.

use super::Run;
use crate::violation::Violation;

/// Part C: the replay reproduces the metrics, which match the workload; Inventory answered
/// every event once; under throttling the lag rose and came back to 0.
pub fn check(run: &Run) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut fail = |message: String| violations.push(Violation { experiment: run.name().to_owned(), message });
    if run.replay_equal() == Some(false) {
        fail("the metrics after the replay differ from those before".into());
    }
    if let Some(metrics) = &run.metrics {
        let counted: std::collections::BTreeMap<u64, u64> = metrics.per_minute.iter().map(|(m, v)| (*m, v.orders)).collect();
        if counted != run.expected_orders {
            let differing = run.expected_orders.iter().filter(|(m, n)| counted.get(m) != Some(n)).count();
            fail(format!("orders per minute differ from the workload in {differing} minutes"));
        }
        if (metrics.total.reserved + metrics.total.failed) as usize != run.events {
            fail(format!("{} events but {} outcomes counted", run.events, metrics.total.reserved + metrics.total.failed));
        }
    }
    if let Some(inventory) = &run.inventory {
        if inventory.double_reservations > 0 {
            fail(format!("{} orders had their stock taken more than once", inventory.double_reservations));
        }
        if (inventory.reserved + inventory.failed) as usize != run.events {
            fail(format!("inventory decided {} of {} orders", inventory.reserved + inventory.failed, run.events));
        }
    }
    if let Some(d) = &run.decisions {
        if d.duplicates > 0 {
            fail(format!("{} orders decided more than once in inventory-events (read_committed)", d.duplicates));
        }
        if d.lost > 0 {
            fail(format!("{} of {} orders have no decision in inventory-events (read_committed)", d.lost, run.events));
        }
        let dead: u64 = d.dead_letters.values().sum();
        if dead != d.malformed {
            fail(format!("{} malformed records in order-events, {dead} in dead-letters", d.malformed));
        }
        if let Some(inventory) = &run.inventory {
            if inventory.units_taken != d.reserved_units {
                fail(format!(
                    "inventory took {} units, but the orders decided reserved asked for {}",
                    inventory.units_taken, d.reserved_units
                ));
            }
        }
    }
    if let super::Detail::Poison { injected } = run.detail {
        let malformed = run.decisions.as_ref().map_or(0, |d| d.malformed);
        if malformed < injected as u64 {
            fail(format!("{injected} poison records injected, only {malformed} found in order-events"));
        }
    }
    if let Some(lag) = run.lag() {
        let last_t = lag.samples.last().map(|s| s.t_ms);
        let final_lag: u64 = lag.samples.iter().filter(|s| Some(s.t_ms) == last_t).map(|s| s.lag()).sum();
        if lag.peak == 0 {
            fail("the lag never rose under throttling".into());
        }
        if final_lag != 0 || lag.catch_up.is_none() {
            fail(format!("the lag did not return to 0 (last total {final_lag})"));
        }
    }
    if let super::Detail::ScaleOut { drain, out_of_order, .. } = &run.detail {
        if *out_of_order > 0 {
            fail(format!("{out_of_order} decisions were written out of their partition's order"));
        }
        if drain.crashed.is_none() && run.name() == "scale-out" && drain.progress.is_empty() {
            fail("the drain was never sampled".into());
        }
    }
    if let Some(restart) = run.restart().or(run.node_loss()).or(run.outage()) {
        let what = if run.outage().is_some() { "Inventory" } else { "the broker" };
        if restart.recover.is_none() {
            fail(format!("the consumers did not catch up after {what} came back"));
        }
        if restart.samples.iter().all(|s| s.broker_up) {
            fail(format!("no sample was taken while {what} was down"));
        }
        if let Some(pair) = restart.samples.windows(2).find(|w| w[1].t_ms <= w[0].t_ms) {
            fail(format!("sample times do not increase: {} ms, then {} ms", pair[0].t_ms, pair[1].t_ms));
        }
    }
    if let Some(outage) = run.outage() {
        if outage.drained.is_none() {
            fail("the orders appended while Inventory was away never all had their outcome".into());
        }
        if outage.peak_inventory_lag == 0 {
            fail("Inventory's lag never rose while it was down".into());
        }
    }
    violations
}

/// Part C: Analytics' metrics equal those computed directly from the workload and Inventory's
/// decisions, minute by minute.
pub fn analytics_matches(
    experiment: &str,
    metrics: &campus::services::analytics::Metrics,
    expected: &campus::services::analytics::Metrics,
) -> Vec<Violation> {
    let minutes: std::collections::BTreeSet<&u64> = metrics.per_minute.keys().chain(expected.per_minute.keys()).collect();
    let differing: Vec<String> = minutes
        .into_iter()
        .filter(|m| metrics.per_minute.get(m) != expected.per_minute.get(m))
        .map(|m| {
            let show = |v: Option<&campus::services::analytics::MinuteMetrics>| {
                v.map_or("nothing".to_owned(), |v| format!("{} orders, {} reserved, {} failed", v.orders, v.reserved, v.failed))
            };
            format!("minute {m}: analytics {} vs workload {}", show(metrics.per_minute.get(m)), show(expected.per_minute.get(m)))
        })
        .collect();
    if differing.is_empty() {
        return Vec::new();
    }
    vec![Violation {
        experiment: experiment.to_owned(),
        message: format!("analytics differ from the workload in {} minutes: {}", differing.len(), differing.join("; ")),
    }]
}

/// The minutes whose (orders, reserved, failed) differ between `metrics` and `other` (the
/// other mode's, as its CSV rows say).
pub fn differing_minutes(
    metrics: &campus::services::analytics::Metrics,
    other: &std::collections::BTreeMap<u64, (u64, u64, u64)>,
) -> Vec<u64> {
    let minutes: std::collections::BTreeSet<u64> = metrics.per_minute.keys().chain(other.keys()).copied().collect();
    minutes.into_iter().filter(|m| metrics.per_minute.get(m).map(|v| (v.orders, v.reserved, v.failed)) != other.get(m).copied()).collect()
}

/// Part C: the same seed decides the same orders in sim and real, minute by minute.
pub fn same_as_other_mode(
    metrics: &campus::services::analytics::Metrics,
    other: &std::collections::BTreeMap<u64, (u64, u64, u64)>,
) -> Vec<Violation> {
    let differing = differing_minutes(metrics, other);
    if differing.is_empty() {
        return Vec::new();
    }
    vec![Violation {
        experiment: "sim-vs-real".into(),
        message: format!("orders, reserved or failed differ from the other mode's in {} minutes: {:?}", differing.len(), differing),
    }]
}

/// Part C: every run of a mode decided the same orders the same way, minute by minute —
/// whatever happened during it (a throttled Analytics, a broker restart, Inventory killed and
/// restarted, poison among the events). Returns the runs compared and the violations.
pub fn same_across_runs(runs: &[super::Run]) -> (Vec<String>, Vec<Violation>) {
    // `outage` decides only the first of the events: its minutes are not the others'.
    let with: Vec<&super::Run> =
        runs.iter().filter(|r| r.metrics.is_some() && !matches!(r.detail, super::Detail::Explore | super::Detail::Outage(_))).collect();
    let Some(first) = with.first() else { return (Vec::new(), Vec::new()) };
    let reference = first.metrics.as_ref().expect("filtered");
    let violations = with[1..]
        .iter()
        .filter_map(|r| {
            let metrics = r.metrics.as_ref().expect("filtered");
            let other = reference.per_minute.iter().map(|(m, v)| (*m, (v.orders, v.reserved, v.failed))).collect();
            let differing = differing_minutes(metrics, &other);
            (!differing.is_empty()).then(|| Violation {
                experiment: r.name().to_owned(),
                message: format!(
                    "reserved/failed per minute differ from the {} run's in {} minutes: {:?}",
                    first.name(),
                    differing.len(),
                    differing
                ),
            })
        })
        .collect();
    (with.iter().map(|r| r.name().to_owned()).collect(), violations)
}

/// Part C scaled out: in every partition, the units the orders decided `reserved` asked for
/// stay within that partition's stock (`stock` of each item): no shard gave more than it had,
/// whichever members decided it, restored it, or lost it in a rebalance.
pub fn stock_per_partition(
    experiment: &str,
    events: &[campus::domain::OrderPlaced],
    outcomes: &std::collections::BTreeMap<String, bool>,
    stock: u32,
    partitions: u32,
) -> Vec<Violation> {
    let mut taken: std::collections::BTreeMap<(u32, String), u64> = std::collections::BTreeMap::new();
    for e in events {
        let id = e.order.order_id.to_string();
        if outcomes.get(&id) != Some(&true) {
            continue;
        }
        let partition = campus::transport::log::partition_for(id.as_bytes(), partitions);
        for line in e.order.items.as_slice() {
            *taken.entry((partition, line.sku.to_string())).or_insert(0) += u64::from(line.qty.get());
        }
    }
    taken
        .into_iter()
        .filter(|(_, units)| *units > u64::from(stock))
        .map(|((partition, sku), units)| Violation {
            experiment: experiment.to_owned(),
            message: format!("partition {partition} reserved {units} units of {sku}, but its stock was {stock}"),
        })
        .collect()
}
