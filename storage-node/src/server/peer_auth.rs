//! Who may call which gRPC service of a node, by the roles in the peer's
//! client certificate (docs/security.md).
//!
//! The TLS handshake already refused any peer without a certificate chained
//! to the cluster CA; this tower layer reads the roles of the one it
//! accepted ([`rampart_proto::cert_roles`]) and answers `PERMISSION_DENIED`
//! to a call whose service the roles do not cover. It also leaves the
//! [`Peer`] in the request's extensions for the services that check more
//! finely (Kv: internal commands). With `--insecure` there is no
//! certificate: every call passes, the operator chose to trust the network.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use rampart_proto::cert_roles::{self, Role};
use tonic::body::BoxBody;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

/// The caller of one request, as the layer found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A plaintext link (`--insecure`): nothing is known, all is allowed.
    Plaintext,
    /// A verified certificate and the roles it carries.
    Verified(Vec<Role>),
}

impl Peer {
    pub fn has(&self, role: Role) -> bool {
        match self {
            Peer::Plaintext => true,
            Peer::Verified(roles) => roles.contains(&role),
        }
    }

    /// Internal commands (`rampart.*`) come only from a proxy or a node.
    pub fn may_send_internal(&self) -> bool {
        self.has(Role::Proxy) || self.has(Role::Node)
    }

    fn describe(&self) -> String {
        match self {
            Peer::Plaintext => "a plaintext peer".into(),
            Peer::Verified(roles) if roles.is_empty() => "a certificate with no role".into(),
            Peer::Verified(roles) => format!(
                "a certificate with role {}",
                roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
            ),
        }
    }
}

/// The roles that may call a gRPC service (by its full name).
pub fn allowed_roles(service: &str) -> &'static [Role] {
    match service {
        "rampart.v1.Kv" => &[Role::Proxy, Role::Node, Role::Admin],
        "rampart.v1.PubSub" => &[Role::Proxy, Role::Node],
        "rampart.v1.RaftTransport" => &[Role::Node],
        "rampart.v1.Admin" => &[Role::Admin],
        _ => &[],
    }
}

/// The `PERMISSION_DENIED` message for a command only a proxy or node may
/// send, or `None` when `peer` may send it.
pub fn check_internal_command(peer: Option<&Peer>, name: &[u8]) -> Option<String> {
    let internal = name.len() > 8 && name[..8].eq_ignore_ascii_case(b"rampart.");
    // No Peer: the service runs without the layer (in-process use).
    let peer = peer?;
    if !internal || peer.may_send_internal() {
        return None;
    }
    Some(format!(
        "{} is an internal command: only a proxy or node certificate may send it, not {}",
        String::from_utf8_lossy(name),
        peer.describe()
    ))
}

/// Adds the role check to a server; `tls` is whether its listener runs
/// mutual TLS.
#[derive(Debug, Clone, Copy)]
pub struct PeerAuthLayer {
    pub tls: bool,
}

impl<S> Layer<S> for PeerAuthLayer {
    type Service = PeerAuth<S>;

    fn layer(&self, inner: S) -> PeerAuth<S> {
        PeerAuth {
            inner,
            tls: self.tls,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PeerAuth<S> {
    inner: S,
    tls: bool,
}

impl<S> PeerAuth<S> {
    fn peer<B>(&self, req: &http::Request<B>) -> Peer {
        if !self.tls {
            return Peer::Plaintext;
        }
        let roles = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .and_then(|certs| certs.first().map(|leaf| cert_roles::roles(leaf)))
            .unwrap_or_default();
        Peer::Verified(roles)
    }
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for PeerAuth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<BoxBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let peer = self.peer(&req);
        let service = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        let allowed = allowed_roles(service);
        if !allowed.iter().any(|&role| peer.has(role)) {
            let names: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
            let message = if names.is_empty() {
                format!("{service} is not served to cluster peers")
            } else {
                format!(
                    "{service} needs a certificate with role {}; the caller has {}",
                    names.join(" or "),
                    peer.describe()
                )
            };
            tracing::warn!(service, "refused a gRPC call: {message}");
            let denied = tonic::Status::permission_denied(message).into_http();
            return Box::pin(async move { Ok(denied) });
        }
        req.extensions_mut().insert(peer);
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_per_service() {
        let proxy = Peer::Verified(vec![Role::Proxy]);
        let admin = Peer::Verified(vec![Role::Admin]);
        let node = Peer::Verified(vec![Role::Node]);
        let may = |peer: &Peer, service: &str| allowed_roles(service).iter().any(|&r| peer.has(r));
        assert!(may(&proxy, "rampart.v1.Kv") && may(&proxy, "rampart.v1.PubSub"));
        assert!(!may(&proxy, "rampart.v1.Admin") && !may(&proxy, "rampart.v1.RaftTransport"));
        assert!(may(&admin, "rampart.v1.Admin") && !may(&admin, "rampart.v1.RaftTransport"));
        assert!(may(&node, "rampart.v1.RaftTransport") && !may(&node, "rampart.v1.Admin"));
        assert!(!may(&Peer::Verified(vec![]), "rampart.v1.Kv"));
        assert!(!may(&admin, "grpc.health.v1.Health"));
        assert!(may(&Peer::Plaintext, "rampart.v1.Admin"));
    }

    #[test]
    fn internal_commands_need_a_proxy_or_node() {
        let admin = Peer::Verified(vec![Role::Admin]);
        let proxy = Peer::Verified(vec![Role::Proxy]);
        let refused = check_internal_command(Some(&admin), b"RAMPART.script.store");
        assert!(refused.is_some_and(|m| m.contains("internal command")));
        assert_eq!(check_internal_command(Some(&admin), b"get"), None);
        assert_eq!(
            check_internal_command(Some(&proxy), b"rampart.stream.migrate"),
            None
        );
        assert_eq!(
            check_internal_command(Some(&Peer::Plaintext), b"rampart.x"),
            None
        );
        assert_eq!(check_internal_command(None, b"rampart.x"), None);
    }
}
