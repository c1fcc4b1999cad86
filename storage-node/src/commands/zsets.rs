//! Sorted-set commands. A zset is a meta record (type, version, member
//! count) plus two records per member (see `engine::keys`):
//! `prefix + 'm' + eh(member) + member -> score` (point lookups, ZSCAN) and
//! `prefix + 'o' + score_key(score) + member -> ""` (the by-score index in
//! Redis's (score, member) order). ZSCORE/ZADD/ZREM cost one or two point
//! operations; range reads cost O(log n + skipped + returned).
//!
//! Popping deletes from one end of the by-score index, and RocksDB keeps
//! each deleted record as a tombstone until compaction, so a scan from the
//! start of the index would step over every member ever popped (a zset used
//! as a queue slowed from 642 to 217 ZPOPMIN/s over 20,000 pops). The meta
//! payload therefore keeps, after the member count, [`Bounds`]: a by-score
//! key below which (and one above which) no member lives. Pops move them
//! inward, adds move them outward, and every walk starts inside them.

use std::collections::BTreeMap;

pub use rampart_proto::parse::zsets::{AddFlags, RangeCmd, RemBy, SetOp};
use rampart_proto::parse::zsets::{Aggregate, CombineOptions, LexBound, Range, RangeQuery};
use rampart_proto::reply::format_double;
use rampart_proto::{errors, parse, reply, Reply};

use super::collection::{self as coll, SplitMix};
use super::{CmdError, CmdResult};
use crate::engine::keys::{self as layout, ZSET_MEMBER_TAG, ZSET_SCORE_TAG};
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{DataRead, EngineError, Txn};

const KIND: ValueType = ValueType::ZSet;

/// A member and its score.
type Scored = (Vec<u8>, f64);
const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

/// Where a zset's members can be in its by-score index: no member's
/// by-score key (without the index prefix) sorts below `low` or above
/// `high`; `None` is no bound. Kept in the meta payload after the count as
/// `u32 BE length + bytes` for each (length 0 = none), so a key copied or
/// renamed with its payload keeps them. A payload without them (older
/// records, hashes, sets) reads as unbounded, which is always correct.
#[derive(Debug, Clone, Default, PartialEq)]
struct Bounds {
    low: Option<Vec<u8>>,
    high: Option<Vec<u8>>,
}

impl Bounds {
    fn decode(meta: &Meta) -> Bounds {
        let mut rest = meta.payload.get(8..).unwrap_or_default();
        let mut next = || -> Option<Vec<u8>> {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let bytes = rest.get(4..4 + len)?.to_vec();
            rest = &rest[4 + len..];
            (!bytes.is_empty()).then_some(bytes)
        };
        let low = next();
        let high = next();
        Bounds { low, high }
    }

    /// Replaces what follows the count in `meta`'s payload.
    fn encode_into(&self, meta: &mut Meta) {
        meta.payload.truncate(8);
        if self.low.is_none() && self.high.is_none() {
            return;
        }
        for bound in [&self.low, &self.high] {
            let bytes = bound.as_deref().unwrap_or_default();
            meta.payload
                .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            meta.payload.extend_from_slice(bytes);
        }
    }

    /// Takes in a member just written at by-score key suffix `at`.
    fn widen(&mut self, at: &[u8]) {
        if let Some(low) = &mut self.low {
            if at < low.as_slice() {
                *low = at.to_vec();
            }
        }
        if let Some(high) = &mut self.high {
            if at > high.as_slice() {
                *high = at.to_vec();
            }
        }
    }
}

/// The two index prefixes of one zset, and its [`Bounds`].
struct Idx {
    by_member: Vec<u8>,
    by_score: Vec<u8>,
    bounds: Bounds,
}

impl Idx {
    fn of(key: &[u8], meta: &Meta) -> Idx {
        let prefix = coll::prefix(key, meta);
        Idx {
            by_member: coll::tagged(&prefix, ZSET_MEMBER_TAG),
            by_score: coll::tagged(&prefix, ZSET_SCORE_TAG),
            bounds: Bounds::decode(meta),
        }
    }

    /// `[start, end)` narrowed to the part of the index members can be in.
    fn clamp(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut start = start.to_vec();
        let mut end = end.to_vec();
        if let Some(low) = &self.bounds.low {
            let mut bound = self.by_score.clone();
            bound.extend_from_slice(low);
            start = start.max(bound);
        }
        if let Some(high) = &self.bounds.high {
            // The smallest key above `high`.
            let mut bound = self.by_score.clone();
            bound.extend_from_slice(high);
            bound.push(0);
            end = end.min(bound);
        }
        (start, end)
    }

    fn member_key(&self, member: &[u8]) -> Vec<u8> {
        layout::hashed_element_key(&self.by_member, member)
    }

    fn score_key(&self, score: f64, member: &[u8]) -> Vec<u8> {
        let mut out = self.by_score.clone();
        out.extend_from_slice(&layout::score_key(score));
        out.extend_from_slice(member);
        out
    }

    fn score<R: DataRead + ?Sized>(&self, r: &R, member: &[u8]) -> Result<Option<f64>, CmdError> {
        match r.get(&self.member_key(member))? {
            Some(bytes) => Ok(Some(decode_score(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes `member` at `score` (replacing its entry at `old`); the
    /// caller stores the widened bounds with the meta record.
    fn put(&mut self, txn: &mut Txn<'_>, member: &[u8], old: Option<f64>, score: f64) {
        if let Some(old) = old {
            txn.delete(self.score_key(old, member));
        }
        txn.put(
            self.member_key(member),
            score.to_bits().to_be_bytes().to_vec(),
        );
        let at = self.score_key(score, member);
        self.bounds.widen(&at[self.by_score.len()..]);
        txn.put(at, Vec::new());
    }

    fn remove(&self, txn: &mut Txn<'_>, member: &[u8], score: f64) {
        txn.delete(self.member_key(member));
        txn.delete(self.score_key(score, member));
    }

    /// Visits (member, score) in score order (descending if `rev`) from the
    /// by-score key range `[start, end)`.
    fn walk<R: DataRead + ?Sized>(
        &self,
        r: &R,
        start: &[u8],
        end: &[u8],
        rev: bool,
        f: &mut dyn FnMut(&[u8], f64) -> bool,
    ) -> Result<(), CmdError> {
        let (start, end) = self.clamp(start, end);
        if start >= end {
            return Ok(());
        }
        let (start, end) = (start.as_slice(), end.as_slice());
        let plen = self.by_score.len();
        let mut bad = false;
        let mut visit = |k: &[u8], _: &[u8]| {
            let suffix = &k[plen..];
            let Some(head) = suffix.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                bad = true;
                return false;
            };
            f(&suffix[8..], layout::decode_score_key(head))
        };
        if rev {
            r.for_each_rev(start, end, &mut visit)?;
        } else {
            r.for_each(start, end, &mut visit)?;
        }
        if bad {
            return Err(EngineError::Corrupt("short zset score key".into()).into());
        }
        Ok(())
    }

    fn score_end(&self) -> Vec<u8> {
        layout::prefix_end(&self.by_score).unwrap_or_default()
    }
}

/// The score of `member` in the zset at `key` (GEOPOS & co).
pub(super) fn member_score<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
    member: &[u8],
) -> Result<Option<f64>, CmdError> {
    Idx::of(key, meta).score(r, member)
}

/// Visits, in (score, member) order, the members with `min <= score < max`
/// until `f` returns false (the geo box scans).
pub(super) fn walk_score_range<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
    min: f64,
    max: f64,
    f: &mut dyn FnMut(&[u8], f64) -> bool,
) -> Result<(), CmdError> {
    let idx = Idx::of(key, meta);
    let bound = |score: f64| {
        let mut out = idx.by_score.clone();
        out.extend_from_slice(&layout::score_key(score));
        out
    };
    idx.walk(r, &bound(min), &bound(max), false, f)
}

/// Replaces `dest` with a zset of `items`, or deletes it when empty.
pub(super) fn replace_with(
    txn: &mut Txn<'_>,
    dest: &[u8],
    items: &[(Vec<u8>, f64)],
) -> Result<(), CmdError> {
    store_zset(txn, dest, items)
}

fn decode_score(bytes: &[u8]) -> Result<f64, CmdError> {
    let word: [u8; 8] = bytes
        .try_into()
        .map_err(|_| EngineError::Corrupt("zset score of bad length".into()))?;
    Ok(f64::from_bits(u64::from_be_bytes(word)))
}

/// Inputs of ZUNION & co accept sets (every score 1) as well as zsets.
fn lookup_zset_or_set<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    now: i64,
) -> Result<Option<Vec<Scored>>, CmdError> {
    match crate::engine::live_meta(r, key, now)? {
        None => Ok(None),
        Some(meta) if meta.kind == ValueType::Set => Ok(Some(
            coll::hashed_elements(r, &coll::prefix(key, &meta))?
                .into_iter()
                .map(|(m, _)| (m, 1.0))
                .collect(),
        )),
        Some(meta) if meta.kind == KIND => Ok(Some(all_members(r, key, &meta)?)),
        Some(_) => Err(errors::WRONGTYPE.into()),
    }
}

/// Every (member, score) in score order.
fn all_members<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
) -> Result<Vec<Scored>, CmdError> {
    let idx = Idx::of(key, meta);
    let mut out = Vec::new();
    idx.walk(r, &idx.by_score, &idx.score_end(), false, &mut |m, s| {
        out.push((m.to_vec(), s));
        true
    })?;
    Ok(out)
}

/// Replaces `dest` with a zset of `items` (deletes it when empty).
fn store_zset(txn: &mut Txn<'_>, dest: &[u8], items: &[Scored]) -> Result<(), CmdError> {
    txn.delete_key(dest)?;
    if items.is_empty() {
        return Ok(());
    }
    let mut meta = coll::create(txn, KIND)?;
    let mut idx = Idx::of(dest, &meta);
    for (member, score) in items {
        idx.put(txn, member, None, *score);
    }
    coll::store(txn, dest, &mut meta, items.len() as u64)
}

fn score_reply(score: Option<f64>) -> Reply {
    score.map_or_else(reply::null, reply::double)
}

fn members_reply(items: Vec<Scored>, with_scores: bool) -> Reply {
    if with_scores {
        reply::pairs(
            items
                .into_iter()
                .map(|(m, s)| (reply::bulk(m), reply::double(s)))
                .collect(),
        )
    } else {
        reply::bulk_array(items.into_iter().map(|(m, _)| m))
    }
}

// ---------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM
// ---------------------------------------------------------------------------

/// ZADD's work after option parsing; `pairs` is score, member, ... (GEOADD
/// calls it with geohash scores, as Redis does).
pub(super) fn zadd_generic(
    txn: &mut Txn<'_>,
    key: &[u8],
    flags: AddFlags,
    pairs: &[Vec<u8>],
    now: i64,
) -> CmdResult {
    let scores = parse::zsets::zadd_scores(&flags, pairs)?;
    let existing = coll::lookup(&*txn, key, KIND, now)?;
    if existing.is_none() && flags.xx {
        return Ok(if flags.incr {
            reply::null()
        } else {
            reply::integer(0)
        });
    }
    let mut meta = match existing {
        Some(meta) => meta,
        None => coll::create(txn, KIND)?,
    };
    let mut idx = Idx::of(key, &meta);
    let mut count = coll::count(&meta)?;
    let (mut added, mut updated) = (0, 0);
    let mut result = None;
    for (pair, mut score) in pairs.chunks(2).zip(scores) {
        let member = &pair[1];
        match idx.score(&*txn, member)? {
            Some(current) => {
                if flags.nx {
                    continue;
                }
                if flags.incr {
                    score += current;
                    if score.is_nan() {
                        return Err(NAN_SCORE.into());
                    }
                }
                if (flags.lt && score >= current) || (flags.gt && score <= current) {
                    continue;
                }
                result = Some(score);
                if score != current {
                    idx.put(txn, member, Some(current), score);
                    updated += 1;
                }
            }
            None => {
                if flags.xx {
                    continue;
                }
                idx.put(txn, member, None, score);
                count += 1;
                added += 1;
                result = Some(score);
            }
        }
    }
    idx.bounds.encode_into(&mut meta);
    coll::store(txn, key, &mut meta, count)?;
    Ok(if flags.incr {
        score_reply(result)
    } else if flags.ch {
        reply::integer(added + updated)
    } else {
        reply::integer(added)
    })
}

/// ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]
pub fn zadd(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let (flags, used) = parse::zsets::zadd_flags(&args[1..]);
    let i = 1 + used;
    zadd_generic(txn, key, flags, &args[i..], now)
}

/// ZINCRBY key increment member
pub fn zincrby(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let flags = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    zadd_generic(txn, &args[0], flags, &args[1..3], now)
}

pub fn zrem(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
        return Ok(reply::integer(0));
    };
    let idx = Idx::of(key, &meta);
    let mut count = coll::count(&meta)?;
    let mut removed = 0;
    for member in &args[1..] {
        if let Some(score) = idx.score(&*txn, member)? {
            idx.remove(txn, member, score);
            removed += 1;
            count = count.saturating_sub(1);
        }
    }
    if removed > 0 {
        coll::store(txn, key, &mut meta, count)?;
    }
    Ok(reply::integer(removed))
}

// ---------------------------------------------------------------------------
// Point reads
// ---------------------------------------------------------------------------

pub fn zcard<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let len = match coll::lookup(r, &args[0], KIND, now)? {
        Some(meta) => coll::count(&meta)?,
        None => 0,
    };
    Ok(reply::integer(len as i64))
}

pub fn zscore<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    Ok(score_reply(match coll::lookup(r, key, KIND, now)? {
        Some(meta) => Idx::of(key, &meta).score(r, &args[1])?,
        None => None,
    }))
}

pub fn zmscore<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let idx = coll::lookup(r, key, KIND, now)?.map(|meta| Idx::of(key, &meta));
    let mut items = Vec::with_capacity(args.len() - 1);
    for member in &args[1..] {
        items.push(score_reply(match &idx {
            Some(idx) => idx.score(r, member)?,
            None => None,
        }));
    }
    Ok(reply::array(items))
}

/// ZRANK / ZREVRANK key member [WITHSCORE]. O(rank): the by-score index
/// holds no subtree counts, so the rank is counted.
pub fn zrank<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64, rev: bool) -> CmdResult {
    let key = &args[0];
    let with_score = parse::zsets::zrank_with_score(args, rev)?;
    let missing = if with_score {
        reply::null_array()
    } else {
        reply::null()
    };
    let Some(meta) = coll::lookup(r, key, KIND, now)? else {
        return Ok(missing);
    };
    let idx = Idx::of(key, &meta);
    let member = &args[1];
    let Some(score) = idx.score(r, member)? else {
        return Ok(missing);
    };
    let own = idx.score_key(score, member);
    let mut below = 0i64;
    let (start, end) = if rev {
        let mut after = own.clone();
        after.push(0);
        (after, idx.score_end())
    } else {
        (idx.by_score.clone(), own)
    };
    idx.walk(r, &start, &end, false, &mut |_, _| {
        below += 1;
        true
    })?;
    Ok(if with_score {
        reply::array(vec![reply::integer(below), reply::double(score)])
    } else {
        reply::integer(below)
    })
}

// ---------------------------------------------------------------------------
// Ranges
// ---------------------------------------------------------------------------

/// The members of `range` in the requested order, after LIMIT.
fn run_range<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
    q: &RangeQuery,
) -> Result<Vec<Scored>, CmdError> {
    let idx = Idx::of(key, meta);
    let len = coll::count(meta)? as i64;
    let mut out = Vec::new();
    match &q.range {
        Range::Rank(start, end) => {
            let (mut start, mut end) = (*start, *end);
            if start < 0 {
                start += len;
            }
            if end < 0 {
                end += len;
            }
            start = start.max(0);
            if start > end || start >= len {
                return Ok(out);
            }
            end = end.min(len - 1);
            // The index holds no subtree counts, so ranks are reached by
            // walking: start from whichever end is nearer, making ranges
            // near the tail (ZRANGE k -10 -1) as cheap as near the head.
            let from_far_end = len - 1 - end < start;
            let mut skip = if from_far_end { len - 1 - end } else { start };
            let mut take = end - start + 1;
            idx.walk(
                r,
                &idx.by_score,
                &idx.score_end(),
                q.rev != from_far_end,
                &mut |m, s| {
                    if skip > 0 {
                        skip -= 1;
                        return true;
                    }
                    out.push((m.to_vec(), s));
                    take -= 1;
                    take > 0
                },
            )?;
            if from_far_end {
                out.reverse();
            }
        }
        Range::Score(range) => {
            if range.is_empty() || (q.offset > 0 && q.offset >= len) || q.offset < 0 {
                return Ok(out);
            }
            let (start, end) = if q.rev {
                let mut top = idx.by_score.clone();
                top.extend_from_slice(&layout::score_key(range.max));
                let end = layout::prefix_end(&top).unwrap_or_else(|| idx.score_end());
                (idx.by_score.clone(), end)
            } else {
                let mut bottom = idx.by_score.clone();
                bottom.extend_from_slice(&layout::score_key(range.min));
                (bottom, idx.score_end())
            };
            collect_limited(&idx, r, (&start, &end), q, &mut out, |_, s| {
                if q.rev {
                    (range.below_max(s), range.above_min(s))
                } else {
                    (range.above_min(s), range.below_max(s))
                }
            })?;
        }
        Range::Lex(range) => {
            if range.is_empty() || (q.offset > 0 && q.offset >= len) || q.offset < 0 {
                return Ok(out);
            }
            // Lex ranges assume one score for all members (Redis's rule);
            // seek inside the run of the first (or last) score.
            let mut edge = None;
            idx.walk(r, &idx.by_score, &idx.score_end(), q.rev, &mut |_, s| {
                edge = Some(s);
                false
            })?;
            let Some(edge) = edge else {
                return Ok(out);
            };
            let mut run = idx.by_score.clone();
            run.extend_from_slice(&layout::score_key(edge));
            let (start, end) = if q.rev {
                let end = match &range.max {
                    LexBound::Incl(b) => {
                        let mut k = run.clone();
                        k.extend_from_slice(b);
                        k.push(0);
                        k
                    }
                    LexBound::Excl(b) => {
                        let mut k = run.clone();
                        k.extend_from_slice(b);
                        k
                    }
                    _ => idx.score_end(),
                };
                (idx.by_score.clone(), end)
            } else {
                let start = match &range.min {
                    LexBound::Incl(b) | LexBound::Excl(b) => {
                        let mut k = run.clone();
                        k.extend_from_slice(b);
                        k
                    }
                    _ => idx.by_score.clone(),
                };
                (start, idx.score_end())
            };
            collect_limited(&idx, r, (&start, &end), q, &mut out, |m, _| {
                if q.rev {
                    (range.below_max(m), range.above_min(m))
                } else {
                    (range.above_min(m), range.below_max(m))
                }
            })?;
        }
    }
    Ok(out)
}

/// Walks `bounds` of the by-score index in the query's direction and appends
/// the members inside the range to `out`, honouring LIMIT's offset and count.
/// `inside(member, score)` says whether an element is past the range's first
/// edge and before its last edge, in walk order.
fn collect_limited<R: DataRead + ?Sized>(
    idx: &Idx,
    r: &R,
    bounds: (&[u8], &[u8]),
    q: &RangeQuery,
    out: &mut Vec<(Vec<u8>, f64)>,
    inside: impl Fn(&[u8], f64) -> (bool, bool),
) -> Result<(), CmdError> {
    let mut skip = q.offset;
    let mut limit = q.limit;
    idx.walk(r, bounds.0, bounds.1, q.rev, &mut |m, s| {
        let (inside_start, inside_end) = inside(m, s);
        if !inside_start {
            return true;
        }
        if !inside_end || limit == 0 {
            return false;
        }
        if skip > 0 {
            skip -= 1;
            return true;
        }
        out.push((m.to_vec(), s));
        limit -= 1;
        limit != 0
    })
}

/// ZRANGE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX,
/// ZREVRANGEBYLEX: `key min max [options]`.
pub fn zrange<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64, cmd: RangeCmd) -> CmdResult {
    let key = &args[0];
    let q = parse::zsets::range(&args[1..], cmd, false)?;
    let items = match coll::lookup(r, key, KIND, now)? {
        Some(meta) => run_range(r, key, &meta, &q)?,
        None => Vec::new(),
    };
    Ok(members_reply(items, q.with_scores))
}

/// ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]
pub fn zrangestore(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (dest, src) = (&args[0], &args[1]);
    let q = parse::zsets::range(&args[2..], RangeCmd::Auto, true)?;
    let items = match coll::lookup(&*txn, src, KIND, now)? {
        Some(meta) => run_range(&*txn, src, &meta, &q)?,
        None => Vec::new(),
    };
    store_zset(txn, dest, &items)?;
    Ok(reply::integer(items.len() as i64))
}

/// ZCOUNT key min max / ZLEXCOUNT key min max. O(log n + count).
pub fn zcount<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64, lex: bool) -> CmdResult {
    let key = &args[0];
    let by = if lex { RemBy::Lex } else { RemBy::Score };
    let range = Range::parse(by, &args[1], &args[2])?;
    let Some(meta) = coll::lookup(r, key, KIND, now)? else {
        return Ok(reply::integer(0));
    };
    let q = RangeQuery::plain(range);
    Ok(reply::integer(run_range(r, key, &meta, &q)?.len() as i64))
}

pub fn zremrange(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, by: RemBy) -> CmdResult {
    let key = &args[0];
    let range = Range::parse(by, &args[1], &args[2])?;
    let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
        return Ok(reply::integer(0));
    };
    let q = RangeQuery::plain(range);
    let gone = run_range(&*txn, key, &meta, &q)?;
    let idx = Idx::of(key, &meta);
    for (member, score) in &gone {
        idx.remove(txn, member, *score);
    }
    let count = coll::count(&meta)?.saturating_sub(gone.len() as u64);
    if !gone.is_empty() {
        coll::store(txn, key, &mut meta, count)?;
    }
    Ok(reply::integer(gone.len() as i64))
}

// ---------------------------------------------------------------------------
// Pops and random members
// ---------------------------------------------------------------------------

/// Pops up to `count` lowest (or highest, `max`) members of `key`.
fn pop(
    txn: &mut Txn<'_>,
    key: &[u8],
    meta: &mut Meta,
    count: u64,
    max: bool,
) -> Result<Vec<Scored>, CmdError> {
    let mut idx = Idx::of(key, meta);
    let mut out = Vec::new();
    let mut left = count;
    if left > 0 {
        idx.walk(&*txn, &idx.by_score, &idx.score_end(), max, &mut |m, s| {
            out.push((m.to_vec(), s));
            left -= 1;
            left > 0
        })?;
    }
    for (member, score) in &out {
        idx.remove(txn, member, *score);
    }
    // Nothing lives beyond the last member popped now: the next pop
    // starts there instead of stepping over the tombstones of this one.
    if let Some((member, score)) = out.last() {
        let at = idx.score_key(*score, member)[idx.by_score.len()..].to_vec();
        if max {
            idx.bounds.high = Some(at);
        } else {
            idx.bounds.low = Some(at);
        }
        idx.bounds.encode_into(meta);
    }
    let remaining = coll::count(meta)?.saturating_sub(out.len() as u64);
    coll::store(txn, key, meta, remaining)?;
    Ok(out)
}

/// ZPOPMIN / ZPOPMAX key [count].
pub fn zpop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, max: bool) -> CmdResult {
    let count = parse::zsets::zpop_count(args)?;
    let key = &args[0];
    let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
        return Ok(reply::array(Vec::new()));
    };
    let popped = pop(txn, key, &mut meta, count.unwrap_or(1), max)?;
    Ok(match count {
        // Without a count: a flat [member, score] in both protocols.
        None => reply::array(
            popped
                .into_iter()
                .flat_map(|(m, s)| [reply::bulk(m), reply::double(s)])
                .collect(),
        ),
        Some(_) => members_reply(popped, true),
    })
}

fn parse_mpop(args: &[Vec<u8>]) -> Result<coll::MpopArgs<'_>, CmdError> {
    Ok(parse::zsets::mpop(args)?)
}

/// Pops from the first non-empty sorted set of `keys`: `[key, [[member,
/// score]...]]`, or a null array when all are empty.
fn mpop(txn: &mut Txn<'_>, m: &coll::MpopArgs<'_>, now: i64) -> CmdResult {
    for key in m.keys {
        let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
            continue;
        };
        let popped = pop(txn, key, &mut meta, m.count, m.second_end)?;
        // Nested pairs in both protocols, as Redis replies to ZMPOP.
        let pairs = popped
            .into_iter()
            .map(|(m, s)| reply::array(vec![reply::bulk(m), reply::double(s)]))
            .collect();
        return Ok(reply::array(vec![
            reply::bulk(key.clone()),
            reply::array(pairs),
        ]));
    }
    Ok(reply::null_array())
}

/// ZMPOP numkeys key [key ...] MIN | MAX [COUNT count]
pub fn zmpop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let m = parse_mpop(args)?;
    mpop(txn, &m, now)
}

// Blocking forms, applied as one non-blocking attempt (as inside MULTI);
// the node's wait loop retries them when a key becomes non-empty.

/// BZPOPMIN / BZPOPMAX key [key ...] timeout: `[key, member, score]` from
/// the first non-empty sorted set, or a null array.
pub fn bzpop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, max: bool) -> CmdResult {
    let (timeout, keys) = args.split_last().ok_or(errors::SYNTAX)?;
    rampart_proto::args::parse_timeout_secs(timeout, now)?;
    for key in keys {
        let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
            continue;
        };
        let Some((member, score)) = pop(txn, key, &mut meta, 1, max)?.into_iter().next() else {
            continue;
        };
        return Ok(reply::array(vec![
            reply::bulk(key.clone()),
            reply::bulk(member),
            reply::double(score),
        ]));
    }
    Ok(reply::null_array())
}

/// BZMPOP timeout numkeys key [key ...] MIN | MAX [COUNT count].
pub fn bzmpop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let m = parse_mpop(&args[1..])?;
    rampart_proto::args::parse_timeout_secs(&args[0], now)?;
    mpop(txn, &m, now)
}

/// ZRANDMEMBER key [count [WITHSCORES]].
pub fn zrandmember<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let (with_scores, counted) = coll::parse_random_args(args, b"WITHSCORES")?;
    let meta = coll::lookup(r, key, KIND, now)?;
    let mut rng = SplitMix(rand::random());
    let (k, distinct) = counted.unwrap_or((1, true));
    let picked = match &meta {
        Some(meta) => {
            let idx = Idx::of(key, meta);
            coll::random_elements(r, &idx.by_member, coll::count(meta)?, k, distinct, &mut rng)?
        }
        None => Vec::new(),
    };
    let mut items = Vec::with_capacity(picked.len());
    for (member, score) in picked {
        items.push((member, decode_score(&score)?));
    }
    Ok(match counted {
        None => items
            .into_iter()
            .next()
            .map_or_else(reply::null, |(m, _)| reply::bulk(m)),
        Some(_) => members_reply(items, with_scores),
    })
}

// ---------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF (+STORE)
// ---------------------------------------------------------------------------

fn aggregate(agg: Aggregate, a: f64, b: f64) -> f64 {
    match agg {
        Aggregate::Sum => {
            let v = a + b;
            // inf + -inf is NaN; Redis makes it 0.
            if v.is_nan() {
                0.0
            } else {
                v
            }
        }
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    }
}

/// Computes the combination for `numkeys key... [options]` (`args` starts
/// at numkeys). Returns (members sorted like a zset, WITHSCORES).
fn combine<R: DataRead + ?Sized>(
    r: &R,
    args: &[Vec<u8>],
    op: SetOp,
    store: bool,
    command: &str,
    now: i64,
) -> Result<(Vec<Scored>, bool), CmdError> {
    let n = parse::zsets::combine_numkeys(args, command)?;
    let mut inputs = Vec::with_capacity(n);
    for key in &args[1..=n] {
        inputs.push(lookup_zset_or_set(r, key, now)?);
    }
    let CombineOptions {
        weights,
        aggregate: agg,
        with_scores,
    } = parse::zsets::combine_options(args, n, op, store)?;
    let weighted = |score: f64, w: f64| {
        let v = score * w;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    let mut acc: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
    match op {
        SetOp::Union => {
            for (input, w) in inputs.iter().zip(&weights) {
                for (m, s) in input.iter().flatten() {
                    let v = weighted(*s, *w);
                    acc.entry(m.clone())
                        .and_modify(|cur| *cur = aggregate(agg, *cur, v))
                        .or_insert(v);
                }
            }
        }
        SetOp::Inter => {
            if inputs.iter().all(Option::is_some) {
                let maps: Vec<BTreeMap<&[u8], f64>> = inputs
                    .iter()
                    .flatten()
                    .map(|items| items.iter().map(|(m, s)| (m.as_slice(), *s)).collect())
                    .collect();
                if let Some((first, rest)) = maps.split_first() {
                    'members: for (m, s) in first {
                        let mut v = weighted(*s, weights[0]);
                        for (i, other) in rest.iter().enumerate() {
                            let Some(os) = other.get(m) else {
                                continue 'members;
                            };
                            v = aggregate(agg, v, weighted(*os, weights[i + 1]));
                        }
                        acc.insert(m.to_vec(), v);
                    }
                }
            }
        }
        SetOp::Diff => {
            if let Some(Some(first)) = inputs.first() {
                for (m, s) in first {
                    let elsewhere = inputs[1..]
                        .iter()
                        .flatten()
                        .any(|other| other.iter().any(|(om, _)| om == m));
                    if !elsewhere {
                        acc.insert(m.clone(), *s);
                    }
                }
            }
        }
    }
    let mut items: Vec<Scored> = acc.into_iter().collect();
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok((items, with_scores))
}

/// ZUNION / ZINTER / ZDIFF numkeys key [key ...] [options] [WITHSCORES].
pub fn zcombine<R: DataRead + ?Sized>(
    r: &R,
    args: &[Vec<u8>],
    now: i64,
    op: SetOp,
    command: &str,
) -> CmdResult {
    let (items, with_scores) = combine(r, args, op, false, command, now)?;
    Ok(members_reply(items, with_scores))
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]: counts the intersection,
/// stopping at `limit` (0 = no limit) like Redis.
pub fn zintercard<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let n = parse::zsets::combine_numkeys(args, "zintercard")?;
    // Redis checks every key's type before it reads the options.
    let mut inputs = Vec::with_capacity(n);
    for key in &args[1..=n] {
        inputs.push(lookup_zset_or_set(r, key, now)?);
    }
    let limit = parse::zsets::intercard_limit(args, n)?;
    let Some(inputs) = inputs.into_iter().collect::<Option<Vec<Vec<Scored>>>>() else {
        return Ok(reply::integer(0));
    };
    let mut sets: Vec<std::collections::HashSet<&[u8]>> = inputs
        .iter()
        .map(|items| items.iter().map(|(m, _)| m.as_slice()).collect())
        .collect();
    // Probe the smallest input against the others, as Redis does.
    sets.sort_by_key(|s| s.len());
    let Some((smallest, rest)) = sets.split_first() else {
        return Ok(reply::integer(0));
    };
    let mut count = 0usize;
    for member in smallest {
        if rest.iter().all(|other| other.contains(member)) {
            count += 1;
            if limit != 0 && count >= limit {
                break;
            }
        }
    }
    Ok(reply::integer(count as i64))
}

/// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE destination numkeys key ...
pub fn zcombine_store(
    txn: &mut Txn<'_>,
    args: &[Vec<u8>],
    now: i64,
    op: SetOp,
    command: &str,
) -> CmdResult {
    let (items, _) = combine(&*txn, &args[1..], op, true, command, now)?;
    store_zset(txn, &args[0], &items)?;
    Ok(reply::integer(items.len() as i64))
}

pub fn zscan<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let scan = coll::parse_scan_args(&args[1..])?;
    let Some(meta) = coll::lookup(r, key, KIND, now)? else {
        return Ok(super::hashes::empty_scan());
    };
    let idx = Idx::of(key, &meta);
    coll::scan_page(r, &idx.by_member, &scan, &mut |m, v, out| {
        out.push(reply::bulk(m.to_vec()));
        let score = decode_score(v).unwrap_or(f64::NAN);
        out.push(reply::bulk(format_double(score)));
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, show, Node};

    const NOW: i64 = 1_700_000_000_000;
    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";

    fn abc(node: &Node) {
        check(node, NOW, &[("ZADD z 1 a 2 b 3 c", ":3")]);
    }

    #[test]
    fn zadd_flags() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("ZADD z 1 a 2 b", ":2"),
                ("ZADD z 5 a 3 c", ":1"),
                ("ZSCORE z a", ",5"),
                ("ZADD z CH 5 a 6 b 7 d", ":2"),
                ("ZADD z NX 100 a 8 e", ":1"),
                ("ZSCORE z a", ",5"),
                ("ZADD z XX 9 a 9 nope", ":0"),
                ("ZSCORE z a", ",9"),
                ("ZSCORE z nope", "nil"),
                ("ZADD z GT CH 1 a 10 b", ":1"),
                ("ZADD z LT CH 1 a 10 b", ":1"),
                ("ZMSCORE z a b nope", "[,1, ,10, nil]"),
                ("ZADD z INCR 2.5 a", ",3.5"),
                ("ZADD z NX INCR 1 a", "nil"),
                ("ZADD z XX INCR 1 nope", "nil"),
                ("ZADD z GT INCR -1 a", "nil"),
                ("ZADD missing XX 1 a", ":0"),
                ("ZADD missing XX INCR 1 a", "nil"),
                ("EXISTS missing", ":0"),
                (
                    "ZADD z NX XX 1 a",
                    "-ERR XX and NX options at the same time are not compatible",
                ),
                (
                    "ZADD z NX GT 1 a",
                    "-ERR GT, LT, and/or NX options at the same time are not compatible",
                ),
                (
                    "ZADD z GT LT 1 a",
                    "-ERR GT, LT, and/or NX options at the same time are not compatible",
                ),
                (
                    "ZADD z INCR 1 a 2 b",
                    "-ERR INCR option supports a single increment-element pair",
                ),
                ("ZADD z 1 a 2", "-ERR syntax error"),
                (
                    "ZADD z NX",
                    "-ERR wrong number of arguments for 'zadd' command",
                ),
                ("ZADD z CH NX", "-ERR syntax error"),
                ("ZADD z x a", "-ERR value is not a valid float"),
                ("ZADD z nan a", "-ERR value is not a valid float"),
                ("ZADD z inf a -inf b", ":0"),
                ("ZSCORE z a", ",inf"),
                (
                    "ZINCRBY z -inf a",
                    "-ERR resulting score is not a number (NaN)",
                ),
                ("ZINCRBY z 1 fresh", ",1"),
                ("ZINCRBY z x fresh", "-ERR value is not a valid float"),
                ("ZCARD z", ":6"),
                ("ZCARD nokey", ":0"),
                ("ZREM z a b nope", ":2"),
                ("ZREM nokey a", ":0"),
                ("ZCARD z", ":4"),
                ("SET s v", "+OK"),
                ("ZADD s 1 a", WRONGTYPE),
                ("ZSCORE s a", WRONGTYPE),
                ("ZRANGE s 0 -1", WRONGTYPE),
                ("ZCARD s", WRONGTYPE),
            ],
        );
    }

    #[test]
    fn rank_ranges() {
        let node = Node::new();
        abc(&node);
        check(
            &node,
            NOW,
            &[
                ("ZRANGE z 0 -1", "[\"a\", \"b\", \"c\"]"),
                ("ZRANGE z -2 -1", "[\"b\", \"c\"]"),
                ("ZRANGE z 1 100", "[\"b\", \"c\"]"),
                ("ZRANGE z 2 1", "[]"),
                ("ZRANGE z 5 10", "[]"),
                ("ZRANGE z -100 0", "[\"a\"]"),
                ("ZRANGE nokey 0 -1", "[]"),
                ("ZRANGE z 0 -1 REV", "[\"c\", \"b\", \"a\"]"),
                ("ZREVRANGE z 0 0", "[\"c\"]"),
                ("ZREVRANGE z 0 -1 WITHSCORES", "[[\"c\", ,3], [\"b\", ,2], [\"a\", ,1]]"),
                ("ZRANGE z 0 0 WITHSCORES", "[[\"a\", ,1]]"),
                ("ZRANGE z a b", "-ERR value is not an integer or out of range"),
                ("ZRANGE z 0 1 LIMIT 0 1", "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"),
                ("ZRANGE z 0 1 FOO", "-ERR syntax error"),
                ("ZREVRANGE z 0 1 REV", "-ERR syntax error"),
                ("ZRANK z a", ":0"),
                ("ZRANK z c", ":2"),
                ("ZRANK z nope", "nil"),
                ("ZRANK nokey a", "nil"),
                ("ZRANK z c WITHSCORE", "[:2, ,3]"),
                ("ZRANK z nope WITHSCORE", "nil"),
                ("ZRANK z a FOO", "-ERR syntax error"),
                (
                    "ZRANK z a WITHSCORE x",
                    "-ERR wrong number of arguments for 'zrank' command",
                ),
                (
                    "ZREVRANK z a b c",
                    "-ERR wrong number of arguments for 'zrevrank' command",
                ),
                ("ZREVRANK z a", ":2"),
                ("ZREVRANK z c", ":0"),
                ("ZREVRANK z a WITHSCORE", "[:2, ,1]"),
            ],
        );
    }

    #[test]
    fn rank_ranges_near_the_tail_walk_from_the_far_end() {
        let node = Node::new();
        for i in 0..10 {
            node.run(NOW, &format!("ZADD t {i} m{i}"));
        }
        check(
            &node,
            NOW,
            &[
                ("ZRANGE t -3 -1", "[\"m7\", \"m8\", \"m9\"]"),
                ("ZRANGE t 8 20", "[\"m8\", \"m9\"]"),
                ("ZRANGE t 4 6", "[\"m4\", \"m5\", \"m6\"]"),
                ("ZRANGE t 5 5", "[\"m5\"]"),
                ("ZREVRANGE t -2 -1", "[\"m1\", \"m0\"]"),
                ("ZREVRANGE t 7 9", "[\"m2\", \"m1\", \"m0\"]"),
                ("ZRANGE t -1 -1 REV", "[\"m0\"]"),
                ("ZREMRANGEBYRANK t -2 -1", ":2"),
                (
                    "ZRANGE t 0 -1",
                    "[\"m0\", \"m1\", \"m2\", \"m3\", \"m4\", \"m5\", \"m6\", \"m7\"]",
                ),
            ],
        );
    }

    #[test]
    fn score_ranges() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[("ZADD z -inf ninf 1 a 2 b 2 bb 3 c inf pinf", ":6")],
        );
        check(
            &node,
            NOW,
            &[
                (
                    "ZRANGEBYSCORE z -inf +inf",
                    "[\"ninf\", \"a\", \"b\", \"bb\", \"c\", \"pinf\"]",
                ),
                ("ZRANGEBYSCORE z 1 2", "[\"a\", \"b\", \"bb\"]"),
                ("ZRANGEBYSCORE z (1 2", "[\"b\", \"bb\"]"),
                ("ZRANGEBYSCORE z (1 (2", "[]"),
                ("ZRANGEBYSCORE z 2 1", "[]"),
                ("ZRANGEBYSCORE z (2 2", "[]"),
                (
                    "ZRANGEBYSCORE z (-inf (inf",
                    "[\"a\", \"b\", \"bb\", \"c\"]",
                ),
                (
                    "ZRANGEBYSCORE z 1 3 WITHSCORES LIMIT 1 2",
                    "[[\"b\", ,2], [\"bb\", ,2]]",
                ),
                ("ZRANGEBYSCORE z 1 3 LIMIT 1 -1", "[\"b\", \"bb\", \"c\"]"),
                ("ZRANGEBYSCORE z 1 3 LIMIT -1 2", "[]"),
                ("ZRANGEBYSCORE z 1 3 LIMIT 10 2", "[]"),
                ("ZRANGEBYSCORE z 1 3 LIMIT 0 0", "[]"),
                ("ZREVRANGEBYSCORE z 2 1", "[\"bb\", \"b\", \"a\"]"),
                ("ZREVRANGEBYSCORE z (2 -inf", "[\"a\", \"ninf\"]"),
                (
                    "ZREVRANGEBYSCORE z +inf (3 WITHSCORES",
                    "[[\"pinf\", ,inf]]",
                ),
                ("ZRANGE z (1 3 BYSCORE", "[\"b\", \"bb\", \"c\"]"),
                ("ZRANGE z 3 (1 BYSCORE REV LIMIT 0 2", "[\"c\", \"bb\"]"),
                ("ZRANGEBYSCORE z x 1", "-ERR min or max is not a float"),
                ("ZRANGEBYSCORE z 1 (x", "-ERR min or max is not a float"),
                ("ZRANGEBYSCORE z 1 2 REV", "-ERR syntax error"),
                ("ZCOUNT z -inf +inf", ":6"),
                ("ZCOUNT z (1 3", ":3"),
                ("ZCOUNT z 5 1", ":0"),
                ("ZCOUNT nokey 1 2", ":0"),
                ("ZCOUNT z a 2", "-ERR min or max is not a float"),
            ],
        );
    }

    #[test]
    fn lex_ranges() {
        let node = Node::new();
        check(&node, NOW, &[("ZADD z 0 a 0 b 0 c 0 d 0 e", ":5")]);
        check(
            &node,
            NOW,
            &[
                ("ZRANGEBYLEX z - +", "[\"a\", \"b\", \"c\", \"d\", \"e\"]"),
                ("ZRANGEBYLEX z [b (d", "[\"b\", \"c\"]"),
                ("ZRANGEBYLEX z (b [d", "[\"c\", \"d\"]"),
                ("ZRANGEBYLEX z [bb +", "[\"c\", \"d\", \"e\"]"),
                ("ZRANGEBYLEX z - [c LIMIT 1 1", "[\"b\"]"),
                ("ZRANGEBYLEX z + -", "[]"),
                ("ZRANGEBYLEX z (c (c", "[]"),
                (
                    "ZREVRANGEBYLEX z + -",
                    "[\"e\", \"d\", \"c\", \"b\", \"a\"]",
                ),
                ("ZREVRANGEBYLEX z [d (b", "[\"d\", \"c\"]"),
                ("ZREVRANGEBYLEX z (d - LIMIT 1 2", "[\"b\", \"a\"]"),
                ("ZRANGE z [d - BYLEX REV", "[\"d\", \"c\", \"b\", \"a\"]"),
                (
                    "ZRANGEBYLEX z a c",
                    "-ERR min or max not valid string range item",
                ),
                (
                    "ZRANGE z - + BYLEX WITHSCORES",
                    "-ERR syntax error, WITHSCORES not supported in combination with BYLEX",
                ),
                (
                    "ZRANGEBYLEX z - + WITHSCORES",
                    "-ERR syntax error, WITHSCORES not supported in combination with BYLEX",
                ),
                ("ZLEXCOUNT z - +", ":5"),
                ("ZLEXCOUNT z (a [c", ":2"),
                (
                    "ZLEXCOUNT z x +",
                    "-ERR min or max not valid string range item",
                ),
                ("ZREMRANGEBYLEX z (a [c", ":2"),
                ("ZRANGE z 0 -1", "[\"a\", \"d\", \"e\"]"),
            ],
        );
    }

    #[test]
    fn remove_ranges_and_store() {
        let node = Node::new();
        check(&node, NOW, &[("ZADD z 1 a 2 b 3 c 4 d 5 e", ":5")]);
        check(
            &node,
            NOW,
            &[
                ("ZREMRANGEBYRANK z 0 0", ":1"),
                ("ZREMRANGEBYRANK z -1 -1", ":1"),
                ("ZREMRANGEBYRANK z 5 10", ":0"),
                ("ZREMRANGEBYSCORE z (2 3", ":1"),
                ("ZREMRANGEBYSCORE z x 3", "-ERR min or max is not a float"),
                ("ZRANGE z 0 -1 WITHSCORES", "[[\"b\", ,2], [\"d\", ,4]]"),
                ("ZRANGESTORE dst z 0 0", ":1"),
                ("ZRANGE dst 0 -1 WITHSCORES", "[[\"b\", ,2]]"),
                ("ZRANGESTORE dst z (2 +inf BYSCORE", ":1"),
                ("ZRANGE dst 0 -1", "[\"d\"]"),
                ("ZRANGESTORE dst z 5 6", ":0"),
                ("EXISTS dst", ":0"),
                ("ZRANGESTORE dst z 0 -1 WITHSCORES", "-ERR syntax error"),
                ("ZREMRANGEBYSCORE z -inf +inf", ":2"),
                ("EXISTS z", ":0"),
                ("ZREMRANGEBYRANK nokey 0 -1", ":0"),
            ],
        );
    }

    #[test]
    fn pops_then_adds_below_and_above_the_popped_ends() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("ZADD q 1 a 2 b 3 c 4 d 5 e", ":5"),
                ("ZPOPMIN q 2", "[[\"a\", ,1], [\"b\", ,2]]"),
                ("ZPOPMAX q", "[\"e\", ,5]"),
                // Below the popped low end, above the popped high end.
                ("ZADD q 0 z 9 y", ":2"),
                (
                    "ZRANGE q 0 -1 WITHSCORES",
                    "[[\"z\", ,0], [\"c\", ,3], [\"d\", ,4], [\"y\", ,9]]",
                ),
                ("ZRANK q c", ":1"),
                ("ZREVRANK q c", ":2"),
                ("ZCOUNT q -inf +inf", ":4"),
                // A member moved below the low end by a score change.
                ("ZINCRBY q -10 d", ",-6"),
                ("ZPOPMIN q", "[\"d\", ,-6]"),
                ("ZPOPMAX q", "[\"y\", ,9]"),
                // The bounds travel with the payload through RENAME and COPY.
                ("RENAME q r", "+OK"),
                ("ZADD r -1 w", ":1"),
                ("COPY r s", ":1"),
                ("ZADD s 100 v", ":1"),
                ("ZRANGE r 0 -1", "[\"w\", \"z\", \"c\"]"),
                ("ZRANGE s 0 -1", "[\"w\", \"z\", \"c\", \"v\"]"),
                ("ZREVRANGEBYSCORE s +inf -inf LIMIT 0 1", "[\"v\"]"),
                (
                    "ZPOPMIN s 10",
                    "[[\"w\", ,-1], [\"z\", ,0], [\"c\", ,3], [\"v\", ,100]]",
                ),
                ("EXISTS s", ":0"),
                ("ZADD s 7 fresh", ":1"),
                ("ZRANGE s 0 -1", "[\"fresh\"]"),
            ],
        );
    }

    /// Random adds, score changes, removals and pops from both ends,
    /// checked after every step against a model: the bounds that let pops
    /// skip tombstones must never hide a member.
    #[test]
    fn bounds_never_hide_members() {
        use std::collections::BTreeMap;
        let node = Node::new();
        let mut model: BTreeMap<String, i64> = BTreeMap::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let ordered = |model: &BTreeMap<String, i64>| {
            let mut v: Vec<(i64, String)> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
            v.sort();
            v
        };
        let render = |items: &[(i64, String)]| {
            let parts: Vec<String> = items
                .iter()
                .map(|(s, m)| format!("[\"{m}\", ,{s}]"))
                .collect();
            format!("[{}]", parts.join(", "))
        };
        for step in 0..1500 {
            let member = format!("m{:02}", next(40));
            let score = next(30) as i64 - 10;
            let cmd = match next(6) {
                0 | 1 => {
                    model.insert(member.clone(), score);
                    format!("ZADD z {score} {member}")
                }
                2 => {
                    *model.entry(member.clone()).or_insert(0) += score;
                    format!("ZINCRBY z {score} {member}")
                }
                3 => {
                    model.remove(&member);
                    format!("ZREM z {member}")
                }
                op => {
                    let count = 1 + next(3) as usize;
                    let mut items = ordered(&model);
                    if op == 5 {
                        items.reverse();
                    }
                    items.truncate(count);
                    for (_, m) in &items {
                        model.remove(m);
                    }
                    let name = if op == 5 { "ZPOPMAX" } else { "ZPOPMIN" };
                    let cmd = format!("{name} z {count}");
                    assert_eq!(
                        show(&node.run(NOW, &cmd)),
                        render(&items),
                        "step {step}: {cmd}"
                    );
                    continue;
                }
            };
            node.run(NOW, &cmd);
            let expected = ordered(&model);
            let got = show(&node.run(NOW, "ZRANGE z 0 -1 WITHSCORES"));
            assert_eq!(got, render(&expected), "step {step} after {cmd}");
            let rev = show(&node.run(NOW, "ZREVRANGEBYSCORE z +inf -inf LIMIT 0 1"));
            let top = expected
                .last()
                .map_or("[]".to_string(), |(_, m)| format!("[\"{m}\"]"));
            assert_eq!(rev, top, "step {step} after {cmd}");
        }
    }

    #[test]
    fn pops() {
        let node = Node::new();
        abc(&node);
        check(
            &node,
            NOW,
            &[
                ("ZPOPMIN nokey", "[]"),
                ("ZPOPMIN nokey 2", "[]"),
                ("ZPOPMIN z", "[\"a\", ,1]"),
                ("ZPOPMAX z 1", "[[\"c\", ,3]]"),
                ("ZPOPMIN z 0", "[]"),
                (
                    "ZPOPMIN z -1",
                    "-ERR value is out of range, must be positive",
                ),
                ("ZPOPMIN z 1 2", "-ERR syntax error"),
                ("ZPOPMAX z 10", "[[\"b\", ,2]]"),
                ("EXISTS z", ":0"),
                ("ZADD z2 1 x 2 y 3 w", ":3"),
                ("ZMPOP 2 nokey z2 MIN", "[\"z2\", [[\"x\", ,1]]]"),
                (
                    "ZMPOP 1 z2 MAX COUNT 5",
                    "[\"z2\", [[\"w\", ,3], [\"y\", ,2]]]",
                ),
                ("ZMPOP 1 z2 MAX", "nil"),
                ("ZMPOP 0 z2 MAX", "-ERR numkeys should be greater than 0"),
                ("ZMPOP 2 z2 MAX", "-ERR syntax error"),
                ("ZMPOP 1 z2 FOO", "-ERR syntax error"),
                (
                    "ZMPOP 1 z2 MIN COUNT 0",
                    "-ERR count should be greater than 0",
                ),
                ("SET s v", "+OK"),
                ("ZMPOP 1 s MIN", WRONGTYPE),
                ("ZPOPMIN s", WRONGTYPE),
            ],
        );
    }

    #[test]
    fn combine_and_store() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("ZADD a 1 x 2 y 3 z", ":3"),
                ("ZADD b 10 y 20 z 30 w", ":3"),
                ("SADD s x w", ":2"),
                (
                    "ZUNION 2 a b WITHSCORES",
                    "[[\"x\", ,1], [\"y\", ,12], [\"z\", ,23], [\"w\", ,30]]",
                ),
                ("ZINTER 2 a b", "[\"y\", \"z\"]"),
                (
                    "ZINTER 2 a b WEIGHTS 2 1 AGGREGATE MAX WITHSCORES",
                    "[[\"y\", ,10], [\"z\", ,20]]",
                ),
                (
                    "ZINTER 2 a b AGGREGATE MIN WITHSCORES",
                    "[[\"y\", ,2], [\"z\", ,3]]",
                ),
                ("ZDIFF 2 a b WITHSCORES", "[[\"x\", ,1]]"),
                ("ZDIFF 1 nokey", "[]"),
                (
                    "ZUNION 2 a s WITHSCORES",
                    "[[\"w\", ,1], [\"x\", ,2], [\"y\", ,2], [\"z\", ,3]]",
                ),
                ("ZINTER 2 a nokey", "[]"),
                ("ZINTERCARD 2 a b", ":2"),
                ("ZINTERCARD 2 a b LIMIT 1", ":1"),
                ("ZINTERCARD 2 a b LIMIT 0", ":2"),
                ("ZINTERCARD 2 a s", ":1"),
                ("ZINTERCARD 2 a nokey", ":0"),
                (
                    "ZINTERCARD 0 a",
                    "-ERR at least 1 input key is needed for 'zintercard' command",
                ),
                ("ZINTERCARD 3 a b", "-ERR syntax error"),
                ("ZINTERCARD 2 a b LIMIT -1", "-ERR LIMIT can't be negative"),
                ("ZINTERCARD 2 a b WITHSCORES", "-ERR syntax error"),
                ("ZUNIONSTORE dst 2 a b", ":4"),
                (
                    "ZRANGE dst 0 -1 WITHSCORES",
                    "[[\"x\", ,1], [\"y\", ,12], [\"z\", ,23], [\"w\", ,30]]",
                ),
                ("ZINTERSTORE dst 2 a b WEIGHTS 1 0", ":2"),
                ("ZRANGE dst 0 -1 WITHSCORES", "[[\"y\", ,2], [\"z\", ,3]]"),
                ("ZDIFFSTORE dst 2 a a", ":0"),
                ("EXISTS dst", ":0"),
                (
                    "ZUNIONSTORE dst 0 a",
                    "-ERR at least 1 input key is needed for 'zunionstore' command",
                ),
                (
                    "ZUNION 0 a",
                    "-ERR at least 1 input key is needed for 'zunion' command",
                ),
                ("ZUNION 3 a b", "-ERR syntax error"),
                ("ZUNION 2 a b WEIGHTS 1", "-ERR syntax error"),
                (
                    "ZUNION 2 a b WEIGHTS 1 x",
                    "-ERR weight value is not a float",
                ),
                ("ZUNION 2 a b AGGREGATE FOO", "-ERR syntax error"),
                ("ZDIFF 2 a b WEIGHTS 1 2", "-ERR syntax error"),
                ("ZUNIONSTORE dst 2 a b WITHSCORES", "-ERR syntax error"),
                ("SET str v", "+OK"),
                ("ZUNION 2 a str", WRONGTYPE),
            ],
        );
    }

    #[test]
    fn random_members_and_scan() {
        let node = Node::new();
        abc(&node);
        check(
            &node,
            NOW,
            &[
                ("ZRANDMEMBER nokey", "nil"),
                ("ZRANDMEMBER nokey 5", "[]"),
                ("ZRANDMEMBER z 0", "[]"),
                ("ZRANDMEMBER z 1 FOO", "-ERR syntax error"),
                ("ZSCAN nokey 0", "[\"0\", []]"),
            ],
        );
        let all = show(&node.run(NOW, "ZRANDMEMBER z 10 WITHSCORES"));
        for pair in ["[\"a\", ,1]", "[\"b\", ,2]", "[\"c\", ,3]"] {
            assert!(all.contains(pair), "{all}");
        }
        assert_eq!(
            show(&node.run(NOW, "ZRANDMEMBER z -7")).split(", ").count(),
            7
        );
        let scan = show(&node.run(NOW, "ZSCAN z 0 COUNT 100"));
        for pair in ["\"a\", \"1\"", "\"b\", \"2\"", "\"c\", \"3\""] {
            assert!(scan.contains(pair), "{scan}");
        }
        assert!(scan.starts_with("[\"0\""), "{scan}");
    }

    #[test]
    fn large_zset_ranges_stay_ordered() {
        let node = Node::new();
        let mut args = vec![b"ZADD".to_vec(), b"z".to_vec()];
        for i in 0..2_000 {
            args.push(format!("{}", (i * 7919) % 2_000 - 1_000).into_bytes());
            args.push(format!("m{i}").into_bytes());
        }
        assert_eq!(show(&node.run_at(NOW, &args)), ":2000");
        check(
            &node,
            NOW,
            &[
                ("ZCARD z", ":2000"),
                ("ZCOUNT z -1000 -1", ":1000"),
                ("ZCOUNT z 0 (1000", ":1000"),
                ("ZRANGEBYSCORE z -0.0 0 WITHSCORES", "[[\"m1000\", ,0]]"),
            ],
        );
        let first = show(&node.run(NOW, "ZRANGE z 0 2 WITHSCORES"));
        assert!(first.contains(",-1000]"), "{first}");
        let last = show(&node.run(NOW, "ZRANGE z -1 -1 WITHSCORES"));
        assert!(last.contains(",999]"), "{last}");
        assert_eq!(show(&node.run(NOW, "ZREVRANK z m0")), ":1999");
        assert_eq!(show(&node.run(NOW, "ZRANK z m1000")), ":1000");
    }
}
