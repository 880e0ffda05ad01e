//! ddmin (Zeller and Hildebrandt, 2002) over a failing run's perturbation points: the
//! smallest subset that still fails, re-running the bot for each candidate. Pure: the
//! run is a closure.

use std::collections::HashMap;

/// What shrinking found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shrunk<T> {
    /// The smallest failing subset found: 1-minimal unless `capped`.
    pub points: Vec<T>,
    /// The re-run budget ran out first: `points` still fails but may not be minimal.
    pub capped: bool,
}

/// Shrinks `points` (which fail) to a 1-minimal failing subset: removing any one
/// point makes it pass. `fails` runs a candidate (a subsequence of `points`, order
/// kept) and says whether it still fails; each distinct candidate is run once, and at
/// most `max_runs` are run (each is a real run of the bot: a failure must be reported
/// in bounded time even when every candidate fails slowly).
pub fn ddmin<T: Clone>(
    points: &[T],
    max_runs: usize,
    mut fails: impl FnMut(&[T]) -> bool,
) -> Shrunk<T> {
    let mut memo: HashMap<Vec<usize>, bool> = HashMap::new();
    let mut capped = false;
    let mut test = |subset: &[usize], capped: &mut bool| -> bool {
        if let Some(&known) = memo.get(subset) {
            return known;
        }
        if memo.len() >= max_runs {
            *capped = true;
            return false;
        }
        let candidate: Vec<T> = subset.iter().map(|&i| points[i].clone()).collect();
        let failed = fails(&candidate);
        memo.insert(subset.to_vec(), failed);
        failed
    };
    let mut current: Vec<usize> = (0..points.len()).collect();
    // The empty set first: a bot that fails the recorded order needs no perturbation.
    if !current.is_empty() && test(&[], &mut capped) {
        current.clear();
    }
    let mut n = 2;
    while current.len() >= 2 && !capped {
        let chunks = split(&current, n);
        let mut reduced = false;
        for chunk in &chunks {
            if test(chunk, &mut capped) {
                current = chunk.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && n > 2 {
            for i in 0..chunks.len() {
                let complement: Vec<usize> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                if test(&complement, &mut capped) {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (2 * n).min(current.len());
        }
    }
    Shrunk {
        points: current.into_iter().map(|i| points[i].clone()).collect(),
        capped,
    }
}

fn split(items: &[usize], n: usize) -> Vec<Vec<usize>> {
    let n = n.min(items.len()).max(1);
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = start + (items.len() - start) / (n - i);
        chunks.push(items[start..end].to_vec());
        start = end;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_one_point_that_matters() {
        let mut runs = 0;
        let min = ddmin(&[1, 2, 3, 4, 5, 6, 7, 8], 100, |c| {
            runs += 1;
            c.contains(&6)
        });
        assert_eq!(min.points, vec![6]);
        assert!(!min.capped);
        assert!(runs <= 12, "{runs} runs");
    }

    #[test]
    fn keeps_a_pair_that_fails_only_together() {
        let min = ddmin(&[1, 2, 3, 4, 5], 100, |c| c.contains(&2) && c.contains(&5));
        assert_eq!(min.points, vec![2, 5]);
    }

    #[test]
    fn a_failure_without_perturbations_shrinks_to_none() {
        assert_eq!(ddmin(&[1, 2], 100, |_| true).points, Vec::<i32>::new());
        assert_eq!(ddmin(&[1], 100, |c| !c.is_empty()).points, vec![1]);
        assert_eq!(ddmin::<i32>(&[], 100, |_| true).points, Vec::<i32>::new());
    }

    #[test]
    fn each_candidate_runs_once() {
        let mut seen = std::collections::HashSet::new();
        ddmin(&[1, 2, 3, 4], 100, |c| {
            assert!(seen.insert(c.to_vec()), "{c:?} ran twice");
            c.contains(&3)
        });
    }

    #[test]
    fn stops_at_the_run_budget_with_a_failing_subset() {
        let points: Vec<u32> = (0..16).collect();
        let mut runs = 0;
        // Every candidate but the empty one fails: unbounded, ddmin would run many.
        let shrunk = ddmin(&points, 3, |c| {
            runs += 1;
            !c.is_empty()
        });
        // The empty set, then halves: 8 points fail, 4 fail; the budget is spent.
        assert_eq!(runs, 3);
        assert!(shrunk.capped);
        assert_eq!(shrunk.points, vec![0, 1, 2, 3]);
        let unbounded = ddmin(&points, usize::MAX, |c| !c.is_empty());
        assert_eq!(unbounded.points.len(), 1);
        assert!(!unbounded.capped);
    }
}
