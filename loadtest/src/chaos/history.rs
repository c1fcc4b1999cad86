//! The recorded history of a chaos run: every operation a workload client
//! ran, with its outcome and its monotonic start and end times. Checkers read
//! only this; the runner only writes it.
//!
//! Outcomes follow Jepsen's meaning:
//! - `Ok`: the server acknowledged it (and, for reads, returned `value`);
//! - `Fail`: known not to have taken effect (a refused CAS, a `-BUSY`, a
//!   connection that never sent the request);
//! - `Info`: unknown (timeout, connection lost after sending). An `Info`
//!   operation may take effect at any time after its start, including after
//!   the end of the run, so checkers treat its end as +infinity.

use serde::{Deserialize, Serialize};

/// Index of an operation in [`History::ops`].
pub type OpIndex = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

/// One list-append micro-operation inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Mop {
    /// `RPUSH key value`; values are unique per key across the run.
    Append { key: String, value: u64 },
    /// `LRANGE key 0 -1`; `value` is the list read (None until known).
    Read {
        key: String,
        value: Option<Vec<u64>>,
    },
}

/// A stream entry id `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

/// What an operation did. Values read are filled only for `Ok` outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum OpKind {
    // register workload (per key linearizability)
    /// `GET key`; `value` None means nil (the key does not exist).
    RegRead { key: String, value: Option<i64> },
    /// `SET key value`.
    RegWrite { key: String, value: i64 },
    /// Compare-and-set: Ok = swapped, Fail = current value was not `from`.
    RegCas { key: String, from: i64, to: i64 },

    // list-append workload
    /// A MULTI/EXEC transaction of micro-operations.
    Txn { mops: Vec<Mop> },

    // set workload
    /// `SADD key element`; elements are unique across the run.
    SetAdd { key: String, element: u64 },
    /// The final `SMEMBERS key`.
    SetRead {
        key: String,
        elements: Option<Vec<u64>>,
    },

    // counter workload
    /// `INCR key` (by 1); `value` is the reply.
    CounterIncr { key: String, value: Option<i64> },
    /// The final `GET key`.
    CounterRead { key: String, value: Option<i64> },

    // stream workload
    /// `XADD key * payload <payload>`; `id` is the id the server returned.
    StreamAdd {
        key: String,
        payload: u64,
        id: Option<StreamId>,
    },
    /// An `XREAD`, `XREADGROUP` or the final `XRANGE key - +`; the entries
    /// seen, in reply order.
    StreamRead {
        key: String,
        via: StreamReadVia,
        entries: Option<Vec<(StreamId, u64)>>,
    },

    // ttl workload
    /// `SET key value PX ttl_ms`; values are unique per key across the run.
    TtlSet {
        key: String,
        value: u64,
        ttl_ms: u64,
    },
    /// `PEXPIRE key ttl_ms`, `EXPIRE key ttl_ms/1000` or `PEXPIREAT key
    /// at`, where `at` was the client's wall clock at the operation's start
    /// plus `ttl_ms`. `applied` is the reply: true = 1 (the key existed and
    /// got the TTL), false = 0 (there was no such key); None until known.
    TtlExpire {
        key: String,
        via: ExpireVia,
        ttl_ms: u64,
        applied: Option<bool>,
    },
    /// `GET key` (`value`: Some(None) = nil), `PTTL key` (`pttl`) or
    /// `EXISTS key` (`exists`): exactly one of the three is filled for an
    /// `Ok` read.
    TtlRead {
        key: String,
        via: TtlReadVia,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Option<u64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pttl: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exists: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpireVia {
    Pexpire,
    Expire,
    Pexpireat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TtlReadVia {
    Get,
    Pttl,
    Exists,
}

/// A window in which one node's wall clock was off by up to `max_offset_ms`
/// (the clock nemesis), from the injection to the heal. The ttl checker
/// allows keys to expire early by that much near it (docs/time.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSkew {
    pub start_ns: u64,
    /// None: never healed within the run.
    pub end_ns: Option<u64>,
    pub max_offset_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamReadVia {
    Xread,
    Xreadgroup,
    /// The final full read; the stream checker's source of truth.
    Xrange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client (logical process) that ran it. A client runs one
    /// operation at a time; after an `Info` it continues as a new process id
    /// so that per-process order stays meaningful.
    pub process: u32,
    /// Nanoseconds since the run's start (monotonic clock).
    pub start_ns: u64,
    /// When the outcome was known; None for an `Info` still open at the end.
    pub end_ns: Option<u64>,
    pub outcome: Outcome,
    pub kind: OpKind,
    /// The error text for `Fail`/`Info`, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// End time for real-time ordering: an operation with an unknown outcome
    /// may take effect at any later time.
    pub fn effective_end(&self) -> u64 {
        match (self.outcome, self.end_ns) {
            (Outcome::Info, _) | (_, None) => u64::MAX,
            (_, Some(end)) => end,
        }
    }
}

/// All operations of one workload, in the order they were invoked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn push(&mut self, op: Op) -> OpIndex {
        self.ops.push(op);
        self.ops.len() - 1
    }
}

/// One anomaly a checker found: its kind (`G-single`, `stale-read`,
/// `lost-append`...), a human explanation, and the smallest set of
/// operations that shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: String,
    pub explanation: String,
    pub ops: Vec<OpIndex>,
}

/// A checker's verdict for one workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub workload: String,
    pub valid: bool,
    /// Operations checked, by outcome.
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    pub anomalies: Vec<Anomaly>,
    /// Whether the checker gave up (search budget exhausted) without a verdict.
    #[serde(default)]
    pub unknown: bool,
}
