//! The proxy's view of the cluster's ACL users, and its ACL log.
//!
//! Users are cluster state (docs/security.md, "ACL"): the storage nodes
//! keep them in the replicated state machine and every change bumps a
//! version. This module keeps a copy and follows it: [`AclStore::refresh`]
//! asks the leader for `rampart.acl.get <version>` (nil when nothing
//! changed), and [`poll`] does so every [`POLL_INTERVAL`], so a change
//! made through any proxy applies here within a second. A proxy that made
//! the change refreshes before it answers, so its own client sees it at
//! once.
//!
//! Until the cluster stores a `default` user (the first `ACL SETUSER
//! default`), the default user is this proxy's own: `on nopass ~* &*
//! +@all +@admin`, or with `--requirepass` that password instead of
//! `nopass` (Redis's `requirepass` is the default user's password too).
//!
//! Sessions keep the `Arc<User>` they authenticated as and look it up again
//! when [`AclStore::generation`] moves, so a modified user's rules apply to
//! its open connections at their next command. A deleted user's
//! connections are closed (Redis's `ACL DELUSER`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_proto::acl::{internal, User, Users};
use rampart_proto::pb::reply::Kind;
use tokio_util::sync::CancellationToken;

use crate::registry::ClientRegistry;
use crate::upstream::{CallOptions, Upstream};

/// How often a proxy asks the cluster whether users changed.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Redis's `acllog-max-len` default.
pub const LOG_MAX_LEN: usize = 128;
/// Redis groups equal denials this close together into one entry.
const LOG_GROUPING_MS: u64 = 60_000;

/// The users as last read from the cluster.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub users: BTreeMap<String, Arc<User>>,
    /// The cluster's version; `None` until the first successful read.
    pub version: Option<u64>,
    /// Whether the cluster stores a `default` user (else this proxy's).
    pub cluster_default: bool,
}

pub struct AclStore {
    snapshot: RwLock<Arc<Snapshot>>,
    /// This proxy's default user, used while the cluster stores none.
    local_default: Arc<User>,
    /// Bumped on every reload that changed something.
    generation: AtomicU64,
    /// Serializes refreshes (one read in flight).
    refreshing: tokio::sync::Mutex<()>,
    /// Wakes subscribed connections after a change, so one whose channels
    /// are no longer granted is closed (Redis does the same).
    changes: tokio::sync::watch::Sender<u64>,
    seq: AtomicU64,
    pub log: Mutex<AclLog>,
}

impl AclStore {
    pub fn new(requirepass: Option<&str>) -> AclStore {
        let local_default = Arc::new(User::default_user(requirepass.map(str::as_bytes)));
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), local_default.clone());
        AclStore {
            snapshot: RwLock::new(Arc::new(Snapshot {
                users,
                version: None,
                cluster_default: false,
            })),
            local_default,
            generation: AtomicU64::new(1),
            refreshing: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(1),
            seq: AtomicU64::new(0),
            log: Mutex::new(AclLog::default()),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Notified after every change of the users.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.snapshot().users.get(name).cloned()
    }

    /// The default user as it is now.
    pub fn default_user(&self) -> Arc<User> {
        self.user("default")
            .unwrap_or_else(|| self.local_default.clone())
    }

    /// Whether the cluster stores a default user (else this proxy's is used).
    pub fn cluster_has_default(&self) -> bool {
        self.snapshot().cluster_default
    }

    /// The local default user's rules, sent ahead of the first `ACL
    /// SETUSER default` so the stored user starts as this one.
    pub fn local_default_rules(&self) -> Vec<Vec<u8>> {
        self.local_default
            .describe()
            .split(' ')
            .map(|r| r.as_bytes().to_vec())
            .collect()
    }

    /// A client id and sequence number for an ACL write (the node
    /// deduplicates retries by them).
    pub fn next_request(&self, proxy_id: &str) -> (String, u64) {
        (
            format!("{proxy_id}:acl"),
            self.seq.fetch_add(1, Ordering::Relaxed) + 1,
        )
    }

    /// Reads the users from the cluster if they changed; closes the
    /// connections of users that no longer exist. Errors (no leader) keep
    /// the current users.
    pub async fn refresh(
        &self,
        upstream: &Upstream,
        proxy_id: &str,
        registry: &ClientRegistry,
    ) -> Result<(), String> {
        let _one = self.refreshing.lock().await;
        let known = self.snapshot().version;
        let known_text = known.map_or("-1".to_string(), |v| v.to_string());
        let (client_id, seq) = self.next_request(proxy_id);
        let replies = upstream
            .call(
                vec![vec![
                    internal::GET.as_bytes().to_vec(),
                    known_text.into_bytes(),
                ]],
                client_id,
                seq,
                CallOptions {
                    deadline: Some(Duration::from_secs(1)),
                    ..CallOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let reply = replies.into_iter().next().ok_or("no reply")?;
        let (version, text) = match reply.kind {
            Some(Kind::Null(_)) | Some(Kind::NullArray(_)) => return Ok(()),
            Some(Kind::Array(list)) => match list.items.as_slice() {
                [v, t] => match (&v.kind, &t.kind) {
                    (Some(Kind::Integer(v)), Some(Kind::Bulk(t))) => {
                        (*v as u64, String::from_utf8_lossy(t).into_owned())
                    }
                    _ => return Err("malformed ACL reply".into()),
                },
                _ => return Err("malformed ACL reply".into()),
            },
            Some(Kind::Error(e)) => return Err(e),
            _ => return Err("malformed ACL reply".into()),
        };
        let (parsed, bad) = Users::parse(&text);
        for line in bad {
            tracing::warn!(line, "ignoring an ACL user that does not parse");
        }
        self.install(parsed, version, registry);
        Ok(())
    }

    /// Replaces the users; closes connections of deleted users.
    fn install(&self, parsed: Users, version: u64, registry: &ClientRegistry) {
        let cluster_default = parsed.users.contains_key("default");
        let mut users: BTreeMap<String, Arc<User>> = parsed
            .users
            .into_iter()
            .map(|(name, user)| (name, Arc::new(user)))
            .collect();
        users
            .entry("default".to_string())
            .or_insert_with(|| self.local_default.clone());
        let old = {
            let mut slot = self
                .snapshot
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(
                &mut *slot,
                Arc::new(Snapshot {
                    users,
                    version: Some(version),
                    cluster_default,
                }),
            )
        };
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changes.send_replace(generation);
        let now = self.snapshot();
        let deleted: Vec<&String> = old
            .users
            .keys()
            .filter(|name| !now.users.contains_key(*name))
            .collect();
        if deleted.is_empty() {
            return;
        }
        for client in registry.all() {
            let user = client.info().user.clone();
            if deleted.contains(&&user) {
                tracing::info!(
                    client = client.id,
                    user,
                    "closing connection of deleted ACL user"
                );
                client.kill.cancel();
            }
        }
    }
}

/// Follows the cluster's users until `stop`.
pub async fn poll(
    store: Arc<AclStore>,
    upstream: Arc<Upstream>,
    proxy_id: String,
    registry: Arc<ClientRegistry>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        match store.refresh(&upstream, &proxy_id, &registry).await {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::debug!(%error, "cannot read ACL users from the cluster yet");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Where a denial happened (`ACL LOG`'s "context").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Toplevel,
    Multi,
    /// A script's `redis.call`, refused on the node (`Replies.acl_denials`).
    Lua,
}

impl Context {
    pub fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// One `ACL LOG` entry (Redis 7.2's fields).
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: Context,
    pub object: Vec<u8>,
    pub username: String,
    pub client_info: String,
    pub entry_id: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// The ACL log of this proxy (Redis keeps one per server; a denial is
/// logged where it happened), newest first.
#[derive(Debug, Default)]
pub struct AclLog {
    pub entries: VecDeque<LogEntry>,
    next_id: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl AclLog {
    /// Adds a denial, or bumps the count of a recent equal one (Redis
    /// looks at the 10 newest entries).
    pub fn add(
        &mut self,
        reason: &'static str,
        context: Context,
        object: Vec<u8>,
        username: &str,
        client_info: String,
    ) {
        let now = now_ms();
        let found = self.entries.iter().take(10).position(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now.abs_diff(e.updated_ms) <= LOG_GROUPING_MS
        });
        if let Some(at) = found {
            if let Some(mut entry) = self.entries.remove(at) {
                entry.count += 1;
                entry.updated_ms = now;
                entry.client_info = client_info;
                self.entries.push_front(entry);
            }
            return;
        }
        self.entries.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object,
            username: username.to_string(),
            client_info,
            entry_id: self.next_id,
            created_ms: now,
            updated_ms: now,
        });
        self.next_id += 1;
        self.entries.truncate(LOG_MAX_LEN);
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_groups_equal_denials() {
        let mut log = AclLog::default();
        log.add("key", Context::Toplevel, b"k".to_vec(), "u", "a".into());
        log.add("key", Context::Toplevel, b"j".to_vec(), "u", "b".into());
        log.add("key", Context::Toplevel, b"k".to_vec(), "u", "c".into());
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[0].count, 2);
        assert_eq!(log.entries[0].entry_id, 0);
        assert_eq!(log.entries[0].client_info, "c");
        log.add("key", Context::Multi, b"k".to_vec(), "u", "d".into());
        assert_eq!(log.entries.len(), 3);
        assert_eq!(log.entries[0].entry_id, 2);
    }
}
