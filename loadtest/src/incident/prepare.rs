//! Writes the scenario's data before the clock starts: the big stream
//! (pipelined `XADD key * ...`, one entry per command since XADD takes one),
//! the hash the abuser reads whole, and the string keys of the ordinary
//! clients. Error replies are counted, never fatal: the run goes on and the
//! report says what is missing.

use super::Keys;
use crate::conn::{encode_command, ConnError, ConnectOptions, Reply, RespConn, Value};
use crate::progress;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Commands in flight while preparing.
const WINDOW: usize = 256;
/// Hash fields or string keys per HSET/MSET.
const BATCH: u64 = 100;

/// What the prepare step did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrepareReport {
    pub stream_key: String,
    /// Entries asked for (`--stream-entries`).
    pub stream_entries: u64,
    /// `XLEN` after preparing; `null` when XLEN failed (e.g. the server has
    /// no streams).
    pub stream_len: Option<u64>,
    pub hash_key: String,
    pub hash_fields: u64,
    /// `PREFIX:str:0..N` string keys.
    pub string_keys: u64,
    /// True when `--reuse-data` found the data already there.
    pub reused: bool,
    pub commands: u64,
    /// Error replies while preparing.
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_example: Option<String>,
    pub elapsed_secs: f64,
}

pub struct PrepareSpec<'a> {
    pub connect: &'a ConnectOptions,
    pub keys: &'a Keys,
    pub stream_entries: u64,
    pub hash_fields: u64,
    pub string_keys: u64,
    pub value: &'a [u8],
    pub reuse: bool,
    pub reply_timeout: Duration,
    pub quiet: bool,
}

async fn int_reply(conn: &mut RespConn, args: &[&[u8]]) -> Result<Option<u64>, ConnError> {
    Ok(match conn.command(args).await? {
        Value::Int(n) if n >= 0 => Some(n as u64),
        _ => None,
    })
}

pub async fn run(spec: &PrepareSpec<'_>) -> Result<PrepareReport, ConnError> {
    let started = Instant::now();
    let keys = spec.keys;
    let mut conn = RespConn::connect(spec.connect).await?;
    let mut report = PrepareReport {
        stream_key: keys.stream.clone(),
        stream_entries: spec.stream_entries,
        hash_key: keys.hash.clone(),
        hash_fields: spec.hash_fields,
        string_keys: spec.string_keys,
        ..Default::default()
    };
    if spec.reuse {
        let xlen = int_reply(&mut conn, &[b"XLEN", keys.stream.as_bytes()]).await?;
        let hlen = int_reply(&mut conn, &[b"HLEN", keys.hash.as_bytes()]).await?;
        if xlen.is_some_and(|n| n >= spec.stream_entries)
            && hlen.is_some_and(|n| n >= spec.hash_fields)
        {
            report.stream_len = xlen;
            report.reused = true;
            report.elapsed_secs = started.elapsed().as_secs_f64();
            return Ok(report);
        }
    }
    // A fresh stream, so XREAD from 0-0 reads exactly what we wrote.
    conn.command(&[b"DEL", keys.stream.as_bytes(), keys.hash.as_bytes()])
        .await?;

    let pb = progress::bar(
        spec.quiet,
        spec.stream_entries + spec.hash_fields + spec.string_keys,
        "[{elapsed_precise}] [{bar:40}] preparing {pos}/{len} ({per_sec}, eta {eta})",
    );
    let value = spec.value;
    let stream = keys.stream.as_bytes();
    let mut index = Vec::new();
    pipelined(
        &mut conn,
        spec,
        &mut report,
        &pb,
        spec.stream_entries,
        1,
        |out, i, _| {
            index.clear();
            crate::conn::push_decimal(&mut index, i);
            encode_command(out, &[b"XADD", stream, b"*", b"n", &index, b"v", value]);
        },
    )
    .await?;
    let hash = keys.hash.as_bytes();
    pipelined(
        &mut conn,
        spec,
        &mut report,
        &pb,
        spec.hash_fields,
        BATCH,
        |out, from, to| {
            let fields: Vec<Vec<u8>> = (from..to).map(|i| format!("f:{i}").into_bytes()).collect();
            let mut args: Vec<&[u8]> = vec![b"HSET", hash];
            for f in &fields {
                args.push(f);
                args.push(value);
            }
            encode_command(out, &args);
        },
    )
    .await?;
    pipelined(
        &mut conn,
        spec,
        &mut report,
        &pb,
        spec.string_keys,
        BATCH,
        |out, from, to| {
            let names: Vec<Vec<u8>> = (from..to).map(|i| keys.string(i).into_bytes()).collect();
            let mut args: Vec<&[u8]> = vec![b"MSET"];
            for k in &names {
                args.push(k);
                args.push(value);
            }
            encode_command(out, &args);
        },
    )
    .await?;
    pb.finish_and_clear();
    report.stream_len = int_reply(&mut conn, &[b"XLEN", stream]).await?;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Sends `count` elements, `batch` per command, `WINDOW` commands in
/// flight; `encode(out, from, to)` appends the command for `from..to`.
async fn pipelined(
    conn: &mut RespConn,
    spec: &PrepareSpec<'_>,
    report: &mut PrepareReport,
    pb: &indicatif::ProgressBar,
    count: u64,
    batch: u64,
    mut encode: impl FnMut(&mut Vec<u8>, u64, u64),
) -> Result<(), ConnError> {
    let mut next = 0;
    let mut inflight: VecDeque<u64> = VecDeque::with_capacity(WINDOW);
    while next < count || !inflight.is_empty() {
        while next < count && inflight.len() < WINDOW {
            let to = (next + batch).min(count);
            encode(conn.wbuf(), next, to);
            inflight.push_back(to - next);
            report.commands += 1;
            next = to;
        }
        conn.flush().await?;
        conn.read_more(spec.reply_timeout).await?;
        while let Some(reply) = conn.try_next_reply()? {
            let n = inflight
                .pop_front()
                .ok_or_else(|| ConnError::Protocol("a reply nobody asked for".into()))?;
            if let Reply::Error(text) = reply {
                report.errors += 1;
                report.error_example.get_or_insert(text);
            }
            pb.inc(n);
        }
    }
    Ok(())
}
