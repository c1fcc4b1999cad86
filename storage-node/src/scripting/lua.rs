//! One script run: a fresh sandboxed Lua 5.1 state with Redis 7's script
//! environment, run against a [`Txn`] overlay over a RocksDB snapshot.
//!
//! `redis.call`/`redis.pcall` run inline through
//! [`commands::apply_write`] on the overlay (the script sees its own
//! writes; nothing reaches RocksDB here). The overlay tracks every user key
//! read with its revision, and the write commands are collected in order:
//! the caller commits them as one Raft entry guarded by those revisions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{
    ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic,
    VmState,
};
use rampart_proto::command_table::{self, Runs};
use rampart_proto::pb::reply::Kind;
use rampart_proto::{reply, Argv, Reply};

use crate::commands;
use crate::engine::{Engine, ReadKey, Txn};
use crate::exec::heavy;
use crate::scripting::functions::{self, Library};

/// Instructions between two checks of the stop flag and the time limit.
const HOOK_EVERY: u32 = 10_000;
/// Memory one script's Lua state may allocate.
const MEMORY_LIMIT: usize = 256 << 20;
/// Nesting depth beyond which a returned table is cut (cyclic tables); the
/// reply must stay within protobuf's decoding recursion limit (100, two
/// levels per nested array).
const MAX_DEPTH: usize = 30;

/// Why a run must stop (shared with SCRIPT KILL and the caller), and
/// what SCRIPT KILL needs to know: how long the script has run and whether
/// it called a write command.
#[derive(Debug)]
pub struct StopFlag {
    state: AtomicU8,
    started: Instant,
    /// `--script-time-limit-ms`: SCRIPT KILL only stops a script running
    /// for longer (before, it is not "busy" in Redis's terms).
    limit: Duration,
    /// The script called a write command: SCRIPT KILL answers UNKILLABLE.
    dirty: AtomicBool,
    /// A flag whose stop stops this run too (the request a script of a
    /// MULTI/EXEC transaction runs for).
    parent: Option<Arc<StopFlag>>,
}

const RUNNING: u8 = 0;
const KILLED: u8 = 1;
const CANCELLED: u8 = 2;

/// What SCRIPT KILL did to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Not running past the time limit: left alone.
    NotBusy,
    /// Past the time limit but it already wrote: left alone.
    Unkillable,
    /// Stopped.
    Killed,
}

impl StopFlag {
    /// A flag for a run starting now with time limit `limit`.
    pub fn new(limit: Duration) -> StopFlag {
        StopFlag {
            state: AtomicU8::new(RUNNING),
            started: Instant::now(),
            limit,
            dirty: AtomicBool::new(false),
            parent: None,
        }
    }

    /// A flag that also stops when `parent` does.
    pub fn with_parent(limit: Duration, parent: Arc<StopFlag>) -> StopFlag {
        StopFlag {
            parent: Some(parent),
            ..StopFlag::new(limit)
        }
    }

    /// SCRIPT KILL, with Redis's rules: only a script past the time limit
    /// that has not called a write command is stopped.
    pub fn kill(&self) -> Kill {
        if self.state() != RUNNING || self.started.elapsed() < self.limit {
            return Kill::NotBusy;
        }
        if self.dirty.load(Ordering::SeqCst) {
            return Kill::Unkillable;
        }
        match self
            .state
            .compare_exchange(RUNNING, KILLED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => Kill::Killed,
            Err(_) => Kill::NotBusy,
        }
    }

    /// The caller went away (the request was cancelled).
    pub fn cancel(&self) {
        let _ = self
            .state
            .compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn state(&self) -> u8 {
        match self.state.load(Ordering::SeqCst) {
            RUNNING => self.parent.as_ref().map_or(RUNNING, |p| p.state()),
            other => other,
        }
    }

    /// Killed or cancelled (itself or through its parent).
    pub fn is_stopped(&self) -> bool {
        self.state() != RUNNING
    }

    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }
}

/// What to run.
pub struct ScriptInput {
    /// SHA1 of the body, lower-case hex.
    pub sha: String,
    pub body: Vec<u8>,
    pub keys: Vec<Vec<u8>>,
    pub args: Vec<Vec<u8>>,
    /// EVAL_RO / EVALSHA_RO: write commands are refused.
    pub read_only: bool,
    /// The leader's clock for the run's commands.
    pub now_ms: i64,
    /// FCALL: the function to call in the library `body` loads (then `sha`
    /// names the library's code for the compile cache).
    pub function: Option<FunctionTarget>,
    /// The ACL user each `redis.call` is checked against, and where its
    /// denials go (`None`: nothing to check, see
    /// [`super::acl::UserCache::resolve`]).
    pub acl: Option<super::acl::ScriptAcl>,
}

/// The function an FCALL runs.
#[derive(Debug, Clone)]
pub struct FunctionTarget {
    pub name: String,
}

impl ScriptInput {
    /// What error texts name: the script's SHA1 or the function's name.
    fn label(&self) -> &str {
        self.function.as_ref().map_or(&self.sha, |f| &f.name)
    }

    /// The chunk name error texts give (`@user_script`, `@user_function`).
    fn chunk(&self) -> &'static str {
        if self.function.is_some() {
            "@user_function"
        } else {
            "@user_script"
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct ScriptRun {
    /// The script's reply (or its error).
    pub reply: Reply,
    /// Write commands it ran, in order (to commit).
    pub writes: Vec<Argv>,
    /// User keys it read (commands included) with their revisions.
    pub reads: Vec<ReadKey>,
    /// Killed, timed out or cancelled: nothing may be committed.
    pub stopped: bool,
}

impl ScriptRun {
    pub fn failed(reply: Reply) -> ScriptRun {
        ScriptRun {
            reply,
            writes: Vec::new(),
            reads: Vec::new(),
            stopped: false,
        }
    }
}

/// SHA1 of `data`, lower-case hex (as Redis names scripts).
pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// Lua 5.1's first byte of a precompiled (bytecode) chunk.
const BYTECODE_SIGNATURE: u8 = 0x1b;

/// Precompiled chunks are refused: Lua 5.1 does not verify bytecode, so a
/// crafted one can corrupt the VM's memory (Redis disabled them for the same
/// reason, CVE-2015-4335). Redis's patched parser then reads the chunk as
/// text and stops at its first byte; this is the reply it gives.
fn refuse_bytecode(body: &[u8]) -> Result<(), Reply> {
    if body.first() == Some(&BYTECODE_SIGNATURE) {
        return Err(reply::error(
            "ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'",
        ));
    }
    Ok(())
}

/// Checks that `body` compiles; the error reply Redis gives otherwise.
pub fn check_compiles(body: &[u8]) -> Result<(), Reply> {
    refuse_bytecode(body)?;
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())
        .map_err(|e| reply::error(format!("ERR cannot start Lua: {e}")))?;
    lua.load(body)
        .set_name("@user_script")
        .set_mode(ChunkMode::Text)
        .into_function()
        .map(drop)
        .map_err(|e| compile_error(&e))
}

fn compile_error(e: &mlua::Error) -> Reply {
    let message = match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    reply::error(clean(&format!(
        "ERR Error compiling script (new function): {message}"
    )))
}

fn function_compile_error(e: &mlua::Error) -> Reply {
    let message = match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    reply::error(clean(&format!("ERR Error compiling function: {message}")))
}

/// Error replies are one line.
fn clean(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Runs the script on its own overlay over a fresh snapshot. Never panics
/// on any script; every failure is a reply.
pub fn run(engine: &Engine, input: &ScriptInput, stop: &Arc<StopFlag>) -> ScriptRun {
    let mut txn = Txn::over_snapshot(engine);
    txn.track_reads(input.now_ms);
    let txn = RefCell::new(txn);
    let writes: RefCell<Vec<Argv>> = RefCell::new(Vec::new());
    let (reply, stopped) = run_in(&txn, &writes, input, stop);
    let txn = txn.into_inner();
    ScriptRun {
        reply,
        writes: if stopped {
            Vec::new()
        } else {
            writes.into_inner()
        },
        reads: txn.read_keys(),
        stopped,
    }
}

/// The RESP version of the script's `redis.call` replies (`redis.setresp`).
#[derive(Debug, Clone, Copy)]
struct ScriptResp(u8);

/// The stop flag of the run in progress (read by SETUP's `pcall` guard).
struct CurrentStop(Arc<StopFlag>);

/// The ACL user of the run in progress (read by `redis.acl_check_cmd`).
struct CurrentAcl(Option<super::acl::ScriptAcl>);

/// Compiled scripts one state keeps (their bodies' total size is bounded
/// too); past either bound the cache starts over.
const MAX_CACHED_SCRIPTS: usize = 512;
const MAX_CACHED_BYTES: usize = 16 << 20;
/// Garbage a run may leave before the state is collected in full.
const MAX_LEFT_OVER_MEMORY: usize = 16 << 20;

/// A Lua state kept by one thread from run to run, as Redis keeps one per
/// server: building a state, its libraries and the sandbox, then closing
/// it, cost far more than a short script's own work. Each run gets a fresh
/// global environment; a run that changed anything shared (a library
/// table, the string metatable), was stopped or failed outside the script
/// leaves the state to be dropped, so no run sees another's traces.
struct ScriptState {
    lua: Lua,
    /// SETUP's entry points: install the run's `redis.call` backend, run a
    /// compiled script in a fresh environment, check nothing shared changed.
    set_call: Function,
    run: Function,
    intact: Function,
    /// Runs a library's load code (FUNCTION LOAD) and calls one of its
    /// functions (FCALL).
    load_library: Function,
    run_function: Function,
    /// Compiled scripts by SHA1 (with the body's length, a cheap check).
    compiled: HashMap<String, (usize, Function)>,
    compiled_bytes: usize,
    /// Memory in use right after building.
    base_memory: usize,
}

thread_local! {
    static STATE: RefCell<Option<ScriptState>> = const { RefCell::new(None) };
}

impl ScriptState {
    fn build() -> mlua::Result<ScriptState> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )?;
        let _ = lua.set_memory_limit(MEMORY_LIMIT);
        install_libs(&lua)?;
        lua.globals().set(
            "__rampart_stopped",
            lua.create_function(|lua, ()| {
                Ok(lua
                    .app_data_ref::<CurrentStop>()
                    .is_some_and(|s| s.0.is_stopped()))
            })?,
        )?;
        #[allow(clippy::type_complexity)]
        let (set_call, run, intact, load_library, run_function): (
            Function,
            Function,
            Function,
            Function,
            Function,
        ) = match setup_bytecode() {
            Some(compiled) => lua
                .load(compiled)
                .set_name("=rampart_setup")
                .set_mode(ChunkMode::Binary)
                .call(())?,
            None => lua.load(SETUP).set_name("=rampart_setup").call(())?,
        };
        lua.gc_collect()?;
        let base_memory = lua.used_memory();
        Ok(ScriptState {
            lua,
            set_call,
            run,
            intact,
            load_library,
            run_function,
            compiled: HashMap::new(),
            compiled_bytes: 0,
            base_memory,
        })
    }

    /// The compiled script, from the cache or compiled now.
    fn function(&mut self, sha: &str, body: &[u8], chunk: &str) -> mlua::Result<Function> {
        if let Some((len, f)) = self.compiled.get(sha) {
            if *len == body.len() {
                return Ok(f.clone());
            }
        }
        let f = self
            .lua
            .load(body)
            .set_name(chunk)
            .set_mode(ChunkMode::Text)
            .into_function()?;
        if self.compiled.len() >= MAX_CACHED_SCRIPTS
            || self.compiled_bytes + body.len() > MAX_CACHED_BYTES
        {
            self.compiled.clear();
            self.compiled_bytes = 0;
        }
        if body.len() <= MAX_CACHED_BYTES {
            self.compiled_bytes += body.len();
            self.compiled
                .insert(sha.to_string(), (body.len(), f.clone()));
        }
        Ok(f)
    }

    /// Readies the state for the next run; false if it must be dropped.
    fn clean_up(&self) -> bool {
        // A script may have stopped the collector (collectgarbage "stop").
        self.lua.gc_restart();
        if self.lua.used_memory() > self.base_memory + MAX_LEFT_OVER_MEMORY
            && (self.lua.gc_collect().is_err()
                || self.lua.used_memory() > self.base_memory + MAX_LEFT_OVER_MEMORY)
        {
            return false;
        }
        self.intact.call::<bool>(()).unwrap_or(false)
    }
}

/// Runs the script against `txn` (which may already hold earlier writes,
/// as in a MULTI/EXEC transaction), appending the write commands it runs to
/// `writes`. Returns the reply and whether the run was stopped (killed or
/// cancelled: the caller must then drop what it wrote). Never panics on any
/// script; every failure is a reply.
pub fn run_in(
    txn: &RefCell<Txn<'_>>,
    writes: &RefCell<Vec<Argv>>,
    input: &ScriptInput,
    stop: &Arc<StopFlag>,
) -> (Reply, bool) {
    // Scripts stored by an older version may still hold bytecode.
    if let Err(refused) = refuse_bytecode(&input.body) {
        return (refused, false);
    }
    // Taken out while it runs: a run that panics leaves no state behind.
    let mut state = match STATE.with(|s| s.borrow_mut().take()) {
        Some(state) => state,
        None => match ScriptState::build() {
            Ok(state) => state,
            Err(e) => return (reply::error(format!("ERR cannot start Lua: {e}")), false),
        },
    };
    let (reply, stopped, reusable) = run_on(&mut state, txn, writes, input, stop);
    if reusable && state.clean_up() {
        STATE.with(|s| *s.borrow_mut() = Some(state));
    }
    (reply, stopped)
}

/// How long a library's load code may run (Redis's FUNCTION LOAD timeout).
const LOAD_TIME_LIMIT: Duration = Duration::from_millis(500);

/// FUNCTION LOAD's work: parses the shebang, compiles the library and runs
/// its load code (with only the load-time API, within
/// [`LOAD_TIME_LIMIT`]), and returns what it registered; Redis's error
/// otherwise. Never panics on any code.
pub fn load_library(code: &[u8]) -> Result<Library, Reply> {
    let (name, body) = functions::parse_shebang(code)?;
    let mut state = match STATE.with(|s| s.borrow_mut().take()) {
        Some(state) => state,
        None => {
            ScriptState::build().map_err(|e| reply::error(format!("ERR cannot start Lua: {e}")))?
        }
    };
    let (result, reusable) = load_on(&state, &name, code, &body);
    if reusable && state.clean_up() {
        STATE.with(|s| *s.borrow_mut() = Some(state));
    } else {
        // Dropped here, on this thread.
        state.compiled.clear();
    }
    result
}

fn load_on(
    state: &ScriptState,
    name: &str,
    code: &[u8],
    body: &[u8],
) -> (Result<Library, Reply>, bool) {
    let lua = state.lua.clone();
    let f = match lua
        .load(body)
        .set_name("@user_function")
        .set_mode(ChunkMode::Text)
        .into_function()
    {
        Ok(f) => f,
        Err(e) => return (Err(function_compile_error(&e)), true),
    };
    let timed_out = Arc::new(AtomicBool::new(false));
    {
        let timed_out = timed_out.clone();
        let started = Instant::now();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_lua, _debug| {
                if started.elapsed() > LOAD_TIME_LIMIT {
                    timed_out.store(true, Ordering::SeqCst);
                    return Err(mlua::Error::RuntimeError("FUNCTION LOAD timeout".into()));
                }
                Ok(VmState::Continue)
            },
        );
    }
    let out = state.load_library.call::<MultiValue>(f);
    lua.remove_hook();
    let registering =
        |text: String| reply::error(clean(&format!("ERR Error registering functions: {text}")));
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            return (
                Err(registering(format!("ERR {}", lua_error_text(&e)))),
                false,
            )
        }
    };
    if timed_out.load(Ordering::SeqCst) {
        return (Err(registering("ERR FUNCTION LOAD timeout".into())), false);
    }
    let mut out = out.into_iter();
    let ok = matches!(out.next(), Some(Value::Boolean(true)));
    let value = out.next().unwrap_or(Value::Nil);
    if !ok {
        let text = match &value {
            Value::Table(t) => match t.raw_get::<Value>("err") {
                Ok(Value::String(err)) => String::from_utf8_lossy(&err.as_bytes()).into_owned(),
                _ => "ERR the library raised a table without an err field".into(),
            },
            Value::String(s) => format!("ERR {}", String::from_utf8_lossy(&s.as_bytes())),
            Value::Error(e) => format!("ERR {}", lua_error_text(e)),
            other => format!(
                "ERR {}",
                other.to_string().unwrap_or_else(|_| "unknown error".into())
            ),
        };
        return (Err(registering(text)), true);
    }
    let (Value::Table(registered), Some(Value::Table(order))) = (value, out.next()) else {
        return (Err(reply::error("ERR internal error: library load")), false);
    };
    let mut names: Vec<String> = order
        .sequence_values::<mlua::String>()
        .flatten()
        .map(|n| String::from_utf8_lossy(&n.as_bytes()).into_owned())
        .collect();
    if names.is_empty() {
        return (Err(reply::error("ERR No functions registered")), true);
    }
    names.sort();
    let mut metas = Vec::with_capacity(names.len());
    for fname in names {
        let Ok(entry) = registered.raw_get::<Table>(fname.as_str()) else {
            return (Err(reply::error("ERR internal error: library load")), false);
        };
        let mut flags = 0u8;
        if let Ok(set) = entry.raw_get::<Table>("flags") {
            for (i, flag) in functions::FLAG_NAMES.iter().enumerate() {
                if set.raw_get::<bool>(*flag).unwrap_or(false) {
                    flags |= 1 << i;
                }
            }
        }
        let description = match entry.raw_get::<Value>("desc") {
            Ok(Value::String(d)) => Some(d.as_bytes().to_vec()),
            _ => None,
        };
        metas.push(functions::FunctionMeta {
            name: fname,
            description,
            flags,
        });
    }
    (
        Ok(Library {
            name: name.to_string(),
            code: code.to_vec(),
            functions: metas,
        }),
        true,
    )
}

/// One run on `state`: the reply, whether it was stopped, and whether the
/// state may serve another run.
fn run_on(
    state: &mut ScriptState,
    txn: &RefCell<Txn<'_>>,
    writes: &RefCell<Vec<Argv>>,
    input: &ScriptInput,
    stop: &Arc<StopFlag>,
) -> (Reply, bool, bool) {
    let lua = state.lua.clone();
    lua.set_app_data(ScriptResp(2));
    lua.set_app_data(CurrentStop(stop.clone()));
    lua.set_app_data(CurrentAcl(input.acl.clone()));
    // Line of the user script where the last redis.call / hook ran.
    let line = Arc::new(std::sync::atomic::AtomicI32::new(1));
    let call_line = Cell::new(1);
    {
        let stop = stop.clone();
        let line = line.clone();
        // Past the time limit the script keeps running (as in Redis) until
        // it ends or SCRIPT KILL stops it; the hook only checks the flag.
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_lua, debug| {
                let current = debug.curr_line();
                if current > 0 {
                    line.store(current, Ordering::Relaxed);
                }
                if stop.state() != RUNNING {
                    return Err(mlua::Error::RuntimeError("script stopped".into()));
                }
                heavy::demote_if_overdue();
                Ok(VmState::Continue)
            },
        );
    }
    let result = lua.scope(|scope| {
        let raw_call = scope.create_function(|lua, args: Variadic<Value>| {
            if stop.state() != RUNNING {
                return Err(mlua::Error::RuntimeError("script stopped".into()));
            }
            if let Some(l) = user_line(lua) {
                call_line.set(l);
            }
            let outcome = redis_call(lua, txn, writes, input, stop, args)?;
            Ok(outcome)
        })?;
        state.set_call.call::<()>(raw_call)?;
        let out: MultiValue = match &input.function {
            None => {
                install_args(&lua, &input.keys, &input.args)?;
                let function = match state.function(&input.sha, &input.body, input.chunk()) {
                    Ok(f) => f,
                    Err(e) => return Ok(Err(compile_error(&e))),
                };
                state.run.call(function)?
            }
            Some(target) => {
                let function = match state.function(&input.sha, &input.body, input.chunk()) {
                    Ok(f) => f,
                    Err(e) => return Ok(Err(function_compile_error(&e))),
                };
                let keys = string_list(&lua, &input.keys)?;
                let args = string_list(&lua, &input.args)?;
                state
                    .run_function
                    .call((function, target.name.as_str(), keys, args))?
            }
        };
        let mut out = out.into_iter();
        let ok = matches!(out.next(), Some(Value::Boolean(true)));
        let value = out.next().unwrap_or(Value::Nil);
        if ok {
            // Booleans follow the script's own protocol (redis.setresp).
            let resp3 = lua.app_data_ref::<ScriptResp>().is_some_and(|r| r.0 == 3);
            Ok(Ok(lua_to_reply(&value, 0, resp3)))
        } else {
            Ok(Err(raised_error(&value, input, call_line.get())))
        }
    });
    lua.remove_hook();
    let cleared = state.set_call.call::<()>(Value::Nil).is_ok();
    lua.remove_app_data::<CurrentStop>();
    lua.remove_app_data::<CurrentAcl>();
    let stopped = stop.state();
    let at = line.load(Ordering::Relaxed).max(call_line.get());
    let reusable = cleared && stopped == RUNNING && result.is_ok();
    let reply = if stopped != RUNNING {
        let text = match stopped {
            KILLED => "ERR Script killed by user with SCRIPT KILL...",
            _ => "ERR Script cancelled: the client went away...",
        };
        reply::error(format!(
            "{text} script: {}, on {}:{at}.",
            input.label(),
            input.chunk()
        ))
    } else {
        match result {
            Ok(Ok(reply)) | Ok(Err(reply)) => reply,
            Err(e) => reply::error(clean(&format!(
                "ERR {} script: {}, on {}:{at}.",
                lua_error_text(&e),
                input.label(),
                input.chunk()
            ))),
        }
    };
    (reply, stopped != RUNNING, reusable)
}

/// The line of the innermost user-script frame, if any.
fn user_line(lua: &Lua) -> Option<i32> {
    (1..6).find_map(|level| {
        let debug = lua.inspect_stack(level)?;
        let source = debug.source();
        let is_user = matches!(
            source.source.as_deref(),
            Some("@user_script" | "@user_function")
        );
        (is_user && debug.curr_line() > 0).then(|| debug.curr_line())
    })
}

fn lua_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(m) => format!("Lua out of memory: {m}"),
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        other => other.to_string(),
    }
}

/// The error reply of an error raised by the script (Redis 7 format).
fn raised_error(value: &Value, input: &ScriptInput, call_line: i32) -> Reply {
    let (label, chunk) = (input.label(), input.chunk());
    match value {
        Value::Table(t) => {
            if let Ok(Value::String(err)) = t.raw_get::<Value>("err") {
                let text = String::from_utf8_lossy(&err.as_bytes()).into_owned();
                return reply::error(clean(&format!(
                    "{text} script: {label}, on {chunk}:{call_line}."
                )));
            }
            reply::error(format!(
                "ERR Error running script: the script raised a table without an err field script: {label}, on {chunk}:{call_line}."
            ))
        }
        Value::String(s) => {
            let text = String::from_utf8_lossy(&s.as_bytes()).into_owned();
            let line = text
                .strip_prefix(&chunk[1..])
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse::<i32>().ok())
                .unwrap_or(call_line);
            reply::error(clean(&format!(
                "ERR {text} script: {label}, on {chunk}:{line}."
            )))
        }
        Value::Error(e) => reply::error(clean(&format!(
            "ERR {} script: {label}, on {chunk}:{call_line}.",
            lua_error_text(e)
        ))),
        other => reply::error(clean(&format!(
            "ERR {} script: {label}, on {chunk}:{call_line}.",
            other.to_string().unwrap_or_else(|_| "unknown error".into())
        ))),
    }
}

/// `redis.call` / `redis.pcall` body: returns `(value, failed)`, where a
/// failure is an error table `{err = ...}` (the Lua wrapper raises it for
/// `redis.call`).
fn redis_call(
    lua: &Lua,
    txn: &RefCell<Txn<'_>>,
    writes: &RefCell<Vec<Argv>>,
    input: &ScriptInput,
    stop: &StopFlag,
    args: Variadic<Value>,
) -> mlua::Result<(Value, bool)> {
    let fail = |text: &str| -> mlua::Result<(Value, bool)> {
        let t = lua.create_table()?;
        t.set("err", text)?;
        Ok((Value::Table(t), true))
    };
    if args.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    let mut argv: Argv = Vec::with_capacity(args.len());
    for arg in args.iter() {
        match arg {
            Value::String(s) => argv.push(s.as_bytes().to_vec()),
            Value::Integer(_) | Value::Number(_) => match lua.coerce_string(arg.clone())? {
                Some(s) => argv.push(s.as_bytes().to_vec()),
                None => {
                    return fail("ERR Lua redis lib command arguments must be strings or integers")
                }
            },
            _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    let Some(spec) = command_table::lookup(&argv[0]) else {
        return fail("ERR Unknown Redis command called from script");
    };
    const NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";
    if spec.flags.contains(&"noscript") {
        return fail(NOT_ALLOWED);
    }
    if !spec.arity_ok(argv.len()) {
        return fail("ERR Wrong number of args calling Redis command from script");
    }
    // Redis checks the caller's ACL after the noscript flag and before
    // the write check (script.c, `scriptCall`).
    if let Some(acl) = &input.acl {
        if let Err(refused) = acl.check(&argv) {
            return fail(refused);
        }
    }
    // Commands Redis allows here but Rampart runs elsewhere (PUBLISH on
    // the proxy, scripts on the script runner).
    if spec.runs == Runs::Proxy || spec.uses_script_runner() {
        return fail(NOT_ALLOWED);
    }
    let write = spec.is_write();
    if write && input.read_only {
        return fail("ERR Write commands are not allowed from read-only scripts.");
    }
    let result = heavy::script_command(&argv, || {
        commands::sort::as_script_call(|| {
            commands::apply_write(&mut txn.borrow_mut(), &argv, input.now_ms)
        })
    });
    if write {
        stop.mark_dirty();
        writes.borrow_mut().push(argv);
    }
    if let Some(Kind::Error(text)) = &result.kind {
        return fail(text);
    }
    let resp3 = lua.app_data_ref::<ScriptResp>().is_some_and(|r| r.0 == 3);
    Ok((reply_to_lua(lua, &result, 0, resp3)?, false))
}

/// Redis reply → Lua value (Redis's conversion rules): RESP2 by default,
/// RESP3 after `redis.setresp(3)` (maps, sets, doubles, booleans, nulls and
/// verbatim strings keep their type).
fn reply_to_lua(lua: &Lua, r: &Reply, depth: usize, resp3: bool) -> mlua::Result<Value> {
    let list = |items: &[Reply]| -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.iter().enumerate() {
            t.raw_set(i + 1, reply_to_lua(lua, item, depth + 1, resp3)?)?;
        }
        Ok(Value::Table(t))
    };
    let wrap = |field: &str, value: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, value)?;
        Ok(Value::Table(t))
    };
    if depth > MAX_DEPTH {
        return Ok(Value::Boolean(false));
    }
    Ok(match &r.kind {
        Some(Kind::Status(s)) => wrap("ok", Value::String(lua.create_string(s)?))?,
        Some(Kind::Error(e)) => wrap("err", Value::String(lua.create_string(e)?))?,
        Some(Kind::Integer(i)) => Value::Number(*i as f64),
        Some(Kind::Bulk(b)) => Value::String(lua.create_string(b)?),
        // Only made on the way out of a node (heavy read runs), never for
        // a script's own calls.
        Some(Kind::Resp(_)) => wrap(
            "err",
            Value::String(lua.create_string("ERR internal error: encoded reply in a script")?),
        )?,
        Some(Kind::Null(_)) | Some(Kind::NullArray(_)) | None => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Some(Kind::Map(l) | Kind::Keyed(l)) if resp3 => {
            let t = lua.create_table()?;
            for pair in l.items.chunks(2) {
                let key = reply_to_lua(lua, &pair[0], depth + 1, resp3)?;
                let value = match pair.get(1) {
                    Some(v) => reply_to_lua(lua, v, depth + 1, resp3)?,
                    None => Value::Nil,
                };
                if !matches!(key, Value::Nil) {
                    t.raw_set(key, value)?;
                }
            }
            wrap("map", Value::Table(t))?
        }
        Some(Kind::Set(l)) if resp3 => {
            let t = lua.create_table()?;
            for item in &l.items {
                let member = reply_to_lua(lua, item, depth + 1, resp3)?;
                if !matches!(member, Value::Nil) {
                    t.raw_set(member, true)?;
                }
            }
            wrap("set", Value::Table(t))?
        }
        // Keyed in RESP2 (RESP3 is a map above): an array of [key, value].
        Some(Kind::Keyed(l)) => {
            let t = lua.create_table_with_capacity(l.items.len() / 2, 0)?;
            for (i, pair) in l.items.chunks(2).enumerate() {
                t.raw_set(i + 1, list(pair)?)?;
            }
            Value::Table(t)
        }
        Some(Kind::Pairs(l)) if resp3 => {
            let t = lua.create_table_with_capacity(l.items.len() / 2, 0)?;
            for (i, pair) in l.items.chunks(2).enumerate() {
                t.raw_set(i + 1, list(pair)?)?;
            }
            Value::Table(t)
        }
        Some(Kind::Array(l)) | Some(Kind::Set(l)) | Some(Kind::Map(l)) | Some(Kind::Pairs(l)) => {
            list(&l.items)?
        }
        Some(Kind::Double(d) | Kind::HumanDouble(d)) if resp3 => wrap("double", Value::Number(*d))?,
        Some(Kind::HumanDouble(d)) => {
            Value::String(lua.create_string(rampart_proto::reply::format_human_double(*d))?)
        }
        Some(Kind::Double(d)) => {
            Value::String(lua.create_string(rampart_proto::reply::format_double(*d))?)
        }
        Some(Kind::Boolean(b)) if resp3 => Value::Boolean(*b),
        Some(Kind::Boolean(b)) => Value::Number(if *b { 1.0 } else { 0.0 }),
        Some(Kind::Verbatim(v)) if resp3 => {
            let t = lua.create_table()?;
            t.raw_set("format", v.format.as_str())?;
            t.raw_set("string", lua.create_string(&v.text)?)?;
            wrap("verbatim_string", Value::Table(t))?
        }
        Some(Kind::Verbatim(v)) => Value::String(lua.create_string(&v.text)?),
    })
}

/// Lua number → Redis integer: C's truncating cast (out of range gives
/// the minimum, as on Redis's x86-64 builds).
fn number_to_integer(n: f64) -> i64 {
    if n.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        i64::MIN
    } else {
        n.trunc() as i64
    }
}

/// Lua value → Redis reply (Redis's conversion rules). `resp3`: the script
/// called `redis.setresp(3)`, and Lua booleans are booleans (RESP2: `true`
/// is 1 and `false` a null), as Redis converts them with the script's
/// protocol, whatever the caller's. The RESP3 tables `{map=}`, `{set=}`, `{double=}`,
/// `{big_number=}` and `{verbatim_string=}` keep their type for both; the
/// proxy sends them to RESP2 clients as Redis does (flat array, array, bulk
/// string).
pub(crate) fn lua_to_reply(value: &Value, depth: usize, resp3: bool) -> Reply {
    match value {
        Value::Nil => reply::null(),
        Value::Boolean(b) if resp3 => Reply {
            kind: Some(Kind::Boolean(*b)),
        },
        Value::Boolean(false) => reply::null(),
        Value::Boolean(true) => reply::integer(1),
        Value::Integer(i) => reply::integer(*i),
        Value::Number(n) => reply::integer(number_to_integer(*n)),
        Value::String(s) => reply::bulk(s.as_bytes().to_vec()),
        Value::Table(t) => table_to_reply(t, depth, resp3),
        _ => reply::null(),
    }
}

fn table_to_reply(t: &Table, depth: usize, resp3: bool) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    let text = |s: &mlua::String| clean(&String::from_utf8_lossy(&s.as_bytes()));
    if let Value::String(err) = field("err") {
        return reply::error(text(&err));
    }
    if let Value::String(ok) = field("ok") {
        return reply::status(text(&ok));
    }
    match field("double") {
        Value::Number(d) => return reply::double(d),
        Value::Integer(i) => return reply::double(i as f64),
        _ => {}
    }
    if let Value::String(n) = field("big_number") {
        // No RESP3 big number in our replies: a bulk string, as RESP2 has.
        return reply::bulk(text(&n));
    }
    if let Value::Table(v) = field("verbatim_string") {
        if let (Ok(Value::String(format)), Ok(Value::String(s))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
        {
            return Reply {
                kind: Some(Kind::Verbatim(rampart_proto::pb::Verbatim {
                    format: String::from_utf8_lossy(&format.as_bytes()).into_owned(),
                    text: s.as_bytes().to_vec(),
                })),
            };
        }
    }
    if depth >= MAX_DEPTH {
        return reply::null();
    }
    if let Value::Table(map) = field("map") {
        let mut items = Vec::new();
        for (k, v) in map.pairs::<Value, Value>().flatten() {
            items.push(lua_to_reply(&k, depth + 1, resp3));
            items.push(lua_to_reply(&v, depth + 1, resp3));
        }
        return Reply {
            kind: Some(Kind::Map(rampart_proto::pb::ReplyList { items })),
        };
    }
    if let Value::Table(set) = field("set") {
        let items = set
            .pairs::<Value, Value>()
            .flatten()
            .map(|(k, _)| lua_to_reply(&k, depth + 1, resp3))
            .collect();
        return Reply {
            kind: Some(Kind::Set(rampart_proto::pb::ReplyList { items })),
        };
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_reply(&v, depth + 1, resp3)),
        }
    }
    reply::array(items)
}

/// KEYS and ARGV.
fn install_args(lua: &Lua, keys: &[Vec<u8>], args: &[Vec<u8>]) -> mlua::Result<()> {
    let g = lua.globals();
    for (name, list) in [("KEYS", keys), ("ARGV", args)] {
        let t = lua.create_table_with_capacity(list.len(), 0)?;
        for (i, item) in list.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(item)?)?;
        }
        g.raw_set(name, t)?;
    }
    Ok(())
}

/// A Lua array of `items` (FCALL's keys and args).
fn string_list(lua: &Lua, items: &[Vec<u8>]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(t)
}

/// [`SETUP`] compiled once per process (our own chunk: the only bytecode
/// ever loaded). Parsing it on every run was most of a small script's CPU.
fn setup_bytecode() -> Option<&'static [u8]> {
    static COMPILED: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).ok()?;
            let f = lua
                .load(SETUP)
                .set_name("=rampart_setup")
                .into_function()
                .ok()?;
            Some(f.dump(false))
        })
        .as_deref()
}

const SETUP: &str = r#"
local stopped = __rampart_stopped
__rampart_stopped = nil
-- The run's redis.call backend (set for each run, cleared after it).
local raw_call
-- A stopped script cannot swallow its stop with pcall.
local orig_pcall, orig_xpcall = pcall, xpcall
local function check(...)
  if stopped() then error("script stopped", 0) end
  return ...
end
pcall = function(...) return check(orig_pcall(...)) end
xpcall = function(...) return check(orig_xpcall(...)) end
local guarded_pcall = pcall
-- Library functions (protected in Rust) raise plain strings with the
-- caller's position, like Redis's C libraries.
local select, unpack, error, type, pairs = select, unpack, error, type, pairs
local function results(...) return select('#', ...), {...} end
for _, lib in ipairs({cjson, bit, cmsgpack, struct}) do
  for name, f in pairs(lib) do
    if type(f) == "function" then
      lib[name] = function(...)
        local n, r = results(f(...))
        if r[1] then return unpack(r, 2, n) end
        error(r[2], 2)
      end
    end
  end
end
redis.call = function(...)
  local v, failed = raw_call(...)
  if failed then error(v) end
  return v
end
redis.pcall = function(...)
  local v = raw_call(...)
  return v
end
-- load() reads its chunk from a function: refuse precompiled chunks there
-- too (the reader's error makes load return nil and the message).
local orig_load, byte = load, string.byte
rawset(_G, "load", function(reader, chunkname)
  local first = true
  return orig_load(function()
    local piece = reader()
    if first and type(piece) == "string" and piece ~= "" then
      first = false
      if byte(piece, 1) == 27 then error("precompiled chunks are not allowed", 0) end
    end
    return piece
  end, chunkname)
end)
local setfenv, setmetatable, getmetatable, next, rawget =
  setfenv, setmetatable, getmetatable, next, rawget
for _, name in ipairs({"dofile", "loadfile", "print", "setfenv", "getfenv",
                       "loadstring", "gcinfo", "newproxy", "module", "require"}) do
  rawset(_G, name, nil)
end
local real = _G
local env_mt = {
  __index = function(_, k)
    local v = rawget(real, k)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function()
    error("Attempt to modify a readonly table", 2)
  end,
  __metatable = false,
}
-- What every run shares, as built: the globals and every table reachable
-- from them (libraries, the string metatable), with their contents.
local per_run = { _G = true, KEYS = true, ARGV = true }
local globals, built, metas = {}, { [real] = false }, {}
local function remember(t)
  if type(t) ~= "table" or built[t] ~= nil then return end
  local copy = {}
  built[t], metas[t] = copy, getmetatable(t)
  for k, v in next, t do
    copy[k] = v
    remember(v)
  end
end
for k, v in next, real do
  if not per_run[k] then
    globals[k] = v
    remember(v)
  end
end
remember(getmetatable(""))
local function unchanged(t, copy)
  if not copy then return true end
  if getmetatable(t) ~= metas[t] then return false end
  for k, v in next, t do
    if copy[k] ~= v then return false end
  end
  for k, v in next, copy do
    if rawget(t, k) ~= v then return false end
  end
  return true
end
local function set_call(f) raw_call = f end
-- Runs a compiled script in a fresh global environment.
local function run(f)
  local env = setmetatable({}, env_mt)
  real._G = env
  setfenv(f, env)
  return guarded_pcall(f)
end
-- Whether the last run left everything shared as built.
local function intact()
  for t, copy in next, built do
    if not unchanged(t, copy) then return false end
  end
  for k, v in next, real do
    if not per_run[k] and globals[k] ~= v then return false end
  end
  for k, v in next, globals do
    if rawget(real, k) ~= v then return false end
  end
  real.KEYS, real.ARGV, real._G = nil, nil, nil
  return true
end
-- Redis 7 functions. A library's code runs in an environment of its own
-- that first (while loading) offers only the load-time API, then (when its
-- functions run) the globals every script sees.
local redis_api, ipairs, tostring, find = redis, ipairs, tostring, string.find
local FLAGS = { ["no-writes"] = true, ["allow-oom"] = true, ["allow-stale"] = true,
                ["no-cluster"] = true, ["allow-cross-slot-keys"] = true }
local function reg_error(msg) error({ err = "ERR " .. msg }, 0) end
local function valid_name(name)
  return type(name) == "string" and name ~= "" and not find(name, "[^%w_]")
end
local function registrar(registered, order)
  return function(...)
    local n = select('#', ...)
    local name, cb, flags, desc
    if n == 1 then
      local t = ...
      if type(t) ~= "table" then
        reg_error("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")
      end
      for k, v in next, t do
        if type(k) ~= "string" then
          reg_error("named argument key given to redis.register_function is not a string")
        elseif k == "function_name" then
          if type(v) ~= "string" and type(v) ~= "number" then
            reg_error("function_name argument given to redis.register_function must be a string")
          end
          name = tostring(v)
        elseif k == "description" then
          if type(v) ~= "string" and type(v) ~= "number" then
            reg_error("description argument given to redis.register_function must be a string")
          end
          desc = tostring(v)
        elseif k == "callback" then
          if type(v) ~= "function" then
            reg_error("callback argument given to redis.register_function must be a function")
          end
          cb = v
        elseif k == "flags" then
          if type(v) ~= "table" then
            reg_error("flags argument to redis.register_function must be a table representing function flags")
          end
          flags = {}
          for _, f in ipairs(v) do
            if type(f) ~= "string" or not FLAGS[f] then reg_error("unknown flag given") end
            flags[f] = true
          end
        else
          reg_error("unknown argument given to redis.register_function")
        end
      end
      if name == nil then reg_error("redis.register_function must get a function name argument") end
      if cb == nil then reg_error("redis.register_function must get a callback argument") end
    elseif n == 2 then
      name, cb = ...
      if type(name) ~= "string" and type(name) ~= "number" then
        reg_error("first argument to redis.register_function must be a string")
      end
      name = tostring(name)
      if type(cb) ~= "function" then
        reg_error("second argument to redis.register_function must be a function")
      end
    else
      reg_error("wrong number of arguments to redis.register_function")
    end
    if not valid_name(name) then
      reg_error("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")
    end
    if registered[name] then reg_error("Function already exists in the library") end
    registered[name] = { cb = cb, flags = flags or {}, desc = desc }
    order[#order + 1] = name
  end
end
-- The load-time `redis` table: what it lacks does not exist.
local load_api_mt = {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = function()
    error("Attempt to modify a readonly table", 2)
  end,
  __metatable = false,
}
local LOAD_API = { "log", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING",
                   "REDIS_VERSION", "REDIS_VERSION_NUM" }
-- Runs a library's load code: true, its functions by name, their names in
-- order and the library's environment; or false and the error.
local function load_library(f)
  local registered, order = {}, {}
  local load_redis = { register_function = registrar(registered, order) }
  for _, k in ipairs(LOAD_API) do load_redis[k] = rawget(redis_api, k) end
  setmetatable(load_redis, load_api_mt)
  local loading = true
  local env = setmetatable({}, {
    __index = function(_, k)
      local v
      if loading then
        if k == "redis" then v = load_redis end
      else
        v = rawget(real, k)
      end
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end,
    __newindex = function()
      error("Attempt to modify a readonly table", 2)
    end,
    __metatable = false,
  })
  setfenv(f, env)
  local ok, err = guarded_pcall(f)
  loading = false
  if not ok then return false, err end
  return true, registered, order, env
end
-- FCALL: loads the library, then calls its function `name`.
local function run_function(f, name, keys, args)
  local ok, registered, _, env = load_library(f)
  if not ok then return false, registered end
  local entry = registered[name]
  if entry == nil then return false, { err = "ERR Function not found" } end
  real._G = env
  return guarded_pcall(entry.cb, keys, args)
end
return set_call, run, intact, load_library, run_function
"#;

/// Installs the `redis`, `cjson`, `bit`, `cmsgpack` and `struct` libraries
/// (Rust functions).
pub(crate) fn install_libs(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    let redis = lua.create_table()?;
    redis.set(
        "error_reply",
        lua.create_function(|lua, msg: mlua::String| {
            // Redis 7: "-CODE message" or "CODE message" keep their code;
            // a text without a space gets the generic ERR code.
            let msg = String::from_utf8_lossy(&msg.as_bytes()).into_owned();
            let body = msg.strip_prefix('-').unwrap_or(&msg);
            let text = if body.contains(' ') {
                body.to_string()
            } else {
                format!("ERR {body}")
            };
            let t = lua.create_table()?;
            t.set("err", text.trim_end_matches(['\r', '\n']))?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, msg: mlua::String| {
            let t = lua.create_table()?;
            t.set("ok", msg)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "sha1hex",
        lua.create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))?,
    )?;
    redis.set(
        "log",
        lua.create_function(|lua, (level, rest): (i64, Variadic<Value>)| {
            let mut parts = Vec::new();
            for v in rest.iter() {
                if let Some(s) = lua.coerce_string(v.clone())? {
                    parts.push(String::from_utf8_lossy(&s.as_bytes()).into_owned());
                }
            }
            let msg = parts.join(" ");
            match level {
                0 => tracing::debug!(target: "rampart::script", "{msg}"),
                1 | 2 => tracing::info!(target: "rampart::script", "{msg}"),
                _ => tracing::warn!(target: "rampart::script", "{msg}"),
            }
            Ok(())
        })?,
    )?;
    redis.set(
        "setresp",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "redis.setresp() requires one argument.".into(),
                ));
            }
            match lua.coerce_number(args[0].clone())?.map(|n| n as i64) {
                Some(v @ (2 | 3)) => {
                    lua.set_app_data(ScriptResp(v as u8));
                    Ok(())
                }
                _ => Err(mlua::Error::RuntimeError(
                    "RESP version must be 2 or 3.".into(),
                )),
            }
        })?,
    )?;
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    // Effects replication is the only mode (Redis 7): set_repl only checks
    // its argument, as Redis does.
    redis.set(
        "set_repl",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "redis.set_repl() requires one argument.".into(),
                ));
            }
            let flags = lua.coerce_number(args[0].clone())?.unwrap_or(0.0) as i64;
            if flags & !3 != 0 {
                return Err(mlua::Error::RuntimeError(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
                        .into(),
                ));
            }
            Ok(())
        })?,
    )?;
    // Outside the Lua debugger (SCRIPT DEBUG, which Rampart lacks) Redis's
    // breakpoint answers false and debug does nothing.
    redis.set(
        "breakpoint",
        lua.create_function(|_, _: Variadic<Value>| Ok(false))?,
    )?;
    redis.set(
        "debug",
        lua.create_function(|_, _: Variadic<Value>| Ok(()))?,
    )?;
    // Whether the run's user may run a command (no ACL LOG entry, as in
    // Redis); every existing command when the run has no user to check.
    redis.set(
        "acl_check_cmd",
        lua.create_function(|lua, args: Variadic<Value>| {
            let mut argv: Argv = Vec::with_capacity(args.len());
            for arg in args.iter() {
                match arg {
                    Value::String(_) | Value::Integer(_) | Value::Number(_) => {
                        if let Some(s) = lua.coerce_string(arg.clone())? {
                            argv.push(s.as_bytes().to_vec());
                        }
                    }
                    _ => {
                        return Err(mlua::Error::RuntimeError(
                            "Lua redis lib command arguments must be strings or integers".into(),
                        ))
                    }
                }
            }
            if command_table::lookup_argv(&argv).is_none() {
                return Err(mlua::Error::RuntimeError(
                    "Invalid command passed to redis.acl_check_cmd()".into(),
                ));
            }
            let current = lua.app_data_ref::<CurrentAcl>();
            Ok(match current.as_ref().and_then(|c| c.0.as_ref()) {
                Some(acl) => super::acl::check_call(&acl.user, &argv).is_ok(),
                None => true,
            })
        })?,
    )?;
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
        ("REDIS_VERSION_NUM", 0x07_02_00),
    ] {
        redis.set(name, value)?;
    }
    redis.set("REDIS_VERSION", "7.2.0")?;
    g.set("redis", redis)?;
    for (name, lib) in [
        ("cjson", super::libs::cjson(lua)?),
        ("bit", super::libs::bit(lua)?),
        ("cmsgpack", super::cmsgpack::cmsgpack(lua)?),
        ("struct", super::lua_struct::lua_struct(lua)?),
    ] {
        protect_library(lua, &lib)?;
        g.set(name, lib)?;
    }
    Ok(())
}

/// Makes every function of a Rust library return `(true, results...)` or
/// `(false, message)` instead of raising. SETUP wraps them again in Lua so
/// that they raise the message as a string with the caller's position
/// (`user_script:3: bad argument #1 to 'pack' ...`), as Redis's C
/// libraries do; an mlua error would reach a script's `pcall` as userdata.
fn protect_library(lua: &Lua, lib: &Table) -> mlua::Result<()> {
    let functions: Vec<(Value, mlua::Function)> = lib
        .clone()
        .pairs::<Value, Value>()
        .filter_map(|pair| match pair {
            Ok((k, Value::Function(f))) => Some((k, f)),
            _ => None,
        })
        .collect();
    for (name, f) in functions {
        let protected = lua.create_function(move |lua, args: MultiValue| {
            Ok(match f.call::<MultiValue>(args) {
                Ok(mut results) => {
                    results.push_front(Value::Boolean(true));
                    results
                }
                Err(e) => MultiValue::from_iter([
                    Value::Boolean(false),
                    Value::String(lua.create_string(lua_error_text(&e))?),
                ]),
            })
        })?;
        lib.raw_set(name, protected)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(body: &str, keys: &[&str], read_only: bool) -> ScriptInput {
        ScriptInput {
            sha: sha1_hex(body.as_bytes()),
            body: body.as_bytes().to_vec(),
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            args: Vec::new(),
            read_only,
            now_ms: 0,
            function: None,
            acl: None,
        }
    }

    fn flag(limit_ms: u64) -> Arc<StopFlag> {
        Arc::new(StopFlag::new(Duration::from_millis(limit_ms)))
    }

    #[test]
    fn a_run_collects_writes_and_reads_and_sees_its_own_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let stop = flag(5000);
        let body = "redis.call('SET', KEYS[1], 'x') return redis.call('GET', KEYS[1])";
        let run = run(&engine, &input(body, &["k"], false), &stop);
        assert_eq!(run.reply, reply::bulk("x"));
        assert_eq!(
            run.writes,
            vec![vec![b"SET".to_vec(), b"k".to_vec(), b"x".to_vec()]]
        );
        assert_eq!(run.reads.len(), 1);
        assert!(!run.stopped);
        // Nothing reached RocksDB.
        assert_eq!(
            commands::execute_read(&engine, &[b"GET".to_vec(), b"k".to_vec()], 0),
            reply::null()
        );
    }

    #[test]
    fn calls_are_checked_against_the_callers_acl_user() {
        use rampart_proto::acl::{parse_rule, User};
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let mut user = User::new("u");
        for rule in ["on", "+@all", "-set", "~app:*"] {
            user.apply(&parse_rule(rule.as_bytes()).unwrap().unwrap())
                .unwrap();
        }
        let denials = super::super::acl::Denials::default();
        let as_user = |body: &str| {
            let mut input = input(body, &[], false);
            input.acl = Some(super::super::acl::ScriptAcl {
                user: Arc::new(user.clone()),
                denials: denials.clone(),
            });
            let sha = input.sha.clone();
            (run(&engine, &input, &flag(5000)), sha)
        };
        let (out, sha) =
            as_user("redis.call('incr', 'app:1')\nlocal v = redis.call('get', 'other')\nreturn v");
        assert_eq!(
            out.reply,
            reply::error(format!(
                "{} script: {sha}, on @user_script:2.",
                super::super::acl::NO_KEY
            ))
        );
        let (out, sha) = as_user("return redis.call('set', 'app:1', 'x')");
        assert_eq!(
            out.reply,
            reply::error(format!(
                "{} script: {sha}, on @user_script:1.",
                super::super::acl::NO_COMMAND
            ))
        );
        assert!(out.writes.is_empty(), "a refused call writes nothing");
        let (out, _) = as_user("return redis.pcall('get', 'other')['err']");
        assert_eq!(out.reply, reply::bulk(super::super::acl::NO_KEY));
        let (out, _) = as_user("redis.call('incr', 'app:1') return redis.call('get', 'app:1')");
        assert_eq!(out.reply, reply::bulk("1"));
        let reasons: Vec<String> = denials.take().into_iter().map(|d| d.reason).collect();
        assert_eq!(reasons, ["key", "command", "key"], "for the ACL LOG");
        let (out, _) = as_user(
            "return {redis.acl_check_cmd('get', 'app:1'), redis.acl_check_cmd('get', 'other'), \
             redis.acl_check_cmd('set', 'app:1', 'x'), redis.acl_check_cmd('object', 'encoding', 'app:1')}",
        );
        assert_eq!(
            out.reply,
            reply::array(vec![
                reply::integer(1),
                reply::null(),
                reply::null(),
                reply::integer(1)
            ])
        );
        assert!(denials.take().is_empty(), "acl_check_cmd logs nothing");
        // Without a user (a peer's own request) nothing is checked.
        let unchecked = run(
            &engine,
            &input("return redis.call('set', 'other', 'x')", &[], false),
            &flag(5000),
        );
        assert_eq!(unchecked.reply, reply::status("OK"));
    }

    /// Whether this thread keeps a Lua state for its next run.
    fn state_kept() -> bool {
        STATE.with(|s| s.borrow().is_some())
    }

    #[test]
    fn runs_share_a_state_but_never_each_others_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let eval = |body: &str, keys: &[&str]| run(&engine, &input(body, keys, false), &flag(5000));
        assert_eq!(eval("return KEYS[1]", &["a"]).reply, reply::bulk("a"));
        assert!(state_kept(), "a clean run leaves its state for the next");
        // A compiled script runs again from the cache, in a fresh
        // environment each time.
        let leak = "local seen = rawget(_G, 'mine') rawset(_G, 'mine', 1) return seen";
        assert_eq!(eval(leak, &[]).reply, reply::null());
        assert_eq!(eval(leak, &[]).reply, reply::null());
        assert!(state_kept());
        // Arguments of an earlier run are gone.
        assert_eq!(eval("return #KEYS", &[]).reply, reply::integer(0));
        // Changing a shared table is allowed within the run (as before),
        // but the state is then dropped: the next run sees the original.
        let changes = [
            "string.len = function() return 42 end return string.len('abc')",
            "redis.call = nil return 42",
            "getmetatable('').__index = {len = function() return 42 end} return ('abc'):len()",
            "setmetatable(math, {__index = function() return 1 end}) return 42",
            "rawset(cjson, 'extra', 1) return 42",
        ];
        for body in changes {
            assert_eq!(eval(body, &[]).reply, reply::integer(42), "{body}");
            assert!(!state_kept(), "{body}: the state is not reused");
            let check = "return {string.len('abc'), ('abc'):len(), \
                         type(redis.call), tostring(rawget(math, 'nothing')), \
                         tostring(rawget(cjson, 'extra'))}";
            assert_eq!(
                eval(check, &[]).reply,
                reply::array(vec![
                    reply::integer(3),
                    reply::integer(3),
                    reply::bulk("function"),
                    reply::bulk("nil"),
                    reply::bulk("nil"),
                ]),
                "after {body}"
            );
            assert!(state_kept());
        }
        // Garbage left by a run (the collector stopped, even) is collected
        // before the state's memory could hurt the next run.
        let hoard = "collectgarbage('stop') local t = {} \
                     for i = 1, 200 do t[i] = string.rep('x', 100000) .. i end return 1";
        for _ in 0..5 {
            assert_eq!(eval(hoard, &[]).reply, reply::integer(1));
        }
        let used = STATE.with(|s| s.borrow().as_ref().map(|st| st.lua.used_memory()));
        assert!(
            used.is_some_and(|u| u < 2 * MAX_LEFT_OVER_MEMORY),
            "{used:?}"
        );
        // Errors and compile errors leave a usable state.
        assert!(eval("error('boom')", &[]).reply.is_error());
        assert!(eval("return +", &[]).reply.is_error());
        assert_eq!(eval("return 1", &[]).reply, reply::integer(1));
    }

    #[test]
    fn a_runaway_script_keeps_running_past_the_limit_until_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let stop = flag(100);
        // Before the limit SCRIPT KILL leaves it alone.
        assert_eq!(stop.kill(), Kill::NotBusy);
        let killer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                stop.kill()
            })
        };
        let started = Instant::now();
        let body = "while true do pcall(function() while true do end end) end";
        let run = run(&engine, &input(body, &[], false), &stop);
        assert_eq!(killer.join().expect("killer"), Kill::Killed);
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(run.stopped);
        assert!(run.writes.is_empty());
        let text = run.reply.error_text().unwrap_or_default().to_string();
        assert!(
            text.starts_with("ERR Script killed by user with SCRIPT KILL..."),
            "{text}"
        );
    }

    #[test]
    fn a_script_that_wrote_is_unkillable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let stop = flag(0);
        let body =
            "redis.call('SET', 'k', 'v') local i = 0 while i < 3000000 do i = i + 1 end return i";
        let killer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut last = Kill::NotBusy;
                for _ in 0..50 {
                    std::thread::sleep(Duration::from_millis(2));
                    last = stop.kill();
                    if last == Kill::Unkillable {
                        break;
                    }
                }
                last
            })
        };
        let run = run(&engine, &input(body, &[], false), &stop);
        let seen = killer.join().expect("killer");
        assert_eq!(run.reply, reply::integer(3_000_000));
        assert!(!run.stopped);
        assert_eq!(run.writes.len(), 1);
        assert_ne!(seen, Kill::Killed);
    }

    #[test]
    fn resp3_conversions_both_ways() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let body = r#"
            redis.setresp(3)
            redis.call('HSET', 'h', 'f', 'v')
            local m = redis.call('HGETALL', 'h')
            local missing = redis.call('GET', 'nokey')
            return {m.map.f, tostring(missing), redis.call('EXISTS', 'h')}
        "#;
        let run = run(&engine, &input(body, &[], false), &flag(5000));
        assert_eq!(
            run.reply,
            reply::array(vec![
                reply::bulk("v"),
                reply::bulk("nil"),
                reply::integer(1)
            ])
        );
        let typed = "return {map={a=1}}";
        let run2 = super::run(&engine, &input(typed, &[], true), &flag(5000));
        assert_eq!(
            run2.reply,
            reply::map(vec![(reply::bulk("a"), reply::integer(1))])
        );
        for (body, want) in [
            ("return {double=1.5}", reply::double(1.5)),
            ("return {set={x=true}}", reply::set(vec![reply::bulk("x")])),
            // Booleans follow the script's protocol, not the caller's.
            ("redis.setresp(3) return true", reply::boolean(true)),
            ("redis.setresp(3) return false", reply::boolean(false)),
            ("return false", reply::null()),
            ("return true", reply::integer(1)),
            ("return redis.breakpoint()", reply::null()),
        ] {
            let out = super::run(&engine, &input(body, &[], true), &flag(5000));
            assert_eq!(out.reply, want, "{body}");
        }
        let bad = super::run(&engine, &input("redis.setresp(4)", &[], true), &flag(5000));
        let text = bad.reply.error_text().unwrap_or_default().to_string();
        assert!(
            text.starts_with("ERR RESP version must be 2 or 3."),
            "{text}"
        );
    }

    fn fcall(engine: &Engine, code: &str, name: &str, keys: &[&str], read_only: bool) -> Reply {
        let (_, body) = functions::parse_shebang(code.as_bytes()).expect("shebang");
        let input = ScriptInput {
            sha: format!("fn:{}", sha1_hex(code.as_bytes())),
            body,
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            args: vec![b"a1".to_vec()],
            read_only,
            now_ms: 0,
            function: Some(FunctionTarget { name: name.into() }),
            acl: None,
        };
        run(engine, &input, &flag(5000)).reply
    }

    #[test]
    fn libraries_load_with_the_load_time_api_and_their_functions_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let code = "#!lua name=lib\n\
            local function helper(x) return x .. '!' end\n\
            redis.log(redis.LOG_NOTICE, 'loading')\n\
            redis.register_function('b', function(keys, args) return helper(args[1]) end)\n\
            redis.register_function{function_name='a', callback=function(keys) \
              local r = redis.call('SET', keys[1], 'v') return r end, flags={'no-writes', 'no-cluster'}, description='d'}\n\
            redis.register_function('g', function() return nope end)";
        let lib = load_library(code.as_bytes()).expect("loads");
        assert_eq!(lib.name, "lib");
        let names: Vec<&str> = lib.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "g"]);
        assert_eq!(lib.functions[0].flags, functions::NO_WRITES | 8);
        assert_eq!(lib.functions[0].description.as_deref(), Some(&b"d"[..]));
        assert_eq!(fcall(&engine, code, "b", &[], false), reply::bulk("a1!"));
        assert_eq!(
            fcall(&engine, code, "a", &["k"], true),
            reply::error("ERR Write commands are not allowed from read-only scripts. script: a, on @user_function:5.")
        );
        assert_eq!(
            fcall(&engine, code, "g", &[], false),
            reply::error("ERR user_function:6: Script attempted to access nonexistent global variable 'nope' script: g, on @user_function:6.")
        );
        // The state stays usable, and EVAL is unaffected.
        assert!(state_kept());
        assert_eq!(
            run(&engine, &input("return KEYS[1]", &["x"], true), &flag(5000)).reply,
            reply::bulk("x")
        );
        for (body, error) in [
            ("redis.call('GET', 'a')", "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"),
            ("return 1", "ERR No functions registered"),
            ("return +", "ERR Error compiling function: user_function:2: unexpected symbol near '+'"),
            ("x = 1", "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"),
            ("redis.register_function('a-b', function() end)", "ERR Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"),
            ("redis.register_function{function_name='f', callback=function() end, flags={'x'}}", "ERR Error registering functions: ERR unknown flag given"),
            ("while true do end", "ERR Error registering functions: ERR FUNCTION LOAD timeout"),
        ] {
            let code = format!("#!lua name=bad\n{body}");
            assert_eq!(load_library(code.as_bytes()), Err(reply::error(error)), "{body}");
        }
        assert_eq!(
            load_library(b"#!lua name=x\nredis.register_function('f', function() return 1 end)")
                .map(|l| l.name),
            Ok("x".to_string())
        );
    }

    #[test]
    fn conversions_and_bad_scripts_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        for body in [
            "return {1, 2.9, 'a', true, false, nil, 3}",
            "local t = {} t[1] = t return t",
            "local t = {} t.map = t return t",
            "local t = {} t.set = {[t] = true} return t",
            "return string.rep('x', 1e9)",
            "error(nil)",
            "error(setmetatable({}, {__tostring = function() error('x') end}))",
            "return redis.call(nil)",
            "return cjson.decode('[[[[')",
            "return cmsgpack.unpack('\\221')",
            "return struct.pack('!0 i', 1)",
            "return 1e300",
            "return -0/0",
        ] {
            let run = run(&engine, &input(body, &[], true), &flag(5000));
            let _ = run.reply;
        }
        assert_eq!(number_to_integer(1e20), i64::MIN);
        assert_eq!(number_to_integer(-2.9), -2);
    }
}
