//! List commands (non-blocking). A list is a meta record whose payload is
//! `head (u64 BE) | tail (u64 BE)` plus one record per element at
//! `prefix + seq (u64 BE)` for every `seq` in `[head, tail)`: elements are
//! always contiguous, so push/pop at either end is O(1) and LINDEX/LSET are
//! one point read/write. Insertions and removals in the middle shift the
//! elements on one side: LINSERT rewrites the shorter side
//! (O(min(i, n - i)) writes after the O(i) pivot search), LREM rewrites the
//! elements after the first removed one.

use rampart_proto::args::parse_i64;
use rampart_proto::parse::lists::LposOptions;
use rampart_proto::{errors, parse, reply};

use super::collection as coll;
use super::{CmdError, CmdResult};
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{DataRead, EngineError, Txn};

const KIND: ValueType = ValueType::List;
/// Sequence numbers start in the middle of the u64 range, so pushes on
/// either side have 2^63 slots.
const START_SEQ: u64 = 1 << 63;

/// A loaded list: meta record plus its ends.
struct List {
    meta: Meta,
    prefix: Vec<u8>,
    head: u64,
    tail: u64,
}

impl List {
    fn open(key: &[u8], meta: Meta) -> Result<List, CmdError> {
        let word = |at: usize| -> Result<u64, CmdError> {
            let bytes: [u8; 8] = meta
                .payload
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| EngineError::Corrupt("list meta without ends".into()))?;
            Ok(u64::from_be_bytes(bytes))
        };
        let (head, tail) = (word(0)?, word(8)?);
        if tail < head {
            return Err(EngineError::Corrupt("list tail before head".into()).into());
        }
        Ok(List {
            prefix: coll::prefix(key, &meta),
            meta,
            head,
            tail,
        })
    }

    fn create(txn: &mut Txn<'_>, key: &[u8]) -> Result<List, CmdError> {
        let meta = Meta {
            kind: KIND,
            version: txn.next_version()?,
            expire_at_ms: 0,
            payload: Vec::new(),
        };
        Ok(List {
            prefix: coll::prefix(key, &meta),
            meta,
            head: START_SEQ,
            tail: START_SEQ,
        })
    }

    fn len(&self) -> i64 {
        (self.tail - self.head) as i64
    }

    fn key(&self, seq: u64) -> Vec<u8> {
        let mut out = self.prefix.clone();
        out.extend_from_slice(&seq.to_be_bytes());
        out
    }

    fn get<R: DataRead + ?Sized>(&self, r: &R, index: i64) -> Result<Vec<u8>, CmdError> {
        r.get(&self.key(self.head + index as u64))?
            .ok_or_else(|| EngineError::Corrupt("list element missing".into()).into())
    }

    /// Elements `[from, to]` (0-based, already clamped), in order.
    fn range<R: DataRead + ?Sized>(
        &self,
        r: &R,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<u8>>, CmdError> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let start = self.key(self.head + from as u64);
        let end = self.key(self.head + to as u64 + 1);
        r.for_each(&start, &end, &mut |_, v| {
            out.push(v.to_vec());
            true
        })?;
        Ok(out)
    }

    fn push(&mut self, txn: &mut Txn<'_>, value: Vec<u8>, left: bool) {
        if left {
            self.head -= 1;
            txn.put(self.key(self.head), value);
        } else {
            txn.put(self.key(self.tail), value);
            self.tail += 1;
        }
    }

    fn pop(&mut self, txn: &mut Txn<'_>, left: bool) -> Result<Option<Vec<u8>>, CmdError> {
        if self.len() == 0 {
            return Ok(None);
        }
        let seq = if left { self.head } else { self.tail - 1 };
        let key = self.key(seq);
        let value = txn
            .get(&key)?
            .ok_or_else(|| EngineError::Corrupt("list element missing".into()))?;
        txn.delete(key);
        if left {
            self.head += 1;
        } else {
            self.tail -= 1;
        }
        Ok(Some(value))
    }

    /// Writes the meta record, or deletes the key when the list is empty.
    fn save(mut self, txn: &mut Txn<'_>, user_key: &[u8]) -> Result<(), CmdError> {
        if self.len() == 0 {
            txn.delete_key(user_key)?;
            return Ok(());
        }
        let mut payload = self.head.to_be_bytes().to_vec();
        payload.extend_from_slice(&self.tail.to_be_bytes());
        self.meta.payload = payload;
        txn.put_meta(user_key, &self.meta)?;
        Ok(())
    }
}

fn load<R: DataRead + ?Sized>(r: &R, key: &[u8], now: i64) -> Result<Option<List>, CmdError> {
    match coll::lookup(r, key, KIND, now)? {
        Some(meta) => Ok(Some(List::open(key, meta)?)),
        None => Ok(None),
    }
}

/// The length of the list `meta` describes (SORT).
pub(super) fn len_of(key: &[u8], meta: Meta) -> Result<i64, CmdError> {
    Ok(List::open(key, meta)?.len())
}

/// Elements `[from, to]` (0-based, inside the list) of the list `meta`
/// describes, in order (SORT).
pub(super) fn range_of<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: Meta,
    from: i64,
    to: i64,
) -> Result<Vec<Vec<u8>>, CmdError> {
    List::open(key, meta)?.range(r, from, to)
}

/// Replaces `dest`, whatever it held, with a list of `items`; deletes it
/// when there are none (SORT ... STORE).
pub(super) fn replace_with(
    txn: &mut Txn<'_>,
    dest: &[u8],
    items: Vec<Vec<u8>>,
) -> Result<(), CmdError> {
    txn.delete_key(dest)?;
    let mut list = List::create(txn, dest)?;
    for item in items {
        list.push(txn, item, false);
    }
    list.save(txn, dest)
}

fn parse_side(raw: &[u8]) -> Result<bool, CmdError> {
    Ok(parse::lists::side(raw)?)
}

/// LPUSH / RPUSH (`only_existing` false) and LPUSHX / RPUSHX.
pub fn push(
    txn: &mut Txn<'_>,
    args: &[Vec<u8>],
    now: i64,
    left: bool,
    only_existing: bool,
) -> CmdResult {
    let key = &args[0];
    let mut list = match load(&*txn, key, now)? {
        Some(list) => list,
        None if only_existing => return Ok(reply::integer(0)),
        None => List::create(txn, key)?,
    };
    for value in &args[1..] {
        list.push(txn, value.clone(), left);
    }
    let len = list.len();
    list.save(txn, key)?;
    Ok(reply::integer(len))
}

/// LPOP / RPOP key [count].
pub fn pop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, left: bool) -> CmdResult {
    if args.len() > 2 {
        return Err(errors::wrong_arity(if left { "lpop" } else { "rpop" }).into());
    }
    let key = &args[0];
    let count = match args.get(1) {
        Some(raw) => match parse_i64(raw) {
            Some(n) if n >= 0 => Some(n),
            _ => return Err(errors::NOT_POSITIVE.into()),
        },
        None => None,
    };
    let Some(mut list) = load(&*txn, key, now)? else {
        return Ok(if count.is_some() {
            reply::null_array()
        } else {
            reply::null()
        });
    };
    let Some(count) = count else {
        let value = list.pop(txn, left)?;
        list.save(txn, key)?;
        return Ok(value.map_or_else(reply::null, reply::bulk));
    };
    let mut out = Vec::new();
    while (out.len() as i64) < count {
        match list.pop(txn, left)? {
            Some(v) => out.push(v),
            None => break,
        }
    }
    list.save(txn, key)?;
    Ok(reply::bulk_array(out))
}

pub fn llen<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    Ok(reply::integer(
        load(r, &args[0], now)?.map_or(0, |l| l.len()),
    ))
}

pub fn lindex<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let index = parse_i64(&args[1]).ok_or(errors::NOT_INTEGER)?;
    let Some(list) = load(r, &args[0], now)? else {
        return Ok(reply::null());
    };
    let index = if index < 0 { index + list.len() } else { index };
    if index < 0 || index >= list.len() {
        return Ok(reply::null());
    }
    Ok(reply::bulk(list.get(r, index)?))
}

/// Normalizes a Redis `start stop` pair against `len`: `None` when empty.
fn clamp(start: i64, stop: i64, len: i64) -> Option<(i64, i64)> {
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { stop + len } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start, stop.min(len - 1)))
}

pub fn lrange<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let start = parse_i64(&args[1]).ok_or(errors::NOT_INTEGER)?;
    let stop = parse_i64(&args[2]).ok_or(errors::NOT_INTEGER)?;
    let Some(list) = load(r, &args[0], now)? else {
        return Ok(reply::array(Vec::new()));
    };
    Ok(match clamp(start, stop, list.len()) {
        Some((from, to)) => reply::bulk_array(list.range(r, from, to)?),
        None => reply::array(Vec::new()),
    })
}

pub fn lset(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let index = parse_i64(&args[1]).ok_or(errors::NOT_INTEGER)?;
    let Some(list) = load(&*txn, &args[0], now)? else {
        return Err(errors::NO_SUCH_KEY.into());
    };
    let index = if index < 0 { index + list.len() } else { index };
    if index < 0 || index >= list.len() {
        return Err("ERR index out of range".into());
    }
    txn.put(list.key(list.head + index as u64), args[2].clone());
    Ok(reply::ok())
}

/// LTRIM: both cut ends go with one range delete each.
pub fn ltrim(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let start = parse_i64(&args[1]).ok_or(errors::NOT_INTEGER)?;
    let stop = parse_i64(&args[2]).ok_or(errors::NOT_INTEGER)?;
    let Some(mut list) = load(&*txn, key, now)? else {
        return Ok(reply::ok());
    };
    match clamp(start, stop, list.len()) {
        None => {
            txn.delete_key(key)?;
        }
        Some((from, to)) => {
            let (new_head, new_tail) = (list.head + from as u64, list.head + to as u64 + 1);
            txn.delete_range(list.key(list.head), list.key(new_head));
            txn.delete_range(list.key(new_tail), list.key(list.tail));
            list.head = new_head;
            list.tail = new_tail;
            list.save(txn, key)?;
        }
    }
    Ok(reply::ok())
}

/// Every element with its 0-based index.
fn all<R: DataRead + ?Sized>(r: &R, list: &List) -> Result<Vec<Vec<u8>>, CmdError> {
    list.range(r, 0, list.len() - 1)
}

/// LINSERT key BEFORE | AFTER pivot element.
pub fn linsert(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let after = parse::lists::insert_after(&args[1])?;
    let (pivot, value) = (&args[2], &args[3]);
    let Some(mut list) = load(&*txn, key, now)? else {
        return Ok(reply::integer(0));
    };
    // Find the pivot: O(position).
    let mut found = None;
    let mut i = 0i64;
    let start = list.key(list.head);
    let end = list.key(list.tail);
    txn.for_each(&start, &end, &mut |_, v| {
        if v == pivot.as_slice() {
            found = Some(i);
            return false;
        }
        i += 1;
        true
    })?;
    let Some(pos) = found else {
        return Ok(reply::integer(-1));
    };
    // The index the new element will have.
    let at = if after { pos + 1 } else { pos };
    let len = list.len();
    if at <= len - at {
        // Shift [0, at) one slot left.
        let moved = if at > 0 {
            list.range(&*txn, 0, at - 1)?
        } else {
            Vec::new()
        };
        let new_head = list.head - 1;
        for (i, v) in moved.into_iter().enumerate() {
            txn.put(list.key(new_head + i as u64), v);
        }
        list.head = new_head;
    } else {
        // Shift [at, len) one slot right.
        let moved = list.range(&*txn, at, len - 1)?;
        let base = list.head + at as u64 + 1;
        for (i, v) in moved.into_iter().enumerate() {
            txn.put(list.key(base + i as u64), v);
        }
        list.tail += 1;
    }
    txn.put(list.key(list.head + at as u64), value.clone());
    let new_len = list.len();
    list.save(txn, key)?;
    Ok(reply::integer(new_len))
}

/// LREM key count element: reads the list, rewrites from the first removed
/// element on.
pub fn lrem(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let count = parse_i64(&args[1]).ok_or(errors::NOT_INTEGER)?;
    let element = &args[2];
    let Some(mut list) = load(&*txn, key, now)? else {
        return Ok(reply::integer(0));
    };
    let items = all(&*txn, &list)?;
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut remove = vec![false; items.len()];
    let mut removed = 0usize;
    let order: Box<dyn Iterator<Item = usize>> = if count < 0 {
        Box::new((0..items.len()).rev())
    } else {
        Box::new(0..items.len())
    };
    for i in order {
        if removed >= limit {
            break;
        }
        if items[i] == *element {
            remove[i] = true;
            removed += 1;
        }
    }
    let Some(first) = remove.iter().position(|&r| r) else {
        return Ok(reply::integer(0));
    };
    let mut seq = list.head + first as u64;
    for (i, item) in items.into_iter().enumerate().skip(first) {
        if !remove[i] {
            txn.put(list.key(seq), item);
            seq += 1;
        }
    }
    txn.delete_range(list.key(seq), list.key(list.tail));
    list.tail = seq;
    list.save(txn, key)?;
    Ok(reply::integer(removed as i64))
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len].
pub fn lpos<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, element) = (&args[0], &args[1]);
    let LposOptions {
        rank,
        count,
        maxlen,
    } = parse::lists::lpos_options(&args[2..])?;
    let none = || match count {
        Some(_) => reply::array(Vec::new()),
        None => reply::null(),
    };
    let Some(list) = load(r, key, now)? else {
        return Ok(none());
    };
    let len = list.len();
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let mut scanned = 0i64;
    let mut index = if rank > 0 { 0 } else { len - 1 };
    let (start, end) = (list.key(list.head), list.key(list.tail));
    let mut visit = |_: &[u8], v: &[u8]| {
        if maxlen > 0 && scanned >= maxlen {
            return false;
        }
        scanned += 1;
        if v == element.as_slice() {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(reply::integer(index));
            }
        }
        index += if rank > 0 { 1 } else { -1 };
        found.len() < want
    };
    if rank > 0 {
        r.for_each(&start, &end, &mut visit)?;
    } else {
        r.for_each_rev(&start, &end, &mut visit)?;
    }
    Ok(match count {
        Some(_) => reply::array(found),
        None => found.into_iter().next().unwrap_or_else(reply::null),
    })
}

/// Pops from `src`'s `from_left` end and pushes on `dst`'s `to_left` end.
fn move_one(
    txn: &mut Txn<'_>,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
    now: i64,
) -> CmdResult {
    let Some(mut source) = load(&*txn, src, now)? else {
        return Ok(reply::null());
    };
    // WRONGTYPE on the destination before anything changes.
    load(&*txn, dst, now)?;
    let Some(value) = source.pop(txn, from_left)? else {
        return Ok(reply::null());
    };
    source.save(txn, src)?;
    // Reload: when src == dst the pop above changed it.
    let mut dest = match load(&*txn, dst, now)? {
        Some(list) => list,
        None => List::create(txn, dst)?,
    };
    dest.push(txn, value.clone(), to_left);
    dest.save(txn, dst)?;
    Ok(reply::bulk(value))
}

/// LMOVE source destination LEFT | RIGHT LEFT | RIGHT.
pub fn lmove(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let from_left = parse_side(&args[2])?;
    let to_left = parse_side(&args[3])?;
    move_one(txn, &args[0], &args[1], from_left, to_left, now)
}

/// RPOPLPUSH source destination.
pub fn rpoplpush(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    move_one(txn, &args[0], &args[1], false, true, now)
}

fn parse_mpop(args: &[Vec<u8>]) -> Result<coll::MpopArgs<'_>, CmdError> {
    Ok(parse::lists::mpop(args)?)
}

/// Pops up to `count` elements from the first non-empty list of `keys`:
/// `[key, [elements]]`, or a null array when all are empty.
fn mpop(txn: &mut Txn<'_>, m: &coll::MpopArgs<'_>, now: i64) -> CmdResult {
    for key in m.keys {
        let Some(mut list) = load(&*txn, key, now)? else {
            continue;
        };
        let mut out = Vec::new();
        while (out.len() as u64) < m.count {
            match list.pop(txn, !m.second_end)? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        list.save(txn, key)?;
        return Ok(reply::array(vec![
            reply::bulk(key.clone()),
            reply::bulk_array(out),
        ]));
    }
    Ok(reply::null_array())
}

/// LMPOP numkeys key [key ...] LEFT | RIGHT [COUNT count].
pub fn lmpop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let m = parse_mpop(args)?;
    mpop(txn, &m, now)
}

// The blocking commands below are applied as one non-blocking attempt, as
// Redis runs them inside MULTI: they pop if data is there and answer a null
// reply otherwise. The node's wait loop (`exec::blocking`) retries the
// attempt when a write makes one of the keys non-empty.

/// Redis's timeout check for a blocking command, before any key is read.
fn check_timeout(raw: &[u8], now: i64) -> Result<(), CmdError> {
    rampart_proto::args::parse_timeout_secs(raw, now)?;
    Ok(())
}

/// BLPOP / BRPOP key [key ...] timeout: `[key, element]` from the first
/// non-empty list, or a null array.
pub fn bpop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, left: bool) -> CmdResult {
    let (timeout, keys) = args.split_last().ok_or(errors::SYNTAX)?;
    check_timeout(timeout, now)?;
    for key in keys {
        let Some(mut list) = load(&*txn, key, now)? else {
            continue;
        };
        let Some(value) = list.pop(txn, left)? else {
            continue;
        };
        list.save(txn, key)?;
        return Ok(reply::array(vec![
            reply::bulk(key.clone()),
            reply::bulk(value),
        ]));
    }
    Ok(reply::null_array())
}

/// BLMOVE source destination LEFT | RIGHT LEFT | RIGHT timeout.
pub fn blmove(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let from_left = parse_side(&args[2])?;
    let to_left = parse_side(&args[3])?;
    check_timeout(&args[4], now)?;
    move_one(txn, &args[0], &args[1], from_left, to_left, now)
}

/// BRPOPLPUSH source destination timeout.
pub fn brpoplpush(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    check_timeout(&args[2], now)?;
    move_one(txn, &args[0], &args[1], false, true, now)
}

/// BLMPOP timeout numkeys key [key ...] LEFT | RIGHT [COUNT count].
pub fn blmpop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let m = parse_mpop(&args[1..])?;
    check_timeout(&args[0], now)?;
    mpop(txn, &m, now)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, Node};

    const NOW: i64 = 1_700_000_000_000;
    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";

    #[test]
    fn push_pop_index_range() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("RPUSH l a b c", ":3"),
                ("LPUSH l z y", ":5"),
                ("LRANGE l 0 -1", "[\"y\", \"z\", \"a\", \"b\", \"c\"]"),
                ("LRANGE l -2 -1", "[\"b\", \"c\"]"),
                ("LRANGE l -100 1", "[\"y\", \"z\"]"),
                ("LRANGE l 3 1", "[]"),
                ("LRANGE l 10 20", "[]"),
                ("LRANGE nokey 0 -1", "[]"),
                (
                    "LRANGE l a 1",
                    "-ERR value is not an integer or out of range",
                ),
                ("LLEN l", ":5"),
                ("LLEN nokey", ":0"),
                ("LINDEX l 0", "\"y\""),
                ("LINDEX l -1", "\"c\""),
                ("LINDEX l 5", "nil"),
                ("LINDEX l -6", "nil"),
                ("LINDEX nokey 0", "nil"),
                ("LPOP l", "\"y\""),
                ("RPOP l", "\"c\""),
                ("LPOP l 2", "[\"z\", \"a\"]"),
                ("LPOP l 0", "[]"),
                ("LPOP nokey", "nil"),
                ("LPOP nokey 2", "nil"),
                ("LPOP l -1", "-ERR value is out of range, must be positive"),
                ("RPOP l 10", "[\"b\"]"),
                ("EXISTS l", ":0"),
                ("LPUSHX l a", ":0"),
                ("RPUSHX l a", ":0"),
                ("RPUSH l a", ":1"),
                ("LPUSHX l b c", ":3"),
                ("RPUSHX l d", ":4"),
                ("LRANGE l 0 -1", "[\"c\", \"b\", \"a\", \"d\"]"),
                ("LSET l 1 B", "+OK"),
                ("LSET l -1 D", "+OK"),
                ("LSET l 4 x", "-ERR index out of range"),
                ("LSET nokey 0 x", "-ERR no such key"),
                ("LRANGE l 0 -1", "[\"c\", \"B\", \"a\", \"D\"]"),
                ("TYPE l", "+list"),
                ("SET s v", "+OK"),
                ("LPUSH s a", WRONGTYPE),
                ("LRANGE s 0 -1", WRONGTYPE),
                ("LLEN s", WRONGTYPE),
                ("LPOP s", WRONGTYPE),
                (
                    "LPUSH l",
                    "-ERR wrong number of arguments for 'lpush' command",
                ),
            ],
        );
    }

    #[test]
    fn trim_insert_remove() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("RPUSH l a b c d e", ":5"),
                ("LTRIM l 1 -2", "+OK"),
                ("LRANGE l 0 -1", "[\"b\", \"c\", \"d\"]"),
                ("LTRIM l 5 10", "+OK"),
                ("EXISTS l", ":0"),
                ("LTRIM nokey 0 1", "+OK"),
                ("RPUSH l a b c d e", ":5"),
                ("LINSERT l BEFORE a x", ":6"),
                ("LINSERT l AFTER e y", ":7"),
                ("LINSERT l AFTER b z", ":8"),
                ("LINSERT l BEFORE d w", ":9"),
                (
                    "LRANGE l 0 -1",
                    "[\"x\", \"a\", \"b\", \"z\", \"c\", \"w\", \"d\", \"e\", \"y\"]",
                ),
                ("LINSERT l BEFORE nope q", ":-1"),
                ("LINSERT nokey BEFORE a q", ":0"),
                ("LINSERT l MIDDLE a q", "-ERR syntax error"),
                ("LINDEX l 4", "\"c\""),
                ("DEL l", ":1"),
                ("RPUSH l a b a c a", ":5"),
                ("LREM l 1 a", ":1"),
                ("LRANGE l 0 -1", "[\"b\", \"a\", \"c\", \"a\"]"),
                ("LREM l -1 a", ":1"),
                ("LRANGE l 0 -1", "[\"b\", \"a\", \"c\"]"),
                ("LREM l 0 nope", ":0"),
                ("RPUSH l a a", ":5"),
                ("LREM l 0 a", ":3"),
                ("LRANGE l 0 -1", "[\"b\", \"c\"]"),
                ("LLEN l", ":2"),
                ("LREM l 0 b", ":1"),
                ("LREM l 0 c", ":1"),
                ("EXISTS l", ":0"),
            ],
        );
    }

    #[test]
    fn lpos_options() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("RPUSH l a b c 1 2 3 c c", ":8"),
                ("LPOS l c", ":2"),
                ("LPOS l nope", "nil"),
                ("LPOS nokey a", "nil"),
                ("LPOS nokey a COUNT 1", "[]"),
                ("LPOS l c RANK 2", ":6"),
                ("LPOS l c RANK -1", ":7"),
                ("LPOS l c COUNT 2", "[:2, :6]"),
                ("LPOS l c COUNT 0", "[:2, :6, :7]"),
                ("LPOS l c RANK -1 COUNT 2", "[:7, :6]"),
                ("LPOS l c MAXLEN 2", "nil"),
                ("LPOS l c COUNT 0 MAXLEN 7", "[:2, :6]"),
                ("LPOS l c RANK 0", "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"),
                ("LPOS l c COUNT -1", "-ERR COUNT can't be negative"),
                ("LPOS l c MAXLEN -1", "-ERR MAXLEN can't be negative"),
                ("LPOS l c FOO 1", "-ERR syntax error"),
                ("LPOS l c RANK", "-ERR syntax error"),
            ],
        );
    }

    #[test]
    fn moves_and_mpop() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("RPUSH src a b c", ":3"),
                ("LMOVE src dst LEFT RIGHT", "\"a\""),
                ("LMOVE src dst RIGHT LEFT", "\"c\""),
                ("LRANGE dst 0 -1", "[\"c\", \"a\"]"),
                ("RPOPLPUSH src dst", "\"b\""),
                ("EXISTS src", ":0"),
                ("LMOVE src dst LEFT LEFT", "nil"),
                ("LMOVE dst dst LEFT RIGHT", "\"b\""),
                ("LRANGE dst 0 -1", "[\"c\", \"a\", \"b\"]"),
                ("LMOVE dst dst UP LEFT", "-ERR syntax error"),
                ("SET s v", "+OK"),
                ("LMOVE dst s LEFT LEFT", WRONGTYPE),
                ("LRANGE dst 0 -1", "[\"c\", \"a\", \"b\"]"),
                ("LMPOP 2 nokey dst LEFT", "[\"dst\", [\"c\"]]"),
                ("LMPOP 1 dst RIGHT COUNT 10", "[\"dst\", [\"b\", \"a\"]]"),
                ("LMPOP 1 dst RIGHT", "nil"),
                ("LMPOP 0 dst RIGHT", "-ERR numkeys should be greater than 0"),
                ("LMPOP 2 dst RIGHT", "-ERR syntax error"),
                (
                    "LMPOP 1 dst RIGHT COUNT 0",
                    "-ERR count should be greater than 0",
                ),
                ("LMPOP 1 s LEFT", WRONGTYPE),
            ],
        );
    }
}
