//! The openraft type configuration and the application data carried in the
//! Raft log.

use rampart_proto::Reply;
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Rampart's Raft type configuration.
    ///
    /// `SnapshotData` is a file (see [`super::snapshot_file`]): openraft
    /// sends and receives it in chunks, so no side holds a whole snapshot
    /// in memory.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = super::snapshot_file::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// What the cluster knows about a member: where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Raft transport (and admin) gRPC address, host:port.
    pub raft_addr: String,
    /// Client (Kv + admin) gRPC address, host:port; what proxies dial.
    pub client_addr: String,
    /// Prometheus metrics URL, empty when not served.
    pub metrics_url: String,
}

/// One Raft log entry's application payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The leader's wall clock (ms since the Unix epoch), stamped when the
    /// entry is proposed. Every replica uses it for TTL math so they all
    /// compute the same result, whatever their own clocks say.
    pub now_ms: i64,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A run of consecutive write commands from one client batch.
    /// `(client_id, seq, part)` identifies it for at-most-once application
    /// of retried batches; an empty `client_id` opts out of deduplication.
    Commands {
        client_id: String,
        seq: u64,
        part: u32,
        commands: Vec<Vec<Vec<u8>>>,
    },
    /// Active expiry by the leader: delete these keys if they are expired at
    /// `now_ms`.
    ExpireKeys { keys: Vec<Vec<u8>> },
    /// Write runs of several concurrent client batches in one entry, applied
    /// in order as if each were its own `Commands` entry (each keeps its own
    /// dedup identity): one Raft round for many clients.
    ///
    /// Appended after the older variants so entries already in logs keep
    /// decoding (bincode encodes the variant index).
    Batch { items: Vec<WriteRun> },
    /// A MULTI/EXEC transaction: `run`'s commands (reads included) applied
    /// in order in this entry if no key in `watches` changed since its
    /// WATCH, else none of them. The response holds one reply: the EXEC
    /// array, or a null array when a watched key changed. Appended last so
    /// older entries keep decoding.
    Transaction {
        run: WriteRun,
        watches: Vec<WatchToken>,
    },
}

/// A key's state when a client WATCHed it (see `commands::transactions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchToken {
    pub key: Vec<u8>,
    /// The key's revision then (0: never changed).
    pub revision: u64,
    /// Whether it existed, unexpired, then.
    pub existed: bool,
}

/// One client batch's run of consecutive write commands, as carried in an
/// [`Op::Batch`]; the fields mean what they mean in [`Op::Commands`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRun {
    pub client_id: String,
    pub seq: u64,
    pub part: u32,
    pub commands: Vec<Vec<Vec<u8>>>,
}

/// The result of applying one entry: for `Op::Commands`, one reply per
/// command in `replies`; for `Op::Batch`, one such list per item in
/// `items`. Both are empty for entries without commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    #[serde(with = "replies_serde")]
    pub replies: Vec<Reply>,
    #[serde(with = "items_serde")]
    pub items: Vec<Vec<Reply>>,
}

/// [`replies_serde`] for a list of reply lists.
pub mod items_serde {
    use rampart_proto::Reply;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::replies_serde::{decode, encode};

    pub fn serialize<S: Serializer>(items: &[Vec<Reply>], s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<Vec<Vec<u8>>> = items.iter().map(|r| encode(r)).collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<Reply>>, D::Error> {
        let encoded = Vec::<Vec<Vec<u8>>>::deserialize(d)?;
        encoded
            .iter()
            .map(|r| decode(r).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// `Reply` is a prost message without serde support: carry each reply as its
/// protobuf encoding, which is also what goes over the wire to the proxy.
pub mod replies_serde {
    use prost::Message;
    use rampart_proto::Reply;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn encode(replies: &[Reply]) -> Vec<Vec<u8>> {
        replies.iter().map(Message::encode_to_vec).collect()
    }

    pub fn decode(encoded: &[Vec<u8>]) -> Result<Vec<Reply>, prost::DecodeError> {
        encoded
            .iter()
            .map(|b| Reply::decode(b.as_slice()))
            .collect()
    }

    pub fn serialize<S: Serializer>(replies: &[Reply], s: S) -> Result<S::Ok, S::Error> {
        encode(replies).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Reply>, D::Error> {
        let encoded = Vec::<Vec<u8>>::deserialize(d)?;
        decode(&encoded).map_err(serde::de::Error::custom)
    }
}

/// Binary encoding of everything this crate persists or sends between
/// nodes (log entries, vote, snapshots, Raft RPCs).
///
/// bincode rather than JSON: log entries and snapshot chunks are mostly raw
/// byte strings, which JSON would inflate several times (arrays of numbers)
/// and parse slowly; all the types are plain structs/enums without
/// self-describing serde attributes, which bincode requires. Decoding has a
/// size limit so a corrupt length prefix cannot ask for unbounded memory.
pub mod codec {
    use bincode::Options;
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    /// Upper bound of one encoded value (a legacy snapshot was one value).
    const LIMIT: u64 = 4 << 30;

    fn options() -> impl Options {
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(LIMIT)
    }

    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, bincode::Error> {
        options().serialize(value)
    }

    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
        options().deserialize(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_proto::reply;

    #[test]
    fn response_round_trips_every_reply_kind() {
        let resp = Response {
            replies: vec![
                reply::ok(),
                reply::error("ERR boom"),
                reply::integer(-7),
                reply::bulk(b"v\x00".to_vec()),
                reply::null(),
                reply::array(vec![reply::integer(1), reply::null_array()]),
            ],
            items: vec![
                vec![reply::ok(), reply::integer(3)],
                vec![],
                vec![reply::null()],
            ],
        };
        let bytes = codec::encode(&resp).expect("encode");
        let back: Response = codec::decode(&bytes).expect("decode");
        assert_eq!(back, resp);
    }

    #[test]
    fn request_round_trips() {
        let req = Request {
            now_ms: 1_700_000_000_123,
            op: Op::Commands {
                client_id: "proxy-1/7".into(),
                seq: 42,
                part: 1,
                commands: vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]],
            },
        };
        let back: Request = codec::decode(&codec::encode(&req).expect("encode")).expect("decode");
        assert_eq!(back, req);
    }

    #[test]
    fn batch_request_round_trips_and_old_variants_keep_their_encoding() {
        let run = |id: &str, seq| WriteRun {
            client_id: id.into(),
            seq,
            part: 0,
            commands: vec![vec![b"INCR".to_vec(), b"n".to_vec()]],
        };
        let req = Request {
            now_ms: 5,
            op: Op::Batch {
                items: vec![run("a", 1), run("b", 9)],
            },
        };
        let back: Request = codec::decode(&codec::encode(&req).expect("encode")).expect("decode");
        assert_eq!(back, req);
        // Entries written before `Batch` existed: variant index 1 is still
        // ExpireKeys (now_ms i64, then the u32 variant index).
        let old = Request {
            now_ms: 5,
            op: Op::ExpireKeys { keys: vec![] },
        };
        let bytes = codec::encode(&old).expect("encode");
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(codec::decode::<Request>(&[0xff; 3]).is_err());
        // A huge declared length fails instead of allocating.
        let mut bytes = vec![0u8; 8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(codec::decode::<Request>(&bytes).is_err());
    }
}
