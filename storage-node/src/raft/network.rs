//! Raft RPCs between nodes over the `RaftTransport` gRPC service.
//!
//! Payloads are openraft's own request and `Result<response, RaftError>`
//! types encoded with [`codec`] (bincode): see there for why not JSON.
//! Transport failures map onto openraft's error kinds so it reacts the right
//! way: a peer that cannot be reached is `Unreachable` (openraft backs off
//! before retrying), a call that ran out of time is `Timeout`, anything else
//! on the wire is `Network`, and an error returned by the peer's Raft is a
//! `RemoteError`.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RPCTypes};
use rampart_proto::pb::raft_transport_client::RaftTransportClient;
use rampart_proto::pb::RaftMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::types::{codec, NodeId, NodeInfo, TypeConfig};

/// Largest Raft message accepted or sent (an AppendEntries batch or a
/// snapshot chunk).
pub const MAX_RAFT_MESSAGE: usize = 512 << 20;

/// How long to wait for a TCP connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Creates one [`PeerClient`] per replication stream.
#[derive(Clone, Default)]
pub struct NetworkFactory {}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            id: target,
            target,
            addr: node.raft_addr.clone(),
            client: None,
        }
    }
}

/// A connection to one peer, made lazily on first use and remade after a
/// failed call (so a restarted peer is picked up).
pub struct PeerClient {
    /// Kept for `Timeout` errors, which name both ends.
    id: NodeId,
    target: NodeId,
    addr: String,
    client: Option<RaftTransportClient<Channel>>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, E>>;

impl PeerClient {
    fn client(&mut self) -> Result<RaftTransportClient<Channel>, Unreachable> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| Unreachable::new(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let client = RaftTransportClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_RAFT_MESSAGE)
            .max_encoding_message_size(MAX_RAFT_MESSAGE);
        self.client = Some(client.clone());
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
        let msg = RaftMessage { data };
        let ttl = option.hard_ttl();
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
                self.client = None;
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

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }
}
