//! Ordered range walks over the DATA column family, optionally merged with
//! an overlay of pending writes. One merge serves both directions and every
//! reader ([`ReadView`](super::ReadView), [`Txn`](super::Txn) and its base),
//! so the ordering rules (the overlay wins over an equal database key, a
//! pending delete hides it) are written once.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{cf, Engine, EngineError};

/// Which way an ordered range walk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    /// From the high end (ZREVRANGE, ZPOPMAX, XREVRANGE...).
    Descending,
}

impl Order {
    /// Whether `a` comes before `b` in this order.
    fn before(self, a: &[u8], b: &[u8]) -> bool {
        match self {
            Order::Ascending => a < b,
            Order::Descending => a > b,
        }
    }
}

/// Pending point writes: `Some` = put, `None` = delete.
pub(super) type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What to merge into a database walk.
pub(super) struct Pending<'p> {
    pub writes: &'p Overlay,
    /// Database keys hidden by a pending range delete.
    pub hidden: &'p dyn Fn(&[u8]) -> bool,
}

/// Calls `f` with every pair in `[start, end)` of DATA, read at `snapshot`
/// (or the latest state), merged with `pending`, in `order`, until `f`
/// returns false.
pub(super) fn walk_data(
    engine: &Engine,
    snapshot: Option<&rocksdb::Snapshot<'_>>,
    pending: Option<Pending<'_>>,
    (start, end): (&[u8], &[u8]),
    order: Order,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), EngineError> {
    if start >= end {
        return Ok(());
    }
    let mut opts = rocksdb::ReadOptions::default();
    opts.set_iterate_lower_bound(start.to_vec());
    opts.set_iterate_upper_bound(end.to_vec());
    if let Some(snapshot) = snapshot {
        opts.set_snapshot(snapshot);
    }
    let mut db = engine.db.raw_iterator_cf_opt(engine.cf(cf::DATA), opts);
    let advance = |db: &mut rocksdb::DBRawIterator<'_>| match order {
        Order::Ascending => db.next(),
        Order::Descending => db.prev(),
    };
    match order {
        Order::Ascending => db.seek(start),
        Order::Descending => db.seek_to_last(),
    }
    let Some(pending) = pending else {
        while let (Some(key), Some(value)) = (db.key(), db.value()) {
            if !f(key, value) {
                break;
            }
            advance(&mut db);
        }
        db.status()?;
        return Ok(());
    };
    let range = pending
        .writes
        .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)));
    let mut writes: Box<dyn Iterator<Item = _>> = match order {
        Order::Ascending => Box::new(range),
        Order::Descending => Box::new(range.rev()),
    };
    let mut next_write = writes.next();
    loop {
        while db.key().is_some_and(|key| (pending.hidden)(key)) {
            advance(&mut db);
        }
        let db_first = match (db.key(), next_write) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(key), Some((w_key, _))) => order.before(key, w_key),
        };
        let keep_going = if db_first {
            let (Some(key), Some(value)) = (db.key(), db.value()) else {
                break;
            };
            let go = f(key, value);
            advance(&mut db);
            go
        } else {
            let Some((w_key, w_value)) = next_write else {
                break;
            };
            // The overlay wins over an equal database key.
            if db.key() == Some(w_key.as_slice()) {
                advance(&mut db);
            }
            next_write = writes.next();
            match w_value {
                Some(value) => f(w_key, value),
                None => true,
            }
        };
        if !keep_going {
            break;
        }
    }
    db.status()?;
    Ok(())
}
