//! `rampart-loadtest incident`: the outage of SPEC §1 against any RESP
//! endpoint.
//!
//! 1. Prepare: a big stream, a hash and the ordinary clients' keys
//!    ([`prepare`]).
//! 2. Three phases of `phase` seconds each: **baseline** (ordinary clients
//!    only, [`cheap`]), **abuse** (plus the abusive host, [`abuser`]) and
//!    **recovery** (ordinary clients only again).
//! 3. The storage nodes' `/metrics` are scraped every second from the
//!    start of the baseline ([`nodes`]); a phase's Raft numbers are the
//!    difference between the scrapes at its start and its end.
//!
//! The result is an [`report::IncidentReport`]: the per-phase summary of
//! the issue, details, and a per-second timeline for the plot ([`plot`]).

pub mod abuser;
pub mod cheap;
pub mod nodes;
pub mod plot;
pub mod prepare;
pub mod report;

use crate::conn::{ConnectOptions, Login};
use crate::progress;
use crate::workload::{KeyPattern, Mix};
use abuser::{Abuser, AbuserCommands, AbuserOutcome, Backoff};
use cheap::{CheapClient, CheapOutcome};
use nodes::Sample;
use rand::rngs::StdRng;
use rand::SeedableRng;
use report::IncidentReport;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// baseline, abuse, recovery.
pub const PHASES: usize = 3;
pub const PHASE_NAMES: [&str; PHASES] = ["baseline", "abuse", "recovery"];

/// Lead time between spawning the clients and the start of the baseline,
/// so every task is waiting when the clock starts.
const START_LEAD: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error(transparent)]
    Probe(#[from] crate::bench::BenchError),
    #[error("preparing the data on {endpoint}: {source}")]
    Prepare {
        endpoint: String,
        #[source]
        source: crate::conn::ConnError,
    },
    #[error("invalid ordinary-client mix: {0}")]
    Mix(#[from] crate::workload::WorkloadError),
    #[error("{0}")]
    Config(String),
    #[error("cannot start the abuser's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The scenario's timeline: `t0` is the start of the baseline.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub t0: Instant,
    pub phase: Duration,
}

impl Clock {
    /// Phase index (0..3) of an instant; before t0 counts as baseline,
    /// after the end as recovery.
    pub fn phase_of(&self, at: Instant) -> usize {
        let offset = at.saturating_duration_since(self.t0).as_secs_f64();
        ((offset / self.phase.as_secs_f64()) as usize).min(PHASES - 1)
    }

    pub fn phase_bounds(&self, phase: usize) -> (Instant, Instant) {
        (
            self.t0 + self.phase * phase as u32,
            self.t0 + self.phase * (phase as u32 + 1),
        )
    }

    pub fn end(&self) -> Instant {
        self.t0 + self.phase * PHASES as u32
    }

    /// Whole seconds in the run (the timeline's length).
    pub fn seconds(&self) -> usize {
        (self.phase * PHASES as u32).as_secs_f64().ceil() as usize
    }

    pub fn second_of(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.t0).as_secs() as usize
    }
}

/// Live totals for the progress bar.
#[derive(Debug, Default)]
pub struct Counters {
    pub cheap_ops: AtomicU64,
    pub cheap_errors: AtomicU64,
    pub abuser_ops: AtomicU64,
    pub abuser_busy: AtomicU64,
    pub abuser_rejects: AtomicU64,
}

/// Key names, all under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    pub prefix: String,
    pub stream: String,
    pub hash: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            stream: format!("{prefix}:stream"),
            hash: format!("{prefix}:hash"),
        }
    }

    pub fn string(&self, i: u64) -> String {
        format!("{}:str:{i}", self.prefix)
    }
}

/// Where the node metrics come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeMetrics {
    /// The proxy's `INFO rampart` section.
    Discover,
    /// These URLs (empty: no node metrics).
    Urls(Vec<String>),
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct IncidentConfig {
    /// Endpoint, password, connect timeout (`source_ip` unused).
    pub connect: ConnectOptions,
    pub key_prefix: String,
    pub stream_entries: u64,
    pub value_size: usize,
    pub hash_fields: u64,
    pub cheap_keyspace: u64,
    pub reuse_data: bool,
    pub settle: Duration,
    pub phase: Duration,
    pub cheap_clients: usize,
    pub cheap_source_ips: Vec<IpAddr>,
    /// The ordinary clients log in as this ACL user.
    pub cheap_login: Option<Login>,
    /// Requests per second over all ordinary clients.
    pub cheap_rate: f64,
    /// Weights of GET, SET, INCR, EVAL.
    pub cheap_weights: Vec<u32>,
    pub cheap_max_inflight: usize,
    pub abusers: usize,
    pub abuser_source_ip: Option<IpAddr>,
    /// The abusive host logs in as this ACL user.
    pub abuser_login: Option<Login>,
    /// Weights of XREAD, KEYS *, HGETALL.
    pub abuser_weights: [u32; 3],
    pub xread_count: u64,
    pub abuser_backoff: Backoff,
    pub abuser_reconnect: Duration,
    pub node_metrics: NodeMetrics,
    pub reply_timeout: Duration,
    pub seed: u64,
    pub quiet: bool,
}

impl IncidentConfig {
    /// The ordinary clients' command templates, in `cheap_weights` order.
    pub fn cheap_commands(&self) -> Vec<String> {
        let p = &self.key_prefix;
        vec![
            format!("GET {p}:str:__key__"),
            format!("SET {p}:str:__key__ __data__"),
            format!("INCR {p}:ctr:__key__"),
            format!("EVAL \"return redis.call('GET', KEYS[1])\" 1 {p}:str:__key__"),
        ]
    }

    fn validate(&self) -> Result<(), IncidentError> {
        let bad = |m: &str| Err(IncidentError::Config(m.to_string()));
        if self.phase.is_zero() {
            return bad("--phase-secs must be above 0");
        }
        if self.cheap_clients == 0 || !self.cheap_rate.is_finite() || self.cheap_rate <= 0.0 {
            return bad("--cheap-clients and --cheap-rate must be above 0");
        }
        if self.abuser_weights.iter().all(|&w| w == 0) {
            return bad("--abuser-weights must not all be 0");
        }
        if self.cheap_keyspace == 0 {
            return bad("--cheap-keyspace must be at least 1");
        }
        Ok(())
    }
}

/// Per-second scrapes of every node (index = second; `None` = that scrape
/// has no result for the node).
type Scrapes = Vec<Vec<Option<Sample>>>;

async fn scrape_all(urls: &[String]) -> Vec<Option<Sample>> {
    let handles: Vec<_> = urls
        .iter()
        .map(|u| {
            let u = u.clone();
            tokio::spawn(
                async move { nodes::fetch(&u).await.ok().map(|t| nodes::parse_sample(&t)) },
            )
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.ok().flatten());
    }
    out
}

/// Scrapes at t0, t0+1s, ... t0+3×phase (each tick in its own task, so a
/// slow node delays no later tick).
async fn scraper(urls: Arc<Vec<String>>, clock: Clock) -> Scrapes {
    let ticks = clock.seconds() + 1;
    let mut handles = Vec::with_capacity(ticks);
    for k in 0..ticks {
        let at = (clock.t0 + Duration::from_secs(k as u64)).min(clock.end());
        let urls = Arc::clone(&urls);
        handles.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            scrape_all(&urls).await
        }));
    }
    let mut out = Vec::with_capacity(ticks);
    for h in handles {
        out.push(h.await.unwrap_or_default());
    }
    out
}

/// Resolves the metrics URLs; a failed discovery is a warning, not fatal.
pub async fn node_urls(cfg: &IncidentConfig) -> (Vec<String>, Option<String>) {
    match &cfg.node_metrics {
        NodeMetrics::Urls(urls) => (urls.clone(), None),
        NodeMetrics::Discover => match nodes::discover(&cfg.connect).await {
            Ok(urls) if urls.is_empty() => (
                urls,
                Some(format!(
                    "{} lists no node metrics URL in INFO rampart (not a Rampart proxy, or \
                     nodes without --metrics-addr): Raft columns will be empty",
                    cfg.connect.endpoint
                )),
            ),
            Ok(urls) => (urls, None),
            Err(e) => (
                Vec::new(),
                Some(format!(
                    "INFO rampart failed ({e}): Raft columns will be empty"
                )),
            ),
        },
    }
}

/// Runs the whole scenario once.
pub async fn run(cfg: &IncidentConfig) -> Result<IncidentReport, IncidentError> {
    cfg.validate()?;
    let endpoint = cfg.connect.endpoint.clone();
    let mut probe_opts = cfg.connect.clone();
    probe_opts.source_ip = None;
    drop(crate::bench::probe(&probe_opts).await?);

    let (urls, warning) = node_urls(cfg).await;
    if let Some(w) = &warning {
        if !cfg.quiet {
            eprintln!("note: {w}");
        }
    }

    let keys = Keys::new(&cfg.key_prefix);
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let value = crate::workload::random_data(cfg.value_size, &mut rng);
    if !cfg.quiet {
        eprintln!(
            "[{endpoint}] preparing {} stream entries, {} hash fields, {} keys",
            cfg.stream_entries, cfg.hash_fields, cfg.cheap_keyspace
        );
    }
    let prepared = prepare::run(&prepare::PrepareSpec {
        connect: &probe_opts,
        keys: &keys,
        stream_entries: cfg.stream_entries,
        hash_fields: cfg.hash_fields,
        string_keys: cfg.cheap_keyspace,
        value: &value,
        reuse: cfg.reuse_data,
        reply_timeout: cfg.reply_timeout,
        quiet: cfg.quiet,
    })
    .await
    .map_err(|source| IncidentError::Prepare {
        endpoint: endpoint.clone(),
        source,
    })?;
    if prepared.errors > 0 && !cfg.quiet {
        eprintln!(
            "warning: {} error replies while preparing, e.g. {:?}; stream length now {}",
            prepared.errors,
            prepared.error_example.as_deref().unwrap_or(""),
            prepared
                .stream_len
                .map_or("unknown".to_string(), |n| n.to_string())
        );
    }
    tokio::time::sleep(cfg.settle).await;

    let mix = Arc::new(Mix::new(
        &cfg.cheap_commands(),
        &cfg.cheap_weights,
        cfg.cheap_keyspace,
        KeyPattern::Random,
        value.clone(),
    )?);
    let clock = Clock {
        t0: Instant::now() + START_LEAD,
        phase: cfg.phase,
    };
    let counters = Arc::new(Counters::default());
    let scrapes = (!urls.is_empty()).then(|| tokio::spawn(scraper(Arc::new(urls.clone()), clock)));

    // Ordinary clients: `cheap_rate` in total, first requests spread over
    // one interval so they do not arrive in lockstep.
    let interval = Duration::from_secs_f64(cfg.cheap_clients as f64 / cfg.cheap_rate);
    let mut cheap_tasks = Vec::with_capacity(cfg.cheap_clients);
    for i in 0..cfg.cheap_clients {
        let mut connect = cfg.connect.clone();
        connect.source_ip = (!cfg.cheap_source_ips.is_empty())
            .then(|| cfg.cheap_source_ips[i % cfg.cheap_source_ips.len()]);
        let client = CheapClient {
            connect,
            login: cfg.cheap_login.clone(),
            mix: Arc::clone(&mix),
            rng: StdRng::seed_from_u64(cfg.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9)),
            clock,
            interval,
            first: clock.t0 + interval.mul_f64(i as f64 / cfg.cheap_clients as f64),
            max_inflight: cfg.cheap_max_inflight.max(1),
            reply_timeout: cfg.reply_timeout,
            counters: Arc::clone(&counters),
        };
        cheap_tasks.push(tokio::spawn(client.run()));
    }
    let commands = Arc::new(AbuserCommands::new(
        &keys.stream,
        &keys.hash,
        cfg.xread_count,
        cfg.abuser_weights,
    ));
    // The abusive host runs on threads of its own: its replies (whole
    // stream pages, the keyspace) take time to parse, and on the ordinary
    // clients' runtime that time would show up as their latency.
    let abuser_rt = abuser_runtime()?;
    let mut abuser_tasks = Vec::with_capacity(cfg.abusers);
    for i in 0..cfg.abusers {
        let mut connect = cfg.connect.clone();
        connect.source_ip = cfg.abuser_source_ip;
        let abuser = Abuser {
            connect,
            login: cfg.abuser_login.clone(),
            commands: Arc::clone(&commands),
            rng: StdRng::seed_from_u64(cfg.seed ^ (i as u64 + 1).wrapping_mul(0x85EB_CA6B)),
            clock,
            backoff: cfg.abuser_backoff,
            reconnect: cfg.abuser_reconnect,
            reply_timeout: cfg.reply_timeout,
            counters: Arc::clone(&counters),
        };
        abuser_tasks.push(abuser_rt.spawn(abuser.run()));
    }
    let ticker = progress_ticker(cfg.quiet, clock, Arc::clone(&counters), &endpoint);

    let mut cheap = CheapOutcome::new(mix.templates.len(), clock.seconds());
    for t in cheap_tasks {
        cheap.merge(&t.await.expect("ordinary client task panicked"));
    }
    let mut abuse = AbuserOutcome::default();
    for t in abuser_tasks {
        abuse.merge(&t.await.expect("abuser task panicked"));
    }
    // Dropping a runtime inside async code would panic.
    abuser_rt.shutdown_background();
    let scrapes = match scrapes {
        Some(h) => Some(h.await.expect("scraper task panicked")),
        None => None,
    };
    if let Some(t) = ticker {
        t.finish();
    }
    Ok(report::build(
        cfg, &mix, &commands, clock, prepared, urls, warning, cheap, abuse, scrapes,
    ))
}

/// One worker thread for the abusive connections.
fn abuser_runtime() -> Result<tokio::runtime::Runtime, IncidentError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("abuser")
        .enable_all()
        .build()
        .map_err(IncidentError::from)
}

/// A progress bar over the three phases.
struct Ticker {
    bar: indicatif::ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

fn progress_ticker(
    quiet: bool,
    clock: Clock,
    counters: Arc<Counters>,
    endpoint: &str,
) -> Option<Ticker> {
    let total_ms = (clock.phase * PHASES as u32).as_millis() as u64;
    let bar = progress::bar(
        quiet,
        total_ms.max(1),
        "[{elapsed_precise}] [{bar:30}] {msg}",
    );
    if bar.is_hidden() {
        return None;
    }
    let handle = bar.clone();
    let endpoint = endpoint.to_string();
    let task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(250));
        loop {
            interval.tick().await;
            let now = Instant::now();
            handle.set_position(now.saturating_duration_since(clock.t0).as_millis() as u64);
            let c = &counters;
            handle.set_message(format!(
                "{endpoint} {}: cheap {} ops {} err | abuser {} ok {} busy {} rejects",
                PHASE_NAMES[clock.phase_of(now)],
                c.cheap_ops.load(Ordering::Relaxed),
                c.cheap_errors.load(Ordering::Relaxed),
                c.abuser_ops.load(Ordering::Relaxed),
                c.abuser_busy.load(Ordering::Relaxed),
                c.abuser_rejects.load(Ordering::Relaxed),
            ));
        }
    });
    Some(Ticker { bar, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_maps_instants_to_phases_and_seconds() {
        let t0 = Instant::now();
        let c = Clock {
            t0,
            phase: Duration::from_secs(2),
        };
        assert_eq!(c.phase_of(t0), 0);
        assert_eq!(c.phase_of(t0 + Duration::from_millis(1999)), 0);
        assert_eq!(c.phase_of(t0 + Duration::from_secs(2)), 1);
        assert_eq!(c.phase_of(t0 + Duration::from_secs(5)), 2);
        assert_eq!(c.phase_of(t0 + Duration::from_secs(60)), 2);
        assert_eq!(c.seconds(), 6);
        assert_eq!(c.second_of(t0 + Duration::from_millis(4500)), 4);
        assert_eq!(c.phase_bounds(1), (t0 + c.phase, t0 + c.phase * 2));
    }
}
