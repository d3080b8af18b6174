//! The domain validates on construction: what deserializes is valid.

use campus::domain::{DecodeError, Envelope, Event, Order, OrderId, OrderRequest, SCHEMA_VERSION};
use serde_json::json;

fn parse(value: serde_json::Value) -> Result<OrderRequest, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[test]
fn a_well_formed_order_parses() {
    let order =
        parse(json!({"student_id": "s-0001", "items": [{"sku": "pho", "qty": 2}, {"sku": "coffee", "qty": 1}]})).expect("valid order");
    assert_eq!(order.items.units(), 3);
}

#[test]
fn invalid_orders_are_rejected_with_a_reason() {
    let cases = [
        (json!({"student_id": "s-1", "items": []}), "1 to 10 items"),
        (json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 0}]}), "qty must be 1 to 20"),
        (json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": -3}]}), "qty must be 1 to 20"),
        (json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 21}]}), "qty must be 1 to 20"),
        (json!({"student_id": "s-1", "items": [{"sku": "caviar", "qty": 1}]}), "unknown sku"),
        (json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 1}, {"sku": "pho", "qty": 2}]}), "appears twice"),
        (json!({"student_id": "", "items": [{"sku": "pho", "qty": 1}]}), "student_id must be 1 to 64"),
        (json!({"student_id": "s 1", "items": [{"sku": "pho", "qty": 1}]}), "may hold only"),
        (json!({"items": [{"sku": "pho", "qty": 1}]}), "missing field `student_id`"),
        (json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 1}], "tip": 5}), "unknown field `tip`"),
    ];
    for (value, reason) in cases {
        let err = parse(value.clone()).expect_err(&format!("{value} should be rejected"));
        assert!(err.contains(reason), "{value}: expected {reason:?} in {err:?}");
    }
}

#[test]
fn the_conventional_single_item_body_is_an_order_of_one_line_under_either_spelling() {
    let canonical = parse(json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 2}]})).unwrap();
    for body in [
        json!({"student_id": "s-1", "item": "pho", "qty": 2}),
        json!({"user_id": "s-1", "item_id": "pho", "quantity": 2}),
        json!({"user_id": "s-1", "item": "pho", "qty": 2}),
    ] {
        assert_eq!(parse(body.clone()).unwrap(), canonical, "{body}");
    }
    assert_eq!(
        serde_json::to_value(&canonical).unwrap(),
        json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 2}]}),
        "written in the lab's own form"
    );
}

#[test]
fn a_single_item_body_is_refused_when_it_is_ambiguous_incomplete_or_carries_anything_else() {
    let cases = [
        (json!({"student_id": "s-1", "user_id": "s-2", "item": "pho", "qty": 1}), "student_id or user_id, not both"),
        (json!({"student_id": "s-1", "item": "pho", "item_id": "pho", "qty": 1}), "item or item_id, not both"),
        (json!({"student_id": "s-1", "item": "pho", "qty": 1, "quantity": 1}), "qty or quantity, not both"),
        (json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 1}], "item": "pho", "qty": 1}), "not both"),
        (json!({"student_id": "s-1", "item": "pho"}), "missing field `qty`"),
        (json!({"student_id": "s-1", "qty": 1}), "missing field `item`"),
        (json!({"user_id": "s-1"}), "missing field `items`"),
        (json!({"item": "pho", "qty": 1}), "missing field `student_id`"),
        (json!({"user_id": "s-1", "item": "caviar", "qty": 1}), "unknown sku"),
        (json!({"user_id": "s-1", "item": "pho", "qty": 0}), "qty must be 1 to 20"),
        (json!({"user_id": "s-1", "item": "pho", "qty": 1, "price": 3}), "unknown field `price`"),
    ];
    for (value, reason) in cases {
        let err = parse(value.clone()).expect_err(&format!("{value} should be rejected"));
        assert!(err.contains(reason), "{value}: expected {reason:?} in {err:?}");
    }
}

fn placed() -> Event {
    let request = parse(json!({"student_id": "s-7", "items": [{"sku": "salad", "qty": 1}]})).unwrap();
    Event::OrderPlaced(campus::domain::OrderPlaced { order: Order::new(OrderId::parse("o-1").unwrap(), request), placed_at_ms: 42 })
}

#[test]
fn an_event_round_trips_through_its_envelope_with_the_schema_version() {
    let bytes = Envelope::new(placed()).encode();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(value["schema_version"], json!(SCHEMA_VERSION));
    assert_eq!(value["event"]["type"], json!("OrderPlaced"));
    assert_eq!(Envelope::decode(&bytes), Ok(placed()));
}

#[test]
fn undecodable_events_are_told_apart() {
    assert!(matches!(Envelope::decode(b"{not json"), Err(DecodeError::NotJson(_))));
    let mut future = serde_json::to_value(Envelope::new(placed())).unwrap();
    future["schema_version"] = json!(2);
    assert_eq!(Envelope::decode(&serde_json::to_vec(&future).unwrap()), Err(DecodeError::UnsupportedVersion { found: 2 }));
    let mut bad = serde_json::to_value(Envelope::new(placed())).unwrap();
    bad["event"]["order"]["items"][0]["qty"] = json!(0);
    assert!(matches!(Envelope::decode(&serde_json::to_vec(&bad).unwrap()), Err(DecodeError::Schema(_))));
    assert!(matches!(Envelope::decode(br#"{"event": {}}"#), Err(DecodeError::Schema(_))));
}

/// Every kind of event, written as the services write it.
fn every_kind() -> Vec<serde_json::Value> {
    let (id, student) = (OrderId::parse("o-1").unwrap(), campus::domain::StudentId::parse("s-7".to_owned()).unwrap());
    [
        placed(),
        Event::InventoryReserved(campus::domain::InventoryReserved { order_id: id.clone(), student_id: student, placed_at_ms: 42 }),
        Event::InventoryFailed(campus::domain::InventoryFailed { order_id: id, reason: "out of pho".into(), placed_at_ms: 42 }),
    ]
    .into_iter()
    .map(|event| serde_json::to_value(Envelope::new(event)).unwrap())
    .collect()
}

#[test]
fn decoding_accepts_exactly_the_envelopes_serde_reads_and_reads_them_alike() {
    // `decode` reads a well-formed event straight from the bytes, and anything else the
    // careful way (naming the fault): the two together must agree with serde's own reading of
    // an envelope, event for event.
    // Each body with whether serde reads it: only a kind's own fields, each of its type.
    let mut bodies = Vec::new();
    for envelope in every_kind() {
        bodies.push((envelope.clone(), true));
        // A field of another kind (with a value, and `null`), one of its own given another
        // value or a wrong one, one unknown, and the tag unknown…
        for (field, value) in [
            ("reason", json!("x")),
            ("reason", json!(null)),
            ("order_id", json!("o-2")),
            ("student_id", json!(null)),
            ("order", json!(null)),
            ("placed_at_ms", json!(null)),
            ("placed_at_ms", json!("42")),
            ("tip", json!(5)),
            ("type", json!("OrderShipped")),
        ] {
            let its_own = envelope["event"].get(field).is_some();
            let mut changed = envelope.clone();
            changed["event"][field] = value.clone();
            bodies.push((changed, its_own && value.is_string() && field != "placed_at_ms" && field != "type"));
        }
        // …and each of its fields missing.
        for field in ["type", "placed_at_ms", "order", "order_id", "student_id", "reason"] {
            let mut without = envelope.clone();
            if without["event"].as_object_mut().unwrap().remove(field).is_some() {
                bodies.push((without, false));
            }
        }
    }
    for (body, read) in &bodies {
        let bytes = serde_json::to_vec(body).unwrap();
        let serdes = serde_json::from_slice::<Envelope>(&bytes).map(|e| e.event).ok();
        assert_eq!(serdes.is_some(), *read, "serde on {body}");
        assert_eq!(Envelope::decode(&bytes).ok(), serdes, "{body}");
    }
    // A key given twice: serde's reading of the bytes refuses it; the careful path reads the
    // bytes as a JSON value first, where the last one wins.
    let twice = br#"{"schema_version":1,"event":{"type":"InventoryFailed","order_id":"o-1","reason":"a","reason":"b","placed_at_ms":1}}"#;
    assert!(serde_json::from_slice::<Envelope>(twice).is_err());
    let as_value: serde_json::Value = serde_json::from_slice(twice).unwrap();
    let careful = serde_json::from_value::<Envelope>(as_value).unwrap().event;
    assert!(matches!(&careful, Event::InventoryFailed(e) if e.reason == "b"));
    assert_eq!(Envelope::decode(twice), Ok(careful));
}

#[test]
fn a_clients_own_order_id_is_its_idempotency_key_and_a_header_must_agree_with_it() {
    let keyed = parse(json!({"order_id": "client-7", "user_id": "u-1", "item": "pho", "quantity": 1})).unwrap();
    assert_eq!(keyed.order_id, Some(OrderId::parse("client-7").unwrap()));
    assert_eq!(keyed.clone().keyed(Some(OrderId::parse("client-7").unwrap())), Ok(keyed.clone()), "the same key twice");
    let refused = keyed.keyed(Some(OrderId::parse("other").unwrap())).expect_err("two different keys");
    assert!(refused.to_string().contains("differ"), "{refused}");

    let plain = parse(json!({"student_id": "s-1", "items": [{"sku": "pho", "qty": 1}]})).unwrap();
    assert_eq!(plain.order_id, None, "without one, Order chooses the id");
    assert_eq!(plain.keyed(Some(OrderId::parse("from-header").unwrap())).unwrap().order_id.unwrap().as_str(), "from-header");
    assert!(parse(json!({"order_id": "no spaces", "student_id": "s-1", "items": [{"sku": "pho", "qty": 1}]}))
        .unwrap_err()
        .contains("may hold only"));
}
