//! Helpers shared by the specifications in `tests/`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::Router;

/// A fresh, empty directory under cargo's scratch space for integration tests.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

/// Wraps `router` so that every request it receives is counted in the returned counter.
pub fn counted(router: Router) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        counter.fetch_add(1, Ordering::SeqCst);
        next.run(request)
    }));
    (router, calls)
}

pub mod compose;
pub mod part_a;
