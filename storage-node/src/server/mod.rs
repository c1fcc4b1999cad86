//! The node's gRPC services: Kv (clients), RaftTransport (peers), Admin and
//! PubSub. They adapt requests to the node: commands run in `exec` (and
//! `scripting`), never here, so a service stays a decode-call-encode step.
//! The legacy-stream drainer lives beside them as the node's other client
//! of `exec`.

pub mod admin;
pub mod grpc_metrics;
pub mod kv;
pub mod peer_auth;
pub mod pubsub;
pub mod stream_drainer;
pub mod transport;
