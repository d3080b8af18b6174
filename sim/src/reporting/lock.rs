//! One writer at a time in an output directory: a run writes its CSV files and rewrites
//! `report.md`'s sections (its own, the comparison, the traces, the assignment map) while it
//! holds an exclusive lock on `out/.campus-sim.lock`, so that several runs into one `--out` at
//! once — `campus-sim sync-rest`, `async-rabbitmq` and `streaming-kafka` in three terminals, as
//! `scripts/test.sh` runs the real ones — never lose each other's sections or read a CSV file
//! another is writing. The experiments themselves run outside the lock; only their writing
//! waits. (Real runs side by side share the machine's cores: their timings are not those of a
//! run alone.)

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use anyhow::Context;

/// The lock, held until dropped.
#[derive(Debug)]
pub struct Writing {
    _file: File,
}

/// Waits for (and takes) the output directory's lock, saying so when another run holds it.
pub fn writing(out: &Path) -> anyhow::Result<Writing> {
    std::fs::create_dir_all(out).with_context(|| format!("creating the output directory {}", out.display()))?;
    let path = out.join(".campus-sim.lock");
    let file =
        OpenOptions::new().create(true).truncate(false).write(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            println!("  … waiting for another campus-sim run to finish writing to {}", out.display());
            file.lock().with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    Ok(Writing { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_until_the_first_has_finished() {
        let out = std::env::temp_dir().join(format!("campus-sim-lock-{}", std::process::id()));
        let first = writing(&out).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let out = out.clone();
            std::thread::spawn(move || {
                let _second = writing(&out).unwrap();
                tx.send(()).unwrap();
            })
        };
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "the second writer did not wait");
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the second writer never got the lock");
        waiter.join().unwrap();
        std::fs::remove_dir_all(&out).unwrap();
    }
}
