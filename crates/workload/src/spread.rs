//! Exact, stateless feature assignment: "a fraction f of n items have the
//! feature" gives exactly `max(1, round(f * n))` items (none when f is 0),
//! spread over the items by a bijection of `0..n`, so an item's features are
//! computed from its index alone (no per-item table, memory stays bounded).

/// A feature given to an exact number of the items `0..n`.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    n: u64,
    count: u64,
    mul: u64,
    add: u64,
}

impl Spread {
    /// `salt` makes features independent of each other and of other seeds.
    pub fn new(fraction: f64, n: u64, salt: u64) -> Spread {
        let count = if fraction <= 0.0 || n == 0 {
            0
        } else {
            ((fraction * n as f64).round() as u64).clamp(1, n)
        };
        let n1 = n.max(1);
        let h = mix(salt);
        // A multiplier coprime with n makes `i -> (i * mul + add) % n` a bijection.
        let mut mul = (h % n1) | 1;
        while gcd(mul, n1) != 1 {
            mul += 1;
        }
        Spread {
            n: n1,
            count,
            mul,
            add: mix(h) % n1,
        }
    }

    /// The item's position in the feature's order; items with `rank < count` have it.
    pub fn rank(&self, i: u64) -> u64 {
        ((i as u128 * self.mul as u128 + self.add as u128) % self.n as u128) as u64
    }

    pub fn has(&self, i: u64) -> bool {
        self.rank(i) < self.count
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of a u64.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_and_never_zero_for_a_positive_fraction() {
        for (f, n, want) in [
            (0.1, 1000, 100),
            (0.001, 50, 1),
            (0.0, 50, 0),
            (1.0, 7, 7),
            (0.5, 9, 5),
        ] {
            for salt in 0..20 {
                let s = Spread::new(f, n, salt);
                assert_eq!(
                    (0..n).filter(|&i| s.has(i)).count() as u64,
                    want,
                    "f={f} n={n}"
                );
                let mut ranks: Vec<u64> = (0..n).map(|i| s.rank(i)).collect();
                ranks.sort();
                assert_eq!(ranks, (0..n).collect::<Vec<_>>(), "not a bijection");
            }
        }
    }
}
