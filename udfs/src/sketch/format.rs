//! The byte format of [`LatencySketch`] (version 1, specified in the [`sketch`](super) module
//! documentation): [`LatencySketch::to_bytes`], [`LatencySketch::from_bytes`], the varints they
//! use and [`SketchError`].

use std::fmt;

use super::store::Store;
use super::{FORMAT_VERSION, LatencySketch, MAX_BUCKETS};

/// Bucket indices must lie in `-INDEX_LIMIT ..= INDEX_LIMIT`.
const INDEX_LIMIT: i64 = 75_000;

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

impl LatencySketch {
    /// The serialized sketch, in the format of the [module documentation](super) (version 1).
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
            if (min < 0.0) == negative.counts.is_empty()
                || (max > 0.0) == positive.counts.is_empty()
                || (has_zero && !(min <= 0.0 && max >= 0.0))
                || ((min == 0.0 || max == 0.0) && !has_zero)
            {
                return invalid(format!("min {min} and max {max} disagree with the buckets' signs"));
            }
        }
        Ok(Self { positive, negative, zero_count, count, min, max })
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
mod tests {
    use super::*;
    use crate::sketch::tests::{Rng, lognormal};

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
}
