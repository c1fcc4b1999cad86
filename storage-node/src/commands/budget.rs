//! The reply bound of read commands (`--max-reply-bytes`).
//!
//! A read command builds its whole reply in memory (then gRPC and the proxy
//! copy it again), so LRANGE/HGETALL/SMEMBERS/KEYS/XRANGE... on a huge
//! collection could take the node's memory with one request. Rather than
//! teach every command to count its reply, a read runs against a
//! [`Budgeted`] reader that counts every key and value it hands out (plus a
//! per-record overhead, so a million empty members still count); once the
//! budget is spent the walk stops and the command fails with
//! [`errors::reply_too_large`]. Replies are made from what was read, so
//! this bounds them; it also refuses a read that walks that much data for
//! a small reply (KEYS with a selective pattern on a large keyspace, an
//! intersection of two huge sets): SCAN and smaller ranges remain.
//!
//! Writes are never budgeted: whether a write applies must not depend on a
//! node-local setting.

use std::cell::Cell;

use rampart_proto::errors;

use crate::engine::{DataRead, EngineError, Order};

/// Counted per record besides its bytes: about what one element costs in
/// memory while the reply is built (its `Vec`s, the `Reply` value).
pub(crate) const RECORD_OVERHEAD: usize = 48;

/// A reader that refuses to hand out more than `limit` bytes.
pub(crate) struct Budgeted<'a, R: ?Sized> {
    inner: &'a R,
    left: Cell<usize>,
}

impl<'a, R: DataRead + ?Sized> Budgeted<'a, R> {
    /// `budget`: what is left of the read run's `--max-reply-bytes`.
    pub fn new(inner: &'a R, budget: usize) -> Self {
        Budgeted {
            inner,
            left: Cell::new(budget),
        }
    }

    fn spend(&self, bytes: usize) -> bool {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                true
            }
            None => {
                self.left.set(0);
                false
            }
        }
    }

    fn exceeded(&self) -> EngineError {
        // The error names the setting, not what was left of it.
        EngineError::ReplyTooLarge {
            limit: crate::limits::max_reply_bytes(),
        }
    }
}

impl<R: DataRead + ?Sized> DataRead for Budgeted<'_, R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let value = self.inner.get(key)?;
        let bytes = value.as_ref().map_or(0, Vec::len);
        if !self.spend(key.len() + bytes + RECORD_OVERHEAD) {
            return Err(self.exceeded());
        }
        Ok(value)
    }

    fn walk(
        &self,
        range: (&[u8], &[u8]),
        order: Order,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        let mut over = false;
        self.inner.walk(range, order, &mut |k, v| {
            if !self.spend(k.len() + v.len() + RECORD_OVERHEAD) {
                over = true;
                return false;
            }
            f(k, v)
        })?;
        if over {
            return Err(self.exceeded());
        }
        Ok(())
    }

    fn charge(&self, bytes: usize) -> Result<(), EngineError> {
        if self.spend(bytes) {
            Ok(())
        } else {
            Err(self.exceeded())
        }
    }
}

/// The Redis error for a command that went over its budget.
pub(crate) fn error_text(limit: usize) -> String {
    errors::reply_too_large(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory reader over sorted pairs.
    struct Pairs(Vec<(Vec<u8>, Vec<u8>)>);

    impl DataRead for Pairs {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
            Ok(self
                .0
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone()))
        }

        fn walk(
            &self,
            (start, end): (&[u8], &[u8]),
            _order: Order,
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), EngineError> {
            for (k, v) in &self.0 {
                if k.as_slice() >= start && k.as_slice() < end && !f(k, v) {
                    break;
                }
            }
            Ok(())
        }
    }

    fn data() -> Pairs {
        Pairs((0..100u8).map(|i| (vec![b'k', i], vec![0; 100])).collect())
    }

    #[test]
    fn a_walk_within_the_budget_sees_everything() {
        let data = data();
        let r = Budgeted::new(&data, 100 * (102 + RECORD_OVERHEAD));
        let mut seen = 0;
        r.for_each(b"k", b"l", &mut |_, _| {
            seen += 1;
            true
        })
        .unwrap();
        assert_eq!(seen, 100);
    }

    #[test]
    fn a_walk_over_the_budget_stops_and_fails() {
        let data = data();
        let r = Budgeted::new(&data, 10 * (102 + RECORD_OVERHEAD));
        let mut seen = 0;
        let err = r
            .for_each(b"k", b"l", &mut |_, _| {
                seen += 1;
                true
            })
            .unwrap_err();
        assert_eq!(seen, 10);
        assert!(matches!(err, EngineError::ReplyTooLarge { .. }));
        // Spent: even a point read is refused now.
        assert!(r.get(b"k\x00").is_err());
        assert!(r.charge(1).is_err());
    }
}
