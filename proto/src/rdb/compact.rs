//! Redis's compact blobs inside RDB values: listpack (read and write),
//! ziplist, intset and zipmap (read only: Redis 7 no longer writes them,
//! but payloads of older versions still carry them).

use super::io::canonical_int;
use super::RdbError;

/// One listpack or ziplist element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Item<'_> {
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            Item::Str(s) => s.to_vec(),
            Item::Int(n) => n.to_string().into_bytes(),
        }
    }

    /// The element as an integer (stream node fields), as lpGetInteger:
    /// a string element must be a canonical integer.
    pub fn as_int(self) -> Result<i64, RdbError> {
        match self {
            Item::Int(n) => Ok(n),
            Item::Str(s) => canonical_int(s).ok_or(RdbError::BadFormat),
        }
    }
}

const LP_HEADER: usize = 6;
const LP_EOF: u8 = 0xff;
/// The listpack element count that means "count them".
const LP_UNKNOWN_COUNT: u16 = u16::MAX;

fn bytes_at(blob: &[u8], at: usize, n: usize) -> Result<&[u8], RdbError> {
    blob.get(at..at.checked_add(n).ok_or(RdbError::BadFormat)?)
        .ok_or(RdbError::BadFormat)
}

fn le_int(bytes: &[u8]) -> i64 {
    // Sign-extends a little-endian two's-complement integer of 1..=8 bytes.
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    let shift = 64 - 8 * bytes.len() as u32;
    (i64::from_le_bytes(word) << shift) >> shift
}

/// Size of a listpack back-length field for an entry of `len` bytes.
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_382 => 2,
        16_383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// The elements of a listpack, validating its header, every entry's bounds
/// and back-length, the terminator and the element count.
pub fn listpack(blob: &[u8]) -> Result<Vec<Item<'_>>, RdbError> {
    if blob.len() < LP_HEADER + 1 {
        return Err(RdbError::BadFormat);
    }
    let total = u32::from_le_bytes(blob[..4].try_into().map_err(|_| RdbError::BadFormat)?);
    if total as usize != blob.len() || blob[blob.len() - 1] != LP_EOF {
        return Err(RdbError::BadFormat);
    }
    let declared = u16::from_le_bytes([blob[4], blob[5]]);
    let mut items = Vec::new();
    let mut at = LP_HEADER;
    loop {
        let b = *blob.get(at).ok_or(RdbError::BadFormat)?;
        if b == LP_EOF {
            break;
        }
        let (item, header, data) = if b & 0x80 == 0 {
            (Item::Int(i64::from(b & 0x7f)), 1, 0)
        } else if b & 0xc0 == 0x80 {
            let len = (b & 0x3f) as usize;
            (Item::Str(bytes_at(blob, at + 1, len)?), 1, len)
        } else if b & 0xe0 == 0xc0 {
            let low = *blob.get(at + 1).ok_or(RdbError::BadFormat)?;
            let raw = (i64::from(b & 0x1f) << 8) | i64::from(low);
            let n = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
            (Item::Int(n), 2, 0)
        } else if b & 0xf0 == 0xe0 {
            let low = *blob.get(at + 1).ok_or(RdbError::BadFormat)?;
            let len = (((b & 0x0f) as usize) << 8) | low as usize;
            (Item::Str(bytes_at(blob, at + 2, len)?), 2, len)
        } else {
            match b {
                0xf0 => {
                    let len = bytes_at(blob, at + 1, 4)?;
                    let len = u32::from_le_bytes(len.try_into().map_err(|_| RdbError::BadFormat)?)
                        as usize;
                    (Item::Str(bytes_at(blob, at + 5, len)?), 5, len)
                }
                0xf1 => (Item::Int(le_int(bytes_at(blob, at + 1, 2)?)), 1, 2),
                0xf2 => (Item::Int(le_int(bytes_at(blob, at + 1, 3)?)), 1, 3),
                0xf3 => (Item::Int(le_int(bytes_at(blob, at + 1, 4)?)), 1, 4),
                0xf4 => (Item::Int(le_int(bytes_at(blob, at + 1, 8)?)), 1, 8),
                _ => return Err(RdbError::BadFormat),
            }
        };
        let entry_len = header + data;
        let back = backlen_size(entry_len);
        let backlen = bytes_at(blob, at + entry_len, back)?;
        if decode_backlen(backlen) != Some(entry_len) {
            return Err(RdbError::BadFormat);
        }
        items.push(item);
        at += entry_len + back;
    }
    if at != blob.len() - 1 {
        return Err(RdbError::BadFormat);
    }
    if declared != LP_UNKNOWN_COUNT && declared as usize != items.len() {
        return Err(RdbError::BadFormat);
    }
    Ok(items)
}

/// The value of a back-length field (most significant 7-bit group first,
/// every byte but the first flagged with 0x80).
fn decode_backlen(bytes: &[u8]) -> Option<usize> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if (i > 0) != (b & 0x80 != 0) {
            return None;
        }
        value = (value << 7) | (b & 0x7f) as usize;
    }
    Some(value)
}

fn encode_backlen(len: usize, out: &mut Vec<u8>) {
    let size = backlen_size(len);
    for i in (0..size).rev() {
        let group = ((len >> (7 * i)) & 0x7f) as u8;
        out.push(if i == size - 1 { group } else { group | 0x80 });
    }
}

/// Builds a listpack the way Redis encodes one: canonical integers in the
/// smallest integer encoding, other strings with the smallest length
/// header.
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        ListpackBuilder {
            buf: vec![0; LP_HEADER],
            count: 0,
        }
    }
}

impl ListpackBuilder {
    /// Bytes so far, with the terminator to come.
    pub fn size(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn push(&mut self, element: &[u8]) {
        match canonical_int(element) {
            Some(n) => self.push_int(n),
            None => self.push_str(element),
        }
    }

    pub fn push_int(&mut self, n: i64) {
        let start = self.buf.len();
        if (0..128).contains(&n) {
            self.buf.push(n as u8);
        } else if (-4096..4096).contains(&n) {
            let raw = (n as u64 & 0x1fff) as u16;
            self.buf.push(0xc0 | (raw >> 8) as u8);
            self.buf.push(raw as u8);
        } else {
            let bytes = n.to_le_bytes();
            let (tag, width) = if i16::try_from(n).is_ok() {
                (0xf1, 2)
            } else if (-(1 << 23)..(1 << 23)).contains(&n) {
                (0xf2, 3)
            } else if i32::try_from(n).is_ok() {
                (0xf3, 4)
            } else {
                (0xf4, 8)
            };
            self.buf.push(tag);
            self.buf.extend_from_slice(&bytes[..width]);
        }
        self.finish_entry(start);
    }

    fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let len = s.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf.push(0xe0 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0xf0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        self.finish_entry(start);
    }

    fn finish_entry(&mut self, start: usize) {
        let len = self.buf.len() - start;
        encode_backlen(len, &mut self.buf);
        self.count += 1;
    }

    /// Bytes `element` takes as one entry.
    pub fn entry_size(element: &[u8]) -> usize {
        let mut one = ListpackBuilder::default();
        one.push(element);
        one.buf.len() - LP_HEADER
    }

    /// This listpack followed by the entries of `tail`, finished.
    pub fn append(mut self, tail: ListpackBuilder) -> Vec<u8> {
        self.buf.extend_from_slice(&tail.buf[LP_HEADER..]);
        self.count += tail.count;
        self.finish()
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count)
            .ok()
            .filter(|&c| c != LP_UNKNOWN_COUNT)
            .unwrap_or(LP_UNKNOWN_COUNT);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// A hash field and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

const ZL_HEADER: usize = 10;
const ZL_END: u8 = 0xff;
const ZL_BIG_PREVLEN: u8 = 254;

/// The elements of a ziplist (Redis < 7 lists, hashes and zsets).
pub fn ziplist(blob: &[u8]) -> Result<Vec<Item<'_>>, RdbError> {
    if blob.len() < ZL_HEADER + 1 {
        return Err(RdbError::BadFormat);
    }
    let total = u32::from_le_bytes(blob[..4].try_into().map_err(|_| RdbError::BadFormat)?);
    if total as usize != blob.len() || blob[blob.len() - 1] != ZL_END {
        return Err(RdbError::BadFormat);
    }
    let declared = u16::from_le_bytes([blob[8], blob[9]]);
    let mut items = Vec::new();
    let mut at = ZL_HEADER;
    loop {
        let first = *blob.get(at).ok_or(RdbError::BadFormat)?;
        if first == ZL_END {
            break;
        }
        at += if first < ZL_BIG_PREVLEN { 1 } else { 5 };
        let b = *blob.get(at).ok_or(RdbError::BadFormat)?;
        let (item, size) = match b >> 6 {
            0 => {
                let len = (b & 0x3f) as usize;
                (Item::Str(bytes_at(blob, at + 1, len)?), 1 + len)
            }
            1 => {
                let low = *blob.get(at + 1).ok_or(RdbError::BadFormat)?;
                let len = (((b & 0x3f) as usize) << 8) | low as usize;
                (Item::Str(bytes_at(blob, at + 2, len)?), 2 + len)
            }
            2 => {
                if b != 0x80 {
                    return Err(RdbError::BadFormat);
                }
                let len = bytes_at(blob, at + 1, 4)?;
                let len =
                    u32::from_be_bytes(len.try_into().map_err(|_| RdbError::BadFormat)?) as usize;
                (Item::Str(bytes_at(blob, at + 5, len)?), 5 + len)
            }
            _ => match b {
                0xc0 => (Item::Int(le_int(bytes_at(blob, at + 1, 2)?)), 3),
                0xd0 => (Item::Int(le_int(bytes_at(blob, at + 1, 4)?)), 5),
                0xe0 => (Item::Int(le_int(bytes_at(blob, at + 1, 8)?)), 9),
                0xf0 => (Item::Int(le_int(bytes_at(blob, at + 1, 3)?)), 4),
                0xfe => (Item::Int(le_int(bytes_at(blob, at + 1, 1)?)), 2),
                0xf1..=0xfd => (Item::Int(i64::from(b & 0x0f) - 1), 1),
                _ => return Err(RdbError::BadFormat),
            },
        };
        items.push(item);
        at += size;
    }
    if at != blob.len() - 1 {
        return Err(RdbError::BadFormat);
    }
    // 65535 means "too many to count in the header".
    if declared != u16::MAX && declared as usize != items.len() {
        return Err(RdbError::BadFormat);
    }
    Ok(items)
}

/// The members of an intset: sorted, distinct integers of 2, 4 or 8 bytes.
pub fn intset(blob: &[u8]) -> Result<Vec<i64>, RdbError> {
    let header = blob.get(..8).ok_or(RdbError::BadFormat)?;
    let width = u32::from_le_bytes(header[..4].try_into().map_err(|_| RdbError::BadFormat)?);
    let count = u32::from_le_bytes(header[4..].try_into().map_err(|_| RdbError::BadFormat)?);
    if !matches!(width, 2 | 4 | 8) {
        return Err(RdbError::BadFormat);
    }
    let body = &blob[8..];
    if (count as u64) * (width as u64) != body.len() as u64 {
        return Err(RdbError::BadFormat);
    }
    let members: Vec<i64> = body.chunks_exact(width as usize).map(le_int).collect();
    if members.windows(2).any(|w| w[0] >= w[1]) {
        return Err(RdbError::BadFormat);
    }
    Ok(members)
}

/// The field/value pairs of a zipmap (hashes of RDB versions before 4).
pub fn zipmap(blob: &[u8]) -> Result<Vec<Pair>, RdbError> {
    let mut at = 1; // zmlen: a hint only.
    let mut pairs = Vec::new();
    let len_at = |at: &mut usize| -> Result<Option<usize>, RdbError> {
        let b = *blob.get(*at).ok_or(RdbError::BadFormat)?;
        match b {
            255 => Ok(None),
            254 => {
                let len = bytes_at(blob, *at + 1, 4)?;
                *at += 5;
                Ok(Some(
                    u32::from_le_bytes(len.try_into().map_err(|_| RdbError::BadFormat)?) as usize,
                ))
            }
            n => {
                *at += 1;
                Ok(Some(n as usize))
            }
        }
    };
    while let Some(klen) = len_at(&mut at)? {
        let field = bytes_at(blob, at, klen)?.to_vec();
        at += klen;
        let vlen = len_at(&mut at)?.ok_or(RdbError::BadFormat)?;
        let free = *blob.get(at).ok_or(RdbError::BadFormat)? as usize;
        at += 1;
        let value = bytes_at(blob, at, vlen)?.to_vec();
        at += vlen + free;
        pairs.push((field, value));
    }
    if at != blob.len() - 1 {
        return Err(RdbError::BadFormat);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_round_trips_every_encoding() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 100];
        let values: Vec<Vec<u8>> = vec![
            b"0".to_vec(),
            b"127".to_vec(),
            b"128".to_vec(),
            b"-4096".to_vec(),
            b"4095".to_vec(),
            b"-32768".to_vec(),
            b"8388607".to_vec(),
            b"-8388609".to_vec(),
            b"2147483647".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"007".to_vec(),
            b"".to_vec(),
            mid.clone(),
            long.clone(),
        ];
        let mut b = ListpackBuilder::default();
        for v in &values {
            b.push(v);
        }
        let blob = b.finish();
        let items = listpack(&blob).unwrap();
        let back: Vec<Vec<u8>> = items.into_iter().map(Item::to_bytes).collect();
        assert_eq!(back, values);
    }

    #[test]
    fn listpack_matches_redis_bytes() {
        // redis: RPUSH l a 1 -> listpack of "a" and 1.
        let mut b = ListpackBuilder::default();
        b.push(b"a");
        b.push(b"1");
        assert_eq!(
            b.finish(),
            [0x0c, 0, 0, 0, 2, 0, 0x81, b'a', 2, 0x01, 1, 0xff]
        );
    }

    #[test]
    fn listpack_rejects_corruption() {
        let mut b = ListpackBuilder::default();
        b.push(b"hello");
        let blob = b.finish();
        for cut in 0..blob.len() {
            assert!(listpack(&blob[..cut]).is_err());
        }
        let mut bad = blob.clone();
        bad[4] = 3; // wrong count
        assert!(listpack(&bad).is_err());
        let mut bad = blob;
        bad[6] = 0x8f; // string longer than the blob
        assert!(listpack(&bad).is_err());
    }

    #[test]
    fn intset_checks_width_size_and_order() {
        let mut blob = 2u32.to_le_bytes().to_vec();
        blob.extend_from_slice(&2u32.to_le_bytes());
        blob.extend_from_slice(&(-5i16).to_le_bytes());
        blob.extend_from_slice(&7i16.to_le_bytes());
        assert_eq!(intset(&blob).unwrap(), vec![-5, 7]);
        let mut unsorted = blob.clone();
        unsorted[8..10].copy_from_slice(&9i16.to_le_bytes());
        assert!(intset(&unsorted).is_err());
        assert!(intset(&blob[..11]).is_err());
    }

    #[test]
    fn ziplist_reads_every_encoding() {
        // zlbytes, zltail, zllen, entries: "ab" (6-bit str), 5 (4-bit imm),
        // -2 (int8), 300 (int16), end.
        let mut body = vec![0, 0x02, b'a', b'b'];
        body.extend_from_slice(&[4, 0xf6]);
        body.extend_from_slice(&[1, 0xfe, 0xfe]);
        body.extend_from_slice(&[2, 0xc0, 0x2c, 0x01]);
        let mut blob = ((ZL_HEADER + body.len() + 1) as u32).to_le_bytes().to_vec();
        blob.extend_from_slice(&0u32.to_le_bytes());
        blob.extend_from_slice(&4u16.to_le_bytes());
        blob.extend_from_slice(&body);
        blob.push(ZL_END);
        let items = ziplist(&blob).unwrap();
        assert_eq!(
            items,
            vec![
                Item::Str(b"ab"),
                Item::Int(5),
                Item::Int(-2),
                Item::Int(300)
            ]
        );
    }
}
