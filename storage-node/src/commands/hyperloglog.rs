//! PFADD, PFCOUNT and PFMERGE on Redis's own HyperLogLog string format, so
//! a value written here reads the same in Redis (GET/SET, DUMP between the
//! two) and every estimate is Redis's to the unit: the same MurmurHash64A
//! seed, 16,384 six-bit registers, the sparse opcodes with Redis's split and
//! merge rules, promotion to dense past `hll-sparse-max-bytes` (3,000) or a
//! register above 32, and Ertl's estimator.
//!
//! Layout: `HYLL`, encoding (0 dense, 1 sparse), 3 unused bytes, then the
//! cached cardinality (8 bytes little-endian; the top bit of the last byte
//! marks it stale), then the registers.

use rampart_proto::reply;

use super::strings::live_string;
use super::{CmdError, CmdResult};
use crate::engine::meta::Meta;
use crate::engine::{DataRead, Txn};

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPTED: &str = "INVALIDOBJ Corrupted HLL object detected";

const P: u32 = 14;
const REGISTERS: usize = 1 << P;
/// Hash bits left after the register index; a run of zeros is at most Q.
const Q: usize = 64 - P as usize;
const BITS: usize = 6;
const HEADER: usize = 16;
const DENSE_LEN: usize = HEADER + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
/// Redis's `hll-sparse-max-bytes` default, header included.
const SPARSE_MAX_BYTES: usize = 3000;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const STALE_CACHE: u8 = 0x80;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Redis's MurmurHash64A (byte-order neutral), the hash behind every register.
fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= u64::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^ (h >> R)
}

/// The register an element lands in, and the length of its zero run plus one.
fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn dense_get(registers: &[u8], index: usize) -> u8 {
    let bit = index * BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    let low = u16::from(registers[byte]);
    let high = u16::from(registers.get(byte + 1).copied().unwrap_or(0));
    (((low >> shift) | (high << (8 - shift))) & 63) as u8
}

fn dense_set(registers: &mut [u8], index: usize, value: u8) {
    let bit = index * BITS;
    let (byte, shift) = (bit / 8, bit % 8);
    let value = u16::from(value);
    registers[byte] = ((u16::from(registers[byte]) & !(63 << shift)) | (value << shift)) as u8;
    if let Some(next) = registers.get_mut(byte + 1) {
        let spill = 8 - shift;
        *next = ((u16::from(*next) & !(63 >> spill)) | (value >> spill)) as u8;
    }
}

/// One sparse opcode: a run of `len` registers holding `value` (0 for the
/// ZERO and XZERO opcodes), and how many bytes it takes.
#[derive(Debug, Clone, Copy)]
struct Op {
    value: u8,
    len: usize,
    bytes: usize,
}

fn decode_op(bytes: &[u8]) -> Option<Op> {
    let first = *bytes.first()?;
    Some(if first & 0x80 != 0 {
        Op {
            value: ((first >> 2) & 0x1f) + 1,
            len: usize::from(first & 3) + 1,
            bytes: 1,
        }
    } else if first & 0x40 != 0 {
        let second = *bytes.get(1)?;
        let len = ((usize::from(first & 0x3f) << 8) | usize::from(second)) + 1;
        Op {
            value: 0,
            len,
            bytes: 2,
        }
    } else {
        Op {
            value: 0,
            len: usize::from(first & 0x3f) + 1,
            bytes: 1,
        }
    })
}

/// A VAL opcode: `len` (1..=4) registers holding `value` (1..=32).
fn val_op(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len as u8 - 1)
}

fn push_val(out: &mut Vec<u8>, value: u8, len: usize) {
    out.push(val_op(value, len));
}

fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        let l = len - 1;
        out.extend_from_slice(&[0x40 | (l >> 8) as u8, l as u8]);
    } else {
        out.push(len as u8 - 1);
    }
}

/// Every register of a sparse body, or `None` when its runs do not cover
/// exactly the 16,384 registers.
fn sparse_registers(body: &[u8]) -> Option<Vec<u8>> {
    let mut registers = vec![0u8; REGISTERS];
    let mut index = 0;
    let mut at = 0;
    while at < body.len() {
        let op = decode_op(&body[at..])?;
        if index + op.len > REGISTERS {
            return None;
        }
        registers[index..index + op.len].fill(op.value);
        index += op.len;
        at += op.bytes;
    }
    (index == REGISTERS).then_some(registers)
}

/// An HLL value being read or changed; `bytes` is the whole string.
struct Hll {
    bytes: Vec<u8>,
}

impl Hll {
    /// Redis's `createHLLObject`: sparse, all registers zero, cache valid.
    fn new() -> Hll {
        let mut bytes = b"HYLL".to_vec();
        bytes.extend_from_slice(&[SPARSE, 0, 0, 0]);
        bytes.extend_from_slice(&[0; 8]);
        let mut left = REGISTERS;
        while left > 0 {
            let run = left.min(SPARSE_XZERO_MAX_LEN);
            push_zeros(&mut bytes, run);
            left -= run;
        }
        Hll { bytes }
    }

    /// Redis's `isHLLObjectOrReply`: the header looks right and a dense
    /// value has exactly the dense length (sparse bodies are checked on use).
    fn parse(bytes: Vec<u8>) -> Result<Hll, CmdError> {
        let valid = bytes.len() >= HEADER
            && bytes.starts_with(b"HYLL")
            && bytes[4] <= SPARSE
            && (bytes[4] != DENSE || bytes.len() == DENSE_LEN);
        if valid {
            Ok(Hll { bytes })
        } else {
            Err(NOT_HLL.into())
        }
    }

    fn is_dense(&self) -> bool {
        self.bytes[4] == DENSE
    }

    fn invalidate_cache(&mut self) {
        self.bytes[15] |= STALE_CACHE;
    }

    fn cached(&self) -> Option<u64> {
        (self.bytes[15] & STALE_CACHE == 0)
            .then(|| u64::from_le_bytes(self.bytes[8..16].try_into().expect("8 bytes")))
    }

    /// All 16,384 register values.
    fn registers(&self) -> Result<Vec<u8>, CmdError> {
        let body = &self.bytes[HEADER..];
        if self.is_dense() {
            Ok((0..REGISTERS).map(|i| dense_get(body, i)).collect())
        } else {
            sparse_registers(body).ok_or_else(|| CORRUPTED.into())
        }
    }

    /// Rewrites a sparse value as dense, keeping the header's cache bytes.
    fn promote(&mut self) -> Result<(), CmdError> {
        if self.is_dense() {
            return Ok(());
        }
        let registers = self.registers()?;
        let mut bytes = self.bytes[..HEADER].to_vec();
        bytes[4] = DENSE;
        bytes.resize(DENSE_LEN, 0);
        for (index, value) in registers.into_iter().enumerate() {
            if value != 0 {
                dense_set(&mut bytes[HEADER..], index, value);
            }
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Raises register `index` to `count`; true when it changed.
    fn set(&mut self, index: usize, count: u8) -> Result<bool, CmdError> {
        if !self.is_dense() {
            if count <= SPARSE_VAL_MAX_VALUE {
                if let Some(changed) = self.sparse_set(index, count)? {
                    return Ok(changed);
                }
            }
            self.promote()?;
        }
        let registers = &mut self.bytes[HEADER..];
        if dense_get(registers, index) >= count {
            return Ok(false);
        }
        dense_set(registers, index, count);
        Ok(true)
    }

    /// Redis's `hllSparseSet`: splits the run holding `index` into at most
    /// three opcodes, then merges equal neighbouring VAL opcodes. `None`
    /// means the value must be promoted to dense first.
    fn sparse_set(&mut self, index: usize, count: u8) -> Result<Option<bool>, CmdError> {
        // Find the opcode covering `index`, and the one before it.
        let mut at = HEADER;
        let mut prev = None;
        let mut first = 0;
        let op = loop {
            let op = decode_op(&self.bytes[at..]).ok_or(CORRUPTED)?;
            if index < first + op.len {
                break op;
            }
            prev = Some(at);
            at += op.bytes;
            first += op.len;
            if at >= self.bytes.len() {
                return Err(CORRUPTED.into());
            }
        };
        if op.value >= count && op.value > 0 {
            return Ok(Some(false));
        }
        if op.len == 1 && op.bytes == 1 {
            // A one-register VAL below `count`, or a one-register ZERO.
            self.bytes[at] = val_op(count, 1);
        } else {
            let last = first + op.len - 1;
            let mut seq = Vec::with_capacity(5);
            if op.value == 0 {
                if index != first {
                    push_zeros(&mut seq, index - first);
                }
                push_val(&mut seq, count, 1);
                if index != last {
                    push_zeros(&mut seq, last - index);
                }
            } else {
                if index != first {
                    push_val(&mut seq, op.value, index - first);
                }
                push_val(&mut seq, count, 1);
                if index != last {
                    push_val(&mut seq, op.value, last - index);
                }
            }
            if seq.len() > op.bytes && self.bytes.len() + seq.len() - op.bytes > SPARSE_MAX_BYTES {
                return Ok(None);
            }
            self.bytes.splice(at..at + op.bytes, seq);
        }
        self.merge_vals(prev.unwrap_or(HEADER));
        Ok(Some(true))
    }

    /// Joins adjacent VAL opcodes of one value, scanning five opcodes from
    /// `at` as Redis does, so the bytes stay identical to Redis's.
    fn merge_vals(&mut self, mut at: usize) {
        let mut budget = 5;
        while at < self.bytes.len() && budget > 0 {
            budget -= 1;
            let byte = self.bytes[at];
            if byte & 0xc0 == 0x40 {
                at += 2;
                continue;
            }
            if byte & 0x80 == 0 {
                at += 1;
                continue;
            }
            if let Some(&next) = self.bytes.get(at + 1) {
                if next & 0x80 != 0 {
                    let (a, b) = (decode_op(&[byte]), decode_op(&[next]));
                    if let (Some(a), Some(b)) = (a, b) {
                        if a.value == b.value && a.len + b.len <= SPARSE_VAL_MAX_LEN {
                            self.bytes[at + 1] = val_op(a.value, a.len + b.len);
                            self.bytes.remove(at);
                            continue;
                        }
                    }
                }
            }
            at += 1;
        }
    }
}

/// Redis's `hllSigma` and `hllTau`, from Ertl's estimator.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        let gap = 1.0 - x;
        z -= gap * gap * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// Redis's `hllCount` over register values.
fn estimate(registers: &[u8]) -> u64 {
    let mut histogram = [0u32; 64];
    for &value in registers {
        histogram[usize::from(value)] += 1;
    }
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histogram[Q + 1])) / m);
    for count in histogram[1..=Q].iter().rev() {
        z += f64::from(*count);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn load<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    now: i64,
) -> Result<Option<(Hll, Meta)>, CmdError> {
    match live_string(r, key, now)? {
        Some(meta) => Ok(Some((Hll::parse(meta.payload.clone())?, meta))),
        None => Ok(None),
    }
}

fn store(txn: &mut Txn<'_>, key: &[u8], hll: Hll, meta: Option<Meta>) -> Result<(), CmdError> {
    let meta = match meta {
        Some(mut meta) => {
            meta.payload = hll.bytes;
            meta
        }
        None => Meta::string(hll.bytes, 0),
    };
    txn.put_meta(key, &meta)?;
    Ok(())
}

pub fn pfadd(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let (mut hll, meta, mut updated) = match load(&*txn, key, now)? {
        Some((hll, meta)) => (hll, Some(meta), false),
        None => (Hll::new(), None, true),
    };
    for element in &args[1..] {
        let (index, count) = pattern(element);
        updated |= hll.set(index, count)?;
    }
    if updated {
        hll.invalidate_cache();
        store(txn, key, hll, meta)?;
    }
    Ok(reply::integer(i64::from(updated)))
}

/// PFCOUNT never writes here (Redis stores the estimate back in the cache
/// bytes, a replicated write on every read); a valid cache is still used.
pub fn pfcount<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    if let [key] = args {
        return Ok(match load(r, key, now)? {
            None => reply::integer(0),
            Some((hll, _)) => match hll.cached() {
                Some(cached) => reply::integer(cached as i64),
                None => reply::integer(estimate(&hll.registers()?) as i64),
            },
        });
    }
    let mut max = vec![0u8; REGISTERS];
    for key in args {
        if let Some((hll, _)) = load(r, key, now)? {
            merge_into(&mut max, &hll.registers()?);
        }
    }
    Ok(reply::integer(estimate(&max) as i64))
}

fn merge_into(max: &mut [u8], registers: &[u8]) {
    for (m, r) in max.iter_mut().zip(registers) {
        *m = (*m).max(*r);
    }
}

pub fn pfmerge(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut max = vec![0u8; REGISTERS];
    let mut any_dense = false;
    for key in args {
        if let Some((hll, _)) = load(&*txn, key, now)? {
            any_dense |= hll.is_dense();
            merge_into(&mut max, &hll.registers()?);
        }
    }
    let dest = &args[0];
    let (mut hll, meta) = match load(&*txn, dest, now)? {
        Some((hll, meta)) => (hll, Some(meta)),
        None => (Hll::new(), None),
    };
    if any_dense {
        hll.promote()?;
    }
    for (index, value) in max.into_iter().enumerate() {
        if value != 0 {
            hll.set(index, value)?;
        }
    }
    hll.invalidate_cache();
    store(txn, dest, hll, meta)?;
    Ok(reply::ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(hll: &mut Hll, element: &[u8]) -> bool {
        let (index, count) = pattern(element);
        hll.set(index, count).unwrap()
    }

    #[test]
    fn empty_value_is_redis_bytes_and_counts_zero() {
        let hll = Hll::new();
        assert_eq!(hll.bytes.len(), HEADER + 2);
        assert_eq!(&hll.bytes[HEADER..], &[0x7f, 0xff]);
        assert_eq!(estimate(&hll.registers().unwrap()), 0);
    }

    #[test]
    fn sparse_and_dense_agree_on_every_register() {
        let mut sparse = Hll::new();
        let mut dense = Hll::new();
        dense.promote().unwrap();
        for i in 0..2000u32 {
            let element = i.to_string();
            assert_eq!(
                add(&mut sparse, element.as_bytes()),
                add(&mut dense, element.as_bytes())
            );
            if i % 97 == 0 {
                assert_eq!(
                    sparse.registers().unwrap(),
                    dense.registers().unwrap(),
                    "after {i}"
                );
            }
        }
        assert!(
            sparse.is_dense(),
            "2,000 elements pass hll-sparse-max-bytes"
        );
        assert_eq!(sparse.bytes.len(), DENSE_LEN);
    }

    #[test]
    fn estimate_is_close_to_the_true_cardinality() {
        let mut hll = Hll::new();
        for i in 0..100_000u32 {
            add(&mut hll, &i.to_le_bytes());
        }
        let estimate = estimate(&hll.registers().unwrap()) as f64;
        assert!(
            (estimate - 100_000.0).abs() < 100_000.0 * 0.03,
            "{estimate}"
        );
    }

    #[test]
    fn corrupted_values_are_refused_not_panicked_on() {
        assert!(Hll::parse(b"HYLL".to_vec()).is_err());
        assert!(Hll::parse(b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff".to_vec()).is_err());
        let mut dense = Hll::new();
        dense.promote().unwrap();
        dense.bytes.push(0);
        assert!(Hll::parse(dense.bytes).is_err());
        // A sparse body that covers too few, too many or half an opcode.
        for body in [
            &[0x7f, 0xfe][..],
            &[0x7f, 0xff, 0x00][..],
            &[0x7f][..],
            &[][..],
        ] {
            let mut bytes = Hll::new().bytes[..HEADER].to_vec();
            bytes.extend_from_slice(body);
            let mut hll = Hll::parse(bytes).unwrap();
            assert!(hll.registers().is_err());
            // Like Redis, a write may succeed on a body it can walk to the
            // register; it must never panic, and counting still fails.
            let _ = hll.set(5, 3);
            let _ = hll.set(16_383, 40);
            assert!(hll.registers().is_err());
        }
    }
}
