//! Proxy configuration: flags, environment and an optional TOML file.
//! Precedence: flag > environment variable > config file > built-in default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rampart_policies::PolicyConfig;
use serde::Deserialize;

use crate::error::ProxyError;
use crate::resp::decode::DEFAULT_MAX_BULK_LEN;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:6379";
pub const DEFAULT_NODES: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";
pub const DEFAULT_RETRY_DEADLINE_MS: u64 = 5000;
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Room for one maximal bulk plus the rest of its command line. Redis allows
/// 1 GB (`client-query-buffer-limit`); half of that per connection is plenty.
pub const DEFAULT_MAX_QUERY_BUFFER: u64 = DEFAULT_MAX_BULK_LEN as u64 + 64 * 1024 * 1024;

/// Command-line arguments of the proxy. Embedded by the launcher
/// (`rampart proxy ...`) through `#[command(flatten)]`.
///
/// Every field is optional so a config file can fill what flags and the
/// environment leave unset; defaults are listed in each help text.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProxyArgs {
    /// Address to accept Redis clients on [default: 127.0.0.1:6379]
    #[arg(long, env = "RAMPART_PROXY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Client (Kv gRPC) addresses of the storage nodes, comma-separated
    /// [default: 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103]
    #[arg(long, env = "RAMPART_NODES", value_delimiter = ',')]
    pub nodes: Option<Vec<String>>,
    /// Password clients must send with AUTH/HELLO before other commands [default: none]
    #[arg(long, env = "RAMPART_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// How long a batch is retried across nodes before -CLUSTERDOWN [default: 5000]
    #[arg(long, env = "RAMPART_RETRY_DEADLINE_MS")]
    pub retry_deadline_ms: Option<u64>,
    /// Largest bulk string a client may send (Redis proto-max-bulk-len) [default: 536870912]
    #[arg(long, env = "RAMPART_MAX_BULK_LEN")]
    pub max_bulk_len: Option<u64>,
    /// Largest unprocessed query per connection before it is closed [default: 603979776]
    #[arg(long, env = "RAMPART_MAX_QUERY_BUFFER")]
    pub max_query_buffer: Option<u64>,
    /// On SIGINT/SIGTERM, how long connections may finish in-flight work [default: 10000]
    #[arg(long, env = "RAMPART_DRAIN_TIMEOUT_MS")]
    pub drain_timeout_ms: Option<u64>,
    /// TOML file with the same keys (listen, nodes, requirepass, retry_deadline_ms,
    /// max_bulk_len, max_query_buffer, drain_timeout_ms, metrics_addr,
    /// pubsub_output_buffer_limit, pubsub_output_buffer_soft_limit,
    /// pubsub_output_buffer_soft_seconds) and a [policies] section
    /// (docs/policies.md); re-read on SIGHUP and when it changes
    #[arg(long, env = "RAMPART_PROXY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Admission and isolation policies on or off (policies.enabled) [default: true]
    #[arg(long, env = "RAMPART_POLICIES")]
    pub policies: Option<bool>,
    /// Open connections per client IP, 0 = unlimited (policies.connections.per_ip_max) [default: 8]
    #[arg(long, env = "RAMPART_PER_IP_MAX_CONNECTIONS")]
    pub per_ip_max_connections: Option<u32>,
    /// Rejected connects per second per IP before rejects become TCP resets
    /// (policies.connections.reject_rate_per_sec) [default: 20]
    #[arg(long, env = "RAMPART_REJECT_RATE_PER_SEC")]
    pub reject_rate_per_sec: Option<u32>,
    /// Commands executing at once across all clients, 0 = unlimited
    /// (policies.inflight.max) [default: 4096 x CPUs, at least 8192]
    #[arg(long, env = "RAMPART_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u64>,
    /// Concurrent heavy-class commands (policies.classes.heavy.max) [default: 2 x CPUs]
    #[arg(long, env = "RAMPART_HEAVY_MAX")]
    pub heavy_max: Option<u32>,
    /// How long a command may wait for a slot of its class before -BUSY
    /// (policies.admission.wait_ms) [default: 0]
    #[arg(long, env = "RAMPART_CLASS_WAIT_MS")]
    pub class_wait_ms: Option<u64>,
    /// Expect a PROXY protocol v1/v2 header on every connection from the
    /// trusted peers (policies.proxy_protocol.enabled) [default: false]
    #[arg(long, env = "RAMPART_PROXY_PROTOCOL")]
    pub proxy_protocol: Option<bool>,
    /// Serve Prometheus metrics on http://ADDR/metrics (metrics_addr) [default: off]
    #[arg(long, env = "RAMPART_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Bytes of pub/sub messages a client may have pending (queued or not yet
    /// written) before it is disconnected, 0 = unlimited; Redis's
    /// `client-output-buffer-limit pubsub` hard limit [default: 33554432]
    #[arg(long, env = "RAMPART_PUBSUB_OUTPUT_BUFFER_LIMIT")]
    pub pubsub_output_buffer_limit: Option<u64>,
    /// Pending pub/sub bytes a client may stay above for at most
    /// --pubsub-output-buffer-soft-seconds before it is disconnected,
    /// 0 = no soft limit; Redis's pubsub soft limit [default: 8388608]
    #[arg(long, env = "RAMPART_PUBSUB_OUTPUT_BUFFER_SOFT_LIMIT")]
    pub pubsub_output_buffer_soft_limit: Option<u64>,
    /// Seconds a client may stay above the soft limit [default: 60]
    #[arg(long, env = "RAMPART_PUBSUB_OUTPUT_BUFFER_SOFT_SECONDS")]
    pub pubsub_output_buffer_soft_seconds: Option<u64>,
}

/// The config file. `nodes` is a TOML array of "host:port" strings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    nodes: Option<Vec<String>>,
    requirepass: Option<String>,
    retry_deadline_ms: Option<u64>,
    max_bulk_len: Option<u64>,
    max_query_buffer: Option<u64>,
    drain_timeout_ms: Option<u64>,
    metrics_addr: Option<SocketAddr>,
    pubsub_output_buffer_limit: Option<u64>,
    pubsub_output_buffer_soft_limit: Option<u64>,
    pubsub_output_buffer_soft_seconds: Option<u64>,
    policies: Option<PolicyConfig>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub nodes: Vec<String>,
    pub requirepass: Option<String>,
    pub retry_deadline: Duration,
    pub max_bulk_len: usize,
    pub max_query_buffer: usize,
    pub drain_timeout: Duration,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Pending pub/sub bytes per client before it is cut off (0 = no limit).
    pub pubsub_output_buffer_limit: usize,
    /// Soft limit: pending bytes a client may stay above for at most
    /// `pubsub_output_buffer_soft_seconds` (0 = no soft limit).
    pub pubsub_output_buffer_soft_limit: usize,
    pub pubsub_output_buffer_soft_seconds: u64,
    /// The config file used, reported by INFO.
    pub config_file: Option<PathBuf>,
    /// `[policies]` with flag/env overrides applied (checked: it resolves).
    pub policies: PolicyConfig,
    /// What the process was started with, to re-apply on reload.
    pub args: ProxyArgs,
}

impl Config {
    /// The pub/sub output buffer limits of every client.
    pub fn pubsub_limits(&self) -> crate::pubsub::OutputLimits {
        crate::pubsub::OutputLimits {
            hard: self.pubsub_output_buffer_limit,
            soft: self.pubsub_output_buffer_soft_limit,
            soft_for: Duration::from_secs(self.pubsub_output_buffer_soft_seconds),
        }
    }

    /// Applies flags/env over the config file (if any) over the defaults.
    pub fn load(args: ProxyArgs) -> Result<Config, ProxyError> {
        let mut file = read_file(&args)?;
        let policies = policies_with_overrides(file.policies.take().unwrap_or_default(), &args)?;
        let listen = match args.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| ProxyError::Config(format!("default listen address: {e}")))?,
        };
        let nodes: Vec<String> = args
            .nodes
            .clone()
            .or(file.nodes)
            .unwrap_or_else(|| DEFAULT_NODES.split(',').map(str::to_string).collect())
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if nodes.is_empty() {
            return Err(ProxyError::Config("--nodes lists no node address".into()));
        }
        let max_bulk_len = args
            .max_bulk_len
            .or(file.max_bulk_len)
            .unwrap_or(DEFAULT_MAX_BULK_LEN as u64);
        let max_query_buffer = args
            .max_query_buffer
            .or(file.max_query_buffer)
            .unwrap_or(DEFAULT_MAX_QUERY_BUFFER.max(max_bulk_len + 1024 * 1024));
        if max_query_buffer < max_bulk_len {
            return Err(ProxyError::Config(format!(
                "max_query_buffer ({max_query_buffer}) is smaller than max_bulk_len ({max_bulk_len})"
            )));
        }
        Ok(Config {
            listen,
            nodes,
            requirepass: args
                .requirepass
                .clone()
                .or(file.requirepass)
                .filter(|p| !p.is_empty()),
            retry_deadline: Duration::from_millis(
                args.retry_deadline_ms
                    .or(file.retry_deadline_ms)
                    .unwrap_or(DEFAULT_RETRY_DEADLINE_MS),
            ),
            max_bulk_len: usize::try_from(max_bulk_len)
                .map_err(|_| ProxyError::Config("max_bulk_len too large".into()))?,
            max_query_buffer: usize::try_from(max_query_buffer)
                .map_err(|_| ProxyError::Config("max_query_buffer too large".into()))?,
            drain_timeout: Duration::from_millis(
                args.drain_timeout_ms
                    .or(file.drain_timeout_ms)
                    .unwrap_or(DEFAULT_DRAIN_TIMEOUT_MS),
            ),
            metrics_addr: args.metrics_addr.or(file.metrics_addr),
            pubsub_output_buffer_limit: usize::try_from(
                args.pubsub_output_buffer_limit
                    .or(file.pubsub_output_buffer_limit)
                    .unwrap_or(crate::pubsub::DEFAULT_OUTPUT_BUFFER_LIMIT),
            )
            .map_err(|_| ProxyError::Config("pubsub_output_buffer_limit too large".into()))?,
            pubsub_output_buffer_soft_limit: usize::try_from(
                args.pubsub_output_buffer_soft_limit
                    .or(file.pubsub_output_buffer_soft_limit)
                    .unwrap_or(crate::pubsub::DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT),
            )
            .map_err(|_| ProxyError::Config("pubsub_output_buffer_soft_limit too large".into()))?,
            pubsub_output_buffer_soft_seconds: args
                .pubsub_output_buffer_soft_seconds
                .or(file.pubsub_output_buffer_soft_seconds)
                .unwrap_or(crate::pubsub::DEFAULT_OUTPUT_BUFFER_SOFT_SECONDS),
            config_file: args.config.clone(),
            policies,
            args,
        })
    }

    /// Re-reads the policy part of the configuration (file, then the same
    /// flag/env overrides as at start). Other settings need a restart.
    pub fn reload_policies(args: &ProxyArgs) -> Result<PolicyConfig, ProxyError> {
        let file = read_file(args)?;
        policies_with_overrides(file.policies.unwrap_or_default(), args)
    }
}

fn read_file(args: &ProxyArgs) -> Result<FileConfig, ProxyError> {
    match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ProxyError::Config(format!("reading {}: {e}", path.display())))?;
            toml::from_str::<FileConfig>(&text)
                .map_err(|e| ProxyError::Config(format!("parsing {}: {e}", path.display())))
        }
        None => Ok(FileConfig::default()),
    }
}

/// Applies flag/env overrides to `[policies]` and checks the result.
fn policies_with_overrides(
    mut policies: PolicyConfig,
    args: &ProxyArgs,
) -> Result<PolicyConfig, ProxyError> {
    if let Some(on) = args.policies {
        policies.enabled = on;
    }
    if let Some(n) = args.per_ip_max_connections {
        policies.connections.per_ip_max = n;
    }
    if let Some(n) = args.reject_rate_per_sec {
        policies.connections.reject_rate_per_sec = n;
    }
    if let Some(n) = args.max_in_flight {
        policies.inflight.max = Some(n);
    }
    if let Some(n) = args.heavy_max {
        policies
            .classes
            .entry(rampart_policies::classes::HEAVY.to_string())
            .or_default()
            .max = Some(n);
    }
    if let Some(ms) = args.class_wait_ms {
        policies.admission.wait_ms = ms;
    }
    if let Some(on) = args.proxy_protocol {
        policies.proxy_protocol.enabled = on;
    }
    policies
        .resolve()
        .map_err(|e| ProxyError::Config(format!("policies: {e}")))?;
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::load(ProxyArgs::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:6379");
        assert_eq!(config.nodes.len(), 3);
        assert_eq!(config.retry_deadline, Duration::from_millis(5000));
        assert_eq!(config.max_bulk_len, 536_870_912);
        assert!(config.requirepass.is_none());
        assert!(config.metrics_addr.is_none());
        assert_eq!(config.pubsub_output_buffer_limit, 32 * 1024 * 1024);
        assert_eq!(config.pubsub_output_buffer_soft_limit, 8 * 1024 * 1024);
        assert_eq!(config.pubsub_output_buffer_soft_seconds, 60);
        let cli = Cli::parse_from(["proxy", "--pubsub-output-buffer-limit", "4096"]);
        assert_eq!(
            Config::load(cli.proxy).unwrap().pubsub_output_buffer_limit,
            4096
        );
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = std::env::temp_dir().join(format!("rampart-proxy-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\nnodes = [\"10.0.0.1:7101\"]\nrequirepass = \"file\"\nmetrics_addr = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "proxy",
            "--config",
            path.to_str().unwrap(),
            "--requirepass",
            "flag",
        ]);
        let config = Config::load(cli.proxy).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.nodes, vec!["10.0.0.1:7101"]);
        assert_eq!(config.requirepass.as_deref(), Some("flag"));
        assert_eq!(config.metrics_addr.map(|a| a.port()), Some(9100));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn policies_come_from_the_file_with_flag_and_env_overrides() {
        let dir =
            std::env::temp_dir().join(format!("rampart-policy-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(
            &path,
            "[policies.connections]\nper_ip_max = 3\nreject_rate_per_sec = 5\n[policies.commands]\nget = \"heavy_scan\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "proxy",
            "--config",
            path.to_str().unwrap(),
            "--reject-rate-per-sec",
            "7",
            "--heavy-max",
            "4",
        ]);
        let config = Config::load(cli.proxy).unwrap();
        assert_eq!(config.policies.connections.per_ip_max, 3);
        assert_eq!(config.policies.connections.reject_rate_per_sec, 7);
        assert_eq!(config.policies.commands["get"], "heavy_scan");
        let resolved = config.policies.resolve().unwrap();
        assert_eq!(resolved.classes.class_max("heavy"), Some(4));
        // A reload re-reads the file and keeps the overrides.
        std::fs::write(&path, "[policies.connections]\nper_ip_max = 1\n").unwrap();
        let reloaded = Config::reload_policies(&config.args).unwrap();
        assert_eq!(reloaded.connections.per_ip_max, 1);
        assert_eq!(reloaded.connections.reject_rate_per_sec, 7);
        std::fs::write(&path, "[policies.commands]\nget = \"nosuchclass\"\n").unwrap();
        let err = Config::reload_policies(&config.args).unwrap_err();
        assert!(err.to_string().contains("nosuchclass"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn nodes_flag_is_comma_separated() {
        let cli = Cli::parse_from(["proxy", "--nodes", "a:1,b:2"]);
        assert_eq!(Config::load(cli.proxy).unwrap().nodes, vec!["a:1", "b:2"]);
    }
}
