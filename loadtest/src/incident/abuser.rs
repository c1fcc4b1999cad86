//! The abusive host: N connections from one source address, each a tight
//! loop of one command at a time (XREAD from the start of the big stream,
//! with KEYS * and HGETALL mixed in), during the abuse phase only.
//!
//! What it counts:
//! - `ops`: replies that were not errors;
//! - `busy`: `-BUSY ...` replies (Rampart's class limits);
//! - `conn_rejects`: connections the server refused: a failed connect, an
//!   `-ERR max connections ...` reply (the proxy's per-IP cap, sent before
//!   it closes), or a connection closed or reset before its first reply
//!   (the proxy's reject-rate limit resets without replying);
//! - `broken`: connections lost after at least one reply;
//! - other error replies by their first word.
//!
//! After a reject the connection is retried after `reconnect` (a reconnect
//! storm, as a real client library would produce).

use super::{Clock, Counters};
use crate::conn::{error_prefix, ConnError, ConnectOptions, Login, Reply, RespConn};
use crate::report::Recorder;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest `retry after` hint honoured.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The proxy's per-IP cap reply (policies/src/connections.rs).
const MAX_CONNECTIONS_REPLY: &str = "ERR max connections";

/// What the abuser does with `-BUSY ... retry after <ms>ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// Sleep for the hinted time (at most 1 s) before the next command.
    Hint,
    /// Send the next command at once (a client that ignores the hint).
    None,
}

/// The abuser's commands, encoded once.
#[derive(Debug)]
pub struct AbuserCommands {
    /// Display names, e.g. `XREAD COUNT 100 STREAMS k 0-0`.
    pub names: Vec<String>,
    pub encoded: Vec<Vec<u8>>,
    cumulative: Vec<u32>,
}

impl AbuserCommands {
    /// XREAD (`count` 0 = no COUNT: the whole stream), `KEYS *`, HGETALL,
    /// drawn with `weights` (zero drops a command).
    pub fn new(stream: &str, hash: &str, count: u64, weights: [u32; 3]) -> AbuserCommands {
        let count_text = count.to_string();
        let mut xread: Vec<&str> = vec!["XREAD"];
        if count > 0 {
            xread.extend(["COUNT", count_text.as_str()]);
        }
        xread.extend(["STREAMS", stream, "0-0"]);
        let all: [Vec<&str>; 3] = [xread, vec!["KEYS", "*"], vec!["HGETALL", hash]];
        let mut names = Vec::new();
        let mut encoded = Vec::new();
        let mut cumulative = Vec::new();
        let mut acc = 0;
        for (args, w) in all.iter().zip(weights) {
            acc += w;
            names.push(args.join(" "));
            let mut out = Vec::new();
            let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            crate::conn::encode_command(&mut out, &bytes);
            encoded.push(out);
            cumulative.push(acc);
        }
        AbuserCommands {
            names,
            encoded,
            cumulative,
        }
    }

    fn pick(&self, rng: &mut impl Rng) -> usize {
        let total = *self.cumulative.last().expect("three commands");
        let x = rng.gen_range(0..total.max(1));
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// What one abusive connection (or all, merged) saw.
#[derive(Clone, Debug, Default)]
pub struct AbuserOutcome {
    pub ops: u64,
    pub busy: u64,
    pub conn_rejects: u64,
    pub broken: u64,
    /// Per command: latency of every reply (errors included) and errors by
    /// prefix.
    pub commands: Vec<Recorder>,
    /// Other error replies by first word (not BUSY, not the per-IP cap).
    pub errors: BTreeMap<String, u64>,
    /// Successful replies per second of the run.
    pub ops_per_second: Vec<u64>,
    pub example_reject: Option<String>,
}

impl AbuserOutcome {
    pub fn merge(&mut self, o: &AbuserOutcome) {
        self.ops += o.ops;
        self.busy += o.busy;
        self.conn_rejects += o.conn_rejects;
        self.broken += o.broken;
        if self.commands.len() < o.commands.len() {
            self.commands.resize(o.commands.len(), Recorder::default());
        }
        for (a, b) in self.commands.iter_mut().zip(&o.commands) {
            a.merge(b);
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        if self.ops_per_second.len() < o.ops_per_second.len() {
            self.ops_per_second.resize(o.ops_per_second.len(), 0);
        }
        for (a, b) in self.ops_per_second.iter_mut().zip(&o.ops_per_second) {
            *a += b;
        }
        if self.example_reject.is_none() {
            self.example_reject.clone_from(&o.example_reject);
        }
    }

    fn reject(&mut self, counters: &Counters, what: String) {
        self.conn_rejects += 1;
        counters.abuser_rejects.fetch_add(1, Ordering::Relaxed);
        self.example_reject.get_or_insert(what);
    }
}

/// The `N` in `... retry after Nms`.
pub fn retry_hint(text: &str) -> Option<Duration> {
    let at = text.rfind("retry after ")? + "retry after ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok().map(Duration::from_millis)
}

pub struct Abuser {
    pub connect: ConnectOptions,
    /// Log in as this ACL user (else `connect`'s password, if any).
    pub login: Option<Login>,
    pub commands: Arc<AbuserCommands>,
    pub rng: StdRng,
    pub clock: Clock,
    pub backoff: Backoff,
    pub reconnect: Duration,
    pub reply_timeout: Duration,
    pub counters: Arc<Counters>,
}

impl Abuser {
    /// Runs from the start to the end of the abuse phase; a command still
    /// waiting for its reply then is abandoned (not counted).
    pub async fn run(mut self) -> AbuserOutcome {
        let (start, end) = self.clock.phase_bounds(1);
        let mut out = AbuserOutcome {
            commands: vec![Recorder::default(); self.commands.names.len()],
            ops_per_second: vec![0; self.clock.seconds()],
            ..Default::default()
        };
        tokio::time::sleep_until(start.into()).await;
        while Instant::now() < end {
            let conn = match tokio::time::timeout_at(
                end.into(),
                RespConn::connect_as(&self.connect, self.login.as_ref()),
            )
            .await
            {
                Err(_) => break,
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    out.reject(&self.counters, e.to_string());
                    self.pause(self.reconnect, end).await;
                    continue;
                }
            };
            self.session(conn, &mut out, end).await;
        }
        out
    }

    async fn pause(&self, d: Duration, end: Instant) {
        tokio::time::sleep_until((Instant::now() + d).min(end).into()).await;
    }

    /// One connection until the phase ends or the connection is lost.
    async fn session(&mut self, mut conn: RespConn, out: &mut AbuserOutcome, end: Instant) {
        let mut replies = 0u64;
        loop {
            if Instant::now() >= end {
                return;
            }
            let which = self.commands.pick(&mut self.rng);
            conn.wbuf().extend_from_slice(&self.commands.encoded[which]);
            let sent = Instant::now();
            let timeout = self.reply_timeout;
            let exchange = async {
                conn.flush().await?;
                loop {
                    if let Some(reply) = conn.try_next_reply()? {
                        return Ok::<_, ConnError>(reply);
                    }
                    conn.read_more(timeout).await?;
                }
            };
            let reply = match tokio::time::timeout_at(end.into(), exchange).await {
                Err(_) => return,
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => {
                    if replies == 0 {
                        out.reject(&self.counters, e.to_string());
                    } else {
                        out.broken += 1;
                    }
                    self.pause(self.reconnect, end).await;
                    return;
                }
            };
            replies += 1;
            let latency = Instant::now().saturating_duration_since(sent);
            match reply {
                Reply::Ok => {
                    out.commands[which].record(latency, None);
                    out.ops += 1;
                    if let Some(n) = out.ops_per_second.get_mut(self.clock.second_of(sent)) {
                        *n += 1;
                    }
                    self.counters.abuser_ops.fetch_add(1, Ordering::Relaxed);
                }
                Reply::Error(text) => {
                    out.commands[which].record(latency, Some(&text));
                    if text.starts_with(MAX_CONNECTIONS_REPLY) {
                        out.reject(&self.counters, text);
                        self.pause(self.reconnect, end).await;
                        return;
                    }
                    let prefix = error_prefix(&text);
                    if prefix == "BUSY" {
                        out.busy += 1;
                        self.counters.abuser_busy.fetch_add(1, Ordering::Relaxed);
                        if self.backoff == Backoff::Hint {
                            if let Some(d) = retry_hint(&text) {
                                self.pause(d.min(MAX_BACKOFF), end).await;
                            }
                        }
                    } else {
                        *out.errors.entry(prefix.to_string()).or_default() += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn commands_and_weights() {
        let c = AbuserCommands::new("s", "h", 100, [8, 1, 0]);
        assert_eq!(c.names[0], "XREAD COUNT 100 STREAMS s 0-0");
        assert_eq!(c.names[2], "HGETALL h");
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = [0; 3];
        for _ in 0..900 {
            seen[c.pick(&mut rng)] += 1;
        }
        assert!(seen[0] > seen[1] && seen[1] > 0 && seen[2] == 0, "{seen:?}");
        let whole = AbuserCommands::new("s", "h", 0, [1, 1, 1]);
        assert_eq!(whole.names[0], "XREAD STREAMS s 0-0");
    }

    #[test]
    fn parses_retry_hints() {
        assert_eq!(
            retry_hint("BUSY class heavy_data is at its concurrency limit, retry after 116ms"),
            Some(Duration::from_millis(116))
        );
        assert_eq!(retry_hint("BUSY Redis is busy running a script"), None);
    }
}
