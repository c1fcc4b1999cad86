//! RDB primitives: length encoding, strings (raw, integer and LZF encoded),
//! millisecond times and doubles, read from a bounded cursor and written to
//! a buffer.

use super::{lzf, RdbError};

const LEN_6BIT: u8 = 0;
const LEN_14BIT: u8 = 1;
const LEN_32BIT: u8 = 0x80;
const LEN_64BIT: u8 = 0x81;
const ENCVAL: u8 = 3;
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// A cursor over a payload. Every read checks the bytes are there, so a
/// length field can never make it read or allocate past the input.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A length field, or the encoding tag of a specially encoded string.
enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        if n > self.remaining() {
            return Err(RdbError::BadFormat);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, RdbError> {
        Ok(self.take(1)?[0])
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_or_encoding(&mut self) -> Result<Len, RdbError> {
        let first = self.u8()?;
        Ok(match first >> 6 {
            LEN_6BIT => Len::Plain(u64::from(first & 0x3f)),
            LEN_14BIT => Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(self.u8()?)),
            ENCVAL => Len::Encoded(first & 0x3f),
            _ => match first {
                LEN_32BIT => Len::Plain(u64::from(u32::from_be_bytes(self.array()?))),
                LEN_64BIT => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => return Err(RdbError::BadFormat),
            },
        })
    }

    /// A length (element count, id part, ...).
    pub fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(RdbError::BadFormat),
        }
    }

    /// A byte count that must fit in what is left of the input.
    fn byte_len(&mut self, n: u64) -> Result<usize, RdbError> {
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(RdbError::BadFormat),
        }
    }

    /// A string in any of its encodings, as its bytes.
    pub fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.len_or_encoding()? {
            Len::Plain(n) => {
                let n = self.byte_len(n)?;
                Ok(self.take(n)?.to_vec())
            }
            Len::Encoded(ENC_INT8) => Ok((self.u8()? as i8).to_string().into_bytes()),
            Len::Encoded(ENC_INT16) => {
                Ok(i16::from_le_bytes(self.array()?).to_string().into_bytes())
            }
            Len::Encoded(ENC_INT32) => {
                Ok(i32::from_le_bytes(self.array()?).to_string().into_bytes())
            }
            Len::Encoded(ENC_LZF) => {
                let compressed = self.len()?;
                let plain = usize::try_from(self.len()?).map_err(|_| RdbError::BadFormat)?;
                let compressed = self.byte_len(compressed)?;
                lzf::decompress(self.take(compressed)?, plain)
            }
            Len::Encoded(_) => Err(RdbError::BadFormat),
        }
    }

    /// A millisecond Unix time (8 bytes, little-endian).
    pub fn millis(&mut self) -> Result<i64, RdbError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A binary double (ZSET_2).
    pub fn binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A double as old RDB versions wrote it (ZSET): a length byte with
    /// 253/254/255 for NaN/+inf/-inf, else that many ASCII bytes.
    pub fn string_double(&mut self) -> Result<f64, RdbError> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => parse_double(self.take(n as usize)?),
        }
    }
}

/// A double written as text (old zsets, listpack scores that are strings).
pub fn parse_double(text: &[u8]) -> Result<f64, RdbError> {
    let text = std::str::from_utf8(text).map_err(|_| RdbError::BadFormat)?;
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        "nan" | "-nan" => Ok(f64::NAN),
        _ => text.parse::<f64>().map_err(|_| RdbError::BadFormat),
    }
}

/// `bytes` as an i64 when it is the canonical decimal form of one (no
/// sign on zero, no leading zeros or '+'): the strings Redis stores as
/// integers.
pub fn canonical_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == bytes).then_some(n)
}

/// Appends RDB primitives to a buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub fn len(&mut self, n: u64) {
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf.push((LEN_14BIT << 6) | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else if let Ok(n) = u32::try_from(n) {
            self.buf.push(LEN_32BIT);
            self.buf.extend_from_slice(&n.to_be_bytes());
        } else {
            self.buf.push(LEN_64BIT);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// A string, integer-encoded where Redis would (canonical integers that
    /// fit 32 bits), raw otherwise.
    pub fn string(&mut self, s: &[u8]) {
        if s.len() <= 11 {
            if let Some(n) = canonical_int(s) {
                let tag = (ENCVAL << 6) | ENC_INT8;
                if let Ok(n) = i8::try_from(n) {
                    self.buf.push(tag);
                    self.buf.push(n as u8);
                    return;
                }
                if let Ok(n) = i16::try_from(n) {
                    self.buf.push(tag | ENC_INT16);
                    self.buf.extend_from_slice(&n.to_le_bytes());
                    return;
                }
                if let Ok(n) = i32::try_from(n) {
                    self.buf.push(tag | ENC_INT32);
                    self.buf.extend_from_slice(&n.to_le_bytes());
                    return;
                }
            }
        }
        self.raw_string(s);
    }

    /// A string written as-is (binary blobs such as listpacks and ids).
    pub fn raw_string(&mut self, s: &[u8]) {
        self.len(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    pub fn millis(&mut self, ms: i64) {
        self.buf.extend_from_slice(&ms.to_le_bytes());
    }

    pub fn binary_double(&mut self, d: f64) {
        self.buf.extend_from_slice(&d.to_le_bytes());
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_at_every_width() {
        for n in [
            0,
            63,
            64,
            16_383,
            16_384,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            let mut w = Writer::default();
            w.len(n);
            let mut r = Reader::new(&w.buf);
            assert_eq!(r.len().unwrap(), n);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn strings_round_trip_with_integer_encoding() {
        for s in [
            "",
            "0",
            "-1",
            "127",
            "-128",
            "128",
            "32767",
            "-32769",
            "2147483647",
            "2147483648",
            "007",
            "+1",
            "-0",
            "hello",
        ] {
            let mut w = Writer::default();
            w.string(s.as_bytes());
            let mut r = Reader::new(&w.buf);
            assert_eq!(r.string().unwrap(), s.as_bytes(), "{s}");
            assert!(r.is_empty());
        }
        let mut w = Writer::default();
        w.string(b"12");
        assert_eq!(w.buf, [0xc0, 12]);
    }

    #[test]
    fn string_longer_than_input_is_rejected() {
        assert_eq!(
            Reader::new(&[0x05, b'a']).string(),
            Err(RdbError::BadFormat)
        );
        assert_eq!(
            Reader::new(&[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).string(),
            Err(RdbError::BadFormat)
        );
    }
}
