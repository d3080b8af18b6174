//! Capped exponential backoff with jitter: how long a service waits before it tries the broker
//! (or its store's database) again. The jitter keeps many clients that lost the same broker
//! from all coming back in the same instant; it is drawn from a seed, so the simulation replays
//! it exactly (production seeds it at random).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How a service's loops meet a broker that goes away: wait (a backoff with jitter) and try
/// again, for as long as it takes. Only the lab switches reconnecting off (`campus-sim explore
/// --break no-reconnect`), to show what a loop that gives up loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub reconnect: bool,
    /// Part C's consumer loops replace a consumer whose fetches went silent over records to
    /// read (`streaming_kafka::stall`); only the lab's `--break no-stall-watch` turns it off.
    pub stall_watch: bool,
    /// Part B's consumers acknowledge a window only after its commit
    /// (`crate::safeguards::Safeguards::ack_after_commit`; off only under the lab's
    /// `--break ack-before-commit`).
    pub ack_after_commit: bool,
    /// The jitter's seed; `None`: random (production).
    pub seed: Option<u64>,
}

impl Policy {
    /// Reconnect, with random jitter.
    pub fn production() -> Self {
        Policy { reconnect: true, stall_watch: true, ack_after_commit: true, seed: None }
    }

    /// Reconnect, with jitter drawn from `seed` (the simulation).
    pub fn seeded(seed: u64) -> Self {
        Policy { reconnect: true, stall_watch: true, ack_after_commit: true, seed: Some(seed) }
    }

    /// The backoff of the loop called `label` (each loop its own jitter).
    pub fn backoff(&self, label: &str) -> Backoff {
        match self.seed {
            Some(seed) => Backoff::new(label.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))),
            None => Backoff::random(),
        }
    }

    /// Runs `attempt` until it succeeds, waiting `backoff` between tries while its error is
    /// transient (and reconnecting is on); any other error is returned. The first failure of
    /// a streak and the recovery are each logged once, as `what`.
    pub async fn until_ok<T, E, F, Fut>(
        &self,
        backoff: &mut Backoff,
        what: &str,
        transient: impl Fn(&E) -> bool,
        mut attempt: F,
    ) -> Result<T, E>
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut failing_since: Option<Instant> = None;
        loop {
            match attempt().await {
                Ok(value) => {
                    if let Some(since) = failing_since {
                        tracing::warn!(what, after_s = since.elapsed().as_secs_f64(), "answers again");
                    }
                    backoff.reset();
                    return Ok(value);
                }
                Err(e) if self.reconnect && transient(&e) => {
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        tracing::warn!(what, error = %e, "away; retrying with backoff");
                    } else {
                        tracing::debug!(what, error = %e, "still failing");
                    }
                    backoff.wait().await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The waits between attempts: `initial`, doubling up to `cap`, each drawn uniformly from its
/// upper half (`[d/2, d]`). Reset after a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    attempt: u32,
    state: u64,
}

impl Backoff {
    /// 100 ms, doubling to at most 5 s: a broker restart (seconds to tens of seconds) is
    /// noticed within 5 s of its return, and a broker that stays away is asked once per 2.5–5 s.
    pub const INITIAL: Duration = Duration::from_millis(100);
    pub const CAP: Duration = Duration::from_secs(5);

    /// The default policy, its jitter drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Backoff { initial: Self::INITIAL, cap: Self::CAP, attempt: 0, state: seed }
    }

    /// The default policy with a random seed (each process its own jitter).
    pub fn random() -> Self {
        Self::new(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    /// How long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << self.attempt.min(16));
        let ceiling = exp.min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_micros() as u64;
        half + Duration::from_micros(if spread == 0 { 0 } else { self.next_u64() % (spread + 1) })
    }

    /// Waits [`Self::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// After a success: the next failure starts again from `initial`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// SplitMix64.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waits_double_within_their_jitter_up_to_the_cap_and_reset_after_a_success() {
        let mut b = Backoff::new(7);
        let waits: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, w) in waits.iter().enumerate() {
            let ceiling = (Backoff::INITIAL * (1 << i)).min(Backoff::CAP);
            assert!(*w >= ceiling / 2 && *w <= ceiling, "wait #{i} {w:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
        }
        assert!(waits[9] >= Backoff::CAP / 2);
        b.reset();
        assert!(b.next_delay() <= Backoff::INITIAL);
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let waits = |seed| {
            let mut b = Backoff::new(seed);
            (0..6).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(waits(3), waits(3));
        assert_ne!(waits(3), waits(4));
    }
}
