//! Property test: random command sequences on hashes, lists, sets and
//! sorted sets, run against the cluster through the proxy and against a
//! small in-test model of Redis 7.2 semantics; every reply is compared
//! (order-insensitively where Redis leaves the order unspecified).
//!
//! Each case works on fresh key names (a per-case prefix), three keys of the
//! type under test plus one string key for WRONGTYPE, so cases are
//! independent and shrinking replays from a clean slate. Elements, fields
//! and scores come from small alphabets so commands keep hitting existing
//! elements, duplicates and empty keys.
//!
//! `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT cargo test --test collections_model`
//! checks the model itself against a real Redis.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{query, render, shared_target};
use proptest::prelude::*;
use proptest::test_runner::Config;

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";

/// Cases per type (each one sequence of up to `MAX_LEN` commands); the
/// `RAMPART_MODEL_CASES` environment variable overrides it for longer runs.
const CASES: u32 = 64;
const MAX_LEN: usize = 40;

fn config() -> Config {
    Config {
        cases: std::env::var("RAMPART_MODEL_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        max_shrink_iters: 300,
        // Keep regressions out of the source tree; a failure prints the
        // minimal sequence instead.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------
// The model.

#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Hash(BTreeMap<String, String>),
    List(VecDeque<String>),
    Set(BTreeSet<String>),
    ZSet(BTreeMap<String, f64>),
}

/// What the model expects a reply to be.
#[derive(Debug)]
enum Exp {
    /// `render()` of the reply, exactly.
    Exact(String),
    /// A flat array (or RESP3 set) of these strings, in any order.
    Unordered(Vec<String>),
    /// A flat field/value array, pairs in any order.
    UnorderedPairs(Vec<(String, String)>),
}

fn ex(s: impl Into<String>) -> Exp {
    Exp::Exact(s.into())
}

fn int(n: i64) -> Exp {
    ex(format!(":{n}"))
}

fn bulk(s: &str) -> String {
    format!("{s:?}")
}

fn arr(items: &[String]) -> Exp {
    ex(format!("[{}]", items.join(", ")))
}

fn bulks<'a>(items: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    items.into_iter().map(|s| bulk(s)).collect()
}

/// Redis 7.2's reply form of a score (for the score values this test uses:
/// infinities, integers and short binary fractions).
fn fmt_score(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if d == d.trunc() && d.abs() < 1e15 {
        format!("{}", d as i64)
    } else {
        format!("{d}")
    }
}

fn parse_score(s: &str) -> f64 {
    match s {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        other => other.parse().expect("test scores parse"),
    }
}

/// Redis's rank/index normalisation for LRANGE/ZRANGE/LTRIM style ranges:
/// the inclusive index range, or `None` when it selects nothing.
fn norm_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if stop < 0 { len + stop } else { stop };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

fn zsorted(z: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// A score bound: `(value, exclusive)`.
fn parse_bound(s: &str) -> (f64, bool) {
    match s.strip_prefix('(') {
        Some(rest) => (parse_score(rest), true),
        None => (parse_score(s), false),
    }
}

fn in_range(score: f64, min: (f64, bool), max: (f64, bool)) -> bool {
    let above = if min.1 { score > min.0 } else { score >= min.0 };
    let below = if max.1 { score < max.0 } else { score <= max.0 };
    above && below
}

#[derive(Default)]
struct Model {
    db: HashMap<String, Val>,
}

impl Model {
    fn kind(&self, key: &str) -> Option<&'static str> {
        self.db.get(key).map(|v| match v {
            Val::Str(_) => "string",
            Val::Hash(_) => "hash",
            Val::List(_) => "list",
            Val::Set(_) => "set",
            Val::ZSet(_) => "zset",
        })
    }

    /// Drops keys whose collection became empty, as Redis does.
    fn tidy(&mut self, key: &str) {
        let empty = match self.db.get(key) {
            Some(Val::Hash(h)) => h.is_empty(),
            Some(Val::List(l)) => l.is_empty(),
            Some(Val::Set(s)) => s.is_empty(),
            Some(Val::ZSet(z)) => z.is_empty(),
            _ => false,
        };
        if empty {
            self.db.remove(key);
        }
    }

    fn apply(&mut self, a: &[String]) -> Exp {
        if let Some(legacy) = zrange_as_legacy(a) {
            return self.apply(&legacy);
        }
        let name = a[0].to_ascii_uppercase();
        let out = match name.as_str() {
            "DEL" => {
                let n = a[1..]
                    .iter()
                    .filter(|k| self.db.remove(*k).is_some())
                    .count();
                Ok(int(n as i64))
            }
            "EXISTS" => Ok(int(
                a[1..].iter().filter(|k| self.db.contains_key(*k)).count() as i64,
            )),
            "TYPE" => Ok(ex(format!("+{}", self.kind(&a[1]).unwrap_or("none")))),
            "SET" => {
                self.db.insert(a[1].clone(), Val::Str(a[2].clone()));
                Ok(ex("+OK"))
            }
            "GET" => match self.db.get(&a[1]) {
                None => Ok(ex("nil")),
                Some(Val::Str(s)) => Ok(ex(bulk(s))),
                Some(_) => Err(()),
            },
            n if n.starts_with('H') => self.hash(&name, a),
            n if n.starts_with('S') => self.set(&name, a),
            n if n.starts_with('Z') => self.zset(&name, a),
            _ => self.list(&name, a),
        };
        for k in &a[1..] {
            self.tidy(k);
        }
        out.unwrap_or_else(|()| ex(WRONGTYPE))
    }

    fn hash_mut(
        &mut self,
        key: &str,
        create: bool,
    ) -> Result<Option<&mut BTreeMap<String, String>>, ()> {
        if create && !self.db.contains_key(key) {
            self.db.insert(key.to_string(), Val::Hash(BTreeMap::new()));
        }
        match self.db.get_mut(key) {
            None => Ok(None),
            Some(Val::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(()),
        }
    }

    fn hash(&mut self, name: &str, a: &[String]) -> Result<Exp, ()> {
        let key = &a[1];
        let empty = BTreeMap::new();
        match name {
            "HSET" => {
                let h = self.hash_mut(key, true)?.expect("created");
                let mut added = 0;
                for p in a[2..].chunks(2) {
                    if h.insert(p[0].clone(), p[1].clone()).is_none() {
                        added += 1;
                    }
                }
                Ok(int(added))
            }
            "HSETNX" => {
                let h = self.hash_mut(key, true)?.expect("created");
                if h.contains_key(&a[2]) {
                    Ok(int(0))
                } else {
                    h.insert(a[2].clone(), a[3].clone());
                    Ok(int(1))
                }
            }
            "HDEL" => Ok(int(match self.hash_mut(key, false)? {
                None => 0,
                Some(h) => a[2..].iter().filter(|f| h.remove(*f).is_some()).count() as i64,
            })),
            "HINCRBY" => {
                let by: i64 = a[3].parse().expect("test increments parse");
                let h = self.hash_mut(key, true)?.expect("created");
                let cur = h.get(&a[2]).cloned().unwrap_or_else(|| "0".into());
                match cur.parse::<i64>() {
                    Ok(n) => match n.checked_add(by) {
                        Some(v) => {
                            h.insert(a[2].clone(), v.to_string());
                            Ok(int(v))
                        }
                        None => Ok(ex("-ERR increment or decrement would overflow")),
                    },
                    Err(_) => Ok(ex("-ERR hash value is not an integer")),
                }
            }
            _ => {
                let h = self.hash_mut(key, false)?.map(|h| &*h).unwrap_or(&empty);
                Ok(match name {
                    "HGET" => ex(h.get(&a[2]).map_or("nil".into(), |v| bulk(v))),
                    "HMGET" => arr(&a[2..]
                        .iter()
                        .map(|f| h.get(f).map_or("nil".into(), |v| bulk(v)))
                        .collect::<Vec<_>>()),
                    "HLEN" => int(h.len() as i64),
                    "HEXISTS" => int(h.contains_key(&a[2]) as i64),
                    "HSTRLEN" => int(h.get(&a[2]).map_or(0, |v| v.len()) as i64),
                    "HKEYS" => Exp::Unordered(h.keys().cloned().collect()),
                    "HVALS" => Exp::Unordered(h.values().cloned().collect()),
                    "HGETALL" => {
                        Exp::UnorderedPairs(h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    }
                    other => panic!("model has no {other}"),
                })
            }
        }
    }

    fn set_ref(&self, key: &str) -> Result<Option<&BTreeSet<String>>, ()> {
        match self.db.get(key) {
            None => Ok(None),
            Some(Val::Set(s)) => Ok(Some(s)),
            Some(_) => Err(()),
        }
    }

    fn set_mut(&mut self, key: &str) -> Result<&mut BTreeSet<String>, ()> {
        let v = self
            .db
            .entry(key.to_string())
            .or_insert_with(|| Val::Set(BTreeSet::new()));
        match v {
            Val::Set(s) => Ok(s),
            _ => Err(()),
        }
    }

    /// SINTER/SUNION/SDIFF of `keys` (every key type-checked first).
    fn combine(&self, op: &str, keys: &[String]) -> Result<BTreeSet<String>, ()> {
        let sets: Vec<Option<&BTreeSet<String>>> = keys
            .iter()
            .map(|k| self.set_ref(k))
            .collect::<Result<_, _>>()?;
        let empty = BTreeSet::new();
        let first = sets[0].unwrap_or(&empty).clone();
        Ok(sets[1..].iter().fold(first, |acc, s| {
            let s = s.unwrap_or(&empty);
            match op {
                "INTER" => acc.intersection(s).cloned().collect(),
                "UNION" => acc.union(s).cloned().collect(),
                _ => acc.difference(s).cloned().collect(),
            }
        }))
    }

    fn set(&mut self, name: &str, a: &[String]) -> Result<Exp, ()> {
        let key = &a[1];
        let empty = BTreeSet::new();
        match name {
            "SADD" => {
                let s = self.set_mut(key)?;
                Ok(int(
                    a[2..].iter().filter(|m| s.insert((*m).clone())).count() as i64,
                ))
            }
            "SREM" => Ok(int(match self.set_ref(key)? {
                None => 0,
                Some(_) => {
                    let s = self.set_mut(key)?;
                    a[2..].iter().filter(|m| s.remove(*m)).count() as i64
                }
            })),
            "SMOVE" => {
                let (src, dst, m) = (&a[1], &a[2], &a[3]);
                // A missing source answers 0 before any type check.
                if !self.db.contains_key(src) {
                    return Ok(int(0));
                }
                let has = self.set_ref(src)?.is_some_and(|s| s.contains(m));
                self.set_ref(dst)?;
                if src == dst {
                    return Ok(int(has as i64));
                }
                if !has {
                    return Ok(int(0));
                }
                self.set_mut(src)?.remove(m);
                self.set_mut(dst)?.insert(m.clone());
                Ok(int(1))
            }
            "SINTER" | "SUNION" | "SDIFF" => {
                let r = self.combine(&name[1..], &a[1..])?;
                Ok(Exp::Unordered(r.into_iter().collect()))
            }
            "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" => {
                let r = self.combine(&name[1..name.len() - 5], &a[2..])?;
                let n = r.len();
                if r.is_empty() {
                    self.db.remove(key);
                } else {
                    self.db.insert(key.clone(), Val::Set(r));
                }
                Ok(int(n as i64))
            }
            "SINTERCARD" => {
                let n: usize = a[1].parse().expect("numkeys");
                let found = self.combine("INTER", &a[2..2 + n])?.len();
                let limit: usize = a.get(3 + n).map_or(0, |l| l.parse().expect("limit"));
                Ok(int(if limit > 0 { found.min(limit) } else { found } as i64))
            }
            _ => {
                let s = self.set_ref(key)?.unwrap_or(&empty);
                Ok(match name {
                    "SCARD" => int(s.len() as i64),
                    "SISMEMBER" => int(s.contains(&a[2]) as i64),
                    "SMISMEMBER" => arr(&a[2..]
                        .iter()
                        .map(|m| format!(":{}", s.contains(m) as i64))
                        .collect::<Vec<_>>()),
                    "SMEMBERS" => Exp::Unordered(s.iter().cloned().collect()),
                    other => panic!("model has no {other}"),
                })
            }
        }
    }

    fn zref(&self, key: &str) -> Result<Option<&BTreeMap<String, f64>>, ()> {
        match self.db.get(key) {
            None => Ok(None),
            Some(Val::ZSet(z)) => Ok(Some(z)),
            Some(_) => Err(()),
        }
    }

    fn zmut(&mut self, key: &str) -> Result<&mut BTreeMap<String, f64>, ()> {
        let v = self
            .db
            .entry(key.to_string())
            .or_insert_with(|| Val::ZSet(BTreeMap::new()));
        match v {
            Val::ZSet(z) => Ok(z),
            _ => Err(()),
        }
    }

    fn zadd(&mut self, a: &[String]) -> Result<Exp, ()> {
        let mut i = 2;
        let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
            (false, false, false, false, false, false);
        while let Some(flag) = a.get(i) {
            match flag.as_str() {
                "NX" => nx = true,
                "XX" => xx = true,
                "GT" => gt = true,
                "LT" => lt = true,
                "CH" => ch = true,
                "INCR" => incr = true,
                _ => break,
            }
            i += 1;
        }
        let pairs = &a[i..];
        if nx && xx {
            return Ok(ex(
                "-ERR XX and NX options at the same time are not compatible",
            ));
        }
        if (nx && (gt || lt)) || (gt && lt) {
            return Ok(ex(
                "-ERR GT, LT, and/or NX options at the same time are not compatible",
            ));
        }
        if incr && pairs.len() > 2 {
            return Ok(ex(
                "-ERR INCR option supports a single increment-element pair",
            ));
        }
        self.zref(&a[1])?;
        let z = self.zmut(&a[1])?;
        let mut added = 0;
        let mut changed = 0;
        let mut incr_result = None;
        for p in pairs.chunks(2) {
            let score = parse_score(&p[0]);
            let member = &p[1];
            match z.get(member).copied() {
                Some(cur) => {
                    if nx {
                        continue;
                    }
                    let new = if incr { cur + score } else { score };
                    if new.is_nan() {
                        return Ok(ex("-ERR resulting score is not a number (NaN)"));
                    }
                    if (gt && new <= cur) || (lt && new >= cur) {
                        continue;
                    }
                    incr_result = Some(new);
                    if new != cur {
                        z.insert(member.clone(), new);
                        changed += 1;
                    }
                }
                None => {
                    if xx {
                        continue;
                    }
                    z.insert(member.clone(), score);
                    incr_result = Some(score);
                    added += 1;
                }
            }
        }
        Ok(if incr {
            ex(incr_result.map_or("nil".into(), |s| bulk(&fmt_score(s))))
        } else {
            int(if ch { added + changed } else { added })
        })
    }

    fn zset(&mut self, name: &str, a: &[String]) -> Result<Exp, ()> {
        let key = &a[1];
        let empty = BTreeMap::new();
        match name {
            "ZADD" => self.zadd(a),
            "ZINCRBY" => {
                let by = parse_score(&a[2]);
                let z = self.zmut(key)?;
                let new = z.get(&a[3]).copied().unwrap_or(0.0) + by;
                if new.is_nan() {
                    return Ok(ex("-ERR resulting score is not a number (NaN)"));
                }
                z.insert(a[3].clone(), new);
                Ok(ex(bulk(&fmt_score(new))))
            }
            "ZREM" => Ok(int(match self.zref(key)? {
                None => 0,
                Some(_) => {
                    let z = self.zmut(key)?;
                    a[2..].iter().filter(|m| z.remove(*m).is_some()).count() as i64
                }
            })),
            "ZMPOP" => {
                let n: usize = a[1].parse().expect("numkeys");
                let max = a[2 + n] == "MAX";
                let count: usize = a.get(4 + n).map_or(1, |c| c.parse().expect("count"));
                for k in &a[2..2 + n] {
                    let Some(z) = self.zref(k)? else {
                        continue;
                    };
                    let mut order = zsorted(z);
                    if max {
                        order.reverse();
                    }
                    order.truncate(count);
                    let z = self.zmut(k)?;
                    let mut pairs = Vec::new();
                    for (m, s) in order {
                        z.remove(&m);
                        pairs.push(format!("[{}, {}]", bulk(&m), bulk(&fmt_score(s))));
                    }
                    return Ok(ex(format!("[{}, [{}]]", bulk(k), pairs.join(", "))));
                }
                Ok(ex("nil"))
            }
            "ZPOPMIN" | "ZPOPMAX" => {
                let count: usize = a.get(2).map_or(1, |c| c.parse().expect("count"));
                let Some(z) = self.zref(key)? else {
                    return Ok(ex("[]"));
                };
                let mut order = zsorted(z);
                if name == "ZPOPMAX" {
                    order.reverse();
                }
                order.truncate(count);
                let z = self.zmut(key)?;
                let mut items = Vec::new();
                for (m, s) in order {
                    z.remove(&m);
                    items.push(bulk(&m));
                    items.push(bulk(&fmt_score(s)));
                }
                Ok(arr(&items))
            }
            "ZREMRANGEBYRANK" | "ZREMRANGEBYSCORE" => {
                let Some(z) = self.zref(key)? else {
                    return Ok(int(0));
                };
                let order = zsorted(z);
                let doomed: Vec<String> = if name == "ZREMRANGEBYRANK" {
                    let (s, e) = (a[2].parse().expect("rank"), a[3].parse().expect("rank"));
                    match norm_range(s, e, order.len()) {
                        None => Vec::new(),
                        Some((s, e)) => order[s..=e].iter().map(|p| p.0.clone()).collect(),
                    }
                } else {
                    let (min, max) = (parse_bound(&a[2]), parse_bound(&a[3]));
                    order
                        .iter()
                        .filter(|p| in_range(p.1, min, max))
                        .map(|p| p.0.clone())
                        .collect()
                };
                let z = self.zmut(key)?;
                for m in &doomed {
                    z.remove(m);
                }
                Ok(int(doomed.len() as i64))
            }
            "ZUNIONSTORE" | "ZINTERSTORE" => {
                let n: usize = a[2].parse().expect("numkeys");
                let srcs: Vec<Option<&BTreeMap<String, f64>>> = a[3..3 + n]
                    .iter()
                    .map(|k| self.zref(k))
                    .collect::<Result<_, _>>()?;
                let mut acc: BTreeMap<String, f64> = BTreeMap::new();
                let mut first = true;
                for s in srcs {
                    let s = s.unwrap_or(&empty);
                    if name == "ZUNIONSTORE" {
                        for (m, sc) in s {
                            let e = acc.entry(m.clone()).or_insert(0.0);
                            let sum = *e + sc;
                            // inf + -inf counts as 0, as in Redis.
                            *e = if sum.is_nan() { 0.0 } else { sum };
                        }
                    } else if first {
                        acc = s.clone();
                    } else {
                        acc = acc
                            .into_iter()
                            .filter_map(|(m, sc)| {
                                s.get(&m).map(|o| {
                                    let sum = sc + o;
                                    (m, if sum.is_nan() { 0.0 } else { sum })
                                })
                            })
                            .collect();
                    }
                    first = false;
                }
                let len = acc.len();
                if acc.is_empty() {
                    self.db.remove(key);
                } else {
                    self.db.insert(key.clone(), Val::ZSet(acc));
                }
                Ok(int(len as i64))
            }
            _ => {
                let z = self.zref(key)?.unwrap_or(&empty);
                let order = zsorted(z);
                Ok(match name {
                    "ZCARD" => int(z.len() as i64),
                    "ZSCORE" => ex(z.get(&a[2]).map_or("nil".into(), |s| bulk(&fmt_score(*s)))),
                    "ZMSCORE" => arr(&a[2..]
                        .iter()
                        .map(|m| z.get(m).map_or("nil".into(), |s| bulk(&fmt_score(*s))))
                        .collect::<Vec<_>>()),
                    "ZRANK" | "ZREVRANK" => match order.iter().position(|p| p.0 == a[2]) {
                        None => ex("nil"),
                        Some(r) if name == "ZRANK" => int(r as i64),
                        Some(r) => int((order.len() - 1 - r) as i64),
                    },
                    "ZCOUNT" => {
                        let (min, max) = (parse_bound(&a[2]), parse_bound(&a[3]));
                        int(order.iter().filter(|p| in_range(p.1, min, max)).count() as i64)
                    }
                    "ZRANGE" | "ZREVRANGE" => {
                        let mut order = order;
                        if name == "ZREVRANGE" {
                            order.reverse();
                        }
                        let (s, e) = (a[2].parse().expect("rank"), a[3].parse().expect("rank"));
                        let picked = match norm_range(s, e, order.len()) {
                            None => &order[..0],
                            Some((s, e)) => &order[s..=e],
                        };
                        range_reply(picked, a.iter().any(|x| x == "WITHSCORES"))
                    }
                    "ZRANGEBYSCORE" | "ZREVRANGEBYSCORE" => {
                        let mut order = order;
                        let (min, max) = if name == "ZRANGEBYSCORE" {
                            (parse_bound(&a[2]), parse_bound(&a[3]))
                        } else {
                            order.reverse();
                            (parse_bound(&a[3]), parse_bound(&a[2]))
                        };
                        let mut picked: Vec<(String, f64)> = order
                            .into_iter()
                            .filter(|p| in_range(p.1, min, max))
                            .collect();
                        if let Some(i) = a.iter().position(|x| x == "LIMIT") {
                            let off: usize = a[i + 1].parse().expect("offset");
                            let cnt: i64 = a[i + 2].parse().expect("count");
                            picked = picked.into_iter().skip(off).collect();
                            if cnt >= 0 {
                                picked.truncate(cnt as usize);
                            }
                        }
                        range_reply(&picked, a.iter().any(|x| x == "WITHSCORES"))
                    }
                    other => panic!("model has no {other}"),
                })
            }
        }
    }

    fn list_ref(&self, key: &str) -> Result<Option<&VecDeque<String>>, ()> {
        match self.db.get(key) {
            None => Ok(None),
            Some(Val::List(l)) => Ok(Some(l)),
            Some(_) => Err(()),
        }
    }

    fn list_mut(&mut self, key: &str) -> Result<&mut VecDeque<String>, ()> {
        let v = self
            .db
            .entry(key.to_string())
            .or_insert_with(|| Val::List(VecDeque::new()));
        match v {
            Val::List(l) => Ok(l),
            _ => Err(()),
        }
    }

    fn list(&mut self, name: &str, a: &[String]) -> Result<Exp, ()> {
        let key = &a[1];
        let empty = VecDeque::new();
        match name {
            "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" => {
                let exists = self.list_ref(key)?.is_some();
                if name.ends_with('X') && !exists {
                    return Ok(int(0));
                }
                let l = self.list_mut(key)?;
                for e in &a[2..] {
                    if name.starts_with('L') {
                        l.push_front(e.clone());
                    } else {
                        l.push_back(e.clone());
                    }
                }
                Ok(int(l.len() as i64))
            }
            "LPOP" | "RPOP" => {
                let count: Option<usize> = a.get(2).map(|c| c.parse().expect("count"));
                if self.list_ref(key)?.is_none() {
                    return Ok(ex("nil"));
                }
                let l = self.list_mut(key)?;
                let mut pop = || {
                    if name == "LPOP" {
                        l.pop_front()
                    } else {
                        l.pop_back()
                    }
                };
                Ok(match count {
                    None => ex(bulk(&pop().expect("non-empty"))),
                    Some(n) => {
                        let items: Vec<String> = (0..n).map_while(|_| pop()).collect();
                        arr(&bulks(&items))
                    }
                })
            }
            "LSET" => {
                let idx: i64 = a[2].parse().expect("index");
                if self.list_ref(key)?.is_none() {
                    return Ok(ex("-ERR no such key"));
                }
                let l = self.list_mut(key)?;
                let i = if idx < 0 { l.len() as i64 + idx } else { idx };
                if i < 0 || i >= l.len() as i64 {
                    return Ok(ex("-ERR index out of range"));
                }
                l[i as usize] = a[3].clone();
                Ok(ex("+OK"))
            }
            "LINSERT" => {
                if self.list_ref(key)?.is_none() {
                    return Ok(int(0));
                }
                let l = self.list_mut(key)?;
                match l.iter().position(|e| *e == a[3]) {
                    None => Ok(int(-1)),
                    Some(p) => {
                        let at = if a[2] == "BEFORE" { p } else { p + 1 };
                        l.insert(at, a[4].clone());
                        Ok(int(l.len() as i64))
                    }
                }
            }
            "LREM" => {
                let count: i64 = a[2].parse().expect("count");
                if self.list_ref(key)?.is_none() {
                    return Ok(int(0));
                }
                let l = self.list_mut(key)?;
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let mut removed = 0;
                let mut keep: Vec<String> = Vec::new();
                let items: Vec<String> = if count < 0 {
                    l.iter().rev().cloned().collect()
                } else {
                    l.iter().cloned().collect()
                };
                for e in items {
                    if e == a[3] && removed < limit {
                        removed += 1;
                    } else {
                        keep.push(e);
                    }
                }
                if count < 0 {
                    keep.reverse();
                }
                *l = keep.into();
                Ok(int(removed as i64))
            }
            "LTRIM" => {
                let (s, e) = (a[2].parse().expect("start"), a[3].parse().expect("stop"));
                if self.list_ref(key)?.is_none() {
                    return Ok(ex("+OK"));
                }
                let l = self.list_mut(key)?;
                *l = match norm_range(s, e, l.len()) {
                    None => VecDeque::new(),
                    Some((s, e)) => l.range(s..=e).cloned().collect(),
                };
                Ok(ex("+OK"))
            }
            "LMPOP" => {
                let n: usize = a[1].parse().expect("numkeys");
                let left = a[2 + n] == "LEFT";
                let count: usize = a.get(4 + n).map_or(1, |c| c.parse().expect("count"));
                for k in &a[2..2 + n] {
                    if self.list_ref(k)?.is_none() {
                        continue;
                    }
                    let l = self.list_mut(k)?;
                    let items: Vec<String> = (0..count)
                        .map_while(|_| if left { l.pop_front() } else { l.pop_back() })
                        .collect();
                    return Ok(ex(format!("[{}, [{}]]", bulk(k), bulks(&items).join(", "))));
                }
                Ok(ex("nil"))
            }
            "LMOVE" | "RPOPLPUSH" => {
                let (src, dst) = (&a[1], &a[2]);
                let (from_left, to_left) = if name == "RPOPLPUSH" {
                    (false, true)
                } else {
                    (a[3] == "LEFT", a[4] == "LEFT")
                };
                if self.list_ref(src)?.is_none() {
                    return Ok(ex("nil"));
                }
                self.list_ref(dst)?;
                let s = self.list_mut(src)?;
                let e = if from_left {
                    s.pop_front()
                } else {
                    s.pop_back()
                }
                .expect("non-empty");
                let d = self.list_mut(dst)?;
                if to_left {
                    d.push_front(e.clone());
                } else {
                    d.push_back(e.clone());
                }
                Ok(ex(bulk(&e)))
            }
            _ => {
                let l = self.list_ref(key)?.unwrap_or(&empty);
                Ok(match name {
                    "LLEN" => int(l.len() as i64),
                    "LINDEX" => {
                        let idx: i64 = a[2].parse().expect("index");
                        let i = if idx < 0 { l.len() as i64 + idx } else { idx };
                        if i < 0 || i >= l.len() as i64 {
                            ex("nil")
                        } else {
                            ex(bulk(&l[i as usize]))
                        }
                    }
                    "LRANGE" => {
                        let (s, e) = (a[2].parse().expect("start"), a[3].parse().expect("stop"));
                        match norm_range(s, e, l.len()) {
                            None => ex("[]"),
                            Some((s, e)) => arr(&bulks(l.range(s..=e))),
                        }
                    }
                    "LPOS" => lpos(l, a),
                    other => panic!("model has no {other}"),
                })
            }
        }
    }
}

/// `ZRANGE k start stop [BYSCORE] [REV] [LIMIT o c] [WITHSCORES]` as the
/// equivalent ZREVRANGE / ZRANGEBYSCORE / ZREVRANGEBYSCORE command (with
/// REV, ZRANGE takes the bounds in the same max-then-min order as the
/// legacy reverse commands).
fn zrange_as_legacy(a: &[String]) -> Option<Vec<String>> {
    if a[0] != "ZRANGE" {
        return None;
    }
    let has = |w: &str| a[4..].iter().any(|x| x == w);
    let (by_score, rev) = (has("BYSCORE"), has("REV"));
    if !by_score && !rev {
        return None;
    }
    let name = match (by_score, rev) {
        (true, false) => "ZRANGEBYSCORE",
        (true, true) => "ZREVRANGEBYSCORE",
        _ => "ZREVRANGE",
    };
    let mut out = vec![name.to_string(), a[1].clone(), a[2].clone(), a[3].clone()];
    if has("WITHSCORES") {
        out.push("WITHSCORES".into());
    }
    if let Some(i) = a.iter().position(|x| x == "LIMIT") {
        out.extend(a[i..i + 3].iter().cloned());
    }
    Some(out)
}

fn range_reply(picked: &[(String, f64)], withscores: bool) -> Exp {
    let mut items = Vec::new();
    for (m, s) in picked {
        items.push(bulk(m));
        if withscores {
            items.push(bulk(&fmt_score(*s)));
        }
    }
    arr(&items)
}

/// LPOS key element [RANK r] [COUNT c] [MAXLEN m].
fn lpos(l: &VecDeque<String>, a: &[String]) -> Exp {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i + 1 < a.len() {
        let n: i64 = a[i + 1].parse().expect("option value");
        match a[i].as_str() {
            "RANK" => rank = n,
            "COUNT" => count = Some(n as usize),
            _ => maxlen = n as usize,
        }
        i += 2;
    }
    let len = l.len();
    let scan = if maxlen == 0 { len } else { maxlen.min(len) };
    let idxs: Vec<usize> = if rank > 0 {
        (0..scan).collect()
    } else {
        (0..scan).map(|j| len - 1 - j).collect()
    };
    let mut skip = rank.unsigned_abs() as usize - 1;
    let want = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(c) => c,
    };
    let mut found = Vec::new();
    for i in idxs {
        if l[i] == a[2] {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(i);
            if found.len() >= want {
                break;
            }
        }
    }
    match count {
        None => found.first().map_or(ex("nil"), |i| int(*i as i64)),
        Some(_) => arr(&found.iter().map(|i| format!(":{i}")).collect::<Vec<_>>()),
    }
}

// ---------------------------------------------------------------------------
// Comparing replies.

fn flat_strings(v: &redis::Value) -> Option<Vec<String>> {
    match v {
        redis::Value::Array(items) | redis::Value::Set(items) => items
            .iter()
            .map(|i| match i {
                redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn matches(exp: &Exp, got: &redis::Value) -> bool {
    match exp {
        Exp::Exact(s) => render(got) == *s,
        Exp::Unordered(want) => flat_strings(got).is_some_and(|mut g| {
            let mut w = want.clone();
            g.sort();
            w.sort();
            g == w
        }),
        Exp::UnorderedPairs(want) => flat_strings(got).is_some_and(|g| {
            if g.len() % 2 != 0 {
                return false;
            }
            let mut pairs: Vec<(String, String)> =
                g.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            let mut w = want.clone();
            pairs.sort();
            w.sort();
            pairs == w
        }),
    }
}

static CASE: AtomicU64 = AtomicU64::new(0);

/// The placeholders commands are generated with: `K0`..`K2` are keys of the
/// type under test, `KS` holds a string.
fn bind(cmd: &[String], prefix: &str) -> Vec<String> {
    cmd.iter()
        .map(|a| match a.as_str() {
            "K0" | "K1" | "K2" | "KS" => format!("{prefix}{a}"),
            _ => a.clone(),
        })
        .collect()
}

/// Runs one sequence against the target and the model; the first mismatch
/// fails the case with the whole sequence so far.
fn run_sequence(kind: &str, cmds: &[Vec<String>]) -> Result<(), TestCaseError> {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    // One hash tag per case, so a multi-key command never spans slots.
    let prefix = format!("pm:{{{kind}{case}}}:");
    let mut con = shared_target().connection();
    let mut model = Model::default();
    let setup = bind(&["SET".into(), "KS".into(), "str".into()], &prefix);
    let refs: Vec<&str> = setup.iter().map(String::as_str).collect();
    query(&mut con, &refs);
    model.apply(&setup);
    let mut log = Vec::new();
    for cmd in cmds {
        let args = bind(cmd, &prefix);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = query(&mut con, &refs);
        let exp = model.apply(&args);
        log.push(format!("{} -> {}", cmd.join(" "), render(&got)));
        prop_assert!(
            matches(&exp, &got),
            "{kind} sequence diverged.\n  command: {}\n  expected: {exp:?}\n  got: {}\n  sequence:\n    {}",
            cmd.join(" "),
            render(&got),
            log.join("\n    ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Command generators.

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(options).prop_map(str::to_string)
}

/// A key of the type under test, occasionally the string key.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![6 => pick(&["K0", "K1", "K2"]), 1 => Just("KS".to_string())]
}

fn coll_key() -> impl Strategy<Value = String> {
    pick(&["K0", "K1", "K2"])
}

fn cmd(parts: Vec<String>) -> Vec<String> {
    parts
}

/// `NAME numkeys key... DIR [COUNT n]` (LMPOP / ZMPOP).
fn mpop(name: &'static str, dirs: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    (
        proptest::collection::vec(key(), 1..4),
        pick(dirs),
        proptest::option::of(1usize..4),
    )
        .prop_map(move |(keys, dir, count)| {
            let mut v = vec![name.to_string(), keys.len().to_string()];
            v.extend(keys);
            v.push(dir);
            if let Some(c) = count {
                v.extend(["COUNT".to_string(), c.to_string()]);
            }
            v
        })
}

fn generic_cmds() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        (key()).prop_map(|k| cmd(vec!["DEL".into(), k])),
        (key(), key()).prop_map(|(a, b)| cmd(vec!["EXISTS".into(), a, b])),
        (key()).prop_map(|k| cmd(vec!["TYPE".into(), k])),
    ]
}

fn hash_cmds() -> impl Strategy<Value = Vec<String>> {
    let field = || pick(&["f1", "f2", "f3", "f4"]);
    let value = || pick(&["1", "-2", "x", "10", ""]);
    prop_oneof![
        4 => (key(), proptest::collection::vec((field(), value()), 1..4)).prop_map(|(k, ps)| {
            let mut v = vec!["HSET".to_string(), k];
            for (f, x) in ps {
                v.push(f);
                v.push(x);
            }
            v
        }),
        1 => (key(), field(), value()).prop_map(|(k, f, x)| vec!["HSETNX".into(), k, f, x]),
        2 => (key(), field()).prop_map(|(k, f)| vec!["HGET".into(), k, f]),
        1 => (key(), field(), field()).prop_map(|(k, f, g)| vec!["HMGET".into(), k, f, g]),
        2 => (key(), proptest::collection::vec(field(), 1..3)).prop_map(|(k, fs)| {
            let mut v = vec!["HDEL".to_string(), k];
            v.extend(fs);
            v
        }),
        1 => (key(), pick(&["HLEN", "HKEYS", "HVALS", "HGETALL"])).prop_map(|(k, c)| vec![c, k]),
        1 => (key(), field(), pick(&["HEXISTS", "HSTRLEN"])).prop_map(|(k, f, c)| vec![c, k, f]),
        2 => (key(), field(), pick(&["1", "-3", "5"]))
            .prop_map(|(k, f, n)| vec!["HINCRBY".into(), k, f, n]),
        1 => generic_cmds(),
    ]
}

fn set_cmds() -> impl Strategy<Value = Vec<String>> {
    let member = || pick(&["a", "b", "c", "d", "1", "2", "10"]);
    prop_oneof![
        4 => (key(), proptest::collection::vec(member(), 1..4)).prop_map(|(k, ms)| {
            let mut v = vec!["SADD".to_string(), k];
            v.extend(ms);
            v
        }),
        2 => (key(), proptest::collection::vec(member(), 1..3)).prop_map(|(k, ms)| {
            let mut v = vec!["SREM".to_string(), k];
            v.extend(ms);
            v
        }),
        1 => (key(), member()).prop_map(|(k, m)| vec!["SISMEMBER".into(), k, m]),
        1 => (key(), member(), member()).prop_map(|(k, m, n)| vec!["SMISMEMBER".into(), k, m, n]),
        1 => (key(), pick(&["SCARD", "SMEMBERS"])).prop_map(|(k, c)| vec![c, k]),
        1 => (key(), key(), member()).prop_map(|(a, b, m)| vec!["SMOVE".into(), a, b, m]),
        2 => (pick(&["SINTER", "SUNION", "SDIFF"]), key(), key())
            .prop_map(|(c, a, b)| vec![c, a, b]),
        2 => (pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), coll_key(), key(), key())
            .prop_map(|(c, d, a, b)| vec![c, d, a, b]),
        1 => (key(), key(), proptest::option::of(0usize..3)).prop_map(|(a, b, l)| {
            let mut v = vec!["SINTERCARD".into(), "2".into(), a, b];
            if let Some(l) = l {
                v.extend(["LIMIT".to_string(), l.to_string()]);
            }
            v
        }),
        1 => generic_cmds(),
    ]
}

fn zset_cmds() -> impl Strategy<Value = Vec<String>> {
    let member = || pick(&["a", "b", "c", "d", "e"]);
    let score = || pick(&["-inf", "-2.5", "-1", "0", "1", "1.5", "2", "3", "inf"]);
    let bound = || pick(&["-inf", "(-1", "0", "(1", "1.5", "2", "(3", "+inf", "(inf"]);
    let rank = || pick(&["0", "1", "2", "-1", "-2", "-5", "10"]);
    let flags = pick(&[
        "", "NX", "XX", "GT", "LT", "CH", "XX GT", "XX LT CH", "GT CH", "NX CH", "INCR", "XX INCR",
        "NX INCR", "GT INCR", "LT INCR",
    ]);
    prop_oneof![
        5 => (key(), flags, proptest::collection::vec((score(), member()), 1..4)).prop_map(
            |(k, f, ps)| {
                let mut v = vec!["ZADD".to_string(), k];
                v.extend(f.split_whitespace().map(str::to_string));
                let ps = if f.contains("INCR") { &ps[..1] } else { &ps[..] };
                for (s, m) in ps {
                    v.push(s.clone());
                    v.push(m.clone());
                }
                v
            }
        ),
        1 => (key(), pick(&["1", "-0.5", "2.5", "inf"]), member())
            .prop_map(|(k, s, m)| vec!["ZINCRBY".into(), k, s, m]),
        2 => (key(), proptest::collection::vec(member(), 1..3)).prop_map(|(k, ms)| {
            let mut v = vec!["ZREM".to_string(), k];
            v.extend(ms);
            v
        }),
        1 => (key()).prop_map(|k| vec!["ZCARD".into(), k]),
        1 => (key(), member(), pick(&["ZSCORE", "ZRANK", "ZREVRANK"]))
            .prop_map(|(k, m, c)| vec![c, k, m]),
        1 => (key(), member(), member()).prop_map(|(k, m, n)| vec!["ZMSCORE".into(), k, m, n]),
        1 => (key(), bound(), bound()).prop_map(|(k, a, b)| vec!["ZCOUNT".into(), k, a, b]),
        2 => (pick(&["ZRANGE", "ZREVRANGE"]), key(), rank(), rank(), any::<bool>()).prop_map(
            |(c, k, a, b, w)| {
                let mut v = vec![c, k, a, b];
                if w {
                    v.push("WITHSCORES".into());
                }
                v
            }
        ),
        2 => (
            pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]),
            key(),
            bound(),
            bound(),
            any::<bool>(),
            proptest::option::of((0usize..3, -1i64..3)),
        )
            .prop_map(|(c, k, a, b, w, limit)| {
                let mut v = vec![c, k, a, b];
                if w {
                    v.push("WITHSCORES".into());
                }
                if let Some((off, cnt)) = limit {
                    v.extend(["LIMIT".into(), off.to_string(), cnt.to_string()]);
                }
                v
            }),
        1 => mpop("ZMPOP", &["MIN", "MAX"]),
        2 => (
            key(),
            bound(),
            bound(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of((0usize..3, -1i64..3)),
        )
            .prop_map(|(k, a, b, rev, w, limit)| {
                let mut v = vec!["ZRANGE".to_string(), k, a, b, "BYSCORE".into()];
                if rev {
                    v.push("REV".into());
                }
                if let Some((off, cnt)) = limit {
                    v.extend(["LIMIT".into(), off.to_string(), cnt.to_string()]);
                }
                if w {
                    v.push("WITHSCORES".into());
                }
                v
            }),
        1 => (key(), rank(), rank()).prop_map(|(k, a, b)| vec!["ZRANGE".into(), k, a, b, "REV".into()]),
        1 => (pick(&["ZPOPMIN", "ZPOPMAX"]), key(), proptest::option::of(0usize..4)).prop_map(
            |(c, k, n)| {
                let mut v = vec![c, k];
                v.extend(n.map(|n| n.to_string()));
                v
            }
        ),
        1 => (key(), rank(), rank()).prop_map(|(k, a, b)| vec!["ZREMRANGEBYRANK".into(), k, a, b]),
        1 => (key(), bound(), bound()).prop_map(|(k, a, b)| vec!["ZREMRANGEBYSCORE".into(), k, a, b]),
        1 => (pick(&["ZUNIONSTORE", "ZINTERSTORE"]), coll_key(), key(), key())
            .prop_map(|(c, d, a, b)| vec![c, d, "2".into(), a, b]),
        1 => generic_cmds(),
    ]
}

fn list_cmds() -> impl Strategy<Value = Vec<String>> {
    let elem = || pick(&["a", "b", "c"]);
    let idx = || pick(&["0", "1", "2", "-1", "-2", "-4", "5"]);
    prop_oneof![
        5 => (pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), key(), proptest::collection::vec(elem(), 1..4))
            .prop_map(|(c, k, es)| {
                let mut v = vec![c, k];
                v.extend(es);
                v
            }),
        2 => (pick(&["LPOP", "RPOP"]), key(), proptest::option::of(0usize..4)).prop_map(
            |(c, k, n)| {
                let mut v = vec![c, k];
                v.extend(n.map(|n| n.to_string()));
                v
            }
        ),
        1 => (key()).prop_map(|k| vec!["LLEN".into(), k]),
        2 => (key(), idx(), idx()).prop_map(|(k, a, b)| vec!["LRANGE".into(), k, a, b]),
        1 => (key(), idx()).prop_map(|(k, i)| vec!["LINDEX".into(), k, i]),
        1 => (key(), idx(), elem()).prop_map(|(k, i, e)| vec!["LSET".into(), k, i, e]),
        1 => (key(), pick(&["BEFORE", "AFTER"]), elem(), elem())
            .prop_map(|(k, w, p, e)| vec!["LINSERT".into(), k, w, p, e]),
        1 => (key(), pick(&["0", "1", "-1", "2", "-2"]), elem())
            .prop_map(|(k, n, e)| vec!["LREM".into(), k, n, e]),
        1 => (key(), idx(), idx()).prop_map(|(k, a, b)| vec!["LTRIM".into(), k, a, b]),
        1 => (
            key(),
            elem(),
            proptest::option::of(pick(&["1", "2", "-1", "-2"])),
            proptest::option::of(pick(&["0", "1", "2"])),
            proptest::option::of(pick(&["0", "2", "3"]))
        )
            .prop_map(|(k, e, r, c, m)| {
                let mut v = vec!["LPOS".into(), k, e];
                for (name, val) in [("RANK", r), ("COUNT", c), ("MAXLEN", m)] {
                    if let Some(val) = val {
                        v.extend([name.to_string(), val]);
                    }
                }
                v
            }),
        1 => (key(), key(), pick(&["LEFT", "RIGHT"]), pick(&["LEFT", "RIGHT"]))
            .prop_map(|(a, b, f, t)| vec!["LMOVE".into(), a, b, f, t]),
        1 => (key(), key()).prop_map(|(a, b)| vec!["RPOPLPUSH".into(), a, b]),
        1 => mpop("LMPOP", &["LEFT", "RIGHT"]),
        1 => generic_cmds(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hashes_match_the_model(cmds in proptest::collection::vec(hash_cmds(), 1..MAX_LEN)) {
        run_sequence("h", &cmds)?;
    }

    #[test]
    fn sets_match_the_model(cmds in proptest::collection::vec(set_cmds(), 1..MAX_LEN)) {
        run_sequence("s", &cmds)?;
    }

    #[test]
    fn sorted_sets_match_the_model(cmds in proptest::collection::vec(zset_cmds(), 1..MAX_LEN)) {
        run_sequence("z", &cmds)?;
    }

    #[test]
    fn lists_match_the_model(cmds in proptest::collection::vec(list_cmds(), 1..MAX_LEN)) {
        run_sequence("l", &cmds)?;
    }
}
