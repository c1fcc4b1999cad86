//! `rampart-loadtest` command line. Subcommands: `bench`, `populate`
//! (`incident` will join them).

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rampart_loadtest::bench::{self, BenchConfig, StopAt};
use rampart_loadtest::conn::ConnectOptions;
use rampart_loadtest::populate::{self, CollectionType, PopulateConfig};
use rampart_loadtest::report::RunSettings;
use rampart_loadtest::workload::{self, KeyPattern, Mix};
use rand::SeedableRng;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Rampart's proxy allows this many connections per client IP by default.
const DEFAULT_PER_IP_CAP: usize = 8;

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
    #[arg(long, short = 'c', default_value_t = DEFAULT_PER_IP_CAP)]
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
    }
}
