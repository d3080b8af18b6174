//! The domain: ids, orders and the events the services exchange.
//!
//! Every type here validates on construction, and deserializing *is* constructing
//! (`#[serde(try_from = …)]`), so a malformed order or event is rejected where it enters —
//! at the HTTP edge or when a consumer decodes a message — and never reaches a service's logic.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The version every event is written with. A consumer refuses any other version
/// (see [`Envelope::decode`]): an unknown version is poison, not a guess.
pub const SCHEMA_VERSION: u32 = 1;

/// What the campus kitchen sells. A sku outside this list (and outside [`widen_menu`]'s) is
/// invalid input.
pub const MENU: [&str; 6] = ["burrito", "coffee", "pho", "pizza-slice", "salad", "sandwich"];

/// Items added to [`MENU`] for this process (`serve --menu`), set once at start.
static WIDER_MENU: OnceLock<Vec<&'static str>> = OnceLock::new();

/// Adds `items` to this process's menu, once, before any order is read: `serve --menu
/// burger,fries` lets scripts written for other implementations of the assignment order what
/// their menus sell. Each item is 1 to 32 characters of `[a-z0-9_-]`. Every service of a
/// deployment must be given the same items (an Inventory that does not know an item refuses
/// its orders as malformed). The simulation never widens its menu, so that a seed's runs stay
/// what they are.
pub fn widen_menu(items: &[String]) -> Result<(), ValidationError> {
    let mut extra: Vec<&'static str> = Vec::new();
    for item in items {
        let valid =
            (1..=32).contains(&item.len()) && item.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(ValidationError::new(format!("menu item {item:?}: 1 to 32 characters of a-z, 0-9, '-' and '_'")));
        }
        if !MENU.contains(&item.as_str()) && !extra.contains(&item.as_str()) {
            extra.push(Box::leak(item.clone().into_boxed_str()));
        }
    }
    WIDER_MENU.set(extra).map_err(|_| ValidationError::new("the menu was widened already"))
}

/// Every item on this process's menu: [`MENU`], then what [`widen_menu`] added.
fn menu() -> impl Iterator<Item = &'static str> {
    MENU.into_iter().chain(WIDER_MENU.get().into_iter().flatten().copied())
}

/// At most this many distinct items in one order.
pub const MAX_ITEMS: usize = 10;
/// At most this many of one item in one order.
pub const MAX_QTY: u32 = 20;
/// Ids (order, student) are 1..=64 characters of `[A-Za-z0-9_-]`.
pub const MAX_ID_LEN: usize = 64;

/// Why a value was rejected. The message is meant for the client who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(String);

impl ValidationError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

fn parse_id(kind: &str, value: String) -> Result<String, ValidationError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(ValidationError::new(format!("{kind} must be 1 to {MAX_ID_LEN} characters, got {}", value.len())));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(ValidationError::new(format!("{kind} may hold only letters, digits, '-' and '_', found {bad:?}")));
    }
    Ok(value)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
                parse_id($kind, value.into()).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An order's id: deterministic from the seed in the simulation, random in real mode
    /// (see `services::order::OrderIds`).
    OrderId,
    "order_id"
);
id_type!(
    /// The student who orders.
    StudentId,
    "student_id"
);

/// One entry of the [`MENU`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sku(&'static str);

impl Serialize for Sku {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}
impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Sku::parse(&value).map_err(serde::de::Error::custom)
    }
}

impl Sku {
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        menu()
            .find(|s| *s == value)
            .map(Sku)
            .ok_or_else(|| ValidationError::new(format!("unknown sku {value:?}; the menu is {}", menu().collect::<Vec<_>>().join(", "))))
    }
    pub fn as_str(&self) -> &'static str {
        self.0
    }
    /// Every sku on the menu, in menu order.
    pub fn all() -> impl Iterator<Item = Sku> {
        menu().map(Sku)
    }
}
impl TryFrom<String> for Sku {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// How many of one item: 1..=[`MAX_QTY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Qty(u32);

impl Qty {
    pub fn parse(value: i64) -> Result<Self, ValidationError> {
        if (1..=i64::from(MAX_QTY)).contains(&value) {
            Ok(Qty(value as u32))
        } else {
            Err(ValidationError::new(format!("qty must be 1 to {MAX_QTY}, got {value}")))
        }
    }
    pub fn get(self) -> u32 {
        self.0
    }
}
impl TryFrom<i64> for Qty {
    type Error = ValidationError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}
impl From<Qty> for u32 {
    fn from(q: Qty) -> u32 {
        q.0
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub sku: Sku,
    pub qty: Qty,
}

/// The lines of an order: 1..=[`MAX_ITEMS`], each sku at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<OrderItem>", into = "Vec<OrderItem>")]
pub struct Items(Vec<OrderItem>);

impl Items {
    pub fn parse(items: Vec<OrderItem>) -> Result<Self, ValidationError> {
        if items.is_empty() || items.len() > MAX_ITEMS {
            return Err(ValidationError::new(format!("an order has 1 to {MAX_ITEMS} items, got {}", items.len())));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = items.iter().find(|i| !seen.insert(i.sku.clone())) {
            return Err(ValidationError::new(format!("sku {} appears twice; give it once with the total qty", dup.sku)));
        }
        Ok(Items(items))
    }
    pub fn as_slice(&self) -> &[OrderItem] {
        &self.0
    }
    /// Total number of units over all lines.
    pub fn units(&self) -> u32 {
        self.0.iter().map(|i| i.qty.get()).sum()
    }

    /// The reservation decision, the one rule every Inventory applies (Part A's in memory,
    /// Part B's stores, Part C's keyed state): every line in full from the stock `left`
    /// reports, or nothing.
    pub fn reserve_against(&self, left: impl Fn(&Sku) -> u32) -> ReserveOutcome {
        let short = self.0.iter().find_map(|line| {
            let left = left(&line.sku);
            (left < line.qty.get()).then(|| format!("insufficient stock for {}: asked {}, {} left", line.sku, line.qty.get(), left))
        });
        match short {
            Some(reason) => ReserveOutcome::Rejected { reason },
            None => ReserveOutcome::Reserved,
        }
    }
}
impl TryFrom<Vec<OrderItem>> for Items {
    type Error = ValidationError;
    fn try_from(items: Vec<OrderItem>) -> Result<Self, Self::Error> {
        Self::parse(items)
    }
}
impl From<Items> for Vec<OrderItem> {
    fn from(items: Items) -> Self {
        items.0
    }
}

/// What a client sends to `POST /order`. Valid once deserialized.
///
/// Two bodies are accepted. The lab's own: `{"student_id": …, "items": [{"sku": …, "qty": …}, …]}`.
/// And the single-item body most course implementations (and the scripts written against them)
/// send, read as an order of one line: the student as `student_id` or `user_id`, the item as
/// `item` or `item_id`, the units as `qty` or `quantity`. Either may carry the client's own
/// `order_id` (see [`OrderRequest::order_id`]). Everything else is refused: an unknown field, a
/// name given twice under its two spellings, `items` beside a single item, a single item without
/// its units. Serialized, it is always the lab's own form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "OrderBody")]
pub struct OrderRequest {
    pub student_id: StudentId,
    pub items: Items,
    /// The client's own id for the order, from the body's `order_id` or an `Idempotency-Key`
    /// header: the order's idempotency key. The order takes it as its id, so a retry with the
    /// same key is the same order — Inventory answers it with the first attempt's outcome and
    /// takes no stock again (every part keys its decisions by order id). A repeat is known by
    /// its key alone: the first attempt's body stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
}

impl OrderRequest {
    /// An order of `items` for `student_id`, whose id the order service chooses.
    pub fn new(student_id: StudentId, items: Items) -> Self {
        OrderRequest { student_id, items, order_id: None }
    }

    /// The request with the key of an `Idempotency-Key` header (if any) as its `order_id`;
    /// refused if the body names another.
    pub fn keyed(mut self, key: Option<OrderId>) -> Result<Self, ValidationError> {
        match (&self.order_id, key) {
            (Some(body), Some(header)) if *body != header => {
                Err(ValidationError::new(format!("the Idempotency-Key header ({header}) and the body's order_id ({body}) differ")))
            }
            (_, Some(header)) => {
                self.order_id = Some(header);
                Ok(self)
            }
            (_, None) => Ok(self),
        }
    }
}

/// Every field either body may carry (see [`OrderRequest`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    order_id: Option<OrderId>,
    student_id: Option<StudentId>,
    user_id: Option<StudentId>,
    items: Option<Items>,
    item: Option<Sku>,
    item_id: Option<Sku>,
    qty: Option<Qty>,
    quantity: Option<Qty>,
}

/// At most one of a field's two spellings.
fn one_of<T>(a: Option<T>, b: Option<T>, names: &str) -> Result<Option<T>, ValidationError> {
    match (a, b) {
        (Some(_), Some(_)) => Err(ValidationError::new(format!("give {names}, not both"))),
        (a, b) => Ok(a.or(b)),
    }
}

impl TryFrom<OrderBody> for OrderRequest {
    type Error = ValidationError;
    fn try_from(body: OrderBody) -> Result<Self, Self::Error> {
        let student_id = one_of(body.student_id, body.user_id, "student_id or user_id")?
            .ok_or_else(|| ValidationError::new("missing field `student_id` (or `user_id`)"))?;
        let item = one_of(body.item, body.item_id, "item or item_id")?;
        let qty = one_of(body.qty, body.quantity, "qty or quantity")?;
        let items = match (body.items, item, qty) {
            (Some(items), None, None) => items,
            (Some(_), _, _) => return Err(ValidationError::new("give `items`, or one `item` with its `qty`, not both")),
            (None, Some(sku), Some(qty)) => Items::parse(vec![OrderItem { sku, qty }])?,
            (None, Some(_), None) => return Err(ValidationError::new("missing field `qty` (or `quantity`) for the item")),
            (None, None, Some(_)) => return Err(ValidationError::new("missing field `item` (or `item_id`) for the qty")),
            (None, None, None) => return Err(ValidationError::new("missing field `items` (or a single `item` with its `qty`)")),
        };
        Ok(OrderRequest { student_id, items, order_id: body.order_id })
    }
}

/// What Inventory decided for an order ([`Items::reserve_against`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReserveOutcome {
    Reserved,
    /// Stock was short; `reason` names the sku, what was asked and what was left.
    Rejected {
        reason: String,
    },
}

/// Where an order stands: `accepted` (stored; Part B: maybe not yet published), then
/// `reserved` or `failed` once Inventory has decided. Stored and shown as the lowercase word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Accepted,
    Reserved,
    Failed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Accepted => "accepted",
            OrderStatus::Reserved => "reserved",
            OrderStatus::Failed => "failed",
        }
    }

    /// The status a stored word names.
    pub fn parse(word: &str) -> Result<Self, ValidationError> {
        match word {
            "accepted" => Ok(OrderStatus::Accepted),
            "reserved" => Ok(OrderStatus::Reserved),
            "failed" => Ok(OrderStatus::Failed),
            other => Err(ValidationError::new(format!("unknown order status {other:?}"))),
        }
    }

    /// The status an outcome event gives its order (`None` for `OrderPlaced`).
    pub fn of(event: &Event) -> Option<Self> {
        match event {
            Event::OrderPlaced(_) => None,
            Event::InventoryReserved(_) => Some(OrderStatus::Reserved),
            Event::InventoryFailed(_) => Some(OrderStatus::Failed),
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An accepted order: a valid request with the id the order service gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub order_id: OrderId,
    pub student_id: StudentId,
    pub items: Items,
}

impl Order {
    pub fn new(order_id: OrderId, request: OrderRequest) -> Self {
        Order { order_id, student_id: request.student_id, items: request.items }
    }
}

/// An order was accepted. `placed_at_ms` is the event time (milliseconds since the run's epoch in
/// the simulation, since the Unix epoch in real mode): analytics bucket by it, never by arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    pub order: Order,
    pub placed_at_ms: u64,
}

impl OrderPlaced {
    /// The event that announces `outcome` for this order: `InventoryReserved` or
    /// `InventoryFailed`, with the order's event time.
    pub fn outcome_event(&self, outcome: &ReserveOutcome) -> Event {
        let order = &self.order;
        match outcome {
            ReserveOutcome::Reserved => Event::InventoryReserved(InventoryReserved {
                order_id: order.order_id.clone(),
                student_id: order.student_id.clone(),
                placed_at_ms: self.placed_at_ms,
            }),
            ReserveOutcome::Rejected { reason } => Event::InventoryFailed(InventoryFailed {
                order_id: order.order_id.clone(),
                reason: reason.clone(),
                placed_at_ms: self.placed_at_ms,
            }),
        }
    }
}

/// Inventory set the order's stock aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryReserved {
    pub order_id: OrderId,
    pub student_id: StudentId,
    pub placed_at_ms: u64,
}

/// Inventory could not reserve the order (`reason` says why, e.g. which sku ran short).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryFailed {
    pub order_id: OrderId,
    pub reason: String,
    pub placed_at_ms: u64,
}

/// The events of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    OrderPlaced(OrderPlaced),
    InventoryReserved(InventoryReserved),
    InventoryFailed(InventoryFailed),
}

impl Event {
    pub fn order_id(&self) -> &OrderId {
        match self {
            Event::OrderPlaced(e) => &e.order.order_id,
            Event::InventoryReserved(e) => &e.order_id,
            Event::InventoryFailed(e) => &e.order_id,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Event::OrderPlaced(_) => "OrderPlaced",
            Event::InventoryReserved(_) => "InventoryReserved",
            Event::InventoryFailed(_) => "InventoryFailed",
        }
    }
}

/// The wire form of an event: `{"schema_version": 1, "event": {"type": "OrderPlaced", …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub schema_version: u32,
    pub event: Event,
}

/// Why bytes off a queue or log are not an event we accept. Each is a reason to dead-letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("unsupported schema_version {found} (this build reads {SCHEMA_VERSION})")]
    UnsupportedVersion { found: u64 },
    #[error("schema violation: {0}")]
    Schema(String),
}

impl DecodeError {
    /// A short, stable label for counting and for the dead-letter reason header.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::NotJson(_) => "not_json",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::Schema(_) => "schema_violation",
        }
    }
}

impl Envelope {
    pub fn new(event: Event) -> Self {
        Envelope { schema_version: SCHEMA_VERSION, event }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events always serialize")
    }

    /// Decodes and validates. The version is checked before the body so that a future version
    /// is reported as such, not as a schema error.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        // The common case in one pass, straight into the types; anything it refuses (or a
        // version other than ours) takes the careful path below, which names the fault.
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(bytes) {
            if envelope.schema_version == SCHEMA_VERSION {
                return Ok(envelope.event);
            }
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        match value.get("schema_version").map(|v| v.as_u64()) {
            Some(Some(v)) if v == u64::from(SCHEMA_VERSION) => {}
            Some(Some(found)) => return Err(DecodeError::UnsupportedVersion { found }),
            Some(None) => return Err(DecodeError::Schema("schema_version is not a whole number".into())),
            None => return Err(DecodeError::Schema("missing schema_version".into())),
        }
        serde_json::from_value::<Envelope>(value).map(|e| e.event).map_err(|e| DecodeError::Schema(e.to_string()))
    }
}
