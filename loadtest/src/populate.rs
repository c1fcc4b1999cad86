//! `rampart-loadtest populate`: fills one big collection (or many string
//! keys) with pipelined multi-element commands, so reads on small and huge
//! collections can be compared.
//!
//! Element `i` (0-based, from `--start`) is written as:
//!
//! | type | command (one per batch of elements) | element `i` |
//! | --- | --- | --- |
//! | `hash` | `HSET KEY f:i V ...` | field `f:i`, value V |
//! | `set` | `SADD KEY m:i ...` | member `m:i` |
//! | `zset` | `ZADD KEY i m:i ...` | member `m:i`, score `i` |
//! | `list` | `RPUSH KEY V ...` | value V |
//! | `string` | `MSET KEY:i V ...` | key `KEY:i`, value V |
//! | `stream` | `XADD KEY (i+1)-0 f V` (one entry per command: `--batch` is ignored) | entry id `(i+1)-0` |
//!
//! V is `--value-size` random alphanumerics. So `bench --keyspace N` with
//! `HGET KEY f:__key__`, `ZSCORE KEY m:__key__`, `SISMEMBER KEY m:__key__`
//! or `GET KEY:__key__` hits existing elements when N ≤ `--elements`; a
//! stream's ids are known, so `XREAD COUNT 10 STREAMS KEY <n-10>-0` reads
//! its newest 10 entries.

use crate::conn::{ConnError, ConnectOptions, Reply, RespConn};
use crate::progress;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum PopulateError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("the server rejected a batch: {0}")]
    Rejected(String),
    #[error("--batch must be at least 1")]
    EmptyBatch,
}

/// The kind of data to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    Hash,
    Set,
    Zset,
    List,
    String,
    Stream,
}

#[derive(Clone, Debug)]
pub struct PopulateConfig {
    pub connect: ConnectOptions,
    pub kind: CollectionType,
    pub key: String,
    pub elements: u64,
    pub start: u64,
    /// Elements per command.
    pub batch: u64,
    /// Commands in flight.
    pub pipeline: usize,
    pub value_size: usize,
    pub reply_timeout: Duration,
    pub seed: u64,
    pub quiet: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct PopulateReport {
    pub endpoint: String,
    #[serde(rename = "type")]
    pub kind: CollectionType,
    pub key: String,
    pub elements: u64,
    pub commands: u64,
    pub elapsed_secs: f64,
    pub elements_per_sec: f64,
}

/// Appends the command writing elements `from..to`.
fn encode_batch(out: &mut Vec<u8>, cfg: &PopulateConfig, value: &[u8], from: u64, to: u64) {
    let n = (to - from) as usize;
    let key = cfg.key.as_bytes();
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(2 + 2 * n);
    let name: &[u8] = match cfg.kind {
        CollectionType::Hash => b"HSET",
        CollectionType::Set => b"SADD",
        CollectionType::Zset => b"ZADD",
        CollectionType::List => b"RPUSH",
        CollectionType::String => b"MSET",
        CollectionType::Stream => b"XADD",
    };
    args.push(name.to_vec());
    if cfg.kind != CollectionType::String {
        args.push(key.to_vec());
    }
    for i in from..to {
        match cfg.kind {
            CollectionType::Hash => {
                args.push(format!("f:{i}").into_bytes());
                args.push(value.to_vec());
            }
            CollectionType::Set => args.push(format!("m:{i}").into_bytes()),
            CollectionType::Zset => {
                args.push(i.to_string().into_bytes());
                args.push(format!("m:{i}").into_bytes());
            }
            CollectionType::List => args.push(value.to_vec()),
            CollectionType::Stream => {
                args.push(format!("{}-0", i + 1).into_bytes());
                args.push(b"f".to_vec());
                args.push(value.to_vec());
            }
            CollectionType::String => {
                let mut k = key.to_vec();
                k.push(b':');
                k.extend_from_slice(i.to_string().as_bytes());
                args.push(k);
                args.push(value.to_vec());
            }
        }
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    crate::conn::encode_command(out, &refs);
}

/// Writes the elements and returns how long it took.
pub async fn run(cfg: &PopulateConfig) -> Result<PopulateReport, PopulateError> {
    if cfg.batch == 0 {
        return Err(PopulateError::EmptyBatch);
    }
    // XADD adds one entry per command.
    let batch = if cfg.kind == CollectionType::Stream {
        1
    } else {
        cfg.batch
    };
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let value = crate::workload::random_data(cfg.value_size, &mut rng);
    let mut conn = RespConn::connect(&cfg.connect).await?;
    let pb = progress::bar(
        cfg.quiet,
        cfg.elements.max(1),
        "[{elapsed_precise}] [{bar:40}] {pos}/{len} elements ({per_sec}, eta {eta})",
    );
    let started = Instant::now();
    let end = cfg.start + cfg.elements;
    let mut next = cfg.start;
    // Elements in each command still waiting for its reply, oldest first.
    let mut inflight: std::collections::VecDeque<u64> = Default::default();
    let mut commands = 0u64;
    while next < end || !inflight.is_empty() {
        while next < end && inflight.len() < cfg.pipeline.max(1) {
            let to = (next + batch).min(end);
            encode_batch(conn.wbuf(), cfg, &value, next, to);
            inflight.push_back(to - next);
            next = to;
            commands += 1;
        }
        conn.flush().await?;
        conn.read_more(cfg.reply_timeout).await?;
        while let Some(reply) = conn.try_next_reply()? {
            let n = inflight
                .pop_front()
                .ok_or_else(|| ConnError::Protocol("a reply nobody asked for".into()))?;
            if let Reply::Error(text) = reply {
                pb.abandon();
                return Err(PopulateError::Rejected(text));
            }
            pb.inc(n);
        }
    }
    pb.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    Ok(PopulateReport {
        endpoint: cfg.connect.endpoint.clone(),
        kind: cfg.kind,
        key: cfg.key.clone(),
        elements: cfg.elements,
        commands,
        elapsed_secs: elapsed,
        elements_per_sec: if elapsed > 0.0 {
            cfg.elements as f64 / elapsed
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: CollectionType) -> PopulateConfig {
        PopulateConfig {
            connect: ConnectOptions {
                endpoint: "127.0.0.1:6379".into(),
                source_ip: None,
                password: None,
                connect_timeout: Duration::from_secs(1),
            },
            kind,
            key: "k".into(),
            elements: 3,
            start: 0,
            batch: 2,
            pipeline: 1,
            value_size: 1,
            reply_timeout: Duration::from_secs(1),
            seed: 0,
            quiet: true,
        }
    }

    fn encoded(kind: CollectionType, from: u64, to: u64) -> String {
        let mut out = Vec::new();
        encode_batch(&mut out, &cfg(kind), b"v", from, to);
        String::from_utf8(out).unwrap().replace("\r\n", " ")
    }

    #[test]
    fn batches_use_the_documented_names() {
        assert_eq!(
            encoded(CollectionType::Hash, 0, 2),
            "*6 $4 HSET $1 k $3 f:0 $1 v $3 f:1 $1 v "
        );
        assert_eq!(
            encoded(CollectionType::Zset, 9, 11),
            "*6 $4 ZADD $1 k $1 9 $3 m:9 $2 10 $4 m:10 "
        );
        assert_eq!(
            encoded(CollectionType::Set, 5, 6),
            "*3 $4 SADD $1 k $3 m:5 "
        );
        assert_eq!(
            encoded(CollectionType::List, 0, 1),
            "*3 $5 RPUSH $1 k $1 v "
        );
        assert_eq!(
            encoded(CollectionType::String, 7, 8),
            "*3 $4 MSET $3 k:7 $1 v "
        );
        assert_eq!(
            encoded(CollectionType::Stream, 4, 5),
            "*5 $4 XADD $1 k $3 5-0 $1 f $1 v "
        );
    }
}
