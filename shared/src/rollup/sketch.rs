//! Distinct visitors of an hour, mergeable across hours, in bounded space.
//!
//! Daily visitors are exact (one mark per visitor and day). The 24-hour view needs distinct
//! visitors over 24 or 25 hourly buckets, and exactness there would mean reading every hourly
//! visitor. So each hourly rollup keeps a sketch instead:
//!
//! - up to [`EXACT_MAX`] visitors, the exact set of their 64-bit hash prefixes — small sites
//!   and quiet hours get exact figures;
//! - beyond that, a HyperLogLog with 2^14 one-byte registers (16 KiB), whose standard error is
//!   1.04/√16384 = 0.81 %, so 2 % is about 2.5 standard errors. The estimate is Ertl's improved
//!   raw estimator ("New cardinality estimation algorithms for HyperLogLog sketches", 2017),
//!   which needs no empirical bias tables and stays unbiased from small to large counts.
//!
//! Merging is a set union or a register-wise maximum: applying the same visitor twice changes
//! nothing, which keeps a replayed flush harmless.

use super::codec::{DecodeError, Reader, put_varint};

/// Most visitors kept as an exact set.
pub const EXACT_MAX: usize = 1024;
const P: u32 = 14;
const M: usize = 1 << P;
/// Bits of the hash left after the register index.
const Q: u32 = 64 - P;

const TAG_EXACT: u8 = 0;
const TAG_HLL: u8 = 1;

/// A visitor sketch; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitorSketch {
    /// Sorted, distinct 64-bit visitor hashes.
    Exact(Vec<u64>),
    /// HyperLogLog registers.
    Hll(Box<[u8]>),
}

impl Default for VisitorSketch {
    fn default() -> Self {
        Self::Exact(Vec::new())
    }
}

/// The 64-bit hash of a visitor id. The id is itself a hash, but hashing it again costs
/// nothing that matters and keeps the sketch sound whatever the id's shape.
pub fn visitor_hash64(visitor: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(visitor.as_bytes());
    u64::from_le_bytes(h[..8].try_into().unwrap_or_default())
}

impl VisitorSketch {
    pub fn insert(&mut self, h: u64) {
        match self {
            Self::Exact(set) => {
                if let Err(at) = set.binary_search(&h) {
                    set.insert(at, h);
                }
                if set.len() > EXACT_MAX {
                    self.promote();
                }
            }
            Self::Hll(regs) => add_to_registers(regs, h),
        }
    }

    pub fn merge(&mut self, other: &VisitorSketch) {
        match other {
            Self::Exact(set) => set.iter().for_each(|&h| self.insert(h)),
            Self::Hll(theirs) => {
                self.promote();
                if let Self::Hll(ours) = self {
                    for (a, b) in ours.iter_mut().zip(theirs.iter()) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
    }

    /// Distinct visitors: exact for an exact set, an estimate otherwise.
    pub fn count(&self) -> u64 {
        match self {
            Self::Exact(set) => set.len() as u64,
            Self::Hll(regs) => estimate(regs).round() as u64,
        }
    }

    fn promote(&mut self) {
        if let Self::Exact(set) = self {
            let mut regs = vec![0_u8; M].into_boxed_slice();
            for &h in set.iter() {
                add_to_registers(&mut regs, h);
            }
            *self = Self::Hll(regs);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Exact(set) => {
                let mut out = Vec::with_capacity(2 + set.len() * 9);
                out.push(TAG_EXACT);
                put_varint(&mut out, set.len() as u64);
                // Sorted, so deltas; random hashes barely compress, but it is free.
                let mut prev = 0_u64;
                for &h in set {
                    put_varint(&mut out, h - prev);
                    prev = h;
                }
                out
            }
            Self::Hll(regs) => {
                let mut out = Vec::with_capacity(1 + M);
                out.push(TAG_HLL);
                out.extend_from_slice(regs);
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "visitor sketch");
        let sketch = match r.u8()? {
            TAG_EXACT => {
                let n = r.len(EXACT_MAX)?;
                let mut set = Vec::with_capacity(n);
                let mut prev = 0_u64;
                for i in 0..n {
                    let delta = r.varint()?;
                    if i > 0 && delta == 0 {
                        return Err(DecodeError::new("visitor sketch", "hashes not distinct"));
                    }
                    prev = prev.checked_add(delta).ok_or_else(|| DecodeError::new("visitor sketch", "hash overflow"))?;
                    set.push(prev);
                }
                Self::Exact(set)
            }
            TAG_HLL => {
                let regs = r.bytes(M)?;
                if regs.iter().any(|&v| u32::from(v) > Q + 1) {
                    return Err(DecodeError::new("visitor sketch", "register out of range"));
                }
                Self::Hll(regs.to_vec().into_boxed_slice())
            }
            tag => return Err(DecodeError::new("visitor sketch", format!("unknown tag {tag}"))),
        };
        r.finish()?;
        Ok(sketch)
    }
}

fn add_to_registers(regs: &mut [u8], h: u64) {
    let index = (h >> Q) as usize;
    let rest = h << P;
    let rank = rest.leading_zeros().min(Q) + 1;
    if let Some(r) = regs.get_mut(index) {
        *r = (*r).max(rank as u8);
    }
}

/// Ertl's improved raw estimator.
fn estimate(regs: &[u8]) -> f64 {
    let m = M as f64;
    let mut c = [0_u32; Q as usize + 2];
    for &v in regs {
        c[usize::from(v).min(Q as usize + 1)] += 1;
    }
    if c[0] as usize == M {
        return 0.0;
    }
    let mut z = m * tau(1.0 - f64::from(c[Q as usize + 1]) / m);
    for k in (1..=Q as usize).rev() {
        z += f64::from(c[k]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(c[0]) / m);
    let alpha_inf = 0.5 / std::f64::consts::LN_2;
    alpha_inf * m * m / z
}

fn sigma(mut x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: well-spread test hashes from a counter.
    fn spread(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn small_counts_are_exact_and_repeats_change_nothing() {
        let mut s = VisitorSketch::default();
        for i in 0..1000 {
            s.insert(spread(i));
            s.insert(spread(i));
        }
        assert_eq!(s.count(), 1000);
        assert!(matches!(s, VisitorSketch::Exact(_)));
    }

    #[test]
    fn large_counts_stay_within_two_percent() {
        for n in [1_500_u64, 10_000, 20_000, 100_000, 1_000_000] {
            let mut s = VisitorSketch::default();
            for i in 0..n {
                s.insert(spread(i + n * 7));
            }
            let got = s.count() as f64;
            let err = (got - n as f64).abs() / n as f64;
            assert!(err < 0.02, "case {n}: estimate {got}, error {:.2}%", err * 100.0);
        }
    }

    #[test]
    fn merging_hours_counts_a_visitor_once() {
        // 30,000 visitors over two hours, 10,000 of them in both.
        let (mut h1, mut h2) = (VisitorSketch::default(), VisitorSketch::default());
        for i in 0..20_000 {
            h1.insert(spread(i));
        }
        for i in 10_000..30_000 {
            h2.insert(spread(i));
        }
        let mut both = VisitorSketch::default();
        both.merge(&h1);
        both.merge(&h2);
        let err = (both.count() as f64 - 30_000.0).abs() / 30_000.0;
        assert!(err < 0.02, "estimate {}", both.count());
        // Exact sets merge exactly.
        let (mut a, mut b) = (VisitorSketch::default(), VisitorSketch::default());
        (0..300).for_each(|i| a.insert(spread(i)));
        (200..500).for_each(|i| b.insert(spread(i)));
        a.merge(&b);
        assert_eq!(a.count(), 500);
    }

    #[test]
    fn encoding_round_trips_and_damage_is_an_error() {
        let mut exact = VisitorSketch::default();
        (0..50).for_each(|i| exact.insert(spread(i)));
        let mut hll = VisitorSketch::default();
        (0..5000).for_each(|i| hll.insert(spread(i)));
        for s in [&exact, &hll, &VisitorSketch::default()] {
            let bytes = s.encode();
            assert_eq!(&VisitorSketch::decode(&bytes).expect("decodes"), s);
            if bytes.len() > 2 {
                assert!(VisitorSketch::decode(&bytes[..bytes.len() - 1]).is_err());
            }
        }
        assert!(VisitorSketch::decode(&[7]).is_err(), "unknown tag");
        assert!(hll.encode().len() <= 1 + M, "bounded");
    }

    #[test]
    fn visitor_ids_of_any_shape_spread_over_the_registers() {
        // Ids sharing a long prefix must not collapse onto one hash.
        let mut s = VisitorSketch::default();
        for i in 0..5000_u64 {
            s.insert(visitor_hash64(&format!("{i:032x}")));
        }
        let err = (s.count() as f64 - 5000.0).abs() / 5000.0;
        assert!(err < 0.02, "estimate {}", s.count());
    }
}
