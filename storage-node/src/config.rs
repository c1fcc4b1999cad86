//! Node settings: command-line flags, environment variables and an optional
//! TOML file, merged into one [`NodeConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rampart_proto::cluster_tls::ClusterSecurity;

use crate::commands::streams::legacy::{MigrationMode, DEFAULT_CHUNK};
use crate::NodeError;

pub const HEARTBEAT_INTERVAL_MS: u64 = 250;
/// openraft's own default chunk size.
pub const DEFAULT_SNAPSHOT_CHUNK_BYTES: u64 = 3 << 20;
/// Bounds of `--snapshot-chunk-bytes`: a chunk must fit a Raft message
/// (`raft::network::MAX_RAFT_MESSAGE`) with room to spare.
const SNAPSHOT_CHUNK_BYTES: std::ops::RangeInclusive<u64> = 1024..=(64 << 20);

rampart_proto::settings! {
    /// Flags of a storage node (`rampart-node ...`, or embedded as
    /// `rampart node ...` by the launcher).
    ///
    /// Every setting comes from, in order of precedence: the flag, its
    /// environment variable, the TOML file given with `--config`, the default.
    /// The file uses the flag names with underscores, e.g.
    ///
    /// ```toml
    /// id = 1
    /// raft_addr = "10.0.0.1:7111"
    /// client_addr = "10.0.0.1:7101"
    /// data_dir = "/var/lib/rampart/node-1"
    /// snapshot_logs = 100000
    /// snapshot_keep_logs = 1000
    /// snapshot_chunk_bytes = 3145728
    /// election_timeout_ms = 1000
    /// write_timeout_ms = 5000
    /// metrics_addr = "10.0.0.1:7121"
    /// heavy_threads = 4
    /// heavy_queue = 64
    /// heavy_nice = 10
    /// heavy_sched_idle = true
    /// script_threads = 4
    /// script_demote_ms = 2
    /// script_time_limit_ms = 5000
    /// pin_cores = true
    /// raft_cores = "0"
    /// stream_migration_mode = "b"
    /// stream_migration_chunk = 1024
    /// stream_drain_rate = 10000
    /// proto_max_bulk_len = 16777216
    /// max_reply_bytes = 134217728
    /// cluster_tls_ca_file = "/etc/rampart/tls/ca.pem"
    /// cluster_tls_cert_file = "/etc/rampart/tls/node-1.pem"
    /// cluster_tls_key_file = "/etc/rampart/tls/node-1-key.pem"
    /// ```
    pub struct NodeArgs;
    /// The settings file: the same names as the flags.
    file struct FileConfig {}
    /// Flags, environment and file merged, declared defaults applied.
    layered struct Layered;

    /// This node's Raft id (unique in the cluster, not 0).
    id: u64, env "RAMPART_NODE_ID", file, no_default;
    /// Listen address for Raft transport and admin RPCs; also the address
    /// peers dial.
    raft_addr: String, env "RAMPART_RAFT_ADDR", file, default "127.0.0.1:7111".into();
    /// Listen address for client (Kv) and admin RPCs; also the address
    /// proxies are sent to.
    client_addr: String, env "RAMPART_CLIENT_ADDR", file, default "127.0.0.1:7101".into();
    /// Directory of the node's RocksDB.
    data_dir: PathBuf, env "RAMPART_DATA_DIR", file, unset "./rampart-data/node-<id>";
    /// TOML file with any of these settings; flags and env override it.
    config: PathBuf, env "RAMPART_NODE_CONFIG", no_file, no_default;
    // A snapshot is a full export of the data: at 5000 it was built
    // every ~12 s under 400 writes/s with a 200k-entry stream, and each build
    // showed as a 100-500 ms latency spike for every client (docs/benchmarks.md,
    // incident run). The log it lets grow costs only disk.
    /// Build a snapshot (and compact the log) after this many entries.
    snapshot_logs: u64, env "RAMPART_SNAPSHOT_LOGS", file, default 100_000;
    /// Entries kept in the log behind the latest snapshot, so a briefly
    /// lagging follower catches up without a snapshot.
    snapshot_keep_logs: u64, env "RAMPART_SNAPSHOT_KEEP_LOGS", file, default 1000;
    /// Largest piece of a snapshot sent to a follower in one Raft message;
    /// a node receiving a snapshot holds about this much of it in memory.
    snapshot_chunk_bytes: u64, env "RAMPART_SNAPSHOT_CHUNK_BYTES", file,
        default DEFAULT_SNAPSHOT_CHUNK_BYTES;
    /// Election timeout T: a follower stands for election after 1.25T to
    /// 1.5T (at random) without a heartbeat, so a failover takes under 2T.
    /// More than twice the 250 ms heartbeat.
    election_timeout_ms: u64, env "RAMPART_ELECTION_TIMEOUT_MS", file, default 1000;
    /// How long a client write or linearizable read waits for the cluster
    /// before answering Unavailable.
    write_timeout_ms: u64, env "RAMPART_WRITE_TIMEOUT_MS", file, default 5000;
    /// Serve Prometheus metrics on http://ADDR/metrics.
    metrics_addr: SocketAddr, env "RAMPART_METRICS_ADDR", file, unset "off";
    /// Threads of the heavy executor, which runs heavy reads (HGETALL,
    /// KEYS, SCAN, ZRANGE, LRANGE, ...).
    heavy_threads: usize, env "RAMPART_HEAVY_THREADS", file, unset "the CPUs available";
    /// Jobs that may wait in each lane of the heavy executor (heavy reads,
    /// scripts); beyond that they are answered -BUSY at once.
    heavy_queue: usize, env "RAMPART_HEAVY_QUEUE", file,
        default crate::exec::heavy::DEFAULT_QUEUE;
    /// How much lower the CPU priority of the heavy executor's threads and
    /// of snapshot builds is than the rest of the node's (added to their
    /// nice value, 0..=19; 0 = same priority). Only matters when CPUs are contended: Raft and cheap
    /// requests are then scheduled first.
    heavy_nice: i32, env "RAMPART_HEAVY_NICE", file, default crate::priority::DEFAULT_HEAVY_NICE;
    /// Run the heavy executor's threads in Linux's SCHED_IDLE policy: any
    /// Raft or request thread that wakes preempts them at once, and they
    /// get only a small share of a CPU the rest of the node keeps busy.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    heavy_sched_idle: bool, env "RAMPART_HEAVY_SCHED_IDLE", file, default true;
    /// Threads of the heavy executor's scripts lane, which runs Lua
    /// scripts (EVAL, EVALSHA, FCALL) apart from the heavy reads.
    script_threads: usize, env "RAMPART_SCRIPT_THREADS", file, unset "the CPUs available";
    /// Scripts start at the node's normal CPU priority; one that has used
    /// this much CPU time (or calls a heavy command) is lowered to the heavy
    /// reads' priority for the rest of its run. 0 = scripts always run at
    /// the heavy reads' priority.
    script_demote_ms: u64, env "RAMPART_SCRIPT_DEMOTE_MS", file,
        default crate::exec::heavy::DEFAULT_SCRIPT_DEMOTE_MS;
    /// A Lua script (EVAL) running longer than this is stopped with an
    /// error; SCRIPT KILL stops one earlier.
    script_time_limit_ms: u64, env "RAMPART_SCRIPT_TIME_LIMIT_MS", file,
        default crate::scripting::DEFAULT_TIME_LIMIT_MS;
    /// Pin the Raft threads to their own CPU(s) and every other thread to
    /// the rest (ignored on a single CPU).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    pin_cores: bool, env "RAMPART_PIN_CORES", file, unset false;
    /// CPUs for the Raft threads, e.g. "0" or "0-1,4"; implies --pin-cores.
    raft_cores: String, env "RAMPART_RAFT_CORES", file, unset "the first available CPU";
    /// How writes migrate legacy-layout streams: `a` rewrites the whole
    /// stream on its first write, `b` moves at most
    /// --stream-migration-chunk entries per write. Replicated: the leader's
    /// value is written into the log.
    stream_migration_mode: String, env "RAMPART_STREAM_MIGRATION_MODE", file, default "b".into();
    /// Mode B: entries moved per write (STREAM_MIGRATION_CHUNK).
    stream_migration_chunk: u64, env "RAMPART_STREAM_MIGRATION_CHUNK", file, default DEFAULT_CHUNK;
    /// Entries per second the leader's background drainer may migrate out
    /// of legacy streams nobody writes to; 0 turns it off.
    stream_drain_rate: u64, env "RAMPART_STREAM_DRAIN_RATE", file, default 10_000;
    /// Largest string value a command may build (APPEND, SETRANGE, SETBIT,
    /// BITFIELD; Redis's proto-max-bulk-len), at most the 16 MiB Raft entry
    /// limit. Must be the same on every node: it decides whether a write applies.
    proto_max_bulk_len: u64, env "RAMPART_PROTO_MAX_BULK_LEN", file,
        default crate::limits::DEFAULT_MAX_BULK_LEN as u64;
    /// Bytes of data a read command may gather for its reply (LRANGE,
    /// HGETALL, KEYS, ...) before it is refused with an error.
    max_reply_bytes: u64, env "RAMPART_MAX_REPLY_BYTES", file,
        default crate::limits::DEFAULT_MAX_REPLY_BYTES as u64;
    /// The cluster CA certificate (PEM). Both listeners run mutual TLS and
    /// accept only peers whose certificate it signed; peers are dialled the
    /// same way (docs/security.md).
    cluster_tls_ca_file: PathBuf, env "RAMPART_CLUSTER_TLS_CA_FILE", file, unset "none";
    /// This node's certificate (PEM), signed by the cluster CA, with the
    /// node role and name (`rampart certs` makes one).
    cluster_tls_cert_file: PathBuf, env "RAMPART_CLUSTER_TLS_CERT_FILE", file, unset "none";
    /// The private key of --cluster-tls-cert-file (PEM).
    cluster_tls_key_file: PathBuf, env "RAMPART_CLUSTER_TLS_KEY_FILE", file, unset "none";
    /// Serve and dial the cluster links in plaintext, without certificates
    /// (logs a warning). Without it and without the --cluster-tls-* files
    /// the node refuses to start.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    insecure: bool, env "RAMPART_INSECURE", file, default false;
}

/// Resolved settings of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub id: u64,
    pub raft_addr: String,
    pub client_addr: String,
    pub data_dir: PathBuf,
    pub snapshot_logs: u64,
    pub snapshot_keep_logs: u64,
    /// Bytes of a snapshot per InstallSnapshot message.
    pub snapshot_chunk_bytes: u64,
    pub election_timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub write_timeout_ms: u64,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Heavy executor threads (at least 1).
    pub heavy_threads: usize,
    /// Heavy read runs that may wait beyond the running ones.
    pub heavy_queue: usize,
    /// Added to the nice value of heavy and snapshot-build threads (0..=19).
    pub heavy_nice: i32,
    /// Heavy executor threads run in the SCHED_IDLE policy.
    pub heavy_sched_idle: bool,
    /// Threads of the heavy executor's scripts lane (at least 1).
    pub script_threads: usize,
    /// A script's CPU time before its thread is lowered to the heavy
    /// reads' priority (0 = from the start).
    pub script_demote_ms: u64,
    /// How long a Lua script may run before it is stopped.
    pub script_time_limit_ms: u64,
    /// `Some(raft cores)` when pinning is on; an empty list means "the first
    /// available CPU".
    pub pin_cores: Option<Vec<usize>>,
    /// The legacy-stream migration mode this node proposes when leader.
    pub stream_migration: MigrationMode,
    /// Entries per second the background drainer migrates (0 = off).
    pub stream_drain_rate: u64,
    /// What one command may build (checked by `limits::Limits::check`).
    pub limits: crate::limits::Limits,
    /// Mutual TLS files, `--insecure`, or neither (`start` refuses that).
    pub cluster_security: ClusterSecurity,
}

/// `--<lane>-threads`: at least 1, by default the CPUs available.
fn thread_count(given: Option<usize>, lane: &str) -> Result<usize, NodeError> {
    match given {
        Some(0) => Err(NodeError::Config(format!(
            "--{lane}-threads must be at least 1"
        ))),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

impl NodeArgs {
    /// Merges flags/env with the `--config` file (if any) and the defaults.
    pub fn resolve(&self) -> Result<NodeConfig, NodeError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let s = self.layer(file);
        let id = s.id.ok_or_else(|| {
            NodeError::Config(
                "--id is required (or RAMPART_NODE_ID, or id in the config file)".into(),
            )
        })?;
        if id == 0 {
            return Err(NodeError::Config("--id must not be 0".into()));
        }
        if s.election_timeout_ms <= 2 * HEARTBEAT_INTERVAL_MS {
            return Err(NodeError::Config(format!(
                "--election-timeout-ms must be more than twice the {HEARTBEAT_INTERVAL_MS} ms heartbeat"
            )));
        }
        if s.snapshot_logs == 0 {
            return Err(NodeError::Config(
                "--snapshot-logs must be at least 1".into(),
            ));
        }
        if !SNAPSHOT_CHUNK_BYTES.contains(&s.snapshot_chunk_bytes) {
            return Err(NodeError::Config(format!(
                "--snapshot-chunk-bytes must be between {} and {}",
                SNAPSHOT_CHUNK_BYTES.start(),
                SNAPSHOT_CHUNK_BYTES.end()
            )));
        }
        if s.write_timeout_ms == 0 {
            return Err(NodeError::Config(
                "--write-timeout-ms must be at least 1".into(),
            ));
        }
        let heavy_threads = thread_count(s.heavy_threads, "heavy")?;
        let script_threads = thread_count(s.script_threads, "script")?;
        if !(0..=crate::priority::MAX_NICE).contains(&s.heavy_nice) {
            return Err(NodeError::Config(format!(
                "--heavy-nice must be between 0 and {}",
                crate::priority::MAX_NICE
            )));
        }
        let raft_cores = match &s.raft_cores {
            Some(list) => Some(
                crate::pinning::parse_core_list(list)
                    .map_err(|e| NodeError::Config(format!("--raft-cores: {e}")))?,
            ),
            None => None,
        };
        let pin_cores = match (s.pin_cores, raft_cores) {
            (Some(false), _) => None,
            (_, Some(cores)) => Some(cores),
            (Some(true), None) => Some(Vec::new()),
            (None, None) => None,
        };
        if s.stream_migration_chunk == 0 {
            return Err(NodeError::Config(
                "--stream-migration-chunk must be at least 1".into(),
            ));
        }
        let stream_migration = match s.stream_migration_mode.to_ascii_lowercase().as_str() {
            "a" => MigrationMode::A,
            "b" => MigrationMode::B {
                chunk: s.stream_migration_chunk,
            },
            other => {
                return Err(NodeError::Config(format!(
                    "--stream-migration-mode must be a or b, not {other:?}"
                )))
            }
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let limits = crate::limits::Limits {
            max_bulk_len: size(s.proto_max_bulk_len),
            max_reply_bytes: size(s.max_reply_bytes),
        };
        limits.check().map_err(NodeError::Config)?;
        let cluster_security = ClusterSecurity::from_settings(
            s.cluster_tls_ca_file,
            s.cluster_tls_cert_file,
            s.cluster_tls_key_file,
            s.insecure,
        )
        .map_err(|e| NodeError::Config(e.to_string()))?;
        Ok(NodeConfig {
            id,
            raft_addr: s.raft_addr,
            client_addr: s.client_addr,
            data_dir: s
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("./rampart-data/node-{id}"))),
            snapshot_logs: s.snapshot_logs,
            snapshot_keep_logs: s.snapshot_keep_logs,
            snapshot_chunk_bytes: s.snapshot_chunk_bytes,
            election_timeout_ms: s.election_timeout_ms,
            heartbeat_ms: HEARTBEAT_INTERVAL_MS,
            write_timeout_ms: s.write_timeout_ms,
            metrics_addr: s.metrics_addr,
            heavy_threads,
            heavy_queue: s.heavy_queue,
            heavy_nice: s.heavy_nice,
            heavy_sched_idle: s.heavy_sched_idle,
            script_threads,
            script_demote_ms: s.script_demote_ms,
            script_time_limit_ms: s.script_time_limit_ms.max(1),
            pin_cores,
            stream_migration,
            stream_drain_rate: s.stream_drain_rate,
            limits,
            cluster_security,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, NodeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NodeError::Config(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_is_not_given() {
        let cfg = NodeArgs {
            id: Some(3),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(cfg.raft_addr, "127.0.0.1:7111");
        assert_eq!(cfg.client_addr, "127.0.0.1:7101");
        assert_eq!(cfg.data_dir, PathBuf::from("./rampart-data/node-3"));
        assert_eq!(cfg.snapshot_logs, 100_000);
        assert_eq!(cfg.snapshot_keep_logs, 1000);
        assert_eq!(cfg.election_timeout_ms, 1000);
        assert_eq!(cfg.write_timeout_ms, 5000);
        assert_eq!(cfg.metrics_addr, None);
        assert!(cfg.heavy_threads >= 1);
        assert_eq!(cfg.heavy_queue, 64);
        assert_eq!(cfg.heavy_nice, crate::priority::DEFAULT_HEAVY_NICE);
        assert!(cfg.heavy_sched_idle);
        assert!(cfg.script_threads >= 1);
        assert_eq!(cfg.script_demote_ms, 2);
        assert_eq!(cfg.script_time_limit_ms, 5000);
        assert_eq!(cfg.pin_cores, None);
        assert_eq!(cfg.stream_migration, MigrationMode::B { chunk: 1024 });
        assert_eq!(cfg.stream_drain_rate, 10_000);
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    /// The only test that sets RAMPART_SNAPSHOT_KEEP_LOGS.
    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        use clap::Parser;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "id = 1\nsnapshot_keep_logs = 3\n").expect("write");
        let config = path.to_str().expect("utf-8 path");
        let keep = |argv: &[&str]| {
            Cli::try_parse_from(argv)
                .expect("parse")
                .node
                .resolve()
                .expect("resolve")
                .snapshot_keep_logs
        };
        assert_eq!(keep(&["node", "--id", "1"]), 1000);
        assert_eq!(keep(&["node", "--config", config]), 3);
        std::env::set_var("RAMPART_SNAPSHOT_KEEP_LOGS", "4");
        let with_env = keep(&["node", "--config", config]);
        let flag_over_env = keep(&["node", "--config", config, "--snapshot-keep-logs", "5"]);
        std::env::remove_var("RAMPART_SNAPSHOT_KEEP_LOGS");
        assert_eq!((with_env, flag_over_env), (4, 5));
    }

    #[test]
    fn help_shows_every_flag_env_and_default() {
        use clap::CommandFactory;
        let help = Cli::command().term_width(0).render_help().to_string();
        for setting in NodeArgs::settings() {
            for shown in [
                setting.flag(),
                format!("[env: {}=", setting.env),
                setting
                    .default
                    .map(|d| format!("[default: {d}]"))
                    .unwrap_or_default(),
            ] {
                assert!(help.contains(&shown), "{shown} missing from:\n{help}");
            }
        }
        assert!(help.contains("[default: 127.0.0.1:7111]"), "{help}");
        assert!(help.contains("[default: 100000]"), "{help}");
    }

    #[test]
    fn operations_doc_lists_every_setting() {
        let doc = include_str!("../../docs/operations.md");
        rampart_proto::settings::check_doc_table(
            doc,
            "### `rampart-node` (or `rampart node`)",
            &NodeArgs::settings(),
        )
        .unwrap_or_else(|e| panic!("docs/operations.md: {e}"));
    }

    #[test]
    fn stream_migration_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 1\nstream_migration_mode = \"b\"\nstream_migration_chunk = 7\nstream_drain_rate = 0\n",
        )
        .expect("write");
        let cfg = NodeArgs {
            config: Some(path.clone()),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(cfg.stream_migration, MigrationMode::B { chunk: 7 });
        assert_eq!(cfg.stream_drain_rate, 0);
        let cfg = NodeArgs {
            config: Some(path),
            stream_migration_mode: Some("A".into()),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(cfg.stream_migration, MigrationMode::A);
        for bad in [
            NodeArgs {
                id: Some(1),
                stream_migration_mode: Some("c".into()),
                ..NodeArgs::default()
            },
            NodeArgs {
                id: Some(1),
                stream_migration_chunk: Some(0),
                ..NodeArgs::default()
            },
        ] {
            assert!(bad.resolve().is_err());
        }
    }

    #[test]
    fn heavy_executor_and_pinning_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 1\nheavy_threads = 3\nheavy_queue = 5\nraft_cores = \"1-2\"\nheavy_sched_idle = false\nscript_threads = 2\nscript_demote_ms = 0\n",
        )
        .expect("write");
        let cfg = NodeArgs {
            config: Some(path.clone()),
            heavy_queue: Some(0),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!((cfg.heavy_threads, cfg.heavy_queue), (3, 0));
        assert!(!cfg.heavy_sched_idle, "the file turns SCHED_IDLE off");
        assert_eq!((cfg.script_threads, cfg.script_demote_ms), (2, 0));
        assert_eq!(cfg.pin_cores, Some(vec![1, 2]));
        // --pin-cores false wins over a core list.
        let cfg = NodeArgs {
            config: Some(path),
            pin_cores: Some(false),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(cfg.pin_cores, None);
        let on = NodeArgs {
            id: Some(1),
            pin_cores: Some(true),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(on.pin_cores, Some(Vec::new()));
        for bad in [
            NodeArgs {
                id: Some(1),
                heavy_threads: Some(0),
                ..NodeArgs::default()
            },
            NodeArgs {
                id: Some(1),
                script_threads: Some(0),
                ..NodeArgs::default()
            },
            NodeArgs {
                id: Some(1),
                raft_cores: Some("x".into()),
                ..NodeArgs::default()
            },
        ] {
            assert!(bad.resolve().is_err());
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 2\nraft_addr = \"10.0.0.2:7111\"\nclient_addr = \"10.0.0.2:7101\"\nsnapshot_logs = 10\nmetrics_addr = \"127.0.0.1:9100\"\n",
        )
        .expect("write");
        let cfg = NodeArgs {
            config: Some(path),
            client_addr: Some("0.0.0.0:9000".into()),
            ..NodeArgs::default()
        }
        .resolve()
        .expect("resolve");
        assert_eq!(cfg.id, 2);
        assert_eq!(cfg.raft_addr, "10.0.0.2:7111");
        assert_eq!(cfg.client_addr, "0.0.0.0:9000");
        assert_eq!(cfg.snapshot_logs, 10);
        assert_eq!(
            cfg.metrics_addr,
            Some("127.0.0.1:9100".parse().expect("addr"))
        );
    }

    #[test]
    fn missing_id_and_unknown_file_keys_are_errors() {
        assert!(NodeArgs::default().resolve().is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "id = 1\nraft_adr = \"x\"\n").expect("write");
        let err = NodeArgs {
            config: Some(path),
            ..NodeArgs::default()
        }
        .resolve()
        .expect_err("typo must be reported");
        assert!(err.to_string().contains("raft_adr"), "{err}");
    }
}
