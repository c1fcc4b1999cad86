//! `rampart-loadtest chaos ...`: the command line of the chaos tool
//! (a run, `check` of saved histories, the `recovery` benchmark). Part of
//! the binary, so anyhow stays out of the library.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rampart_loadtest::chaos::error::ChaosError;
use rampart_loadtest::chaos::nemesis::{NemesisKind, ALL_NEMESES};
use rampart_loadtest::chaos::recovery::{self, RecoveryFault, RecoverySettings};
use rampart_loadtest::chaos::report::{self, Finding};
use rampart_loadtest::chaos::runner::{self, ChaosSettings};
use rampart_loadtest::chaos::workload::{WorkloadKind, ALL_WORKLOADS};
use rampart_loadtest::chaos::{plot, sys};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit status of a harness error (distinct from 1 = anomalies found).
const EXIT_HARNESS: i32 = 2;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: Option<ChaosCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum ChaosCommand {
    /// Re-run the checkers on histories a run saved.
    Check(CheckArgs),
    /// Failover time: leader killed or isolated until the first write
    /// through a proxy succeeds, over several trials.
    Recovery(RecoveryArgs),
}

/// The cluster the tool starts.
#[derive(Args, Debug, Clone)]
struct ClusterArgs {
    /// Storage nodes (3 or 5), each in its own network namespace.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The nodes' --election-timeout-ms.
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: u64,
    /// The proxies' --retry-deadline-ms.
    #[arg(long, default_value_t = 2000)]
    proxy_retry_deadline_ms: u64,
    /// The `rampart` binary [default: next to this executable, then PATH].
    #[arg(long)]
    rampart_bin: Option<PathBuf>,
    /// Run dir for data, logs and histories [default: a temp dir, removed
    /// after a clean run and kept (and printed) otherwise].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Seed of the fault schedule and the workloads [default: random,
    /// always printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of load under faults (healing and final reads come after).
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Workloads, comma-separated: register, list-append, set, counter,
    /// stream, ttl [default: all].
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// Faults, comma-separated: kill, pause, partition, clock, disk, proxy,
    /// or `none` [default: all].
    #[arg(long, value_delimiter = ',')]
    nemesis: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Clients per workload.
    #[arg(long, default_value_t = 5)]
    concurrency: usize,
    /// Operations per second per workload (over its clients).
    #[arg(long, default_value_t = 150.0)]
    rate: f64,
    /// An operation without a reply after this long has an unknown outcome.
    #[arg(long, default_value_t = 3000)]
    op_timeout_ms: u64,
    /// Seconds of load after every fault is healed, before the final reads.
    #[arg(long, default_value_t = 10.0)]
    recovery_secs: f64,
    /// Size of each node's tmpfs data dir with the disk nemesis, MiB.
    #[arg(long, default_value_t = 512)]
    disk_mib: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the timeline here (.png or .svg).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Save the histories here [default: next to --json as
    /// NAME.histories.json, else histories.json in the run dir].
    #[arg(long)]
    histories: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// A histories file a run saved.
    #[arg(long)]
    history: PathBuf,
    /// Write the verdicts as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RecoveryArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Trials.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// What happens to the leader.
    #[arg(long, value_enum, default_value_t = RecoveryFault::Kill)]
    fault: RecoveryFault,
    /// Seconds after which a trial without a successful write counts as
    /// failed (and the fault is healed).
    #[arg(long, default_value_t = 30.0)]
    trial_limit_secs: f64,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `chaos ...`; the process exit status.
pub fn run(args: ChaosArgs) -> i32 {
    let result = match args.command {
        Some(ChaosCommand::Check(a)) => check(&a),
        Some(ChaosCommand::Recovery(a)) => run_recovery(&a),
        None => run_chaos(&args.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<ChaosError>() {
                Some(ChaosError::NoNamespaces(why)) => {
                    eprintln!("chaos: cannot create the cluster's network: {why}")
                }
                Some(ChaosError::Interrupted(sig)) => eprintln!("chaos: interrupted by {sig}"),
                Some(_) => {
                    eprintln!("chaos: harness error (not a finding about the cluster): {e:#}")
                }
                // Bad flags, an unwritable report path...
                None => eprintln!("chaos: {e:#}"),
            }
            EXIT_HARNESS
        }
    }
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build().context("start the tokio runtime")
}

fn rampart_bin(flag: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.clone());
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("rampart"))
        .filter(|p| p.is_file())
    {
        return Ok(sibling);
    }
    sys::which("rampart")
        .context("no `rampart` binary next to rampart-loadtest or on PATH; pass --rampart-bin")
}

fn parse_list<T: Copy>(
    given: &[String],
    all: &[T],
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>> {
    let names: Vec<&str> = given
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    if names == ["none"] {
        return Ok(Vec::new());
    }
    names
        .iter()
        .map(|n| parse(n).with_context(|| format!("unknown {what} {n:?}")))
        .collect()
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("serialize")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn run_chaos(a: &RunArgs) -> Result<i32> {
    let workloads = parse_list(&a.workload, ALL_WORKLOADS, WorkloadKind::parse, "workload")?;
    if workloads.is_empty() {
        bail!("--workload none leaves nothing to check");
    }
    let nemeses = parse_list(&a.nemesis, ALL_NEMESES, NemesisKind::parse, "nemesis")?;
    if !(a.cluster.nodes == 3 || a.cluster.nodes == 5) {
        bail!("--nodes must be 3 or 5");
    }
    if a.concurrency == 0 || a.rate <= 0.0 {
        bail!("--concurrency and --rate must be positive");
    }
    let duration = Duration::try_from_secs_f64(a.duration).context("--duration")?;
    let seed = a.seed.unwrap_or_else(rand::random);
    let mut command = format!(
        "rampart-loadtest chaos --seed {seed} --duration {} --workload {} --nemesis {} \
         --nodes {} --concurrency {} --rate {} --election-timeout-ms {}",
        a.duration,
        workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(","),
        if nemeses.is_empty() {
            "none".to_string()
        } else {
            nemeses
                .iter()
                .map(|n| n.name())
                .collect::<Vec<_>>()
                .join(",")
        },
        a.cluster.nodes,
        a.concurrency,
        a.rate,
        a.cluster.election_timeout_ms,
    );
    // The disk nemesis sizes the data dirs: a replay needs the same size.
    if nemeses.contains(&NemesisKind::Disk) {
        command.push_str(&format!(" --disk-mib {}", a.disk_mib));
    }
    let settings = ChaosSettings {
        seed,
        duration,
        workloads,
        nemeses,
        nodes: a.cluster.nodes,
        proxies: 2,
        concurrency: a.concurrency,
        rate: a.rate,
        op_timeout: Duration::from_millis(a.op_timeout_ms.max(1)),
        election_timeout_ms: a.cluster.election_timeout_ms,
        proxy_retry_deadline_ms: a.cluster.proxy_retry_deadline_ms,
        recovery: Duration::try_from_secs_f64(a.recovery_secs).context("--recovery-secs")?,
        rampart_bin: rampart_bin(&a.cluster.rampart_bin)?,
        dir: a.cluster.dir.clone(),
        disk_mib: a.disk_mib,
        // Next to the JSON report when there is one, so the file the report
        // names outlives a temp run dir.
        histories: a
            .histories
            .clone()
            .or_else(|| a.json.as_ref().map(|j| j.with_extension("histories.json"))),
        command,
    };
    let rt = runtime(a.cluster.threads)?;
    let result = rt.block_on(runner::run_chaos(&settings))?;
    drop(rt);
    let report = result.report;
    report
        .write_summary(&mut std::io::stdout().lock())
        .context("write the summary")?;
    if let Some(path) = &a.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &a.plot {
        plot::draw(path, &result.histories, &report.faults, seed)?;
    }
    Ok(report.finding().exit_code())
}

fn check(a: &CheckArgs) -> Result<i32> {
    let saved = report::load_histories(&a.history)?;
    let verdicts = report::check_all(&saved);
    let mut worst = Finding::Clean;
    println!("histories of seed {} ({})", saved.seed, a.history.display());
    for v in &verdicts {
        let word = if v.unknown {
            worst = worst_of(worst, Finding::NoVerdict);
            "UNKNOWN (no verdict)"
        } else if v.valid && v.anomalies.is_empty() {
            "valid"
        } else {
            worst = Finding::Anomalies;
            "INVALID"
        };
        println!(
            "  {:<12} {word}, {} anomalies ({} ok / {} fail / {} info)",
            v.workload,
            v.anomalies.len(),
            v.ok,
            v.fail,
            v.info
        );
        for an in &v.anomalies {
            println!("    {}: {} (ops {:?})", an.kind, an.explanation, an.ops);
        }
    }
    if let Some(path) = &a.json {
        write_json(path, &verdicts)?;
    }
    Ok(worst.exit_code())
}

fn worst_of(a: Finding, b: Finding) -> Finding {
    if a == Finding::Anomalies || b == Finding::Anomalies {
        Finding::Anomalies
    } else if a == Finding::NoVerdict || b == Finding::NoVerdict {
        Finding::NoVerdict
    } else {
        Finding::Clean
    }
}

fn run_recovery(a: &RecoveryArgs) -> Result<i32> {
    if a.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let dir = match &a.cluster.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("rampart-chaos-recovery-{}", std::process::id())),
    };
    let settings = RecoverySettings {
        trials: a.trials,
        fault: a.fault,
        nodes: a.cluster.nodes,
        election_timeout_ms: a.cluster.election_timeout_ms,
        proxy_retry_deadline_ms: a.cluster.proxy_retry_deadline_ms,
        rampart_bin: rampart_bin(&a.cluster.rampart_bin)?,
        dir: dir.clone(),
        trial_limit: Duration::try_from_secs_f64(a.trial_limit_secs)
            .context("--trial-limit-secs")?,
    };
    let rt = runtime(a.cluster.threads)?;
    let r = rt.block_on(recovery::run_recovery(&settings))?;
    drop(rt);
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
    println!(
        "recovery after leader {:?}, {} nodes, election timeout {} ms: p50 {}, p99 {}, max {} \
         over {} trials ({} failed); goal <= {:.0} ms",
        r.fault,
        r.nodes,
        r.election_timeout_ms,
        fmt(r.p50_ms),
        fmt(r.p99_ms),
        fmt(r.max_ms),
        r.trials_ms.len(),
        r.failed_trials,
        r.goal_ms
    );
    println!("logs: {}", dir.display());
    if let Some(path) = &a.json {
        write_json(path, &r)?;
    }
    Ok(if r.failed_trials > 0 { 1 } else { 0 })
}
