//! Key encoding of the DATA column family. Every record's RocksDB key starts
//! with a one-byte tag, so each kind of record lives in its own key range:
//!
//! | tag   | RocksDB key                                          | value |
//! |-------|------------------------------------------------------|-------|
//! | `c`   | `c` + counter name (`keys`, `expires`, `version`)   | i64 / u64, 8 bytes big-endian |
//! | `e`   | `e` + expire_at_ms (u64 BE, always > 0) + user_key   | empty |
//! | `m`   | `m` + h (u64 BE) + user_key                          | meta record (see [`super::meta`]) |
//! | `s`   | `s` + len(user_key) (u32 BE) + user_key + version (u64 BE) + element suffix | element value |
//!
//! **Meta records (`m`).** One per user key. `h` orders keys by Redis Cluster
//! hash slot first: `h = slot << 48 | (fnv1a64(user_key) & 0xFFFF_FFFF_FFFF)`
//! where `slot = crc16_xmodem(hash_tag(user_key)) % 16384` (Redis's own slot
//! function, `{tag}` rule included). So all keys of one slot form one
//! contiguous range (a later split of the keyspace by slot is a range split),
//! and `h < 2^62` gives SCAN a numeric cursor: the cursor handed to the client
//! is `h + 1` of the first key not returned yet (0 = iteration complete).
//! The user key follows `h` in full, so keys sharing an `h` stay distinct
//! and are ordered by their bytes.
//!
//! **Expiry index (`e`).** One entry per key with a TTL, ordered by time, so
//! the leader finds expired keys with one range scan from `e`. It is written
//! in the same batch as every change of a meta record's TTL, and removed when
//! the key is deleted or overwritten.
//!
//! **Counters (`c`).** `keys` = number of meta records (expired but not yet
//! removed ones included, like Redis's DBSIZE), `expires` = number of meta
//! records with a TTL, `version` = last version handed out to a collection.
//! Updated in the same batch as the meta records, so DBSIZE and INFO are O(1).
//! Versions come from this replicated counter (never a clock or randomness),
//! so every replica assigns the same one; FLUSHDB keeps it, so versions never
//! repeat.
//!
//! **Sub-keys (`s`).** Collections (hash, list, set, zset, stream) keep one
//! record per element under `sub_key_prefix(user_key, version)`. The version
//! comes from the meta record: deleting or overwriting a collection deletes
//! its meta record and range-deletes that prefix, so `DEL`, `TYPE` and the
//! `WRONGTYPE` check touch one meta record, never the elements. The length
//! prefix keeps one key's prefix from being a prefix of another key's.
//!
//! **Element suffixes** (after `sub_key_prefix(user_key, version)`):
//!
//! | type | suffix | value |
//! |------|--------|-------|
//! | hash | eh (u64 BE) + field | field value |
//! | set  | eh (u64 BE) + member | empty |
//! | zset, by member | `m` + eh (u64 BE) + member | score (f64 bits, BE) |
//! | zset, by score  | `o` + score_key(score) (8 bytes) + member | empty |
//! | list | seq (u64 BE) | element |
//!
//! `eh = element_hash(element)` (< 2^62) puts hash fields, set members and
//! zset members in hash order, so HSCAN/SSCAN/ZSCAN get the same numeric
//! cursor as SCAN (`eh + 1` of the next element); point reads still compute
//! the key directly. `score_key` maps an f64 to 8 bytes whose byte order is
//! numeric order (-inf < ... < -0.0 = 0.0 < ... < inf), so the by-score
//! index orders by (score, member) exactly like Redis's skiplist. Lists keep
//! `head` and `tail` (exclusive) sequence numbers in the meta payload and
//! their elements at consecutive sequence numbers, so index access is one
//! point read.
//!
//! All multi-byte integers are big-endian so byte order equals numeric order.

/// Tag of counter records.
pub const COUNTER_TAG: u8 = b'c';
/// Tag of expiry-index entries.
pub const EXPIRY_TAG: u8 = b'e';
/// Tag of meta records.
pub const META_TAG: u8 = b'm';
/// Tag of collection sub-keys.
pub const SUB_TAG: u8 = b's';
/// Tag of key revision records (for WATCH). Outside [`flush_range`]: a
/// revision outlives its key, so a key deleted and re-created between WATCH
/// and EXEC is still seen as changed.
pub const REVISION_TAG: u8 = b'w';
/// Tag of cached Lua scripts: `x` + SHA1 (40 lower-case hex digits) →
/// script body. Outside [`flush_range`]: FLUSHALL keeps scripts, as in
/// Redis; SCRIPT FLUSH deletes [`script_range`].
pub const SCRIPT_TAG: u8 = b'x';
/// Tag of FUNCTION libraries: `v` + `l` + library name → library record
/// (its code and the functions it registers, `scripting::functions`), and
/// `v` + `n` + function name → library name. Outside [`flush_range`]:
/// FLUSHALL keeps functions, as in Redis; FUNCTION FLUSH deletes
/// [`function_range`].
pub const FUNCTION_TAG: u8 = b'v';

/// Tag of the sidecar legacy-stream index: `l` + user_key → empty, one
/// marker per stream whose entries are (partly) still in the legacy
/// one-blob layout. Written with the blob, deleted in the same entry that
/// finishes its migration or deletes the key, so counting legacy streams
/// is a scan of this range: O(legacy streams). Inside [`flush_range`].
pub const LEGACY_STREAM_TAG: u8 = b'l';
/// Tag of replicated node-wide settings: `y` + name → value (e.g. the
/// stream migration mode). Outside [`flush_range`]: FLUSHALL keeps them.
pub const SETTING_TAG: u8 = b'y';

/// Counter: number of meta records.
pub const COUNTER_KEYS: &[u8] = b"keys";
/// Counter: number of meta records with a TTL.
pub const COUNTER_EXPIRES: &[u8] = b"expires";
/// Counter: last collection version handed out.
pub const COUNTER_VERSION: &[u8] = b"version";

/// Redis Cluster has 16384 hash slots.
pub const SLOT_COUNT: u16 = 16384;

/// The part of `key` that is hashed for its slot: the content of the first
/// `{...}` when it is non-empty, else the whole key (Redis Cluster's rule).
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0; the checksum
/// Redis Cluster uses for slots.
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The Redis Cluster hash slot of `key`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) % SLOT_COUNT
}

/// 64-bit FNV-1a.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in data {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The ordering hash `h` of a user key: slot in bits 48..62, 48 bits of
/// FNV-1a below. Always `< 2^62`.
pub fn key_hash(key: &[u8]) -> u64 {
    ((key_slot(key) as u64) << 48) | (fnv1a64(key) & 0xFFFF_FFFF_FFFF)
}

/// Exclusive upper bound of all `h` values.
pub const HASH_LIMIT: u64 = 1 << 62;

/// RocksDB key of the meta record of `user_key`.
pub fn meta_key(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + user_key.len());
    out.push(META_TAG);
    out.extend_from_slice(&key_hash(user_key).to_be_bytes());
    out.extend_from_slice(user_key);
    out
}

/// The first meta key with hash `>= h` (a seek target for SCAN).
pub fn meta_seek_key(h: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(META_TAG);
    out.extend_from_slice(&h.to_be_bytes());
    out
}

/// `[start, end)` covering every meta record.
pub fn meta_range() -> (Vec<u8>, Vec<u8>) {
    (vec![META_TAG], vec![META_TAG + 1])
}

/// Splits a meta key into `(h, user_key)`; `None` if it is not a meta key.
pub fn decode_meta_key(key: &[u8]) -> Option<(u64, &[u8])> {
    if key.len() < 9 || key[0] != META_TAG {
        return None;
    }
    let h = u64::from_be_bytes(key[1..9].try_into().ok()?);
    Some((h, &key[9..]))
}

/// RocksDB key of the expiry-index entry of `user_key` expiring at
/// `expire_at_ms` (> 0).
pub fn expiry_key(expire_at_ms: i64, user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + user_key.len());
    out.push(EXPIRY_TAG);
    out.extend_from_slice(&(expire_at_ms as u64).to_be_bytes());
    out.extend_from_slice(user_key);
    out
}

/// Exclusive upper bound of the expiry entries with a time `<= now_ms`.
pub fn expiry_upper_bound(now_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(EXPIRY_TAG);
    // Entries at exactly `now_ms` are expired too: bound at now_ms + 1.
    out.extend_from_slice(&((now_ms.max(0) as u64).saturating_add(1)).to_be_bytes());
    out
}

/// Splits an expiry-index key into `(expire_at_ms, user_key)`.
pub fn decode_expiry_key(key: &[u8]) -> Option<(i64, &[u8])> {
    if key.len() < 9 || key[0] != EXPIRY_TAG {
        return None;
    }
    let at = u64::from_be_bytes(key[1..9].try_into().ok()?);
    Some((at as i64, &key[9..]))
}

/// RocksDB key of the counter `name`.
pub fn counter_key(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + name.len());
    out.push(COUNTER_TAG);
    out.extend_from_slice(name);
    out
}

/// Prefix of every element record of the collection `user_key` at
/// `version`; the element encoding (per type) follows it.
pub fn sub_key_prefix(user_key: &[u8], version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + user_key.len());
    out.push(SUB_TAG);
    out.extend_from_slice(&(user_key.len() as u32).to_be_bytes());
    out.extend_from_slice(user_key);
    out.extend_from_slice(&version.to_be_bytes());
    out
}

/// Splits a sub-key into `(user_key, version, element suffix)`.
pub fn decode_sub_key(key: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    if key.len() < 5 || key[0] != SUB_TAG {
        return None;
    }
    let len = u32::from_be_bytes(key[1..5].try_into().ok()?) as usize;
    let user_end = 5usize.checked_add(len)?;
    let version_end = user_end.checked_add(8)?;
    if key.len() < version_end {
        return None;
    }
    let version = u64::from_be_bytes(key[user_end..version_end].try_into().ok()?);
    Some((&key[5..user_end], version, &key[version_end..]))
}

/// The ordering hash of a collection element (hash field, set or zset
/// member): 62 bits of FNV-1a, so `eh + 1` always fits a SCAN cursor.
pub fn element_hash(element: &[u8]) -> u64 {
    fnv1a64(element) >> 2
}

/// `prefix` + `eh` + `element`: the key of a hash field or set member.
pub fn hashed_element_key(prefix: &[u8], element: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 8 + element.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(&element_hash(element).to_be_bytes());
    out.extend_from_slice(element);
    out
}

/// Splits the suffix of a hashed element key into `(eh, element)`.
pub fn decode_hashed_element(suffix: &[u8]) -> Option<(u64, &[u8])> {
    if suffix.len() < 8 {
        return None;
    }
    let eh = u64::from_be_bytes(suffix[..8].try_into().ok()?);
    Some((eh, &suffix[8..]))
}

/// Sub-index tag of a zset's by-member records.
pub const ZSET_MEMBER_TAG: u8 = b'm';
/// Sub-index tag of a zset's by-score records.
pub const ZSET_SCORE_TAG: u8 = b'o';

/// 8 bytes whose unsigned byte order is the numeric order of `score`
/// (not NaN). -0.0 encodes like 0.0, as Redis treats them as equal.
pub fn score_key(score: f64) -> [u8; 8] {
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// Inverse of [`score_key`].
pub fn decode_score_key(bytes: [u8; 8]) -> f64 {
    let ordered = u64::from_be_bytes(bytes);
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when there is none (prefix of all 0xFF bytes).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// `[start, end)` of the user data cleared by FLUSHDB: expiry index, meta
/// records and sub-keys (tags `e` ..= `s`). Counters live below it.
pub fn flush_range() -> (Vec<u8>, Vec<u8>) {
    (vec![EXPIRY_TAG], vec![SUB_TAG + 1])
}

/// RocksDB key of the revision record of `user_key`:
/// `w` + h (u64 BE, as meta keys) + user key.
pub fn revision_key(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + user_key.len());
    out.push(REVISION_TAG);
    out.extend_from_slice(&key_hash(user_key).to_be_bytes());
    out.extend_from_slice(user_key);
    out
}

/// RocksDB key of the legacy-stream marker of `user_key`.
pub fn legacy_stream_marker(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + user_key.len());
    out.push(LEGACY_STREAM_TAG);
    out.extend_from_slice(user_key);
    out
}

/// `[start, end)` of every legacy-stream marker.
pub fn legacy_stream_range() -> (Vec<u8>, Vec<u8>) {
    (vec![LEGACY_STREAM_TAG], vec![LEGACY_STREAM_TAG + 1])
}

/// RocksDB key of the replicated setting `name`.
pub fn setting_key(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + name.len());
    out.push(SETTING_TAG);
    out.extend_from_slice(name);
    out
}

/// RocksDB key of the cached script with SHA1 `sha` (lower-case hex).
pub fn script_key(sha: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + sha.len());
    out.push(SCRIPT_TAG);
    out.extend_from_slice(sha);
    out
}

/// `[start, end)` of every cached script.
pub fn script_range() -> (Vec<u8>, Vec<u8>) {
    (vec![SCRIPT_TAG], vec![SCRIPT_TAG + 1])
}

/// RocksDB key of the FUNCTION library `name`.
pub fn function_library_key(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + name.len());
    out.extend_from_slice(&[FUNCTION_TAG, b'l']);
    out.extend_from_slice(name);
    out
}

/// `[start, end)` of every FUNCTION library record.
pub fn function_library_range() -> (Vec<u8>, Vec<u8>) {
    (vec![FUNCTION_TAG, b'l'], vec![FUNCTION_TAG, b'l' + 1])
}

/// RocksDB key of the index entry of function `name` (→ its library).
pub fn function_name_key(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + name.len());
    out.extend_from_slice(&[FUNCTION_TAG, b'n']);
    out.extend_from_slice(name);
    out
}

/// `[start, end)` of every FUNCTION record (libraries and index).
pub fn function_range() -> (Vec<u8>, Vec<u8>) {
    (vec![FUNCTION_TAG], vec![FUNCTION_TAG + 1])
}

/// How a key last changed, stored with its revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A command (or anything else) wrote or deleted it.
    Write = 0,
    /// Active expiry removed it, already logically gone.
    Expired = 1,
}

/// A revision record's value: the log index of the entry that last changed
/// the key (u64 BE), then the [`ChangeKind`] byte.
pub fn encode_revision(index: u64, kind: ChangeKind) -> Vec<u8> {
    let mut out = index.to_be_bytes().to_vec();
    out.push(kind as u8);
    out
}

pub fn decode_revision(value: &[u8]) -> Option<(u64, ChangeKind)> {
    let index = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let kind = match value.get(8) {
        Some(1) => ChangeKind::Expired,
        _ => ChangeKind::Write,
    };
    Some((index, kind))
}

/// `[start, end)` of the whole DATA column family (every tag is one byte
/// below 0xFF).
pub fn whole_range() -> (Vec<u8>, Vec<u8>) {
    (Vec::new(), vec![0xFF])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_redis_reference_values() {
        // Test vector from the Redis Cluster spec.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        // Slots as reported by `CLUSTER KEYSLOT` on Redis.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
    }

    #[test]
    fn hash_tags_follow_the_cluster_rule() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"no tag"), b"no tag");
        assert_eq!(hash_tag(b"open{only"), b"open{only");
        assert_eq!(key_slot(b"{a}x"), key_slot(b"{a}y"));
    }

    #[test]
    fn fnv1a_matches_reference() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn meta_keys_round_trip_and_order_by_slot() {
        for key in [&b""[..], b"a", b"foo", b"{tag}x", &[0xFF, 0, 1]] {
            let encoded = meta_key(key);
            let (h, user) = decode_meta_key(&encoded).expect("meta key");
            assert_eq!(user, key);
            assert_eq!(h, key_hash(key));
            assert!(h < HASH_LIMIT);
            assert_eq!((h >> 48) as u16, key_slot(key));
        }
        // Byte order of meta keys is slot order.
        let mut keys: Vec<Vec<u8>> = (0..200).map(|i| format!("key:{i}").into_bytes()).collect();
        keys.sort_by_key(|k| meta_key(k));
        for pair in keys.windows(2) {
            assert!(key_slot(&pair[0]) <= key_slot(&pair[1]));
        }
        // Keys in one slot are contiguous: the seek key of the slot bounds them.
        let slot = key_slot(b"{t}a") as u64;
        assert!(meta_seek_key(slot << 48) <= meta_key(b"{t}a"));
        assert!(meta_key(b"{t}a") < meta_seek_key((slot + 1) << 48));
        assert!(decode_meta_key(b"m123").is_none());
        assert!(decode_meta_key(&expiry_key(5, b"abcdefgh")).is_none());
    }

    #[test]
    fn expiry_keys_round_trip_and_order_by_time() {
        let a = expiry_key(1_000, b"zzz");
        let b = expiry_key(2_000, b"aaa");
        assert!(a < b);
        assert_eq!(decode_expiry_key(&a), Some((1_000, &b"zzz"[..])));
        assert!(expiry_key(1_000, b"k") < expiry_upper_bound(1_000));
        assert!(expiry_key(1_001, b"") >= expiry_upper_bound(1_000));
        assert!(decode_expiry_key(b"e12").is_none());
    }

    #[test]
    fn sub_keys_round_trip_and_do_not_collide() {
        let mut key = sub_key_prefix(b"user", 7);
        key.extend_from_slice(b"field");
        assert_eq!(decode_sub_key(&key), Some((&b"user"[..], 7, &b"field"[..])));
        // "ab" is not a prefix of "abc"'s sub-keys thanks to the length.
        let ab = sub_key_prefix(b"ab", 1);
        assert!(!sub_key_prefix(b"abc", 1).starts_with(&ab));
        assert!(decode_sub_key(b"s\0\0\0\x09abc").is_none());
    }

    #[test]
    fn score_keys_order_like_numbers() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            1.5,
            1e300,
            f64::INFINITY,
        ];
        for pair in scores.windows(2) {
            assert!(score_key(pair[0]) < score_key(pair[1]), "{pair:?}");
        }
        for s in scores {
            assert_eq!(decode_score_key(score_key(s)), s);
        }
        assert_eq!(score_key(-0.0), score_key(0.0));
        assert_eq!(
            decode_score_key(score_key(-0.0)).to_bits(),
            0.0f64.to_bits()
        );
    }

    #[test]
    fn hashed_elements_round_trip() {
        let key = hashed_element_key(b"P", b"field");
        let (eh, element) = decode_hashed_element(&key[1..]).unwrap();
        assert_eq!(element, b"field");
        assert_eq!(eh, element_hash(b"field"));
        assert!(eh < HASH_LIMIT);
        assert!(decode_hashed_element(b"short").is_none());
    }

    #[test]
    fn ranges_separate_the_record_kinds() {
        let (fs, fe) = flush_range();
        for k in [meta_key(b"x"), expiry_key(9, b"x"), sub_key_prefix(b"x", 1)] {
            assert!(fs <= k && k < fe);
        }
        assert!(counter_key(COUNTER_KEYS) < fs);
        let (ms, me) = meta_range();
        assert!(ms <= meta_key(b"x") && meta_key(b"x") < me);
        assert!(!(ms <= expiry_key(1, b"x") && expiry_key(1, b"x") < me));
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
    }
}
