//! The values of Redis's `CONFIG` parameters as this proxy serves them
//! (docs/config.md; the table is [`rampart_proto::redis_config::PARAMS`]).
//!
//! - Cluster parameters are replicated state on the nodes. `CONFIG SET`
//!   writes them through the Raft log ([`ConfigStore::write_cluster`]);
//!   `CONFIG GET` reads them from the leader first
//!   ([`ConfigStore::refresh_cluster`], a linearizable read that returns
//!   nothing when the version did not move), so a change made through any
//!   proxy is seen at once through every other. Nothing here polls: only
//!   `CONFIG GET` needs the values (OBJECT ENCODING reads them on the
//!   node). When the cluster cannot be reached, the last values read are
//!   shown.
//! - Proxy parameters are this process's: set from the config file's
//!   `[redis]` section at start, changed by `CONFIG SET`, written back by
//!   `CONFIG REWRITE` ([`ConfigStore::rewrite`]). `timeout` is applied by
//!   every connection ([`ConfigStore::idle_timeout`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use rampart_proto::pb::reply::Kind;
use rampart_proto::redis_config::{internal, Change, Param, Scope};
use rampart_proto::Reply;

use crate::config::Config;
use crate::upstream::{CallOptions, Upstream};
use crate::ProxyError;

/// How long `CONFIG GET` waits for the cluster's values before it shows the
/// last ones it read.
const READ_DEADLINE: Duration = Duration::from_secs(1);

/// Why a `CONFIG` change did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cluster refused or could not take the write: the reply to send.
    #[error("{0}")]
    Reply(String),
    /// The config file could not be rewritten.
    #[error("{0}")]
    Rewrite(String),
}

/// The cluster's values as last read.
#[derive(Debug, Default)]
struct ClusterView {
    /// The nodes' version; `None` before the first read.
    version: Option<u64>,
    /// Parameters set on the cluster (canonical name → value).
    values: BTreeMap<String, String>,
}

pub struct ConfigStore {
    /// This proxy's parameters that differ from the table's default
    /// (`proto-max-bulk-len` is always here: it is the proxy's flag).
    local: RwLock<BTreeMap<&'static str, String>>,
    cluster: RwLock<ClusterView>,
    /// One cluster read in flight at a time.
    refreshing: tokio::sync::Mutex<()>,
    seq: AtomicU64,
    /// `timeout`, in seconds (0 = never), watched by every connection.
    timeout: tokio::sync::watch::Sender<u64>,
    /// The file `CONFIG REWRITE` writes (the proxy's `--config`).
    file: Option<PathBuf>,
    /// Serializes rewrites of the file.
    rewriting: std::sync::Mutex<()>,
}

impl ConfigStore {
    /// The proxy's parameters from its settings and the file's `[redis]`
    /// section (checked by [`Config::load`]).
    pub fn new(config: &Config) -> ConfigStore {
        let mut local = BTreeMap::new();
        local.insert("proto-max-bulk-len", config.max_bulk_len.to_string());
        for change in &config.redis {
            local.insert(change.param.name, change.value.clone());
        }
        let timeout = local
            .get("timeout")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        ConfigStore {
            local: RwLock::new(local),
            cluster: RwLock::new(ClusterView::default()),
            refreshing: tokio::sync::Mutex::new(()),
            seq: AtomicU64::new(0),
            timeout: tokio::sync::watch::Sender::new(timeout),
            file: config.config_file.clone(),
            rewriting: std::sync::Mutex::new(()),
        }
    }

    /// The value `CONFIG GET` shows for `param`.
    pub fn value(&self, param: &Param) -> String {
        let stored = match param.scope {
            Scope::Proxy => read(&self.local).get(param.name).cloned(),
            Scope::Cluster => read(&self.cluster).values.get(param.name).cloned(),
        };
        stored.unwrap_or_else(|| param.default.to_string())
    }

    /// `timeout` in seconds as it changes (0 = clients are never closed
    /// for idling).
    pub fn idle_timeout(&self) -> tokio::sync::watch::Receiver<u64> {
        self.timeout.subscribe()
    }

    fn next_request(&self, proxy_id: &str) -> (String, u64) {
        (
            format!("{proxy_id}:config"),
            self.seq.fetch_add(1, Ordering::Relaxed) + 1,
        )
    }

    /// Reads the cluster's values if they changed since the last read.
    pub async fn refresh_cluster(&self, upstream: &Upstream, proxy_id: &str) -> Result<(), String> {
        let _one = self.refreshing.lock().await;
        let known = read(&self.cluster)
            .version
            .map_or("-1".to_string(), |v| v.to_string());
        let (client_id, seq) = self.next_request(proxy_id);
        let replies = upstream
            .call(
                vec![vec![internal::GET.as_bytes().to_vec(), known.into_bytes()]],
                client_id,
                seq,
                CallOptions {
                    deadline: Some(READ_DEADLINE),
                    ..CallOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let reply = replies.into_iter().next().ok_or("no reply")?;
        let items = match reply.kind {
            Some(Kind::Null(_)) | Some(Kind::NullArray(_)) => return Ok(()),
            Some(Kind::Array(list)) => list.items,
            Some(Kind::Error(e)) => return Err(e),
            _ => return Err("malformed CONFIG reply".into()),
        };
        let (version, pairs) = items.split_first().ok_or("malformed CONFIG reply")?;
        let Some(Kind::Integer(version)) = version.kind else {
            return Err("malformed CONFIG reply".into());
        };
        let mut values = BTreeMap::new();
        for pair in pairs.chunks(2) {
            if let [name, value] = pair {
                if let (Some(name), Some(value)) = (bulk(name), bulk(value)) {
                    values.insert(name, value);
                }
            }
        }
        let mut view = write(&self.cluster);
        view.version = Some(version as u64);
        view.values = values;
        Ok(())
    }

    /// Applies checked changes: the cluster's through the Raft log first
    /// (all or nothing there), then this proxy's, so a refused or failed
    /// cluster write changes nothing anywhere.
    pub async fn apply(
        &self,
        changes: &[Change],
        upstream: &Upstream,
        proxy_id: &str,
    ) -> Result<(), ConfigError> {
        let cluster: Vec<&Change> = changes
            .iter()
            .filter(|c| c.param.scope == Scope::Cluster)
            .collect();
        if !cluster.is_empty() {
            self.write_cluster(&cluster, upstream, proxy_id).await?;
        }
        let mut local = write(&self.local);
        for change in changes.iter().filter(|c| c.param.scope == Scope::Proxy) {
            local.insert(change.param.name, change.value.clone());
            if change.param.name == "timeout" {
                self.timeout.send_replace(change.value.parse().unwrap_or(0));
            }
        }
        Ok(())
    }

    async fn write_cluster(
        &self,
        changes: &[&Change],
        upstream: &Upstream,
        proxy_id: &str,
    ) -> Result<(), ConfigError> {
        let mut command = vec![internal::SET.as_bytes().to_vec()];
        for change in changes {
            command.push(change.param.name.as_bytes().to_vec());
            command.push(change.value.as_bytes().to_vec());
        }
        let (client_id, seq) = self.next_request(proxy_id);
        let reply: Reply = match upstream
            .call(vec![command], client_id, seq, CallOptions::default())
            .await
        {
            Ok(replies) => replies
                .into_iter()
                .next()
                .ok_or_else(|| ConfigError::Reply("ERR internal error: no reply".into()))?,
            Err(ProxyError::ClusterDown(_)) => {
                return Err(ConfigError::Reply(crate::CLUSTERDOWN_TEXT.into()))
            }
            Err(e) => return Err(ConfigError::Reply(format!("ERR {e}"))),
        };
        if let Some(text) = reply.error_text() {
            return Err(ConfigError::Reply(text.to_string()));
        }
        // Shown at once by this proxy's next CONFIG GET; the read also
        // picks up the new version.
        let mut view = write(&self.cluster);
        for change in changes {
            view.values
                .insert(change.param.name.to_string(), change.value.clone());
        }
        Ok(())
    }

    /// `CONFIG REWRITE`: the file's `[redis]` section becomes this proxy's
    /// parameters that differ from their defaults (cluster parameters are
    /// already durable in the cluster). The rest of the file, comments
    /// included, is kept; the new file replaces the old one atomically.
    pub fn rewrite(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.file else {
            return Err(ConfigError::Reply(
                rampart_proto::redis_config::NO_CONFIG_FILE.into(),
            ));
        };
        let _one = self
            .rewriting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Rewrite(format!("reading {}: {e}", path.display())))?;
        let mut doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e| ConfigError::Rewrite(format!("parsing {}: {e}", path.display())))?;
        let mut section = toml_edit::Table::new();
        for (name, value) in read(&self.local).iter() {
            // Immutable ones (proto-max-bulk-len) come from their flags.
            let Some(param) = rampart_proto::redis_config::by_name(name).filter(|p| p.mutable)
            else {
                continue;
            };
            if value != param.default {
                section.insert(name, toml_edit::value(value.as_str()));
            }
        }
        if section.is_empty() {
            doc.remove("redis");
        } else {
            doc.insert("redis", toml_edit::Item::Table(section));
        }
        let tmp = path.with_extension("rewrite.tmp");
        std::fs::write(&tmp, doc.to_string())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| ConfigError::Rewrite(format!("writing {}: {e}", path.display())))
    }
}

fn bulk(reply: &Reply) -> Option<String> {
    match &reply.kind {
        Some(Kind::Bulk(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
