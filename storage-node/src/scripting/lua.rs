//! One script run: a fresh sandboxed Lua 5.1 state with Redis 7's script
//! environment, run against a [`Txn`] overlay over a RocksDB snapshot.
//!
//! `redis.call`/`redis.pcall` run inline through
//! [`commands::apply_write`] on the overlay (the script sees its own
//! writes; nothing reaches RocksDB here). The overlay tracks every user key
//! read with its revision, and the write commands are collected in order:
//! the caller commits them as one Raft entry guarded by those revisions.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic, VmState};
use rampart_proto::command_table::{self, Runs};
use rampart_proto::pb::reply::Kind;
use rampart_proto::{reply, Reply};

use crate::commands;
use crate::engine::{Engine, ReadKey, Txn};

type Argv = Vec<Vec<u8>>;

/// Instructions between two checks of the stop flag and the time limit.
const HOOK_EVERY: u32 = 10_000;
/// Memory one script's Lua state may allocate.
const MEMORY_LIMIT: usize = 256 << 20;
/// Nesting depth beyond which a returned table is cut (cyclic tables); the
/// reply must stay within protobuf's decoding recursion limit (100, two
/// levels per nested array).
const MAX_DEPTH: usize = 30;

/// Why a run must stop (shared with SCRIPT KILL and the caller).
#[derive(Debug, Default)]
pub struct StopFlag(AtomicU8);

const RUNNING: u8 = 0;
const KILLED: u8 = 1;
const CANCELLED: u8 = 2;

impl StopFlag {
    /// SCRIPT KILL.
    pub fn kill(&self) {
        let _ = self
            .0
            .compare_exchange(RUNNING, KILLED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The caller went away (the request was cancelled).
    pub fn cancel(&self) {
        let _ = self
            .0
            .compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn state(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
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
    pub time_limit: Duration,
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

/// Checks that `body` compiles; the error reply Redis gives otherwise.
pub fn check_compiles(body: &[u8]) -> Result<(), Reply> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())
        .map_err(|e| reply::error(format!("ERR cannot start Lua: {e}")))?;
    lua.load(body)
        .set_name("@user_script")
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

/// Error replies are one line.
fn clean(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Runs the script. Never panics on any script; every failure is a reply.
pub fn run(engine: &Engine, input: &ScriptInput, stop: &Arc<StopFlag>) -> ScriptRun {
    let lua = match Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::new(),
    ) {
        Ok(lua) => lua,
        Err(e) => return ScriptRun::failed(reply::error(format!("ERR cannot start Lua: {e}"))),
    };
    let _ = lua.set_memory_limit(MEMORY_LIMIT);
    let mut txn = Txn::over_snapshot(engine);
    txn.track_reads(input.now_ms);
    let txn = RefCell::new(txn);
    let writes: RefCell<Vec<Argv>> = RefCell::new(Vec::new());
    // Line of the user script where the last redis.call / hook ran.
    let line = Arc::new(std::sync::atomic::AtomicI32::new(1));
    let call_line = Cell::new(1);
    let deadline = Instant::now() + input.time_limit;
    {
        let stop = stop.clone();
        let line = line.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_lua, debug| {
                let current = debug.curr_line();
                if current > 0 {
                    line.store(current, Ordering::Relaxed);
                }
                if stop.state() == RUNNING && Instant::now() >= deadline {
                    stop.0.store(TIMED_OUT, Ordering::SeqCst);
                }
                if stop.state() != RUNNING {
                    return Err(mlua::Error::RuntimeError("script stopped".into()));
                }
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
            let outcome = redis_call(lua, &txn, &writes, input, args)?;
            Ok(outcome)
        })?;
        install_libs(&lua)?;
        install_args(&lua, &input.keys, &input.args)?;
        lua.globals().set("__rampart_call", raw_call)?;
        let flag = stop.clone();
        lua.globals().set(
            "__rampart_stopped",
            lua.create_function(move |_, ()| Ok(flag.state() != RUNNING))?,
        )?;
        let env: Table = lua.load(SETUP).set_name("=rampart_setup").call(())?;
        lua.globals().raw_set("__rampart_env", Value::Nil)?;
        let function = match lua
            .load(input.body.as_slice())
            .set_name("@user_script")
            .set_environment(env)
            .into_function()
        {
            Ok(f) => f,
            Err(e) => return Ok(Err(compile_error(&e))),
        };
        let runner = lua
            .load("local f = ... return pcall(f)")
            .set_name("=rampart_runner")
            .into_function()?;
        let out: MultiValue = runner.call(function)?;
        let mut out = out.into_iter();
        let ok = matches!(out.next(), Some(Value::Boolean(true)));
        let value = out.next().unwrap_or(Value::Nil);
        if ok {
            Ok(Ok(lua_to_reply(&value, 0)))
        } else {
            Ok(Err(raised_error(&value, &input.sha, call_line.get())))
        }
    });
    let stopped = stop.state();
    let at = line.load(Ordering::Relaxed).max(call_line.get());
    let reply = if stopped != RUNNING {
        let text = match stopped {
            KILLED => "ERR Script killed by user with SCRIPT KILL...".to_string(),
            TIMED_OUT => format!(
                "ERR Script killed: it ran longer than the script time limit ({} ms)...",
                input.time_limit.as_millis()
            ),
            _ => "ERR Script cancelled: the client went away...".to_string(),
        };
        reply::error(format!(
            "{text} script: {}, on @user_script:{at}.",
            input.sha
        ))
    } else {
        match result {
            Ok(Ok(reply)) | Ok(Err(reply)) => reply,
            Err(e) => reply::error(clean(&format!(
                "ERR {} script: {}, on @user_script:{at}.",
                lua_error_text(&e),
                input.sha
            ))),
        }
    };
    let txn = txn.into_inner();
    ScriptRun {
        reply,
        writes: if stopped != RUNNING {
            Vec::new()
        } else {
            writes.into_inner()
        },
        reads: txn.read_keys(),
        stopped: stopped != RUNNING,
    }
}

const TIMED_OUT: u8 = 3;

/// The line of the innermost user-script frame, if any.
fn user_line(lua: &Lua) -> Option<i32> {
    (1..6).find_map(|level| {
        let debug = lua.inspect_stack(level)?;
        let source = debug.source();
        let is_user = source.source.as_deref() == Some("@user_script");
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
fn raised_error(value: &Value, sha: &str, call_line: i32) -> Reply {
    match value {
        Value::Table(t) => {
            if let Ok(Value::String(err)) = t.raw_get::<Value>("err") {
                let text = String::from_utf8_lossy(&err.as_bytes()).into_owned();
                return reply::error(clean(&format!(
                    "{text} script: {sha}, on @user_script:{call_line}."
                )));
            }
            reply::error(format!(
                "ERR Error running script: the script raised a table without an err field script: {sha}, on @user_script:{call_line}."
            ))
        }
        Value::String(s) => {
            let text = String::from_utf8_lossy(&s.as_bytes()).into_owned();
            let line = text
                .strip_prefix("user_script:")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse::<i32>().ok())
                .unwrap_or(call_line);
            reply::error(clean(&format!(
                "ERR {text} script: {sha}, on @user_script:{line}."
            )))
        }
        Value::Error(e) => reply::error(clean(&format!(
            "ERR {} script: {sha}, on @user_script:{call_line}.",
            lua_error_text(e)
        ))),
        other => reply::error(clean(&format!(
            "ERR {} script: {sha}, on @user_script:{call_line}.",
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
    if spec.flags.contains(&"noscript") || spec.runs == Runs::Proxy {
        return fail("ERR This Redis command is not allowed from script");
    }
    if !spec.arity_ok(argv.len()) {
        return fail("ERR Wrong number of args calling Redis command from script");
    }
    let write = spec.is_write();
    if write && input.read_only {
        return fail("ERR Write commands are not allowed from read-only scripts.");
    }
    let result = {
        let mut txn = txn.borrow_mut();
        commands::apply_write(&mut txn, &argv, input.now_ms)
    };
    if write {
        writes.borrow_mut().push(argv);
    }
    if let Some(Kind::Error(text)) = &result.kind {
        return fail(text);
    }
    Ok((reply_to_lua(lua, &result, 0)?, false))
}

/// Redis reply → Lua value (Redis's conversion rules, RESP2).
fn reply_to_lua(lua: &Lua, r: &Reply, depth: usize) -> mlua::Result<Value> {
    let list = |items: &[Reply]| -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.iter().enumerate() {
            t.raw_set(i + 1, reply_to_lua(lua, item, depth + 1)?)?;
        }
        Ok(Value::Table(t))
    };
    Ok(match &r.kind {
        Some(Kind::Status(s)) => {
            let t = lua.create_table()?;
            t.set("ok", s.as_str())?;
            Value::Table(t)
        }
        Some(Kind::Error(e)) => {
            let t = lua.create_table()?;
            t.set("err", e.as_str())?;
            Value::Table(t)
        }
        Some(Kind::Integer(i)) => Value::Number(*i as f64),
        Some(Kind::Bulk(b)) => Value::String(lua.create_string(b)?),
        Some(Kind::Null(_)) | Some(Kind::NullArray(_)) | None => Value::Boolean(false),
        Some(Kind::Array(l)) | Some(Kind::Set(l)) | Some(Kind::Map(l)) | Some(Kind::Pairs(l)) => {
            if depth > MAX_DEPTH {
                Value::Boolean(false)
            } else {
                list(&l.items)?
            }
        }
        Some(Kind::Double(d)) => {
            Value::String(lua.create_string(rampart_proto::reply::format_double(*d))?)
        }
        Some(Kind::Boolean(b)) => Value::Number(if *b { 1.0 } else { 0.0 }),
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

/// Lua value → Redis reply (Redis's conversion rules).
pub(crate) fn lua_to_reply(value: &Value, depth: usize) -> Reply {
    match value {
        Value::Nil | Value::Boolean(false) => reply::null(),
        Value::Boolean(true) => reply::integer(1),
        Value::Integer(i) => reply::integer(*i),
        Value::Number(n) => reply::integer(number_to_integer(*n)),
        Value::String(s) => reply::bulk(s.as_bytes().to_vec()),
        Value::Table(t) => {
            if let Ok(Value::String(err)) = t.raw_get::<Value>("err") {
                return reply::error(clean(&String::from_utf8_lossy(&err.as_bytes())));
            }
            if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
                return reply::status(clean(&String::from_utf8_lossy(&ok.as_bytes())));
            }
            if depth >= MAX_DEPTH {
                return reply::null();
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v, depth + 1)),
                }
            }
            reply::array(items)
        }
        _ => reply::null(),
    }
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

/// Builds `redis`, `cjson` and `bit`, then the wrappers and the read-only
/// global environment (left in `__rampart_env`).
const SETUP: &str = r#"
local raw_call = __rampart_call
__rampart_call = nil
local stopped = __rampart_stopped
__rampart_stopped = nil
-- A stopped script cannot swallow its stop with pcall.
local orig_pcall, orig_xpcall = pcall, xpcall
local function check(...)
  if stopped() then error("script stopped", 0) end
  return ...
end
pcall = function(...) return check(orig_pcall(...)) end
xpcall = function(...) return check(orig_xpcall(...)) end
redis.call = function(...)
  local v, failed = raw_call(...)
  if failed then error(v) end
  return v
end
redis.pcall = function(...)
  local v = raw_call(...)
  return v
end
for _, name in ipairs({"dofile", "loadfile", "print", "setfenv", "getfenv",
                       "loadstring", "gcinfo", "newproxy", "module", "require"}) do
  rawset(_G, name, nil)
end
local real = _G
local env = {}
setmetatable(env, {
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
})
real._G = env
__rampart_env = env
return env
"#;

/// Installs the `redis`, `cjson` and `bit` libraries (Rust functions).
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
        lua.create_function(|_, v: i64| match v {
            2 => Ok(()),
            3 => Err(mlua::Error::RuntimeError(
                "RESP3 replies in scripts are not supported by Rampart (only redis.setresp(2))"
                    .into(),
            )),
            _ => Err(mlua::Error::RuntimeError(
                "RESP version must be 2 or 3.".into(),
            )),
        })?,
    )?;
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.set("set_repl", lua.create_function(|_, _v: Value| Ok(()))?)?;
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
    g.set("cjson", super::libs::cjson(lua)?)?;
    g.set("bit", super::libs::bit(lua)?)?;
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
            time_limit: Duration::from_millis(200),
        }
    }

    #[test]
    fn a_run_collects_writes_and_reads_and_sees_its_own_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let stop = Arc::new(StopFlag::default());
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
    fn a_runaway_script_is_stopped_by_the_time_limit_without_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let stop = Arc::new(StopFlag::default());
        let body =
            "redis.call('SET', 'k', 'v') while true do pcall(function() while true do end end) end";
        let run = run(&engine, &input(body, &[], false), &stop);
        assert!(run.stopped);
        assert!(run.writes.is_empty());
        let text = run.reply.error_text().unwrap_or_default().to_string();
        assert!(
            text.starts_with("ERR Script killed: it ran longer than"),
            "{text}"
        );
    }

    #[test]
    fn conversions_and_bad_scripts_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        for body in [
            "return {1, 2.9, 'a', true, false, nil, 3}",
            "local t = {} t[1] = t return t",
            "return string.rep('x', 1e9)",
            "error(nil)",
            "error(setmetatable({}, {__tostring = function() error('x') end}))",
            "return redis.call(nil)",
            "return cjson.decode('[[[[')",
            "return 1e300",
            "return -0/0",
        ] {
            let stop = Arc::new(StopFlag::default());
            let run = run(&engine, &input(body, &[], true), &stop);
            let _ = run.reply;
        }
        assert_eq!(number_to_integer(1e20), i64::MIN);
        assert_eq!(number_to_integer(-2.9), -2);
    }
}
