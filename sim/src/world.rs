//! The simulated world's clock: a current-thread tokio runtime whose clock is paused, so time
//! only moves when every task waits, and jumps straight to the next timer. A 2 s delay costs
//! no wall time, and scheduling — hence every result — is a function of the seed alone.

use std::cell::Cell;
use std::future::Future;

use tokio::time::Instant;

thread_local! {
    /// When the world running on this thread began (its tasks all run on this thread).
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `future` to completion in virtual time.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
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
