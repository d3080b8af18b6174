//! The counts the services keep anyway (their stores' and views' statistics), read as samples
//! when scraped: one name for one thing, whichever part counts it.

use super::metrics::Sample;
use crate::store::{InventoryStats, NotificationStats, OrderStats};

/// Orders taken by the service a student talks to: Part A's Order (placed, 201), Part B's
/// Order (stored with its `OrderPlaced`, 202), Part C's producer (appended, 202).
pub fn accepted(n: u64) -> Sample {
    Sample::counter("campus_orders_accepted", "Orders accepted from students (A: placed; B: stored; C: appended to the log)", n)
}

/// Orders decided, by outcome (`reserved` or `failed`: out of stock), as the counting service
/// knows them.
pub fn decided(reserved: u64, failed: u64) -> Vec<Sample> {
    let sample = |outcome: &str, n| {
        Sample::counter("campus_orders_decided", "Orders decided, per outcome (reserved, or failed: out of stock)", n)
            .with("outcome", outcome)
    };
    vec![sample("reserved", reserved), sample("failed", failed)]
}

/// Repeats a service absorbed: a message or record it had handled before (its effect not
/// applied again).
pub fn duplicates(n: u64) -> Sample {
    Sample::counter("campus_duplicates_absorbed", "Repeated messages or requests recognised and not applied twice", n)
}

/// Inventory's counts, in every part.
pub fn inventory(stats: &InventoryStats) -> Vec<Sample> {
    let mut samples = decided(stats.reserved, stats.failed);
    samples.push(duplicates(stats.repeats));
    samples.push(Sample::gauge("campus_stock_units", "Units in stock, over every item", stats.stock.values().sum::<u64>() as f64));
    samples
}

/// Confirmations sent, one per order.
pub fn notified(n: u64) -> Sample {
    Sample::counter("campus_notifications_sent", "Confirmations sent to students, one per order", n)
}

/// Part B's Notification.
pub fn notification(stats: &NotificationStats) -> Vec<Sample> {
    vec![notified(stats.notified), duplicates(stats.received.saturating_sub(stats.notified))]
}

/// Part B's Order: what it took, what Inventory decided as Order recorded it, and its outbox.
pub fn order(stats: &OrderStats) -> Vec<Sample> {
    let mut samples = vec![accepted(stats.accepted)];
    samples.extend(decided(stats.reserved, stats.failed));
    samples.push(Sample::gauge(
        "campus_outbox_depth",
        "Orders stored whose OrderPlaced the broker has not yet confirmed (the outbox's unpublished rows)",
        stats.accepted.saturating_sub(stats.published) as f64,
    ));
    samples.push(Sample::counter(
        "campus_orders_republished",
        "OrderPlaced published again by Order's reconciler (lost by the broker)",
        stats.republished,
    ));
    samples
}
