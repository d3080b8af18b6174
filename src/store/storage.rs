//! Where a Part B service keeps its state ([`Storage`]), and the opening of its store there:
//! the one place a store is chosen, whether the service runs as a process (`serve`) or in the
//! lab's simulated world.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{InventoryStore, NotificationStore, OrderStore, Outage, Postgres, StoreError};

/// Where a Part B service's store lives.
#[derive(Clone)]
pub enum Storage {
    /// A SQLite file per service in this directory (`<service>.sqlite`), created if missing.
    Files(PathBuf),
    /// One PostgreSQL database (a schema per namespace), shared by every instance.
    Postgres(Postgres),
    /// In memory, kept for as long as the deployment lives: a service started again finds its
    /// store as it left it, as a process finds its disk (the simulation).
    Memory(Arc<MemoryStores>),
}

/// The in-memory stores of one simulated deployment, opened on first use and kept, all down
/// together while their database is ([`MemoryStores::outage`]).
#[derive(Default)]
pub struct MemoryStores {
    order: Mutex<Option<Arc<OrderStore>>>,
    inventory: Mutex<Option<Arc<InventoryStore>>>,
    notification: Mutex<Option<Arc<NotificationStore>>>,
    outage: Outage,
}

/// Three stores taken back from a finished deployment, to be emptied and used again.
pub type Spare = (OrderStore, InventoryStore, NotificationStore);

impl MemoryStores {
    /// Stores for a new deployment made of `spare` ones, emptied (Inventory's restocked with
    /// `stock` units of every item, remembering processed orders unless `dedup` is off): what
    /// opening three new ones gives, without creating their databases again (`explore` reuses
    /// one set per thread).
    pub fn reusing(spare: Spare, stock: u32, dedup: bool) -> Result<Self, StoreError> {
        let (order, inventory, notification) = spare;
        let outage = Outage::default();
        let inventory = inventory.sharing(&outage).restocked(stock)?;
        let inventory = if dedup { inventory } else { inventory.without_dedup() };
        Ok(MemoryStores {
            order: Mutex::new(Some(Arc::new(order.sharing(&outage).emptied()?))),
            inventory: Mutex::new(Some(Arc::new(inventory))),
            notification: Mutex::new(Some(Arc::new(notification.sharing(&outage).emptied()?))),
            outage,
        })
    }

    /// The database these stores share: taken down, every call of theirs fails (transient)
    /// until it is back.
    pub fn outage(&self) -> &Outage {
        &self.outage
    }

    /// The three stores back, once nothing else holds them (`None` if something still does).
    pub fn spare(self) -> Option<Spare> {
        Some((unwrap(self.order)?, unwrap(self.inventory)?, unwrap(self.notification)?))
    }
}

/// The store a slot keeps, if nothing else holds it.
fn unwrap<T>(slot: Mutex<Option<Arc<T>>>) -> Option<T> {
    slot.into_inner().ok().flatten().and_then(|store| Arc::try_unwrap(store).ok())
}

/// The store in `slot`, opened with `open` the first time.
fn kept<T>(slot: &Mutex<Option<Arc<T>>>, open: impl FnOnce() -> Result<T, StoreError>) -> Result<Arc<T>, StoreError> {
    let mut slot = slot.lock().expect("stores lock");
    if let Some(store) = &*slot {
        return Ok(store.clone());
    }
    let store = Arc::new(open()?);
    *slot = Some(store.clone());
    Ok(store)
}

impl Storage {
    fn file(dir: &std::path::Path, service: &str) -> Result<PathBuf, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Config(format!("creating the data directory {}: {e}", dir.display())))?;
        Ok(dir.join(format!("{service}.sqlite")))
    }

    /// Order's store.
    pub async fn order(&self) -> Result<Arc<OrderStore>, StoreError> {
        match self {
            Storage::Files(dir) => Ok(Arc::new(OrderStore::open(Some(&Self::file(dir, "order")?))?)),
            Storage::Postgres(pg) => Ok(Arc::new(OrderStore::open_postgres(pg.clone()).await?)),
            Storage::Memory(kept_stores) => kept(&kept_stores.order, || Ok(OrderStore::open(None)?.sharing(&kept_stores.outage))),
        }
    }

    /// Inventory's store; a new one starts with `stock` units of every item. Without `dedup`
    /// (the lab's `--break dedup`) it forgets which orders it processed.
    pub async fn inventory(&self, stock: u32, dedup: bool) -> Result<Arc<InventoryStore>, StoreError> {
        let guarded = |store: InventoryStore| if dedup { store } else { store.without_dedup() };
        match self {
            Storage::Files(dir) => Ok(Arc::new(guarded(InventoryStore::open(Some(&Self::file(dir, "inventory")?), stock)?))),
            Storage::Postgres(pg) => Ok(Arc::new(guarded(InventoryStore::open_postgres(pg.clone(), stock).await?))),
            Storage::Memory(kept_stores) => {
                kept(&kept_stores.inventory, || Ok(guarded(InventoryStore::open(None, stock)?.sharing(&kept_stores.outage))))
            }
        }
    }

    /// Notification's store.
    pub async fn notification(&self) -> Result<Arc<NotificationStore>, StoreError> {
        match self {
            Storage::Files(dir) => Ok(Arc::new(NotificationStore::open(Some(&Self::file(dir, "notification")?))?)),
            Storage::Postgres(pg) => Ok(Arc::new(NotificationStore::open_postgres(pg.clone()).await?)),
            Storage::Memory(kept_stores) => {
                kept(&kept_stores.notification, || Ok(NotificationStore::open(None)?.sharing(&kept_stores.outage)))
            }
        }
    }
}
