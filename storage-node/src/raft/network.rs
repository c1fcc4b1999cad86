//! Raft RPCs between nodes over the `RaftTransport` gRPC service.
//!
//! Payloads are openraft's own request and `Result<response, RaftError>`
//! types encoded with [`codec`] (bincode): see there for why not JSON.
//! Transport failures map onto openraft's error kinds so it reacts the right
//! way: a peer that cannot be reached is `Unreachable` (openraft backs off
//! before retrying), a call that ran out of time is `Timeout`, anything else
//! on the wire is `Network`, and an error returned by the peer's Raft is a
//! `RemoteError`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;
use std::io::SeekFrom;

use futures::FutureExt;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RPCTypes, StorageError};
use rampart_proto::cluster_tls::{self, ClusterTls};
use rampart_proto::pb::raft_transport_client::RaftTransportClient;
use rampart_proto::pb::RaftMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::transport::Channel;

use super::types::{codec, NodeId, NodeInfo, Snapshot, TypeConfig, Vote};

/// Largest Raft message accepted or sent (an AppendEntries batch or a
/// snapshot chunk).
pub const MAX_RAFT_MESSAGE: usize = 512 << 20;

/// The follower answers the last chunk of a snapshot only once it has
/// installed the whole snapshot; that message gets `install_snapshot_timeout`
/// plus this much time per byte of snapshot (a slow disk's install rate), so
/// a multi-GiB install is not cut short and sent again from the start.
const INSTALL_BYTES_PER_SEC: u64 = 8 << 20;
/// Retries of one chunk after a timeout or network error before the
/// transfer is given up (openraft starts a new one later).
const CHUNK_RETRIES: u32 = 3;
/// Chunk size if openraft gives none (it always does).
const DEFAULT_CHUNK: usize = 3 << 20;

/// Bandwidth assumed between nodes at least (1 Gbit/s links, with room),
/// for the AppendEntries deadline.
const MIN_BANDWIDTH_BYTES_PER_SEC: u64 = 100 << 20;

/// The deadline of an AppendEntries call carrying `bytes`: openraft's
/// (`base`, the heartbeat interval) plus the time the payload needs at
/// [`MIN_BANDWIDTH_BYTES_PER_SEC`], so a call with large entries is not
/// cut off (and retried, forever) after a heartbeat's time.
///
/// openraft 0.9 also wraps the whole call in a timeout of one heartbeat
/// interval, which this cannot lengthen; that is why what one call carries
/// is bounded ([`super::log_store::MAX_APPEND_BYTES`], and the leader
/// refuses larger entries): at that bound the payload term stays a
/// fraction of the heartbeat.
pub fn append_entries_deadline(base: Duration, bytes: usize) -> Duration {
    let payload_ms = (bytes as u64).saturating_mul(1000) / MIN_BANDWIDTH_BYTES_PER_SEC;
    base.saturating_add(Duration::from_millis(payload_ms))
}

/// How long to wait for a TCP connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Creates [`PeerClient`]s that share one HTTP/2 connection per peer.
///
/// openraft asks for a new client not only per replication stream but for
/// every linearizable-read confirmation round and every election. A client
/// owning its connection would open a TCP connection and an HTTP/2 session
/// per read round (measured: hundreds of connects per second on the leader
/// under 1,000 ops/s, several percent of its CPU); the shared channels
/// multiplex every call to a peer over one connection instead.
#[derive(Clone, Default)]
pub struct NetworkFactory {
    channels: Channels,
}

impl NetworkFactory {
    /// Peers are dialled with mutual TLS when `tls` is set (this node's
    /// certificate carries the node role the peers' RaftTransport demands).
    pub fn new(tls: Option<ClusterTls>) -> NetworkFactory {
        NetworkFactory {
            channels: Channels {
                map: Default::default(),
                tls: tls.map(Arc::new),
            },
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            id: target,
            target,
            addr: node.raft_addr.clone(),
            channels: self.channels.clone(),
            client: None,
        }
    }
}

/// One channel per peer address, made lazily. A failed call evicts the
/// channel it used (and only that one), so the next call reconnects from
/// scratch, e.g. to a peer that restarted on the same address.
#[derive(Clone, Default)]
struct Channels {
    map: Arc<Mutex<HashMap<String, (u64, Channel)>>>,
    tls: Option<Arc<ClusterTls>>,
}

impl Channels {
    fn get(&self, addr: &str) -> Result<(u64, Channel), Unreachable> {
        static GENERATION: AtomicU64 = AtomicU64::new(1);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = map.get(addr) {
            return Ok(found.clone());
        }
        let endpoint = cluster_tls::endpoint(self.tls.as_deref(), addr)
            .map_err(|e| Unreachable::new(&AnyError::error(e)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let made = (
            GENERATION.fetch_add(1, Ordering::Relaxed),
            endpoint.connect_lazy(),
        );
        map.insert(addr.to_string(), made.clone());
        Ok(made)
    }

    fn evict(&self, addr: &str, generation: u64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(addr).is_some_and(|(g, _)| *g == generation) {
            map.remove(addr);
        }
    }
}

/// The calls of one openraft client to one peer, over the shared channel.
pub struct PeerClient {
    /// Kept for `Timeout` errors, which name both ends.
    id: NodeId,
    target: NodeId,
    addr: String,
    channels: Channels,
    /// The channel's generation and a client on it.
    client: Option<(u64, RaftTransportClient<Channel>)>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, E>>;

impl PeerClient {
    fn client(&mut self) -> Result<RaftTransportClient<Channel>, Unreachable> {
        if let Some((_, c)) = &self.client {
            return Ok(c.clone());
        }
        let (generation, channel) = self.channels.get(&self.addr)?;
        let client = RaftTransportClient::new(channel)
            .max_decoding_message_size(MAX_RAFT_MESSAGE)
            .max_encoding_message_size(MAX_RAFT_MESSAGE);
        self.client = Some((generation, client.clone()));
        Ok(client)
    }

    async fn call<Req, Resp, E>(
        &mut self,
        action: RPCTypes,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let ttl = match action {
            RPCTypes::AppendEntries => append_entries_deadline(option.hard_ttl(), data.len()),
            _ => option.hard_ttl(),
        };
        let msg = RaftMessage { data };
        let fut = async {
            match action {
                RPCTypes::AppendEntries => client.append_entries(msg).await,
                RPCTypes::Vote => client.vote(msg).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(msg).await,
            }
        };
        let resp = match tokio::time::timeout(ttl, fut).await {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => {
                // Drop the channel: the next call reconnects from scratch.
                if let Some((generation, _)) = self.client.take() {
                    self.channels.evict(&self.addr, generation);
                }
                return Err(status_to_rpc_error(&status));
            }
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout: ttl,
                }))
            }
        };
        let result: Result<Resp, E> =
            codec::decode(&resp.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Connection-level failures (peer down, refused, reset) are `Unreachable`
/// so openraft backs off; everything else is a generic network error.
fn status_to_rpc_error<E: std::error::Error>(
    status: &tonic::Status,
) -> RPCError<NodeId, NodeInfo, E> {
    let err = AnyError::error(format!("{:?}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::from(err))
        }
        _ => RPCError::Network(NetworkError::from(err)),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    /// openraft's chunked transfer (`Chunked::send_snapshot`), reading
    /// chunks from the snapshot file, with one difference: the last
    /// chunk's deadline grows with the snapshot's size (see
    /// [`INSTALL_BYTES_PER_SEC`]).
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        mut snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let signature = snapshot.meta.signature();
        let read_err = |e: std::io::Error| {
            StorageError::from_io_error(
                ErrorSubject::Snapshot(Some(signature.clone())),
                ErrorVerb::Read,
                e,
            )
        };
        let chunk = option.snapshot_chunk_size().unwrap_or(DEFAULT_CHUNK).max(1);
        let end = snapshot
            .snapshot
            .seek(SeekFrom::End(0))
            .await
            .map_err(read_err)?;
        let last_ttl = option.hard_ttl() + Duration::from_secs(end / INSTALL_BYTES_PER_SEC);
        let mut cancel = std::pin::pin!(cancel);
        let mut offset = 0u64;
        let mut failures = 0u32;
        loop {
            if let Some(closed) = cancel.as_mut().now_or_never() {
                return Err(closed.into());
            }
            snapshot
                .snapshot
                .seek(SeekFrom::Start(offset))
                .await
                .map_err(read_err)?;
            let mut data = Vec::with_capacity(chunk);
            while data.len() < chunk {
                let n = (&mut snapshot.snapshot)
                    .take((chunk - data.len()) as u64)
                    .read_to_end(&mut data)
                    .await
                    .map_err(read_err)?;
                if n == 0 {
                    break;
                }
            }
            let sent = data.len() as u64;
            let done = offset + sent >= end;
            let req = InstallSnapshotRequest::<TypeConfig> {
                vote,
                meta: snapshot.meta.clone(),
                offset,
                data,
                done,
            };
            let ttl = if done { last_ttl } else { option.hard_ttl() };
            let result: RpcResult<
                InstallSnapshotResponse<NodeId>,
                RaftError<NodeId, InstallSnapshotError>,
            > = self
                .call(RPCTypes::InstallSnapshot, &req, &RPCOption::new(ttl))
                .await;
            match result {
                Ok(resp) => {
                    failures = 0;
                    if resp.vote > vote || done {
                        // A higher vote: openraft sees it and steps down.
                        return Ok(SnapshotResponse::new(resp.vote));
                    }
                    offset += sent;
                }
                Err(RPCError::RemoteError(RemoteError {
                    source: RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m)),
                    ..
                })) => {
                    // The follower started over (e.g. it restarted): so do we.
                    tracing::warn!(mismatch = %m, "snapshot mismatch; resending from the start");
                    offset = 0;
                }
                Err(RPCError::RemoteError(RemoteError {
                    target,
                    target_node,
                    source: RaftError::Fatal(fatal),
                })) => {
                    return Err(RemoteError {
                        target,
                        target_node,
                        source: fatal,
                    }
                    .into())
                }
                Err(RPCError::Unreachable(e)) => return Err(e.into()),
                Err(e @ (RPCError::Timeout(_) | RPCError::Network(_)))
                    if failures < CHUNK_RETRIES =>
                {
                    failures += 1;
                    tracing::warn!(error = %e, offset, "snapshot chunk failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                }
                Err(RPCError::Timeout(e)) => return Err(e.into()),
                Err(e) => return Err(NetworkError::new(&e).into()),
            }
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str) -> NodeInfo {
        NodeInfo {
            raft_addr: addr.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn the_append_entries_deadline_grows_with_the_payload() {
        let base = Duration::from_millis(250);
        assert_eq!(append_entries_deadline(base, 0), base);
        assert_eq!(append_entries_deadline(base, 1024), base);
        // 100 MiB at 100 MiB/s: one more second.
        assert_eq!(
            append_entries_deadline(base, 100 << 20),
            base + Duration::from_secs(1)
        );
        let small = append_entries_deadline(base, 1 << 20);
        let large = append_entries_deadline(base, 64 << 20);
        assert!(base < small && small < large);
        // Saturates instead of overflowing.
        append_entries_deadline(base, usize::MAX);
        // A full call's payload needs well under a heartbeat.
        let full =
            append_entries_deadline(Duration::ZERO, super::super::log_store::MAX_APPEND_BYTES);
        assert!(
            full <= Duration::from_millis(crate::config::HEARTBEAT_INTERVAL_MS),
            "{full:?}"
        );
    }

    #[tokio::test]
    async fn clients_to_one_peer_share_a_channel_until_it_fails() {
        let mut factory = NetworkFactory::default();
        let mut a = factory.new_client(2, &node("127.0.0.1:1")).await;
        let mut b = factory.new_client(2, &node("127.0.0.1:1")).await;
        let mut other = factory.new_client(3, &node("127.0.0.1:2")).await;
        a.client().expect("client");
        b.client().expect("client");
        other.client().expect("client");
        let generation = |c: &PeerClient| c.client.as_ref().map(|(g, _)| *g);
        assert_eq!(generation(&a), generation(&b), "one connection per peer");
        assert_ne!(generation(&a), generation(&other));

        // A stale client's failure must not throw away a newer channel.
        factory
            .channels
            .evict("127.0.0.1:1", generation(&a).unwrap());
        let mut c = factory.new_client(2, &node("127.0.0.1:1")).await;
        c.client().expect("client");
        assert_ne!(generation(&c), generation(&a), "evicted: reconnects");
        factory
            .channels
            .evict("127.0.0.1:1", generation(&b).unwrap());
        let mut d = factory.new_client(2, &node("127.0.0.1:1")).await;
        d.client().expect("client");
        assert_eq!(generation(&d), generation(&c));
    }
}
