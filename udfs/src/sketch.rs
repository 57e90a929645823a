//! [`LatencySketch`]: a mergeable quantile sketch with bounded relative error (DDSketch,
//! Masson, Rim & Lee, VLDB 2019), the data structure behind `latency_sketch`, `sketch_merge`
//! and `sketch_quantile`.
//!
//! # Accuracy
//!
//! Relative accuracy α = 0.005 ([`RELATIVE_ACCURACY`]), γ = (1 + α) / (1 − α) ≈ 1.01005.
//! A positive value x goes to the bucket with index i = ⌈log_γ(x)⌉, which holds the values in
//! (γ^(i−1), γ^i]; a bucket is reported as its representative 2γ^i / (γ + 1) = (1 − α)·γ^i,
//! which is within α of every value of the bucket. A negative value goes to the bucket
//! ⌈log_γ(−x)⌉ of a separate negative store (reported as the negated representative), and a zero
//! to a zero counter (reported as exactly 0). So every quantile is within 0.5 % of the exact
//! one (plus floating-point rounding, ~1e-15 relative), comfortably inside the 1 % the SQL
//! functions promise, as long as no bucket collapsed (see *Memory*).
//!
//! Non-finite values (NaN, ±∞) are ignored: they are not counted. `-0.0` is counted as `0.0`.
//!
//! # Quantile definition
//!
//! With the n counted values sorted as x₀ ≤ … ≤ xₙ₋₁, `quantile(q)` estimates the order
//! statistic x_r with r = ⌊q·(n − 1)⌋ (computed in f64), the lower of the two values that the
//! exact `percentile(value, q)` interpolates between (DDSketch's definition). The estimate is
//! the representative of the bucket holding x_r, clamped into [min, max]; the exact minimum and
//! maximum are kept, so `quantile(0.0)` is the minimum and `quantile(1.0)` the maximum, exactly.
//!
//! # Memory
//!
//! Each store (positive, negative) is a dense array of counts over the range of bucket indices
//! it has seen, at most [`MAX_BUCKETS`] = 4096 buckets wide: a value range of γ^4096 ≈ 6·10¹⁷
//! (e.g. 1 ns to 19 years) per sign. When a value would widen a store beyond that, the buckets
//! of the smallest magnitudes are collapsed into the lowest bucket that still fits, so those
//! values lose their accuracy guarantee (they are reported too high) while the count, the
//! min/max and all higher quantiles stay right. Hostile input thus costs at most
//! 2 × 4096 × 8 bytes = 64 KiB per sketch. Latencies from 1 µs to 100 s span 1843 buckets:
//! about 15 KiB in memory and 2–4 KB serialized.
//!
//! # Determinism
//!
//! The state depends only on the multiset of values added (collapsing keeps index
//! max(i, highest index − 4095) whatever the order), so the same values give the same bytes
//! whatever the insertion order or merge tree. `merge` is exact: merging the sketches of a
//! partition of the values gives the sketch of all values, bucket for bucket.
//!
//! # Serialization format, version 1
//!
//! "varint" is unsigned LEB128 (7 bits per byte, least significant group first, high bit set on
//! every byte but the last; at most 10 bytes; the shortest encoding is required), and
//! "zigzag varint" is the varint of the zigzag encoding of an i64 ((n << 1) ^ (n >> 63)).
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version: `0x01`. Version 1 implies α = 0.005, the index mapping ⌈ln(x) / ln γ⌉ and at most 4096 buckets per store |
//! | varint | `count`: number of values counted (= `zero_count` + the sum of all bucket counts) |
//! | varint | `zero_count`: number of values equal to zero |
//! | 8 | `min`: the smallest value, IEEE 754 binary64, little-endian (`+0.0` when `count` = 0) |
//! | 8 | `max`: the largest value, IEEE 754 binary64, little-endian (`+0.0` when `count` = 0) |
//! | zigzag varint | negative store `offset`: bucket index of its first count (index of ⌈log_γ(−x)⌉); 0 when empty |
//! | varint | negative store `len`: number of counts that follow, 0 ..= 4096 |
//! | `len` varints | negative store counts, for indices `offset`, `offset + 1`, …; the first and last are non-zero |
//! | zigzag varint | positive store `offset` (index ⌈log_γ(x)⌉); 0 when empty |
//! | varint | positive store `len`, 0 ..= 4096 |
//! | `len` varints | positive store counts, as for the negative store |
//!
//! Nothing follows. Bucket indices lie within ±75 000 (every finite f64 maps into
//! −74 443 ..= 70 978). The empty sketch is the 23 bytes
//! `01 00 00 | 00×8 | 00×8 | 00 00 | 00 00`. [`LatencySketch::from_bytes`] accepts only this
//! canonical form (shortest varints, `offset` 0 for an empty store, no zero count at either end
//! of a store, count = sum, finite min ≤ max that are not `-0.0`, signs of min/max consistent
//! with the stores and the zero count, no trailing bytes), so a decoded sketch re-encodes to
//! the same bytes. Later format versions must keep reading version 1, so that stored rollups
//! stay mergeable.

mod format;
mod store;

pub use format::SketchError;

use store::Store;

/// Format version written as the first byte of [`LatencySketch::to_bytes`].
pub const FORMAT_VERSION: u8 = 1;

/// Relative accuracy α of format version 1: every quantile is within α·|exact| of the exact
/// one (while no bucket has collapsed).
pub const RELATIVE_ACCURACY: f64 = 0.005;

/// Maximum number of buckets per store (positive values, negative values).
pub const MAX_BUCKETS: usize = 4096;

/// ln γ with γ = (1 + α) / (1 − α), α = 0.005 (0.0100000833345833556…). Written out so that
/// the bucket mapping is part of the format and doesn't depend on a platform's `ln`.
const LN_GAMMA: f64 = 0.010_000_083_334_583_356;

/// 1 / ln γ (99.99916666111103835…).
const INV_LN_GAMMA: f64 = 99.999_166_661_111_03;

/// A mergeable quantile sketch with relative error ≤ [`RELATIVE_ACCURACY`]; see the module
/// documentation for the accuracy, memory bound, quantile definition and byte format.
///
/// ```
/// use tracelake_udfs::sketch::LatencySketch;
/// let mut a = LatencySketch::new();
/// (1..=1000).for_each(|v| a.add(v as f64));
/// let p50 = a.quantile(0.5).unwrap_or_default(); // exact: 500 (rank ⌊0.5·999⌋ = 499)
/// assert!((p50 - 500.0).abs() <= 500.0 * 0.005);
/// let b = LatencySketch::from_bytes(&a.to_bytes()).unwrap_or_default();
/// assert_eq!(a, b);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencySketch {
    positive: Store,
    negative: Store,
    zero_count: u64,
    count: u64,
    /// The exact minimum; `0.0` while `count` is 0.
    min: f64,
    /// The exact maximum; `0.0` while `count` is 0.
    max: f64,
}

impl LatencySketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one value. NaN and ±∞ are ignored; `-0.0` counts as `0.0`.
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        // Normalizes -0.0, so that min/max (and the bytes) don't depend on the order of ±0.
        let value = if value == 0.0 { 0.0 } else { value };
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else if value < self.min {
            self.min = value;
        } else if value > self.max {
            self.max = value;
        }
        self.count = self.count.saturating_add(1);
        if value > 0.0 {
            self.positive.add(bucket_index(value), 1);
        } else if value < 0.0 {
            self.negative.add(bucket_index(-value), 1);
        } else {
            self.zero_count = self.zero_count.saturating_add(1);
        }
    }

    /// Adds every value of `other` to `self`: the result is the sketch of the union of both
    /// multisets, identical to adding all of the values to one sketch.
    pub fn merge(&mut self, other: &LatencySketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            if other.min < self.min {
                self.min = other.min;
            }
            if other.max > self.max {
                self.max = other.max;
            }
        }
        self.count = self.count.saturating_add(other.count);
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
    }

    /// The estimated quantile `q` (0 ≤ q ≤ 1) of the values: an estimate of the order statistic
    /// ⌊q·(n − 1)⌋ (0-based) within [`RELATIVE_ACCURACY`], clamped into [min, max];
    /// `quantile(0.0)` is the exact minimum and `quantile(1.0)` the exact maximum. `None` when
    /// the sketch is empty or `q` is outside [0, 1] (or NaN).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if q == 0.0 {
            return Some(self.min);
        }
        if q == 1.0 {
            return Some(self.max);
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let mut seen: u64 = 0;
        // Ascending values: negatives from the largest magnitude down, zeros, positives up.
        let mut estimate = None;
        for (index, count) in self.negative.iter().rev() {
            seen = seen.saturating_add(count);
            if seen > rank {
                estimate = Some(-representative(index));
                break;
            }
        }
        if estimate.is_none() {
            seen = seen.saturating_add(self.zero_count);
            if seen > rank {
                estimate = Some(0.0);
            }
        }
        if estimate.is_none() {
            for (index, count) in self.positive.iter() {
                seen = seen.saturating_add(count);
                if seen > rank {
                    estimate = Some(representative(index));
                    break;
                }
            }
        }
        Some(estimate.unwrap_or(self.max).clamp(self.min, self.max))
    }

    /// Number of values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value has been counted.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact smallest value, `None` when empty.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// The exact largest value, `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Bytes of heap memory held (bucket arrays), for memory accounting.
    pub fn heap_size(&self) -> usize {
        (self.positive.counts.capacity() + self.negative.counts.capacity()) * std::mem::size_of::<u64>()
    }
}

impl FromIterator<f64> for LatencySketch {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut sketch = Self::new();
        iter.into_iter().for_each(|v| sketch.add(v));
        sketch
    }
}

/// ⌈log_γ(x)⌉ for a finite x > 0: within −74 443 ..= 70 978.
fn bucket_index(x: f64) -> i32 {
    (x.ln() * INV_LN_GAMMA).ceil() as i32
}

/// The value reported for bucket `index`: (1 − α)·γ^index = 2γ^index / (γ + 1), within α of
/// every value of (γ^(index−1), γ^index]. Computed as exp(·)·(1 − α) so it doesn't overflow
/// before the final product (and the caller clamps into [min, max] anyway).
fn representative(index: i32) -> f64 {
    (f64::from(index) * LN_GAMMA).exp() * (1.0 - RELATIVE_ACCURACY)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// xorshift64* — a tiny deterministic PRNG so the tests need no `rand`.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in (0, 1).
        pub(crate) fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        /// Standard normal (Box–Muller).
        pub(crate) fn normal(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    /// Log-normal durations in ns: median 50 ms, σ = 1.
    pub(super) fn lognormal(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mu = (50e6f64).ln();
        (0..n).map(|_| (mu + rng.normal()).exp()).collect()
    }

    /// The exact order statistic ⌊q·(n − 1)⌋ of sorted values: the documented definition.
    pub(super) fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    pub(super) fn rel_err(got: f64, want: f64) -> f64 {
        ((got - want) / want).abs()
    }

    const QS: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

    fn check_accuracy(n: usize) {
        let values = lognormal(n, 42);
        let start = std::time::Instant::now();
        let sketch: LatencySketch = values.iter().copied().collect();
        let elapsed = start.elapsed();
        let mut sorted = values;
        sorted.sort_unstable_by(f64::total_cmp);
        for q in QS {
            let (got, want) = (sketch.quantile(q).unwrap(), exact(&sorted, q));
            let err = rel_err(got, want);
            eprintln!("n = {n}, q = {q}: sketch {got:.1}, exact {want:.1}, relative error {err:.6}");
            assert!(err <= 0.01, "q = {q}: {got} vs {want} ({err})");
            // The design bound, α = 0.5 %, with room for rounding only.
            assert!(err <= RELATIVE_ACCURACY * (1.0 + 1e-9), "q = {q}: {got} vs {want} ({err})");
        }
        eprintln!("add(): {n} values in {elapsed:?} ({:.0} ns/value), {} bytes", elapsed.as_nanos() as f64 / n as f64, sketch.to_bytes().len());
        assert_eq!(sketch.quantile(0.0), sorted.first().copied());
        assert_eq!(sketch.quantile(1.0), sorted.last().copied());
        assert_eq!(sketch.count(), n as u64);
    }

    /// 1M log-normal values (~1 s in a debug build, most of it generating and sorting).
    #[test]
    fn accuracy_lognormal_1m() {
        check_accuracy(1_000_000);
    }

    #[test]
    fn doc_example_holds() {
        // The example of `LatencySketch`'s doc comment.
        let mut a = LatencySketch::new();
        (1..=1000).for_each(|v| a.add(v as f64));
        let p50 = a.quantile(0.5).unwrap_or_default();
        assert!((p50 - 500.0).abs() <= 500.0 * 0.005);
        let b = LatencySketch::from_bytes(&a.to_bytes()).unwrap_or_default();
        assert_eq!(a, b);
    }

    #[test]
    fn every_quantile_of_a_small_set_is_within_bound() {
        // Integers 1..=1000 in scrambled order, and every q on a fine grid.
        let mut values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let mut rng = Rng::new(7);
        for i in (1..values.len()).rev() {
            values.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let sketch: LatencySketch = values.iter().copied().collect();
        values.sort_unstable_by(f64::total_cmp);
        for k in 0..=1000 {
            let q = f64::from(k) / 1000.0;
            let (got, want) = (sketch.quantile(q).unwrap(), exact(&values, q));
            assert!(rel_err(got, want) <= RELATIVE_ACCURACY * (1.0 + 1e-9), "q = {q}: {got} vs {want}");
        }
        // Hand-checked ranks: q = 0.5 → ⌊499.5⌋ = 499 → the 500th value, 500.
        assert!(rel_err(sketch.quantile(0.5).unwrap(), 500.0) <= 0.005);
        assert_eq!(sketch.quantile(0.0), Some(1.0));
        assert_eq!(sketch.quantile(1.0), Some(1000.0));
    }

    #[test]
    fn merge_is_exact_and_order_independent() {
        let values = lognormal(100_000, 3);
        let whole: LatencySketch = values.iter().copied().collect();
        let parts: Vec<LatencySketch> = values.chunks(10_000).map(|c| c.iter().copied().collect()).collect();
        assert_eq!(parts.len(), 10);

        let mut forward = LatencySketch::new();
        parts.iter().for_each(|p| forward.merge(p));
        let mut backward = LatencySketch::new();
        parts.iter().rev().for_each(|p| backward.merge(p));
        // A tree: pairs first, then the pairs in a scrambled order.
        let pairs: Vec<LatencySketch> = parts
            .chunks(2)
            .map(|c| {
                let mut s = c[1].clone();
                s.merge(&c[0]);
                s
            })
            .collect();
        let mut tree = pairs[3].clone();
        for i in [0, 4, 1, 2] {
            tree.merge(&pairs[i]);
        }
        assert_eq!(forward.to_bytes(), whole.to_bytes());
        assert_eq!(backward.to_bytes(), whole.to_bytes());
        assert_eq!(tree.to_bytes(), whole.to_bytes());
        assert_eq!(forward, whole);

        // Same values inserted in another order: same bytes.
        let mut sorted = values.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let from_sorted: LatencySketch = sorted.iter().rev().copied().collect();
        assert_eq!(from_sorted.to_bytes(), whole.to_bytes());

        for q in QS {
            let (got, want) = (forward.quantile(q).unwrap(), exact(&sorted, q));
            assert!(rel_err(got, want) <= 0.01, "q = {q}: {got} vs {want}");
        }
        // Merging an empty sketch, either way round, changes nothing.
        let mut e = LatencySketch::new();
        e.merge(&whole);
        e.merge(&LatencySketch::new());
        assert_eq!(e.to_bytes(), whole.to_bytes());
    }

    #[test]
    fn zeros_negatives_and_non_finite() {
        let mut s = LatencySketch::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            s.add(v);
        }
        assert!(s.is_empty());
        assert_eq!(s.quantile(0.5), None);
        assert_eq!((s.min(), s.max()), (None, None));

        // -100, -10, -0.0, 0, 0, 10, 100, 1000 → sorted ranks 0..=7.
        for v in [10.0, -0.0, 100.0, -10.0, 0.0, 1000.0, -100.0, 0.0] {
            s.add(v);
        }
        assert_eq!(s.count(), 8);
        assert_eq!(s.min(), Some(-100.0));
        assert_eq!(s.max(), Some(1000.0));
        // q·7: 0.2 → 1 → -10; 0.3 → 2 → 0; 0.5 → 3 → 0; 0.6 → 4 → 0; 0.75 → 5 → 10; 0.9 → 6 → 100.
        let cases = [(0.2, -10.0), (0.3, 0.0), (0.5, 0.0), (0.6, 0.0), (0.75, 10.0), (0.9, 100.0)];
        for (q, want) in cases {
            let got = s.quantile(q).unwrap();
            assert!((got - want).abs() <= want.abs() * RELATIVE_ACCURACY, "q = {q}: {got} vs {want}");
        }
        assert_eq!(s.quantile(0.0), Some(-100.0));
        assert_eq!(s.quantile(1.0), Some(1000.0));
        assert_eq!(s.quantile(1.5), None);
        assert_eq!(s.quantile(-0.1), None);
        assert_eq!(s.quantile(f64::NAN), None);
        // -0.0 and 0.0 are the same value: the order of insertion doesn't show in the bytes.
        let a: LatencySketch = [-0.0, 0.0].into_iter().collect();
        let b: LatencySketch = [0.0, -0.0].into_iter().collect();
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(LatencySketch::from_bytes(&a.to_bytes()), Ok(a));
    }

    #[test]
    fn single_value_and_clamping() {
        let s: LatencySketch = [123_456.0].into_iter().collect();
        // Every quantile of one value is that value, exactly (clamped into [min, max]).
        for q in [0.0, 0.001, 0.5, 0.999, 1.0] {
            assert_eq!(s.quantile(q), Some(123_456.0));
        }
        // Extremes of f64 don't overflow the mapping.
        let s: LatencySketch = [f64::MAX, f64::MIN_POSITIVE, 5e-324, -f64::MAX].into_iter().collect();
        assert_eq!(s.quantile(1.0), Some(f64::MAX));
        assert_eq!(s.quantile(0.0), Some(-f64::MAX));
        assert!(s.quantile(0.7).is_some_and(f64::is_finite));
        assert_eq!(LatencySketch::from_bytes(&s.to_bytes()).as_ref(), Ok(&s));
    }

    #[test]
    fn constants_match_their_definition() {
        // ln γ = ln(1 + α) − ln(1 − α), without the rounding of γ itself.
        let ln_gamma = RELATIVE_ACCURACY.ln_1p() - (-RELATIVE_ACCURACY).ln_1p();
        assert!((ln_gamma - LN_GAMMA).abs() <= 1e-17, "{ln_gamma}");
        assert!((1.0 / ln_gamma - INV_LN_GAMMA).abs() <= 1e-13, "{}", 1.0 / ln_gamma);
        let gamma = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
        assert!((2.0 / (gamma + 1.0) - (1.0 - RELATIVE_ACCURACY)).abs() <= 1e-15);
        assert_eq!(bucket_index(5e-324), -74_443);
        assert_eq!(bucket_index(f64::MAX), 70_978);
        assert_eq!(bucket_index(1.0), 0);
    }
}
