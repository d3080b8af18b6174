//! The simulated world's clock: a current-thread tokio runtime whose clock is paused, so time
//! only moves when every task waits, and jumps straight to the next timer. A 2 s delay costs
//! no wall time, and scheduling — hence every result — is a function of the seed alone.

use std::future::Future;

/// Runs `future` to completion in virtual time.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime always builds")
        .block_on(future)
}
