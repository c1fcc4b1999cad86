//! Redis 7 functions (`FUNCTION ...`, `FCALL`, `FCALL_RO`): libraries as
//! replicated state, their records and the DUMP payload (design:
//! docs/scripting.md, "Functions").
//!
//! A library is stored as one record under `keys::function_library_key`:
//! its code and what its load registered (function names, flags,
//! descriptions), so the state machine checks name clashes without running
//! Lua. Each function also has an index entry (`keys::function_name_key`)
//! naming its library, for FCALL. The leader runs a library's load code
//! (`lua::load_library`) before it proposes the record; the state machine
//! re-checks clashes against the state the entry applies to.

use std::collections::BTreeMap;

use rampart_proto::{reply, Argv, Reply};

use crate::engine::{keys, DataRead, Txn};

/// Function flags, in Redis's order (the order `FUNCTION LIST` shows).
pub const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];
/// Bit of `no-writes` in [`FunctionMeta::flags`].
pub const NO_WRITES: u8 = 1;

pub const ENGINE: &str = "LUA";

pub const LIBRARY_NOT_FOUND: &str = "ERR Library not found";
pub const FUNCTION_NOT_FOUND: &str = "ERR Function not found";
pub const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
pub const NAME_RULE: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// One registered function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionMeta {
    pub name: String,
    pub description: Option<Vec<u8>>,
    /// Bit i set: [`FLAG_NAMES`]`[i]`.
    pub flags: u8,
}

/// A library: its name (from the shebang), code, and functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub name: String,
    pub code: Vec<u8>,
    pub functions: Vec<FunctionMeta>,
}

/// Whether `name` is a valid library or function name.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The library name of `code`'s `#!lua name=<lib>` shebang (Redis's
/// parsing and errors), and the code Lua compiles: the shebang line
/// emptied, so error lines count as in the user's code.
pub fn parse_shebang(code: &[u8]) -> Result<(String, Vec<u8>), Reply> {
    let Some(rest) = code.strip_prefix(b"#!") else {
        return Err(reply::error("ERR Missing library metadata"));
    };
    let Some(line_end) = rest.iter().position(|&b| b == b'\n') else {
        return Err(reply::error("ERR Invalid library metadata"));
    };
    let mut parts = rest[..line_end]
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default().to_vec();
    let mut name: Option<Vec<u8>> = None;
    for part in parts {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(reply::error(
                    "ERR Invalid metadata value, name argument was given multiple times",
                ));
            }
            name = Some(part[5..].to_vec());
            continue;
        }
        return Err(reply::error(format!(
            "ERR Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        )));
    }
    let Some(name) = name else {
        return Err(reply::error("ERR Library name was not given"));
    };
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(reply::error(format!(
            "ERR Engine '{}' not found",
            String::from_utf8_lossy(&engine)
        )));
    }
    if !valid_name(&name) {
        return Err(reply::error(format!("ERR {NAME_RULE}")));
    }
    let body = code[2 + line_end..].to_vec();
    Ok((String::from_utf8_lossy(&name).into_owned(), body))
}

// ---- records ----

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Record format version.
const RECORD_V1: u8 = 1;

impl Library {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RECORD_V1];
        put_bytes(&mut out, self.name.as_bytes());
        put_bytes(&mut out, &self.code);
        out.extend_from_slice(&(self.functions.len() as u32).to_be_bytes());
        for f in &self.functions {
            put_bytes(&mut out, f.name.as_bytes());
            out.push(f.flags);
            match &f.description {
                Some(d) => {
                    out.push(1);
                    put_bytes(&mut out, d);
                }
                None => out.push(0),
            }
        }
        out
    }

    pub fn decode(data: &[u8]) -> Option<Library> {
        let mut r = Reader(data);
        if r.u8()? != RECORD_V1 {
            return None;
        }
        let name = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let code = r.bytes()?.to_vec();
        let n = r.u32()? as usize;
        let mut functions = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let fname = String::from_utf8(r.bytes()?.to_vec()).ok()?;
            let flags = r.u8()?;
            let description = match r.u8()? {
                0 => None,
                _ => Some(r.bytes()?.to_vec()),
            };
            functions.push(FunctionMeta {
                name: fname,
                description,
                flags,
            });
        }
        Some(Library {
            name,
            code,
            functions,
        })
    }

    pub fn function(&self, name: &[u8]) -> Option<&FunctionMeta> {
        self.functions.iter().find(|f| f.name.as_bytes() == name)
    }
}

/// Every library, by name.
pub fn libraries<R: DataRead + ?Sized>(r: &R) -> BTreeMap<String, Library> {
    let (start, end) = keys::function_library_range();
    let mut out = BTreeMap::new();
    let _ = r.for_each(&start, &end, &mut |_, v| {
        match Library::decode(v) {
            Some(lib) => {
                out.insert(lib.name.clone(), lib);
            }
            None => tracing::warn!("skipping a FUNCTION library record that does not decode"),
        }
        true
    });
    out
}

/// The library `name`, if loaded.
pub fn library<R: DataRead + ?Sized>(r: &R, name: &[u8]) -> Option<Library> {
    r.get(&keys::function_library_key(name))
        .ok()
        .flatten()
        .and_then(|v| Library::decode(&v))
}

/// The library holding function `name`, if any.
pub fn library_of<R: DataRead + ?Sized>(r: &R, function: &[u8]) -> Option<Library> {
    let lib = r.get(&keys::function_name_key(function)).ok().flatten()?;
    library(r, &lib)
}

// ---- the state machine's side ----

/// How a write of libraries treats existing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// FUNCTION LOAD: a library of the same name is an error.
    Create,
    /// FUNCTION LOAD REPLACE / RESTORE REPLACE: it is replaced.
    Replace,
    /// FUNCTION RESTORE (APPEND): it is an error (Redis's other text).
    Append,
    /// FUNCTION RESTORE FLUSH: every library goes first.
    Flush,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Create => "create",
            Policy::Replace => "replace",
            Policy::Append => "append",
            Policy::Flush => "flush",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Policy> {
        Some(match s {
            b"create" => Policy::Create,
            b"replace" => Policy::Replace,
            b"append" => Policy::Append,
            b"flush" => Policy::Flush,
            _ => return None,
        })
    }
}

pub const PUT: &str = "rampart.script.fnput";
pub const DELETE: &str = "rampart.script.fndelete";
pub const FLUSH: &str = "rampart.script.fnflush";

/// The internal command that stores `libs` under `policy`.
pub fn put_command(policy: Policy, libs: &[Library]) -> Argv {
    let mut argv = vec![PUT.as_bytes().to_vec(), policy.as_str().as_bytes().to_vec()];
    argv.extend(libs.iter().map(Library::encode));
    argv
}

pub fn delete_command(name: &[u8]) -> Argv {
    vec![DELETE.as_bytes().to_vec(), name.to_vec()]
}

pub fn flush_command() -> Argv {
    vec![FLUSH.as_bytes().to_vec()]
}

fn remove(txn: &mut Txn<'_>, lib: &Library) {
    txn.delete(keys::function_library_key(lib.name.as_bytes()));
    for f in &lib.functions {
        txn.delete(keys::function_name_key(f.name.as_bytes()));
    }
}

fn store(txn: &mut Txn<'_>, lib: &Library) {
    txn.put(
        keys::function_library_key(lib.name.as_bytes()),
        lib.encode(),
    );
    for f in &lib.functions {
        txn.put(
            keys::function_name_key(f.name.as_bytes()),
            lib.name.as_bytes().to_vec(),
        );
    }
}

/// What `libs` under `policy` would leave, or Redis's error (nothing is
/// changed then): the libraries to remove and the ones to store.
pub fn check_put(
    current: &BTreeMap<String, Library>,
    policy: Policy,
    libs: &[Library],
) -> Result<Vec<String>, Reply> {
    let mut after = if policy == Policy::Flush {
        BTreeMap::new()
    } else {
        current.clone()
    };
    let mut removed: Vec<String> = match policy {
        Policy::Flush => current.keys().cloned().collect(),
        _ => Vec::new(),
    };
    for lib in libs {
        if after.contains_key(&lib.name) {
            match policy {
                Policy::Create => {
                    return Err(reply::error(format!(
                        "ERR Library '{}' already exists",
                        lib.name
                    )))
                }
                Policy::Append | Policy::Flush => {
                    return Err(reply::error(format!(
                        "ERR Library {} already exists",
                        lib.name
                    )))
                }
                Policy::Replace => {
                    after.remove(&lib.name);
                    removed.push(lib.name.clone());
                }
            }
        }
        for f in &lib.functions {
            if after
                .values()
                .any(|other| other.function(f.name.as_bytes()).is_some())
            {
                return Err(reply::error(format!(
                    "ERR Function {} already exists",
                    f.name
                )));
            }
        }
        after.insert(lib.name.clone(), lib.clone());
    }
    Ok(removed)
}

/// Applies a `rampart.script.fn*` command inside a Raft entry; `None` when
/// `argv` is not one.
pub fn apply_internal(txn: &mut Txn<'_>, argv: &[Vec<u8>]) -> Option<Reply> {
    let name = argv.first()?;
    Some(match (name.as_slice(), &argv[1..]) {
        (n, [policy, records @ ..]) if n == PUT.as_bytes() => {
            let Some(policy) = Policy::parse(policy) else {
                return Some(reply::error("ERR internal error: bad function policy"));
            };
            let mut libs = Vec::with_capacity(records.len());
            for record in records {
                match Library::decode(record) {
                    Some(lib) => libs.push(lib),
                    None => return Some(reply::error("ERR internal error: bad library record")),
                }
            }
            let current = libraries(&*txn);
            match check_put(&current, policy, &libs) {
                Err(error) => error,
                Ok(removed) => {
                    for name in removed {
                        if let Some(lib) = current.get(&name) {
                            remove(txn, lib);
                        }
                    }
                    for lib in &libs {
                        store(txn, lib);
                    }
                    match (policy, libs.as_slice()) {
                        (Policy::Create | Policy::Replace, [lib]) => reply::bulk(lib.name.clone()),
                        _ => reply::ok(),
                    }
                }
            }
        }
        (n, [lib]) if n == DELETE.as_bytes() => match library(&*txn, lib) {
            Some(found) => {
                remove(txn, &found);
                reply::ok()
            }
            None => reply::error(LIBRARY_NOT_FOUND),
        },
        (n, []) if n == FLUSH.as_bytes() => {
            let (start, end) = keys::function_range();
            txn.delete_range(start, end);
            reply::ok()
        }
        _ => return None,
    })
}

// ---- FUNCTION DUMP / RESTORE payload ----

/// Payload: magic, version, then each library's code (length-prefixed),
/// then an FNV-1a 64 checksum of everything before it.
const MAGIC: &[u8] = b"RAMPARTFN";
const PAYLOAD_V1: u8 = 1;

pub fn dump(libs: &BTreeMap<String, Library>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(PAYLOAD_V1);
    for lib in libs.values() {
        put_bytes(&mut out, &lib.code);
    }
    let sum = keys::fnv1a64(&out);
    out.extend_from_slice(&sum.to_be_bytes());
    out
}

/// The library codes of a payload; Redis's error when it is not one.
pub fn undump(payload: &[u8]) -> Result<Vec<Vec<u8>>, Reply> {
    let bad = || reply::error(BAD_PAYLOAD);
    if payload.len() < MAGIC.len() + 1 + 8 {
        return Err(bad());
    }
    let (body, sum) = payload.split_at(payload.len() - 8);
    let sum = u64::from_be_bytes(<[u8; 8]>::try_from(sum).map_err(|_| bad())?);
    if keys::fnv1a64(body) != sum || !body.starts_with(MAGIC) || body[MAGIC.len()] != PAYLOAD_V1 {
        return Err(bad());
    }
    let mut r = Reader(&body[MAGIC.len() + 1..]);
    let mut codes = Vec::new();
    while !r.0.is_empty() {
        codes.push(r.bytes().ok_or_else(bad)?.to_vec());
    }
    Ok(codes)
}

// ---- replies ----

fn function_reply(f: &FunctionMeta) -> Reply {
    let flags = FLAG_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| f.flags & (1 << i) != 0)
        .map(|(_, name)| reply::status(*name))
        .collect();
    reply::map(vec![
        (reply::bulk("name"), reply::bulk(f.name.clone())),
        (
            reply::bulk("description"),
            f.description.clone().map_or_else(reply::null, reply::bulk),
        ),
        (reply::bulk("flags"), reply::set(flags)),
    ])
}

/// FUNCTION LIST's reply (libraries matching `pattern`).
pub fn list_reply(
    libs: &BTreeMap<String, Library>,
    pattern: Option<&[u8]>,
    with_code: bool,
) -> Reply {
    let items = libs
        .values()
        .filter(|lib| {
            pattern.is_none_or(|p| rampart_proto::glob::glob_match(p, lib.name.as_bytes()))
        })
        .map(|lib| {
            let mut pairs = vec![
                (reply::bulk("library_name"), reply::bulk(lib.name.clone())),
                (reply::bulk("engine"), reply::bulk(ENGINE)),
                (
                    reply::bulk("functions"),
                    reply::array(lib.functions.iter().map(function_reply).collect()),
                ),
            ];
            if with_code {
                pairs.push((reply::bulk("library_code"), reply::bulk(lib.code.clone())));
            }
            reply::map(pairs)
        })
        .collect();
    reply::array(items)
}

/// FUNCTION STATS' reply; `running`: the function running now, if any
/// (name, its command, milliseconds it has run).
pub fn stats_reply(
    libs: &BTreeMap<String, Library>,
    running: Option<(String, Vec<Vec<u8>>, u64)>,
) -> Reply {
    let functions: usize = libs.values().map(|l| l.functions.len()).sum();
    let running = match running {
        None => reply::null(),
        Some((name, command, ms)) => reply::map(vec![
            (reply::bulk("name"), reply::bulk(name)),
            (
                reply::bulk("command"),
                reply::array(command.into_iter().map(reply::bulk).collect()),
            ),
            (reply::bulk("duration_ms"), reply::integer(ms as i64)),
        ]),
    };
    reply::map(vec![
        (reply::bulk("running_script"), running),
        (
            reply::bulk("engines"),
            reply::map(vec![(
                reply::bulk(ENGINE),
                reply::map(vec![
                    (
                        reply::bulk("libraries_count"),
                        reply::integer(libs.len() as i64),
                    ),
                    (
                        reply::bulk("functions_count"),
                        reply::integer(functions as i64),
                    ),
                ]),
            )]),
        ),
    ])
}

pub fn help() -> Reply {
    reply::array(
        [
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
            "HELP",
            "    Prints this help.",
        ]
        .iter()
        .map(|line| reply::status(*line))
        .collect(),
    )
}

/// What a FUNCTION command does once parsed and checked on the leader.
pub enum Plan {
    /// Answered as is.
    Reply(Reply),
    /// This internal write goes through the log; its reply is the answer.
    Write(Argv),
}

fn wrong_arity(sub: &str) -> Reply {
    reply::error(rampart_proto::errors::wrong_arity(&format!(
        "function|{sub}"
    )))
}

/// Plans `FUNCTION <sub> ...` against `r` (the leader's view after a
/// ReadIndex barrier, or a transaction's overlay). Runs a library's load
/// code (LOAD, RESTORE) on this thread. KILL and STATS' running script
/// are the caller's: `running` gives it.
pub fn plan<R: DataRead + ?Sized>(
    r: &R,
    argv: &[Vec<u8>],
    running: impl FnOnce() -> Option<(String, Vec<Vec<u8>>, u64)>,
) -> Plan {
    let sub = argv
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .unwrap_or_default();
    let args = argv.get(2..).unwrap_or_default();
    Plan::Reply(match sub.as_str() {
        "load" => {
            let (replace, code) = match args {
                [code] => (false, code),
                [opt, code] if opt.eq_ignore_ascii_case(b"replace") => (true, code),
                [] => return Plan::Reply(wrong_arity("load")),
                [opt, ..] => {
                    return Plan::Reply(reply::error(format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(opt)
                    )))
                }
            };
            let name = match parse_shebang(code) {
                Ok((name, _)) => name,
                Err(e) => return Plan::Reply(e),
            };
            if !replace && library(r, name.as_bytes()).is_some() {
                return Plan::Reply(reply::error(format!("ERR Library '{name}' already exists")));
            }
            match super::lua::load_library(code) {
                Err(e) => e,
                Ok(lib) => {
                    let policy = if replace {
                        Policy::Replace
                    } else {
                        Policy::Create
                    };
                    if let Err(e) = check_put(&libraries(r), policy, std::slice::from_ref(&lib)) {
                        return Plan::Reply(e);
                    }
                    return Plan::Write(put_command(policy, &[lib]));
                }
            }
        }
        "delete" => match args {
            [name] => match library(r, name) {
                Some(_) => return Plan::Write(delete_command(name)),
                None => reply::error(LIBRARY_NOT_FOUND),
            },
            _ => wrong_arity("delete"),
        },
        "flush" => match args {
            [] => return Plan::Write(flush_command()),
            [mode] if mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async") => {
                return Plan::Write(flush_command())
            }
            [_] => reply::error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
            _ => reply::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
                String::from_utf8_lossy(&argv[1])
            )),
        },
        "list" => {
            let mut pattern: Option<&[u8]> = None;
            let mut with_code = false;
            let mut i = 0;
            while i < args.len() {
                let a = &args[i];
                if a.eq_ignore_ascii_case(b"withcode") && !with_code {
                    with_code = true;
                } else if a.eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
                    match args.get(i + 1) {
                        Some(p) => pattern = Some(p),
                        None => {
                            return Plan::Reply(reply::error(
                                "ERR library name argument was not given",
                            ))
                        }
                    }
                    i += 1;
                } else {
                    return Plan::Reply(reply::error(format!(
                        "ERR Unknown argument {}",
                        String::from_utf8_lossy(a)
                    )));
                }
                i += 1;
            }
            list_reply(&libraries(r), pattern, with_code)
        }
        "dump" => match args {
            [] => reply::bulk(dump(&libraries(r))),
            _ => wrong_arity("dump"),
        },
        "restore" => {
            let (payload, policy) = match args {
                [payload] => (payload, Policy::Append),
                [payload, p] => {
                    let policy = if p.eq_ignore_ascii_case(b"append") {
                        Policy::Append
                    } else if p.eq_ignore_ascii_case(b"replace") {
                        Policy::Replace
                    } else if p.eq_ignore_ascii_case(b"flush") {
                        Policy::Flush
                    } else {
                        return Plan::Reply(reply::error(
                            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                        ));
                    };
                    (payload, policy)
                }
                [] => return Plan::Reply(wrong_arity("restore")),
                _ => return Plan::Reply(reply::error("ERR Unknown argument given")),
            };
            let codes = match undump(payload) {
                Ok(codes) => codes,
                Err(e) => return Plan::Reply(e),
            };
            let mut libs = Vec::with_capacity(codes.len());
            for code in codes {
                match super::lua::load_library(&code) {
                    Ok(lib) => libs.push(lib),
                    Err(e) => return Plan::Reply(e),
                }
            }
            if let Err(e) = check_put(&libraries(r), policy, &libs) {
                return Plan::Reply(e);
            }
            return Plan::Write(put_command(policy, &libs));
        }
        "stats" => match args {
            [] => stats_reply(&libraries(r), running()),
            _ => wrong_arity("stats"),
        },
        "help" => match args {
            [] => help(),
            _ => wrong_arity("help"),
        },
        "kill" => wrong_arity("kill"),
        _ => reply::error(format!(
            "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(argv.get(1).map(Vec::as_slice).unwrap_or_default())
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    fn lib(name: &str, functions: &[&str]) -> Library {
        Library {
            name: name.into(),
            code: format!("#!lua name={name}\n").into_bytes(),
            functions: functions
                .iter()
                .map(|f| FunctionMeta {
                    name: f.to_string(),
                    description: None,
                    flags: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn shebangs_parse_as_redis_does() {
        let ok = parse_shebang(b"#!lua name=mylib\nreturn 1").expect("parses");
        assert_eq!(ok, ("mylib".to_string(), b"\nreturn 1".to_vec()));
        for (code, error) in [
            ("return 1", "ERR Missing library metadata"),
            ("#!lua name=x", "ERR Invalid library metadata"),
            ("#!lua\n", "ERR Library name was not given"),
            ("#!lua name=a-b\n", "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"),
            ("#!lua name=x foo=bar\n", "ERR Invalid metadata value given: foo=bar"),
            ("#!luax name=x\n", "ERR Engine 'luax' not found"),
        ] {
            assert_eq!(parse_shebang(code.as_bytes()), Err(reply::error(error)), "{code}");
        }
    }

    #[test]
    fn records_and_payloads_round_trip_and_garbage_is_refused() {
        let mut l = lib("a", &["f", "g"]);
        l.functions[0].description = Some(b"d".to_vec());
        l.functions[1].flags = NO_WRITES | 8;
        assert_eq!(Library::decode(&l.encode()), Some(l.clone()));
        assert_eq!(Library::decode(b"\x01\x00"), None);
        let libs: BTreeMap<String, Library> = [("a".to_string(), l.clone())].into();
        let payload = dump(&libs);
        assert_eq!(undump(&payload), Ok(vec![l.code.clone()]));
        let mut bad = payload.clone();
        bad[12] ^= 1;
        assert_eq!(undump(&bad), Err(reply::error(BAD_PAYLOAD)));
        assert_eq!(undump(b"garbage"), Err(reply::error(BAD_PAYLOAD)));
        assert_eq!(undump(&dump(&BTreeMap::new())), Ok(vec![]));
    }

    #[test]
    fn puts_check_clashes_and_flushall_keeps_libraries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let mut txn = engine.txn();
        let put = |txn: &mut Txn<'_>, policy, libs: &[Library]| {
            apply_internal(txn, &put_command(policy, libs)).expect("internal")
        };
        assert_eq!(
            put(&mut txn, Policy::Create, &[lib("a", &["f"])]),
            reply::bulk("a")
        );
        assert_eq!(
            put(&mut txn, Policy::Create, &[lib("a", &["g"])]),
            reply::error("ERR Library 'a' already exists")
        );
        assert_eq!(
            put(&mut txn, Policy::Create, &[lib("b", &["f"])]),
            reply::error("ERR Function f already exists")
        );
        assert_eq!(
            put(&mut txn, Policy::Replace, &[lib("a", &["g"])]),
            reply::bulk("a")
        );
        assert!(library_of(&txn, b"f").is_none());
        assert_eq!(library_of(&txn, b"g").map(|l| l.name), Some("a".into()));
        assert_eq!(
            put(&mut txn, Policy::Append, &[lib("a", &["h"])]),
            reply::error("ERR Library a already exists")
        );
        crate::commands::apply_write(&mut txn, &[b"FLUSHALL".to_vec()], 0);
        assert_eq!(libraries(&txn).len(), 1);
        assert_eq!(
            put(&mut txn, Policy::Flush, &[lib("c", &["g"])]),
            reply::ok()
        );
        assert_eq!(
            libraries(&txn).keys().cloned().collect::<Vec<_>>(),
            vec!["c"]
        );
        assert_eq!(
            apply_internal(&mut txn, &delete_command(b"a")),
            Some(reply::error(LIBRARY_NOT_FOUND))
        );
        assert_eq!(
            apply_internal(&mut txn, &delete_command(b"c")),
            Some(reply::ok())
        );
        assert!(library_of(&txn, b"g").is_none());
        put(&mut txn, Policy::Create, &[lib("d", &["x"])]);
        assert_eq!(
            apply_internal(&mut txn, &flush_command()),
            Some(reply::ok())
        );
        assert!(libraries(&txn).is_empty());
        assert!(apply_internal(&mut txn, &[b"GET".to_vec()]).is_none());
    }
}
