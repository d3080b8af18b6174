//! Part A's gRPC contract, `proto/campus/v1/campus.proto`: the generated messages, clients and
//! servers of `campus.v1`, and their conversion to and from the domain's types. A message is
//! parsed into the same validated values a JSON body becomes, so both faces of a service refuse
//! the same inputs for the same reasons.

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("campus.v1");

use crate::domain::{Items, OrderId, OrderItem, OrderRequest, Qty, Sku, StudentId, ValidationError};
use crate::wire::{ReserveRequest as ReserveBody, SendRequest as SendBody};

/// The encoded descriptors of `campus.v1`, served by the reflection service.
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/campus_descriptor.bin"));

fn items(lines: Vec<Line>) -> Result<Items, ValidationError> {
    let lines = lines
        .into_iter()
        .map(|l| Ok(OrderItem { sku: Sku::parse(&l.sku)?, qty: Qty::parse(i64::from(l.qty))? }))
        .collect::<Result<_, _>>()?;
    Items::parse(lines)
}

fn lines(items: &Items) -> Vec<Line> {
    items.as_slice().iter().map(|l| Line { sku: l.sku.to_string(), qty: l.qty.get() }).collect()
}

/// An empty `order_id` is none given.
fn order_id(id: String) -> Result<Option<OrderId>, ValidationError> {
    if id.is_empty() {
        Ok(None)
    } else {
        OrderId::parse(id).map(Some)
    }
}

impl TryFrom<PlaceOrderRequest> for OrderRequest {
    type Error = ValidationError;
    fn try_from(m: PlaceOrderRequest) -> Result<Self, Self::Error> {
        Ok(OrderRequest { student_id: StudentId::parse(m.student_id)?, items: items(m.items)?, order_id: order_id(m.order_id)? })
    }
}

impl From<&OrderRequest> for PlaceOrderRequest {
    fn from(r: &OrderRequest) -> Self {
        PlaceOrderRequest {
            student_id: r.student_id.to_string(),
            items: lines(&r.items),
            order_id: r.order_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        }
    }
}

impl TryFrom<ReserveRequest> for ReserveBody {
    type Error = ValidationError;
    fn try_from(m: ReserveRequest) -> Result<Self, Self::Error> {
        let order_id = order_id(m.order_id)?.ok_or_else(|| ValidationError::new("order_id is required"))?;
        Ok(ReserveBody { order_id, items: items(m.items)? })
    }
}

impl From<&ReserveBody> for ReserveRequest {
    fn from(r: &ReserveBody) -> Self {
        ReserveRequest { order_id: r.order_id.to_string(), items: lines(&r.items) }
    }
}

impl TryFrom<SendRequest> for SendBody {
    type Error = ValidationError;
    fn try_from(m: SendRequest) -> Result<Self, Self::Error> {
        let order_id = order_id(m.order_id)?.ok_or_else(|| ValidationError::new("order_id is required"))?;
        Ok(SendBody { order_id, student_id: StudentId::parse(m.student_id)? })
    }
}

impl From<&SendBody> for SendRequest {
    fn from(r: &SendBody) -> Self {
        SendRequest { order_id: r.order_id.to_string(), student_id: r.student_id.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_survives_the_trip_through_its_message() {
        let request: OrderRequest =
            serde_json::from_str(r#"{"student_id": "s-1", "items": [{"sku": "pho", "qty": 2}], "order_id": "k-1"}"#).unwrap();
        assert_eq!(OrderRequest::try_from(PlaceOrderRequest::from(&request)).unwrap(), request);
    }

    #[test]
    fn a_message_is_refused_for_what_a_json_body_is_refused_for() {
        let bad = |items: Vec<Line>| PlaceOrderRequest { student_id: "s-1".into(), items, order_id: String::new() };
        for message in [
            bad(vec![]),
            bad(vec![Line { sku: "caviar".into(), qty: 1 }]),
            bad(vec![Line { sku: "pho".into(), qty: 0 }]),
            bad(vec![Line { sku: "pho".into(), qty: 1 }, Line { sku: "pho".into(), qty: 1 }]),
            PlaceOrderRequest { student_id: String::new(), ..bad(vec![Line { sku: "pho".into(), qty: 1 }]) },
        ] {
            assert!(OrderRequest::try_from(message.clone()).is_err(), "{message:?} was accepted");
        }
    }
}
