//! What a case's failed answers left behind at Inventory, measured once the load is over:
//! the stock taken against the stock the confirmed orders account for, and what a retry of
//! each 504 under its own order id (the `Idempotency-Key`) does once Inventory is healthy —
//! it must find the first attempt's outcome, reserving nothing twice.
//!
//! A 504 says "Order gave up waiting", not "nothing happened": when Inventory is slow *after*
//! reserving (`timeout-after-reserve`), the stock is taken behind the student's 504; when it is
//! slow *before* deciding (`timeout`), Order's giving up closes the call and the held request
//! is dropped unhandled. The numbers here say which happened, in each mode.

use std::time::Duration;

use campus::domain::{OrderId, OrderRequest};
use campus::services::inventory::Inventory;
use campus::Protocol;
use serde::{Deserialize, Serialize};

use super::{Answer, Deployment};
use crate::reporting::csv::Row;
use crate::Mode;
use campus::faults::FaultPlan;

pub const LEFT_BEHIND_CSV: &str = "sync_rest_left_behind.csv";

/// What a retry gives Order (gRPC's deadline): far more than a healthy Inventory needs.
const RETRY_WITHIN: Duration = Duration::from_secs(10);

/// One case's account of Inventory's stock after its load (and after the retries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftBehindRow {
    pub experiment: String,
    pub mode: Mode,
    pub protocol: Protocol,
    /// Requests answered 504 (Order gave up waiting for Inventory).
    pub answered_504: usize,
    /// Units Inventory's stock lost during the load.
    pub units_taken: u64,
    /// Units of the orders answered 2xx during the load.
    pub units_confirmed: u64,
    /// `units_taken − units_confirmed`: stock taken for orders whose student was told it failed.
    pub units_left_behind: u64,
    /// Orders answered 504, sent again under their own order id once Inventory was healthy.
    pub retried: usize,
    /// Of those, answered 201.
    pub retried_ok: usize,
    /// Units the retries took: 0 where the first attempt had reserved (its outcome is found).
    pub units_taken_by_retries: u64,
    /// Units of the retried orders answered 201.
    pub units_confirmed_by_retries: u64,
}

impl Row for LeftBehindRow {
    fn mode(&self) -> Mode {
        self.mode
    }
}

/// Units of every item Inventory starts with, at `stock` per item.
fn units_at_start(stock: u32) -> u64 {
    Inventory::with_stock(stock).levels().values().map(|&n| u64::from(n)).sum()
}

/// Units Inventory holds now (its fault cleared first, so that `GET /stock` answers).
async fn units_now(deployment: &Deployment<'_>) -> anyhow::Result<u64> {
    Ok(deployment.stock().await?.values().map(|&n| u64::from(n)).sum())
}

/// Measures what `answers` left behind, on a deployment whose Inventory still runs (none when
/// it was killed: a dead Inventory's stock is gone). Clears Inventory's fault, waits out its
/// longest hold (`hold`: a request held inside Inventory when Order gave up would act within
/// it; nothing signals that it will not, so the wait is the bound), reads the stock, retries
/// each 504 under its order id, and reads the stock again.
pub async fn measure(
    deployment: &Deployment<'_>,
    experiment: &str,
    stock: u32,
    orders: &[OrderRequest],
    answers: &[Answer],
    hold: Duration,
) -> anyhow::Result<Option<LeftBehindRow>> {
    if !deployment.inventory_up() {
        return Ok(None);
    }
    deployment.set_fault(&FaultPlan::healthy()).await?;
    tokio::time::sleep(hold).await;
    let units = |a: &Answer| u64::from(orders[a.index].items.units());
    let at_start = units_at_start(stock);
    let after_load = units_now(deployment).await?;
    let timed_out: Vec<&Answer> = answers.iter().filter(|a| a.status == 504).collect();
    let door = deployment.door();
    let (mut retried, mut retried_ok, mut units_confirmed_by_retries) = (0, 0, 0);
    for answer in &timed_out {
        let Ok(order_id) = OrderId::parse(answer.order_id.clone()) else { continue };
        retried += 1;
        let again = OrderRequest { order_id: Some(order_id), ..orders[answer.index].clone() };
        if door.place(&again, RETRY_WITHIN).await.is_ok_and(|(status, _)| status == 201) {
            retried_ok += 1;
            units_confirmed_by_retries += units(answer);
        }
    }
    let after_retries = units_now(deployment).await?;
    let units_taken = at_start.saturating_sub(after_load);
    let units_confirmed = answers.iter().filter(|a| (200..300).contains(&a.status)).map(units).sum();
    Ok(Some(LeftBehindRow {
        experiment: experiment.to_owned(),
        mode: deployment.mode(),
        protocol: deployment.protocol(),
        answered_504: timed_out.len(),
        units_taken,
        units_confirmed,
        units_left_behind: units_taken.saturating_sub(units_confirmed),
        retried,
        retried_ok,
        units_taken_by_retries: after_load.saturating_sub(after_retries),
        units_confirmed_by_retries,
    }))
}
