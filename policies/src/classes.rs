//! The command-class table (SPEC §2, Layer 1) as data: which class each
//! command belongs to, and each class's concurrency bound.
//!
//! Classification is by command name only, plus one argument check: `XREAD`
//! and `XREADGROUP` with a `BLOCK` option are the blocking variant. The
//! compiled-in default is each command's class in the shared command table
//! ([`CommandSpec::class`](rampart_proto::command_table::CommandSpec));
//! `[policies.commands]` moves commands between classes and
//! `[policies.classes.NAME]` re-tunes or adds classes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use crate::budget::TimeBudget;
use crate::config::{ClassConfig, ConfigError};
use crate::metrics::CommandMetrics;

use rampart_proto::command_table::{self, Blocking, Class, CommandSpec, COMMANDS};

/// The policy class names of the command table's [`Class`]es.
const fn class_name(class: Class) -> &'static str {
    match class.policy_class() {
        Some(name) => name,
        None => "",
    }
}

pub const CHEAP: &str = class_name(Class::Cheap);
pub const HEAVY: &str = "heavy";
pub const HEAVY_SCAN: &str = class_name(Class::HeavyScan);
pub const HEAVY_DATA: &str = class_name(Class::HeavyData);
pub const HEAVY_SCRIPT: &str = class_name(Class::HeavyScript);
pub const ADMIN: &str = class_name(Class::Admin);
pub const BLOCKING: &str = class_name(Class::Blocking);

/// Whether Layer 1 never rejects `command` (lower case): health checks must
/// see the truth. Such commands are answered by the proxy itself and cannot
/// be reclassified.
pub fn never_rejected(command: &str) -> bool {
    command_table::lookup(command.as_bytes()).is_some_and(|spec| spec.class == Class::Exempt)
}

/// Default time budget of one client IP in `heavy_scan`: a host running
/// `KEYS *` back to back keeps a quarter of one slot busy, not all of it
/// (every command's cost grows with the keyspace; `SCAN`'s small steps fit
/// easily). Other classes have none by default: `HGETALL`, `ZRANGE` or
/// small Lua scripts at high rates are ordinary application traffic.
pub const DEFAULT_SCAN_MS_PER_SEC: u32 = 250;
/// The slot time an idle client may use at once in `heavy_scan`.
pub const DEFAULT_SCAN_BURST_MS: u32 = 1000;

/// Built-in classes and their default bounds for `cpus` available CPUs:
/// (name, max, within, reserve). 0 = unbounded.
fn builtin_classes(cpus: u32) -> Vec<(String, ClassConfig)> {
    let heavy = 2 * cpus.max(1);
    let class = |max: u32, within: Option<&str>, reserve: u32| ClassConfig {
        max: Some(max),
        within: within.map(str::to_string),
        reserve: Some(reserve),
        ..ClassConfig::default()
    };
    vec![
        (CHEAP.into(), class(0, None, 0)),
        (HEAVY.into(), class(heavy, None, 0)),
        // Scans may use at most half of heavy; each sub-pool keeps one slot
        // the other can never take.
        (
            HEAVY_SCAN.into(),
            ClassConfig {
                per_client_ms_per_sec: Some(DEFAULT_SCAN_MS_PER_SEC),
                per_client_burst_ms: Some(DEFAULT_SCAN_BURST_MS),
                ..class((heavy / 2).max(1), Some(HEAVY), 1)
            },
        ),
        (HEAVY_DATA.into(), class(heavy, Some(HEAVY), 1)),
        // Scripts are heavy but bounded on their own, not inside `heavy`:
        // a flood of big XREADs fills heavy, and must not leave an
        // application's small Lua scripts (locks, rate limiters) without a
        // slot. Wider than heavy: typical scripts are short, the node's
        // heavy executor (threads + queue) bounds them with heavy reads, and
        // a tight cap here turned every latency spike into -BUSY errors.
        (HEAVY_SCRIPT.into(), class(4 * heavy, None, 0)),
        (ADMIN.into(), class(2, None, 0)),
        // Waiting blocking commands hold no heavy slot; this bounds how many
        // may wait at once (each costs a task and a node-side waiter).
        (BLOCKING.into(), class(10_000, None, 0)),
    ]
}

/// One class, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassDef {
    pub name: &'static str,
    /// 0 = unbounded.
    pub max: u32,
    /// Requests one client IP may run in this class at once; 0 = no limit.
    pub per_client: u32,
    /// Slot time one client IP may use per second; `None` = no limit.
    pub time_budget: Option<TimeBudget>,
    /// The top-level class whose slots this sub-pool shares (index into
    /// [`ClassTable::classes`]).
    pub within: Option<usize>,
    pub reserve: u32,
}

/// What admission needs to know about one command.
#[derive(Debug, Clone)]
pub struct Entry {
    pub class: usize,
    /// Metric label (the lower-case command name).
    pub command: &'static str,
    pub metrics: CommandMetrics,
}

/// How one request is classified.
#[derive(Debug, Clone, Copy)]
pub enum Classified<'a> {
    /// Never rejected by Layer 1.
    Exempt,
    Class(&'a Entry),
}

/// The resolved table.
#[derive(Debug, Clone)]
pub struct ClassTable {
    pub classes: Vec<ClassDef>,
    entries: HashMap<Vec<u8>, Entry>,
    /// The entry used for commands not in the map.
    fallback: Entry,
    /// Commands Layer 1 never rejects (lower case).
    exempt: Vec<Vec<u8>>,
    /// Commands that block only with an option (XREAD ... BLOCK): their
    /// spec, and their entry in the blocking class when they do.
    blocking_variants: HashMap<Vec<u8>, (&'static CommandSpec, Entry)>,
}

/// Interns class and command names so metric labels are `&'static str`
/// (no allocation per command). Bounded by the names ever configured.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = names.get(name) {
        return s;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(name.to_string(), leaked);
    leaked
}

/// A class's time budget from its config: none when the rate is 0 or
/// unset; a rate needs a burst of at least 1 ms (default: one second's
/// worth of the rate).
fn time_budget(class: &str, cfg: &ClassConfig) -> Result<Option<TimeBudget>, ConfigError> {
    let ms_per_sec = cfg.per_client_ms_per_sec.unwrap_or(0);
    if ms_per_sec == 0 {
        return Ok(None);
    }
    let burst_ms = cfg.per_client_burst_ms.unwrap_or(ms_per_sec);
    if burst_ms == 0 {
        return Err(ConfigError::Class {
            class: class.to_string(),
            reason: "per_client_burst_ms must be at least 1 when per_client_ms_per_sec is set"
                .into(),
        });
    }
    Ok(Some(TimeBudget {
        ms_per_sec,
        burst_ms,
    }))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'|')
}

/// Builds the table: built-in classes, then `classes` overrides/additions,
/// then the default command lists, then `commands` overrides.
pub fn build_table(
    classes: &BTreeMap<String, ClassConfig>,
    commands: &BTreeMap<String, String>,
    cpus: u32,
) -> Result<ClassTable, ConfigError> {
    let mut merged: Vec<(String, ClassConfig)> = builtin_classes(cpus);
    for (name, cfg) in classes {
        let name = name.to_ascii_lowercase();
        if !valid_name(&name) {
            return Err(ConfigError::Class {
                class: name,
                reason: "names use letters, digits, '_' and '-'".into(),
            });
        }
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                if cfg.max.is_some() {
                    existing.max = cfg.max;
                }
                if cfg.within.is_some() {
                    existing.within = cfg.within.clone();
                }
                if cfg.reserve.is_some() {
                    existing.reserve = cfg.reserve;
                }
                if cfg.per_client.is_some() {
                    existing.per_client = cfg.per_client;
                }
                if cfg.per_client_ms_per_sec.is_some() {
                    existing.per_client_ms_per_sec = cfg.per_client_ms_per_sec;
                }
                if cfg.per_client_burst_ms.is_some() {
                    existing.per_client_burst_ms = cfg.per_client_burst_ms;
                }
            }
            None => {
                if cfg.max.is_none() {
                    return Err(ConfigError::Class {
                        class: name,
                        reason: "a new class needs max = N (0 = unbounded)".into(),
                    });
                }
                merged.push((name, cfg.clone()));
            }
        }
    }
    // Sub-pool bounds follow a re-tuned heavy unless set explicitly.
    let heavy_max = merged
        .iter()
        .find(|(n, _)| n == HEAVY)
        .and_then(|(_, c)| c.max)
        .unwrap_or(0);
    for (name, default_max) in [
        (HEAVY_SCAN, (heavy_max / 2).max(1)),
        (HEAVY_DATA, heavy_max),
    ] {
        let explicit = classes.get(name).and_then(|c| c.max).is_some();
        if let Some((_, c)) = merged.iter_mut().find(|(n, _)| n == name) {
            if !explicit {
                c.max = Some(default_max);
            }
        }
    }
    // One client may hold a quarter of a heavy class (half of the script
    // class, whose slots are short-lived) unless set explicitly: with
    // many connections per IP, one host could otherwise hold every heavy
    // slot, as the incident's abusive host did.
    for (name, divisor) in [
        (HEAVY, 4),
        (HEAVY_SCAN, 4),
        (HEAVY_DATA, 4),
        (HEAVY_SCRIPT, 2),
    ] {
        if let Some((_, c)) = merged.iter_mut().find(|(n, _)| n == name) {
            if c.per_client.is_none() {
                let max = c.max.unwrap_or(0);
                c.per_client = Some(if max == 0 { 0 } else { max.div_ceil(divisor) });
            }
        }
    }
    let index: HashMap<&str, usize> = merged
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let mut defs = Vec::with_capacity(merged.len());
    for (name, cfg) in &merged {
        let within = match &cfg.within {
            None => None,
            Some(parent) => {
                let parent = parent.to_ascii_lowercase();
                let Some(&p) = index.get(parent.as_str()) else {
                    return Err(ConfigError::Class {
                        class: name.clone(),
                        reason: format!("within = {parent:?}: no such class"),
                    });
                };
                if merged[p].1.within.is_some() || p == index[name.as_str()] {
                    return Err(ConfigError::Class {
                        class: name.clone(),
                        reason: format!("within = {parent:?}: sub-pools nest one level only"),
                    });
                }
                Some(p)
            }
        };
        defs.push(ClassDef {
            name: intern(name),
            max: cfg.max.unwrap_or(0),
            per_client: cfg.per_client.unwrap_or(0),
            time_budget: time_budget(name, cfg)?,
            within,
            reserve: if within.is_some() {
                cfg.reserve.unwrap_or(0)
            } else {
                0
            },
        });
    }
    // Admission never takes a slot of an unbounded class, so a share of
    // one would silently do nothing.
    for d in &defs {
        let parent_max = d.within.map_or(0, |p| defs[p].max);
        if d.per_client > 0 && d.max == 0 && parent_max == 0 {
            return Err(ConfigError::Class {
                class: d.name.to_string(),
                reason: "per_client needs a bounded class (max > 0)".into(),
            });
        }
        if d.time_budget.is_some() && d.max == 0 && parent_max == 0 {
            return Err(ConfigError::Class {
                class: d.name.to_string(),
                reason: "per_client_ms_per_sec needs a bounded class (max > 0)".into(),
            });
        }
    }
    // A sub-pool's reservations must fit in its parent.
    for (p, parent) in defs.iter().enumerate() {
        let children: Vec<&ClassDef> = defs.iter().filter(|d| d.within == Some(p)).collect();
        if children.is_empty() {
            continue;
        }
        if parent.max == 0 {
            continue; // unbounded parent: reservations are moot
        }
        let reserved: u64 = children.iter().map(|c| u64::from(c.reserve)).sum();
        if reserved > u64::from(parent.max) {
            return Err(ConfigError::Class {
                class: parent.name.to_string(),
                reason: format!(
                    "sub-pools reserve {reserved} slots but the class has max = {}",
                    parent.max
                ),
            });
        }
    }
    let class_of = |name: &str| index.get(name).copied();
    let cheap = class_of(CHEAP).unwrap_or(0);
    let mut assignment: HashMap<String, usize> = HashMap::new();
    let mut exempt = Vec::new();
    for spec in COMMANDS {
        match spec.class.policy_class() {
            Some(class) => {
                assignment.insert(spec.name.to_string(), class_of(class).unwrap_or(cheap));
            }
            None => exempt.push(spec.name.as_bytes().to_vec()),
        }
    }
    for (command, class) in commands {
        let command = command.to_ascii_lowercase();
        let class = class.to_ascii_lowercase();
        if never_rejected(&command) {
            return Err(ConfigError::Command {
                command,
                reason: "is never rejected and cannot be classified".into(),
            });
        }
        if !valid_name(&command) {
            return Err(ConfigError::Command {
                command,
                reason: "not a command name".into(),
            });
        }
        let Some(c) = class_of(&class) else {
            return Err(ConfigError::Command {
                command,
                reason: format!("no class named {class:?}"),
            });
        };
        assignment.insert(command, c);
    }
    let entry = |command: &str, class: usize| Entry {
        class,
        command: intern(command),
        metrics: CommandMetrics::new(intern(command), defs[class].name),
    };
    let entries = assignment
        .iter()
        .map(|(name, &class)| (name.as_bytes().to_vec(), entry(name, class)))
        .collect();
    let blocking = class_of(BLOCKING).unwrap_or(cheap);
    let blocking_variants = COMMANDS
        .iter()
        .filter(|spec| spec.blocking == Blocking::BlockOption)
        .map(|spec| {
            (
                spec.name.as_bytes().to_vec(),
                (spec, entry(spec.name, blocking)),
            )
        })
        .collect();
    Ok(ClassTable {
        fallback: entry("other", cheap),
        classes: defs,
        entries,
        exempt,
        blocking_variants,
    })
}

impl ClassTable {
    /// Classifies one request (`argv[0]` is the command name).
    pub fn classify(&self, argv: &[Vec<u8>]) -> Classified<'_> {
        let Some(name) = argv.first() else {
            return Classified::Class(&self.fallback);
        };
        let mut buf = [0u8; 32];
        let lower: &[u8] = if name.len() <= buf.len() {
            let buf = &mut buf[..name.len()];
            buf.copy_from_slice(name);
            buf.make_ascii_lowercase();
            buf
        } else {
            return Classified::Class(&self.fallback);
        };
        if self.exempt.iter().any(|n| n == lower) {
            return Classified::Exempt;
        }
        if let Some((spec, e)) = self.blocking_variants.get(lower) {
            if spec.blocks(argv) {
                return Classified::Class(e);
            }
        }
        Classified::Class(self.entries.get(lower).unwrap_or(&self.fallback))
    }

    /// The class name a command is in (for tests, `INFO` and docs).
    pub fn class_name(&self, argv: &[Vec<u8>]) -> Option<&'static str> {
        match self.classify(argv) {
            Classified::Exempt => None,
            Classified::Class(e) => Some(self.classes[e.class].name),
        }
    }

    /// The bound of the class called `name`.
    pub fn class_max(&self, name: &str) -> Option<u32> {
        self.classes.iter().find(|c| c.name == name).map(|c| c.max)
    }

    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    fn table() -> ClassTable {
        build_table(&BTreeMap::new(), &BTreeMap::new(), 4).unwrap()
    }

    #[test]
    fn default_table_follows_the_spec() {
        let t = table();
        let class = |parts: &[&str]| t.class_name(&argv(parts));
        assert_eq!(class(&["GET", "k"]), Some(CHEAP));
        assert_eq!(class(&["set", "k", "v"]), Some(CHEAP));
        assert_eq!(class(&["KEYS", "*"]), Some(HEAVY_SCAN));
        assert_eq!(class(&["scan", "0"]), Some(HEAVY_SCAN));
        assert_eq!(class(&["HGETALL", "h"]), Some(HEAVY_DATA));
        assert_eq!(class(&["zrangebyscore", "z", "0", "1"]), Some(HEAVY_DATA));
        assert_eq!(class(&["EVAL", "return 1", "0"]), Some(HEAVY_SCRIPT));
        assert_eq!(class(&["FLUSHALL"]), Some(ADMIN));
        assert_eq!(class(&["BLPOP", "l", "0"]), Some(BLOCKING));
        assert_eq!(class(&["nosuchcommand"]), Some(CHEAP));
        for exempt in ["ping", "info", "client", "hello", "auth", "quit"] {
            assert!(never_rejected(exempt));
            assert_eq!(class(&[exempt]), None, "{exempt} must be exempt");
        }
        assert!(!never_rejected("get"));
        assert_eq!(class(&["PiNg"]), None);
        assert_eq!(t.class_max(HEAVY), Some(8));
        assert_eq!(t.class_max(HEAVY_SCAN), Some(4));
    }

    #[test]
    fn xread_is_blocking_only_with_block_before_streams() {
        let t = table();
        let class = |parts: &[&str]| t.class_name(&argv(parts));
        assert_eq!(class(&["XREAD", "STREAMS", "s", "0"]), Some(HEAVY_DATA));
        assert_eq!(
            class(&["xread", "COUNT", "1", "block", "0", "STREAMS", "s", "0"]),
            Some(BLOCKING)
        );
        assert_eq!(
            class(&["XREAD", "STREAMS", "BLOCK", "0"]),
            Some(HEAVY_DATA),
            "a key named BLOCK is not the option"
        );
        assert_eq!(
            class(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "10",
                "STREAMS",
                "s",
                ">"
            ]),
            Some(BLOCKING)
        );
        assert_eq!(
            class(&["XREADGROUP", "GROUP", "block", "c", "STREAMS", "s", ">"]),
            Some(HEAVY_DATA),
            "a group named block is not the option"
        );
    }

    #[test]
    fn config_reclassifies_and_adds_classes() {
        let mut classes = BTreeMap::new();
        classes.insert(
            "reports".to_string(),
            ClassConfig {
                max: Some(3),
                ..Default::default()
            },
        );
        let mut commands = BTreeMap::new();
        commands.insert("GET".to_string(), "heavy_scan".to_string());
        commands.insert("mget".to_string(), "reports".to_string());
        let t = build_table(&classes, &commands, 1).unwrap();
        assert_eq!(t.class_name(&argv(&["get", "k"])), Some(HEAVY_SCAN));
        assert_eq!(t.class_name(&argv(&["MGET", "a", "b"])), Some("reports"));
        assert_eq!(t.class_max("reports"), Some(3));
        assert_eq!(t.class_max(HEAVY), Some(2), "one CPU: heavy = 2");
    }

    #[test]
    fn invalid_tables_are_rejected() {
        let none: BTreeMap<String, ClassConfig> = BTreeMap::new();
        let no_cmds: BTreeMap<String, String> = BTreeMap::new();
        let mut cmd = BTreeMap::new();
        cmd.insert("ping".to_string(), "heavy".to_string());
        assert!(matches!(
            build_table(&none, &cmd, 2),
            Err(ConfigError::Command { .. })
        ));
        let mut cmd = BTreeMap::new();
        cmd.insert("get".to_string(), "nosuch".to_string());
        assert!(build_table(&none, &cmd, 2).is_err());
        let mut classes = BTreeMap::new();
        classes.insert("x".to_string(), ClassConfig::default());
        assert!(
            build_table(&classes, &no_cmds, 2).is_err(),
            "new class without max"
        );
        let mut classes = BTreeMap::new();
        classes.insert(
            "heavy_scan".to_string(),
            ClassConfig {
                reserve: Some(10),
                ..Default::default()
            },
        );
        assert!(
            build_table(&classes, &no_cmds, 1).is_err(),
            "reserve > parent max"
        );
        let mut classes = BTreeMap::new();
        classes.insert(
            "sub".to_string(),
            ClassConfig {
                max: Some(1),
                within: Some("heavy_scan".into()),
                ..Default::default()
            },
        );
        let mut unbounded_share = BTreeMap::new();
        unbounded_share.insert(
            "cheap".to_string(),
            ClassConfig {
                per_client: Some(4),
                ..Default::default()
            },
        );
        let err = build_table(&unbounded_share, &no_cmds, 2).unwrap_err();
        assert!(
            err.to_string().contains("per_client needs a bounded class"),
            "{err}"
        );
        assert!(
            build_table(&classes, &no_cmds, 2).is_err(),
            "two-level nesting"
        );
        let mut unbounded_budget = BTreeMap::new();
        unbounded_budget.insert(
            "cheap".to_string(),
            ClassConfig {
                per_client_ms_per_sec: Some(100),
                ..Default::default()
            },
        );
        let err = build_table(&unbounded_budget, &no_cmds, 2).unwrap_err();
        assert!(
            err.to_string()
                .contains("per_client_ms_per_sec needs a bounded class"),
            "{err}"
        );
        let mut no_burst = BTreeMap::new();
        no_burst.insert(
            "heavy_data".to_string(),
            ClassConfig {
                per_client_ms_per_sec: Some(100),
                per_client_burst_ms: Some(0),
                ..Default::default()
            },
        );
        let err = build_table(&no_burst, &no_cmds, 2).unwrap_err();
        assert!(err.to_string().contains("per_client_burst_ms"), "{err}");
    }

    #[test]
    fn time_budgets_default_to_scans_only_and_can_be_set_or_turned_off() {
        let none: BTreeMap<String, ClassConfig> = BTreeMap::new();
        let no_cmds: BTreeMap<String, String> = BTreeMap::new();
        let budget =
            |t: &ClassTable, name: &str| t.classes[t.class_index(name).unwrap()].time_budget;
        let t = build_table(&none, &no_cmds, 2).unwrap();
        assert_eq!(
            budget(&t, HEAVY_SCAN),
            Some(TimeBudget {
                ms_per_sec: DEFAULT_SCAN_MS_PER_SEC,
                burst_ms: DEFAULT_SCAN_BURST_MS
            })
        );
        for other in [HEAVY, HEAVY_DATA, HEAVY_SCRIPT, CHEAP, ADMIN, BLOCKING] {
            assert_eq!(budget(&t, other), None, "{other}");
        }
        let mut classes = BTreeMap::new();
        classes.insert(
            "heavy_scan".to_string(),
            ClassConfig {
                per_client_ms_per_sec: Some(0),
                ..Default::default()
            },
        );
        classes.insert(
            "heavy_data".to_string(),
            ClassConfig {
                per_client_ms_per_sec: Some(500),
                ..Default::default()
            },
        );
        let t = build_table(&classes, &no_cmds, 2).unwrap();
        assert_eq!(budget(&t, HEAVY_SCAN), None, "0 turns it off");
        assert_eq!(
            budget(&t, HEAVY_DATA),
            Some(TimeBudget {
                ms_per_sec: 500,
                burst_ms: 500
            }),
            "the burst defaults to one second's worth"
        );
    }
}
