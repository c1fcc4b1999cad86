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

mod libs;
pub mod lua;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::reply::Kind;
use rampart_proto::pb::Replies;
use rampart_proto::{reply, Reply};

use crate::commands;
use crate::commands::scripting as internal;
use crate::raft::types::{WatchToken, WriteRun};
use crate::server::kv::{self, Failure};
use crate::server::{now_ms, NodeCtx};
use lua::{ScriptInput, ScriptRun, StopFlag};

type Argv = Vec<Vec<u8>>;

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

/// The scripts running on this node, for SCRIPT KILL.
pub struct Scripts {
    time_limit: Duration,
    running: Mutex<HashMap<u64, Arc<StopFlag>>>,
    next_id: AtomicU64,
    /// Striped locks by declared key: scripts on this leader that declare
    /// a common key run (and commit) one after the other instead of
    /// invalidating each other's optimistic commits.
    stripes: Vec<tokio::sync::Mutex<()>>,
}

/// Number of key lock stripes.
const STRIPES: usize = 256;

impl Scripts {
    pub fn new(time_limit: Duration) -> Scripts {
        Scripts {
            time_limit,
            running: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let flag = Arc::new(StopFlag::default());
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

    /// SCRIPT KILL: stops every running script; false when none runs.
    pub fn kill_all(&self) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for flag in running.values() {
            flag.kill();
        }
        !running.is_empty()
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

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.flag.cancel();
        self.scripts
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Whether `argv` is a scripting command (EVAL*, SCRIPT).
pub fn is_script_command(argv: &[Vec<u8>]) -> bool {
    argv.first().is_some_and(|name| {
        ["eval", "evalsha", "eval_ro", "evalsha_ro", "script"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    })
}

/// A batch holding a scripting command: every command in order, scripts
/// through the runner, the others through the usual write and read paths
/// (each with its own dedup `part`).
pub(crate) async fn execute_batch(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    commands: Vec<Argv>,
) -> Outcome {
    let total = commands.len();
    let mut replies = Vec::with_capacity(total);
    let mut applied_any = false;
    for (i, argv) in commands.into_iter().enumerate() {
        let part = u32::try_from(i)
            .unwrap_or(u32::MAX / PARTS_PER_COMMAND)
            .saturating_mul(PARTS_PER_COMMAND);
        let (result, may_write) = if is_script_command(&argv) {
            (run_command(ctx, client_id, seq, part, argv).await, true)
        } else if commands::is_write(&argv) {
            let r = kv::write_run(ctx, client_id, seq, part, vec![argv]).await;
            (r.map(kv::single_reply), true)
        } else {
            (
                kv::read_run(ctx, vec![argv]).await.map(kv::single_reply),
                false,
            )
        };
        match result {
            Ok(r) => {
                replies.push(r);
                applied_any |= may_write;
            }
            Err(failure) if !applied_any || !client_id.is_empty() => {
                return failure.into_outcome();
            }
            Err(failure) => {
                let err = failure.error_reply();
                replies.resize(total, err);
                break;
            }
        }
    }
    Outcome::Replies(Replies { replies })
}

fn wrong_arity(name: &str) -> Reply {
    reply::error(rampart_proto::errors::wrong_arity(name))
}

/// Compiles `body` and tells whether it is cached already (off the async
/// workers: both may take a while).
async fn check_script(ctx: &NodeCtx, sha: &str, body: &[u8]) -> Result<bool, Reply> {
    let engine = ctx.engine.clone();
    let sha = sha.to_string();
    let body = body.to_vec();
    tokio::task::spawn_blocking(move || {
        lua::check_compiles(&body)?;
        Ok(internal::load(&engine.read_view(), sha.as_bytes()).is_some())
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
    let replies = kv::write_run(ctx, "", 0, 0, vec![internal::store_command(sha, body)]).await?;
    let r = kv::single_reply(replies);
    Ok(r.is_error().then_some(r))
}

async fn run_command(
    ctx: &NodeCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    argv: Argv,
) -> Result<Reply, Failure> {
    let name = argv[0].to_ascii_lowercase();
    if name == b"script" {
        return script_command(ctx, argv).await;
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    if argv.len() < 3 {
        return Ok(wrong_arity(&name));
    }
    let numkeys = match std::str::from_utf8(&argv[2])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        Some(n) if n < 0 => return Ok(reply::error("ERR Number of keys can't be negative")),
        Some(n) if n > (argv.len() - 3) as i64 => {
            return Ok(reply::error(
                "ERR Number of keys can't be greater than number of args",
            ))
        }
        Some(n) => n as usize,
        None => return Ok(reply::error("ERR value is not an integer or out of range")),
    };
    let read_only = name.ends_with("_ro");
    let (sha, body) = if name.starts_with("evalsha") {
        (String::from_utf8_lossy(&argv[1]).to_ascii_lowercase(), None)
    } else {
        let sha = lua::sha1_hex(&argv[1]);
        match check_script(ctx, &sha, &argv[1]).await {
            Err(compile_error) => return Ok(compile_error),
            Ok(true) => {}
            Ok(false) => {
                if let Some(err) = store(ctx, &sha, &argv[1]).await? {
                    return Ok(err);
                }
            }
        }
        (sha, Some(argv[1].clone()))
    };
    let keys: Vec<Vec<u8>> = argv[3..3 + numkeys].to_vec();
    let args: Vec<Vec<u8>> = argv[3 + numkeys..].to_vec();
    // Declared keys serialize scripts on this leader; a conflict then only
    // comes from other writes (or undeclared keys) and is retried.
    let _locks = ctx.scripts.lock_keys(&keys).await;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            let jitter = rand::random::<u64>() % (2 * u64::from(attempt)).max(1);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
        }
        kv::confirm_leadership(ctx, "a script").await?;
        let run = {
            let running = ctx.scripts.start();
            let flag = running.flag.clone();
            let engine = ctx.engine.clone();
            let input = ScriptInput {
                sha: sha.clone(),
                body: body.clone().unwrap_or_default(),
                keys: keys.clone(),
                args: args.clone(),
                read_only,
                now_ms: now_ms(),
                time_limit: ctx.scripts.time_limit,
            };
            let by_sha = body.is_none();
            let job = ctx.heavy.try_run(move || {
                let mut input = input;
                if by_sha {
                    match internal::load(&engine.read_view(), input.sha.as_bytes()) {
                        Some(b) => input.body = b,
                        None => return ScriptRun::failed(reply::error(NOSCRIPT)),
                    }
                }
                lua::run(&engine, &input, &flag)
            });
            match job {
                Err(full) => return Ok(full.reply()),
                Ok(rx) => match rx.await {
                    Ok(run) => run,
                    Err(_) => {
                        return Ok(reply::error(
                            "ERR internal error: the script stopped without an answer",
                        ))
                    }
                },
            }
        };
        if run.stopped || run.writes.is_empty() {
            return Ok(run.reply);
        }
        let mut commands = run.writes;
        commands.push(internal::reply_command(&run.reply));
        let watches = run
            .reads
            .into_iter()
            .map(|r| WatchToken {
                key: r.key,
                revision: r.revision,
                existed: r.existed,
            })
            .collect();
        let write_run = WriteRun {
            client_id: client_id.to_string(),
            seq,
            part: part.saturating_add(attempt),
            commands,
        };
        let committed = kv::transaction(ctx, write_run, watches).await?;
        match committed.kind {
            // A key the script read changed before the entry applied.
            Some(Kind::NullArray(_)) => {
                metrics::counter!("rampart_script_conflicts_total").increment(1);
                continue;
            }
            Some(Kind::Array(list)) => {
                return Ok(list.items.last().cloned().unwrap_or_else(reply::null));
            }
            _ => return Ok(committed),
        }
    }
    Ok(reply::error(format!(
        "ERR the script's keys kept changing: gave up after {MAX_ATTEMPTS} attempts"
    )))
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
            kv::confirm_leadership(ctx, "a script").await?;
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
            match argv.get(2) {
                None => {}
                Some(mode)
                    if argv.len() == 3
                        && (mode.eq_ignore_ascii_case(b"sync")
                            || mode.eq_ignore_ascii_case(b"async")) => {}
                Some(_) => {
                    return Ok(reply::error(
                        "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
                    ))
                }
            }
            let replies = kv::write_run(ctx, "", 0, 0, vec![internal::flush_command()]).await?;
            Ok(kv::single_reply(replies))
        }
        "kill" => {
            if argv.len() != 2 {
                return Ok(wrong_arity("script|kill"));
            }
            Ok(if ctx.scripts.kill_all() {
                reply::ok()
            } else {
                reply::error("NOTBUSY No scripts in execution right now.")
            })
        }
        "help" => Ok(reply::array(
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
        )),
        _ => Ok(reply::error(format!(
            "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(&argv[1])
        ))),
    }
}
