//! The compact binary encoding of rollup bodies: unsigned LEB128 varints and length-prefixed
//! byte strings. Decoding checks every length against what is left, so a damaged document is
//! an error, never a panic or a silent zero.

/// A rollup body that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rollup document {what}: {reason}")]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: String,
}

impl DecodeError {
    pub fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self { what, reason: reason.into() }
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads from the front of a byte slice.
pub struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { rest: bytes, what }
    }

    fn err(&self, reason: &str) -> DecodeError {
        DecodeError::new(self.what, reason)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.rest.split_first().ok_or_else(|| self.err("truncated"))?;
        self.rest = rest;
        Ok(b)
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// A varint that must fit in `usize` and be at most `max`.
    pub fn len(&mut self, max: usize) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        usize::try_from(v).ok().filter(|n| *n <= max).ok_or_else(|| self.err("length out of range"))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(self.err("truncated"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    pub fn string(&mut self, max: usize) -> Result<String, DecodeError> {
        let n = self.len(max)?;
        let raw = self.bytes(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() { Ok(()) } else { Err(self.err("trailing bytes")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [0, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out, "test");
            assert_eq!(r.varint().expect("decodes"), v, "case {v}");
            r.finish().expect("nothing left");
        }
    }

    #[test]
    fn truncated_and_oversized_input_is_an_error() {
        assert!(Reader::new(&[0x80], "t").varint().is_err(), "continuation without a next byte");
        assert!(Reader::new(&[0xff; 11], "t").varint().is_err(), "eleven continuation bytes");
        let mut out = Vec::new();
        put_bytes(&mut out, b"hello");
        assert!(Reader::new(&out[..4], "t").string(100).is_err(), "cut string");
        assert!(Reader::new(&out, "t").string(3).is_err(), "longer than allowed");
        assert!(Reader::new(&[1, 0xff], "t").string(10).is_err(), "not UTF-8");
    }
}
