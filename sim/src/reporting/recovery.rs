//! A recovery split into its parts: the wait before anything moved again once the thing taken
//! away was back (a client sitting out its retry backoff), and the drain after it.

use std::time::Duration;

use campus::retry::Backoff;

/// How long after `back_ms` the work moved again, as fine as the sampling: (not yet, moved) —
/// the last sample still showing `counter` at its value at the return, and the first showing it
/// above, both measured from `back_ms`. `samples` gives each sample's time (ms) and counter, in
/// time order. `None` if it never moved (or nothing was sampled before the return).
pub fn first_progress_after(samples: impl IntoIterator<Item = (u64, u64)>, back_ms: u64) -> Option<(Duration, Duration)> {
    let samples: Vec<(u64, u64)> = samples.into_iter().collect();
    let (_, at_return) = samples.iter().rfind(|(t, _)| *t <= back_ms)?;
    let moved = samples.iter().position(|(t, n)| *t > back_ms && n > at_return)?;
    let not_yet = samples[moved - 1].0.max(back_ms);
    Some((Duration::from_millis(not_yet - back_ms), Duration::from_millis(samples[moved].0 - back_ms)))
}

/// A recovery in words, told to the sampling's resolution — the samples either side of the
/// moment the work moved again (`wait`: not yet, moved), which real mode may space wider than
/// its tick while a broker is slow to answer — what it waited on, and the rest of `total`.
pub fn split_in_words(wait: (Duration, Duration), total: Duration, who: &str, moved: &str, rest: &str) -> String {
    let (not_yet, by) = (wait.0.as_secs_f64(), wait.1.as_secs_f64());
    let after = total.saturating_sub(wait.1);
    let rest =
        if after.is_zero() { format!("{rest} within that same sample") } else { format!("{rest} in {:.2} s more", after.as_secs_f64()) };
    format!(
        "; of that, {who} sat out its retry wait ({}): it had not {moved} again {not_yet:.2} s after the return and had by \
         {by:.2} s (the samples either side), and {rest}",
        backoff_in_words()
    )
}

/// The clients' retry backoff in words, from its constants.
pub fn backoff_in_words() -> String {
    format!("a backoff doubling from {} ms to a cap of {} s", Backoff::INITIAL.as_millis(), Backoff::CAP.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_runs_from_the_return_to_the_first_sample_that_moved() {
        let samples = [(0, 5), (1000, 7), (2000, 7), (3000, 7), (4000, 9)];
        assert_eq!(first_progress_after(samples, 1500), Some((Duration::from_millis(1500), Duration::from_millis(2500))));
        assert_eq!(first_progress_after(samples, 4000), None);
        assert_eq!(first_progress_after([(2000, 1)], 1000), None);
    }
}
