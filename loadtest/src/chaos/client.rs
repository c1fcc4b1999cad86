//! A workload client: one RESP connection at a time to one of the proxies,
//! a deadline per operation, and the bookkeeping that turns what happened
//! on the wire into a history entry with Jepsen's meaning.
//!
//! - A reply is known: Ok, or Fail when the server refused (a CAS that did
//!   not match, `-BUSY`...). Which refusals mean "not applied" is decided
//!   in [`definite_refusal`].
//! - A connection that could not be opened, or broke before the request
//!   was written, never carried it: Fail.
//! - No reply before the deadline, or the connection broke after the
//!   request was written: unknown (Info). The connection is dropped (a late
//!   reply would be taken for the next request's) and the client continues
//!   as a new process id, as in Jepsen, so each process id has at most one
//!   open operation.
//!
//! Clients alternate between the proxies on every reconnect, so a proxy
//! killed mid-run costs each client one reconnect.

use super::history::{Op, OpKind, Outcome};
use super::RunClock;
use crate::conn::{encode_command, ConnectOptions, RespConn, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What one call (one or several pipelined commands) came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// One decoded reply per command, in order.
    Replies(Vec<Value>),
    /// Known not to have reached the server.
    NotSent(String),
    /// May or may not have been executed.
    Unknown(String),
}

/// Where clients connect and how long they wait.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `127.0.0.1:port` of each proxy.
    pub proxies: Vec<String>,
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Hands out process ids, unique within a run.
#[derive(Debug, Clone, Default)]
pub struct ProcessIds(Arc<AtomicU32>);

impl ProcessIds {
    pub fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

pub struct Client {
    cfg: Arc<ClientConfig>,
    /// Local address to connect from (see [`source_ip`]).
    source: Option<IpAddr>,
    clock: RunClock,
    ids: ProcessIds,
    process: u32,
    conn: Option<RespConn>,
    next_proxy: usize,
}

impl Client {
    /// A client that starts on proxy `first_proxy` (mod the proxy count)
    /// and connects from `source` (None: the kernel's choice).
    pub fn new(
        cfg: Arc<ClientConfig>,
        clock: RunClock,
        ids: ProcessIds,
        first_proxy: usize,
        source: Option<IpAddr>,
    ) -> Client {
        let process = ids.next();
        Client {
            cfg,
            source,
            clock,
            ids,
            process,
            conn: None,
            next_proxy: first_proxy,
        }
    }

    pub fn clock(&self) -> RunClock {
        self.clock
    }

    /// Sends `commands` pipelined and waits for all their replies, within
    /// the operation timeout (connecting included).
    pub async fn call(&mut self, commands: &[Vec<Vec<u8>>]) -> Call {
        let deadline = tokio::time::Instant::now() + self.cfg.op_timeout;
        if self.conn.is_none() {
            let endpoint = self.cfg.proxies[self.next_proxy % self.cfg.proxies.len()].clone();
            self.next_proxy = self.next_proxy.wrapping_add(1);
            let opts = ConnectOptions {
                endpoint,
                source_ip: self.source,
                password: None,
                connect_timeout: self.cfg.connect_timeout.min(self.cfg.op_timeout),
            };
            match RespConn::connect(&opts).await {
                Ok(c) => self.conn = Some(c),
                Err(e) => return Call::NotSent(e.to_string()),
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        for c in commands {
            let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            encode_command(conn.wbuf(), &args);
        }
        let flushed = tokio::time::timeout_at(deadline, conn.flush()).await;
        match flushed {
            Ok(Ok(())) => {}
            // A failed write may still have delivered a whole command.
            Ok(Err(e)) => return self.broken(format!("write: {e}")),
            Err(_) => return self.broken("timed out writing".into()),
        }
        let mut replies = Vec::with_capacity(commands.len());
        while replies.len() < commands.len() {
            match conn.try_next_value() {
                Ok(Some(v)) => {
                    replies.push(v);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return self.broken(e.to_string()),
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return self.broken(format!("no reply within {:?}", self.cfg.op_timeout));
            }
            if let Err(e) = conn.read_more(left).await {
                return self.broken(e.to_string());
            }
        }
        Call::Replies(replies)
    }

    fn broken(&mut self, why: String) -> Call {
        self.conn = None;
        Call::Unknown(why)
    }

    /// Forgets the connection (after a reply the client cannot trust, for
    /// example) so the next call reconnects.
    pub fn reconnect(&mut self) {
        self.conn = None;
    }

    /// Builds the history entry of an operation that started at `start_ns`
    /// and ends now. After an `Info` the client becomes a new process.
    pub fn finish(
        &mut self,
        start_ns: u64,
        outcome: Outcome,
        kind: OpKind,
        error: Option<String>,
    ) -> Op {
        let op = Op {
            process: self.process,
            start_ns,
            end_ns: Some(self.clock.now_ns()),
            outcome,
            kind,
            error,
        };
        if outcome == Outcome::Info {
            self.process = self.ids.next();
            self.conn = None;
        }
        op
    }
}

/// The loopback address client number `n` of a run connects from. The
/// proxy limits per client IP (connections, and each class's per-client
/// share); distinct addresses make the workload clients distinct clients,
/// as they would be in production, instead of one host holding one share.
pub fn source_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        1 + (n / 250) as u8 % 200,
        2 + (n % 250) as u8,
    ))
}

/// Whether an error reply means the command was certainly not applied.
///
/// - `BUSY`: the proxy's admission layer or the node's executor refused it
///   before running it (docs/policies.md).
/// - `TRYAGAIN`: the node did not run this command of the batch
///   (storage-node/src/exec/mod.rs, `Failure::error_reply`).
/// - `EXECABORT`, `WRONGTYPE`, `NOSCRIPT`, `NOAUTH`, `ERR syntax`...:
///   rejected before or instead of executing, as in Redis.
///
/// `CLUSTERDOWN` is not: the proxy documents that the writes of such a
/// batch may have been applied (proxy/src/error.rs). Any other `ERR` (a
/// storage error, say) is treated as unknown too.
pub fn definite_refusal(error: &str) -> bool {
    let word = error.split_ascii_whitespace().next().unwrap_or("");
    matches!(
        word,
        "BUSY" | "TRYAGAIN" | "EXECABORT" | "WRONGTYPE" | "NOSCRIPT" | "NOAUTH" | "NOPERM"
    ) || error.starts_with("ERR max connections")
        || error.starts_with("ERR syntax error")
        || error.starts_with("ERR wrong number of arguments")
        || error.starts_with("ERR unknown command")
}

/// The outcome of a write that got error reply `error`.
pub fn write_error_outcome(error: &str) -> Outcome {
    if definite_refusal(error) {
        Outcome::Fail
    } else {
        Outcome::Info
    }
}

/// Sends one command over a fresh connection to `addr` (harness queries
/// such as `INFO rampart`), bounded by `timeout`.
pub async fn oneshot(addr: &str, args: &[&str], timeout: Duration) -> Result<Value, String> {
    let work = async {
        let opts = ConnectOptions {
            endpoint: addr.to_string(),
            source_ip: None,
            password: None,
            connect_timeout: timeout,
        };
        let mut conn = RespConn::connect(&opts).await.map_err(|e| e.to_string())?;
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        conn.command(&args).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{addr}: no reply within {timeout:?}"))?
}

/// Text of a bulk or simple-string reply.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Simple(s) => Some(s.clone()),
        _ => None,
    }
}

/// An integer reply, or a bulk/simple string holding one (GET of a counter).
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.trim().parse().ok(),
    }
}

/// A command from its words.
pub fn argv(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_fail_and_the_rest_unknown() {
        assert_eq!(
            write_error_outcome("BUSY heavy class is full retry after 5ms"),
            Outcome::Fail
        );
        assert_eq!(
            write_error_outcome("TRYAGAIN leadership changed while the batch was running"),
            Outcome::Fail
        );
        assert_eq!(
            write_error_outcome("EXECABORT Transaction discarded because of previous errors."),
            Outcome::Fail
        );
        assert_eq!(
            write_error_outcome("CLUSTERDOWN The cluster is down: no leader reachable"),
            Outcome::Info
        );
        assert_eq!(
            write_error_outcome("ERR storage error: no space"),
            Outcome::Info
        );
        assert_eq!(write_error_outcome(""), Outcome::Info);
    }

    #[test]
    fn clients_get_distinct_loopback_sources() {
        let all: std::collections::HashSet<IpAddr> = (0..1000).map(source_ip).collect();
        assert_eq!(all.len(), 1000);
        assert!(all.iter().all(|ip| ip.is_loopback()));
    }

    #[test]
    fn integer_replies_in_any_form() {
        assert_eq!(int(&Value::Int(5)), Some(5));
        assert_eq!(int(&Value::Bulk(b"12".to_vec())), Some(12));
        assert_eq!(int(&Value::Bulk(b"x".to_vec())), None);
        assert_eq!(int(&Value::Nil), None);
    }
}
