//! Everything the proxy, the policies and the node need to know about one
//! command, in one place: [`CommandSpec`]. The rows live in
//! [`command_table`](crate::command_table); every rule that used to be a
//! loose list (heavy, blocking, script, never rejected) is a field here or
//! derived from one.

use std::time::Duration;

use crate::key_spec::{self, GetKeysProc, KeyRef, KeySpec};

/// Where a command is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// Answered by the proxy from connection state (PING, HELLO, CLIENT...).
    Proxy,
    /// Read on the node, after a linearizability check.
    NodeRead,
    /// Replicated through the Raft log and applied by every node.
    NodeWrite,
    /// A Lua script (EVAL*) run by the node's script runner on the leader:
    /// it runs until it ends or SCRIPT KILL stops it, never cut by a deadline.
    Script,
    /// Script cache management (SCRIPT): the node's script runner, with the
    /// usual deadlines.
    ScriptAdmin,
}

/// The admission class a command belongs to by default (SPEC §2, Layer 1).
/// Classified by name only; an operator can move commands between the
/// policies' classes in config, this is the compiled-in default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Never refused by Layer 1: health checks must see the truth.
    Exempt,
    /// Single-key fast paths.
    Cheap,
    /// Keyspace and collection scans (KEYS, SCAN, HSCAN...).
    HeavyScan,
    /// Whole-collection and range reads (XREAD, HGETALL, ZRANGE...).
    HeavyData,
    /// Lua scripts.
    HeavyScript,
    /// Operator commands (FLUSHALL, SCRIPT...).
    Admin,
    /// Commands that always block (BLPOP, BZPOPMIN...).
    Blocking,
}

impl Class {
    /// The policies' class name; `None` for [`Class::Exempt`].
    pub const fn policy_class(self) -> Option<&'static str> {
        match self {
            Class::Exempt => None,
            Class::Cheap => Some("cheap"),
            Class::HeavyScan => Some("heavy_scan"),
            Class::HeavyData => Some("heavy_data"),
            Class::HeavyScript => Some("heavy_script"),
            Class::Admin => Some("admin"),
            Class::Blocking => Some("blocking"),
        }
    }

    /// Whether the node runs it on its bounded heavy executor: cost grows
    /// with the data it touches.
    pub const fn is_heavy(self) -> bool {
        matches!(
            self,
            Class::HeavyScan | Class::HeavyData | Class::HeavyScript
        )
    }
}

/// Whether and how a command blocks, and where its timeout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    Never,
    /// Always blocks; the timeout (seconds, fractions allowed) is the last
    /// argument (BLPOP, BLMOVE, BZPOPMIN...).
    TimeoutLast,
    /// Always blocks; the timeout (seconds) is at this index (BLMPOP, BZMPOP).
    TimeoutAt(usize),
    /// Blocks only with a `BLOCK <milliseconds>` option before `STREAMS`
    /// (XREAD, XREADGROUP).
    BlockOption,
}

/// One command's facts. See `docs/commands.md` for how to add one.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Lower-case name, as `COMMAND` reports it (`parent|sub` for a
    /// subcommand).
    pub name: &'static str,
    /// Redis arity: positive = exact argument count (name included),
    /// negative = at least that many.
    pub arity: i32,
    /// Redis command flags as `COMMAND` reports them.
    pub flags: &'static [&'static str],
    /// ACL categories as `COMMAND` reports them (without the '@').
    pub categories: &'static [&'static str],
    pub runs: Runs,
    pub class: Class,
    pub blocking: Blocking,
    /// Redis 7 key specs.
    pub keys: &'static [KeySpec],
    /// Redis's fallback rule for arguments the key specs cannot describe.
    pub getkeys: Option<GetKeysProc>,
    /// A container's subcommands (XGROUP CREATE...), with their own facts.
    pub subcommands: &'static [CommandSpec],
    /// Redis documentation group, for `COMMAND DOCS`.
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
}

impl CommandSpec {
    /// Whether `argc` (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn is_write(&self) -> bool {
        self.runs == Runs::NodeWrite
    }

    pub fn is_heavy(&self) -> bool {
        self.class.is_heavy()
    }

    /// EVAL, SCRIPT...: handled by the node's script runner.
    pub fn uses_script_runner(&self) -> bool {
        matches!(self.runs, Runs::Script | Runs::ScriptAdmin)
    }

    /// The subcommand `argv[1]` names, for a container such as XGROUP.
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands.iter().find(|sub| {
            sub.name
                .split_once('|')
                .is_some_and(|(_, s)| s.as_bytes().eq_ignore_ascii_case(name))
        })
    }

    /// Whether the command can have keys at all (`COMMAND GETKEYS` refuses
    /// those that cannot).
    pub fn has_keys(&self) -> bool {
        self.getkeys.is_some()
            || self
                .keys
                .iter()
                .any(|k| !k.flags.contains(key_spec::KeyFlags::NOT_KEY))
    }

    /// The keys of `argv` (name at 0) with Redis's flags per key, exactly
    /// as Redis finds them. Arity is not checked here.
    pub fn find_keys(&self, argv: &[Vec<u8>]) -> Vec<KeyRef> {
        key_spec::find_keys(self.keys, self.getkeys, argv)
    }

    /// Redis's legacy `(first, last, step)` for `COMMAND INFO`.
    pub fn legacy_range(&self) -> (i32, i32, i32) {
        key_spec::legacy_range(self.keys)
    }

    /// Whether `argv` (this command) blocks.
    pub fn blocks(&self, argv: &[Vec<u8>]) -> bool {
        match self.blocking {
            Blocking::Never => false,
            Blocking::TimeoutLast | Blocking::TimeoutAt(_) => true,
            Blocking::BlockOption => block_option(argv).is_some(),
        }
    }

    /// How long `argv` may block, read from its own arguments: `None` when
    /// it does not block (or its timeout does not parse: the node then
    /// answers the error at once), `Some(None)` for "forever" (timeout 0),
    /// `Some(Some(d))` otherwise.
    pub fn block_timeout(&self, argv: &[Vec<u8>]) -> Option<Option<Duration>> {
        let text = |i: usize| argv.get(i).and_then(|a| std::str::from_utf8(a).ok());
        match self.blocking {
            Blocking::Never => None,
            Blocking::TimeoutLast => seconds(text(argv.len().checked_sub(1)?)?),
            Blocking::TimeoutAt(i) => seconds(text(i)?),
            Blocking::BlockOption => millis(text(block_option(argv)?)?),
        }
    }
}

/// The index of the value of XREAD / XREADGROUP's `BLOCK` option, walking
/// the options as Redis does (`GROUP` takes two values, `COUNT` one; what
/// follows `STREAMS` are keys and ids, which may spell anything).
impl CommandSpec {
    /// `argv` with its blocking timeout set to `remaining`: what a retry
    /// of a blocked command sends after a leader change, so that it waits
    /// only what is left of its timeout instead of all of it again.
    ///
    /// `None` when the command does not block or blocks forever (timeout
    /// 0, which stays 0). Never rewrites to 0: a timeout that ran out
    /// becomes 1 ms (one last attempt), since 0 would mean forever.
    pub fn with_remaining_timeout(
        &self,
        argv: &[Vec<u8>],
        remaining: Duration,
    ) -> Option<Vec<Vec<u8>>> {
        // Forever (or not blocking): nothing to shorten.
        self.block_timeout(argv)??;
        let ms = remaining.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let (at, value) = match self.blocking {
            Blocking::Never => return None,
            Blocking::TimeoutLast => (argv.len().checked_sub(1)?, seconds_text(ms)),
            Blocking::TimeoutAt(i) => (i, seconds_text(ms)),
            Blocking::BlockOption => (block_option(argv)?, ms.to_string()),
        };
        let mut out = argv.to_vec();
        *out.get_mut(at)? = value.into_bytes();
        Some(out)
    }
}

/// `ms` as the seconds Redis's blocking pops take, exactly (`1.5`, `0.001`).
fn seconds_text(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn block_option(argv: &[Vec<u8>]) -> Option<usize> {
    let group = argv.first()?.eq_ignore_ascii_case(b"xreadgroup");
    let mut i = 1;
    while let Some(arg) = argv.get(i) {
        let word = |w: &str| arg.eq_ignore_ascii_case(w.as_bytes());
        if word("streams") {
            return None;
        }
        if word("block") {
            return (i + 1 < argv.len()).then_some(i + 1);
        }
        i += if group && word("group") {
            3
        } else if word("count") {
            2
        } else {
            1
        };
    }
    None
}

fn seconds(text: &str) -> Option<Option<Duration>> {
    let v: f64 = text.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    // Redis truncates to whole milliseconds: under 1 ms blocks forever.
    let ms = (v * 1000.0).min(1e12) as u64;
    Some((ms > 0).then(|| Duration::from_millis(ms)))
}

fn millis(text: &str) -> Option<Option<Duration>> {
    let v: u64 = text.parse().ok()?;
    Some((v > 0).then(|| Duration::from_millis(v)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::command_table::lookup;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split_whitespace()
            .map(|p| p.as_bytes().to_vec())
            .collect()
    }

    fn rewrite(cmd: &str, remaining_ms: u64) -> Option<String> {
        let argv = argv(cmd);
        let spec = lookup(&argv[0]).expect("known command");
        spec.with_remaining_timeout(&argv, Duration::from_millis(remaining_ms))
            .map(|out| {
                out.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
    }

    #[test]
    fn a_retried_blocking_command_gets_the_remaining_timeout() {
        assert_eq!(
            rewrite("BLPOP a b 10", 7_250).as_deref(),
            Some("BLPOP a b 7.250")
        );
        assert_eq!(rewrite("BRPOP a 2.5", 40).as_deref(), Some("BRPOP a 0.040"));
        assert_eq!(
            rewrite("BLMOVE s d LEFT RIGHT 3", 1_000).as_deref(),
            Some("BLMOVE s d LEFT RIGHT 1.000")
        );
        assert_eq!(
            rewrite("BZMPOP 5 2 a b MIN", 4_999).as_deref(),
            Some("BZMPOP 4.999 2 a b MIN")
        );
        assert_eq!(
            rewrite("XREAD COUNT 2 BLOCK 5000 STREAMS s $", 1_234).as_deref(),
            Some("XREAD COUNT 2 BLOCK 1234 STREAMS s $")
        );
        assert_eq!(
            rewrite("XREADGROUP GROUP g c BLOCK 900 STREAMS s >", 10).as_deref(),
            Some("XREADGROUP GROUP g c BLOCK 10 STREAMS s >")
        );
    }

    #[test]
    fn forever_stays_forever_and_a_spent_timeout_is_one_last_try() {
        // 0 blocks forever: never shortened (and never turned into 0 below).
        assert_eq!(rewrite("BLPOP a 0", 10), None);
        assert_eq!(
            rewrite("BLPOP a 0.0001", 10),
            None,
            "under 1 ms is forever in Redis"
        );
        assert_eq!(rewrite("XREAD BLOCK 0 STREAMS s $", 10), None);
        // Not blocking at all.
        assert_eq!(rewrite("XREAD STREAMS s 0", 10), None);
        assert_eq!(rewrite("LPOP a", 10), None);
        // Nothing left: 1 ms, never 0 (which would block forever).
        assert_eq!(rewrite("BLPOP a 1", 0).as_deref(), Some("BLPOP a 0.001"));
        assert_eq!(
            rewrite("XREAD BLOCK 5 STREAMS s $", 0).as_deref(),
            Some("XREAD BLOCK 1 STREAMS s $")
        );
    }
}
