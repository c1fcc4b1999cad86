//! Server side of the Raft transport: decode the peer's openraft request,
//! hand it to the local Raft, encode `Result<response, RaftError>` back.

// `tonic::Status` is what the service methods return.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use rampart_proto::pb::raft_transport_server::RaftTransport;
use rampart_proto::pb::RaftMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::raft::types::codec;
use crate::NodeCtx;

pub struct TransportService {
    ctx: Arc<NodeCtx>,
}

impl TransportService {
    pub fn new(ctx: Arc<NodeCtx>) -> TransportService {
        TransportService { ctx }
    }
}

fn decode<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, Status> {
    codec::decode(&msg.data).map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    codec::encode(value)
        .map(|data| Response::new(RaftMessage { data }))
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = decode(request.get_ref())?;
        encode(&self.ctx.raft.append_entries(req).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let req = decode(request.get_ref())?;
        encode(&self.ctx.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = decode(request.get_ref())?;
        encode(&self.ctx.raft.install_snapshot(req).await)
    }
}
