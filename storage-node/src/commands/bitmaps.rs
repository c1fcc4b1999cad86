//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS,
//! BITOP, BITFIELD and BITFIELD_RO, with Redis 7.2's argument order, error
//! texts and edge rules. Bit 0 is the most significant bit of byte 0; bits
//! past the end of a string read as 0, and writes grow it with zero bytes.

use rampart_proto::args::Args;
use rampart_proto::parse::bitmaps::{BitOp, BitposArgs, FieldOp, FieldType};
use rampart_proto::{parse, reply, Reply};

use super::strings::{live_string, max_string_len};
use super::{CmdError, CmdResult};
use crate::engine::meta::Meta;
use crate::engine::{DataRead, Txn};

/// [`parse::bitmaps::bit_offset`] bounded by the node's `proto-max-bulk-len`.
fn bit_offset(raw: &[u8], field_bits: Option<u32>) -> Result<u64, CmdError> {
    Ok(parse::bitmaps::bit_offset(
        raw,
        field_bits,
        max_string_len(),
    )?)
}

fn get_bit(bytes: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    bytes
        .get(byte)
        .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

fn set_bit(bytes: &mut [u8], offset: u64, on: bool) {
    let mask = 0x80 >> (offset & 7);
    let byte = &mut bytes[(offset >> 3) as usize];
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
}

/// The existing string at `key` (or a new empty one) grown with zero bytes
/// to hold bit `last_bit`; the TTL is kept.
fn string_for_write(txn: &Txn<'_>, key: &[u8], now: i64, last_bit: u64) -> Result<Meta, CmdError> {
    let mut meta = live_string(txn, key, now)?.unwrap_or_else(|| Meta::string(Vec::new(), 0));
    let needed = (last_bit >> 3) as usize + 1;
    if meta.payload.len() < needed {
        meta.payload.resize(needed, 0);
    }
    Ok(meta)
}

pub fn setbit(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let offset = bit_offset(a.next_bytes()?, None)?;
    let on = parse::bitmaps::bit_value(a.next_bytes()?)?;
    let mut meta = string_for_write(txn, key, now, offset)?;
    let old = get_bit(&meta.payload, offset);
    set_bit(&mut meta.payload, offset, on);
    txn.put_meta(key, &meta)?;
    Ok(reply::integer(i64::from(old)))
}

pub fn getbit<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let offset = bit_offset(a.next_bytes()?, None)?;
    let bit = live_string(r, key, now)?.is_some_and(|meta| get_bit(&meta.payload, offset));
    Ok(reply::integer(i64::from(bit)))
}

/// Resolves a `start end` range (negative = from the end) over `len_bytes`
/// bytes into an inclusive range of bit offsets, as Redis does: clamped to
/// the value, `None` when empty.
fn bit_range(len_bytes: usize, start: i64, end: i64, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits {
        len_bytes as i64 * 8
    } else {
        len_bytes as i64
    };
    let resolve = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let (start, end) = (resolve(start), resolve(end).min(total - 1));
    if start > end || total == 0 {
        return None;
    }
    Some(if in_bits {
        (start as u64, end as u64)
    } else {
        (start as u64 * 8, end as u64 * 8 + 7)
    })
}

fn count_ones(bytes: &[u8], (first, last): (u64, u64)) -> u64 {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let whole: u64 = bytes[first_byte..=last_byte]
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    // Take away the bits of the edge bytes outside the range.
    let before = u64::from((bytes[first_byte] & !(0xffu8 >> (first & 7))).count_ones());
    let after_mask = 0xffu8.checked_shr(((last & 7) + 1) as u32).unwrap_or(0);
    let after = u64::from((bytes[last_byte] & after_mask).count_ones());
    whole - before - after
}

pub fn bitcount<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let range = parse::bitmaps::bitcount_range(a.rest())?;
    let Some(meta) = live_string(r, key, now)? else {
        return Ok(reply::integer(0));
    };
    let bytes = &meta.payload;
    let bits = match range {
        None if bytes.is_empty() => None,
        None => Some((0, bytes.len() as u64 * 8 - 1)),
        Some((start, end, _)) if start < 0 && end < 0 && start > end => None,
        Some((start, end, in_bits)) => bit_range(bytes.len(), start, end, in_bits),
    };
    Ok(reply::integer(
        bits.map_or(0, |range| count_ones(bytes, range)) as i64,
    ))
}

pub fn bitpos<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let BitposArgs {
        bit,
        start,
        end,
        in_bits,
    } = parse::bitmaps::bitpos(a.rest())?;
    // A missing key is an endless run of zero bits.
    let Some(meta) = live_string(r, key, now)? else {
        return Ok(reply::integer(if bit { -1 } else { 0 }));
    };
    let bytes = &meta.payload;
    let Some((first, last)) =
        bit_range(bytes.len(), start.unwrap_or(0), end.unwrap_or(-1), in_bits)
    else {
        return Ok(reply::integer(-1));
    };
    if let Some(pos) = (first..=last).find(|&i| get_bit(bytes, i) == bit) {
        return Ok(reply::integer(pos as i64));
    }
    // Without an explicit end the value counts as padded with zero bits.
    let pos = if !bit && end.is_none() {
        last as i64 + 1
    } else {
        -1
    };
    Ok(reply::integer(pos))
}

pub fn bitop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (op, dest, sources) = parse::bitmaps::bitop(args)?;
    let mut values = Vec::with_capacity(sources.len());
    for key in sources {
        values.push(live_string(&*txn, key, now)?.map_or_else(Vec::new, |m| m.payload));
    }
    let len = values.iter().map(Vec::len).max().unwrap_or(0);
    if len == 0 {
        txn.delete_key(dest)?;
        return Ok(reply::integer(0));
    }
    let byte_at = |value: &Vec<u8>, i: usize| value.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..len)
        .map(|i| {
            let mut bytes = values.iter().map(|v| byte_at(v, i));
            let first = bytes.next().unwrap_or(0);
            match op {
                BitOp::And => bytes.fold(first, |acc, b| acc & b),
                BitOp::Or => bytes.fold(first, |acc, b| acc | b),
                BitOp::Xor => bytes.fold(first, |acc, b| acc ^ b),
                BitOp::Not => !first,
            }
        })
        .collect();
    txn.put_meta(dest, &Meta::string(result, 0))?;
    Ok(reply::integer(len as i64))
}

/// Reading and writing a BITFIELD field in a string's bytes.
trait FieldIo {
    fn read(self, bytes: &[u8], offset: u64) -> i128;
    fn write(self, bytes: &mut [u8], offset: u64, value: i128);
}

impl FieldIo for FieldType {
    /// Reads the field at bit `offset` (zero bits past the end).
    fn read(self, bytes: &[u8], offset: u64) -> i128 {
        let mut raw: u64 = 0;
        for i in 0..u64::from(self.bits) {
            raw = (raw << 1) | u64::from(get_bit(bytes, offset + i));
        }
        self.decode(raw)
    }

    fn write(self, bytes: &mut [u8], offset: u64, value: i128) {
        let raw = value as u64; // two's complement low bits
        for i in 0..u64::from(self.bits) {
            let on = raw >> (u64::from(self.bits) - 1 - i) & 1 == 1;
            set_bit(bytes, offset + i, on);
        }
    }
}

/// [`parse::bitmaps::field_ops`] bounded by the node's `proto-max-bulk-len`.
fn parse_field_ops(args: &[Vec<u8>], read_only: bool) -> Result<Vec<FieldOp>, CmdError> {
    Ok(parse::bitmaps::field_ops(
        args,
        read_only,
        max_string_len(),
    )?)
}

fn field_reply(value: i128) -> Reply {
    reply::integer(value as i64)
}

/// BITFIELD: runs on the write path when any operation writes.
pub fn bitfield(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let ops = parse_field_ops(a.rest(), false)?;
    let last_written = ops
        .iter()
        .filter_map(|op| match *op {
            FieldOp::Set(t, offset, ..) | FieldOp::IncrBy(t, offset, ..) => {
                Some(offset + u64::from(t.bits) - 1)
            }
            FieldOp::Get(..) => None,
        })
        .max();
    let Some(last_written) = last_written else {
        return get_fields(&*txn, key, now, &ops);
    };
    // Like Redis, the string is created and grown before the operations
    // run, even when an OVERFLOW FAIL then writes nothing.
    let mut meta = string_for_write(txn, key, now, last_written)?;
    let bytes = &mut meta.payload;
    let replies = ops
        .iter()
        .map(|op| match *op {
            FieldOp::Get(t, offset) => field_reply(t.read(bytes, offset)),
            FieldOp::Set(t, offset, value, overflow) => {
                let old = t.read(bytes, offset);
                // An unsigned field takes the value's 64-bit pattern, as Redis.
                let value = if t.signed {
                    i128::from(value)
                } else {
                    i128::from(value as u64)
                };
                match t.fit(value, overflow) {
                    Some(new) => {
                        t.write(bytes, offset, new);
                        field_reply(old)
                    }
                    None => reply::null(),
                }
            }
            FieldOp::IncrBy(t, offset, by, overflow) => {
                let sum = t.read(bytes, offset) + i128::from(by);
                match t.fit(sum, overflow) {
                    Some(new) => {
                        t.write(bytes, offset, new);
                        field_reply(new)
                    }
                    None => reply::null(),
                }
            }
        })
        .collect();
    txn.put_meta(key, &meta)?;
    Ok(reply::array(replies))
}

pub fn bitfield_ro<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let key = a.next_bytes()?;
    let ops = parse_field_ops(a.rest(), true)?;
    get_fields(r, key, now, &ops)
}

fn get_fields<R: DataRead + ?Sized>(r: &R, key: &[u8], now: i64, ops: &[FieldOp]) -> CmdResult {
    let value = live_string(r, key, now)?.map_or_else(Vec::new, |m| m.payload);
    Ok(reply::array(
        ops.iter()
            .filter_map(|op| match *op {
                FieldOp::Get(t, offset) => Some(field_reply(t.read(&value, offset))),
                _ => None,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, Node};
    use super::*;
    use rampart_proto::parse::bitmaps::Overflow;

    #[test]
    fn field_types_wrap_saturate_and_sign_extend() {
        let i8t = FieldType::parse(b"i8").unwrap();
        assert_eq!(i8t.fit(128, Overflow::Wrap), Some(-128));
        assert_eq!(i8t.fit(-129, Overflow::Sat), Some(-128));
        assert_eq!(i8t.fit(300, Overflow::Fail), None);
        let u4 = FieldType::parse(b"u4").unwrap();
        assert_eq!(u4.fit(17, Overflow::Wrap), Some(1));
        assert_eq!(u4.fit(-1, Overflow::Wrap), Some(15));
        let i64t = FieldType::parse(b"i64").unwrap();
        assert_eq!(
            i64t.fit(i128::from(i64::MAX) + 1, Overflow::Wrap),
            Some(i128::from(i64::MIN))
        );
        for bad in [&b"u64"[..], b"i65", b"i0", b"x8", b"i", b"u-1"] {
            assert!(FieldType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bit_ranges_follow_redis() {
        // "foobar": 26 ones in all, as in Redis's BITCOUNT documentation.
        let foobar = b"foobar";
        assert_eq!(count_ones(foobar, bit_range(6, 0, -1, false).unwrap()), 26);
        assert_eq!(count_ones(foobar, bit_range(6, 1, 1, false).unwrap()), 6);
        assert_eq!(count_ones(foobar, bit_range(6, 5, 30, true).unwrap()), 17);
        assert_eq!(bit_range(6, 10, 20, false), None);
        assert_eq!(bit_range(0, 0, -1, false), None);
    }

    #[test]
    fn bitmap_commands() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("SETBIT bm 7 1", ":0"),
                ("SETBIT bm 7 0", ":1"),
                ("SETBIT bm 7 1", ":0"),
                ("GETBIT bm 7", ":1"),
                ("GETBIT bm 100", ":0"),
                ("GETBIT nokey 0", ":0"),
                ("SETBIT bm 4294967296 1", "-ERR bit offset is not an integer or out of range"),
                ("SETBIT bm -1 1", "-ERR bit offset is not an integer or out of range"),
                ("SETBIT bm 1 2", "-ERR bit is not an integer or out of range"),
                ("SET s foobar", "+OK"),
                ("BITCOUNT s", ":26"),
                ("BITCOUNT s 0 0", ":4"),
                ("BITCOUNT s 1 1", ":6"),
                ("BITCOUNT s 1 1 BYTE", ":6"),
                ("BITCOUNT s 5 30 BIT", ":17"),
                ("BITCOUNT s -2 -3", ":0"),
                ("BITCOUNT s 0", "-ERR syntax error"),
                ("BITCOUNT s 0 1 WORD", "-ERR syntax error"),
                ("BITCOUNT s a 1", "-ERR value is not an integer or out of range"),
                ("BITCOUNT nokey", ":0"),
                ("BITCOUNT nokey 0 1 WORD", "-ERR syntax error"),
                ("BITPOS nokey 1", ":-1"),
                ("BITPOS nokey 0", ":0"),
                ("BITPOS nokey 2", "-ERR The bit argument must be 1 or 0."),
                ("SET ones \u{7f}", "+OK"),
                ("BITPOS ones 1", ":1"),
                ("BITPOS ones 0", ":0"),
                ("BITPOS ones 0 0 0 BIT", ":0"),
                ("BITPOS ones 0 1 7 BIT", ":-1"),
                ("BITPOS ones 0 1 BIT", "-ERR value is not an integer or out of range"),
                ("BITPOS ones 0 1 -1 BIT", ":-1"),
                ("BITPOS ones 1 2", ":-1"),
                ("BITOP AND dest s nokey", ":6"),
                ("STRLEN dest", ":6"),
                ("BITCOUNT dest", ":0"),
                ("BITOP NOT dest s nokey", "-ERR BITOP NOT must be called with a single source key."),
                ("BITOP NAND dest s", "-ERR syntax error"),
                ("BITOP OR dest nokey", ":0"),
                ("EXISTS dest", ":0"),
                ("BITFIELD bf SET i8 0 -100 GET u8 0 INCRBY i8 0 -100", "[:0, :156, :56]"),
                ("BITFIELD bf OVERFLOW SAT INCRBY i8 0 100 OVERFLOW FAIL INCRBY i8 0 1", "[:127, nil]"),
                ("BITFIELD bf GET u4 #1 GET i64 0", "[:15, :9151314442816847872]"),
                ("BITFIELD bf SET u64 0 1", "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."),
                ("BITFIELD bf OVERFLOW MAYBE", "-ERR Invalid OVERFLOW type specified"),
                ("BITFIELD bf GET u8", "-ERR syntax error"),
                ("BITFIELD_RO bf GET u8 0", "[:127]"),
                ("BITFIELD_RO bf SET u8 0 1", "-ERR BITFIELD_RO only supports the GET subcommand"),
                ("BITFIELD missing GET u8 0", "[:0]"),
                ("BITFIELD missing", "[]"),
                ("BITFIELD created OVERFLOW FAIL INCRBY u2 0 10", "[nil]"),
                ("STRLEN created", ":1"),
                ("HSET h f v", ":1"),
                ("SETBIT h 0 1", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
                ("BITCOUNT h", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
            ],
        );
    }
}
