//! Whether a simulated broker answers calls: a hung broker (SIGSTOPped, for real) keeps its
//! connections and answers nothing, so every call waits until it runs again. One gate for the
//! queue and the log; a lock-free read on the way through when nothing hangs.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// The gate every call of a simulated broker passes.
#[derive(Default)]
pub struct Answering {
    hung: AtomicBool,
    again: Notify,
}

impl Answering {
    /// The broker hangs (`true`) or answers again (waking every call that waited).
    pub fn set_hung(&self, hung: bool) {
        self.hung.store(hung, Ordering::SeqCst);
        if !hung {
            self.again.notify_waiters();
        }
    }

    /// Until the broker answers (at once unless it hangs).
    pub async fn wait(&self) {
        // Every call of the log or the queue passes here: one load when the broker answers.
        while self.hung.load(Ordering::SeqCst) {
            // Registered before the flag is read again, so a thaw between the two is not missed.
            let again = self.again.notified();
            tokio::pin!(again);
            again.as_mut().enable();
            if !self.hung.load(Ordering::SeqCst) {
                return;
            }
            again.await;
        }
    }
}
