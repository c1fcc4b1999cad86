//! `cmsgpack.unpack`'s decoding: MessagePack bytes to [`Decoded`] values,
//! as lua-cmsgpack reads them (no ext types; 0xc1 is refused). Built before
//! touching Lua, so a decoding error leaves nothing half-made, and bounded
//! on hostile input: nesting is limited and no reservation is sized from a
//! declared length beyond the bytes actually present.

/// Decoding nesting limit (hostile input: one byte per level). Decoding
/// and the conversion to Lua recurse once per level: 1000 levels overflowed
/// a 2 MiB thread stack in a debug build (a test thread; script threads
/// have the same default), so 200 it is. lua-cmsgpack's own packer never
/// nests deeper than 16.
pub const MAX_DECODE_DEPTH: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends inside an object.
    Eof,
    /// A byte that starts no object lua-cmsgpack knows.
    BadFormat,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Nil,
    Bool(bool),
    Number(f64),
    Bytes(Vec<u8>),
    Array(Vec<Decoded>),
    Map(Vec<(Decoded, Decoded)>),
}

/// Reads objects one after another from a byte string.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Decodes the next object.
    pub fn next_value(&mut self) -> Result<Decoded, DecodeError> {
        decode(self, 0)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Eof)?;
        let bytes = self.data.get(self.pos..end).ok_or(DecodeError::Eof)?;
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
}

fn decode(c: &mut Cursor<'_>, depth: usize) -> Result<Decoded, DecodeError> {
    if depth > MAX_DECODE_DEPTH {
        return Err(DecodeError::BadFormat);
    }
    let tag = c.take(1)?[0];
    let container = |c: &mut Cursor<'_>, len: u64, map: bool| -> Result<Decoded, DecodeError> {
        // Every element takes at least one byte: bound the reservation.
        let left = (c.data.len() - c.pos) as u64;
        let cap = len.min(left) as usize;
        if map {
            let mut items = Vec::with_capacity(cap / 2);
            for _ in 0..len {
                let k = decode(c, depth + 1)?;
                let v = decode(c, depth + 1)?;
                items.push((k, v));
            }
            Ok(Decoded::Map(items))
        } else {
            let mut items = Vec::with_capacity(cap);
            for _ in 0..len {
                items.push(decode(c, depth + 1)?);
            }
            Ok(Decoded::Array(items))
        }
    };
    let bytes = |c: &mut Cursor<'_>, len: u64| -> Result<Decoded, DecodeError> {
        let len = usize::try_from(len).map_err(|_| DecodeError::Eof)?;
        Ok(Decoded::Bytes(c.take(len)?.to_vec()))
    };
    Ok(match tag {
        0x00..=0x7f => Decoded::Number(f64::from(tag)),
        0x80..=0x8f => container(c, u64::from(tag & 0x0f), true)?,
        0x90..=0x9f => container(c, u64::from(tag & 0x0f), false)?,
        0xa0..=0xbf => bytes(c, u64::from(tag & 0x1f))?,
        0xc0 => Decoded::Nil,
        0xc2 => Decoded::Bool(false),
        0xc3 => Decoded::Bool(true),
        0xc4 | 0xd9 => {
            let n = c.uint(1)?;
            bytes(c, n)?
        }
        0xc5 | 0xda => {
            let n = c.uint(2)?;
            bytes(c, n)?
        }
        0xc6 | 0xdb => {
            let n = c.uint(4)?;
            bytes(c, n)?
        }
        0xca => Decoded::Number(f64::from(f32::from_bits(c.uint(4)? as u32))),
        0xcb => Decoded::Number(f64::from_bits(c.uint(8)?)),
        0xcc => Decoded::Number(c.uint(1)? as f64),
        0xcd => Decoded::Number(c.uint(2)? as f64),
        0xce => Decoded::Number(c.uint(4)? as f64),
        0xcf => Decoded::Number(c.uint(8)? as f64),
        0xd0 => Decoded::Number(f64::from(c.uint(1)? as u8 as i8)),
        0xd1 => Decoded::Number(f64::from(c.uint(2)? as u16 as i16)),
        0xd2 => Decoded::Number(f64::from(c.uint(4)? as u32 as i32)),
        0xd3 => Decoded::Number(c.uint(8)? as i64 as f64),
        0xdc => {
            let n = c.uint(2)?;
            container(c, n, false)?
        }
        0xdd => {
            let n = c.uint(4)?;
            container(c, n, false)?
        }
        0xde => {
            let n = c.uint(2)?;
            container(c, n, true)?
        }
        0xdf => {
            let n = c.uint(4)?;
            container(c, n, true)?
        }
        0xe0..=0xff => Decoded::Number(f64::from(tag as i8)),
        // 0xc1 (never used) and the ext family, which lua-cmsgpack lacks.
        _ => return Err(DecodeError::BadFormat),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Decoded, DecodeError> {
        Cursor::new(bytes).next_value()
    }

    #[test]
    fn decodes_scalars_and_containers() {
        assert_eq!(one(&[0x01]), Ok(Decoded::Number(1.0)));
        assert_eq!(one(&[0xff]), Ok(Decoded::Number(-1.0)));
        assert_eq!(
            one(&[0xa3, b'a', b'b', b'c']),
            Ok(Decoded::Bytes(b"abc".to_vec()))
        );
        assert_eq!(
            one(&[0x92, 0xc0, 0xc3]),
            Ok(Decoded::Array(vec![Decoded::Nil, Decoded::Bool(true)]))
        );
        assert_eq!(
            one(&[0x81, 0x01, 0x02]),
            Ok(Decoded::Map(vec![(
                Decoded::Number(1.0),
                Decoded::Number(2.0)
            )]))
        );
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert_eq!(one(&[0x93, 0x01]), Err(DecodeError::Eof));
        assert_eq!(one(&[0xc1]), Err(DecodeError::BadFormat));
        // Four billion elements declared, none present: no huge reservation.
        assert_eq!(one(&[0xdd, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::Eof));
        // Regression: 5000 nested one-element arrays overflowed the stack
        // of this test thread (debug build) at the old limit of 1000.
        assert_eq!(one(&[0x91; 5000]), Err(DecodeError::BadFormat));
        let mut deepest = vec![0x91; MAX_DECODE_DEPTH];
        deepest.push(0xc0);
        assert!(one(&deepest).is_ok());
        assert_eq!(one(&[0xdb, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::Eof));
    }
}
