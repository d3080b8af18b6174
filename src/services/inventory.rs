//! Inventory: stock per sku and the reservations made against it.
//!
//! A reservation is all-or-nothing (every line of the order, or none) and idempotent by
//! order id: the outcome of the first attempt is remembered and returned again for any
//! repeat, so a retried HTTP call or a redelivered message never takes stock twice. The last
//! [`REMEMBERED`] orders are remembered (older ones are counted), so memory stays flat however
//! many orders pass ([`super::recent`]).

use std::collections::BTreeMap;

use super::recent::{Recent, REMEMBERED};
pub use crate::domain::ReserveOutcome;
use crate::domain::{Items, OrderId, Sku};

/// The answer to one `reserve` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub outcome: ReserveOutcome,
    /// False when this order id had been seen before and nothing changed now.
    pub first_attempt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    stock: BTreeMap<Sku, u32>,
    outcomes: Recent<OrderId, ReserveOutcome>,
    /// Orders decided (first attempts and restored decisions): reserved, rejected.
    reserved: u64,
    rejected: u64,
    /// Units the reserved orders asked for (each order counted once, as decided).
    units_reserved: u64,
}

impl Inventory {
    /// Every menu item starts with `per_sku` units.
    pub fn with_stock(per_sku: u32) -> Self {
        Self::from_levels(Sku::all().map(|s| (s, per_sku)))
    }

    /// Explicit stock levels; skus not given start at zero.
    pub fn from_levels(levels: impl IntoIterator<Item = (Sku, u32)>) -> Self {
        let mut stock: BTreeMap<Sku, u32> = Sku::all().map(|s| (s, 0)).collect();
        stock.extend(levels);
        Inventory { stock, outcomes: Recent::new(REMEMBERED), reserved: 0, rejected: 0, units_reserved: 0 }
    }

    /// Reserves every line of `items` for `order_id`, or nothing.
    pub fn reserve(&mut self, order_id: &OrderId, items: &Items) -> Reservation {
        if let Some(outcome) = self.outcomes.get(order_id) {
            return Reservation { outcome: outcome.clone(), first_attempt: false };
        }
        let outcome = items.reserve_against(|sku| self.stock[sku]);
        if outcome == ReserveOutcome::Reserved {
            for line in items.as_slice() {
                *self.stock.get_mut(&line.sku).expect("every menu sku has a level") -= line.qty.get();
            }
        }
        self.count(items, &outcome);
        self.outcomes.insert(order_id.clone(), outcome.clone());
        Reservation { outcome, first_attempt: true }
    }

    /// Re-applies a decision made before (a restore from a changelog): its outcome, and the
    /// stock it took if it reserved. A decision already known changes nothing.
    pub fn restore(&mut self, order_id: OrderId, items: &Items, outcome: ReserveOutcome) {
        if self.outcomes.contains(&order_id) {
            return;
        }
        if outcome == ReserveOutcome::Reserved {
            for line in items.as_slice() {
                let left = self.stock.get_mut(&line.sku).expect("every menu sku has a level");
                *left = left.saturating_sub(line.qty.get());
            }
        }
        self.count(items, &outcome);
        self.outcomes.insert(order_id, outcome);
    }

    fn count(&mut self, items: &Items, outcome: &ReserveOutcome) {
        match outcome {
            ReserveOutcome::Reserved => {
                self.reserved += 1;
                self.units_reserved += u64::from(items.units());
            }
            ReserveOutcome::Rejected { .. } => self.rejected += 1,
        }
    }

    pub fn stock(&self, sku: &Sku) -> u32 {
        self.stock[sku]
    }

    pub fn levels(&self) -> &BTreeMap<Sku, u32> {
        &self.stock
    }

    /// The recorded outcome for an order, if inventory has seen it recently.
    pub fn outcome(&self, order_id: &OrderId) -> Option<&ReserveOutcome> {
        self.outcomes.get(order_id)
    }

    /// Units the reserved orders asked for, each order once.
    pub fn units_reserved(&self) -> u64 {
        self.units_reserved
    }

    /// Orders decided so far: (reserved, rejected).
    pub fn decided(&self) -> (u64, u64) {
        (self.reserved, self.rejected)
    }
}
