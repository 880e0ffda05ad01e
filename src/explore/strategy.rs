//! How runs choose their perturbation points (`--strategy`, `--perturb`), from a seed
//! with a small PRNG written here, so the same command gives the same schedules on
//! every machine and with every crate version. Pure.

use std::fmt;

use super::points::{apply, Kinds, Point};
use super::rules::{Delivery, Rules};

/// Bad `--strategy` or `--perturb` values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StrategyError {
    #[error("--strategy {0:?}: use pct, pct:K (K >= 1), random or exhaustive")]
    Strategy(String),
    #[error("--perturb {0:?}: use a comma list of reorder, race, delay, duplicate, drop, retry")]
    Perturb(String),
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// At most K points per run, chosen at random (after PCT, Microsoft Coyote).
    Pct(usize),
    /// Every point independently, with probability [`RANDOM_P`].
    Random,
    /// Every distinct schedule, fewest points first.
    Exhaustive,
}

/// The chance of each point in a `random` run.
pub const RANDOM_P: f64 = 0.2;

impl std::str::FromStr for Strategy {
    type Err = StrategyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StrategyError::Strategy(s.to_string());
        match s {
            "pct" => Ok(Strategy::Pct(2)),
            "random" => Ok(Strategy::Random),
            "exhaustive" => Ok(Strategy::Exhaustive),
            _ => {
                let k = s.strip_prefix("pct:").ok_or_else(bad)?;
                match k.parse::<usize>() {
                    Ok(k) if k >= 1 => Ok(Strategy::Pct(k)),
                    _ => Err(bad()),
                }
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Pct(k) => write!(f, "pct:{k}"),
            Strategy::Random => f.write_str("random"),
            Strategy::Exhaustive => f.write_str("exhaustive"),
        }
    }
}

/// `--perturb`: the kinds of point, and whether failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perturb {
    pub kinds: Kinds,
    pub retry: bool,
}

impl Default for Perturb {
    /// All but `drop`.
    fn default() -> Self {
        Perturb {
            kinds: Kinds {
                reorder: true,
                race: true,
                delay: true,
                duplicate: true,
                drop: false,
            },
            retry: true,
        }
    }
}

impl std::str::FromStr for Perturb {
    type Err = StrategyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Perturb {
            kinds: Kinds {
                reorder: false,
                race: false,
                delay: false,
                duplicate: false,
                drop: false,
            },
            retry: false,
        };
        for word in s.split(',').map(str::trim) {
            match word {
                "reorder" => p.kinds.reorder = true,
                "race" => p.kinds.race = true,
                "delay" => p.kinds.delay = true,
                "duplicate" => p.kinds.duplicate = true,
                "drop" => p.kinds.drop = true,
                "retry" => p.retry = true,
                _ => return Err(StrategyError::Perturb(s.to_string())),
            }
        }
        Ok(p)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever here.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of one run: independent of every other run's.
    pub fn for_run(seed: u64, run: u64, salt: u64) -> Rng {
        let mut r = Rng(seed);
        let a = r.next_u64();
        let mut r = Rng(a ^ run.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let b = r.next_u64();
        Rng(b ^ salt.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection, so no bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A fresh id: 32 lower-case hex digits.
    pub fn guid(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

/// The points of run `run` (1-based) under `pct` or `random`; run 1 is always the
/// recorded order. Delays get a length drawn in `1..=max_delay_ms`.
pub fn choose(
    universe: &[Point],
    strategy: Strategy,
    seed: u64,
    run: u64,
    max_delay_ms: u64,
) -> Vec<Point> {
    if run <= 1 || universe.is_empty() {
        return Vec::new();
    }
    let mut rng = Rng::for_run(seed, run, 0);
    let mut picked: Vec<usize> = match strategy {
        Strategy::Pct(k) => {
            let count = 1 + rng.below(k.min(universe.len()) as u64) as usize;
            let mut indices: Vec<usize> = (0..universe.len()).collect();
            for i in 0..count {
                let j = i + rng.below((indices.len() - i) as u64) as usize;
                indices.swap(i, j);
            }
            indices.truncate(count);
            indices
        }
        Strategy::Random | Strategy::Exhaustive => (0..universe.len())
            .filter(|_| rng.chance(RANDOM_P))
            .collect(),
    };
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|i| match &universe[i] {
            Point::Delay { seq, .. } => Point::Delay {
                seq: *seq,
                ms: 1 + rng.below(max_delay_ms.max(1)),
            },
            p => p.clone(),
        })
        .collect()
}

/// Subsets of `0..n`, fewest elements first, then in lexicographic order.
pub fn subsets(n: usize) -> impl Iterator<Item = Vec<usize>> {
    (0..=n).flat_map(move |k| Combinations::new(n, k))
}

struct Combinations {
    n: usize,
    next: Option<Vec<usize>>,
}

impl Combinations {
    fn new(n: usize, k: usize) -> Combinations {
        Combinations {
            n,
            next: (k <= n).then(|| (0..k).collect()),
        }
    }
}

impl Iterator for Combinations {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        let k = current.len();
        let mut following = current.clone();
        let mut i = k;
        while i > 0 {
            i -= 1;
            if following[i] < self.n - k + i {
                following[i] += 1;
                for j in i + 1..k {
                    following[j] = following[j - 1] + 1;
                }
                self.next = Some(following);
                break;
            }
        }
        Some(current)
    }
}

/// The number of distinct schedules the universe makes: exact up to this many points,
/// else an upper bound (2^n).
pub const COUNT_EXACTLY_UP_TO: usize = 14;

/// How many distinct schedules there are: `(count, exact)`.
pub fn count_distinct(rules: &Rules, universe: &[Point]) -> (u64, bool) {
    if universe.len() > COUNT_EXACTLY_UP_TO {
        return (
            1u64.checked_shl(universe.len() as u32).unwrap_or(u64::MAX),
            false,
        );
    }
    let mut seen: std::collections::HashSet<Vec<Delivery>> = std::collections::HashSet::new();
    for subset in subsets(universe.len()) {
        let points: Vec<Point> = subset.iter().map(|&i| universe[i].clone()).collect();
        seen.insert(apply(rules, &points).0);
    }
    (seen.len() as u64, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::points::universe;
    use crate::explore::rules::tests::{incoming, rules_of};

    #[test]
    fn strategies_and_perturbations_parse() {
        assert_eq!("pct".parse(), Ok(Strategy::Pct(2)));
        assert_eq!("pct:3".parse(), Ok(Strategy::Pct(3)));
        assert!("pct:0".parse::<Strategy>().is_err());
        assert!("dfs".parse::<Strategy>().is_err());
        assert_eq!(Strategy::Pct(3).to_string(), "pct:3");
        let p: Perturb = "reorder,drop".parse().unwrap();
        assert!(p.kinds.reorder && p.kinds.drop && !p.kinds.race && !p.retry);
        assert!("reorder,shuffle".parse::<Perturb>().is_err());
        assert!(!Perturb::default().kinds.drop && Perturb::default().retry);
    }

    #[test]
    fn the_prng_is_fixed_and_runs_are_independent() {
        // SplitMix64's published first output for seed 0.
        assert_eq!(Rng(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let a: Vec<u64> = (0..3).map(|_| Rng::for_run(7, 2, 0).below(1000)).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same inputs, same draw");
        assert_ne!(Rng::for_run(7, 2, 0).guid(), Rng::for_run(7, 3, 0).guid());
        assert_ne!(Rng::for_run(7, 2, 0).guid(), Rng::for_run(7, 2, 1).guid());
        assert_eq!(Rng::for_run(1, 1, 0).guid().len(), 32);
    }

    #[test]
    fn pct_picks_at_most_k_points_and_run_one_is_the_recording() {
        let r = rules_of(&incoming());
        let u = universe(&r, Perturb::default().kinds, 2000);
        assert!(choose(&u, Strategy::Pct(2), 7, 1, 2000).is_empty());
        let mut sizes = std::collections::BTreeSet::new();
        for run in 2..60 {
            let points = choose(&u, Strategy::Pct(2), 7, run, 2000);
            assert!((1..=2).contains(&points.len()));
            assert_eq!(points, choose(&u, Strategy::Pct(2), 7, run, 2000));
            for p in &points {
                if let Point::Delay { ms, .. } = p {
                    assert!((1..=2000).contains(ms));
                }
            }
            sizes.insert(points.len());
        }
        assert_eq!(sizes.len(), 2, "both one and two points occur");
        assert_ne!(
            (2..20)
                .map(|r| choose(&u, Strategy::Pct(2), 7, r, 2000))
                .collect::<Vec<_>>(),
            (2..20)
                .map(|r| choose(&u, Strategy::Pct(2), 8, r, 2000))
                .collect::<Vec<_>>(),
            "another seed, other schedules"
        );
    }

    #[test]
    fn subsets_come_smallest_first() {
        let all: Vec<Vec<usize>> = subsets(3).collect();
        assert_eq!(
            all,
            vec![
                vec![],
                vec![0],
                vec![1],
                vec![2],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
                vec![0, 1, 2]
            ]
        );
    }

    #[test]
    fn distinct_schedules_are_counted_exactly_when_few() {
        let r = rules_of(&incoming());
        let kinds = "reorder,race".parse::<Perturb>().unwrap().kinds;
        let u = universe(&r, kinds, 0);
        // swap(3,4), race 3, race 6: identity, each alone, swap+race6, race3+race6;
        // swap+race3 is infeasible (establishing before the response, established
        // before establishing) and collapses onto the swap alone.
        let (count, exact) = count_distinct(&r, &u);
        assert!(exact);
        assert_eq!(count, 6);
    }
}
