//! Commands the proxy answers itself, one file per family. Every handler gets
//! the connection's [`Session`] and the process-wide [`Shared`] state and
//! returns the reply; arity and authentication were checked by the caller.

pub mod acl;
pub mod client;
pub mod command;
pub mod config;
pub mod connection;
pub mod info;
pub mod pubsub;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rampart_policies::connections::ConnectionGuard;
use rampart_policies::logins::{max_connections_text, LoginRefused, UserGuard};
use rampart_policies::{Decision, Identity, Policies, MAX_CONNECTIONS_REPLY};
use rampart_proto::command_table::CommandSpec;
use rampart_proto::{errors, reply, Reply};

use crate::config::Config;
use crate::pubsub::{ClientPubSub, PubSub};
use crate::registry::{ClientHandle, ClientRegistry, Registration};
use crate::resp::Protocol;
use crate::upstream::Upstream;

/// Process-wide state the local commands read.
pub struct Shared {
    pub config: Config,
    pub registry: Arc<ClientRegistry>,
    pub upstream: Arc<Upstream>,
    /// Random per process; prefixes every client_id sent to the nodes.
    pub proxy_id: String,
    /// 40 hex characters, as Redis's run_id.
    pub run_id: String,
    pub started: Instant,
    pub local_addr: SocketAddr,
    /// Pub/sub hub: local subscribers and the links to the nodes.
    pub pubsub: Arc<PubSub>,
    /// ACL users (the cluster's, followed) and the ACL log.
    pub acl: Arc<crate::acl::AclStore>,
    /// Layers 1 and 3: per-user limits are applied at login.
    pub policies: Arc<Policies>,
    /// CONFIG parameters: this proxy's, and the cluster's as last read.
    pub redis_config: Arc<crate::redis_config::ConfigStore>,
}

/// What a connection is counted against in Layer 3: its IP from accept
/// until it logs in as a user with a connection cap, then that user.
#[derive(Debug, Default)]
pub enum ConnectionSlot {
    /// Not counted (tests; a RESET that found the IP full).
    #[default]
    None,
    Ip(ConnectionGuard),
    User(UserGuard),
}

/// A login refused by Layer 3; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Reply this error, then close.
    Refused(String),
    /// Close without a reply (past the reject rate).
    Silent,
}

/// Per-connection protocol state.
pub struct Session {
    pub protocol: Protocol,
    pub authenticated: bool,
    /// The ACL user (the default user until AUTH / HELLO AUTH).
    pub user: Arc<rampart_proto::acl::User>,
    /// [`crate::acl::AclStore::generation`] when `user` was looked up.
    user_generation: u64,
    pub handle: Arc<ClientHandle>,
    /// Keeps the client listed for as long as the session lives.
    _registration: Registration,
    /// Set by QUIT (and CLIENT KILL of oneself): close once replies are written.
    pub close_after_reply: bool,
    /// Pub/sub subscriptions and pushed-message queue.
    pub pubsub: ClientPubSub,
    /// Who Layer 1 charges this connection's requests to.
    pub identity: Identity,
    /// Who Layer 3 counts this connection against.
    pub slot: ConnectionSlot,
    /// Close without writing anything (a login past a reject rate).
    pub abort: bool,
}

impl Session {
    pub fn new(registration: Registration, shared: &Shared) -> Self {
        let user = shared.acl.default_user();
        Session {
            protocol: Protocol::Resp2,
            // Redis: a connection starts authenticated when the default
            // user is on and needs no password.
            authenticated: user.enabled && user.nopass,
            user,
            user_generation: shared.acl.generation(),
            handle: registration.handle().clone(),
            pubsub: ClientPubSub::new(shared.pubsub.clone(), registration.handle().clone()),
            identity: Identity::ip(rampart_policies::config::canonical_ip(
                registration.handle().addr.ip(),
            )),
            _registration: registration,
            close_after_reply: false,
            slot: ConnectionSlot::None,
            abort: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.handle.id
    }

    /// The session's user with its current rules; `None` when it was
    /// deleted (the connection is being closed).
    pub fn current_user(&mut self, shared: &Shared) -> Option<Arc<rampart_proto::acl::User>> {
        let generation = shared.acl.generation();
        if generation != self.user_generation {
            match shared.acl.user(&self.user.name) {
                Some(user) => {
                    // Changed limits apply to the next requests.
                    self.set_identity(&user, shared);
                    self.user = user;
                    self.user_generation = generation;
                }
                None => {
                    self.close_after_reply = true;
                    self.handle.kill.cancel();
                    return None;
                }
            }
        }
        Some(self.user.clone())
    }

    /// Whether the session's user may still hear every channel and pattern
    /// it is subscribed to (after an ACL change; Redis closes such a
    /// client). A deleted user may not.
    pub fn subscriptions_allowed(&mut self, shared: &Shared) -> bool {
        use crate::pubsub::Kind;
        use rampart_proto::acl::check::channel_allowed;
        let Some(user) = self.current_user(shared) else {
            return false;
        };
        [Kind::Channel, Kind::Shard, Kind::Pattern]
            .into_iter()
            .all(|kind| {
                let literal = kind == Kind::Pattern;
                self.pubsub
                    .names(kind)
                    .iter()
                    .all(|name| channel_allowed(&user, name, literal))
            })
    }

    /// Authenticates the session as `user` (AUTH, HELLO AUTH), after
    /// Layer 3's per-user cap (docs/policies.md, "Users"). On error
    /// nothing changed and the connection is to be closed.
    pub fn login(
        &mut self,
        user: Arc<rampart_proto::acl::User>,
        shared: &Shared,
    ) -> Result<(), LoginError> {
        if let Err(error) = self.move_slot(&user, &shared.policies) {
            self.close_after_reply = true;
            self.abort = error == LoginError::Silent;
            return Err(error);
        }
        self.switch_user(user, shared);
        Ok(())
    }

    /// RESET's login as the default user: never refused; a connection
    /// the IP has no room for any more is left uncounted.
    pub fn reset_login(&mut self, user: Arc<rampart_proto::acl::User>, shared: &Shared) {
        if self.move_slot(&user, &shared.policies).is_err() {
            self.slot = ConnectionSlot::None;
        }
        self.switch_user(user, shared);
    }

    fn switch_user(&mut self, user: Arc<rampart_proto::acl::User>, shared: &Shared) {
        self.handle.info().user = user.name.clone();
        self.set_identity(&user, shared);
        self.user = user;
        self.user_generation = shared.acl.generation();
        self.authenticated = true;
    }

    fn set_identity(&mut self, user: &rampart_proto::acl::User, shared: &Shared) {
        let limits = shared.policies.user_limits(&user.name, &user.limits);
        self.identity = Identity::user(self.identity.ip, &user.name, limits.shares);
    }

    /// Counts the connection against `user` when it has a connection cap,
    /// else against the IP (taking an IP slot again if it had left it).
    fn move_slot(
        &mut self,
        user: &rampart_proto::acl::User,
        policies: &Policies,
    ) -> Result<(), LoginError> {
        if matches!(self.slot, ConnectionSlot::User(_)) && self.user.name == user.name {
            return Ok(());
        }
        let limits = policies.user_limits(&user.name, &user.limits);
        match policies.login(&user.name, &limits) {
            Ok(Some(guard)) => self.slot = ConnectionSlot::User(guard),
            Ok(None) => {
                if matches!(self.slot, ConnectionSlot::User(_)) {
                    self.slot = match policies.connections.admit(self.identity.ip) {
                        Decision::Admit(guard) => ConnectionSlot::Ip(guard),
                        Decision::Reject => {
                            let text = String::from_utf8_lossy(MAX_CONNECTIONS_REPLY);
                            return Err(LoginError::Refused(
                                text.trim_start_matches('-').trim_end().to_string(),
                            ));
                        }
                        Decision::Reset => return Err(LoginError::Silent),
                    };
                }
            }
            Err(LoginRefused::Reject) => {
                return Err(LoginError::Refused(max_connections_text(&user.name)))
            }
            Err(LoginRefused::Reset) => return Err(LoginError::Silent),
        }
        Ok(())
    }

    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
        self.handle.info().resp = protocol.version();
    }

    /// Bulk text in RESP2, verbatim text in RESP3 (INFO, CLIENT LIST/INFO).
    pub fn text_reply(&self, text: String) -> Reply {
        match self.protocol {
            Protocol::Resp2 => reply::bulk(text),
            Protocol::Resp3 => reply::verbatim("txt", text),
        }
    }
}

/// Runs a proxy-local command. `argv[0]` is the command name.
pub async fn execute(
    spec: &CommandSpec,
    argv: &[Vec<u8>],
    session: &mut Session,
    shared: &Shared,
) -> Reply {
    let args = &argv[1..];
    match spec.name {
        "ping" => connection::ping(args),
        "echo" => connection::echo(args),
        "hello" => connection::hello(argv, session, shared).await,
        "auth" => connection::auth(argv, session, shared).await,
        "acl" => acl::acl(spec, args, session, shared).await,
        "select" => connection::select(args),
        "quit" => connection::quit(session),
        "reset" => connection::reset(session, shared),
        "client" => client::client(args, session, shared),
        "command" => command::command(args),
        "config" => config::config(spec, args, shared).await,
        "info" => info::info(args, session, shared).await,
        "time" => server::time(),
        "publish" => pubsub::publish(args, shared, false).await,
        "spublish" => pubsub::publish(args, shared, true).await,
        "pubsub" => pubsub::pubsub(args, shared).await,
        // The pub/sub route answers these itself (several replies each);
        // they only get here from a context that cannot subscribe.
        "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe"
        | "sunsubscribe" => reply::error(format!(
            "ERR {} isn't allowed for a DENY BLOCKING client",
            spec.name.to_ascii_uppercase()
        )),
        other => reply::error(errors::unknown_command(other.as_bytes(), args)),
    }
}

/// The name `CLIENT LIST` shows for a command (`client|list` for containers).
pub fn display_name(spec: &CommandSpec, argv: &[Vec<u8>]) -> String {
    if matches!(spec.name, "client" | "command" | "config" | "pubsub") {
        if let Some(sub) = argv.get(1) {
            return format!(
                "{}|{}",
                spec.name,
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            );
        }
    }
    spec.name.to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::ProxyArgs;
    use crate::resp::encode::encode_to_vec;
    use rampart_proto::pb::reply::Kind;

    pub fn shared(requirepass: Option<&str>) -> Shared {
        let config = Config::load(ProxyArgs {
            requirepass: requirepass.map(str::to_string),
            nodes: Some(vec!["127.0.0.1:1".into()]),
            retry_deadline_ms: Some(100),
            ..ProxyArgs::default()
        })
        .expect("config");
        let redis_config = Arc::new(crate::redis_config::ConfigStore::new(&config));
        Shared {
            upstream: Arc::new(Upstream::new(config.nodes.clone(), config.retry_deadline)),
            pubsub: Arc::new(
                PubSub::new(&config.nodes, config.pubsub_limits(), config.retry_deadline)
                    .expect("pubsub"),
            ),
            config,
            registry: Arc::new(ClientRegistry::new()),
            proxy_id: "test-proxy".into(),
            run_id: "0".repeat(40),
            started: Instant::now(),
            local_addr: "127.0.0.1:6379".parse().expect("addr"),
            acl: Arc::new(crate::acl::AclStore::new(requirepass)),
            redis_config,
            policies: Arc::new(
                Policies::new(&rampart_policies::PolicyConfig::default()).expect("policies"),
            ),
        }
    }

    pub fn session_and_shared(requirepass: Option<&str>) -> (Session, Shared) {
        let shared = shared(requirepass);
        let addr = "127.0.0.1:50000".parse().expect("addr");
        let registration = shared.registry.register(addr, shared.local_addr, 3);
        (Session::new(registration, &shared), shared)
    }

    /// A compact view of a reply: "+OK", "-ERR ...", ":1", "$bulk", "_",
    /// "*[a, b]", "%{k: v}", "~[a]", "=text".
    pub fn text(reply: &Reply) -> String {
        let list = |items: &[Reply]| items.iter().map(text).collect::<Vec<_>>().join(", ");
        match &reply.kind {
            Some(Kind::Status(s)) => format!("+{s}"),
            Some(Kind::Error(e)) => format!("-{e}"),
            Some(Kind::Integer(i)) => format!(":{i}"),
            Some(Kind::Bulk(b)) => format!("${}", String::from_utf8_lossy(b)),
            Some(Kind::Null(_)) | Some(Kind::NullArray(_)) | None => "_".into(),
            Some(Kind::Array(l)) => format!("*[{}]", list(&l.items)),
            Some(Kind::Map(l) | Kind::Keyed(l)) => format!("%{{{}}}", list(&l.items)),
            Some(Kind::Set(l)) => format!("~[{}]", list(&l.items)),
            Some(Kind::Pairs(l)) => format!("*[{}]", list(&l.items)),
            Some(Kind::Double(d) | Kind::HumanDouble(d)) => format!(",{d}"),
            Some(Kind::Boolean(b)) => format!("#{b}"),
            Some(Kind::Verbatim(v)) => format!("={}", String::from_utf8_lossy(&v.text)),
            Some(Kind::Resp(r)) => format!("resp:{}", String::from_utf8_lossy(r)),
        }
    }

    #[test]
    fn text_replies_follow_the_protocol() {
        let (mut session, _shared) = session_and_shared(None);
        let bulk = session.text_reply("a".into());
        assert_eq!(encode_to_vec(&bulk, Protocol::Resp2), b"$1\r\na\r\n");
        session.set_protocol(Protocol::Resp3);
        let verbatim = session.text_reply("a".into());
        assert_eq!(
            encode_to_vec(&verbatim, Protocol::Resp3),
            b"=5\r\ntxt:a\r\n"
        );
    }
}
