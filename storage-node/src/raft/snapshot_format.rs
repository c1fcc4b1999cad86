//! The byte format of a snapshot: what a snapshot file holds and what goes
//! over the wire, chunk by chunk, to a follower.
//!
//! A stream, written and read front to back without holding the data set:
//! - `RMPSNAP2` (8 bytes);
//! - u32 LE length + the [`Header`] (bincode);
//! - the DATA column family, then the DEDUP one, each as pair records
//!   (`p`, u32 LE key length, u32 LE value length, key, value) in strictly
//!   increasing key order, closed by an `e` byte;
//! - `z`, u64 LE pair count, u32 LE CRC-32 of every byte before the `z`.
//!
//! The trailer makes a truncated or damaged file an error instead of a
//! smaller data set. Files written before this format (one bincode
//! [`LegacyPayload`], never starting with the magic) are still read, whole.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::types::{codec, LogId, StoredMembership};
use crate::engine::Pair;

const MAGIC: &[u8; 8] = b"RMPSNAP2";
const TAG_PAIR: u8 = b'p';
const TAG_END: u8 = b'e';
const TAG_TRAILER: u8 = b'z';
/// Largest key or value accepted: above Redis's 512 MiB value limit plus
/// our key encoding, far below what a corrupt length could ask for.
const MAX_FIELD: u32 = 1 << 30;
/// Largest header accepted (a membership config: a few KB).
const MAX_HEADER: u32 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("snapshot i/o: {0}")]
    Io(#[from] io::Error),
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
    #[error("snapshot storage: {0}")]
    Engine(#[from] crate::engine::EngineError),
}

fn corrupt(what: impl Into<String>) -> FormatError {
    FormatError::Corrupt(what.into())
}

/// The state machine's bookkeeping at the snapshot's applied index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The column families a snapshot holds, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Data,
    Dedup,
}

/// A snapshot before this format: everything in one bincode value.
#[derive(Serialize, Deserialize)]
pub(super) struct LegacyPayload {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub data: Vec<Pair>,
    pub dedup: Vec<Pair>,
}

/// Writes a snapshot stream; call [`Writer::pair`] for DATA pairs, then
/// [`Writer::next_section`], then DEDUP pairs, then [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    pairs: u64,
    section: Section,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, header: &Header) -> Result<Writer<W>, FormatError> {
        let mut w = Writer {
            out,
            crc: crc32fast::Hasher::new(),
            pairs: 0,
            section: Section::Data,
        };
        let header = codec::encode(header).map_err(|e| corrupt(e.to_string()))?;
        w.put(MAGIC)?;
        w.put(&len_u32(header.len())?.to_le_bytes())?;
        w.put(&header)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    pub fn pair(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        self.put(&[TAG_PAIR])?;
        self.put(&len_u32(key.len())?.to_le_bytes())?;
        self.put(&len_u32(value.len())?.to_le_bytes())?;
        self.put(key)?;
        self.put(value)?;
        self.pairs += 1;
        Ok(())
    }

    /// Ends the DATA section; DEDUP pairs follow.
    pub fn next_section(&mut self) -> Result<(), FormatError> {
        if self.section != Section::Data {
            return Err(corrupt("no section after DEDUP"));
        }
        self.section = Section::Dedup;
        Ok(self.put(&[TAG_END])?)
    }

    /// Ends the DEDUP section, writes the trailer; returns the output.
    pub fn finish(mut self) -> Result<W, FormatError> {
        if self.section != Section::Dedup {
            self.next_section()?;
        }
        self.put(&[TAG_END])?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&[TAG_TRAILER])?;
        self.out.write_all(&self.pairs.to_le_bytes())?;
        self.out.write_all(&crc.to_le_bytes())?;
        Ok(self.out)
    }
}

fn len_u32(len: usize) -> Result<u32, FormatError> {
    u32::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_FIELD)
        .ok_or_else(|| corrupt(format!("field of {len} bytes is too large")))
}

/// Where [`read`] delivers a snapshot's contents.
pub trait Sink {
    fn header(&mut self, header: Header) -> Result<(), FormatError>;
    fn pair(&mut self, section: Section, key: &[u8], value: &[u8]) -> Result<(), FormatError>;
}

/// Reads a whole snapshot stream (or a legacy snapshot) from `input` into
/// `sink`, checking its structure, count and checksum. Memory: one pair at
/// a time (a legacy snapshot is decoded whole, as it always was).
pub fn read(mut input: impl Read, sink: &mut dyn Sink) -> Result<(), FormatError> {
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut input, &mut magic)?;
    if got < magic.len() || &magic != MAGIC {
        return read_legacy(&magic[..got], input, sink);
    }
    let mut r = Checked {
        input,
        crc: crc32fast::Hasher::new(),
    };
    r.crc.update(MAGIC);
    let header_len = r.u32()?;
    if header_len > MAX_HEADER {
        return Err(corrupt("header too large"));
    }
    let mut buf = Vec::new();
    r.bytes(header_len, &mut buf)?;
    sink.header(codec::decode(&buf).map_err(|e| corrupt(format!("header: {e}")))?)?;
    let mut key = Vec::new();
    let mut pairs = 0u64;
    for section in [Section::Data, Section::Dedup] {
        loop {
            match r.u8()? {
                TAG_PAIR => {
                    let (klen, vlen) = (r.u32()?, r.u32()?);
                    if klen > MAX_FIELD || vlen > MAX_FIELD {
                        return Err(corrupt("pair too large"));
                    }
                    r.bytes(klen, &mut key)?;
                    r.bytes(vlen, &mut buf)?;
                    sink.pair(section, &key, &buf)?;
                    pairs += 1;
                }
                TAG_END => break,
                tag => return Err(corrupt(format!("unknown record tag {tag}"))),
            }
        }
    }
    let crc = r.crc.clone().finalize();
    let mut trailer = [0u8; 13];
    r.input
        .read_exact(&mut trailer)
        .map_err(|_| corrupt("truncated trailer"))?;
    if trailer[0] != TAG_TRAILER
        || trailer[1..9] != pairs.to_le_bytes()
        || trailer[9..13] != crc.to_le_bytes()
    {
        return Err(corrupt("count or checksum mismatch"));
    }
    if read_up_to(&mut r.input, &mut [0u8; 1])? != 0 {
        return Err(corrupt("bytes after the trailer"));
    }
    Ok(())
}

fn read_legacy(
    prefix: &[u8],
    mut input: impl Read,
    sink: &mut dyn Sink,
) -> Result<(), FormatError> {
    let mut bytes = prefix.to_vec();
    input.read_to_end(&mut bytes)?;
    let payload: LegacyPayload =
        codec::decode(&bytes).map_err(|e| corrupt(format!("legacy snapshot: {e}")))?;
    drop(bytes);
    sink.header(Header {
        last_applied: payload.last_applied,
        membership: payload.membership,
    })?;
    for (section, pairs) in [
        (Section::Data, payload.data),
        (Section::Dedup, payload.dedup),
    ] {
        for (k, v) in pairs {
            sink.pair(section, &k, &v)?;
        }
    }
    Ok(())
}

/// Fills as much of `buf` as `input` has; returns how much.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads that feed the checksum.
struct Checked<R> {
    input: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Checked<R> {
    fn exact<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut b = [0u8; N];
        self.input
            .read_exact(&mut b)
            .map_err(|_| corrupt("truncated"))?;
        self.crc.update(&b);
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.exact::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.exact::<4>()?))
    }

    /// Reads `len` bytes into `buf`, growing it as bytes arrive (never by
    /// a declared length up front).
    fn bytes(&mut self, len: u32, buf: &mut Vec<u8>) -> Result<(), FormatError> {
        buf.clear();
        (&mut self.input).take(u64::from(len)).read_to_end(buf)?;
        if buf.len() != len as usize {
            return Err(corrupt("truncated"));
        }
        self.crc.update(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Collect {
        header: Option<Header>,
        pairs: Vec<(Section, Vec<u8>, Vec<u8>)>,
    }

    impl Sink for Collect {
        fn header(&mut self, header: Header) -> Result<(), FormatError> {
            self.header = Some(header);
            Ok(())
        }
        fn pair(&mut self, s: Section, k: &[u8], v: &[u8]) -> Result<(), FormatError> {
            self.pairs.push((s, k.to_vec(), v.to_vec()));
            Ok(())
        }
    }

    fn header() -> Header {
        Header {
            last_applied: Some(LogId::new(openraft::CommittedLeaderId::new(2, 1), 9)),
            membership: StoredMembership::default(),
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), &header()).expect("header");
        w.pair(b"a", b"1").expect("pair");
        w.pair(b"b", &[7u8; 1000]).expect("pair");
        w.next_section().expect("section");
        w.pair(b"r1", b"").expect("pair");
        w.finish().expect("finish")
    }

    #[test]
    fn a_stream_round_trips() {
        let mut got = Collect::default();
        read(sample().as_slice(), &mut got).expect("read");
        assert_eq!(got.header, Some(header()));
        assert_eq!(
            got.pairs,
            vec![
                (Section::Data, b"a".to_vec(), b"1".to_vec()),
                (Section::Data, b"b".to_vec(), vec![7u8; 1000]),
                (Section::Dedup, b"r1".to_vec(), vec![]),
            ]
        );
    }

    #[test]
    fn every_truncation_and_any_flipped_byte_is_an_error() {
        let bytes = sample();
        for len in 8..bytes.len() {
            assert!(
                read(&bytes[..len], &mut Collect::default()).is_err(),
                "truncated at {len}"
            );
        }
        for i in 8..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                read(bad.as_slice(), &mut Collect::default()).is_err(),
                "byte {i}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read(longer.as_slice(), &mut Collect::default()).is_err());
    }

    #[test]
    fn a_huge_declared_length_fails_without_allocating_it() {
        let mut bytes = sample()[..8].to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(bytes.as_slice(), &mut Collect::default()).is_err());
        // A pair claiming 1 GiB in a short stream.
        let mut w = Writer::new(Vec::new(), &header()).expect("header");
        w.next_section().expect("section");
        let mut bytes = w.finish().expect("finish");
        let end = bytes.len() - 15;
        bytes.truncate(end);
        bytes.push(TAG_PAIR);
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&MAX_FIELD.to_le_bytes());
        bytes.push(b'k');
        assert!(read(bytes.as_slice(), &mut Collect::default()).is_err());
    }

    #[test]
    fn legacy_payloads_are_still_read() {
        let legacy = LegacyPayload {
            last_applied: header().last_applied,
            membership: StoredMembership::default(),
            data: vec![(b"k".to_vec(), b"v".to_vec())],
            dedup: vec![(b"r".to_vec(), b"x".to_vec())],
        };
        let bytes = codec::encode(&legacy).expect("encode");
        let mut got = Collect::default();
        read(bytes.as_slice(), &mut got).expect("read");
        assert_eq!(got.header, Some(header()));
        assert_eq!(got.pairs.len(), 2);
        assert!(read(&b"junk"[..], &mut Collect::default()).is_err());
    }
}
