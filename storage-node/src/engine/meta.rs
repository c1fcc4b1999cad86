//! Meta records: the one record per user key that holds its type, its
//! collection version and its TTL, and for strings the value itself (so GET
//! is one point read).
//!
//! Encoding: `type (u8) | version (u64 BE) | expire_at_ms (i64 BE, 0 = no
//! TTL) | payload`. For strings the payload is the value bytes; collections
//! will keep their summary (e.g. element count) there.

use super::EngineError;

/// Length of the fixed header before the payload.
pub const HEADER_LEN: usize = 17;

/// The Redis type of a key. Codes are stored on disk: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    String = 0,
    Hash = 1,
    List = 2,
    Set = 3,
    ZSet = 4,
    Stream = 5,
}

impl ValueType {
    pub fn from_code(code: u8) -> Option<ValueType> {
        Some(match code {
            0 => ValueType::String,
            1 => ValueType::Hash,
            2 => ValueType::List,
            3 => ValueType::Set,
            4 => ValueType::ZSet,
            5 => ValueType::Stream,
            _ => return None,
        })
    }

    /// The name `TYPE` and `SCAN ... TYPE` use.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Hash => "hash",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
            ValueType::Stream => "stream",
        }
    }

    /// Whether values of this type keep elements in sub-keys.
    pub fn has_sub_keys(self) -> bool {
        self != ValueType::String
    }
}

/// The fixed part of a meta record, readable without copying the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaHeader {
    pub kind: ValueType,
    pub version: u64,
    /// Unix time in ms at which the key expires; 0 = no TTL.
    pub expire_at_ms: i64,
}

impl MetaHeader {
    pub fn decode(bytes: &[u8]) -> Result<MetaHeader, EngineError> {
        if bytes.len() < HEADER_LEN {
            return Err(EngineError::Corrupt(format!(
                "meta record of {} bytes",
                bytes.len()
            )));
        }
        let kind = ValueType::from_code(bytes[0])
            .ok_or_else(|| EngineError::Corrupt(format!("unknown type code {}", bytes[0])))?;
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[1..9]);
        let version = u64::from_be_bytes(word);
        word.copy_from_slice(&bytes[9..17]);
        let expire_at_ms = i64::from_be_bytes(word);
        Ok(MetaHeader {
            kind,
            version,
            expire_at_ms,
        })
    }

    pub fn has_ttl(&self) -> bool {
        self.expire_at_ms != 0
    }

    /// Expired keys are invisible from the millisecond of their TTL on.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_at_ms != 0 && self.expire_at_ms <= now_ms
    }
}

/// A decoded meta record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: ValueType,
    /// Collection generation (prefix of its sub-keys); 0 for strings.
    pub version: u64,
    /// Unix time in ms at which the key expires; 0 = no TTL.
    pub expire_at_ms: i64,
    /// The string value, or a collection's summary.
    pub payload: Vec<u8>,
}

impl Meta {
    /// A string value with an optional TTL (0 = none).
    pub fn string(value: Vec<u8>, expire_at_ms: i64) -> Meta {
        Meta {
            kind: ValueType::String,
            version: 0,
            expire_at_ms,
            payload: value,
        }
    }

    pub fn header(&self) -> MetaHeader {
        MetaHeader {
            kind: self.kind,
            version: self.version,
            expire_at_ms: self.expire_at_ms,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.expire_at_ms.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Meta, EngineError> {
        let header = MetaHeader::decode(bytes)?;
        Ok(Meta {
            kind: header.kind,
            version: header.version,
            expire_at_ms: header.expire_at_ms,
            payload: bytes[HEADER_LEN..].to_vec(),
        })
    }

    pub fn has_ttl(&self) -> bool {
        self.expire_at_ms != 0
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.header().is_expired(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let meta = Meta {
            kind: ValueType::Hash,
            version: 42,
            expire_at_ms: 1_700_000_000_000,
            payload: b"summary".to_vec(),
        };
        let bytes = meta.encode();
        assert_eq!(Meta::decode(&bytes).unwrap(), meta);
        assert_eq!(MetaHeader::decode(&bytes).unwrap(), meta.header());
        let s = Meta::string(Vec::new(), 0);
        assert_eq!(Meta::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        assert!(Meta::decode(b"short").is_err());
        let mut bytes = Meta::string(b"v".to_vec(), 0).encode();
        bytes[0] = 99;
        assert!(Meta::decode(&bytes).is_err());
    }

    #[test]
    fn expiry_is_inclusive_of_the_deadline() {
        let meta = Meta::string(b"v".to_vec(), 1_000);
        assert!(!meta.is_expired(999));
        assert!(meta.is_expired(1_000));
        assert!(!Meta::string(b"v".to_vec(), 0).is_expired(i64::MAX));
    }

    #[test]
    fn type_codes_are_stable() {
        for code in 0..6u8 {
            let kind = ValueType::from_code(code).unwrap();
            assert_eq!(kind as u8, code);
        }
        assert_eq!(ValueType::from_code(6), None);
        assert_eq!(ValueType::ZSet.name(), "zset");
    }
}
