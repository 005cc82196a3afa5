//! YCSB's key choosers: zipfian (Gray et al.'s algorithm, constant 0.99), its
//! scrambled form (item ranks spread over the key space by FNV-1a hashing), and
//! `latest` (zipfian over recency: the newest keys are the most popular).

/// Zipfian constant of YCSB's core workloads.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// A small, fast, seeded generator (xorshift64*), so that runs are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Ranks 0..items with P(rank i) proportional to 1 / (i + 1)^theta.
#[derive(Debug, Clone)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    pub fn new(items: u64) -> Zipfian {
        let items = items.max(1);
        let theta = ZIPFIAN_CONSTANT;
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian { items, theta, alpha, zetan, eta }
    }

    /// A rank, 0 the most popular.
    pub fn next(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let rank = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items - 1)
    }

    /// The probability of rank 0 (for tests).
    pub fn p_first(&self) -> f64 {
        1.0 / self.zetan
    }
}

/// FNV-1a of a 64-bit value, as YCSB scrambles zipfian ranks.
pub fn fnv1a_64(value: u64) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in value.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// Zipfian popularity spread over the key space: record `fnv(rank) % items`.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    items: u64,
    zipfian: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(items: u64) -> ScrambledZipfian {
        ScrambledZipfian { items: items.max(1), zipfian: Zipfian::new(items) }
    }
    pub fn next(&self, rng: &mut Rng) -> u64 {
        fnv1a_64(self.zipfian.next(rng)) % self.items
    }
}

/// `latest`: record `newest - zipfian rank`, over the records inserted so far.
#[derive(Debug, Clone)]
pub struct Latest {
    zipfian: Zipfian,
}

impl Latest {
    pub fn new(items: u64) -> Latest {
        Latest { zipfian: Zipfian::new(items) }
    }
    /// A record among `0..count` (the newest is `count - 1`). The popularity
    /// curve is computed for the initial record count; recency grows with inserts.
    pub fn next(&self, rng: &mut Rng, count: u64) -> u64 {
        let rank = self.zipfian.next(rng);
        count.saturating_sub(1).saturating_sub(rank % count.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_gives_rank_zero_its_theoretical_share_and_decays() {
        let z = Zipfian::new(1000);
        let mut rng = Rng::new(1);
        let draws = 200_000;
        let mut counts = vec![0u32; 1000];
        for _ in 0..draws {
            counts[z.next(&mut rng) as usize] += 1;
        }
        let first = f64::from(counts[0]) / draws as f64;
        assert!((first - z.p_first()).abs() / z.p_first() < 0.05, "{first} vs {}", z.p_first());
        // P(rank 9) / P(rank 0) = 10^-0.99.
        let ratio = f64::from(counts[9]) / f64::from(counts[0]);
        assert!((ratio - 10f64.powf(-0.99)).abs() < 0.03, "{ratio}");
        assert!(counts[500..].iter().all(|&c| c < counts[0] / 50));
    }

    #[test]
    fn scrambling_spreads_the_popular_records_over_the_key_space() {
        let s = ScrambledZipfian::new(10_000);
        let mut rng = Rng::new(2);
        let mut low = 0;
        for _ in 0..10_000 {
            if s.next(&mut rng) < 1000 {
                low += 1;
            }
        }
        // Unscrambled, ranks below 1000 would take most draws; scrambled, about a
        // tenth of draws land in any tenth of the key space (give or take the hot keys).
        assert!((300..3500).contains(&low), "{low}");
    }

    #[test]
    fn latest_favours_the_newest_records() {
        let l = Latest::new(1000);
        let mut rng = Rng::new(3);
        let newest = (0..10_000).filter(|_| l.next(&mut rng, 1000) >= 990).count();
        assert!(newest > 3000, "{newest} of 10 000 draws among the 10 newest");
        assert!((0..1000).all(|_| l.next(&mut rng, 5) < 5));
    }
}
