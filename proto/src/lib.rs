//! The contract shared by Rampart's proxy and storage nodes.
//!
//! - [`pb`]: the generated gRPC services and messages (`proto/rampart.proto`).
//! - [`reply`]: constructors and helpers for [`pb::Reply`], the one reply type
//!   used from the node's command code to the proxy's RESP encoder.
//! - [`command_table`]: every supported command as one [`command_spec::CommandSpec`]
//!   (arity, flags, class, how it runs and blocks, [`key_spec`] key specs);
//!   the proxy, the policies and the node all read it.
//! - [`args`] and [`errors`]: argument parsing with Redis 7.2's exact error
//!   texts, kept in one place; [`parse`]: each command family's options.
//! - [`acl`]: Redis 7.2 ACL users, rules and permission checks (pure).
//! - [`glob`]: Redis's glob matching (KEYS, SCAN MATCH, COMMAND LIST FILTERBY).
//! - [`redis_config`]: the `CONFIG` parameters (names, defaults, syntax, scope).

pub mod acl;
pub mod args;
pub mod cert_roles;
pub mod cluster_tls;
pub mod command_docs;
mod command_docs_table;
pub mod command_spec;
pub mod command_table;
pub mod errors;
pub mod glob;
pub mod key_spec;
pub mod limits;
pub mod parse;
pub mod rdb;
pub mod redis_config;
pub mod reply;
pub mod settings;

/// Generated protobuf and gRPC code.
#[allow(clippy::all)]
pub mod pb {
    tonic::include_proto!("rampart.v1");
}

pub use pb::Reply;

/// One command as it arrived: its name first, then its arguments, as raw bytes.
pub type Argv = Vec<Vec<u8>>;
