//! The one source of randomness in the lab. Every random choice of a run — workload, link
//! latencies, fault timings — is drawn from a [`SimRng`] forked from the run's seed, so one
//! seed replays a run exactly.

/// SplitMix64: tiny, fast, and good enough for workloads and latencies (not for secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to return");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "between({lo}, {hi}) is empty");
        lo + self.below(hi - lo + 1)
    }

    /// An independent stream for one purpose (`"workload"`, `"net"`, …). Forking by label
    /// keeps streams stable when another part of the run starts drawing more numbers.
    pub fn fork(&self, label: &str) -> SimRng {
        // FNV-1a of the label, mixed into this stream's state.
        let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        let mut forked = SimRng::new(self.state ^ hash);
        forked.next_u64();
        forked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let a: Vec<u64> = {
            let mut r = SimRng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SimRng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn forks_with_different_labels_differ() {
        let root = SimRng::new(7);
        assert_ne!(root.fork("net").next_u64(), root.fork("workload").next_u64());
    }

    #[test]
    fn between_stays_in_its_bounds() {
        let mut r = SimRng::new(1);
        for _ in 0..10_000 {
            let v = r.between(3, 5);
            assert!((3..=5).contains(&v), "{v} out of 3..=5");
        }
    }
}
