//! The safeguards the workflow's guarantees rest on, gathered in one place. Production runs
//! with every one of them (`Safeguards::default()`, the only value `campus` ever builds); the
//! lab switches one off (`campus-sim explore --break …`) to watch its checker catch the broken
//! design. No other setting of this crate exists for the lab's sake except the hooks that make
//! the simulation deterministic and fast, named here so that they are found in one place too:
//!
//! - `host::Host::jitter_seed`: the reconnect backoff's jitter drawn from a seed, not at random;
//! - `store::Storage::Memory`: in-memory stores a simulated service keeps across its restarts
//!   (and that `explore` reuses from one run to the next);
//! - `services::order::OrderIds::seeded`: order ids from a seed.

/// Which safeguards are on (all, unless the lab breaks one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Safeguards {
    /// Part B's Inventory remembers which orders it processed, so a redelivery takes no stock
    /// again (off: `--break dedup`).
    pub dedup: bool,
    /// The loops reconnect when the broker goes away (off: `--break no-reconnect`, they give up).
    pub reconnect: bool,
    /// Part C's Inventory writes its outcomes, changelog and offsets in one Kafka transaction
    /// (off: `--break no-transaction`, three separate writes).
    pub transactional: bool,
    /// Part C's consumers replace one whose fetches went silent over records to read (off:
    /// `--break no-stall-watch`, a silent consumer stays silent).
    pub stall_watch: bool,
    /// Part B's consumers acknowledge a window of deliveries only once its store transaction
    /// committed (and Inventory's outcomes were confirmed) (off: `--break ack-before-commit`,
    /// the window is acknowledged as soon as it is taken).
    pub ack_after_commit: bool,
}

impl Default for Safeguards {
    fn default() -> Self {
        Safeguards::ALL
    }
}

impl Safeguards {
    /// Every safeguard on: production.
    pub const ALL: Safeguards = Safeguards { dedup: true, reconnect: true, transactional: true, stall_watch: true, ack_after_commit: true };
}
