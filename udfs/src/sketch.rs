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

use std::fmt;

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

/// Bucket indices must lie in `-INDEX_LIMIT ..= INDEX_LIMIT`.
const INDEX_LIMIT: i64 = 75_000;

const MAX_BUCKETS_I32: i32 = MAX_BUCKETS as i32;

/// Why [`LatencySketch::from_bytes`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SketchError {
    /// The input is empty.
    Empty,
    /// The first byte is not a known format version.
    UnsupportedVersion(u8),
    /// The input ends in the middle of the named field.
    Truncated(&'static str),
    /// The named varint is longer than 10 bytes, overflows 64 bits, or is not in shortest form.
    BadVarint(&'static str),
    /// A field holds a value the format doesn't allow; the text says which.
    Invalid(String),
    /// Bytes follow the last field.
    TrailingBytes(usize),
}

impl fmt::Display for SketchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty input"),
            Self::UnsupportedVersion(v) => {
                write!(f, "unsupported format version {v} (this build reads version {FORMAT_VERSION})")
            }
            Self::Truncated(field) => write!(f, "truncated input (in {field})"),
            Self::BadVarint(field) => write!(f, "malformed varint in {field}"),
            Self::Invalid(what) => write!(f, "{what}"),
            Self::TrailingBytes(n) => write!(f, "{n} unexpected trailing byte(s)"),
        }
    }
}

impl std::error::Error for SketchError {}

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

    /// The serialized sketch, in the format of the module documentation (version 1).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(23 + 2 * (self.positive.counts.len() + self.negative.counts.len()));
        out.push(FORMAT_VERSION);
        put_varint(&mut out, self.count);
        put_varint(&mut out, self.zero_count);
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        for store in [&self.negative, &self.positive] {
            put_varint(&mut out, zigzag(i64::from(store.offset)));
            put_varint(&mut out, store.counts.len() as u64);
            for &c in &store.counts {
                put_varint(&mut out, c);
            }
        }
        out
    }

    /// Parses bytes written by [`Self::to_bytes`], validating every field; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let Some((&version, rest)) = bytes.split_first() else { return Err(SketchError::Empty) };
        if version != FORMAT_VERSION {
            return Err(SketchError::UnsupportedVersion(version));
        }
        let mut r = Reader { bytes: rest };
        let count = r.varint("count")?;
        let zero_count = r.varint("zero count")?;
        let min = r.f64("min")?;
        let max = r.f64("max")?;
        let negative = r.store("negative store")?;
        let positive = r.store("positive store")?;
        if !r.bytes.is_empty() {
            return Err(SketchError::TrailingBytes(r.bytes.len()));
        }
        let invalid = |what: String| Err(SketchError::Invalid(what));
        let total = [negative.total(), positive.total()]
            .into_iter()
            .try_fold(zero_count, |acc, t| t.and_then(|t| acc.checked_add(t)));
        if total != Some(count) {
            return invalid(format!("count {count} is not the sum of the zero count and the bucket counts"));
        }
        if count == 0 {
            if min.to_bits() != 0 || max.to_bits() != 0 {
                return invalid("an empty sketch must have min = max = +0.0".to_string());
            }
        } else {
            if !min.is_finite() || !max.is_finite() || min > max {
                return invalid(format!("min {min} and max {max} must be finite with min <= max"));
            }
            if min.to_bits() == (-0.0f64).to_bits() || max.to_bits() == (-0.0f64).to_bits() {
                return invalid("min and max must not be -0.0".to_string());
            }
            let has_zero = zero_count > 0;
            if (min < 0.0) != !negative.counts.is_empty()
                || (max > 0.0) != !positive.counts.is_empty()
                || (has_zero && !(min <= 0.0 && max >= 0.0))
                || ((min == 0.0 || max == 0.0) && !has_zero)
            {
                return invalid(format!("min {min} and max {max} disagree with the buckets' signs"));
            }
        }
        Ok(Self { positive, negative, zero_count, count, min, max })
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

/// Dense counts for the bucket indices `offset ..= offset + counts.len() - 1`.
///
/// Invariants: empty (then `offset` is 0), or `1 ..= MAX_BUCKETS` counts of which the first
/// and the last are non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Store {
    offset: i32,
    counts: Vec<u64>,
}

impl Store {
    /// Index of the last bucket; only meaningful when not empty.
    fn last_index(&self) -> i32 {
        self.offset + self.counts.len() as i32 - 1
    }

    /// Non-zero buckets as (index, count), ascending by index.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        let offset = self.offset;
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(move |(j, &c)| (offset + j as i32, c))
    }

    /// Sum of the counts, `None` on overflow.
    fn total(&self) -> Option<u64> {
        self.counts.iter().try_fold(0u64, |acc, &c| acc.checked_add(c))
    }

    /// Adds `n` (> 0) to bucket `index` (collapsed upwards if below the 4096-bucket window).
    fn add(&mut self, index: i32, n: u64) {
        let floor = self.cover(index, index);
        let slot = (index.max(floor) - self.offset) as usize;
        if let Some(c) = self.counts.get_mut(slot) {
            *c = c.saturating_add(n);
        }
    }

    fn merge(&mut self, other: &Store) {
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

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn varint(&mut self, field: &'static str) -> Result<u64, SketchError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.bytes.split_first() else { return Err(SketchError::Truncated(field)) };
            self.bytes = rest;
            let bits = u64::from(b & 0x7f);
            // The 10th byte holds bit 63 only.
            if i == 9 && b > 1 {
                return Err(SketchError::BadVarint(field));
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                // Shortest form: a multi-byte varint doesn't end in a zero group.
                if i > 0 && b == 0 {
                    return Err(SketchError::BadVarint(field));
                }
                return Ok(value);
            }
        }
        Err(SketchError::BadVarint(field))
    }

    fn f64(&mut self, field: &'static str) -> Result<f64, SketchError> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<8>() else {
            return Err(SketchError::Truncated(field));
        };
        self.bytes = rest;
        Ok(f64::from_le_bytes(*head))
    }

    fn store(&mut self, field: &'static str) -> Result<Store, SketchError> {
        let offset = unzigzag(self.varint(field)?);
        let len = self.varint(field)?;
        if len > MAX_BUCKETS as u64 {
            return Err(SketchError::Invalid(format!("{field}: {len} buckets, more than {MAX_BUCKETS}")));
        }
        if len == 0 {
            if offset != 0 {
                return Err(SketchError::Invalid(format!("{field}: empty but offset {offset}")));
            }
            return Ok(Store::default());
        }
        // `offset` is any i64 here: bound it before adding to it.
        let last = offset.clamp(-INDEX_LIMIT - 1, INDEX_LIMIT + 1) + len as i64 - 1;
        if offset < -INDEX_LIMIT || last > INDEX_LIMIT {
            return Err(SketchError::Invalid(format!(
                "{field}: bucket indices {offset}..={last} outside ±{INDEX_LIMIT}"
            )));
        }
        let counts = (0..len).map(|_| self.varint(field)).collect::<Result<Vec<u64>, _>>()?;
        if counts.first() == Some(&0) || counts.last() == Some(&0) {
            return Err(SketchError::Invalid(format!("{field}: first and last bucket counts must be non-zero")));
        }
        Ok(Store { offset: offset as i32, counts })
    }
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
    fn lognormal(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mu = (50e6f64).ln();
        (0..n).map(|_| (mu + rng.normal()).exp()).collect()
    }

    /// The exact order statistic ⌊q·(n − 1)⌋ of sorted values: the documented definition.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn rel_err(got: f64, want: f64) -> f64 {
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

    #[test]
    fn serialization_round_trip_and_layout() {
        let empty = LatencySketch::new().to_bytes();
        let mut want = vec![1, 0, 0];
        want.extend([0; 16]);
        want.extend([0, 0, 0, 0]);
        assert_eq!(empty, want);
        assert_eq!(LatencySketch::from_bytes(&empty), Ok(LatencySketch::new()));

        // Two values, 1.0 (index ⌈0⌉ = 0) and 2.0 (⌈ln 2 / ln γ⌉ = ⌈69.31…⌉ = 70), worked by hand:
        let s: LatencySketch = [1.0, 2.0].into_iter().collect();
        let bytes = s.to_bytes();
        let mut want = vec![1, 2, 0];
        want.extend(1.0f64.to_le_bytes());
        want.extend(2.0f64.to_le_bytes());
        want.extend([0, 0]); // negative store: offset 0, 0 buckets
        want.extend([0, 71]); // positive store: offset zigzag(0) = 0, 71 buckets
        want.push(1);
        want.extend([0; 69]);
        want.push(1);
        assert_eq!(bytes, want);
        assert_eq!(LatencySketch::from_bytes(&bytes), Ok(s));

        // A negative offset: 0.5 → index ⌈−69.31…⌉ = −69, zigzag 137 = varint 0x89 0x01.
        let s: LatencySketch = [0.5].into_iter().collect();
        let bytes = s.to_bytes();
        assert_eq!(&bytes[19..], &[0, 0, 0x89, 0x01, 1, 1]);

        let values = lognormal(10_000, 5);
        let s: LatencySketch = values.into_iter().collect();
        let bytes = s.to_bytes();
        let back = LatencySketch::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn version_byte_is_checked() {
        let mut bytes = LatencySketch::from_iter([1.0, 2.0]).to_bytes();
        assert_eq!(bytes[0], FORMAT_VERSION);
        bytes[0] = 2;
        assert_eq!(LatencySketch::from_bytes(&bytes), Err(SketchError::UnsupportedVersion(2)));
        bytes[0] = 0;
        assert!(LatencySketch::from_bytes(&bytes).is_err());
        assert_eq!(LatencySketch::from_bytes(&[]), Err(SketchError::Empty));
        assert!(LatencySketch::from_bytes(&[0x00, 0xff]).is_err());
    }

    #[test]
    fn invalid_fields_are_rejected() {
        let good = LatencySketch::from_iter([-3.0, 0.0, 1.0, 2.0]).to_bytes();
        assert!(LatencySketch::from_bytes(&good).is_ok());
        // Trailing byte.
        let mut b = good.clone();
        b.push(0);
        assert_eq!(LatencySketch::from_bytes(&b), Err(SketchError::TrailingBytes(1)));
        // Wrong count.
        let mut b = good.clone();
        b[1] = 5;
        assert!(LatencySketch::from_bytes(&b).is_err());
        // Overlong varint for count: 0x84 0x00 instead of 0x04.
        let mut b = good.clone();
        b.splice(1..2, [0x84, 0x00]);
        assert_eq!(LatencySketch::from_bytes(&b), Err(SketchError::BadVarint("count")));
        // min > max, NaN min, -0.0 min.
        for min in [5.0, f64::NAN, -0.0, f64::NEG_INFINITY] {
            let mut b = good.clone();
            b[3..11].copy_from_slice(&f64::to_le_bytes(min));
            assert!(LatencySketch::from_bytes(&b).is_err(), "min {min}");
        }
        // Empty sketch with a non-zero min.
        let mut b = LatencySketch::new().to_bytes();
        b[3..11].copy_from_slice(&1.0f64.to_le_bytes());
        assert!(LatencySketch::from_bytes(&b).is_err());
        // Too many buckets, index out of range, zero end bucket.
        let mut head = vec![1, 1, 0];
        head.extend(1.0f64.to_le_bytes());
        head.extend(1.0f64.to_le_bytes());
        head.extend([0, 0]);
        let mut b = head.clone();
        put_varint(&mut b, 0);
        put_varint(&mut b, 4097);
        b.extend(std::iter::repeat_n(1, 4097));
        assert!(matches!(LatencySketch::from_bytes(&b), Err(SketchError::Invalid(_))));
        let mut b = head.clone();
        put_varint(&mut b, zigzag(80_000));
        b.extend([1, 1]);
        assert!(matches!(LatencySketch::from_bytes(&b), Err(SketchError::Invalid(_))));
        for huge in [i64::MAX, i64::MIN, i64::MAX - 1] {
            let mut b = head.clone();
            put_varint(&mut b, zigzag(huge));
            b.extend([0x80, 0x20]); // 4096 buckets
            b.extend(std::iter::repeat_n(1, 4096));
            assert!(matches!(LatencySketch::from_bytes(&b), Err(SketchError::Invalid(_))), "{huge}");
        }
        let mut b = head.clone();
        b.extend([0, 2, 1, 0]);
        assert!(matches!(LatencySketch::from_bytes(&b), Err(SketchError::Invalid(_))));
        let mut b = head;
        b.extend([0, 1, 1]);
        assert_eq!(LatencySketch::from_bytes(&b), Ok(LatencySketch::from_iter([1.0])));
    }

    #[test]
    fn truncated_and_random_bytes_never_panic() {
        let s: LatencySketch = lognormal(5_000, 9).into_iter().chain([0.0, -7.5]).collect();
        let bytes = s.to_bytes();
        for len in 0..bytes.len() {
            assert!(LatencySketch::from_bytes(&bytes[..len]).is_err(), "prefix of {len} bytes accepted");
        }
        let mut rng = Rng::new(99);
        let mut accepted = 0;
        for i in 0..10_000 {
            let len = (rng.next_u64() % 64) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if i % 2 == 0 && !b.is_empty() {
                b[0] = FORMAT_VERSION; // get past the version check half of the time
            }
            if let Ok(s) = LatencySketch::from_bytes(&b) {
                accepted += 1;
                // Whatever is accepted is canonical and usable.
                assert_eq!(s.to_bytes(), b);
                let _ = s.quantile(0.5);
            }
        }
        // Random mutations of a valid sketch: decode, and if accepted, quantiles stay in range.
        for _ in 0..10_000 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.next_u64() % 3 {
                let at = (rng.next_u64() as usize) % b.len();
                b[at] = rng.next_u64() as u8;
            }
            if let Ok(s) = LatencySketch::from_bytes(&b) {
                accepted += 1;
                assert_eq!(s.to_bytes(), b);
                let (lo, hi) = (s.min().unwrap_or(0.0), s.max().unwrap_or(0.0));
                for q in [0.0, 0.3, 0.99, 1.0] {
                    assert!(s.quantile(q).is_none_or(|v| lo <= v && v <= hi));
                }
                let mut m = s.clone();
                m.merge(&s);
                if let Some(twice) = s.count().checked_mul(2) {
                    assert_eq!(m.count(), twice);
                }
            }
        }
        eprintln!("accepted {accepted} of 20000 random inputs");
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
