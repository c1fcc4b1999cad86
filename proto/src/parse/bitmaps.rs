//! Bitmap commands' options: bit offsets (with BITFIELD's `#N`), SETBIT's
//! value, BITCOUNT / BITPOS ranges with BYTE | BIT, BITOP's operation, and
//! BITFIELD's subcommands (types, OVERFLOW, the read-only form).

use crate::args::{parse_i64, Args};
use crate::errors;

pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";
pub const BITPOS_BIT: &str = "ERR The bit argument must be 1 or 0.";
pub const BITOP_NOT: &str = "ERR BITOP NOT must be called with a single source key.";
pub const BITFIELD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
pub const BITFIELD_OVERFLOW: &str = "ERR Invalid OVERFLOW type specified";
pub const BITFIELD_RO_ONLY_GET: &str = "ERR BITFIELD_RO only supports the GET subcommand";

/// A bit offset argument; `#N` (only where `field_bits` is given) means N
/// fields of that width. Offsets address fewer than `max_bytes` bytes (the
/// node's `proto-max-bulk-len`).
pub fn bit_offset(raw: &[u8], field_bits: Option<u32>, max_bytes: u64) -> Result<u64, String> {
    let (digits, scale) = match (raw.first(), field_bits) {
        (Some(b'#'), Some(bits)) => (&raw[1..], i64::from(bits)),
        _ => (raw, 1),
    };
    let offset = parse_i64(digits)
        .and_then(|n| n.checked_mul(scale))
        .ok_or(BIT_OFFSET)?;
    if offset < 0 || (offset as u64 >> 3) >= max_bytes {
        return Err(BIT_OFFSET.into());
    }
    Ok(offset as u64)
}

/// SETBIT's value: exactly `0` or `1`.
pub fn bit_value(raw: &[u8]) -> Result<bool, String> {
    match raw {
        b"0" => Ok(false),
        b"1" => Ok(true),
        _ => Err(BIT_VALUE.into()),
    }
}

/// BYTE (false) or BIT (true) units of a BITCOUNT/BITPOS range.
pub fn bit_unit(raw: &[u8]) -> Result<bool, String> {
    if raw.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if raw.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(errors::SYNTAX.into())
    }
}

/// BITCOUNT's `[start end [BYTE | BIT]]` (after the key): `(start, end,
/// in_bits)`.
pub fn bitcount_range(options: &[Vec<u8>]) -> Result<Option<(i64, i64, bool)>, String> {
    let mut a = Args::new(options);
    match a.remaining() {
        0 => Ok(None),
        2 | 3 => {
            let start = a.next_i64()?;
            let end = a.next_i64()?;
            let in_bits = match a.remaining() {
                0 => false,
                _ => bit_unit(a.next_bytes()?)?,
            };
            Ok(Some((start, end, in_bits)))
        }
        _ => Err(errors::SYNTAX.into()),
    }
}

/// BITPOS's `bit [start [end [BYTE | BIT]]]` (after the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitposArgs {
    pub bit: bool,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub in_bits: bool,
}

pub fn bitpos(args: &[Vec<u8>]) -> Result<BitposArgs, String> {
    let mut a = Args::new(args);
    let bit = match parse_i64(a.next_bytes()?) {
        Some(0) => false,
        Some(1) => true,
        Some(_) => return Err(BITPOS_BIT.into()),
        None => return Err(errors::NOT_INTEGER.into()),
    };
    let (start, end, in_bits) = match a.remaining() {
        0 => (None, None, false),
        1..=3 => {
            let start = a.next_i64()?;
            let end = if a.remaining() > 0 {
                Some(a.next_i64()?)
            } else {
                None
            };
            let in_bits = match a.remaining() {
                0 => false,
                _ => bit_unit(a.next_bytes()?)?,
            };
            (Some(start), end, in_bits)
        }
        _ => return Err(errors::SYNTAX.into()),
    };
    Ok(BitposArgs {
        bit,
        start,
        end,
        in_bits,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP's operation, destination key and source keys.
pub type BitopArgs<'a> = (BitOp, &'a [u8], &'a [Vec<u8>]);

/// BITOP's `operation destkey key [key ...]`.
pub fn bitop(args: &[Vec<u8>]) -> Result<BitopArgs<'_>, String> {
    let mut a = Args::new(args);
    let op = a.next_keyword()?;
    let dest = a.next_bytes()?;
    let sources = a.rest();
    let op = match op.as_str() {
        "AND" => BitOp::And,
        "OR" => BitOp::Or,
        "XOR" => BitOp::Xor,
        "NOT" => BitOp::Not,
        _ => return Err(errors::SYNTAX.into()),
    };
    if op == BitOp::Not && sources.len() != 1 {
        return Err(BITOP_NOT.into());
    }
    Ok((op, dest, sources))
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldType {
    pub signed: bool,
    pub bits: u32,
}

impl FieldType {
    pub fn parse(raw: &[u8]) -> Result<FieldType, String> {
        let signed = match raw.first().map(u8::to_ascii_lowercase) {
            Some(b'i') => true,
            Some(b'u') => false,
            _ => return Err(BITFIELD_TYPE.into()),
        };
        let bits = parse_i64(&raw[1..]).ok_or(BITFIELD_TYPE)?;
        let max = if signed { 64 } else { 63 };
        if bits < 1 || bits > max {
            return Err(BITFIELD_TYPE.into());
        }
        Ok(FieldType {
            signed,
            bits: bits as u32,
        })
    }

    /// The representable range, as i128 so sums cannot overflow.
    pub fn limits(self) -> (i128, i128) {
        if self.signed {
            (-(1i128 << (self.bits - 1)), (1i128 << (self.bits - 1)) - 1)
        } else {
            (0, (1i128 << self.bits) - 1)
        }
    }

    /// Interprets the low `bits` of `raw` (sign-extended when signed).
    pub fn decode(self, raw: u64) -> i128 {
        let bits = self.bits;
        let low = if bits == 64 {
            raw
        } else {
            raw & ((1u64 << bits) - 1)
        };
        if self.signed && bits < 64 && low >> (bits - 1) == 1 {
            i128::from(low) - (1i128 << bits)
        } else if self.signed && bits == 64 {
            i128::from(low as i64)
        } else {
            i128::from(low)
        }
    }

    /// `value` brought into range by `overflow`; None when it must fail.
    pub fn fit(self, value: i128, overflow: Overflow) -> Option<i128> {
        let (min, max) = self.limits();
        if (min..=max).contains(&value) {
            return Some(value);
        }
        match overflow {
            Overflow::Wrap => Some(self.decode(value as u64)),
            Overflow::Sat => Some(if value > max { max } else { min }),
            Overflow::Fail => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    Get(FieldType, u64),
    Set(FieldType, u64, i64, Overflow),
    IncrBy(FieldType, u64, i64, Overflow),
}

/// Parses every BITFIELD (or BITFIELD_RO, `read_only`) operation before any
/// runs: an error anywhere means no effect at all. `max_bytes` bounds the
/// offsets (see [`bit_offset`]).
pub fn field_ops(
    args: &[Vec<u8>],
    read_only: bool,
    max_bytes: u64,
) -> Result<Vec<FieldOp>, String> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 0;
    while i < args.len() {
        let remaining = args.len() - i - 1;
        let word = args[i].to_ascii_lowercase();
        let needs = match word.as_slice() {
            b"get" => 2,
            b"set" | b"incrby" => 3,
            b"overflow" => 1,
            _ => return Err(errors::SYNTAX.into()),
        };
        if remaining < needs {
            return Err(errors::SYNTAX.into());
        }
        if word == b"overflow" {
            overflow = match args[i + 1].to_ascii_lowercase().as_slice() {
                b"wrap" => Overflow::Wrap,
                b"sat" => Overflow::Sat,
                b"fail" => Overflow::Fail,
                _ => return Err(BITFIELD_OVERFLOW.into()),
            };
            i += 2;
            continue;
        }
        let field = FieldType::parse(&args[i + 1])?;
        let offset = bit_offset(&args[i + 2], Some(field.bits), max_bytes)?;
        let op = if word == b"get" {
            FieldOp::Get(field, offset)
        } else {
            if read_only {
                return Err(BITFIELD_RO_ONLY_GET.into());
            }
            let value = parse_i64(&args[i + 3]).ok_or(errors::NOT_INTEGER)?;
            if word == b"set" {
                FieldOp::Set(field, offset, value, overflow)
            } else {
                FieldOp::IncrBy(field, offset, value, overflow)
            }
        };
        ops.push(op);
        i += needs + 1;
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 512 * 1024 * 1024;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn offsets_and_values() {
        assert_eq!(bit_offset(b"7", None, MAX), Ok(7));
        assert_eq!(bit_offset(b"#2", Some(8), MAX), Ok(16));
        assert_eq!(bit_offset(b"#2", None, MAX), Err(BIT_OFFSET.into()));
        assert_eq!(bit_offset(b"-1", None, MAX), Err(BIT_OFFSET.into()));
        assert_eq!(bit_offset(b"4294967296", None, MAX), Err(BIT_OFFSET.into()));
        assert_eq!(
            bit_offset(b"#9223372036854775807", Some(64), MAX),
            Err(BIT_OFFSET.into())
        );
        assert_eq!(bit_value(b"2"), Err(BIT_VALUE.into()));
    }

    #[test]
    fn ranges_and_bitop() {
        assert_eq!(bitcount_range(&argv("0 -1 bit")), Ok(Some((0, -1, true))));
        assert_eq!(bitcount_range(&argv("0")), Err(errors::SYNTAX.into()));
        assert_eq!(
            bitcount_range(&argv("0 1 word")),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(bitpos(&argv("2")), Err(BITPOS_BIT.into()));
        assert_eq!(bitpos(&argv("x")), Err(errors::NOT_INTEGER.into()));
        assert_eq!(
            bitpos(&argv("1 2")),
            Ok(BitposArgs {
                bit: true,
                start: Some(2),
                end: None,
                in_bits: false
            })
        );
        assert_eq!(bitop(&argv("not d a b")).unwrap_err(), BITOP_NOT);
        assert_eq!(bitop(&argv("nand d a")).unwrap_err(), errors::SYNTAX);
        assert_eq!(bitop(&argv("xor d a b")).unwrap().0, BitOp::Xor);
    }

    #[test]
    fn bitfield_ops() {
        let ops = field_ops(&argv("overflow sat incrby u8 #1 5 get i64 0"), false, MAX).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(
            field_ops(&argv("set u8 0 1"), true, MAX),
            Err(BITFIELD_RO_ONLY_GET.into())
        );
        assert_eq!(
            field_ops(&argv("overflow up"), false, MAX),
            Err(BITFIELD_OVERFLOW.into())
        );
        assert_eq!(
            field_ops(&argv("get u64 0"), false, MAX),
            Err(BITFIELD_TYPE.into())
        );
        assert_eq!(
            field_ops(&argv("get u8"), false, MAX),
            Err(errors::SYNTAX.into())
        );
        let i8t = FieldType::parse(b"i8").unwrap();
        assert_eq!(i8t.fit(128, Overflow::Wrap), Some(-128));
    }
}
