//! The orders a run places, drawn from the seed: which student, which items, how many.

use campus::domain::{Items, OrderItem, OrderRequest, Qty, Sku, StudentId, MENU};

use crate::simulator::rng::SimRng;

/// How many distinct students order (ids `s-0000` … `s-0499`).
pub const STUDENTS: u64 = 500;

/// `n` valid orders: 1–3 distinct skus of 1–3 units each.
pub fn orders(rng: &mut SimRng, n: usize) -> Vec<OrderRequest> {
    (0..n).map(|_| order(rng)).collect()
}

fn order(rng: &mut SimRng) -> OrderRequest {
    let student_id = StudentId::parse(format!("s-{:04}", rng.below(STUDENTS))).expect("generated ids are valid");
    let lines = rng.between(1, 3) as usize;
    let mut skus: Vec<&str> = MENU.to_vec();
    let items = (0..lines)
        .map(|_| {
            let sku = skus.remove(rng.below(skus.len() as u64) as usize);
            OrderItem {
                sku: Sku::parse(sku).expect("menu skus are valid"),
                qty: Qty::parse(rng.between(1, 3) as i64).expect("1..=3 is a valid qty"),
            }
        })
        .collect();
    OrderRequest::new(student_id, Items::parse(items).expect("distinct skus, 1 to 3 lines"))
}
