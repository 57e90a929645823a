//! The bucket store of [`LatencySketch`](super::LatencySketch): dense counts over a window of at
//! most [`MAX_BUCKETS`] bucket indices, collapsing the lowest buckets when the window would grow
//! beyond that (see *Memory* in the [`sketch`](super) module documentation).

use super::MAX_BUCKETS;

const MAX_BUCKETS_I32: i32 = MAX_BUCKETS as i32;

/// Dense counts for the bucket indices `offset ..= offset + counts.len() - 1`.
///
/// Invariants: empty (then `offset` is 0), or `1 ..= MAX_BUCKETS` counts of which the first
/// and the last are non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Store {
    pub(super) offset: i32,
    pub(super) counts: Vec<u64>,
}

impl Store {
    /// Index of the last bucket; only meaningful when not empty.
    fn last_index(&self) -> i32 {
        self.offset + self.counts.len() as i32 - 1
    }

    /// Non-zero buckets as (index, count), ascending by index.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        let offset = self.offset;
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(move |(j, &c)| (offset + j as i32, c))
    }

    /// Sum of the counts, `None` on overflow.
    pub(super) fn total(&self) -> Option<u64> {
        self.counts.iter().try_fold(0u64, |acc, &c| acc.checked_add(c))
    }

    /// Adds `n` (> 0) to bucket `index` (collapsed upwards if below the 4096-bucket window).
    pub(super) fn add(&mut self, index: i32, n: u64) {
        let floor = self.cover(index, index);
        let slot = (index.max(floor) - self.offset) as usize;
        if let Some(c) = self.counts.get_mut(slot) {
            *c = c.saturating_add(n);
        }
    }

    pub(super) fn merge(&mut self, other: &Store) {
        if other.counts.is_empty() {
            return;
        }
        let floor = self.cover(other.offset, other.last_index());
        for (index, n) in other.iter() {
            let slot = (index.max(floor) - self.offset) as usize;
            if let Some(c) = self.counts.get_mut(slot) {
                *c = c.saturating_add(n);
            }
        }
    }

    /// Widens the array to cover `lo ..= hi` (lo ≤ hi), collapsing what falls below the window
    /// of the [`MAX_BUCKETS`] highest indices into its first bucket. Returns that window's
    /// first index (the floor): the caller adds a count for index i to max(i, floor), which is
    /// then within the array. Afterwards the first or last count may be zero until the
    /// caller's add.
    fn cover(&mut self, lo: i32, hi: i32) -> i32 {
        if self.counts.is_empty() {
            let floor = hi - (MAX_BUCKETS_I32 - 1);
            self.offset = lo.max(floor);
            self.counts = vec![0; (hi - self.offset + 1) as usize];
            return floor;
        }
        let last = self.last_index();
        let new_last = last.max(hi);
        let floor = new_last - (MAX_BUCKETS_I32 - 1);
        if self.offset < floor {
            // Collapse the buckets below the floor into the floor bucket.
            let below = ((floor - self.offset) as usize).min(self.counts.len());
            let folded = self.counts.drain(..below).fold(0u64, |acc, c| acc.saturating_add(c));
            if self.counts.is_empty() {
                self.counts.push(0);
            }
            if let Some(first) = self.counts.first_mut() {
                *first = first.saturating_add(folded);
            }
            self.offset = floor;
        }
        let new_first = self.offset.min(lo.max(floor));
        let needed = (new_last - new_first + 1) as usize;
        self.reserve_for(needed);
        if new_first < self.offset {
            let grow = (self.offset - new_first) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = new_first;
        }
        if needed > self.counts.len() {
            self.counts.resize(needed, 0);
        }
        floor
    }

    /// Grows the capacity for `needed` (≤ MAX_BUCKETS) counts: doubling, but never beyond
    /// MAX_BUCKETS, so that the memory bound holds for the allocation too.
    fn reserve_for(&mut self, needed: usize) {
        if needed > self.counts.capacity() {
            let target = needed.max(2 * self.counts.len()).min(MAX_BUCKETS).max(needed);
            self.counts.reserve_exact(target - self.counts.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_BUCKETS;
    use crate::sketch::tests::{exact, rel_err, Rng};
    use crate::sketch::{LatencySketch, RELATIVE_ACCURACY};

    #[test]
    fn memory_is_bounded_and_collapse_is_order_independent() {
        // Values spread over ~10⁴⁰⁰: far more than 4096 buckets.
        let values: Vec<f64> = (0..20_000).map(|i| 10f64.powf(-200.0 + f64::from(i) * 0.02)).collect();
        let up: LatencySketch = values.iter().copied().collect();
        let down: LatencySketch = values.iter().rev().copied().collect();
        assert_eq!(up.positive.counts.len(), MAX_BUCKETS);
        assert_eq!(up.to_bytes(), down.to_bytes());
        let mut merged = LatencySketch::new();
        for chunk in values.chunks(777).rev() {
            merged.merge(&chunk.iter().copied().collect());
        }
        assert_eq!(merged.to_bytes(), up.to_bytes());
        assert_eq!(up.count(), 20_000);
        // The top of the range keeps its accuracy.
        let mut sorted = values;
        sorted.sort_unstable_by(f64::total_cmp);
        let (got, want) = (up.quantile(0.99).unwrap(), exact(&sorted, 0.99));
        assert!(rel_err(got, want) <= RELATIVE_ACCURACY * (1.0 + 1e-9));
        assert!(up.heap_size() <= MAX_BUCKETS * 8, "{}", up.heap_size());
    }

    #[test]
    fn typical_latency_sketch_is_a_few_kb() {
        // 1 µs .. 100 s, log-uniform.
        let mut rng = Rng::new(11);
        let s: LatencySketch = (0..50_000).map(|_| 10f64.powf(3.0 + 8.0 * rng.uniform())).collect();
        let n = s.to_bytes().len();
        assert!(n < 5_000, "{n} bytes");
        assert!(s.positive.counts.len() <= 1843);
    }
}
