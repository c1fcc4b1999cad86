//! Set commands. A set is a meta record (type, version, member count) plus
//! one empty record per member at `prefix + eh(member) + member`, so
//! SADD/SREM/SISMEMBER cost one point read/write per member.

use std::collections::BTreeSet;

use rampart_proto::args::{parse_i64, Args};
use rampart_proto::{errors, parse, reply, Reply};

use super::collection::{self as coll, SplitMix};
use super::{CmdError, CmdResult};
use crate::engine::keys as layout;
use crate::engine::meta::ValueType;
use crate::engine::{DataRead, Txn};

const KIND: ValueType = ValueType::Set;

/// The members of the set at `key` (empty when missing), WRONGTYPE if not
/// a set.
pub(crate) fn members<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    now: i64,
) -> Result<Vec<Vec<u8>>, CmdError> {
    Ok(match coll::lookup(r, key, KIND, now)? {
        Some(meta) => coll::hashed_elements(r, &coll::prefix(key, &meta))?
            .into_iter()
            .map(|(m, _)| m)
            .collect(),
        None => Vec::new(),
    })
}

fn is_member<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    member: &[u8],
    now: i64,
) -> Result<bool, CmdError> {
    Ok(match coll::lookup(r, key, KIND, now)? {
        Some(meta) => r
            .get(&layout::hashed_element_key(
                &coll::prefix(key, &meta),
                member,
            ))?
            .is_some(),
        None => false,
    })
}

/// Adds `new_members` to the set at `key`; returns how many were new.
fn add(txn: &mut Txn<'_>, key: &[u8], new_members: &[Vec<u8>], now: i64) -> Result<i64, CmdError> {
    let mut meta = coll::lookup_or_create(txn, key, KIND, now)?;
    let prefix = coll::prefix(key, &meta);
    let mut count = coll::count(&meta)?;
    let mut added = 0;
    for member in new_members {
        let member_key = layout::hashed_element_key(&prefix, member);
        if txn.get(&member_key)?.is_none() {
            txn.put(member_key, Vec::new());
            added += 1;
            count += 1;
        }
    }
    if added > 0 {
        coll::store(txn, key, &mut meta, count)?;
    }
    Ok(added)
}

/// Removes `gone` from the set at `key`; returns how many were there.
fn remove(txn: &mut Txn<'_>, key: &[u8], gone: &[Vec<u8>], now: i64) -> Result<i64, CmdError> {
    let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
        return Ok(0);
    };
    let prefix = coll::prefix(key, &meta);
    let mut count = coll::count(&meta)?;
    let mut removed = 0;
    for member in gone {
        let member_key = layout::hashed_element_key(&prefix, member);
        if txn.get(&member_key)?.is_some() {
            txn.delete(member_key);
            removed += 1;
            count = count.saturating_sub(1);
        }
    }
    if removed > 0 {
        coll::store(txn, key, &mut meta, count)?;
    }
    Ok(removed)
}

pub fn sadd(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    Ok(reply::integer(add(txn, &args[0], &args[1..], now)?))
}

pub fn srem(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    Ok(reply::integer(remove(txn, &args[0], &args[1..], now)?))
}

pub fn sismember<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    Ok(reply::integer(is_member(r, &args[0], &args[1], now)? as i64))
}

pub fn smismember<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let meta = coll::lookup(r, key, KIND, now)?;
    let mut items = Vec::with_capacity(args.len() - 1);
    for member in &args[1..] {
        let found = match &meta {
            Some(meta) => r
                .get(&layout::hashed_element_key(
                    &coll::prefix(key, meta),
                    member,
                ))?
                .is_some(),
            None => false,
        };
        items.push(reply::integer(found as i64));
    }
    Ok(reply::array(items))
}

pub fn scard<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let len = match coll::lookup(r, &args[0], KIND, now)? {
        Some(meta) => coll::count(&meta)?,
        None => 0,
    };
    Ok(reply::integer(len as i64))
}

pub fn smembers<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    Ok(set_reply(members(r, &args[0], now)?))
}

fn set_reply(members: Vec<Vec<u8>>) -> Reply {
    reply::set(members.into_iter().map(reply::bulk).collect())
}

/// SRANDMEMBER key [count].
pub fn srandmember<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let counted = parse::sets::srandmember(args)?;
    let key = &args[0];
    let meta = coll::lookup(r, key, KIND, now)?;
    let mut rng = SplitMix(rand::random());
    let (k, distinct) = counted.unwrap_or((1, true));
    let picked = match &meta {
        Some(meta) => coll::random_elements(
            r,
            &coll::prefix(key, meta),
            coll::count(meta)?,
            k,
            distinct,
            &mut rng,
        )?,
        None => Vec::new(),
    };
    let mut picked = picked.into_iter().map(|(m, _)| m);
    Ok(match counted {
        None => picked.next().map_or_else(reply::null, reply::bulk),
        Some(_) => reply::bulk_array(picked),
    })
}

/// SPOP key [count]. The members are chosen by a generator seeded from the
/// entry, so every replica pops the same ones.
pub fn spop(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    if args.len() > 2 {
        return Err(errors::SYNTAX.into());
    }
    let key = &args[0];
    let count = match args.get(1) {
        Some(raw) => {
            let n = parse_i64(raw).ok_or(errors::NOT_POSITIVE)?;
            if n < 0 {
                return Err(errors::NOT_POSITIVE.into());
            }
            Some(n as u64)
        }
        None => None,
    };
    let Some(mut meta) = coll::lookup(&*txn, key, KIND, now)? else {
        return Ok(match count {
            None => reply::null(),
            Some(_) => reply::set(Vec::new()),
        });
    };
    let len = coll::count(&meta)?;
    let prefix = coll::prefix(key, &meta);
    let mut rng = SplitMix::for_write(now, key, &meta);
    let picked: Vec<Vec<u8>> =
        coll::random_elements(&*txn, &prefix, len, count.unwrap_or(1), true, &mut rng)?
            .into_iter()
            .map(|(m, _)| m)
            .collect();
    if picked.len() as u64 >= len {
        txn.delete_key(key)?;
    } else {
        for member in &picked {
            txn.delete(layout::hashed_element_key(&prefix, member));
        }
        coll::store(txn, key, &mut meta, len - picked.len() as u64)?;
    }
    Ok(match count {
        None => picked
            .into_iter()
            .next()
            .map_or_else(reply::null, reply::bulk),
        Some(_) => set_reply(picked),
    })
}

pub fn smove(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let mut a = Args::new(args);
    let (source, dest, member) = (a.next_bytes()?, a.next_bytes()?, a.next_bytes()?);
    // A missing source answers 0 before any type check (Redis 7.2's order),
    // even when the destination holds another type.
    if coll::lookup(&*txn, source, KIND, now)?.is_none() {
        return Ok(reply::integer(0));
    }
    let in_source = is_member(&*txn, source, member, now)?;
    // Redis checks the destination's type even when nothing moves.
    coll::lookup(&*txn, dest, KIND, now)?;
    if !in_source {
        return Ok(reply::integer(0));
    }
    if source != dest {
        remove(txn, source, &[member.to_vec()], now)?;
        add(txn, dest, &[member.to_vec()], now)?;
    }
    Ok(reply::integer(1))
}

/// How several sets combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Inter,
    Union,
    Diff,
}

/// The result of `op` over the sets at `keys`, in a stable order.
fn combine<R: DataRead + ?Sized>(
    r: &R,
    keys: &[Vec<u8>],
    op: Op,
    now: i64,
    limit: usize,
) -> Result<Vec<Vec<u8>>, CmdError> {
    // Type-check every key first: WRONGTYPE wins over an empty result.
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        sets.push(coll::lookup(r, key, KIND, now)?.map(|meta| (key, meta)));
    }
    let out: Vec<Vec<u8>> = match op {
        Op::Union => {
            let mut all = BTreeSet::new();
            for (key, _) in sets.iter().flatten() {
                all.extend(members(r, key, now)?);
            }
            all.into_iter().collect()
        }
        Op::Inter => {
            if sets.iter().any(Option::is_none) {
                return Ok(Vec::new());
            }
            let mut present: Vec<(&Vec<u8>, u64, Vec<u8>)> = Vec::new();
            for (key, meta) in sets.iter().flatten() {
                present.push((key, coll::count(meta)?, coll::prefix(key, meta)));
            }
            // Walk the smallest set, probe the others.
            present.sort_by_key(|(_, n, _)| *n);
            let Some(((smallest, _, _), others)) = present.split_first() else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for member in members(r, smallest, now)? {
                let mut everywhere = true;
                for (_, _, prefix) in others {
                    if r.get(&layout::hashed_element_key(prefix, &member))?
                        .is_none()
                    {
                        everywhere = false;
                        break;
                    }
                }
                if everywhere {
                    out.push(member);
                    if limit > 0 && out.len() >= limit {
                        break;
                    }
                }
            }
            out
        }
        Op::Diff => {
            let Some(Some((first, _))) = sets.first() else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for member in members(r, first, now)? {
                let mut elsewhere = false;
                for (key, meta) in sets[1..].iter().flatten() {
                    let prefix = coll::prefix(key, meta);
                    if r.get(&layout::hashed_element_key(&prefix, &member))?
                        .is_some()
                    {
                        elsewhere = true;
                        break;
                    }
                }
                if !elsewhere {
                    out.push(member);
                }
            }
            out
        }
    };
    Ok(out)
}

/// SINTER / SUNION / SDIFF key [key ...].
pub fn combine_read<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64, op: Op) -> CmdResult {
    Ok(set_reply(combine(r, args, op, now, 0)?))
}

/// SINTERSTORE / SUNIONSTORE / SDIFFSTORE destination key [key ...]: the
/// destination is replaced (whatever its type) or deleted if the result is
/// empty.
pub fn combine_store(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64, op: Op) -> CmdResult {
    let dest = &args[0];
    let result = combine(&*txn, &args[1..], op, now, 0)?;
    let len = result.len() as u64;
    txn.delete_key(dest)?;
    if len > 0 {
        let mut meta = coll::create(txn, KIND)?;
        let prefix = coll::prefix(dest, &meta);
        for member in &result {
            txn.put(layout::hashed_element_key(&prefix, member), Vec::new());
        }
        coll::store(txn, dest, &mut meta, len)?;
    }
    Ok(reply::integer(len as i64))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit].
pub fn sintercard<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (keys, limit) = parse::sets::intercard(args)?;
    Ok(reply::integer(
        combine(r, keys, Op::Inter, now, limit)?.len() as i64,
    ))
}

pub fn sscan<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let scan = coll::parse_scan_args(&args[1..])?;
    let Some(meta) = coll::lookup(r, key, KIND, now)? else {
        return Ok(super::hashes::empty_scan());
    };
    coll::scan_page(r, &coll::prefix(key, &meta), &scan, &mut |m, _, out| {
        out.push(reply::bulk(m.to_vec()));
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::test_support::{check, show, Node};

    const NOW: i64 = 1_700_000_000_000;
    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";

    fn sorted(text: &str) -> BTreeSet<String> {
        let body = text.trim_matches(['[', ']']);
        if body.is_empty() {
            return BTreeSet::new();
        }
        body.split(", ")
            .map(|s| s.trim_matches('"').to_string())
            .collect()
    }

    fn members(node: &Node, command: &str) -> BTreeSet<String> {
        sorted(&show(&node.run(NOW, command)))
    }

    fn set_of(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn add_remove_membership() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SADD s a b c a", ":3"),
                ("SADD s c d", ":1"),
                ("SCARD s", ":4"),
                ("SCARD nokey", ":0"),
                ("SISMEMBER s a", ":1"),
                ("SISMEMBER s z", ":0"),
                ("SISMEMBER nokey a", ":0"),
                ("SMISMEMBER s a z d", "[:1, :0, :1]"),
                ("SMISMEMBER nokey a", "[:0]"),
                ("SREM s a z", ":1"),
                ("SREM nokey a", ":0"),
                ("SMEMBERS nokey", "[]"),
                ("TYPE s", "+set"),
                ("SREM s b c d", ":3"),
                ("EXISTS s", ":0"),
                (
                    "SADD s",
                    "-ERR wrong number of arguments for 'sadd' command",
                ),
                ("SET str v", "+OK"),
                ("SADD str a", WRONGTYPE),
                ("SMEMBERS str", WRONGTYPE),
                ("SISMEMBER str a", WRONGTYPE),
                ("SCARD str", WRONGTYPE),
                ("SINTER str", WRONGTYPE),
                ("SUNION nokey str", WRONGTYPE),
            ],
        );
        check(&node, NOW, &[("SADD s x y", ":2")]);
        assert_eq!(members(&node, "SMEMBERS s"), set_of(&["x", "y"]));
        assert!(matches!(
            node.run(NOW, "SMEMBERS s").kind,
            Some(rampart_proto::pb::reply::Kind::Set(_))
        ));
    }

    #[test]
    fn algebra_and_store() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SADD a 1 2 3 4", ":4"),
                ("SADD b 3 4 5", ":3"),
                ("SADD c 4 5 6", ":3"),
            ],
        );
        assert_eq!(members(&node, "SINTER a b"), set_of(&["3", "4"]));
        assert_eq!(members(&node, "SINTER a b c"), set_of(&["4"]));
        assert_eq!(members(&node, "SINTER a nokey"), set_of(&[]));
        assert_eq!(
            members(&node, "SUNION a c nokey"),
            set_of(&["1", "2", "3", "4", "5", "6"])
        );
        assert_eq!(members(&node, "SDIFF a b"), set_of(&["1", "2"]));
        assert_eq!(members(&node, "SDIFF a b c"), set_of(&["1", "2"]));
        assert_eq!(members(&node, "SDIFF nokey a"), set_of(&[]));
        assert_eq!(
            members(&node, "SDIFF a nokey"),
            set_of(&["1", "2", "3", "4"])
        );
        check(
            &node,
            NOW,
            &[
                ("SET d string", "+OK"),
                ("SINTERSTORE d a b", ":2"),
                ("TYPE d", "+set"),
                ("SUNIONSTORE u a b c", ":6"),
                ("SDIFFSTORE a a b", ":2"),
                ("SINTERSTORE d a nokey", ":0"),
                ("EXISTS d", ":0"),
                ("SINTERCARD 2 u b", ":3"),
                ("SINTERCARD 2 u b LIMIT 2", ":2"),
                ("SINTERCARD 2 u b LIMIT 0", ":3"),
                ("SINTERCARD 1 nokey", ":0"),
                ("SINTERCARD 0 u", "-ERR numkeys should be greater than 0"),
                ("SINTERCARD x u", "-ERR numkeys should be greater than 0"),
                ("SINTERCARD 1 u LIMIT x", "-ERR LIMIT can't be negative"),
                (
                    "SINTERCARD 3 u b",
                    "-ERR Number of keys can't be greater than number of args",
                ),
                ("SINTERCARD 2 u b LIMIT -1", "-ERR LIMIT can't be negative"),
                ("SINTERCARD 2 u b FOO", "-ERR syntax error"),
            ],
        );
        assert_eq!(members(&node, "SMEMBERS a"), set_of(&["1", "2"]));
    }

    #[test]
    fn smove_semantics() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SADD src a b", ":2"),
                ("SMOVE src dst a", ":1"),
                ("SMOVE src dst a", ":0"),
                ("SMOVE src src b", ":1"),
                ("SMOVE nokey dst a", ":0"),
                ("SET str v", "+OK"),
                ("SMOVE src str b", WRONGTYPE),
                ("SMOVE str dst b", WRONGTYPE),
                // No source: 0 before the destination's type is looked at.
                ("SMOVE nokey str b", ":0"),
                ("SMOVE src str nosuch", WRONGTYPE),
                ("SMOVE src dst b", ":1"),
                ("EXISTS src", ":0"),
                ("SCARD dst", ":2"),
            ],
        );
    }

    #[test]
    fn pop_and_random_members() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("SPOP nokey", "nil"),
                ("SPOP nokey 2", "[]"),
                ("SRANDMEMBER nokey", "nil"),
                ("SRANDMEMBER nokey 2", "[]"),
                ("SADD s a b c d e", ":5"),
                ("SPOP s -1", "-ERR value is out of range, must be positive"),
                ("SPOP s 1 2", "-ERR syntax error"),
                ("SRANDMEMBER s 1 2", "-ERR syntax error"),
                ("SPOP s 0", "[]"),
                ("SRANDMEMBER s 0", "[]"),
            ],
        );
        let all = set_of(&["a", "b", "c", "d", "e"]);
        assert_eq!(members(&node, "SRANDMEMBER s 100"), all);
        assert_eq!(members(&node, "SRANDMEMBER s 3").len(), 3);
        let repeated = show(&node.run(NOW, "SRANDMEMBER s -20"));
        assert_eq!(repeated.split(", ").count(), 20);
        let one = show(&node.run(NOW, "SPOP s"));
        let one = one.trim_matches('"').to_string();
        assert!(all.contains(&one));
        let two = members(&node, "SPOP s 2");
        assert_eq!(two.len(), 2);
        assert!(!two.contains(&one));
        let rest = members(&node, "SMEMBERS s");
        assert_eq!(rest.len(), 2);
        assert_eq!(members(&node, "SPOP s 10"), rest);
        check(&node, NOW, &[("EXISTS s", ":0"), ("DBSIZE", ":0")]);
    }

    #[test]
    fn spop_is_deterministic_per_entry() {
        // Two replicas applying the same entry pop the same members.
        let (a, b) = (Node::new(), Node::new());
        for node in [&a, &b] {
            let mut args = vec![b"SADD".to_vec(), b"s".to_vec()];
            args.extend((0..500).map(|i| format!("m{i}").into_bytes()));
            node.run_at(NOW, &args);
        }
        for round in 0..5 {
            let now = NOW + round;
            assert_eq!(show(&a.run(now, "SPOP s 7")), show(&b.run(now, "SPOP s 7")));
        }
        assert_eq!(show(&a.run(NOW, "SCARD s")), ":465");
    }

    #[test]
    fn sscan_visits_every_member() {
        let node = Node::new();
        let mut args = vec![b"SADD".to_vec(), b"s".to_vec()];
        args.extend((0..200).map(|i| format!("m{i}").into_bytes()));
        node.run_at(NOW, &args);
        let mut cursor = "0".to_string();
        let mut seen = BTreeSet::new();
        let mut total = 0;
        loop {
            let text = show(&node.run(NOW, &format!("SSCAN s {cursor} COUNT 9")));
            let (head, rest) = text[2..].split_once("\", [").expect("scan reply");
            cursor = head.to_string();
            let got = sorted(rest.trim_end_matches("]]"));
            total += got.len();
            seen.extend(got);
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 200);
        assert_eq!(total, 200);
        check(&node, NOW, &[("SSCAN nokey 0", "[\"0\", []]")]);
    }
}
