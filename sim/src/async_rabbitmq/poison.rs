//! The malformed messages of the `poison` experiment (and of `explore`'s schedules), each
//! labelled with the reason Inventory must refuse it for.

use campus::domain::{Envelope, Event, InventoryReserved, Order, OrderId, OrderPlaced, StudentId};

/// The malformed messages of `poison`, each labelled with the reason it must be refused for.
pub fn poison_bodies(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let good = || {
        let order = Order {
            order_id: OrderId::parse("o-poison").expect("valid"),
            student_id: StudentId::parse("s-0000").expect("valid"),
            items: serde_json::from_value(serde_json::json!([{"sku": "pho", "qty": 1}])).expect("valid"),
        };
        serde_json::to_value(Envelope::new(Event::OrderPlaced(OrderPlaced { order, placed_at_ms: 0 }))).expect("serializes")
    };
    (0..n)
        .map(|i| match i % 5 {
            0 => ("not_json", b"{\"schema_version\": 1, \"event\": ".to_vec()),
            1 => {
                let mut v = good();
                v["event"]["order"]["items"][0]["qty"] = serde_json::json!(0);
                ("schema_violation", serde_json::to_vec(&v).expect("json"))
            }
            2 => {
                let mut v = good();
                v["event"]["order"].as_object_mut().expect("object").remove("student_id");
                ("schema_violation", serde_json::to_vec(&v).expect("json"))
            }
            3 => {
                let mut v = good();
                v["schema_version"] = serde_json::json!(2);
                ("unsupported_version", serde_json::to_vec(&v).expect("json"))
            }
            _ => {
                let wrong = Event::InventoryReserved(InventoryReserved {
                    order_id: OrderId::parse(format!("o-wrong-{i}")).expect("valid"),
                    student_id: StudentId::parse("s-0000").expect("valid"),
                    placed_at_ms: 0,
                });
                ("unexpected_event", Envelope::new(wrong).encode())
            }
        })
        .collect()
}
