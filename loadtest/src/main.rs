//! `rampart-loadtest` command line. Subcommands: `bench`, `populate`,
//! `incident`, `chaos` (in `chaos_cli.rs`).

mod chaos_cli;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rampart_loadtest::bench::{self, BenchConfig, StopAt};
use rampart_loadtest::conn::{ConnectOptions, Login};
use rampart_loadtest::incident::{
    self, abuser::Backoff, plot, report::CompareReport, IncidentConfig, NodeMetrics,
};
use rampart_loadtest::populate::{self, CollectionType, PopulateConfig};
use rampart_loadtest::report::RunSettings;
use rampart_loadtest::workload::{self, KeyPattern, Mix};
use rand::SeedableRng;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Rampart's proxy allows this many connections per client IP by default.
const DEFAULT_PER_IP_CAP: usize = 128;
/// `bench`'s default number of connections.
const DEFAULT_CONNECTIONS: usize = 8;

#[derive(Parser, Debug)]
#[command(
    name = "rampart-loadtest",
    version,
    about = "Load generator for Rampart (or any Redis-compatible endpoint)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command mix over N connections × P pipelined requests and report
    /// throughput, latency percentiles and errors.
    Bench(BenchArgs),
    /// Fill one big hash/set/zset/list (or N string keys) with pipelined
    /// multi-element commands.
    Populate(PopulateArgs),
    /// Reproduce the incident: a big stream, ordinary clients at a fixed
    /// rate, then an abusive host in an XREAD/KEYS/HGETALL loop, then
    /// recovery; per-phase latency, rejects and the nodes' Raft metrics.
    Incident(Box<IncidentArgs>),
    /// Start a cluster in network namespaces, run workloads that record
    /// histories while faults are injected (kill, pause, partition, clock,
    /// disk, proxy), then check the histories. Needs root. Exit status: 0
    /// clean, 1 anomalies (or no recovery), 2 harness error, 3 no verdict.
    Chaos(Box<chaos_cli::ChaosArgs>),
}

/// Connection options shared by the subcommands.
#[derive(Args, Debug, Clone)]
struct Endpoint {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    endpoint: String,
    /// Password, sent as `AUTH <password>` on every connection.
    #[arg(long, env = "RAMPART_LOADTEST_PASSWORD")]
    password: Option<String>,
    /// Connect timeout in seconds.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// A connection waiting this many seconds for a reply counts as broken.
    #[arg(long, default_value_t = 30.0)]
    reply_timeout: f64,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Hide the progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, short)]
    quiet: bool,
    /// RNG seed (keys, mix, values); random when not given.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Command template; repeat for a mix. Placeholders: __key__ (key index
    /// in 0..keyspace), __data__ (value-size bytes), __rand_int__.
    #[arg(long = "command", value_name = "TEMPLATE", required = true)]
    commands: Vec<String>,
    /// Weights of the --command templates, in order (default: equal).
    #[arg(long, value_delimiter = ',', value_name = "W,W,...")]
    weights: Vec<u32>,
    /// Concurrent connections.
    #[arg(long, short = 'c', default_value_t = DEFAULT_CONNECTIONS)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, short = 'P', default_value_t = 1)]
    pipeline: usize,
    /// Measured run length in seconds (default 10 unless --requests is set).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<f64>,
    /// Total measured requests over all connections.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Seconds of unmeasured load before the measured run.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// __key__ is drawn from 0..KEYSPACE.
    #[arg(long, default_value_t = 10_000)]
    keyspace: u64,
    /// How __key__ is drawn.
    #[arg(long, value_enum, default_value_t = KeyPattern::Random)]
    key_pattern: KeyPattern,
    /// Size of __data__ in bytes.
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    /// Local address(es) to connect from, round-robin over connections
    /// (comma-separated or repeated), e.g. 127.0.0.2,127.0.0.3.
    #[arg(long = "source-ip", alias = "source-ips", value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct PopulateArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// What to write.
    #[arg(long = "type", value_enum)]
    kind: CollectionType,
    /// The collection's key (for --type string: the key prefix, keys are KEY:i).
    #[arg(long)]
    key: String,
    /// Number of elements (or string keys).
    #[arg(long)]
    elements: u64,
    /// Index of the first element.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Elements per command.
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Commands in flight.
    #[arg(long, short = 'P', default_value_t = 4)]
    pipeline: usize,
    /// Value size in bytes (hash values, list elements, string values).
    #[arg(long, default_value_t = 32)]
    value_size: usize,
    /// Local address to connect from.
    #[arg(long)]
    source_ip: Option<IpAddr>,
    /// Also write a JSON summary to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct IncidentArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Small sizes for CI: --stream-entries 2000 --phase-secs 2
    /// --hash-fields 100 --cheap-keyspace 100 --cheap-rate 200
    /// --settle-secs 0 (each still overridable).
    #[arg(long)]
    smoke: bool,
    /// Entries in the big stream [default: 200000; smoke: 2000].
    #[arg(long)]
    stream_entries: Option<u64>,
    /// Bytes of each stream entry's value, hash value and string value.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Fields of the hash the abuser reads with HGETALL [default: 1000; smoke: 100].
    #[arg(long)]
    hash_fields: Option<u64>,
    /// String/counter keys of the ordinary clients [default: 10000; smoke: 100].
    #[arg(long)]
    cheap_keyspace: Option<u64>,
    /// Prefix of every key the scenario writes.
    #[arg(long, default_value = "incident")]
    key_prefix: String,
    /// Skip preparing when the stream and hash already have enough entries.
    #[arg(long)]
    reuse_data: bool,
    /// Pause between preparing and the baseline, seconds [default: 2; smoke: 0].
    #[arg(long)]
    settle_secs: Option<f64>,
    /// Length of each phase (baseline, abuse, recovery), whole seconds
    /// [default: 30; smoke: 2].
    #[arg(long)]
    phase_secs: Option<u64>,
    /// Ordinary-client connections.
    #[arg(long, default_value_t = 8)]
    cheap_clients: usize,
    /// Source addresses of the ordinary clients, round-robin; `none` = the
    /// kernel's choice.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5"
    )]
    cheap_source_ips: Vec<String>,
    /// Requests per second over all ordinary clients (fixed, open loop)
    /// [default: 1000; smoke: 200].
    #[arg(long)]
    cheap_rate: Option<f64>,
    /// Weights of the ordinary mix GET, SET, INCR, EVAL.
    #[arg(long, value_delimiter = ',', default_value = "50,20,20,10")]
    cheap_weights: Vec<u32>,
    /// Requests one ordinary connection may have in flight when replies lag.
    #[arg(long, default_value_t = 64)]
    cheap_max_inflight: usize,
    /// The ordinary clients log in as this ACL user (`USER:PASSWORD`).
    #[arg(long, value_name = "USER:PASSWORD")]
    cheap_user: Option<Login>,
    /// The abusive host logs in as this ACL user (`USER:PASSWORD`); with
    /// --cheap-user and one source address for both, two tenants behind
    /// one IP (admission by identity).
    #[arg(long, value_name = "USER:PASSWORD")]
    abuser_user: Option<Login>,
    /// Connections of the abusive host.
    #[arg(long, default_value_t = 37)]
    abusers: usize,
    /// The abusive host's source address; `none` = the kernel's choice.
    #[arg(long, default_value = "127.0.0.100")]
    abuser_source_ip: String,
    /// Weights of the abuser's XREAD, KEYS *, HGETALL.
    #[arg(long, value_delimiter = ',', default_value = "8,1,1")]
    abuser_weights: Vec<u32>,
    /// XREAD COUNT; 0 = no COUNT (every XREAD returns the whole stream).
    #[arg(long, default_value_t = 100)]
    xread_count: u64,
    /// On `-BUSY ... retry after Nms`: sleep N ms (`hint`) or retry at once.
    #[arg(long, value_enum, default_value_t = Backoff::Hint)]
    abuser_backoff: Backoff,
    /// Pause before the abuser reconnects after a reject, milliseconds.
    #[arg(long, default_value_t = 100)]
    abuser_reconnect_ms: u64,
    /// Storage nodes' metrics URLs, comma-separated; '' = none. Default:
    /// the nodes listed in the proxy's `INFO rampart`.
    #[arg(long)]
    node_metrics: Option<String>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency per second with the phases marked (.svg or .png).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// TrueType font for the plot's text (default: a system sans font).
    #[arg(long)]
    plot_font: Option<PathBuf>,
    /// Run the scenario a second time against this endpoint and compare.
    #[arg(long, alias = "compare-endpoint", value_name = "HOST:PORT")]
    compare: Option<String>,
    /// Password for the --compare endpoint (default: --password).
    #[arg(long)]
    compare_password: Option<String>,
    /// Node metrics for the --compare endpoint (default: its INFO rampart).
    #[arg(long)]
    compare_node_metrics: Option<String>,
    /// Name of the first run in the comparison.
    #[arg(long, default_value = "a")]
    name: String,
    /// Name of the second run in the comparison.
    #[arg(long, default_value = "b")]
    compare_name: String,
}

fn source_ips(list: &[String], what: &str) -> Result<Vec<IpAddr>> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && *s != "none")
        .map(|s| {
            s.parse()
                .with_context(|| format!("{what}: {s:?} is not an IP address"))
        })
        .collect()
}

fn node_metrics(flag: &Option<String>) -> NodeMetrics {
    match flag {
        None => NodeMetrics::Discover,
        Some(list) => NodeMetrics::Urls(
            list.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    }
}

fn incident_config(a: &IncidentArgs) -> Result<IncidentConfig> {
    let pick =
        |v: Option<u64>, full: u64, smoke: u64| v.unwrap_or(if a.smoke { smoke } else { full });
    let weights: [u32; 3] = a
        .abuser_weights
        .as_slice()
        .try_into()
        .context("--abuser-weights takes three weights: XREAD,KEYS,HGETALL")?;
    if a.cheap_weights.len() != 4 {
        bail!("--cheap-weights takes four weights: GET,SET,INCR,EVAL");
    }
    let phase_secs = pick(a.phase_secs, 30, 2);
    if phase_secs == 0 {
        bail!("--phase-secs must be at least 1");
    }
    Ok(IncidentConfig {
        connect: connect_options(&a.endpoint, None)?,
        key_prefix: a.key_prefix.clone(),
        stream_entries: pick(a.stream_entries, 200_000, 2_000),
        value_size: a.value_size,
        hash_fields: pick(a.hash_fields, 1_000, 100),
        cheap_keyspace: pick(a.cheap_keyspace, 10_000, 100),
        reuse_data: a.reuse_data,
        settle: secs(
            a.settle_secs.unwrap_or(if a.smoke { 0.0 } else { 2.0 }),
            "--settle-secs",
        )?,
        phase: Duration::from_secs(phase_secs),
        cheap_clients: a.cheap_clients,
        cheap_source_ips: source_ips(&a.cheap_source_ips, "--cheap-source-ips")?,
        cheap_login: a.cheap_user.clone(),
        abuser_login: a.abuser_user.clone(),
        cheap_rate: a.cheap_rate.unwrap_or(if a.smoke { 200.0 } else { 1000.0 }),
        cheap_weights: a.cheap_weights.clone(),
        cheap_max_inflight: a.cheap_max_inflight,
        abusers: a.abusers,
        abuser_source_ip: source_ips(
            std::slice::from_ref(&a.abuser_source_ip),
            "--abuser-source-ip",
        )?
        .first()
        .copied(),
        abuser_weights: weights,
        xread_count: a.xread_count,
        abuser_backoff: a.abuser_backoff,
        abuser_reconnect: Duration::from_millis(a.abuser_reconnect_ms),
        node_metrics: node_metrics(&a.node_metrics),
        reply_timeout: secs(a.endpoint.reply_timeout, "--reply-timeout")?,
        seed: seed(&a.endpoint),
        quiet: a.endpoint.quiet,
    })
}

fn run_incident(args: &IncidentArgs) -> Result<()> {
    let first = incident_config(args)?;
    let rt = runtime(&args.endpoint)?;
    let Some(other) = &args.compare else {
        let report = rt.block_on(incident::run(&first))?;
        report
            .write_table(&mut std::io::stdout().lock())
            .context("write the table")?;
        if let Some(path) = &args.json {
            write_json(path, &report)?;
        }
        if let Some(path) = &args.plot {
            plot::draw(
                path,
                &[(args.name.as_str(), &report)],
                args.plot_font.as_deref(),
            )?;
        }
        return Ok(());
    };
    if args.name == args.compare_name {
        bail!("--name and --compare-name must differ");
    }
    let mut second = first.clone();
    second.connect.endpoint = other.clone();
    if args.compare_password.is_some() {
        second.connect.password = args.compare_password.clone();
    }
    second.node_metrics = node_metrics(&args.compare_node_metrics);
    let a = rt.block_on(incident::run(&first))?;
    let b = rt.block_on(incident::run(&second))?;
    let report = CompareReport::new((args.name.clone(), a), (args.compare_name.clone(), b));
    report
        .write_table(&mut std::io::stdout().lock())
        .context("write the table")?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &args.plot {
        let runs = [
            (report.order[0].as_str(), report.first()),
            (report.order[1].as_str(), report.second()),
        ];
        plot::draw(path, &runs, args.plot_font.as_deref())?;
    }
    Ok(())
}

fn secs(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} must be a non-negative number"))
}

fn connect_options(e: &Endpoint, source_ip: Option<IpAddr>) -> Result<ConnectOptions> {
    Ok(ConnectOptions {
        endpoint: e.endpoint.clone(),
        source_ip,
        password: e.password.clone(),
        connect_timeout: secs(e.connect_timeout, "--connect-timeout")?,
    })
}

fn seed(e: &Endpoint) -> u64 {
    e.seed.unwrap_or_else(rand::random)
}

fn runtime(e: &Endpoint) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = e.threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build().context("start the tokio runtime")
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("serialize the report")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn run_bench(args: BenchArgs) -> Result<()> {
    if args.connections == 0 || args.pipeline == 0 {
        bail!("--connections and --pipeline must be at least 1");
    }
    let stop = match (args.duration, args.requests) {
        (_, Some(n)) => StopAt::Requests(n),
        (Some(d), None) => StopAt::Duration(secs(d, "--duration")?),
        (None, None) => StopAt::Duration(Duration::from_secs(10)),
    };
    let seed = seed(&args.endpoint);
    let data = workload::random_data(
        args.value_size,
        &mut rand::rngs::StdRng::seed_from_u64(seed),
    );
    let mix = Mix::new(
        &args.commands,
        &args.weights,
        args.keyspace,
        args.key_pattern,
        data,
    )
    .context("invalid --command/--weights")?;
    let mut distinct = args.source_ips.clone();
    distinct.sort();
    distinct.dedup();
    if !args.endpoint.quiet && args.connections > DEFAULT_PER_IP_CAP * distinct.len().max(1) {
        eprintln!(
            "note: {} connections from {} source address(es): Rampart's proxy accepts {} per \
             client IP by default; spread them with --source-ip 127.0.0.2,127.0.0.3,... or \
             start the proxy with a higher --per-ip-max-connections (0 = unlimited)",
            args.connections,
            distinct.len().max(1),
            DEFAULT_PER_IP_CAP
        );
    }
    let settings = RunSettings {
        endpoint: args.endpoint.endpoint.clone(),
        connections: args.connections,
        pipeline: args.pipeline,
        keyspace: args.keyspace,
        key_pattern: args.key_pattern,
        value_size: args.value_size,
        warmup_secs: args.warmup,
        duration_secs: match stop {
            StopAt::Duration(d) => Some(d.as_secs_f64()),
            StopAt::Requests(_) => None,
        },
        requests: args.requests,
        source_ips: args.source_ips.iter().map(|ip| ip.to_string()).collect(),
    };
    let cfg = BenchConfig {
        connect: connect_options(&args.endpoint, None)?,
        source_ips: args.source_ips.clone(),
        connections: args.connections,
        pipeline: args.pipeline,
        stop,
        warmup: secs(args.warmup, "--warmup")?,
        reply_timeout: secs(args.endpoint.reply_timeout, "--reply-timeout")?,
        seed,
        quiet: args.endpoint.quiet,
    };
    let report = runtime(&args.endpoint)?.block_on(bench::run(cfg, Arc::new(mix), settings))?;
    report
        .write_table(&mut std::io::stdout().lock())
        .context("write the table")?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if report.total.ops == 0 {
        eprintln!("warning: no replies were received in the measured run");
    } else if report.total.errors >= report.total.ops {
        eprintln!("warning: every reply was an error");
    }
    Ok(())
}

fn run_populate(args: PopulateArgs) -> Result<()> {
    let cfg = PopulateConfig {
        connect: connect_options(&args.endpoint, args.source_ip)?,
        kind: args.kind,
        key: args.key.clone(),
        elements: args.elements,
        start: args.start,
        batch: args.batch,
        pipeline: args.pipeline,
        value_size: args.value_size,
        reply_timeout: secs(args.endpoint.reply_timeout, "--reply-timeout")?,
        seed: seed(&args.endpoint),
        quiet: args.endpoint.quiet,
    };
    let report = runtime(&args.endpoint)?.block_on(populate::run(&cfg))?;
    println!(
        "populated {} {}: {} elements in {} commands, {:.2} s ({:.0} elements/s)",
        format!("{:?}", report.kind).to_lowercase(),
        report.key,
        report.elements,
        report.commands,
        report.elapsed_secs,
        report.elements_per_sec
    );
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => run_bench(args),
        Command::Populate(args) => run_populate(args),
        Command::Incident(args) => run_incident(&args),
        Command::Chaos(args) => std::process::exit(chaos_cli::run(*args)),
    }
}
