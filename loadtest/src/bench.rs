//! `rampart-loadtest bench`: N connections, each keeping up to P requests in
//! flight (a sliding window: as replies arrive the window is refilled), for
//! a duration or a number of requests, after an optional warm-up.
//!
//! Each connection is one tokio task with its own RNG and its own
//! histograms (no shared locks on the hot path); they are merged at the end.
//! A request's latency is measured from just before it is written to the
//! moment its reply has been read.

use crate::conn::{ConnError, ConnectOptions, RespConn};
use crate::progress::Progress;
use crate::report::{BenchReport, ConnectionErrors, Recorder, RunSettings};
use crate::workload::Mix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause before reopening a broken connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Pause after a failed connection attempt.
const CONNECT_RETRY_PAUSE: Duration = Duration::from_millis(250);
/// A connection gives up after this many failed attempts in a row.
const MAX_CONSECUTIVE_CONNECT_FAILURES: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot reach {endpoint}: {source}")]
    Probe {
        endpoint: String,
        #[source]
        source: ConnError,
    },
    #[error("{endpoint} answered PING with an error: {text}")]
    ProbeRejected { endpoint: String, text: String },
}

/// When the measured part of a run ends.
#[derive(Clone, Copy, Debug)]
pub enum StopAt {
    Duration(Duration),
    Requests(u64),
}

/// Everything `bench` needs besides the command mix.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Endpoint, password, connect timeout; `source_ip` is ignored in favour
    /// of `source_ips`.
    pub connect: ConnectOptions,
    /// Local addresses, assigned to connections round-robin (empty: kernel's
    /// choice).
    pub source_ips: Vec<IpAddr>,
    pub connections: usize,
    pub pipeline: usize,
    pub stop: StopAt,
    pub warmup: Duration,
    /// A connection with requests in flight and no reply bytes for this long
    /// is treated as broken.
    pub reply_timeout: Duration,
    pub seed: u64,
    pub quiet: bool,
}

struct InFlight {
    sent: Instant,
    template: usize,
    measured: bool,
}

/// State shared by the connection tasks.
struct Shared {
    measure_start: Instant,
    deadline: Option<Instant>,
    request_limit: Option<u64>,
    claimed: AtomicU64,
    stop: AtomicBool,
    /// Measured replies so far (for the progress bar).
    completed: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    /// Whether a request may be sent at `now`, and if so whether it is
    /// measured (false during warm-up).
    fn claim(&self, now: Instant) -> Option<bool> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        if now < self.measure_start {
            return Some(false);
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.stop.store(true, Ordering::Relaxed);
            return None;
        }
        if let Some(limit) = self.request_limit {
            if self.claimed.fetch_add(1, Ordering::Relaxed) >= limit {
                self.stop.store(true, Ordering::Relaxed);
                return None;
            }
        }
        Some(true)
    }

    fn finished(&self, now: Instant) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| now >= d)
    }
}

/// What one connection task recorded.
struct ConnOutcome {
    recorders: Vec<Recorder>,
    errors: ConnectionErrors,
}

/// Checks the endpoint answers PING (and AUTH), so a wrong address fails
/// fast instead of as a run full of connection errors. Returns the open
/// connection, which becomes the first benchmark connection (closing it
/// first could race the proxy's per-IP connection count).
pub async fn probe(connect: &ConnectOptions) -> Result<RespConn, BenchError> {
    let endpoint = connect.endpoint.clone();
    let mut conn = RespConn::connect(connect)
        .await
        .map_err(|source| BenchError::Probe {
            endpoint: endpoint.clone(),
            source,
        })?;
    match conn.command(&[b"PING"]).await {
        Ok(crate::conn::Value::Error(text)) => Err(BenchError::ProbeRejected { endpoint, text }),
        Ok(_) => Ok(conn),
        Err(source) => Err(BenchError::Probe { endpoint, source }),
    }
}

/// Runs the benchmark and returns its report.
pub async fn run(
    cfg: BenchConfig,
    mix: Arc<Mix>,
    settings: RunSettings,
) -> Result<BenchReport, BenchError> {
    let mut probe_opts = cfg.connect.clone();
    probe_opts.source_ip = cfg.source_ips.first().copied();
    let mut first_conn = Some(probe(&probe_opts).await?);

    let start = Instant::now();
    let measure_start = start + cfg.warmup;
    let (deadline, request_limit) = match cfg.stop {
        StopAt::Duration(d) => (Some(measure_start + d), None),
        StopAt::Requests(n) => (None, Some(n)),
    };
    let shared = Arc::new(Shared {
        measure_start,
        deadline,
        request_limit,
        claimed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });

    let progress = Progress::start(
        cfg.quiet,
        cfg.stop,
        cfg.warmup,
        start,
        Arc::clone(&shared) as Arc<dyn ProgressSource>,
    );

    let mut tasks = Vec::with_capacity(cfg.connections);
    for idx in 0..cfg.connections {
        let mut opts = cfg.connect.clone();
        opts.source_ip = if cfg.source_ips.is_empty() {
            None
        } else {
            Some(cfg.source_ips[idx % cfg.source_ips.len()])
        };
        let seed = cfg
            .seed
            .wrapping_add((idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.push(tokio::spawn(connection_task(
            first_conn.take(),
            opts,
            Arc::clone(&shared),
            Arc::clone(&mix),
            cfg.pipeline.max(1),
            cfg.reply_timeout,
            seed,
        )));
    }

    let mut recorders: Vec<Recorder> = vec![Recorder::default(); mix.templates.len()];
    let mut errors = ConnectionErrors::default();
    for task in tasks {
        let outcome = task.await.expect("connection task panicked");
        for (total, r) in recorders.iter_mut().zip(&outcome.recorders) {
            total.merge(r);
        }
        errors.connect_failures += outcome.errors.connect_failures;
        errors.broken += outcome.errors.broken;
        errors.lost_requests += outcome.errors.lost_requests;
        if errors.example.is_none() {
            errors.example = outcome.errors.example;
        }
    }
    let end = Instant::now();
    progress.finish();

    let elapsed = end.saturating_duration_since(measure_start).as_secs_f64();
    let mut all = Recorder::default();
    for r in &recorders {
        all.merge(r);
    }
    let commands = mix
        .templates
        .iter()
        .zip(&recorders)
        .zip(&mix.weights)
        .map(|((t, r), &w)| {
            let weight = (mix.templates.len() > 1).then_some(w);
            r.summary(&t.text, weight, elapsed)
        })
        .collect();
    Ok(BenchReport {
        settings,
        elapsed_secs: elapsed,
        total: all.summary("ALL", None, elapsed),
        commands,
        connection_errors: errors,
    })
}

/// What the progress bar reads.
pub trait ProgressSource: Send + Sync {
    fn completed(&self) -> u64;
    fn errors(&self) -> u64;
}

impl ProgressSource for Shared {
    fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }
    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

async fn connection_task(
    mut initial: Option<RespConn>,
    opts: ConnectOptions,
    shared: Arc<Shared>,
    mix: Arc<Mix>,
    pipeline: usize,
    reply_timeout: Duration,
    seed: u64,
) -> ConnOutcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut recorders: Vec<Recorder> = vec![Recorder::default(); mix.templates.len()];
    let mut errors = ConnectionErrors::default();
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(pipeline);
    let mut failures_in_a_row = 0;
    while !shared.finished(Instant::now()) {
        let connected = match initial.take() {
            Some(conn) => Ok(conn),
            None => RespConn::connect(&opts).await,
        };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                errors.connect_failures += 1;
                errors.example.get_or_insert_with(|| e.to_string());
                failures_in_a_row += 1;
                if failures_in_a_row >= MAX_CONSECUTIVE_CONNECT_FAILURES {
                    break;
                }
                tokio::time::sleep(CONNECT_RETRY_PAUSE).await;
                continue;
            }
        };
        failures_in_a_row = 0;
        let result = session(
            &mut conn,
            &shared,
            &mix,
            pipeline,
            reply_timeout,
            &mut rng,
            &mut recorders,
            &mut inflight,
        )
        .await;
        match result {
            Ok(()) => break,
            Err(e) => {
                errors.broken += 1;
                errors.example.get_or_insert_with(|| e.to_string());
                let text = format!("IO {e}");
                for req in inflight.drain(..) {
                    if req.measured {
                        errors.lost_requests += 1;
                        recorders[req.template].record_error(&text);
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    ConnOutcome { recorders, errors }
}

/// Drives one open connection until the run ends (Ok) or it breaks (Err,
/// with the unanswered requests left in `inflight`).
#[allow(clippy::too_many_arguments)]
async fn session(
    conn: &mut RespConn,
    shared: &Shared,
    mix: &Mix,
    pipeline: usize,
    reply_timeout: Duration,
    rng: &mut StdRng,
    recorders: &mut [Recorder],
    inflight: &mut VecDeque<InFlight>,
) -> Result<(), ConnError> {
    loop {
        let now = Instant::now();
        while inflight.len() < pipeline {
            let Some(measured) = shared.claim(now) else {
                break;
            };
            let template = mix.encode_next(conn.wbuf(), rng);
            inflight.push_back(InFlight {
                sent: now,
                template,
                measured,
            });
        }
        conn.flush().await?;
        if inflight.is_empty() {
            return Ok(());
        }
        conn.read_more(reply_timeout).await?;
        let now = Instant::now();
        let (mut done, mut failed) = (0, 0);
        while let Some(reply) = conn.try_next_reply()? {
            let req = inflight
                .pop_front()
                .ok_or_else(|| ConnError::Protocol("a reply nobody asked for".into()))?;
            if !req.measured {
                continue;
            }
            let error = match &reply {
                crate::conn::Reply::Ok => None,
                crate::conn::Reply::Error(text) => {
                    failed += 1;
                    Some(text.as_str())
                }
            };
            recorders[req.template].record(now.saturating_duration_since(req.sent), error);
            done += 1;
        }
        shared.completed.fetch_add(done, Ordering::Relaxed);
        if failed > 0 {
            shared.errors.fetch_add(failed, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(warmup: Duration, deadline: Option<Duration>, limit: Option<u64>) -> Shared {
        let start = Instant::now();
        Shared {
            measure_start: start + warmup,
            deadline: deadline.map(|d| start + warmup + d),
            request_limit: limit,
            claimed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    #[test]
    fn request_limit_is_exact() {
        let s = shared(Duration::ZERO, None, Some(3));
        let now = Instant::now();
        let claims: Vec<_> = (0..5).map(|_| s.claim(now)).collect();
        assert_eq!(claims, vec![Some(true), Some(true), Some(true), None, None]);
        assert!(s.finished(now));
    }

    #[test]
    fn warmup_requests_are_not_measured_and_deadline_stops() {
        let s = shared(Duration::from_secs(60), Some(Duration::from_secs(1)), None);
        assert_eq!(s.claim(Instant::now()), Some(false));
        let later = Instant::now() + Duration::from_secs(61);
        assert_eq!(s.claim(later - Duration::from_millis(500)), Some(true));
        assert_eq!(s.claim(later + Duration::from_millis(10)), None);
        assert!(s.finished(later));
    }
}
