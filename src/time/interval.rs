//! Interval algebra over half-open intervals of milliseconds since the Unix
//! epoch (UTC). Pure: no clocks, no I/O. The ledger's exact availability
//! figures are sums over these sets, so every operation keeps a set
//! normalized (sorted, disjoint, no empty or touching intervals) and is
//! property-tested against a brute-force model.

use std::fmt;

/// `[start, end)` in milliseconds since the epoch. Empty when `end <= start`.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

impl Interval {
    pub fn new(start: i64, end: i64) -> Self {
        Interval { start, end }
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn len(&self) -> i64 {
        (self.end - self.start).max(0)
    }

    pub fn intersect(&self, other: &Interval) -> Interval {
        Interval::new(self.start.max(other.start), self.end.min(other.end))
    }
}

/// A normalized set of intervals.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct IntervalSet {
    spans: Vec<Interval>,
}

impl fmt::Debug for IntervalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(&self.spans).finish()
    }
}

impl IntervalSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// From any intervals: empty ones dropped, overlapping and touching
    /// ones merged.
    pub fn from_intervals(it: impl IntoIterator<Item = Interval>) -> Self {
        let mut v: Vec<Interval> = it.into_iter().filter(|i| !i.is_empty()).collect();
        v.sort_unstable();
        let mut spans: Vec<Interval> = Vec::with_capacity(v.len());
        for i in v {
            match spans.last_mut() {
                Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
                _ => spans.push(i),
            }
        }
        IntervalSet { spans }
    }

    pub fn single(i: Interval) -> Self {
        Self::from_intervals([i])
    }

    pub fn spans(&self) -> &[Interval] {
        &self.spans
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Total length in milliseconds.
    pub fn len(&self) -> i64 {
        self.spans.iter().map(Interval::len).sum()
    }

    pub fn contains(&self, t: i64) -> bool {
        let i = self.spans.partition_point(|s| s.end <= t);
        self.spans.get(i).is_some_and(|s| s.start <= t)
    }

    pub fn union(&self, other: &IntervalSet) -> IntervalSet {
        Self::from_intervals(self.spans.iter().chain(other.spans.iter()).copied())
    }

    pub fn intersection(&self, other: &IntervalSet) -> IntervalSet {
        let (a, b) = (&self.spans, &other.spans);
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < a.len() && j < b.len() {
            let x = a[i].intersect(&b[j]);
            if !x.is_empty() {
                out.push(x);
            }
            if a[i].end < b[j].end {
                i += 1;
            } else {
                j += 1;
            }
        }
        // Inputs are normalized, so the pieces are sorted and disjoint; they
        // may touch where two spans of one side touched the other's edge.
        Self::from_intervals(out)
    }

    /// Everything in `self` that is not in `other`.
    pub fn difference(&self, other: &IntervalSet) -> IntervalSet {
        let mut out = Vec::new();
        let mut j = 0;
        for s in &self.spans {
            let mut start = s.start;
            while j < other.spans.len() && other.spans[j].end <= start {
                j += 1;
            }
            let mut k = j;
            while k < other.spans.len() && other.spans[k].start < s.end {
                let o = other.spans[k];
                if o.start > start {
                    out.push(Interval::new(start, o.start));
                }
                start = start.max(o.end);
                k += 1;
            }
            if start < s.end {
                out.push(Interval::new(start, s.end));
            }
        }
        Self::from_intervals(out)
    }

    /// `self` within `window`.
    pub fn restrict(&self, window: Interval) -> IntervalSet {
        self.intersection(&IntervalSet::single(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(v: &[(i64, i64)]) -> IntervalSet {
        IntervalSet::from_intervals(v.iter().map(|&(a, b)| Interval::new(a, b)))
    }

    #[test]
    fn normalizes() {
        let s = set(&[(5, 7), (0, 2), (2, 3), (6, 9), (10, 10), (12, 11)]);
        assert_eq!(s.spans(), &[Interval::new(0, 3), Interval::new(5, 9)]);
        assert_eq!(s.len(), 7);
        assert!(
            s.contains(0) && s.contains(2) && !s.contains(3) && s.contains(8) && !s.contains(9)
        );
    }

    #[test]
    fn operations() {
        let a = set(&[(0, 10), (20, 30)]);
        let b = set(&[(5, 25)]);
        assert_eq!(a.union(&b), set(&[(0, 30)]));
        assert_eq!(a.intersection(&b), set(&[(5, 10), (20, 25)]));
        assert_eq!(a.difference(&b), set(&[(0, 5), (25, 30)]));
        assert_eq!(b.difference(&a), set(&[(10, 20)]));
        assert_eq!(a.restrict(Interval::new(8, 22)), set(&[(8, 10), (20, 22)]));
    }

    /// Model: the set of integer points (small range) an interval set covers.
    fn points(s: &IntervalSet) -> Vec<i64> {
        (-10..80).filter(|&t| s.contains(t)).collect()
    }

    fn arb_set() -> impl Strategy<Value = IntervalSet> {
        prop::collection::vec((-5i64..55, 0i64..15), 0..8).prop_map(|v| {
            IntervalSet::from_intervals(v.into_iter().map(|(a, l)| Interval::new(a, a + l)))
        })
    }

    proptest! {
        #[test]
        fn algebra_matches_the_point_model(a in arb_set(), b in arb_set()) {
            let pa = points(&a);
            let pb = points(&b);
            let union: Vec<i64> = (-10..80).filter(|t| pa.contains(t) || pb.contains(t)).collect();
            let inter: Vec<i64> = (-10..80).filter(|t| pa.contains(t) && pb.contains(t)).collect();
            let diff: Vec<i64> = (-10..80).filter(|t| pa.contains(t) && !pb.contains(t)).collect();
            prop_assert_eq!(points(&a.union(&b)), union);
            prop_assert_eq!(points(&a.intersection(&b)), inter.clone());
            prop_assert_eq!(points(&a.difference(&b)), diff);
            // Lengths agree with the model (integer endpoints in range).
            prop_assert_eq!(a.intersection(&b).len(), inter.len() as i64);
        }

        #[test]
        fn results_stay_normalized(a in arb_set(), b in arb_set()) {
            for s in [a.union(&b), a.intersection(&b), a.difference(&b)] {
                for w in s.spans().windows(2) {
                    prop_assert!(w[0].end < w[1].start, "{:?}", s);
                }
                prop_assert!(s.spans().iter().all(|i| !i.is_empty()));
            }
        }

        #[test]
        fn difference_and_intersection_partition(a in arb_set(), b in arb_set()) {
            prop_assert_eq!(a.difference(&b).len() + a.intersection(&b).len(), a.len());
            prop_assert_eq!(a.union(&b).len(), a.len() + b.len() - a.intersection(&b).len());
        }
    }
}
