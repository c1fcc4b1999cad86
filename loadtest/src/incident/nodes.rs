//! The storage nodes' Prometheus metrics: finding the nodes through the
//! proxy's `INFO rampart` section, scraping `/metrics` over plain HTTP, and
//! the two numbers the incident report needs per phase: Raft commit p99
//! (from the delta of the `rampart_raft_commit_seconds` histogram over the
//! phase) and the increase of `rampart_raft_proposal_overflow_total`.

use crate::conn::{ConnectOptions, RespConn, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Histogram of proposal → committed on the leader (docs/metrics.md).
pub const COMMIT_HISTOGRAM: &str = "rampart_raft_commit_seconds";
/// The incident's `step_queue_full` counter, all `reason` labels summed.
pub const OVERFLOW_COUNTER: &str = "rampart_raft_proposal_overflow_total";

/// A scrape that takes longer than this counts as failed (a starved node
/// must not stall the run).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/metrics` body read.
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("{0}: only http://HOST:PORT/PATH URLs are supported")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{0}: timed out")]
    Timeout(String),
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: String },
    #[error("{0}: malformed HTTP response")]
    Malformed(String),
}

/// The metrics URLs in the proxy's `INFO rampart` section (lines
/// `nodeN:id=..,addr=..,role=..,...,metrics_url=URL`). Empty when the
/// endpoint has no such section (a plain redis-server) or the nodes serve
/// no metrics.
pub async fn discover(connect: &ConnectOptions) -> Result<Vec<String>, crate::conn::ConnError> {
    let mut conn = RespConn::connect(connect).await?;
    let text = match conn.command(&[b"INFO", b"rampart"]).await? {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => return Ok(Vec::new()),
    };
    Ok(parse_info_nodes(&text))
}

fn parse_info_nodes(text: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for line in text.lines() {
        let Some((key, fields)) = line.trim_end().split_once(':') else {
            continue;
        };
        if !key.starts_with("node") || key[4..].parse::<u32>().is_err() {
            continue;
        }
        // The URL is the last field and may itself contain ',' only in
        // theory; take everything after the key.
        if let Some(at) = fields.find("metrics_url=") {
            let url = fields[at + "metrics_url=".len()..].trim();
            if !url.is_empty() && !urls.iter().any(|u| u == url) {
                urls.push(url.to_string());
            }
        }
    }
    urls
}

/// Splits `http://host:port/path` into (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), ScrapeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ScrapeError::BadUrl(url.to_string()))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    if host.is_empty() {
        return Err(ScrapeError::BadUrl(url.to_string()));
    }
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

/// GETs the URL with HTTP/1.0 (the server closes after the body, so no
/// keep-alive or chunking to handle in the common case; chunked bodies are
/// decoded anyway).
pub async fn fetch(url: &str) -> Result<String, ScrapeError> {
    let (host, path) = split_url(url)?;
    let io = |source| ScrapeError::Io {
        url: url.to_string(),
        source,
    };
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(&host).await.map_err(io)?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/plain\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_BODY as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        Ok::<_, ScrapeError>(raw)
    };
    let raw = tokio::time::timeout(SCRAPE_TIMEOUT, work)
        .await
        .map_err(|_| ScrapeError::Timeout(url.to_string()))??;
    let malformed = || ScrapeError::Malformed(url.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(malformed)?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(ScrapeError::Status {
            url: url.to_string(),
            status: status.to_string(),
        });
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(malformed)?
    } else {
        body.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let nl = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..nl]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// The part of one node's metrics the report uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Cumulative bucket counts of the commit histogram by upper bound in
    /// seconds (`+Inf` as `f64::INFINITY`), ascending.
    pub commit_buckets: Vec<(f64, f64)>,
    /// `rampart_raft_proposal_overflow_total`, summed over its labels;
    /// `None` when the node does not export it.
    pub overflow: Option<f64>,
}

/// Extracts [`Sample`] from Prometheus text format.
pub fn parse_sample(text: &str) -> Sample {
    let bucket_name = format!("{COMMIT_HISTOGRAM}_bucket");
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let mut overflow = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let Some(close) = line[open..].find('}') else {
                    continue;
                };
                (
                    &line[..open],
                    &line[open + 1..open + close],
                    &line[open + close + 1..],
                )
            }
            None => match line.split_once(' ') {
                Some((n, r)) => (n, "", r),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next().and_then(parse_float) else {
            continue;
        };
        if name == OVERFLOW_COUNTER {
            *overflow.get_or_insert(0.0) += value;
        } else if name == bucket_name {
            let Some(le) = label(labels, "le").and_then(parse_float) else {
                continue;
            };
            // Keyed by the bound's bits so equal bounds of several label
            // sets add up (bounds are positive, so bit order = numeric order).
            let entry = buckets.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += value;
        }
    }
    Sample {
        commit_buckets: buckets.into_values().collect(),
        overflow,
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// The value of `name="..."` in a label list.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// What happened on the nodes between two scrapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    /// Commit histogram increase (cumulative per bound), summed over nodes.
    pub commit_buckets: Vec<(f64, f64)>,
    pub overflow: Option<f64>,
    /// Nodes that answered both scrapes.
    pub nodes: usize,
}

impl Delta {
    /// Increase from `before` to `after`, per node (same order, `None` =
    /// that scrape failed), summed. A counter that went down (the node
    /// restarted) counts from zero.
    pub fn between(before: &[Option<Sample>], after: &[Option<Sample>]) -> Delta {
        let mut sum: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let mut overflow = None;
        let mut nodes = 0;
        for (b, a) in before.iter().zip(after) {
            let (Some(b), Some(a)) = (b, a) else {
                continue;
            };
            nodes += 1;
            let restarted = a
                .commit_buckets
                .last()
                .zip(b.commit_buckets.last())
                .is_some_and(|(a, b)| a.1 < b.1);
            for &(le, count) in &a.commit_buckets {
                let prior = if restarted {
                    0.0
                } else {
                    b.commit_buckets
                        .iter()
                        .find(|(l, _)| *l == le)
                        .map_or(0.0, |(_, c)| *c)
                };
                sum.entry(le.to_bits()).or_insert((le, 0.0)).1 += (count - prior).max(0.0);
            }
            if let Some(after) = a.overflow {
                let before = b.overflow.unwrap_or(0.0);
                let inc = if after >= before {
                    after - before
                } else {
                    after
                };
                *overflow.get_or_insert(0.0) += inc;
            }
        }
        Delta {
            commit_buckets: sum.into_values().collect(),
            overflow,
            nodes,
        }
    }

    /// Commits observed (the `+Inf` bucket).
    pub fn commits(&self) -> f64 {
        self.commit_buckets.last().map_or(0.0, |b| b.1)
    }

    /// Commit latency quantile in milliseconds, `None` without commits.
    pub fn commit_quantile_ms(&self, q: f64) -> Option<f64> {
        histogram_quantile(q, &self.commit_buckets).map(|s| s * 1000.0)
    }
}

/// Prometheus's `histogram_quantile`: find the bucket holding rank
/// `q × total` and interpolate linearly inside it (from 0 for the first
/// bucket). A rank in the `+Inf` bucket gives the highest finite bound.
pub fn histogram_quantile(q: f64, cumulative: &[(f64, f64)]) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in cumulative {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            if count <= below {
                return Some(le);
            }
            return Some(lower + (le - lower) * (rank - below) / (count - below));
        }
        lower = le;
        below = count;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE rampart_raft_commit_seconds histogram
rampart_raft_commit_seconds_bucket{le=\"0.001\"} 10
rampart_raft_commit_seconds_bucket{le=\"0.01\"} 90
rampart_raft_commit_seconds_bucket{le=\"0.1\"} 100
rampart_raft_commit_seconds_bucket{le=\"+Inf\"} 100
rampart_raft_commit_seconds_sum 1.5
rampart_raft_commit_seconds_count 100
# TYPE rampart_raft_proposal_overflow_total counter
rampart_raft_proposal_overflow_total{reason=\"queue_full\"} 3
rampart_raft_proposal_overflow_total{reason=\"expired\"} 2
rampart_raft_apply_seconds_bucket{le=\"0.001\"} 77
";

    #[test]
    fn parses_buckets_and_counter() {
        let s = parse_sample(TEXT);
        assert_eq!(
            s.commit_buckets,
            vec![
                (0.001, 10.0),
                (0.01, 90.0),
                (0.1, 100.0),
                (f64::INFINITY, 100.0)
            ]
        );
        assert_eq!(s.overflow, Some(5.0));
        assert_eq!(parse_sample("up 1\n"), Sample::default());
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let s = parse_sample(TEXT);
        // rank 50 lies in (0.001, 0.01] holding 80: 0.001 + 0.009 * 40/80.
        let p50 = histogram_quantile(0.5, &s.commit_buckets).unwrap();
        assert!((p50 - 0.0055).abs() < 1e-12, "{p50}");
        let p99 = histogram_quantile(0.99, &s.commit_buckets).unwrap();
        assert!((p99 - 0.091).abs() < 1e-12, "{p99}");
        assert_eq!(histogram_quantile(0.99, &[(1.0, 0.0)]), None);
        // Everything above the last finite bound: that bound.
        assert_eq!(
            histogram_quantile(0.99, &[(0.5, 0.0), (f64::INFINITY, 4.0)]),
            Some(0.5)
        );
    }

    #[test]
    fn deltas_sum_nodes_and_survive_restarts() {
        let before = parse_sample(TEXT);
        let after = parse_sample(&TEXT.replace("} 100", "} 110").replace("} 3", "} 4"));
        let d = Delta::between(
            &[Some(before.clone()), None, Some(before.clone())],
            &[
                Some(after.clone()),
                Some(after.clone()),
                Some(parse_sample("")),
            ],
        );
        // Node 2 missed the first scrape; node 3 lost its metrics.
        assert_eq!(d.nodes, 2);
        assert_eq!(d.commits(), 10.0);
        assert_eq!(d.overflow, Some(1.0));
        // All 10 new commits are in (0.01, 0.1].
        let p99 = d.commit_quantile_ms(0.99).unwrap();
        assert!((p99 - 99.1).abs() < 1e-9, "{p99}");
        let restarted = Delta::between(&[Some(after)], &[Some(before)]);
        assert_eq!(restarted.commits(), 100.0);
        assert_eq!(restarted.overflow, Some(5.0));
    }

    #[test]
    fn finds_nodes_in_info() {
        let info = "# Rampart\r\nproxy_id:p1\r\nleader_addr:127.0.0.1:7101\r\nnodes:3\r\n\
            node0:id=1,addr=127.0.0.1:7101,role=leader,term=2,leader_id=1,last_log_index=9,applied_index=9,metrics_url=http://127.0.0.1:9101/metrics\r\n\
            node1:addr=127.0.0.1:7102,role=unreachable,error=refused\r\n\
            node2:id=3,addr=127.0.0.1:7103,role=follower,term=2,leader_id=1,last_log_index=9,applied_index=9,metrics_url=\r\n";
        assert_eq!(
            parse_info_nodes(info),
            vec!["http://127.0.0.1:9101/metrics"]
        );
    }

    #[test]
    fn urls_and_chunks() {
        assert_eq!(
            split_url("http://127.0.0.1:9101/metrics").unwrap(),
            ("127.0.0.1:9101".into(), "/metrics".into())
        );
        assert_eq!(
            split_url("http://node1").unwrap(),
            ("node1:80".into(), "/metrics".into())
        );
        assert!(split_url("https://x/metrics").is_err());
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
    }
}
