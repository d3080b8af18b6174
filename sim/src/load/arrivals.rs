//! When each request of an open loop is meant to start: at a rate, steadily or as a Poisson
//! process drawn from the seed, whatever happened to the requests before it.

use std::time::Duration;

use tokio::time::Instant;

use crate::simulator::rng::SimRng;

/// How an open loop's arrivals are spread (`--arrivals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Shape {
    /// One every `1 / rate` seconds.
    #[default]
    Steady,
    /// Students arriving independently: gaps drawn from the exponential distribution of mean
    /// `1 / rate` (from the seed), so arrivals bunch up and thin out as real ones do.
    Poisson,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Steady => "steady",
            Shape::Poisson => "poisson",
        }
    }

    /// The intended start of each of `n` requests at `rate` a second, from the load's start.
    /// `rng` is drawn from only for [`Shape::Poisson`].
    pub fn offsets(self, rate: u32, n: usize, rng: &mut SimRng) -> Vec<Duration> {
        let mean = 1.0 / f64::from(rate.max(1));
        let mut at = 0.0_f64;
        (0..n)
            .map(|i| match self {
                Shape::Steady => Duration::from_secs_f64(i as f64 * mean),
                Shape::Poisson => {
                    let this = Duration::from_secs_f64(at);
                    // 53 random bits as a uniform in (0, 1]; its logarithm, an exponential gap.
                    let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                    at += -u.ln() * mean;
                    this
                }
            })
            .collect()
    }
}

/// An open loop's clock: request `i` is due at its offset from the start, whatever the answers
/// to the ones before.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    offsets: Vec<Duration>,
}

impl Schedule {
    /// Starts now.
    pub fn new(offsets: Vec<Duration>) -> Self {
        Self::starting_at(Instant::now(), offsets)
    }

    pub fn starting_at(start: Instant, offsets: Vec<Duration>) -> Self {
        Schedule { start, offsets }
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// When request `i` is due.
    pub fn intended(&self, i: usize) -> Instant {
        self.start + self.offsets[i]
    }

    /// Waits until request `i` is due and returns when that was: a sender that gets here late
    /// does not wait, and the request's latency is still counted from its intended start.
    pub async fn due(&self, i: usize) -> Instant {
        let intended = self.intended(i);
        tokio::time::sleep_until(intended).await;
        intended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_arrivals_are_evenly_spaced() {
        let offsets = Shape::Steady.offsets(50, 4, &mut SimRng::new(1));
        assert_eq!(offsets, [0, 20, 40, 60].map(Duration::from_millis));
    }

    #[test]
    fn poisson_arrivals_keep_the_rate_on_average_but_not_the_spacing() {
        let offsets = Shape::Poisson.offsets(100, 10_000, &mut SimRng::new(7));
        let span = offsets.last().unwrap().as_secs_f64();
        assert!((span - 100.0).abs() < 5.0, "10,000 arrivals at 100/s span about 100 s, not {span:.1}");
        let gaps: Vec<Duration> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
        let short = gaps.iter().filter(|g| **g < Duration::from_millis(5)).count() as f64 / gaps.len() as f64;
        // P(gap < mean / 2) = 1 - e^(-1/2) ≈ 0.39: bunched arrivals, which a steady load never has.
        assert!((0.35..0.44).contains(&short), "{short:.3} of the gaps under half the mean");
        assert_eq!(offsets, Shape::Poisson.offsets(100, 10_000, &mut SimRng::new(7)), "one seed, one schedule");
    }
}
