//! The simulation's virtual clock. Each world runs on a current-thread tokio runtime whose clock
//! is paused, so time only moves when every task waits, and jumps straight to the next timer: a
//! 2 s delay costs no wall time, and scheduling — hence every result — is a function of the seed
//! alone. [`block_on`] runs a future so; [`now_ms`] is the time since it began (what traces
//! print).

use std::cell::Cell;
use std::future::Future;

use tokio::time::Instant;

thread_local! {
    /// When the world running on this thread began (its tasks all run on this thread).
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// When the world running on this thread began (its virtual clock's zero).
pub fn started() -> Instant {
    STARTED.with(|s| s.get()).expect("a world runs on this thread (World::block_on)")
}

/// Runs `future` to completion in virtual time, on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime always builds");
    runtime.block_on(async {
        STARTED.with(|s| s.set(Some(Instant::now())));
        future.await
    })
}

/// Milliseconds of virtual time since the world on this thread began (0 outside one): the
/// timestamps of traces.
pub fn now_ms() -> u64 {
    STARTED.with(|s| s.get()).map_or(0, |t| t.elapsed().as_millis() as u64)
}
