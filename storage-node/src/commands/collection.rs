//! Plumbing shared by the hash, set, sorted-set and list commands: typed
//! lookup of a collection's meta record (with WRONGTYPE), its element
//! count in the meta payload, creation under a fresh version, element
//! iteration, the *SCAN cursor and random sampling.
//!
//! A collection's meta payload starts with its element count (u64 BE);
//! lists store `head` and `tail` sequence numbers instead (see `lists`).
//! A collection that becomes empty is deleted, as in Redis.

use rampart_proto::{errors, parse, reply, Reply};

use super::{CmdError, CmdResult};
use crate::engine::keys::{self as layout, HASH_LIMIT};
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{live_meta, DataRead, EngineError, Pair, Txn};
use rampart_proto::glob::glob_match;

pub(crate) use rampart_proto::parse::collection::{MpopArgs, ScanArgs};

/// Appends the reply items of one matching element: `(element, value, out)`.
pub(crate) type Emit<'a> = dyn FnMut(&[u8], &[u8], &mut Vec<Reply>) + 'a;

/// The live meta record of `key` when it holds a `kind`; `None` when the key
/// does not exist; WRONGTYPE when it holds another type.
pub(crate) fn lookup<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    kind: ValueType,
    now: i64,
) -> Result<Option<Meta>, CmdError> {
    match live_meta(r, key, now)? {
        Some(meta) if meta.kind != kind => Err(errors::WRONGTYPE.into()),
        other => Ok(other),
    }
}

/// The element count kept in a hash/set/zset meta payload.
pub(crate) fn count(meta: &Meta) -> Result<u64, CmdError> {
    let word: [u8; 8] = meta
        .payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EngineError::Corrupt("collection meta without a count".into()))?;
    Ok(u64::from_be_bytes(word))
}

/// A new, empty collection of `kind` under a fresh version (not stored
/// until [`store`]).
pub(crate) fn create(txn: &mut Txn<'_>, kind: ValueType) -> Result<Meta, CmdError> {
    Ok(Meta {
        kind,
        version: txn.next_version()?,
        expire_at_ms: 0,
        payload: 0u64.to_be_bytes().to_vec(),
    })
}

/// The existing collection at `key`, or a new empty one.
pub(crate) fn lookup_or_create(
    txn: &mut Txn<'_>,
    key: &[u8],
    kind: ValueType,
    now: i64,
) -> Result<Meta, CmdError> {
    match lookup(&*txn, key, kind, now)? {
        Some(meta) => Ok(meta),
        None => create(txn, kind),
    }
}

/// Writes `meta` with `count` elements, or deletes the key when the
/// collection became empty. What follows the count in the payload (a
/// zset's bounds) is kept.
pub(crate) fn store(
    txn: &mut Txn<'_>,
    key: &[u8],
    meta: &mut Meta,
    count: u64,
) -> Result<(), CmdError> {
    if count == 0 {
        txn.delete_key(key)?;
    } else {
        let tail = meta.payload.get(8..).unwrap_or_default().to_vec();
        meta.payload = count.to_be_bytes().to_vec();
        meta.payload.extend_from_slice(&tail);
        txn.put_meta(key, meta)?;
    }
    Ok(())
}

/// Prefix of the element records of the collection `meta` at `key`.
pub(crate) fn prefix(key: &[u8], meta: &Meta) -> Vec<u8> {
    layout::sub_key_prefix(key, meta.version)
}

/// `prefix` followed by `tag`.
pub(crate) fn tagged(prefix: &[u8], tag: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1);
    out.extend_from_slice(prefix);
    out.push(tag);
    out
}

/// Calls `f(suffix, value)` for every record under `prefix`, in key order,
/// until `f` returns false.
pub(crate) fn for_each_under<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), EngineError> {
    let Some(end) = layout::prefix_end(prefix) else {
        return Ok(());
    };
    r.for_each(prefix, &end, &mut |k, v| f(&k[prefix.len()..], v))
}

/// Every hashed element (hash field / set member / zset by-member record)
/// under `prefix`, as (element, value).
pub(crate) fn hashed_elements<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
) -> Result<Vec<Pair>, CmdError> {
    let mut out = Vec::new();
    let mut bad = false;
    for_each_under(r, prefix, &mut |suffix, value| {
        match layout::decode_hashed_element(suffix) {
            Some((_, element)) => out.push((element.to_vec(), value.to_vec())),
            None => bad = true,
        }
        !bad
    })?;
    if bad {
        return Err(EngineError::Corrupt("short element key".into()).into());
    }
    Ok(out)
}

/// Parses HSCAN/SSCAN/ZSCAN's `cursor [MATCH pattern] [COUNT count]`.
pub(crate) fn parse_scan_args(args: &[Vec<u8>]) -> Result<ScanArgs<'_>, CmdError> {
    Ok(parse::collection::scan_args(args, false)?)
}

/// One page of a hashed-element scan under `prefix`: the cursor is `eh + 1`
/// of the next element (0 = done), and a page never ends inside a run of
/// equal `eh`, so every element present for the whole scan is returned.
/// `emit(element, value, out)` appends the reply items of a match.
pub(crate) fn scan_page<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
    scan: &ScanArgs<'_>,
    emit: &mut Emit<'_>,
) -> CmdResult {
    let start_eh = scan.cursor.saturating_sub(1);
    let mut found = Vec::new();
    let mut next_cursor = 0u64;
    if start_eh < HASH_LIMIT {
        let mut start = prefix.to_vec();
        start.extend_from_slice(&start_eh.to_be_bytes());
        let end = layout::prefix_end(prefix).unwrap_or_default();
        let mut visited = 0u64;
        let mut last_eh = None;
        r.for_each(&start, &end, &mut |k, v| {
            let Some((eh, element)) = layout::decode_hashed_element(&k[prefix.len()..]) else {
                return true;
            };
            if visited >= scan.count && last_eh != Some(eh) {
                next_cursor = eh + 1;
                return false;
            }
            visited += 1;
            last_eh = Some(eh);
            if scan.pattern.is_none_or(|p| glob_match(p, element)) {
                emit(element, v, &mut found);
            }
            true
        })?;
    }
    Ok(reply::array(vec![
        reply::bulk(next_cursor.to_string()),
        reply::array(found),
    ]))
}

/// The first hashed element at or after element hash `eh` (wrapping around
/// to the first one), as (element, value).
fn element_at_or_after<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
    eh: u64,
) -> Result<Option<Pair>, CmdError> {
    let end = layout::prefix_end(prefix).unwrap_or_default();
    let mut found = None;
    let mut seek = prefix.to_vec();
    seek.extend_from_slice(&eh.to_be_bytes());
    for start in [seek, prefix.to_vec()] {
        r.for_each(&start, &end, &mut |k, v| {
            if let Some((_, element)) = layout::decode_hashed_element(&k[prefix.len()..]) {
                found = Some((element.to_vec(), v.to_vec()));
            }
            false
        })?;
        if found.is_some() {
            break;
        }
    }
    Ok(found)
}

/// A small deterministic generator (splitmix64): writes that pick random
/// elements (SPOP) must choose the same ones on every replica, so they seed
/// it from the entry's data, never from local randomness.
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A seed from the entry time, the key and its version.
    pub fn for_write(now: i64, key: &[u8], meta: &Meta) -> SplitMix {
        SplitMix(layout::fnv1a64(key) ^ (now as u64).rotate_left(17) ^ meta.version)
    }
}

/// `k` random hashed elements of the collection under `prefix` holding
/// `len` elements, as (element, value). `distinct`: no repeats and at most
/// `len` results (SRANDMEMBER with a positive count); otherwise exactly `k`
/// picks with repetition. Small collections or large `k` are read whole;
/// otherwise each pick is one seek to a random element hash.
pub(crate) fn random_elements<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
    len: u64,
    k: u64,
    distinct: bool,
    rng: &mut SplitMix,
) -> Result<Vec<Pair>, CmdError> {
    if len == 0 || k == 0 {
        return Ok(Vec::new());
    }
    if distinct && k >= len {
        return hashed_elements(r, prefix);
    }
    let read_whole = len <= 128 || (distinct && k.saturating_mul(3) >= len);
    if read_whole {
        let mut all = hashed_elements(r, prefix)?;
        if all.is_empty() {
            return Ok(all);
        }
        if distinct {
            // Partial Fisher-Yates: the first k slots become the sample.
            let k = k as usize;
            for i in 0..k.min(all.len()) {
                let j = i + (rng.next() % (all.len() - i) as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(k);
            return Ok(all);
        }
        // Repeated picks: each one is charged to the reply budget before
        // it is copied, so a count of -2e9 on a tiny set fails early
        // instead of building a 2e9-element reply.
        // The smallest possible reply is charged up front, so a hopeless
        // count fails before anything is built; larger picks pay the rest.
        let size = |p: &Pair| p.0.len() + p.1.len();
        let smallest = all.iter().map(size).min().unwrap_or(0);
        let floor = (smallest + super::budget::RECORD_OVERHEAD) as u64;
        r.charge(usize::try_from(k.saturating_mul(floor)).unwrap_or(usize::MAX))?;
        let n = all.len() as u64;
        let mut out = Vec::with_capacity(k.min(1024) as usize);
        for _ in 0..k {
            let pick = &all[(rng.next() % n) as usize];
            r.charge(size(pick) - smallest)?;
            out.push(pick.clone());
        }
        return Ok(out);
    }
    // Never sized from the client's count: it may be in the billions.
    let mut out: Vec<Pair> = Vec::with_capacity(k.min(1024) as usize);
    let mut seen = std::collections::HashSet::new();
    let mut attempts = 0u64;
    while (out.len() as u64) < k {
        attempts += 1;
        if distinct && attempts > k.saturating_mul(16) {
            // Unlucky hash clustering: finish from a full read.
            let mut all = hashed_elements(r, prefix)?;
            all.retain(|(e, _)| !seen.contains(e));
            for item in all {
                if out.len() as u64 >= k {
                    break;
                }
                out.push(item);
            }
            break;
        }
        let Some(pick) = element_at_or_after(r, prefix, rng.next() % HASH_LIMIT)? else {
            break;
        };
        if distinct && !seen.insert(pick.0.clone()) {
            continue;
        }
        out.push(pick);
    }
    Ok(out)
}

/// [`rampart_proto::parse::collection::random_args`] as a command error.
pub(crate) fn parse_random_args(
    args: &[Vec<u8>],
    option: &[u8],
) -> Result<(bool, Option<(u64, bool)>), CmdError> {
    Ok(parse::collection::random_args(args, option)?)
}

/// A list of (element, value) pairs as a reply of `pair` items: a RESP3
/// array of 2-element arrays, flattened for RESP2.
pub(crate) fn pairs_reply(items: Vec<(Reply, Reply)>) -> Reply {
    reply::pairs(items)
}
