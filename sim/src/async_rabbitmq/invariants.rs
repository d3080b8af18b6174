//! Part B's accounting: every accepted order in exactly one terminal state, no stock taken
//! twice, one notification per reserved order, every malformed message dead-lettered and no
//! good one, and the outage's backlog risen and drained.

use std::collections::BTreeSet;

use campus::domain::{Envelope, Event, OrderStatus};

use super::Run;
use crate::violation::Violation;

/// Part B's accounting: every accepted order in exactly one terminal state (reserved and
/// notified, failed, or dead-lettered), no stock taken twice, one notification per reserved
/// order, every injected poison message dead-lettered and no good one.
pub fn check(run: &Run) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut fail = |message: String| violations.push(Violation { experiment: run.name().to_owned(), message });
    let end = &run.end;
    let statuses = &end.orders.statuses;
    let notified: BTreeSet<&str> = end.notified.iter().map(String::as_str).collect();
    let dead_orders: BTreeSet<String> = end
        .dead_letters
        .iter()
        .filter_map(|d| match Envelope::decode(&d.body) {
            Ok(Event::OrderPlaced(p)) if statuses.contains_key(p.order.order_id.as_str()) => Some(p.order.order_id.to_string()),
            _ => None,
        })
        .collect();

    if run.refused > 0 {
        fail(format!("{} orders were not accepted (Order must accept while Inventory is away)", run.refused));
    }
    if statuses.len() != run.accepted {
        fail(format!("{} orders answered 202 but Order's store holds {}", run.accepted, statuses.len()));
    }
    let mut broken = Vec::new();
    for (id, status) in statuses {
        let inventory = end.inventory_outcomes.get(id).map(String::as_str);
        let was_notified = notified.contains(id.as_str());
        let states = [
            *status == OrderStatus::Reserved && inventory == Some("reserved") && was_notified,
            *status == OrderStatus::Failed && inventory == Some("failed") && !was_notified,
            dead_orders.contains(id) && inventory.is_none() && !was_notified,
        ];
        if states.iter().filter(|s| **s).count() != 1 {
            broken.push(format!(
                "{id} (order: {status}, inventory: {}, notified: {was_notified}, dead-lettered: {})",
                inventory.unwrap_or("never saw it"),
                dead_orders.contains(id)
            ));
        }
    }
    if !broken.is_empty() {
        fail(format!(
            "{} accepted orders are not in exactly one terminal state, e.g. {}",
            broken.len(),
            broken.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    let inv = &end.inventory;
    if inv.double_reservations > 0 {
        fail(format!("{} orders had their stock taken more than once", inv.double_reservations));
    }
    if inv.units_taken != inv.units_of_reserved_orders {
        fail(format!("stock fell by {} units but the reserved orders asked for {}", inv.units_taken, inv.units_of_reserved_orders));
    }
    let stray: Vec<&&str> = notified.iter().filter(|id| statuses.get(**id) != Some(&OrderStatus::Reserved)).collect();
    if !stray.is_empty() {
        fail(format!("{} notifications for orders that are not reserved, e.g. {}", stray.len(), stray[0]));
    }
    if end.notification.notified != notified.len() as u64 {
        fail(format!("notification counts {} confirmations but lists {}", end.notification.notified, notified.len()));
    }
    let poison_dead = end.dead_letters.len() - dead_orders.len();
    let (least, most) = run.poison_dead_letters();
    if poison_dead < least || poison_dead > most {
        let published_again =
            if most > least { format!(" ({} published again after a failed attempt)", most - least) } else { String::new() };
        fail(format!("{least} malformed messages injected{published_again}, {poison_dead} dead-lettered"));
    }
    if !dead_orders.is_empty() {
        fail(format!("{} good orders were dead-lettered, e.g. {}", dead_orders.len(), dead_orders.iter().next().expect("non-empty")));
    }
    // Each sample one consistent snapshot: no later stage counting more than the accepted orders
    // (`observe::sample` reads downstream first), and time strictly increasing. Notified against
    // Order's decided count is no such pair: Notification and Order hear of a reservation
    // independently, and a message may sit in the queue before Order has its publisher confirm.
    let series: Vec<(u64, u64, u64, u64, u64)> = match (run.outage(), run.broker_restart().or(run.node_loss())) {
        (Some(o), _) => o.samples.iter().map(|s| (s.t_ms, s.accepted, s.published, s.reserved + s.failed, s.notified)).collect(),
        (None, Some(r)) => r.samples.iter().map(|s| (s.t_ms, s.accepted, s.published, s.reserved + s.failed, s.notified)).collect(),
        (None, None) => Vec::new(),
    };
    if let Some((t_ms, accepted, published, decided, notified)) =
        series.iter().find(|(_, accepted, published, decided, notified)| published > accepted || decided > accepted || notified > accepted)
    {
        fail(format!(
            "the sample at {t_ms} ms is not one snapshot: accepted {accepted}, published {published}, decided {decided}, notified {notified}"
        ));
    }
    if let Some(pair) = series.windows(2).find(|w| w[1].0 <= w[0].0) {
        fail(format!("sample times do not increase: {} ms, then {} ms", pair[0].0, pair[1].0));
    }
    if let Some((outage, last)) = run.outage().and_then(|o| Some((o, o.samples.last()?))) {
        if outage.peak_backlog == 0 {
            fail("the backlog never rose during the outage".into());
        }
        if last.queue_depth != 0 || outage.drain.is_none() {
            fail(format!("the backlog did not drain (last depth {})", last.queue_depth));
        }
    }
    if let Some((restart, last)) = run.broker_restart().or(run.node_loss()).and_then(|r| Some((r, r.samples.last()?))) {
        if last.outbox() != 0 || last.queue_depth != Some(0) || restart.drain.is_none() {
            fail(format!(
                "the outbox or the queue did not drain after the broker's return (outbox {}, queue {:?})",
                last.outbox(),
                last.queue_depth
            ));
        }
        if restart.samples.iter().all(|s| s.broker_up) {
            fail("no sample was taken while the broker was down".into());
        }
    }
    // The reconciler mends what a real broker loses; the simulated one loses nothing, so there
    // it must never have fired (a lost order shows here even though it was mended).
    if run.mode == crate::Mode::Sim && end.orders.stats.republished > 0 {
        fail(format!("Order's reconciler published {} OrderPlaced again: they were lost on the way", end.orders.stats.republished));
    }
    if let Some(scale) = run.scale_out() {
        let decided = scale.progress.last().map_or(0, |(_, d)| *d);
        if decided != scale.backlog as u64 {
            fail(format!("{} instances decided {decided} of the backlog's {} orders", scale.instances, scale.backlog));
        }
    }
    violations
}
