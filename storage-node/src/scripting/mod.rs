//! Lua scripting: `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO` and
//! `SCRIPT LOAD|EXISTS|FLUSH|KILL` (design: docs/scripting.md).
//!
//! Scripts never run on the Raft apply path. The leader runs the script on
//! its heavy executor against a [`Txn`](crate::engine::Txn) overlay over a
//! RocksDB snapshot taken after a ReadIndex barrier, tracking the revision
//! of every user key read and collecting the write commands. A script that
//! wrote commits them as ONE `Op::Transaction` entry whose watches are the
//! keys read: the state machine re-applies the writes only if none of those
//! keys changed since the snapshot, else the script runs again (bounded).
//! A read-only script needs no entry at all.

pub mod acl;
mod cmsgpack;
pub mod functions;
mod libs;
pub mod lua;
mod lua_struct;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::reply::Kind;
use rampart_proto::{reply, Argv, Reply};

use crate::commands;
use crate::commands::scripting as internal;
use crate::engine::{Engine, Txn};
use crate::exec::batch::BatchReplies;
use crate::exec::heavy::{self, Lane};
use crate::exec::{self, Failure};
use crate::raft::types::{WatchToken, WriteRun};
use crate::NodeCtx;
use acl::{Caller, ScriptAcl};
use lua::{FunctionTarget, Kill, ScriptInput, ScriptRun, StopFlag};

/// Default `--script-time-limit-ms`.
pub const DEFAULT_TIME_LIMIT_MS: u64 = 5000;
/// Runs of one script before giving up when its keys keep changing.
const MAX_ATTEMPTS: u32 = 10;
/// Dedup `part` numbers reserved per command of a scripting batch: one per
/// attempt, so every attempt's entry has its own identity and a retried
/// request replays the same sequence (a conflicted attempt answers its
/// stored null array, the committed one its stored replies).
const PARTS_PER_COMMAND: u32 = 16;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// The scripts running on this node, for SCRIPT KILL.
pub struct Scripts {
    time_limit: Duration,
    running: Mutex<HashMap<u64, Arc<StopFlag>>>,
    /// The functions (FCALL) among them: name, command, start (FUNCTION
    /// STATS).
    functions: Mutex<HashMap<u64, RunningFunction>>,
    next_id: AtomicU64,
    /// Striped locks by declared key: scripts on this leader that declare
    /// a common key run (and commit) one after the other instead of
    /// invalidating each other's optimistic commits.
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// The ACL users scripts run as (parsed once per change of the table).
    users: acl::UserCache,
}

/// Number of key lock stripes.
const STRIPES: usize = 256;

impl Scripts {
    pub fn new(time_limit: Duration) -> Scripts {
        Scripts {
            time_limit,
            running: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            users: acl::UserCache::new(),
        }
    }

    /// Locks the stripes of `keys` (in index order, so two scripts never
    /// wait for each other in a cycle).
    async fn lock_keys(&self, keys: &[Vec<u8>]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = keys
            .iter()
            .map(|k| (crate::engine::keys::fnv1a64(k) % STRIPES as u64) as usize)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }

    fn start(&self) -> Running<'_> {
        self.register(Arc::new(StopFlag::new(self.time_limit)))
    }

    /// A run that also stops when `parent` does (a script inside a
    /// MULTI/EXEC transaction: the request is the parent).
    fn start_child(&self, parent: &Arc<StopFlag>) -> Running<'_> {
        self.register(Arc::new(StopFlag::with_parent(
            self.time_limit,
            parent.clone(),
        )))
    }

    fn register(&self, flag: Arc<StopFlag>) -> Running<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, flag.clone());
        Running {
            scripts: self,
            id,
            flag,
        }
    }

    /// SCRIPT KILL: stops every script running past the time limit that
    /// has not called a write command (Redis has one script at a time; a
    /// leader here may run several). `Killed` if it stopped one, else
    /// `Unkillable` if a busy one had written, else `NotBusy`.
    pub fn kill_all(&self) -> Kill {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut outcome = Kill::NotBusy;
        for flag in running.values() {
            match flag.kill() {
                Kill::Killed => outcome = Kill::Killed,
                Kill::Unkillable if outcome == Kill::NotBusy => outcome = Kill::Unkillable,
                _ => {}
            }
        }
        outcome
    }

    /// FUNCTION STATS' running script: the longest-running function on this
    /// node (Redis runs one at a time), its command and milliseconds run.
    fn running_function(&self) -> Option<(String, Vec<Vec<u8>>, u64)> {
        let running = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        running.values().min_by_key(|f| f.started).map(|f| {
            (
                f.name.clone(),
                f.command.clone(),
                f.started.elapsed().as_millis() as u64,
            )
        })
    }

    /// SCRIPT KILL's reply.
    fn kill_reply(&self) -> Reply {
        match self.kill_all() {
            Kill::Killed => reply::ok(),
            Kill::Unkillable => reply::error(UNKILLABLE),
            Kill::NotBusy => reply::error(NOTBUSY),
        }
    }
}

/// A registered run; dropping it (the run ended, or the request was
/// cancelled while it ran) unregisters it and stops the Lua code if it is
/// still running.
struct Running<'a> {
    scripts: &'a Scripts,
    id: u64,
    flag: Arc<StopFlag>,
}

impl Running<'_> {
    /// Shows this run in FUNCTION STATS as the function `name`.
    fn as_function(&self, name: &[u8], command: &[Vec<u8>]) {
        self.scripts
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                self.id,
                RunningFunction {
                    name: String::from_utf8_lossy(name).into_owned(),
                    command: command.to_vec(),
                    started: std::time::Instant::now(),
                },
            );
    }
}

/// A function being run (FUNCTION STATS).
struct RunningFunction {
    name: String,
    command: Vec<Vec<u8>>,
    started: std::time::Instant,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.flag.cancel();
        self.scripts
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.scripts
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Whether `argv` is a scripting command (EVAL*, SCRIPT).
pub fn is_script_command(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .and_then(|name| rampart_proto::command_table::lookup(name))
        .is_some_and(|spec| spec.uses_script_runner())
}

/// A batch holding a scripting command: every command in order, scripts
/// through the runner, the others through the usual write and read paths
/// (each with its own dedup `part`). `caller`: the ACL user the scripts'
/// calls are checked against (`ExecuteRequest.user`).
pub(crate) async fn execute_batch(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    commands: Vec<Argv>,
    caller: &Caller,
) -> Outcome {
    let mut replies = BatchReplies::new(commands.len(), client_id);
    for (i, argv) in commands.into_iter().enumerate() {
        let part = u32::try_from(i)
            .unwrap_or(u32::MAX / PARTS_PER_COMMAND)
            .saturating_mul(PARTS_PER_COMMAND);
        let (result, may_write) = if is_script_command(&argv) {
            (
                run_command(ctx, client_id, seq, part, argv, caller).await,
                true,
            )
        } else if commands::is_write(&argv) {
            let r = exec::write_run(ctx, client_id, seq, part, vec![argv]).await;
            (r.map(exec::single_reply), true)
        } else {
            (
                exec::read_run(ctx, vec![argv])
                    .await
                    .map(exec::single_reply),
                false,
            )
        };
        match replies.record(result.map(|r| vec![r]), may_write) {
            Ok(true) => {}
            Ok(false) => break,
            Err(outcome) => return outcome,
        }
    }
    replies.finish()
}

fn wrong_arity(name: &str) -> Reply {
    reply::error(rampart_proto::errors::wrong_arity(name))
}

/// Tells whether `body` is cached already, else checks that it compiles
/// (off the async workers: both may take a while). A cached body compiled
/// when it was stored, so the usual EVAL of a known script compiles once,
/// in its run.
async fn check_script(ctx: &NodeCtx, sha: &str, body: &[u8]) -> Result<bool, Reply> {
    let engine = ctx.engine.clone();
    let sha = sha.to_string();
    let body = body.to_vec();
    tokio::task::spawn_blocking(move || {
        if internal::load(&engine.read_view(), sha.as_bytes()).is_some() {
            return Ok(true);
        }
        lua::check_compiles(&body)?;
        Ok(false)
    })
    .await
    .unwrap_or_else(|_| {
        Err(reply::error(
            "ERR internal error while compiling the script",
        ))
    })
}

/// Caches the script through Raft (idempotent, so without dedup identity).
async fn store(ctx: &NodeCtx, sha: &str, body: &[u8]) -> Result<Option<Reply>, Failure> {
    let replies = exec::write_run(ctx, "", 0, 0, vec![internal::store_command(sha, body)]).await?;
    let r = exec::single_reply(replies);
    Ok(r.is_error().then_some(r))
}

/// The arguments of an EVAL-family command.
struct Eval {
    /// `EVAL_RO` / `EVALSHA_RO`.
    read_only: bool,
    sha: String,
    /// `None` for EVALSHA (loaded from the cache).
    body: Option<Vec<u8>>,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Eval {
    /// Parses `EVAL* script|sha numkeys key... arg...`; the error reply
    /// Redis gives otherwise.
    fn parse(argv: &[Vec<u8>]) -> Result<Eval, Reply> {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        if argv.len() < 3 {
            return Err(wrong_arity(&name));
        }
        let numkeys = match std::str::from_utf8(&argv[2])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(n) if n < 0 => return Err(reply::error("ERR Number of keys can't be negative")),
            Some(n) if n > (argv.len() - 3) as i64 => {
                return Err(reply::error(
                    "ERR Number of keys can't be greater than number of args",
                ))
            }
            Some(n) => n as usize,
            None => return Err(reply::error("ERR value is not an integer or out of range")),
        };
        let (sha, body) = if name.starts_with("evalsha") {
            (String::from_utf8_lossy(&argv[1]).to_ascii_lowercase(), None)
        } else {
            (lua::sha1_hex(&argv[1]), Some(argv[1].clone()))
        };
        Ok(Eval {
            read_only: name.ends_with("_ro"),
            sha,
            body,
            keys: argv[3..3 + numkeys].to_vec(),
            args: argv[3 + numkeys..].to_vec(),
        })
    }

    fn input(&self, body: Vec<u8>, now_ms: i64, acl: Option<ScriptAcl>) -> ScriptInput {
        ScriptInput {
            sha: self.sha.clone(),
            body,
            keys: self.keys.clone(),
            args: self.args.clone(),
            read_only: self.read_only,
            now_ms,
            function: None,
            acl,
        }
    }
}

fn is_eval(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .and_then(|name| rampart_proto::command_table::lookup(name))
        .is_some_and(|spec| spec.runs == rampart_proto::command_table::Runs::Script)
}

async fn run_command(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    argv: Argv,
    caller: &Caller,
) -> Result<Reply, Failure> {
    if !is_eval(&argv) {
        if is_function_admin(&argv) {
            return function_command(ctx, client_id, seq, part, argv).await;
        }
        return script_command(ctx, argv).await;
    }
    if is_fcall(&argv) {
        return run_fcall(ctx, client_id, seq, part, argv, caller).await;
    }
    let eval = match Eval::parse(&argv) {
        Ok(eval) => eval,
        Err(error) => return Ok(error),
    };
    if let Some(body) = &eval.body {
        match check_script(ctx, &eval.sha, body).await {
            Err(compile_error) => return Ok(compile_error),
            Ok(true) => {}
            Ok(false) => {
                if let Some(err) = store(ctx, &eval.sha, body).await? {
                    return Ok(err);
                }
            }
        }
    }
    // Declared keys serialize scripts on this leader; a conflict then only
    // comes from other writes (or undeclared keys) and is retried.
    let _locks = ctx.scripts.lock_keys(&eval.keys).await;
    let eval = Arc::new(eval);
    for attempt in 0..MAX_ATTEMPTS {
        let denials = caller.denials.mark();
        if attempt > 0 {
            backoff(attempt).await;
        }
        exec::confirm_leadership(ctx, "a script").await?;
        if attempt == 0 {
            if let Some(reply) = already_applied(ctx, client_id, seq, part)? {
                return Ok(reply);
            }
        }
        let run = {
            // Registered while the request is alive: dropping the request
            // (the proxy gave up, the client left) stops the run.
            let running = ctx.scripts.start();
            let flag = running.flag.clone();
            let engine = ctx.engine.clone();
            let scripts = ctx.scripts.clone();
            let caller = caller.clone();
            let eval = eval.clone();
            let now = ctx.clock.now_ms();
            let job = ctx.heavy.try_run(Lane::Scripts, move || {
                let view = engine.read_view();
                let body = match &eval.body {
                    Some(body) => body.clone(),
                    None => match internal::load(&view, eval.sha.as_bytes()) {
                        Some(b) => b,
                        None => return ScriptRun::failed(reply::error(NOSCRIPT)),
                    },
                };
                let acl = match caller.script_acl(&scripts.users, &view) {
                    Ok(acl) => acl,
                    Err(refused) => return ScriptRun::failed(refused),
                };
                drop(view);
                lua::run(&engine, &eval.input(body, now, acl), &flag)
            });
            match job {
                Err(full) => return Ok(full.reply()),
                Ok(rx) => match rx.await {
                    Ok(run) => run,
                    Err(_) => return Ok(no_answer()),
                },
            }
        };
        if run.stopped || run.writes.is_empty() {
            return Ok(run.reply);
        }
        let mut commands = run.writes;
        commands.push(internal::reply_command(&run.reply));
        let watches = run.reads.into_iter().map(watch_token).collect();
        match commit(
            ctx,
            client_id,
            seq,
            part.saturating_add(attempt),
            commands,
            watches,
        )
        .await?
        {
            Some(reply) => return Ok(reply),
            None => {
                // A conflicted run's refusals are met again by the next.
                caller.denials.truncate(denials);
                continue;
            }
        }
    }
    Ok(gave_up())
}

fn is_fcall(argv: &[Vec<u8>]) -> bool {
    argv.first().is_some_and(|name| {
        name.eq_ignore_ascii_case(b"fcall") || name.eq_ignore_ascii_case(b"fcall_ro")
    })
}

fn is_function_admin(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|name| name.eq_ignore_ascii_case(b"function"))
}

/// FCALL's numkeys (Redis's errors).
fn fcall_numkeys(argv: &[Vec<u8>]) -> Result<usize, Reply> {
    let given = argv.len().saturating_sub(3) as i64;
    match argv
        .get(2)
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|s| s.parse::<i64>().ok())
    {
        None => Err(reply::error("ERR Bad number of keys provided")),
        Some(n) if n < 0 => Err(reply::error("ERR Number of keys can't be negative")),
        Some(n) if n > given => Err(reply::error(
            "ERR Number of keys can't be greater than number of args",
        )),
        Some(n) => Ok(n as usize),
    }
}

/// What FCALL / FCALL_RO `argv` runs, read from `r`; Redis's error when
/// it cannot run (in Redis's order: the function, then numkeys, then the
/// read-only check).
fn fcall_input<R: crate::engine::DataRead + ?Sized>(
    r: &R,
    argv: &[Vec<u8>],
    now_ms: i64,
    acl: Option<ScriptAcl>,
) -> Result<ScriptInput, Reply> {
    let name = argv.get(1).map(Vec::as_slice).unwrap_or_default();
    let not_found = || reply::error(functions::FUNCTION_NOT_FOUND);
    let lib = functions::library_of(r, name).ok_or_else(not_found)?;
    let meta = lib.function(name).ok_or_else(not_found)?;
    let numkeys = fcall_numkeys(argv)?;
    let no_writes = meta.flags & functions::NO_WRITES != 0;
    if argv[0].eq_ignore_ascii_case(b"fcall_ro") && !no_writes {
        return Err(reply::error(
            "ERR Can not execute a script with write flag using *_ro command.",
        ));
    }
    let (_, body) = functions::parse_shebang(&lib.code)?;
    Ok(ScriptInput {
        sha: format!("fn:{}", lua::sha1_hex(&lib.code)),
        body,
        keys: argv[3..3 + numkeys].to_vec(),
        args: argv[3 + numkeys..].to_vec(),
        read_only: no_writes,
        now_ms,
        function: Some(FunctionTarget {
            name: meta.name.clone(),
        }),
        acl,
    })
}

/// The keys FCALL `argv` declares (none when numkeys is bad).
fn fcall_keys(argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
    fcall_numkeys(argv)
        .map(|n| argv[3..3 + n].to_vec())
        .unwrap_or_default()
}

/// FCALL / FCALL_RO: as EVAL (one optimistic run on the leader, committed
/// as one entry guarded by what it read, run again on conflict).
async fn run_fcall(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    argv: Argv,
    caller: &Caller,
) -> Result<Reply, Failure> {
    let _locks = ctx.scripts.lock_keys(&fcall_keys(&argv)).await;
    let argv = Arc::new(argv);
    for attempt in 0..MAX_ATTEMPTS {
        let denials = caller.denials.mark();
        if attempt > 0 {
            backoff(attempt).await;
        }
        exec::confirm_leadership(ctx, "a function").await?;
        if attempt == 0 {
            if let Some(reply) = already_applied(ctx, client_id, seq, part)? {
                return Ok(reply);
            }
        }
        let run = {
            let running = ctx.scripts.start();
            running.as_function(&argv[1], &argv);
            let flag = running.flag.clone();
            let engine = ctx.engine.clone();
            let scripts = ctx.scripts.clone();
            let caller = caller.clone();
            let job_argv = argv.clone();
            let now = ctx.clock.now_ms();
            let job = ctx.heavy.try_run(Lane::Scripts, move || {
                let input = {
                    let view = engine.read_view();
                    caller
                        .script_acl(&scripts.users, &view)
                        .and_then(|acl| fcall_input(&view, &job_argv, now, acl))
                };
                match input {
                    Ok(input) => lua::run(&engine, &input, &flag),
                    Err(error) => ScriptRun::failed(error),
                }
            });
            match job {
                Err(full) => return Ok(full.reply()),
                Ok(rx) => match rx.await {
                    Ok(run) => run,
                    Err(_) => return Ok(no_answer()),
                },
            }
        };
        if run.stopped || run.writes.is_empty() {
            return Ok(run.reply);
        }
        let mut commands = run.writes;
        commands.push(internal::reply_command(&run.reply));
        let watches = run.reads.into_iter().map(watch_token).collect();
        match commit(
            ctx,
            client_id,
            seq,
            part.saturating_add(attempt),
            commands,
            watches,
        )
        .await?
        {
            Some(reply) => return Ok(reply),
            None => {
                // A conflicted run's refusals are met again by the next.
                caller.denials.truncate(denials);
                continue;
            }
        }
    }
    Ok(gave_up())
}

/// FUNCTION <subcommand>: planned against the leader's state (a library's
/// load code runs off the async workers), then its write, if any, goes
/// through the log.
async fn function_command(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    argv: Argv,
) -> Result<Reply, Failure> {
    if argv.len() < 2 {
        return Ok(wrong_arity("function"));
    }
    if argv[1].eq_ignore_ascii_case(b"kill") && argv.len() == 2 {
        return Ok(ctx.scripts.kill_reply());
    }
    exec::confirm_leadership(ctx, "a function").await?;
    let engine = ctx.engine.clone();
    let running = ctx.scripts.running_function();
    let plan = tokio::task::spawn_blocking(move || {
        functions::plan(&engine.read_view(), &argv, || running)
    })
    .await
    .map_err(|e| Failure::Unavailable(format!("function command failed: {e}")))?;
    match plan {
        functions::Plan::Reply(reply) => Ok(reply),
        functions::Plan::Write(command) => {
            let replies = exec::write_run(ctx, client_id, seq, part, vec![command]).await?;
            Ok(exec::single_reply(replies))
        }
    }
}

fn no_answer() -> Reply {
    reply::error("ERR internal error: the script stopped without an answer")
}

fn gave_up() -> Reply {
    reply::error(format!(
        "ERR the script's keys kept changing: gave up after {MAX_ATTEMPTS} attempts"
    ))
}

/// The reply of an earlier attempt of this request that already applied,
/// if any. A request retried after a failover (the proxy resends the same
/// client id and seq) must not run its script again: the script would
/// see its own first attempt's writes and could answer differently (a
/// compare-and-set that succeeded would now report a mismatch). Called
/// after `confirm_leadership`, so every committed attempt is applied
/// here. Attempts that lost a conflict applied nothing and are skipped.
fn already_applied(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    first_part: u32,
) -> Result<Option<Reply>, Failure> {
    for attempt in 0..MAX_ATTEMPTS {
        let part = first_part.saturating_add(attempt);
        let recorded = crate::raft::dedup::recorded(&ctx.engine, client_id, seq, part)
            .map_err(|e| Failure::Unavailable(format!("reading dedup records: {e}")))?;
        let Some(replies) = recorded else {
            continue;
        };
        match replies.into_iter().next().and_then(|r| r.kind) {
            Some(Kind::NullArray(_)) | None => continue,
            Some(Kind::Array(list)) => {
                return Ok(Some(list.items.last().cloned().unwrap_or_else(reply::null)))
            }
            Some(kind) => return Ok(Some(Reply { kind: Some(kind) })),
        }
    }
    Ok(None)
}

/// Small random wait before attempt `attempt` (> 0) of a conflicted run.
async fn backoff(attempt: u32) {
    let jitter = rand::random::<u64>() % (2 * u64::from(attempt)).max(1);
    tokio::time::sleep(Duration::from_millis(jitter)).await;
}

fn watch_token(r: crate::engine::ReadKey) -> WatchToken {
    WatchToken {
        key: r.key,
        revision: r.revision,
        existed: r.existed,
    }
}

/// Commits a run's writes (the last command answers the run's reply) as
/// one `Op::Transaction` guarded by `watches`. `None`: a watched key
/// changed before the entry applied, nothing was applied (run again).
async fn commit(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    commands: Vec<Argv>,
    watches: Vec<WatchToken>,
) -> Result<Option<Reply>, Failure> {
    let write_run = WriteRun {
        client_id: client_id.to_string(),
        seq,
        part,
        commands,
    };
    let committed = exec::transaction(ctx, write_run, watches).await?;
    Ok(match committed.kind {
        Some(Kind::NullArray(_)) => {
            metrics::counter!("rampart_script_conflicts_total").increment(1);
            None
        }
        Some(Kind::Array(list)) => Some(list.items.last().cloned().unwrap_or_else(reply::null)),
        _ => Some(committed),
    })
}

/// Cancels a flag when dropped (the request went away).
struct CancelOnDrop(Arc<StopFlag>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// MULTI/EXEC holding EVAL* or SCRIPT: the whole transaction runs like a
/// script (docs/transactions.md). On the heavy executor, against one
/// tracked snapshot, every command runs in order (scripts inline); the
/// writes commit as ONE `Op::Transaction` entry guarded by the client's
/// WATCH tokens and every key read, re-run on conflict. The reply is the
/// EXEC array, or a null array when a watched key changed.
pub(crate) async fn execute_transaction(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    commands: Vec<Argv>,
    watches: Vec<WatchToken>,
    caller: &Caller,
) -> Result<Reply, Failure> {
    let declared: Vec<Vec<u8>> = commands
        .iter()
        .filter(|argv| is_eval(argv))
        .flat_map(|argv| {
            if is_fcall(argv) {
                fcall_keys(argv)
            } else {
                Eval::parse(argv).map(|eval| eval.keys).unwrap_or_default()
            }
        })
        .collect();
    let _locks = ctx.scripts.lock_keys(&declared).await;
    let commands = Arc::new(commands);
    let watches = Arc::new(watches);
    for attempt in 0..MAX_ATTEMPTS {
        let denials = caller.denials.mark();
        if attempt > 0 {
            backoff(attempt).await;
        }
        exec::confirm_leadership(ctx, "a transaction").await?;
        if attempt == 0 {
            if let Some(reply) = already_applied(ctx, client_id, seq, 0)? {
                return Ok(reply);
            }
        }
        let parent = Arc::new(StopFlag::new(Duration::MAX));
        let _cancel = CancelOnDrop(parent.clone());
        let engine = ctx.engine.clone();
        let scripts = ctx.scripts.clone();
        let (job_commands, job_watches) = (commands.clone(), watches.clone());
        let job_caller = caller.clone();
        let now = ctx.clock.now_ms();
        let job = ctx.heavy.try_run(Lane::Scripts, move || {
            let acl = job_caller.script_acl(&scripts.users, &engine.read_view());
            match acl {
                Ok(acl) => run_transaction(
                    &engine,
                    &scripts,
                    &parent,
                    &job_commands,
                    &job_watches,
                    now,
                    acl,
                ),
                // Refused as a whole: nothing of it may run for a user
                // that no longer exists.
                Err(refused) => TransactionRun {
                    reply: refused,
                    writes: Vec::new(),
                    reads: Vec::new(),
                    cancelled: false,
                },
            }
        });
        let run = match job {
            Err(full) => return Ok(full.reply()),
            Ok(rx) => match rx.await {
                Ok(run) => run,
                Err(_) => return Ok(no_answer()),
            },
        };
        if run.cancelled || run.writes.is_empty() {
            return Ok(run.reply);
        }
        let mut entry = run.writes;
        entry.push(internal::reply_command(&run.reply));
        let mut guards: Vec<WatchToken> = watches.as_ref().clone();
        guards.extend(run.reads.into_iter().map(watch_token));
        match commit(ctx, client_id, seq, attempt, entry, guards).await? {
            Some(reply) => return Ok(reply),
            None => {
                // A conflicted run's refusals are met again by the next.
                caller.denials.truncate(denials);
                continue;
            }
        }
    }
    Ok(gave_up())
}

/// One run of a transaction holding scripts (see [`execute_transaction`]).
struct TransactionRun {
    /// The EXEC array, or a null array when a watched key had changed.
    reply: Reply,
    writes: Vec<Argv>,
    reads: Vec<crate::engine::ReadKey>,
    /// The request went away: nothing may be committed.
    cancelled: bool,
}

fn run_transaction(
    engine: &Engine,
    scripts: &Scripts,
    parent: &Arc<StopFlag>,
    commands: &[Argv],
    watches: &[WatchToken],
    now: i64,
    acl: Option<ScriptAcl>,
) -> TransactionRun {
    let mut txn = Txn::over_snapshot(engine);
    let unchanged = watches
        .iter()
        .all(|w| commands::transactions::unchanged(&txn, w, now));
    if !unchanged {
        // Linearizable: the snapshot was taken after a ReadIndex barrier.
        return TransactionRun {
            reply: reply::null_array(),
            writes: Vec::new(),
            reads: Vec::new(),
            cancelled: false,
        };
    }
    txn.track_reads(now);
    let txn = RefCell::new(txn);
    let writes: RefCell<Vec<Argv>> = RefCell::new(Vec::new());
    let mut replies = Vec::with_capacity(commands.len());
    for argv in commands {
        let reply = if argv.is_empty() {
            reply::error("ERR empty command")
        } else if is_script_command(argv) {
            let r = if is_fcall(argv) {
                let running = scripts.start_child(parent);
                match fcall_input(&*txn.borrow(), argv, now, acl.clone()) {
                    Ok(input) => {
                        running.as_function(&argv[1], argv);
                        lua::run_in(&txn, &writes, &input, &running.flag).0
                    }
                    Err(error) => error,
                }
            } else if is_eval(argv) {
                let running = scripts.start_child(parent);
                eval_in_transaction(&txn, &writes, argv, now, &running.flag, acl.clone())
            } else if is_function_admin(argv) {
                function_in_transaction(&txn, &writes, scripts, argv, now)
            } else {
                script_in_transaction(&txn, &writes, scripts, argv, now)
            };
            heavy::demote_if_overdue();
            r
        } else {
            heavy::script_command(argv, || {
                let r = commands::apply_write(&mut txn.borrow_mut(), argv, now);
                if commands::is_write(argv) {
                    writes.borrow_mut().push(argv.clone());
                }
                r
            })
        };
        replies.push(reply);
        if parent.is_stopped() {
            return TransactionRun {
                reply: reply::error("ERR transaction cancelled: the client went away"),
                writes: Vec::new(),
                reads: Vec::new(),
                cancelled: true,
            };
        }
    }
    let reads = txn.borrow().read_keys();
    TransactionRun {
        reply: reply::array(replies),
        writes: writes.into_inner(),
        reads,
        cancelled: false,
    }
}

/// Caches a script body in the transaction (a write of the commit) unless
/// it is cached already; the compile error otherwise.
fn cache_in_transaction(
    txn: &RefCell<Txn<'_>>,
    writes: &RefCell<Vec<Argv>>,
    sha: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Reply> {
    if internal::load(&*txn.borrow(), sha.as_bytes()).is_some() {
        return Ok(());
    }
    lua::check_compiles(body)?;
    let store = internal::store_command(sha, body);
    commands::apply_write(&mut txn.borrow_mut(), &store, now);
    writes.borrow_mut().push(store);
    Ok(())
}

fn eval_in_transaction(
    txn: &RefCell<Txn<'_>>,
    writes: &RefCell<Vec<Argv>>,
    argv: &[Vec<u8>],
    now: i64,
    flag: &Arc<StopFlag>,
    acl: Option<ScriptAcl>,
) -> Reply {
    let eval = match Eval::parse(argv) {
        Ok(eval) => eval,
        Err(error) => return error,
    };
    let body = match &eval.body {
        Some(body) => {
            if let Err(compile_error) = cache_in_transaction(txn, writes, &eval.sha, body, now) {
                return compile_error;
            }
            body.clone()
        }
        None => match internal::load(&*txn.borrow(), eval.sha.as_bytes()) {
            Some(body) => body,
            None => return reply::error(NOSCRIPT),
        },
    };
    // A killed script keeps what it wrote before the kill (as a failing
    // script does): the overlay already holds it.
    let (reply, _stopped) = lua::run_in(txn, writes, &eval.input(body, now, acl), flag);
    reply
}

/// FUNCTION inside MULTI: LOAD, DELETE, FLUSH and RESTORE become writes of
/// the commit; the others read the transaction's view.
fn function_in_transaction(
    txn: &RefCell<Txn<'_>>,
    writes: &RefCell<Vec<Argv>>,
    scripts: &Scripts,
    argv: &[Vec<u8>],
    now: i64,
) -> Reply {
    if argv.len() < 2 {
        return wrong_arity("function");
    }
    if argv[1].eq_ignore_ascii_case(b"kill") && argv.len() == 2 {
        return scripts.kill_reply();
    }
    let plan = functions::plan(&*txn.borrow(), argv, || scripts.running_function());
    match plan {
        functions::Plan::Reply(reply) => reply,
        functions::Plan::Write(command) => {
            let reply = commands::apply_write(&mut txn.borrow_mut(), &command, now);
            if !reply.is_error() {
                writes.borrow_mut().push(command);
            }
            reply
        }
    }
}

/// SCRIPT inside MULTI: LOAD and FLUSH become writes of the commit,
/// EXISTS reads the transaction's view.
fn script_in_transaction(
    txn: &RefCell<Txn<'_>>,
    writes: &RefCell<Vec<Argv>>,
    scripts: &Scripts,
    argv: &[Vec<u8>],
    now: i64,
) -> Reply {
    let sub = argv
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .unwrap_or_default();
    match (sub.as_str(), argv.len()) {
        ("load", 3) => {
            let sha = lua::sha1_hex(&argv[2]);
            match cache_in_transaction(txn, writes, &sha, &argv[2], now) {
                Ok(()) => reply::bulk(sha),
                Err(compile_error) => compile_error,
            }
        }
        ("exists", n) if n >= 3 => reply::array(
            argv[2..]
                .iter()
                .map(|sha| {
                    let sha = sha.to_ascii_lowercase();
                    reply::integer(internal::load(&*txn.borrow(), &sha).is_some() as i64)
                })
                .collect(),
        ),
        ("flush", _) => match flush_mode_error(argv) {
            Some(error) => error,
            None => {
                let flush = internal::flush_command();
                commands::apply_write(&mut txn.borrow_mut(), &flush, now);
                writes.borrow_mut().push(flush);
                reply::ok()
            }
        },
        ("kill", 2) => scripts.kill_reply(),
        ("help", 2) => help(),
        ("load" | "exists" | "kill" | "help", _) => wrong_arity(&format!("script|{sub}")),
        _ => unknown_subcommand(argv),
    }
}

fn flush_mode_error(argv: &[Vec<u8>]) -> Option<Reply> {
    match argv.get(2) {
        None => None,
        Some(mode)
            if argv.len() == 3
                && (mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async")) =>
        {
            None
        }
        Some(_) => Some(reply::error(
            "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
        )),
    }
}

fn unknown_subcommand(argv: &[Vec<u8>]) -> Reply {
    reply::error(format!(
        "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
        String::from_utf8_lossy(argv.get(1).map(Vec::as_slice).unwrap_or_default())
    ))
}

fn help() -> Reply {
    reply::array(
        [
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Print this help.",
        ]
        .iter()
        .map(|line| reply::status(*line))
        .collect(),
    )
}

async fn script_command(ctx: &NodeCtx, argv: Argv) -> Result<Reply, Failure> {
    if argv.len() < 2 {
        return Ok(wrong_arity("script"));
    }
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    match sub.as_str() {
        "load" => {
            if argv.len() != 3 {
                return Ok(wrong_arity("script|load"));
            }
            let sha = lua::sha1_hex(&argv[2]);
            match check_script(ctx, &sha, &argv[2]).await {
                Err(compile_error) => Ok(compile_error),
                Ok(true) => Ok(reply::bulk(sha)),
                Ok(false) => Ok(match store(ctx, &sha, &argv[2]).await? {
                    Some(err) => err,
                    None => reply::bulk(sha),
                }),
            }
        }
        "exists" => {
            if argv.len() < 3 {
                return Ok(wrong_arity("script|exists"));
            }
            exec::confirm_leadership(ctx, "a script").await?;
            let engine = ctx.engine.clone();
            let shas: Vec<Vec<u8>> = argv[2..].iter().map(|s| s.to_ascii_lowercase()).collect();
            let found = tokio::task::spawn_blocking(move || {
                let view = engine.read_view();
                shas.iter()
                    .map(|sha| reply::integer(internal::load(&view, sha).is_some() as i64))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| Failure::Unavailable(format!("script lookup failed: {e}")))?;
            Ok(reply::array(found))
        }
        "flush" => {
            if let Some(error) = flush_mode_error(&argv) {
                return Ok(error);
            }
            let replies = exec::write_run(ctx, "", 0, 0, vec![internal::flush_command()]).await?;
            Ok(exec::single_reply(replies))
        }
        "kill" => {
            if argv.len() != 2 {
                return Ok(wrong_arity("script|kill"));
            }
            Ok(ctx.scripts.kill_reply())
        }
        "help" => Ok(help()),
        _ => Ok(unknown_subcommand(&argv)),
    }
}
