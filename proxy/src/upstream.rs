//! gRPC client to the storage nodes: finds the leader, follows leader
//! changes and retries a batch safely until a deadline.
//!
//! Retry rules for one batch:
//! - `not_leader` with an address: go there at once (no backoff).
//! - `not_leader` without an address, `unavailable`, a transport error or a
//!   per-attempt timeout: forget the leader, try the next node after a short
//!   backoff (20 ms doubling to 200 ms). One attempt gets at most half the
//!   deadline ([`ATTEMPT_SHARE`]): a leader cut off from its quorum accepts
//!   the call and never answers, and the proxy must have time left to find
//!   the new one (a chaos run found writes unavailable for the whole of a
//!   leader isolation). Blocking calls and scripts are not cut.
//! - Past the deadline (`--retry-deadline-ms`, default 5 s):
//!   [`ProxyError::ClusterDown`], which the client sees as
//!   `-CLUSTERDOWN The cluster is down: no leader reachable`.
//!
//! Every attempt resends the same `client_id` and `request_seq`, so a write
//! that was applied but whose answer was lost is not applied twice: the node's
//! state machine returns the remembered replies instead. A blocking XREAD
//! that already waited on a node is resent as that node resolved it (its
//! `$` ids replaced), so a retry does not skip entries added in between.
//! A retried blocking command carries only what is left of its timeout
//! (its timeout argument rewritten), so a failover does not restart it.
//!
//! With traces on, each attempt is a `grpc.client` span (kind client, named
//! `rampart.v1.Kv/Execute` or `/ExecuteBlocking`) whose context travels to the node in the
//! request's `traceparent` metadata.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rampart_proto::cluster_tls::{self, ClusterTls};
use rampart_proto::command_table::lookup_argv;
use rampart_proto::pb::blocking_event::Event;
use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::kv_client::KvClient;
use rampart_proto::pb::{
    AclDenial, ClusterStatus, Command, ExecuteRequest, ExecuteResponse, StatusRequest, WatchedKey,
};
use rampart_proto::{Argv, Reply};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Code;
use tracing::field::Empty;
use tracing::Instrument;

use crate::error::ProxyError;

/// An attempt on one node may use at most 1/`ATTEMPT_SHARE` of the retry
/// deadline (the last attempt whatever is left).
pub const ATTEMPT_SHARE: u32 = 2;

/// One gRPC attempt to a node, by `service`, `method` and `outcome` (ok,
/// error = a gRPC status, timeout = the retry deadline ran out).
pub const GRPC_CLIENT_SECONDS: &str = "rampart_grpc_client_seconds";

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// How one [`Upstream::call`] is sent. `CallOptions::default()` is a plain
/// batch: `Kv.Execute`, one reply per command, the upstream's own deadline.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// How long to keep retrying before [`ProxyError::ClusterDown`];
    /// `None`: the upstream's deadline (`--retry-deadline-ms`). INFO uses a
    /// short one, a blocking command one extended by its timeout.
    pub deadline: Option<Duration>,
    /// The batch runs a Lua script: an attempt is not cut by the deadline
    /// (a script may run until it ends or SCRIPT KILL stops it).
    pub unbounded: bool,
    /// Set when the batch is one blocking command: it is sent with
    /// `Kv.ExecuteBlocking`, and this is called each time a node reports
    /// that the command waits.
    pub blocking: Option<OnWaiting>,
    /// Set for MULTI/EXEC: the commands are applied all or nothing in one
    /// Raft entry if no key in these watches changed, and the answer is ONE
    /// reply, the EXEC reply (the array of the commands' replies, or a null
    /// array when a watched key changed).
    pub transaction: Option<Vec<WatchedKey>>,
    /// The ACL user the batch runs as (a client's batch: its session's
    /// user, `default` included). The node checks a script's `redis.call`s
    /// against it; `None` for the proxy's own calls (ACL polling, INFO).
    pub user: Option<String>,
}

/// Called when a node reports that a blocking command waits (its first
/// attempt found nothing; an XREAD's `$` is resolved).
#[derive(Clone)]
pub struct OnWaiting(Arc<dyn Fn() + Send + Sync>);

impl OnWaiting {
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        OnWaiting(Arc::new(f))
    }

    pub fn call(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for OnWaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnWaiting")
    }
}

/// Told of the ACL denials a batch's scripts met on the node, with the
/// batch's client id (the proxy adds them to its ACL LOG).
pub type ScriptDenials = Box<dyn Fn(&str, &[AclDenial]) + Send + Sync>;

/// The node tier as one client: a lazily connected tonic channel per node
/// address and the address of the last known leader.
pub struct Upstream {
    seeds: Vec<String>,
    /// Mutual TLS to the nodes (`None`: plaintext, `--insecure`).
    tls: Option<ClusterTls>,
    channels: Mutex<HashMap<String, Channel>>,
    leader: Mutex<Option<String>>,
    deadline: Duration,
    script_denials: OnceLock<ScriptDenials>,
}

impl Upstream {
    /// `seeds` are node client addresses (`host:port`).
    pub fn new(seeds: Vec<String>, deadline: Duration) -> Self {
        Upstream {
            seeds,
            tls: None,
            channels: Mutex::new(HashMap::new()),
            leader: Mutex::new(None),
            deadline,
            script_denials: OnceLock::new(),
        }
    }

    /// Sets what is told of the ACL denials scripts meet (once; later
    /// calls are ignored).
    pub fn on_script_denials(&self, hook: ScriptDenials) {
        let _ = self.script_denials.set(hook);
    }

    /// Dials the nodes with mutual TLS when `tls` is set.
    pub fn with_tls(mut self, tls: Option<ClusterTls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// The last node that served a batch as leader.
    pub fn leader(&self) -> Option<String> {
        self.leader.lock().ok().and_then(|l| l.clone())
    }

    fn set_leader(&self, addr: &str) {
        if let Ok(mut leader) = self.leader.lock() {
            if leader.as_deref() != Some(addr) {
                tracing::info!(leader = addr, "following leader");
                *leader = Some(addr.to_string());
            }
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, ProxyError> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| ProxyError::Upstream("channel table poisoned".into()))?;
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let endpoint = cluster_tls::endpoint(self.tls.as_ref(), addr)
            .map_err(ProxyError::Upstream)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        // Lazy: a node that is down costs nothing until it is tried, and the
        // channel reconnects by itself when the node comes back.
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Drops the cached channel to `addr`: the next call dials anew.
    fn forget_channel(&self, addr: &str) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.remove(addr);
        }
    }

    /// The node to try after `current`: the seed following it in the list.
    fn next_seed(&self, current: &str) -> String {
        let pos = self.seeds.iter().position(|s| s == current);
        let next = match pos {
            Some(i) => (i + 1) % self.seeds.len().max(1),
            None => 0,
        };
        self.seeds
            .get(next)
            .cloned()
            .unwrap_or_else(|| current.to_string())
    }

    /// Executes `commands` on the leader, retrying as described in the
    /// module docs, and returns one reply per command in order (one reply
    /// in all for a transaction, see [`CallOptions::transaction`]).
    ///
    /// `client_id` and `seq` identify the request: every attempt resends
    /// them, so the node applies a write at most once.
    pub async fn call(
        &self,
        commands: Vec<Argv>,
        client_id: String,
        seq: u64,
        options: CallOptions,
    ) -> Result<Vec<Reply>, ProxyError> {
        let CallOptions {
            deadline,
            unbounded,
            blocking,
            transaction,
            user,
        } = options;
        let expected = if transaction.is_some() {
            1
        } else {
            commands.len()
        };
        let request = ExecuteRequest {
            commands: commands.into_iter().map(|args| Command { args }).collect(),
            client_id,
            request_seq: seq,
            transaction: transaction.is_some(),
            watches: transaction.unwrap_or_default(),
            user,
        };
        let deadline = deadline.unwrap_or(self.deadline);
        self.execute_request(request, expected, deadline, unbounded, blocking.as_ref())
            .await
    }

    /// Sends `request` to the leader, following redirects and retrying until
    /// `deadline`; the node must answer `expected` replies.
    async fn execute_request(
        &self,
        mut request: ExecuteRequest,
        expected: usize,
        deadline: Duration,
        unbounded: bool,
        on_waiting: Option<&OnWaiting>,
    ) -> Result<Vec<Reply>, ProxyError> {
        let started = Instant::now();
        let mut give_up = started + deadline;
        // A blocking command's own timeout (None: not blocking, or forever).
        let block_timeout = on_waiting
            .and_then(|_| request.commands.first())
            .and_then(|c| lookup_argv(&c.args)?.block_timeout(&c.args)?);
        let mut attempts = 0u32;
        let mut target = match self.leader() {
            Some(leader) => leader,
            None => self
                .seeds
                .first()
                .cloned()
                .ok_or(ProxyError::ClusterDown(deadline))?,
        };
        let mut backoff = FIRST_BACKOFF;
        let mut redirects = 0;
        loop {
            let now = Instant::now();
            if now >= give_up {
                return Err(ProxyError::ClusterDown(deadline));
            }
            if let (Some(total), true) = (block_timeout, attempts > 0) {
                remaining_timeout(&mut request, total.saturating_sub(started.elapsed()));
            }
            attempts += 1;
            let mut client = KvClient::new(self.channel(&target)?)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            let method = if on_waiting.is_some() {
                "ExecuteBlocking"
            } else {
                "Execute"
            };
            let span = attempt_span(&target, method);
            let mut call = tonic::Request::new(request.clone());
            rampart_telemetry::grpc::inject(&span, call.metadata_mut());
            let mut resume = None;
            let send = send_once(&mut client, call, on_waiting, &mut resume);
            // Bounded by the deadline: a node that accepted the connection
            // but hangs (lost quorum) must not hold the batch forever.
            let attempt = if unbounded {
                // A script runs as long as it runs (until SCRIPT KILL), as
                // in Redis; the time it took does not count against the
                // deadline of the retries around it.
                let answer = send.instrument(span.clone()).await;
                give_up += now.elapsed();
                Ok(answer)
            } else {
                let mut limit = give_up - now;
                if on_waiting.is_none() {
                    limit = limit.min(deadline / ATTEMPT_SHARE);
                }
                tokio::time::timeout(limit, send)
                    .instrument(span.clone())
                    .await
            };
            if let Some(command) = resume {
                // A retry continues this wait: same ids, not a new `$`.
                request.commands = vec![command];
            }
            let outcome = match &attempt {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "error",
                Err(_) => "timeout",
            };
            if rampart_telemetry::enabled() {
                record_attempt(&span, &attempt);
            }
            metrics::histogram!(
                GRPC_CLIENT_SECONDS,
                "service" => "rampart.v1.Kv",
                "method" => method,
                "outcome" => outcome
            )
            .record(now.elapsed());
            let redirect = match attempt {
                Ok(Ok(response)) => match response.into_inner().outcome {
                    Some(Outcome::Replies(replies)) => {
                        if replies.replies.len() != expected {
                            return Err(ProxyError::Upstream(format!(
                                "node {target} returned {} replies for {expected} commands",
                                replies.replies.len()
                            )));
                        }
                        self.set_leader(&target);
                        if !replies.acl_denials.is_empty() {
                            if let Some(hook) = self.script_denials.get() {
                                hook(&request.client_id, &replies.acl_denials);
                            }
                        }
                        return Ok(replies.replies);
                    }
                    Some(Outcome::NotLeader(not_leader)) => {
                        if !not_leader.leader_addr.is_empty() && not_leader.leader_addr != target {
                            Some(not_leader.leader_addr)
                        } else {
                            None
                        }
                    }
                    Some(Outcome::Unavailable(u)) => {
                        tracing::debug!(node = %target, reason = %u.reason, "node unavailable");
                        None
                    }
                    None => {
                        return Err(ProxyError::Upstream(format!(
                            "node {target} sent an empty response"
                        )))
                    }
                },
                Ok(Err(status)) if retryable(status.code()) => {
                    tracing::debug!(node = %target, error = %status.message(), "node unreachable");
                    None
                }
                // The connection itself failed (an h2 protocol error after
                // the node was paused and resumed): open a new one. Like a
                // timeout, the outcome of this attempt is unknown, and the
                // request id makes the resend safe: a write the node did
                // apply is answered from its dedup record, not applied again.
                Ok(Err(status)) if transport_failure(&status) => {
                    tracing::debug!(node = %target, error = %status.message(), "connection failed; reconnecting");
                    self.forget_channel(&target);
                    None
                }
                Ok(Err(status)) => {
                    return Err(ProxyError::Upstream(format!(
                        "node {target}: {}",
                        status.message()
                    )));
                }
                // The same ids make a retry elsewhere safe: if this node
                // did commit the batch, the dedup record answers it.
                Err(_elapsed) if Instant::now() < give_up => {
                    tracing::debug!(node = %target, "attempt timed out; trying another node");
                    None
                }
                Err(_elapsed) => return Err(ProxyError::ClusterDown(deadline)),
            };
            match redirect {
                // Follow a redirect at once, but back off if nodes keep
                // pointing at each other (a leader change in progress).
                Some(leader) if redirects < 2 => {
                    redirects += 1;
                    self.set_leader(&leader);
                    target = leader;
                }
                Some(leader) => {
                    redirects = 0;
                    self.set_leader(&leader);
                    target = leader;
                    let remaining = give_up.saturating_duration_since(Instant::now());
                    tokio::time::sleep(backoff.min(remaining)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                None => {
                    if let Ok(mut leader) = self.leader.lock() {
                        if leader.as_deref() == Some(target.as_str()) {
                            *leader = None;
                        }
                    }
                    target = self.next_seed(&target);
                    let remaining = give_up.saturating_duration_since(Instant::now());
                    tokio::time::sleep(backoff.min(remaining)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Asks every seed node for its Raft status, each bounded by `timeout`.
    /// Returns (address, status or error text) in seed order.
    pub async fn status_all(
        &self,
        timeout: Duration,
    ) -> Vec<(String, Result<ClusterStatus, String>)> {
        let calls = self.seeds.iter().map(|addr| async move {
            let result = async {
                // Kv.Status: Admin is not served to proxies (docs/security.md).
                let mut client = KvClient::new(self.channel(addr).map_err(|e| e.to_string())?);
                match tokio::time::timeout(timeout, client.status(StatusRequest {})).await {
                    Ok(Ok(response)) => Ok(response.into_inner()),
                    Ok(Err(status)) => Err(status.message().to_string()),
                    Err(_) => Err("timeout".to_string()),
                }
            }
            .await;
            (addr.clone(), result)
        });
        futures::future::join_all(calls).await
    }
}

/// Rewrites the blocking command of `request` to wait at most `remaining`
/// (see [`CommandSpec::with_remaining_timeout`]).
///
/// [`CommandSpec::with_remaining_timeout`]: rampart_proto::command_spec::CommandSpec::with_remaining_timeout
fn remaining_timeout(request: &mut ExecuteRequest, remaining: Duration) {
    let Some(command) = request.commands.first_mut() else {
        return;
    };
    if let Some(args) = lookup_argv(&command.args)
        .and_then(|spec| spec.with_remaining_timeout(&command.args, remaining))
    {
        command.args = args;
    }
}

/// One attempt: `Execute`, or with `on_waiting` the `ExecuteBlocking`
/// stream, whose `waiting` events call it (and leave in `resume` the
/// command a retry must send) and whose `done` is the answer.
async fn send_once(
    client: &mut KvClient<Channel>,
    call: tonic::Request<ExecuteRequest>,
    on_waiting: Option<&OnWaiting>,
    resume: &mut Option<Command>,
) -> Result<tonic::Response<ExecuteResponse>, tonic::Status> {
    let Some(on_waiting) = on_waiting else {
        return client.execute(call).await;
    };
    let mut events = client.execute_blocking(call).await?.into_inner();
    while let Some(event) = events.message().await? {
        match event.event {
            Some(Event::Waiting(waiting)) => {
                on_waiting.call();
                if waiting.resume.is_some() {
                    *resume = waiting.resume;
                }
            }
            Some(Event::Done(response)) => return Ok(tonic::Response::new(response)),
            None => {}
        }
    }
    // The node stopped (or dropped the call) before answering: retryable,
    // the request id makes a resend safe.
    Err(tonic::Status::unavailable(
        "the node ended a blocking call without an answer",
    ))
}

/// The span of one `Kv.Execute` attempt to `target` (disabled when traces
/// are off).
fn attempt_span(target: &str, method: &str) -> tracing::Span {
    tracing::debug_span!(
        "grpc.client",
        otel.name = format!("rampart.v1.Kv/{method}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = "rampart.v1.Kv",
        rpc.method = method,
        server.address = target,
        rpc.grpc.status_code = Empty,
        rampart.outcome = Empty,
    )
}

/// Puts an attempt's result on its span: the gRPC status, the node's answer
/// (`replies`, `not_leader`, `unavailable`) and, for failures, status Error.
fn record_attempt(
    span: &tracing::Span,
    attempt: &Result<
        Result<tonic::Response<rampart_proto::pb::ExecuteResponse>, tonic::Status>,
        tokio::time::error::Elapsed,
    >,
) {
    match attempt {
        Ok(Ok(response)) => {
            span.record("rpc.grpc.status_code", 0);
            let outcome = match &response.get_ref().outcome {
                Some(Outcome::Replies(_)) => "replies",
                Some(Outcome::NotLeader(_)) => "not_leader",
                Some(Outcome::Unavailable(u)) => {
                    rampart_telemetry::record_error(span, format!("unavailable: {}", u.reason));
                    "unavailable"
                }
                None => "empty",
            };
            span.record("rampart.outcome", outcome);
        }
        Ok(Err(status)) => {
            span.record("rpc.grpc.status_code", status.code() as i32);
            span.record("rampart.outcome", "error");
            rampart_telemetry::record_error(span, status.message().to_string());
        }
        Err(_) => {
            span.record("rampart.outcome", "timeout");
            rampart_telemetry::record_error(span, "deadline exceeded");
        }
    }
}

/// Codes that mean "this node could not take the request", where trying
/// another node is safe (the request id makes a repeated write a no-op).
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
    )
}

/// Whether `status` is a failure of the HTTP/2 connection at this end
/// (tonic turns an h2 or hyper error into a status that keeps the error as
/// its source, code `Internal` for an h2 `PROTOCOL_ERROR`), not a status
/// the node sent: a status decoded from the node's trailers has no source.
fn transport_failure(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    status.code() == Code::Internal && status.source().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_h2_failures_are_transport_failures_and_node_statuses_are_not() {
        // What tonic makes of an HTTP/2 connection that failed under a call.
        let local =
            tonic::Status::from_error(Box::new(h2::Error::from(h2::Reason::PROTOCOL_ERROR)));
        assert_eq!(local.code(), Code::Internal, "{local:?}");
        assert!(
            local.message().starts_with("h2 protocol error"),
            "{local:?}"
        );
        assert!(transport_failure(&local));
        // A status the node sent (decoded from its trailers) has no source,
        // whatever its text: it is the node's answer, and is not retried.
        assert!(!transport_failure(&tonic::Status::internal(
            "storage error"
        )));
        assert!(!transport_failure(&tonic::Status::internal(
            "h2 protocol error: from the node"
        )));
    }

    #[tokio::test]
    async fn unreachable_nodes_end_in_cluster_down_after_the_deadline() {
        let upstream = Upstream::new(
            vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            Duration::from_millis(300),
        );
        let started = std::time::Instant::now();
        let err = upstream
            .call(
                vec![vec![b"GET".to_vec(), b"k".to_vec()]],
                "test:1".into(),
                1,
                CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ProxyError::ClusterDown(_)), "{err:?}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
            "{elapsed:?}"
        );
    }

    #[test]
    fn next_seed_cycles() {
        let upstream = Upstream::new(vec!["a:1".into(), "b:2".into()], Duration::from_secs(1));
        assert_eq!(upstream.next_seed("a:1"), "b:2");
        assert_eq!(upstream.next_seed("b:2"), "a:1");
        assert_eq!(upstream.next_seed("leader:9"), "a:1");
    }
}
