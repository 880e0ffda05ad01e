//! ddmin (Zeller and Hildebrandt, 2002) over a failing run's perturbation points: the
//! smallest subset that still fails, re-running the bot for each candidate. Pure: the
//! run is a closure.

use std::collections::HashMap;

/// Shrinks `points` (which fail) to a 1-minimal failing subset: removing any one
/// point makes it pass. `fails` runs a candidate (a subsequence of `points`, order
/// kept) and says whether it still fails; each distinct candidate is run once.
pub fn ddmin<T: Clone>(points: &[T], mut fails: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut memo: HashMap<Vec<usize>, bool> = HashMap::new();
    let mut test = |subset: &[usize]| -> bool {
        if let Some(&known) = memo.get(subset) {
            return known;
        }
        let candidate: Vec<T> = subset.iter().map(|&i| points[i].clone()).collect();
        let failed = fails(&candidate);
        memo.insert(subset.to_vec(), failed);
        failed
    };
    let mut current: Vec<usize> = (0..points.len()).collect();
    // The empty set first: a bot that fails the recorded order needs no perturbation.
    if !current.is_empty() && test(&[]) {
        current.clear();
    }
    let mut n = 2;
    while current.len() >= 2 {
        let chunks = split(&current, n);
        let mut reduced = false;
        for chunk in &chunks {
            if test(chunk) {
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
                if test(&complement) {
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
    current.into_iter().map(|i| points[i].clone()).collect()
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
        let min = ddmin(&[1, 2, 3, 4, 5, 6, 7, 8], |c| {
            runs += 1;
            c.contains(&6)
        });
        assert_eq!(min, vec![6]);
        assert!(runs <= 12, "{runs} runs");
    }

    #[test]
    fn keeps_a_pair_that_fails_only_together() {
        let min = ddmin(&[1, 2, 3, 4, 5], |c| c.contains(&2) && c.contains(&5));
        assert_eq!(min, vec![2, 5]);
    }

    #[test]
    fn a_failure_without_perturbations_shrinks_to_none() {
        assert_eq!(ddmin(&[1, 2], |_| true), Vec::<i32>::new());
        assert_eq!(ddmin(&[1], |c| !c.is_empty()), vec![1]);
        assert_eq!(ddmin::<i32>(&[], |_| true), Vec::<i32>::new());
    }

    #[test]
    fn each_candidate_runs_once() {
        let mut seen = std::collections::HashSet::new();
        ddmin(&[1, 2, 3, 4], |c| {
            assert!(seen.insert(c.to_vec()), "{c:?} ran twice");
            c.contains(&3)
        });
    }
}
