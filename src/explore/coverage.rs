//! Coverage of the pairs the rules allow to swap: for each, were both orders tried?

use std::collections::BTreeSet;

use super::points::Point;
use super::rules::{Delivery, Rules};

/// The swappable pairs and the orders seen of each.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// (earlier, later) plan positions: pairs some schedule may swap.
    pairs: Vec<(usize, usize)>,
    /// (first, second) orders observed.
    seen: BTreeSet<(usize, usize)>,
}

impl Coverage {
    /// The pairs of the reorder points in `universe`.
    pub fn new(rules: &Rules, universe: &[Point]) -> Coverage {
        let pos = |seq| super::points::position(rules, seq);
        let pairs = universe
            .iter()
            .filter_map(|p| match p {
                Point::Move { seq, before } => Some((pos(*before)?, pos(*seq)?)),
                _ => None,
            })
            .collect();
        Coverage {
            pairs,
            seen: BTreeSet::new(),
        }
    }

    /// Notes the orders a run delivered (first deliveries count).
    pub fn observe(&mut self, schedule: &[Delivery]) {
        for &(a, b) in &self.pairs {
            let first = |p| schedule.iter().position(|d| d.position == p);
            if let (Some(x), Some(y)) = (first(a), first(b)) {
                self.seen.insert(if x < y { (a, b) } else { (b, a) });
            }
        }
    }

    /// `(covered, total)`: pairs tried in both orders.
    pub fn covered(&self) -> (usize, usize) {
        let both = self
            .pairs
            .iter()
            .filter(|&&(a, b)| self.seen.contains(&(a, b)) && self.seen.contains(&(b, a)))
            .count();
        (both, self.pairs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::points::{apply, universe};
    use crate::explore::rules::tests::{invite, rules_of};
    use crate::explore::strategy::Perturb;

    #[test]
    fn a_pair_counts_once_both_orders_ran() {
        let r = rules_of(&invite());
        let kinds = "reorder".parse::<Perturb>().unwrap().kinds;
        let u = universe(&r, kinds, 0);
        // establishing/established, completed/roster.
        assert_eq!(u.len(), 2);
        let mut c = Coverage::new(&r, &u);
        assert_eq!(c.covered(), (0, 2));
        c.observe(&r.identity());
        assert_eq!(c.covered(), (0, 2));
        c.observe(&apply(&r, &u[..1]).0);
        assert_eq!(c.covered(), (1, 2));
        c.observe(&apply(&r, &u).0);
        assert_eq!(c.covered(), (2, 2));
    }
}
