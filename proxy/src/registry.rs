//! Every live client connection of this proxy, for `CLIENT LIST`/`KILL`,
//! `INFO clients` and shutdown. A connection is registered for exactly as long
//! as its [`Registration`] guard lives, however the connection ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::upstream::OnWaiting;

/// Mutable, displayable state of one client.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub name: Vec<u8>,
    pub lib_name: Vec<u8>,
    pub lib_ver: Vec<u8>,
    pub resp: i64,
    /// Last command as `CLIENT LIST` shows it (`get`, `client|list`).
    pub last_cmd: String,
    pub last_active: Instant,
    /// Pub/sub subscriptions: channels, patterns, shard channels.
    pub sub: usize,
    pub psub: usize,
    pub ssub: usize,
    /// The ACL user the connection is authenticated as (`user=`).
    pub user: String,
}

/// One registered connection.
#[derive(Debug)]
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i64,
    pub created: Instant,
    /// Cancelled by `CLIENT KILL`; the connection closes after its current batch.
    pub kill: CancellationToken,
    info: Mutex<ClientInfo>,
}

impl ClientHandle {
    /// The client's mutable state. A poisoned lock still holds usable data.
    pub fn info(&self) -> MutexGuard<'_, ClientInfo> {
        self.info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the client has a subscription (Redis's `CLIENT_PUBSUB`
    /// flag: `flags=P`, `CLIENT LIST TYPE pubsub`).
    pub fn is_pubsub(&self) -> bool {
        let info = self.info();
        info.sub + info.psub + info.ssub > 0
    }

    /// One `CLIENT LIST` line, formatted like Redis 7.2 (no trailing newline).
    pub fn list_line(&self, now: Instant) -> String {
        let info = self.info();
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} multi=-1 \
             qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r \
             cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&info.name),
            now.saturating_duration_since(self.created).as_secs(),
            now.saturating_duration_since(info.last_active).as_secs(),
            if info.sub + info.psub + info.ssub > 0 { "P" } else { "N" },
            info.sub,
            info.psub,
            info.ssub,
            if info.last_cmd.is_empty() { "NULL" } else { &info.last_cmd },
            info.user,
            info.resp,
            String::from_utf8_lossy(&info.lib_name),
            String::from_utf8_lossy(&info.lib_ver),
        )
    }
}

/// The shared table of clients.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    /// Clients waiting in a blocking command (`INFO clients`).
    blocked: AtomicU64,
}

impl ClientRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a new connection; it stays listed until the guard drops.
    pub fn register(
        self: &Arc<Self>,
        addr: SocketAddr,
        laddr: SocketAddr,
        fd: i64,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let handle = Arc::new(ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created: now,
            kill: CancellationToken::new(),
            info: Mutex::new(ClientInfo {
                name: Vec::new(),
                lib_name: Vec::new(),
                lib_ver: Vec::new(),
                resp: 2,
                last_cmd: String::new(),
                last_active: now,
                sub: 0,
                psub: 0,
                ssub: 0,
                user: "default".into(),
            }),
        });
        self.table().insert(id, handle.clone());
        Registration {
            registry: self.clone(),
            handle,
        }
    }

    /// Clients waiting in a blocking command right now.
    pub fn blocked(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client with connection id `id`, while it is connected.
    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.table().get(&id).cloned()
    }

    /// All clients, ordered by id.
    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.table().values().cloned().collect()
    }
}

/// RAII registration of one connection.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<ClientRegistry>,
    handle: Arc<ClientHandle>,
}

impl Registration {
    pub fn handle(&self) -> &Arc<ClientHandle> {
        &self.handle
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.table().remove(&self.handle.id);
    }
}

/// One blocking command's place in `blocked_clients`: counted from the
/// first time the node reports it waits until the mark drops.
pub struct BlockedMark {
    registry: Arc<ClientRegistry>,
    counted: Arc<AtomicBool>,
}

impl BlockedMark {
    pub fn new(registry: &Arc<ClientRegistry>) -> Self {
        BlockedMark {
            registry: registry.clone(),
            counted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The hook the upstream calls on each `waiting` event (once per node
    /// the command was sent to); only the first counts.
    pub fn on_waiting(&self) -> OnWaiting {
        let registry = self.registry.clone();
        let counted = self.counted.clone();
        OnWaiting::new(move || {
            if !counted.swap(true, Ordering::Relaxed) {
                registry.blocked.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
}

impl Drop for BlockedMark {
    fn drop(&mut self) {
        if self.counted.swap(false, Ordering::Relaxed) {
            self.registry.blocked.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_mark_counts_once_from_its_first_waiting_event_until_dropped() {
        let registry = Arc::new(ClientRegistry::new());
        let mark = BlockedMark::new(&registry);
        let hook = mark.on_waiting();
        assert_eq!(registry.blocked(), 0, "sent, not yet waiting");
        hook.call();
        assert_eq!(registry.blocked(), 1);
        // A retry on a new leader waits again: still one client.
        hook.call();
        assert_eq!(registry.blocked(), 1);
        drop(mark);
        assert_eq!(registry.blocked(), 0);
        // Answered at once (never waited): never counted.
        drop(BlockedMark::new(&registry));
        assert_eq!(registry.blocked(), 0);
    }

    #[test]
    fn registration_is_released_on_drop() {
        let registry = Arc::new(ClientRegistry::new());
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = registry.register(addr, addr, 7);
        let b = registry.register(addr, addr, 8);
        assert_eq!(registry.len(), 2);
        assert!(b.handle().id > a.handle().id);
        drop(a);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.all()[0].id, b.handle().id);
    }

    #[test]
    fn list_line_has_redis_fields() {
        let registry = Arc::new(ClientRegistry::new());
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let reg = registry.register(addr, "127.0.0.1:6379".parse().unwrap(), 9);
        reg.handle().info().name = b"worker".to_vec();
        let line = reg.handle().list_line(Instant::now());
        assert!(line.starts_with(&format!("id={} addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=9 name=worker age=0 idle=0 flags=N db=0", reg.handle().id)), "{line}");
        assert!(
            line.ends_with("user=default redir=-1 resp=2 lib-name= lib-ver="),
            "{line}"
        );
    }
}
