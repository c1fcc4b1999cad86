//! SORT and SORT_RO over lists, sets and sorted sets, as Redis 7.2's
//! `sortCommandGeneric` does it: load the elements (only the LIMIT window
//! when nothing is sorted and the type has an order of its own), weigh
//! them (the element, or a BY key or hash field), sort, then answer the
//! elements or their GET lookups, or STORE them as a list.
//!
//! SORT is a write in the command table, as Redis flags it, so it always
//! goes through the Raft log; without STORE it only reads (through the
//! entry's overlay, with the reply bounded like any read). BY and GET
//! patterns read keys that no key spec names: Rampart serves them because
//! one Raft group holds every key; once keys are sharded (issue 21) a
//! pattern will have to hash to the sorted key's slot, as in Redis Cluster.
//!
//! The option parsing, LIMIT window, pattern substitution and weight
//! reading are pure, in `rampart_proto::parse::sort`.

use std::cell::Cell;
use std::cmp::Ordering;

use rampart_proto::parse::sort::{self as rules, SortOptions, Target};
use rampart_proto::{errors, reply};

use super::collection as coll;
use super::{budget, lists, CmdError, CmdResult};
use crate::engine::keys::{self as layout, ZSET_SCORE_TAG};
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{live_meta, DataRead, EngineError, Txn};

thread_local! {
    /// Whether the command runs inside a Lua script (Redis's
    /// `CLIENT_SCRIPT`), which makes `SORT set BY nosort` sort anyway.
    static IN_SCRIPT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as a command called from a script: a set sorted with `BY
/// nosort` is then returned in ALPHA order, as Redis does so that scripts
/// see a deterministic order.
pub(crate) fn as_script_call<T>(f: impl FnOnce() -> T) -> T {
    let before = IN_SCRIPT.with(|flag| flag.replace(true));
    let result = f();
    IN_SCRIPT.with(|flag| flag.set(before));
    result
}

fn in_script() -> bool {
    IN_SCRIPT.with(Cell::get)
}

/// SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern ...]
/// [ASC | DESC] [ALPHA].
pub fn sort_ro<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let options = rules::sort_options(&args[1..], true, true)?;
    let elements = sorted(r, &args[0], &options, now)?;
    returned(r, elements, &options, now)
}

/// SORT key [...] [STORE destination]: with STORE, the destination becomes
/// a list of the result (deleted when the result is empty) and the reply
/// is its length.
pub fn sort(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let options = rules::sort_options(&args[1..], false, true)?;
    let Some(dest) = options.store else {
        let view = budget::Budgeted::new(&*txn, crate::limits::max_reply_bytes());
        let elements = sorted(&view, &args[0], &options, now)?;
        return returned(&view, elements, &options, now);
    };
    let elements = sorted(&*txn, &args[0], &options, now)?;
    let items = if options.get.is_empty() {
        elements
    } else {
        let mut items = Vec::with_capacity(elements.len() * options.get.len());
        for element in &elements {
            for pattern in &options.get {
                // A stored list cannot hold nil: Redis stores "".
                items.push(lookup(&*txn, pattern, element, now)?.unwrap_or_default());
            }
        }
        items
    };
    let len = items.len() as i64;
    if items.is_empty() {
        txn.delete_key(dest)?;
    } else {
        lists::replace_with(txn, dest, items)?;
    }
    Ok(reply::integer(len))
}

/// The reply of a SORT without STORE: the elements, or for each one the
/// value of every GET pattern (nil where there is none).
fn returned<R: DataRead + ?Sized>(
    r: &R,
    elements: Vec<Vec<u8>>,
    options: &SortOptions<'_>,
    now: i64,
) -> CmdResult {
    if options.get.is_empty() {
        return Ok(reply::bulk_array(elements));
    }
    let mut items = Vec::with_capacity(elements.len() * options.get.len());
    for element in &elements {
        for pattern in &options.get {
            items.push(match lookup(r, pattern, element, now)? {
                Some(value) => reply::bulk(value),
                None => reply::null(),
            });
        }
    }
    Ok(reply::array(items))
}

/// What a BY or GET pattern names for `element`: a string key's value or a
/// hash field's; `None` when it is missing or of another type.
fn lookup<R: DataRead + ?Sized>(
    r: &R,
    pattern: &[u8],
    element: &[u8],
    now: i64,
) -> Result<Option<Vec<u8>>, CmdError> {
    let (key, field) = match rules::target(pattern, element) {
        Target::Element => return Ok(Some(element.to_vec())),
        Target::Nothing => return Ok(None),
        Target::Key { key, field } => (key, field),
    };
    let Some(meta) = live_meta(r, &key, now)? else {
        return Ok(None);
    };
    Ok(match (field, meta.kind) {
        (None, ValueType::String) => Some(meta.payload),
        (Some(field), ValueType::Hash) => {
            let prefix = coll::prefix(&key, &meta);
            r.get(&layout::hashed_element_key(&prefix, &field))?
        }
        _ => None,
    })
}

/// One element being sorted and what it is sorted by.
struct Item {
    element: Vec<u8>,
    score: f64,
    /// ALPHA BY: the BY value (`None` when missing: sorts first).
    by_value: Option<Vec<u8>>,
}

/// The sorted key's elements in the LIMIT window, in the reply's order.
fn sorted<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    options: &SortOptions<'_>,
    now: i64,
) -> Result<Vec<Vec<u8>>, CmdError> {
    let meta = match live_meta(r, key, now)? {
        None => return Ok(Vec::new()),
        Some(meta)
            if matches!(
                meta.kind,
                ValueType::List | ValueType::Set | ValueType::ZSet
            ) =>
        {
            meta
        }
        Some(_) => return Err(errors::WRONGTYPE.into()),
    };
    let (mut dont_sort, mut alpha, mut by) = (options.dont_sort, options.alpha, options.by);
    let store = options.store.is_some();
    // A set has no order of its own: where the result must not depend on
    // the storage (a stored list, a script) Redis sorts it ALPHA instead.
    if dont_sort && meta.kind == ValueType::Set && (store || in_script()) {
        dont_sort = false;
        alpha = true;
        by = None;
    }
    let len = match meta.kind {
        ValueType::List => lists::len_of(key, meta.clone())?,
        _ => coll::count(&meta)? as i64,
    };
    let (start, end) = rules::window(options.limit_start, options.limit_count, len as usize);
    if dont_sort && meta.kind != ValueType::Set {
        // The stored order (reversed by DESC), and only the window of it.
        if end < start {
            return Ok(Vec::new());
        }
        let (lo, hi) = if options.desc {
            (len - 1 - end, len - 1 - start)
        } else {
            (start, end)
        };
        let mut out = match meta.kind {
            ValueType::List => lists::range_of(r, key, meta, lo, hi)?,
            _ => zset_by_score(r, key, &meta, lo as u64, (hi - lo + 1) as u64)?,
        };
        if options.desc {
            out.reverse();
        }
        return Ok(out);
    }
    let elements = match meta.kind {
        ValueType::List => lists::range_of(r, key, meta, 0, len - 1)?,
        ValueType::Set => coll::hashed_elements(r, &coll::prefix(key, &meta))?
            .into_iter()
            .map(|(member, _)| member)
            .collect(),
        _ => zset_by_score(r, key, &meta, 0, len as u64)?,
    };
    let mut elements = if dont_sort {
        // A set in its stored order: DESC does not apply, as in Redis.
        elements
    } else {
        sort_elements(r, elements, by, alpha, options.desc, store, now)?
    };
    if end < start {
        return Ok(Vec::new());
    }
    // Bounded by what was read, in case the count in the meta record and
    // the records ever disagree (a corrupt record must not panic).
    let end = (end as usize + 1).min(elements.len());
    elements.truncate(end);
    elements.drain(..(start as usize).min(end));
    Ok(elements)
}

/// Sorts `elements` by their weights (numeric) or ALPHA, by themselves or
/// by the BY pattern's values.
fn sort_elements<R: DataRead + ?Sized>(
    r: &R,
    elements: Vec<Vec<u8>>,
    by: Option<&[u8]>,
    alpha: bool,
    desc: bool,
    store: bool,
    now: i64,
) -> Result<Vec<Vec<u8>>, CmdError> {
    let mut items = Vec::with_capacity(elements.len());
    let mut not_a_number = false;
    for element in elements {
        let mut item = Item {
            element,
            score: 0.0,
            by_value: None,
        };
        let value = match by {
            // A missing weight key leaves the score 0 (or, ALPHA, sorts first).
            Some(pattern) => lookup(r, pattern, &item.element, now)?,
            None => None,
        };
        if alpha {
            item.by_value = value;
        } else if by.is_none() || value.is_some() {
            let weight = value.as_deref().unwrap_or(&item.element);
            match rules::weight(weight) {
                Some(score) => item.score = score,
                None => not_a_number = true,
            }
        }
        items.push(item);
    }
    if not_a_number {
        return Err(rules::NOT_DOUBLE.into());
    }
    let by_pattern = by.is_some();
    let compare = |a: &Item, b: &Item| -> Ordering {
        let order = if !alpha {
            // Equal weights fall back to the elements' bytes, so the result
            // is deterministic.
            a.score
                .partial_cmp(&b.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.element.cmp(&b.element))
        } else if by_pattern {
            match (&a.by_value, &b.by_value) {
                (Some(x), Some(y)) => rules::alpha_cmp(x, y, store),
                (x, y) => x.is_some().cmp(&y.is_some()),
            }
        } else {
            rules::alpha_cmp(&a.element, &b.element, store)
        };
        if desc {
            order.reverse()
        } else {
            order
        }
    };
    items.sort_by(compare);
    Ok(items.into_iter().map(|item| item.element).collect())
}

/// `count` members of the zset from rank `skip` in (score, member) order.
fn zset_by_score<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
    skip: u64,
    count: u64,
) -> Result<Vec<Vec<u8>>, CmdError> {
    let by_score = coll::tagged(&coll::prefix(key, meta), ZSET_SCORE_TAG);
    let Some(end) = layout::prefix_end(&by_score) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(count.min(1024) as usize);
    let (mut seen, mut bad) = (0u64, false);
    if count > 0 {
        r.for_each(&by_score, &end, &mut |k, _| {
            // The record is `score (8 bytes) + member` after the prefix.
            let Some(member) = k.get(by_score.len() + 8..) else {
                bad = true;
                return false;
            };
            if seen >= skip {
                out.push(member.to_vec());
            }
            seen += 1;
            (out.len() as u64) < count
        })?;
    }
    if bad {
        return Err(EngineError::Corrupt("short zset score key".into()).into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";
    const NOT_DOUBLE: &str = "-ERR One or more scores can't be converted into double";

    #[test]
    fn numeric_alpha_desc_and_limit() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("RPUSH l 3 1 2 10", ":4"),
                ("SORT l", r#"["1", "2", "3", "10"]"#),
                ("SORT l DESC", r#"["10", "3", "2", "1"]"#),
                ("SORT l ALPHA", r#"["1", "10", "2", "3"]"#),
                ("SORT l ALPHA DESC ASC", r#"["1", "10", "2", "3"]"#),
                ("SORT l LIMIT 1 2", r#"["2", "3"]"#),
                ("SORT l LIMIT -5 2", r#"["1", "2"]"#),
                ("SORT l LIMIT 10 2", "[]"),
                ("SORT l LIMIT 2 -1", r#"["3", "10"]"#),
                ("SORT l LIMIT 0 0", "[]"),
                ("SORT_RO l DESC LIMIT 0 1", r#"["10"]"#),
                ("RPUSH neg -1.5 1e1 0x10 inf", ":4"),
                ("SORT neg", r#"["-1.5", "1e1", "0x10", "inf"]"#),
                ("RPUSH bad 1 x", ":2"),
                ("SORT bad", NOT_DOUBLE),
                ("SORT bad LIMIT 0 1", NOT_DOUBLE),
                ("SORT bad ALPHA", r#"["1", "x"]"#),
                ("SORT nokey", "[]"),
                ("SORT_RO nokey DESC", "[]"),
                ("SET str v", "+OK"),
                ("SORT str", WRONGTYPE),
                ("SORT_RO str", WRONGTYPE),
                ("SORT str LIMIT", "-ERR syntax error"),
                ("SORT_RO l STORE d", "-ERR syntax error"),
                ("SORT l LIMIT 0", "-ERR syntax error"),
                (
                    "SORT l LIMIT a 1",
                    "-ERR value is not an integer or out of range",
                ),
                ("SORT", "-ERR wrong number of arguments for 'sort' command"),
            ],
        );
    }

    #[test]
    fn by_and_get_read_keys_and_hash_fields() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("RPUSH l a b c", ":3"),
                ("MSET w_a 3 w_b 1 w_c 2 v_a A v_b B", "+OK"),
                ("HSET h_a f 30", ":1"),
                ("HSET h_b f 10", ":1"),
                ("HSET h_c f 20", ":1"),
                ("SORT l BY w_*", r#"["b", "c", "a"]"#),
                ("SORT l BY h_*->f DESC", r#"["a", "c", "b"]"#),
                (
                    "SORT l BY w_* GET # GET v_* GET h_*->f",
                    r#"["b", "B", "10", "c", nil, "20", "a", "A", "30"]"#,
                ),
                (
                    "SORT l BY w_* GET h_*->nofield GET w_*->f",
                    "[nil, nil, nil, nil, nil, nil]",
                ),
                ("SORT l BY nosort DESC", r#"["c", "b", "a"]"#),
                ("SORT l BY nosort LIMIT 1 1", r#"["b"]"#),
                ("SORT l BY nosort DESC LIMIT 0 2", r#"["c", "b"]"#),
                ("SORT l BY nosort BY w_*", r#"["a", "b", "c"]"#),
                // Missing weights are 0; ties fall back to the elements.
                ("SORT l BY missing_*", r#"["a", "b", "c"]"#),
                ("SORT l BY missing_* DESC", r#"["c", "b", "a"]"#),
                ("SORT l BY v_* ALPHA", r#"["c", "a", "b"]"#),
                ("SORT l ALPHA GET nostar", "[nil, nil, nil]"),
                ("SET w_b x", "+OK"),
                ("SORT l BY w_*", NOT_DOUBLE),
                ("SORT l BY w_* ALPHA", r#"["c", "a", "b"]"#),
            ],
        );
    }

    #[test]
    fn sorted_sets_keep_score_order_without_sorting_and_sets_sort_when_stored() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("ZADD z 3 a 1 b 2 c", ":3"),
                ("SORT z BY nosort", r#"["b", "c", "a"]"#),
                ("SORT z BY nosort DESC", r#"["a", "c", "b"]"#),
                ("SORT z BY nosort LIMIT 1 5", r#"["c", "a"]"#),
                ("SORT z BY nosort DESC LIMIT 1 1", r#"["c"]"#),
                ("SORT z ALPHA DESC", r#"["c", "b", "a"]"#),
                ("SORT z", NOT_DOUBLE),
                ("SADD s 3 1 2 10", ":4"),
                ("SORT s", r#"["1", "2", "3", "10"]"#),
                ("SORT s DESC LIMIT 0 2", r#"["10", "3"]"#),
                // Stored, a set is sorted ALPHA even with BY nosort.
                ("SORT s BY nosort DESC STORE d", ":4"),
                ("LRANGE d 0 -1", r#"["3", "2", "10", "1"]"#),
            ],
        );
    }

    #[test]
    fn store_replaces_the_destination_with_a_list_or_deletes_it() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("RPUSH l 2 1", ":2"),
                ("SET d x EX 100", "+OK"),
                ("SORT l STORE d", ":2"),
                ("TYPE d", "+list"),
                ("TTL d", ":-1"),
                ("LRANGE d 0 -1", r#"["1", "2"]"#),
                ("SET v_1 one", "+OK"),
                ("SORT l GET v_* GET # STORE d", ":4"),
                ("LRANGE d 0 -1", r#"["one", "1", "", "2"]"#),
                ("SORT l LIMIT 0 0 STORE d", ":0"),
                ("EXISTS d", ":0"),
                ("SORT l STORE l", ":2"),
                ("LRANGE l 0 -1", r#"["1", "2"]"#),
                ("SORT l DESC STORE d STORE e", ":2"),
                ("EXISTS d", ":0"),
                ("LRANGE e 0 -1", r#"["2", "1"]"#),
                ("SORT nokey STORE e", ":0"),
                ("EXISTS e", ":0"),
                ("SET str v", "+OK"),
                ("SORT str STORE e", WRONGTYPE),
            ],
        );
    }

    #[test]
    fn a_script_sorts_a_set_even_with_by_nosort() {
        let node = Node::new();
        check(&node, 0, &[("SADD s c a b", ":3")]);
        let reply = super::as_script_call(|| node.run(0, "SORT_RO s BY nosort DESC"));
        assert_eq!(show(&reply), r#"["c", "b", "a"]"#);
    }

    #[test]
    fn touch_counts_the_keys_that_exist() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("SET a 1", "+OK"),
                ("RPUSH l x", ":1"),
                ("TOUCH a nokey a l", ":3"),
                ("TOUCH nokey", ":0"),
                (
                    "TOUCH",
                    "-ERR wrong number of arguments for 'touch' command",
                ),
            ],
        );
    }
}
