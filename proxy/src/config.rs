//! Proxy configuration: flags, environment and an optional TOML file.
//! Precedence: flag > environment variable > config file > built-in default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rampart_policies::config::{
    AdmissionConfig, ProxyProtocolConfig, DEFAULT_PER_IP_MAX, DEFAULT_REJECT_RATE_PER_SEC,
};
use rampart_policies::PolicyConfig;
use rampart_proto::cluster_tls::ClusterSecurity;
use rampart_proto::redis_config::{self, Change, Scope};

use crate::error::ProxyError;
use crate::tls::{AuthClients, TlsFiles};
use rampart_proto::limits::{DEFAULT_MAX_BULK_LEN, MAX_REPLICATED_BYTES, MIN_MAX_BULK_LEN};

/// Room for one maximal bulk plus the rest of its command line (Redis's
/// `client-query-buffer-limit` is 1 GB, sized for its 512 MiB bulks).
/// Raised to `--max-bulk-len` + 1 MiB when that is larger.
pub const DEFAULT_MAX_QUERY_BUFFER: u64 = DEFAULT_MAX_BULK_LEN as u64 + 64 * 1024 * 1024;
/// Redis's `client-output-buffer-limit normal` is `0 0 0` (unlimited); a
/// proxy shares its memory among all clients, so by default one client may
/// have at most this many reply bytes pending before it is disconnected:
/// two maximal node replies (`--max-reply-bytes` of the nodes).
pub const DEFAULT_OUTPUT_BUFFER_LIMIT: u64 = 256 << 20;
/// Reply bytes a client may keep pending for at most
/// `DEFAULT_OUTPUT_BUFFER_SOFT_SECONDS`.
pub const DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT: u64 = 64 << 20;
pub const DEFAULT_OUTPUT_BUFFER_SOFT_SECONDS: u64 = 60;

rampart_proto::settings! {
    /// Command-line arguments of the proxy. Embedded by the launcher
    /// (`rampart proxy ...`) through `#[command(flatten)]`.
    ///
    /// Every field is optional so a config file can fill what flags and the
    /// environment leave unset; defaults are listed in each help text.
    pub struct ProxyArgs;
    /// The config file. `nodes` is a TOML array of "host:port" strings.
    file struct FileConfig {
        policies: Option<PolicyConfig>,
        /// Redis `CONFIG` parameters of this proxy (`timeout = "300"`),
        /// written by `CONFIG REWRITE` (docs/config.md).
        redis: Option<std::collections::BTreeMap<String, toml::Value>>,
    }
    /// Flags, environment and file merged, declared defaults applied.
    layered struct Layered;

    /// Address to accept Redis clients on
    listen: SocketAddr, env "RAMPART_PROXY_LISTEN", file,
        default SocketAddr::from(([127, 0, 0, 1], 6379));
    /// Port to accept TLS clients on, at the --listen IP (Redis tls-port);
    /// with it, --listen HOST:0 turns the plaintext listener off
    tls_port: u16, env "RAMPART_TLS_PORT", file, unset "off";
    /// PEM certificate (chain) the TLS listener serves; re-read on SIGHUP
    tls_cert_file: PathBuf, env "RAMPART_TLS_CERT_FILE", file, unset "none";
    /// PEM private key of --tls-cert-file; re-read on SIGHUP
    tls_key_file: PathBuf, env "RAMPART_TLS_KEY_FILE", file, unset "none";
    /// PEM CA certificate(s) client certificates are verified against
    tls_ca_cert_file: PathBuf, env "RAMPART_TLS_CA_CERT_FILE", file, unset "none";
    /// Client certificates: yes = required and verified, optional =
    /// verified if presented, no = not requested
    tls_auth_clients: AuthClients, env "RAMPART_TLS_AUTH_CLIENTS", file, default AuthClients::Yes;
    /// Client (Kv gRPC) addresses of the storage nodes, comma-separated
    #[arg(value_delimiter = ',')]
    nodes: Vec<String>, env "RAMPART_NODES", file,
        default ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"].map(String::from).to_vec();
    /// Password clients must send with AUTH/HELLO before other commands
    #[arg(hide_env_values = true)]
    requirepass: String, env "RAMPART_REQUIREPASS", file, unset "none";
    /// How long a batch is retried across nodes before -CLUSTERDOWN
    retry_deadline_ms: u64, env "RAMPART_RETRY_DEADLINE_MS", file, default 5000;
    /// Largest bulk string a client may send (Redis proto-max-bulk-len);
    /// writes over the 16 MiB Raft entry limit are refused whatever it is
    max_bulk_len: u64, env "RAMPART_MAX_BULK_LEN", file, default DEFAULT_MAX_BULK_LEN as u64;
    /// Largest unprocessed query per connection before it is closed
    max_query_buffer: u64, env "RAMPART_MAX_QUERY_BUFFER", file, unset DEFAULT_MAX_QUERY_BUFFER;
    /// On SIGINT/SIGTERM, how long connections may finish in-flight work
    drain_timeout_ms: u64, env "RAMPART_DRAIN_TIMEOUT_MS", file, default 10_000;
    /// TOML file with the same keys (listen, tls_port, tls_cert_file,
    /// tls_key_file, tls_ca_cert_file, tls_auth_clients, nodes, requirepass,
    /// retry_deadline_ms,
    /// max_bulk_len, max_query_buffer, drain_timeout_ms, metrics_addr,
    /// pubsub_output_buffer_limit, pubsub_output_buffer_soft_limit,
    /// pubsub_output_buffer_soft_seconds, client_output_buffer_limit,
    /// client_output_buffer_soft_limit, client_output_buffer_soft_seconds,
    /// cluster_tls_ca_file, cluster_tls_cert_file, cluster_tls_key_file,
    /// insecure) and the sections [policies] (docs/policies.md; re-read on
    /// SIGHUP and when it changes) and [redis] (the proxy's CONFIG
    /// parameters, docs/config.md)
    config: PathBuf, env "RAMPART_PROXY_CONFIG", no_file, no_default;
    /// Admission and isolation policies on or off
    policies: bool, env "RAMPART_POLICIES", file "policies.enabled",
        unset PolicyConfig::default().enabled;
    /// Open connections per client IP, 0 = unlimited
    per_ip_max_connections: u32, env "RAMPART_PER_IP_MAX_CONNECTIONS",
        file "policies.connections.per_ip_max", unset DEFAULT_PER_IP_MAX;
    /// Rejected connects per second per IP before rejects become TCP resets
    reject_rate_per_sec: u32, env "RAMPART_REJECT_RATE_PER_SEC",
        file "policies.connections.reject_rate_per_sec", unset DEFAULT_REJECT_RATE_PER_SEC;
    /// Commands executing at once across all clients, 0 = unlimited
    max_in_flight: u64, env "RAMPART_MAX_IN_FLIGHT", file "policies.inflight.max",
        unset "4096 x CPUs, at least 8192";
    /// Concurrent heavy-class commands
    heavy_max: u32, env "RAMPART_HEAVY_MAX", file "policies.classes.heavy.max",
        unset "2 x CPUs";
    /// How long a command may wait for a slot of its class before -BUSY
    class_wait_ms: u64, env "RAMPART_CLASS_WAIT_MS", file "policies.admission.wait_ms",
        unset AdmissionConfig::default().wait_ms;
    /// Expect a PROXY protocol v1/v2 header on every connection from the
    /// trusted peers
    proxy_protocol: bool, env "RAMPART_PROXY_PROTOCOL", file "policies.proxy_protocol.enabled",
        unset ProxyProtocolConfig::default().enabled;
    /// Load balancers (IP addresses or CIDR ranges, comma-separated) whose
    /// PROXY protocol header is believed; a header from any other peer is
    /// not read (docs/policies.md)
    #[arg(value_delimiter = ',')]
    proxy_protocol_trusted: Vec<String>, env "RAMPART_PROXY_PROTOCOL_TRUSTED",
        file "policies.proxy_protocol.trusted", unset "none";
    /// Serve Prometheus metrics on http://ADDR/metrics (metrics_addr)
    metrics_addr: SocketAddr, env "RAMPART_METRICS_ADDR", file, unset "off";
    /// Bytes of pub/sub messages a client may have pending (queued or not yet
    /// written) before it is disconnected, 0 = unlimited; Redis's
    /// `client-output-buffer-limit pubsub` hard limit
    pubsub_output_buffer_limit: u64, env "RAMPART_PUBSUB_OUTPUT_BUFFER_LIMIT", file,
        default crate::pubsub::DEFAULT_OUTPUT_BUFFER_LIMIT;
    /// Pending pub/sub bytes a client may stay above for at most
    /// --pubsub-output-buffer-soft-seconds before it is disconnected,
    /// 0 = no soft limit; Redis's pubsub soft limit
    pubsub_output_buffer_soft_limit: u64, env "RAMPART_PUBSUB_OUTPUT_BUFFER_SOFT_LIMIT", file,
        default crate::pubsub::DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT;
    /// Seconds a client may stay above the soft limit
    pubsub_output_buffer_soft_seconds: u64, env "RAMPART_PUBSUB_OUTPUT_BUFFER_SOFT_SECONDS", file,
        default crate::pubsub::DEFAULT_OUTPUT_BUFFER_SOFT_SECONDS;
    /// Reply bytes a normal client may have pending (built, not yet
    /// written) before it is disconnected, 0 = unlimited; Redis's
    /// `client-output-buffer-limit normal` hard limit
    client_output_buffer_limit: u64, env "RAMPART_CLIENT_OUTPUT_BUFFER_LIMIT", file,
        default DEFAULT_OUTPUT_BUFFER_LIMIT;
    /// Pending reply bytes a client may stay above for at most
    /// --client-output-buffer-soft-seconds before it is disconnected,
    /// 0 = no soft limit
    client_output_buffer_soft_limit: u64, env "RAMPART_CLIENT_OUTPUT_BUFFER_SOFT_LIMIT", file,
        default DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT;
    /// Seconds a client may stay above the soft output limit
    client_output_buffer_soft_seconds: u64, env "RAMPART_CLIENT_OUTPUT_BUFFER_SOFT_SECONDS", file,
        default DEFAULT_OUTPUT_BUFFER_SOFT_SECONDS;
    /// The cluster CA certificate (PEM): the proxy dials the nodes with
    /// mutual TLS and accepts only node certificates it signed
    /// (docs/security.md; not the client-facing TLS)
    cluster_tls_ca_file: PathBuf, env "RAMPART_CLUSTER_TLS_CA_FILE", file, unset "none";
    /// The proxy's certificate (PEM) for the nodes, signed by the cluster CA
    /// with the proxy role (`rampart certs` makes one)
    cluster_tls_cert_file: PathBuf, env "RAMPART_CLUSTER_TLS_CERT_FILE", file, unset "none";
    /// The private key of --cluster-tls-cert-file (PEM)
    cluster_tls_key_file: PathBuf, env "RAMPART_CLUSTER_TLS_KEY_FILE", file, unset "none";
    /// Talk to the nodes in plaintext, without certificates (logs a warning);
    /// without it and without the --cluster-tls-* files the proxy refuses to
    /// start. Clients still connect as configured
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    insecure: bool, env "RAMPART_INSECURE", file, default false;
}

/// Redis's `client-output-buffer-limit <class> <hard> <soft> <seconds>`:
/// 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_for: Duration,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The TLS client listener, if on.
    pub tls: Option<TlsListen>,
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
    /// A normal client's pending reply bytes (Redis's
    /// `client-output-buffer-limit normal`); see `connection.rs`.
    pub client_output: OutputLimit,
    /// The config file used, reported by INFO.
    pub config_file: Option<PathBuf>,
    /// `[policies]` with flag/env overrides applied (checked: it resolves).
    pub policies: PolicyConfig,
    /// What the process was started with, to re-apply on reload.
    pub args: ProxyArgs,
    /// Mutual TLS to the nodes, `--insecure`, or neither (`Server::bind`
    /// refuses that).
    pub cluster_security: ClusterSecurity,
    /// The file's `[redis]` section: this proxy's `CONFIG` parameters.
    pub redis: Vec<Change>,
}

/// `--tls-port` and the files it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListen {
    pub addr: SocketAddr,
    pub files: TlsFiles,
}

impl Config {
    /// Whether the plaintext listener is on: `--listen HOST:0` turns it off
    /// when a TLS port is set (Redis's `port 0`). Without TLS, port 0 keeps
    /// its usual meaning (any free port) so there is always a listener.
    pub fn plaintext(&self) -> bool {
        self.tls.is_none() || self.listen.port() != 0
    }

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
        let redis = redis_section(file.redis.take().unwrap_or_default())?;
        let s = args.layer(file);
        let nodes: Vec<String> = s
            .nodes
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if nodes.is_empty() {
            return Err(ProxyError::Config("--nodes lists no node address".into()));
        }
        let max_bulk_len = s.max_bulk_len;
        if max_bulk_len < MIN_MAX_BULK_LEN as u64 {
            return Err(ProxyError::Config(format!(
                "max_bulk_len ({max_bulk_len}) is below the minimum of {MIN_MAX_BULK_LEN}"
            )));
        }
        if max_bulk_len > MAX_REPLICATED_BYTES as u64 {
            tracing::warn!(
                max_bulk_len,
                raft_limit = MAX_REPLICATED_BYTES,
                "max_bulk_len is above the Raft entry limit: writes with longer arguments are \
                 refused anyway, and each connection may buffer that much"
            );
        }
        let max_query_buffer = s
            .max_query_buffer
            .unwrap_or(DEFAULT_MAX_QUERY_BUFFER.max(max_bulk_len + 1024 * 1024));
        if max_query_buffer < max_bulk_len {
            return Err(ProxyError::Config(format!(
                "max_query_buffer ({max_query_buffer}) is smaller than max_bulk_len ({max_bulk_len})"
            )));
        }
        let size = |value: u64, name: &str| {
            usize::try_from(value).map_err(|_| ProxyError::Config(format!("{name} too large")))
        };
        let tls = match s.tls_port.filter(|&port| port != 0) {
            None => None,
            Some(port) => {
                let need = |value: Option<PathBuf>, flag: &str| {
                    value.ok_or_else(|| ProxyError::Config(format!("--tls-port needs {flag}")))
                };
                let files = TlsFiles {
                    cert_file: need(s.tls_cert_file, "--tls-cert-file")?,
                    key_file: need(s.tls_key_file, "--tls-key-file")?,
                    ca_cert_file: s.tls_ca_cert_file,
                    auth_clients: s.tls_auth_clients,
                };
                if files.auth_clients != AuthClients::No && files.ca_cert_file.is_none() {
                    return Err(ProxyError::Config(format!(
                        "--tls-auth-clients {} needs --tls-ca-cert-file",
                        files.auth_clients
                    )));
                }
                Some(TlsListen {
                    addr: SocketAddr::new(s.listen.ip(), port),
                    files,
                })
            }
        };
        let cluster_security = ClusterSecurity::from_settings(
            s.cluster_tls_ca_file,
            s.cluster_tls_cert_file,
            s.cluster_tls_key_file,
            s.insecure,
        )
        .map_err(|e| ProxyError::Config(e.to_string()))?;
        Ok(Config {
            listen: s.listen,
            tls,
            nodes,
            requirepass: s.requirepass.filter(|p| !p.is_empty()),
            retry_deadline: Duration::from_millis(s.retry_deadline_ms),
            max_bulk_len: size(max_bulk_len, "max_bulk_len")?,
            max_query_buffer: size(max_query_buffer, "max_query_buffer")?,
            drain_timeout: Duration::from_millis(s.drain_timeout_ms),
            metrics_addr: s.metrics_addr,
            pubsub_output_buffer_limit: size(
                s.pubsub_output_buffer_limit,
                "pubsub_output_buffer_limit",
            )?,
            pubsub_output_buffer_soft_limit: size(
                s.pubsub_output_buffer_soft_limit,
                "pubsub_output_buffer_soft_limit",
            )?,
            pubsub_output_buffer_soft_seconds: s.pubsub_output_buffer_soft_seconds,
            client_output: OutputLimit {
                hard: size(s.client_output_buffer_limit, "client_output_buffer_limit")?,
                soft: size(
                    s.client_output_buffer_soft_limit,
                    "client_output_buffer_soft_limit",
                )?,
                soft_for: Duration::from_secs(s.client_output_buffer_soft_seconds),
            },
            config_file: args.config.clone(),
            policies,
            args,
            cluster_security,
            redis,
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

/// Checks the `[redis]` section: parameters of this proxy only (cluster
/// ones are set with `CONFIG SET` and kept by the cluster), with values
/// `CONFIG SET` would accept (strings; integers and booleans are taken as
/// Redis writes them).
fn redis_section(
    section: std::collections::BTreeMap<String, toml::Value>,
) -> Result<Vec<Change>, ProxyError> {
    let bad = |name: &str, why: String| ProxyError::Config(format!("[redis] {name}: {why}"));
    section
        .into_iter()
        .map(|(name, value)| {
            let param = redis_config::lookup(name.as_bytes())
                .ok_or_else(|| bad(&name, "not a CONFIG parameter Rampart knows".into()))?;
            if param.scope != Scope::Proxy || !param.mutable {
                return Err(bad(
                    &name,
                    "not a parameter of the proxy (cluster parameters are set with CONFIG SET)"
                        .into(),
                ));
            }
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => (if b { "yes" } else { "no" }).to_string(),
                other => return Err(bad(&name, format!("unexpected value {other}"))),
            };
            let value =
                redis_config::normalize(param, text.as_bytes()).map_err(|why| bad(&name, why))?;
            Ok(Change { param, value })
        })
        .collect()
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
    if let Some(trusted) = &args.proxy_protocol_trusted {
        policies.proxy_protocol.trusted = trusted
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
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
        assert_eq!(config.max_bulk_len, 16 << 20);
        assert_eq!(config.client_output.hard, 256 << 20);
        assert_eq!(config.client_output.soft, 64 << 20);
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
    fn help_shows_every_flag_env_and_default() {
        use clap::CommandFactory;
        let help = Cli::command().term_width(0).render_help().to_string();
        for setting in ProxyArgs::settings() {
            for shown in [
                setting.flag(),
                format!("[env: {}", setting.env),
                setting
                    .default
                    .map(|d| format!("[default: {d}]"))
                    .unwrap_or_default(),
            ] {
                assert!(help.contains(&shown), "{shown} missing from:\n{help}");
            }
        }
        for shown in [
            "[default: 127.0.0.1:6379]",
            "[default: 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103]",
            "(policies.connections.per_ip_max) [default: 128]",
            "[default: 83886080]",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
    }

    #[test]
    fn config_help_lists_the_file_keys() {
        let keys: Vec<&str> = ProxyArgs::settings()
            .iter()
            .filter_map(|s| s.file_key.filter(|key| *key == s.name))
            .collect();
        let config = ProxyArgs::settings()
            .into_iter()
            .find(|s| s.name == "config")
            .expect("--config");
        assert!(
            config
                .doc
                .contains(&format!("same keys ({}) and", keys.join(", "))),
            "{}",
            config.doc
        );
    }

    #[test]
    fn operations_doc_lists_every_setting() {
        let doc = include_str!("../../docs/operations.md");
        rampart_proto::settings::check_doc_table(
            doc,
            "### `rampart-proxy` (or `rampart proxy`)",
            &ProxyArgs::settings(),
        )
        .unwrap_or_else(|e| panic!("docs/operations.md: {e}"));
    }

    #[test]
    fn tls_needs_a_certificate_a_key_and_a_ca_to_verify_clients() {
        let load = |args: &[&str]| {
            let mut argv = vec!["proxy"];
            argv.extend_from_slice(args);
            Config::load(Cli::parse_from(argv).proxy)
        };
        let off = load(&[]).unwrap();
        assert!(off.tls.is_none() && off.plaintext());
        let err = load(&["--tls-port", "6380"]).unwrap_err();
        assert!(err.to_string().contains("--tls-cert-file"), "{err}");
        let files = [
            "--tls-port",
            "6380",
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
        ];
        let err = load(&files).unwrap_err();
        assert!(err.to_string().contains("--tls-ca-cert-file"), "{err}");
        let mut no_auth = files.to_vec();
        no_auth.extend(["--tls-auth-clients", "no"]);
        let config = load(&no_auth).unwrap();
        let tls = config.tls.as_ref().unwrap();
        assert_eq!(tls.addr.to_string(), "127.0.0.1:6380");
        assert_eq!(tls.files.auth_clients, AuthClients::No);
        assert!(config.plaintext());
        // Redis's `port 0`: the plaintext listener off, TLS only.
        no_auth.extend(["--listen", "0.0.0.0:0"]);
        let tls_only = load(&no_auth).unwrap();
        assert!(!tls_only.plaintext());
        assert_eq!(tls_only.tls.unwrap().addr.to_string(), "0.0.0.0:6380");
        // --tls-port 0 is off, as in Redis.
        assert!(load(&["--tls-port", "0"]).unwrap().tls.is_none());
        assert!(Cli::try_parse_from(["proxy", "--tls-auth-clients", "maybe"]).is_err());
    }

    #[test]
    fn proxy_protocol_trusts_only_the_listed_balancers() {
        let cli = Cli::parse_from([
            "proxy",
            "--proxy-protocol",
            "true",
            "--proxy-protocol-trusted",
            "10.0.0.5, 10.1.0.0/16",
        ]);
        let config = Config::load(cli.proxy).unwrap();
        assert_eq!(
            config.policies.proxy_protocol.trusted,
            vec!["10.0.0.5", "10.1.0.0/16"]
        );
        let on_alone = Cli::parse_from(["proxy", "--proxy-protocol", "true"]);
        let err = Config::load(on_alone.proxy).unwrap_err();
        assert!(err.to_string().contains("proxy_protocol.trusted"), "{err}");
    }

    #[test]
    fn nodes_flag_is_comma_separated() {
        let cli = Cli::parse_from(["proxy", "--nodes", "a:1,b:2"]);
        assert_eq!(Config::load(cli.proxy).unwrap().nodes, vec!["a:1", "b:2"]);
    }
}
