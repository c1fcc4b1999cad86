//! Where a command's keys are, as Redis 7 describes them: key specs
//! (`COMMAND INFO`'s "key specifications") and the rules Redis uses to turn
//! them into key positions for one argument vector (`COMMAND GETKEYS`, ACL
//! key patterns, cluster routing).
//!
//! A spec says where the search for keys begins (a fixed index, or just
//! after a keyword such as `STREAMS`) and how the keys are laid out from
//! there (a range, or a count read from the arguments such as EVAL's
//! numkeys). A few commands also carry Redis's fallback "getkeys" rule for
//! argument vectors their specs cannot describe ([`GetKeysProc`]).

/// Redis's per-key flags (`COMMAND GETKEYSANDFLAGS`, key specs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyFlags(u16);

impl KeyFlags {
    pub const NONE: KeyFlags = KeyFlags(0);
    /// Read-only: the value is read, nothing is changed.
    pub const RO: KeyFlags = KeyFlags(1);
    /// Read-write: the value is read and changed.
    pub const RW: KeyFlags = KeyFlags(1 << 1);
    /// Overwrite: the value is replaced without being read.
    pub const OW: KeyFlags = KeyFlags(1 << 2);
    /// Remove: the key is deleted.
    pub const RM: KeyFlags = KeyFlags(1 << 3);
    /// The user's data is returned (not only metadata).
    pub const ACCESS: KeyFlags = KeyFlags(1 << 4);
    /// Existing data is updated.
    pub const UPDATE: KeyFlags = KeyFlags(1 << 5);
    /// Data is added, nothing existing changes.
    pub const INSERT: KeyFlags = KeyFlags(1 << 6);
    /// Data is deleted.
    pub const DELETE: KeyFlags = KeyFlags(1 << 7);
    /// A channel in a key position (SPUBLISH), not a key.
    pub const NOT_KEY: KeyFlags = KeyFlags(1 << 8);
    /// The spec may miss keys: the getkeys rule decides.
    pub const INCOMPLETE: KeyFlags = KeyFlags(1 << 9);
    /// The flags depend on the arguments: the getkeys rule decides.
    pub const VARIABLE_FLAGS: KeyFlags = KeyFlags(1 << 10);

    /// Names in Redis's order and spelling (`addReplyFlagsForKeyArgs`).
    const NAMES: [(KeyFlags, &'static str); 11] = [
        (KeyFlags::RO, "RO"),
        (KeyFlags::RW, "RW"),
        (KeyFlags::OW, "OW"),
        (KeyFlags::RM, "RM"),
        (KeyFlags::ACCESS, "access"),
        (KeyFlags::UPDATE, "update"),
        (KeyFlags::INSERT, "insert"),
        (KeyFlags::DELETE, "delete"),
        (KeyFlags::NOT_KEY, "not_key"),
        (KeyFlags::INCOMPLETE, "incomplete"),
        (KeyFlags::VARIABLE_FLAGS, "variable_flags"),
    ];

    /// The union of `flags` (usable in constants).
    pub const fn of(flags: &[KeyFlags]) -> KeyFlags {
        let mut bits = 0;
        let mut i = 0;
        while i < flags.len() {
            bits |= flags[i].0;
            i += 1;
        }
        KeyFlags(bits)
    }

    pub const fn contains(self, other: KeyFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flag names as `COMMAND` reports them.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

/// Where the search for keys begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index (the command name is 0).
    Index(usize),
    /// Just after `keyword`, searched from `start_from` (negative: counted
    /// from the end and searched backwards).
    Keyword {
        keyword: &'static str,
        start_from: i32,
    },
    /// Redis's `unknown`: the keys cannot be found from the spec (SORT's
    /// `STORE`, which may appear anywhere, and its BY/GET patterns, whose
    /// keys derive from the data); the getkeys rule decides.
    Unknown,
}

/// How keys are laid out from where the search began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys up to `last_key` (relative to the first key; negative: counted
    /// from the end), every `key_step`. With `limit` > 0 (and `last_key`
    /// -1) only the first 1/limit of the remaining arguments are keys
    /// (XREAD's keys, then as many ids).
    Range {
        last_key: i32,
        key_step: usize,
        limit: usize,
    },
    /// The number of keys is the argument at `keynum_index` (relative to
    /// the beginning); the keys start `first_key` after it, every `key_step`.
    Keynum {
        keynum_index: usize,
        first_key: usize,
        key_step: usize,
    },
    /// Redis's `unknown` (always paired with [`BeginSearch::Unknown`]).
    Unknown,
}

/// One key spec: where keys are and what the command does to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub flags: KeyFlags,
    pub begin: BeginSearch,
    pub find: FindKeys,
    /// Redis's remark on the spec, reported by `COMMAND INFO`.
    pub notes: &'static str,
}

impl KeySpec {
    /// One key at `index`.
    pub const fn at(index: usize, flags: KeyFlags) -> KeySpec {
        KeySpec::range(index, 0, 1, flags)
    }

    /// Keys from `index` to `last_key` (relative; negative from the end).
    pub const fn range(index: usize, last_key: i32, key_step: usize, flags: KeyFlags) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Index(index),
            find: FindKeys::Range {
                last_key,
                key_step,
                limit: 0,
            },
            notes: "",
        }
    }

    /// A key count at `index`, keys right after it (EVAL, ZUNION, LMPOP...).
    pub const fn keynum(index: usize, flags: KeyFlags) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Index(index),
            find: FindKeys::Keynum {
                keynum_index: 0,
                first_key: 1,
                key_step: 1,
            },
            notes: "",
        }
    }

    /// After `keyword` (searched from `start_from`): the first half of the
    /// remaining arguments (XREAD's `STREAMS key... id...`).
    pub const fn half_after(keyword: &'static str, start_from: i32, flags: KeyFlags) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Keyword {
                keyword,
                start_from,
            },
            find: FindKeys::Range {
                last_key: -1,
                key_step: 1,
                limit: 2,
            },
            notes: "",
        }
    }

    /// The one key right after `keyword` (searched from `start_from`):
    /// GEORADIUS's `STORE key`.
    pub const fn after(keyword: &'static str, start_from: i32, flags: KeyFlags) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Keyword {
                keyword,
                start_from,
            },
            find: FindKeys::Range {
                last_key: 0,
                key_step: 1,
                limit: 0,
            },
            notes: "",
        }
    }

    /// A spec Redis marks `unknown` (SORT's STORE and BY/GET keys): it
    /// never yields keys by itself, so key extraction falls back to the
    /// command's getkeys rule.
    pub const fn unknown(flags: KeyFlags) -> KeySpec {
        KeySpec {
            flags,
            begin: BeginSearch::Unknown,
            find: FindKeys::Unknown,
            notes: "",
        }
    }

    pub const fn with_notes(mut self, notes: &'static str) -> KeySpec {
        self.notes = notes;
        self
    }

    /// The key positions this spec finds in `argv`; `None` when the
    /// arguments do not fit it (Redis's "invalid spec": the getkeys rule,
    /// if any, decides instead). `Some(empty)` when a keyword is absent.
    fn positions(&self, argv: &[Vec<u8>]) -> Option<Vec<usize>> {
        let argc = argv.len();
        let first = match self.begin {
            BeginSearch::Index(index) => index,
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => match find_keyword(argv, keyword, start_from) {
                Some(i) => i + 1,
                None => return Some(Vec::new()),
            },
            // Redis's "invalid spec": the getkeys rule answers instead.
            BeginSearch::Unknown => return None,
        };
        let (first, last, step) = match self.find {
            FindKeys::Range {
                last_key,
                key_step,
                limit,
            } => {
                let last = if last_key >= 0 {
                    first as i64 + i64::from(last_key)
                } else if limit == 0 {
                    argc as i64 + i64::from(last_key)
                } else {
                    first as i64
                        + ((argc as i64 - first as i64) / limit as i64 + i64::from(last_key))
                };
                (first as i64, last, key_step.max(1))
            }
            FindKeys::Keynum {
                keynum_index,
                first_key,
                key_step,
            } => {
                if keynum_index as i64 >= argc as i64 - first as i64 {
                    return None;
                }
                let count = parse_strict(&argv[first + keynum_index])?;
                if count < 0 {
                    return None;
                }
                let first = (first + first_key) as i64;
                // A numkeys near i64::MAX must not overflow (found by the
                // command_keys fuzz target): no such range fits the argv.
                (first, first.checked_add(count - 1)?, key_step.max(1))
            }
            FindKeys::Unknown => return None,
        };
        if last >= argc as i64 || last < first || first >= argc as i64 {
            return None;
        }
        Some((first as usize..=last as usize).step_by(step).collect())
    }
}

/// Redis's search for a key-spec keyword: forwards from `start_from` up to
/// (not including) the last argument, or backwards from the end.
fn find_keyword(argv: &[Vec<u8>], keyword: &str, start_from: i32) -> Option<usize> {
    let argc = argv.len() as i64;
    let (start, end) = if start_from > 0 {
        (i64::from(start_from), argc - 1)
    } else {
        (argc + i64::from(start_from), 0)
    };
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if argv[i as usize].eq_ignore_ascii_case(keyword.as_bytes()) {
            return Some(i as usize);
        }
        i += if start <= end { 1 } else { -1 };
    }
    None
}

/// A whole base-10 integer (Redis's `string2ll`).
fn parse_strict(arg: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.starts_with('+') || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// The leading integer of `arg`, 0 when there is none (C's `atoi`, which
/// Redis's fallback getkeys rules use).
fn parse_lenient(arg: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(arg);
    let text = text.trim_start();
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let digits: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits
        .parse::<i64>()
        .map(|n| sign * n)
        .unwrap_or(if digits.is_empty() { 0 } else { i64::MAX })
}

/// Redis's fallback rule for arguments the specs cannot describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetKeysProc {
    /// A key count at `count_at`, keys from `first_at`; with `store_at`
    /// (ZUNIONSTORE...) a destination key too, listed last. Counted with
    /// `atoi`, so a count like "2x" still finds keys here.
    Numkeys {
        store_at: Option<usize>,
        count_at: usize,
        first_at: usize,
    },
    /// XREAD / XREADGROUP: the options are parsed up to `STREAMS`.
    StreamRead,
    /// SET: the key is `RW access update` with `GET`, `OW update` without.
    Set,
    /// BITFIELD: `RO access` while every operation is a GET (or OVERFLOW),
    /// `RW access update` from the first SET/INCRBY or anything unparsable.
    Bitfield,
    /// SORT (`sortGetKeys`): the sorted key, then the last `STORE` target,
    /// found by skipping LIMIT's two values and BY's and GET's one.
    Sort,
    /// SORT_RO (`sortROGetKeys`): only the sorted key.
    SortRo,
}

impl GetKeysProc {
    fn keys(self, argv: &[Vec<u8>]) -> Vec<KeyRef> {
        let argc = argv.len();
        let at = |pos: usize| KeyRef {
            pos,
            flags: KeyFlags::NONE,
        };
        match self {
            GetKeysProc::Numkeys {
                store_at,
                count_at,
                first_at,
            } => {
                let Some(count) = argv.get(count_at).map(|a| parse_lenient(a)) else {
                    return Vec::new();
                };
                if count < 1 || count > (argc as i64 - first_at as i64) {
                    return Vec::new();
                }
                let mut keys: Vec<KeyRef> = (0..count as usize).map(|i| at(first_at + i)).collect();
                keys.extend(store_at.map(at));
                keys
            }
            GetKeysProc::StreamRead => {
                let mut streams = None;
                let mut i = 1;
                while i < argc {
                    let word = |w: &str| argv[i].eq_ignore_ascii_case(w.as_bytes());
                    if word("block") || word("count") {
                        i += 2;
                    } else if word("group") {
                        i += 3;
                    } else if word("noack") {
                        i += 1;
                    } else {
                        if word("streams") {
                            streams = Some(i);
                        }
                        break;
                    }
                }
                let Some(streams) = streams else {
                    return Vec::new();
                };
                let rest = argc - streams - 1;
                if rest == 0 || !rest.is_multiple_of(2) {
                    return Vec::new();
                }
                (0..rest / 2)
                    .map(|k| KeyRef {
                        pos: streams + 1 + k,
                        flags: KeyFlags::NONE,
                    })
                    .collect()
            }
            GetKeysProc::Set => {
                let get = argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get"));
                let flags = if get {
                    KeyFlags::of(&[KeyFlags::RW, KeyFlags::ACCESS, KeyFlags::UPDATE])
                } else {
                    KeyFlags::of(&[KeyFlags::OW, KeyFlags::UPDATE])
                };
                vec![KeyRef { pos: 1, flags }]
            }
            GetKeysProc::Bitfield => {
                let mut readonly = true;
                let mut i = 2;
                while i < argc {
                    let remaining = argc - i - 1;
                    let word = |w: &str| argv[i].eq_ignore_ascii_case(w.as_bytes());
                    if word("get") && remaining >= 2 {
                        i += 3;
                    } else if word("overflow") && remaining >= 1 {
                        i += 2;
                    } else {
                        // SET/INCRBY, or a syntax error: safer to assume a write.
                        readonly = false;
                        break;
                    }
                }
                let flags = if readonly {
                    KeyFlags::of(&[KeyFlags::RO, KeyFlags::ACCESS])
                } else {
                    KeyFlags::of(&[KeyFlags::RW, KeyFlags::ACCESS, KeyFlags::UPDATE])
                };
                vec![KeyRef { pos: 1, flags }]
            }
            GetKeysProc::Sort | GetKeysProc::SortRo => {
                let mut keys = vec![KeyRef {
                    pos: 1,
                    flags: KeyFlags::of(&[KeyFlags::RO, KeyFlags::ACCESS]),
                }];
                if self == GetKeysProc::SortRo {
                    return keys;
                }
                let mut store = None;
                let mut i = 2;
                while i < argc {
                    let word = |w: &str| argv[i].eq_ignore_ascii_case(w.as_bytes());
                    if word("limit") {
                        i += 2;
                    } else if word("store") && i + 1 < argc {
                        // The last STORE wins, as in SORT itself.
                        store = Some(i + 1);
                    } else if word("get") || word("by") {
                        i += 1;
                    }
                    i += 1;
                }
                keys.extend(store.map(|pos| KeyRef {
                    pos,
                    flags: KeyFlags::of(&[KeyFlags::OW, KeyFlags::UPDATE]),
                }));
                keys
            }
        }
    }
}

/// One key found in an argument vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    /// Its index in the argument vector (the command name is 0).
    pub pos: usize,
    pub flags: KeyFlags,
}

/// The keys of `argv` by `specs` and the fallback `proc`, exactly as Redis
/// 7 finds them (`getKeysFromCommandWithSpecs`): specs first when they are
/// reliable; the getkeys rule when a spec is incomplete, has variable
/// flags, or does not fit the arguments. Channels (`not_key`) are left out.
pub fn find_keys(specs: &[KeySpec], proc: Option<GetKeysProc>, argv: &[Vec<u8>]) -> Vec<KeyRef> {
    let has_real_spec = specs.iter().any(|s| !s.flags.contains(KeyFlags::NOT_KEY));
    let variable = specs
        .iter()
        .any(|s| s.flags.contains(KeyFlags::VARIABLE_FLAGS));
    if has_real_spec && !variable {
        if let Some(keys) = keys_by_specs(specs, argv) {
            return keys;
        }
    }
    proc.map(|p| p.keys(argv)).unwrap_or_default()
}

fn keys_by_specs(specs: &[KeySpec], argv: &[Vec<u8>]) -> Option<Vec<KeyRef>> {
    let mut keys = Vec::new();
    for spec in specs {
        if spec.flags.contains(KeyFlags::NOT_KEY) {
            continue;
        }
        let positions = spec.positions(argv)?;
        if spec.flags.contains(KeyFlags::INCOMPLETE) {
            return None;
        }
        keys.extend(positions.into_iter().map(|pos| KeyRef {
            pos,
            flags: spec.flags,
        }));
    }
    Some(keys)
}

/// Redis's legacy `(first key, last key, step)` triple for `COMMAND`,
/// derived from the specs as Redis derives it
/// (`populateCommandLegacyRangeSpec`): the index/range specs that follow one
/// another with step 1; `(0, 0, 0)` when there are none.
pub fn legacy_range(specs: &[KeySpec]) -> (i32, i32, i32) {
    let simple = |s: &KeySpec| match (s.begin, s.find) {
        (
            BeginSearch::Index(index),
            FindKeys::Range {
                last_key, key_step, ..
            },
        ) => Some((index as i32, last_key, key_step)),
        _ => None,
    };
    if let [only] = specs {
        return match simple(only) {
            Some((index, last, step)) => (
                index,
                if last >= 0 { index + last } else { last },
                step as i32,
            ),
            None => (0, 0, 0),
        };
    }
    let mut first = i32::MAX;
    let mut last: i32 = 0;
    let mut prev_last = 0;
    for spec in specs {
        let Some((index, last_key, step)) = simple(spec) else {
            continue;
        };
        if step != 1 || (prev_last != 0 && prev_last != index - 1) {
            continue;
        }
        first = first.min(index);
        let abs_last = if last_key >= 0 {
            last_key + index
        } else {
            last_key
        };
        // Redis compares as unsigned: a negative (from the end) wins.
        last = if (abs_last as u32) > (last as u32) {
            abs_last
        } else {
            last
        };
        prev_last = last;
    }
    if first == i32::MAX {
        return (0, 0, 0);
    }
    (first, last, 1)
}

/// Whether the specs or the getkeys rule can leave the keys at other
/// positions than the legacy range (Redis's `movablekeys` flag).
pub fn movable_keys(specs: &[KeySpec]) -> bool {
    let simple = |s: &KeySpec| {
        matches!(
            (s.begin, s.find),
            (BeginSearch::Index(_), FindKeys::Range { .. })
        )
    };
    if let [only] = specs {
        return !simple(only) || only.flags.contains(KeyFlags::INCOMPLETE);
    }
    let mut prev_last = 0;
    let mut last: i32 = 0;
    for spec in specs {
        let (
            BeginSearch::Index(index),
            FindKeys::Range {
                last_key, key_step, ..
            },
        ) = (spec.begin, spec.find)
        else {
            return true;
        };
        let index = index as i32;
        if key_step != 1 || (prev_last != 0 && prev_last != index - 1) {
            return true;
        }
        if spec.flags.contains(KeyFlags::INCOMPLETE) {
            return true;
        }
        let abs_last = if last_key >= 0 {
            last_key + index
        } else {
            last_key
        };
        if (abs_last as u32) > (last as u32) {
            last = abs_last;
        }
        prev_last = last;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<Vec<u8>> {
        text.split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    fn positions(specs: &[KeySpec], proc: Option<GetKeysProc>, text: &str) -> Vec<usize> {
        find_keys(specs, proc, &argv(text))
            .into_iter()
            .map(|k| k.pos)
            .collect()
    }

    const RO: KeyFlags = KeyFlags::of(&[KeyFlags::RO, KeyFlags::ACCESS]);

    #[test]
    fn keyword_search_skips_the_last_argument_and_halves_the_rest() {
        let xread = [KeySpec::half_after("STREAMS", 1, RO)];
        assert_eq!(
            positions(&xread, None, "XREAD COUNT 2 STREAMS a b 0 0"),
            vec![4, 5]
        );
        // Odd remainder: Redis rounds down.
        assert_eq!(positions(&xread, None, "XREAD STREAMS a b 0"), vec![2]);
        // No keyword (or only as the last argument): no keys from this spec.
        assert!(positions(&xread, None, "XREAD COUNT 2 STREAMS").is_empty());
    }

    #[test]
    fn a_huge_numkeys_is_no_keys_not_an_overflow() {
        let eval = [KeySpec::keynum(2, RO)];
        let argv: Vec<Vec<u8>> = ["EVAL", "", "9223372036854775807", "k"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        for spec in &eval {
            assert_eq!(spec.positions(&argv), None);
        }
    }

    #[test]
    fn keynum_falls_back_to_the_lenient_rule() {
        let eval = [KeySpec::keynum(2, RO)];
        let proc = Some(GetKeysProc::Numkeys {
            store_at: None,
            count_at: 2,
            first_at: 3,
        });
        assert_eq!(positions(&eval, proc, "EVAL s 2 a b c"), vec![3, 4]);
        assert!(positions(&eval, proc, "EVAL s 0 a").is_empty());
        assert!(positions(&eval, proc, "EVAL s 5 a").is_empty());
        // string2ll refuses "2x", atoi reads 2: the fallback finds keys.
        assert_eq!(positions(&eval, proc, "EVAL s 2x a b"), vec![3, 4]);
        assert!(positions(&eval, proc, "EVAL s x a b").is_empty());
    }

    #[test]
    fn fallback_keys_have_no_flags_and_store_comes_last() {
        let specs = [KeySpec::at(1, RO), KeySpec::keynum(2, RO)];
        let proc = Some(GetKeysProc::Numkeys {
            store_at: Some(1),
            count_at: 2,
            first_at: 3,
        });
        let keys = find_keys(&specs, proc, &argv("ZUNIONSTORE d 2x a b"));
        assert_eq!(
            keys.iter().map(|k| k.pos).collect::<Vec<_>>(),
            vec![3, 4, 1]
        );
        assert!(keys.iter().all(|k| k.flags == KeyFlags::NONE));
        let keys = find_keys(&specs, proc, &argv("ZUNIONSTORE d 2 a b"));
        assert_eq!(
            keys.iter().map(|k| k.pos).collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
        assert_eq!(keys[0].flags, RO);
    }

    #[test]
    fn variable_flags_use_the_rule() {
        let set = [KeySpec::at(
            1,
            KeyFlags::of(&[KeyFlags::RW, KeyFlags::VARIABLE_FLAGS]),
        )];
        let keys = find_keys(&set, Some(GetKeysProc::Set), &argv("SET k v GET"));
        assert_eq!(keys[0].flags.names(), vec!["RW", "access", "update"]);
        let keys = find_keys(&set, Some(GetKeysProc::Set), &argv("SET k get"));
        assert_eq!(keys[0].flags.names(), vec!["OW", "update"]);
    }

    #[test]
    fn channels_are_not_keys() {
        let spublish = [KeySpec::at(1, KeyFlags::NOT_KEY)];
        assert!(positions(&spublish, None, "SPUBLISH ch msg").is_empty());
    }

    #[test]
    fn stream_read_rule_parses_options() {
        let rule = Some(GetKeysProc::StreamRead);
        assert_eq!(
            positions(
                &[],
                rule,
                "XREADGROUP GROUP streams c BLOCK 0 STREAMS k1 k2 0 0"
            ),
            vec![7, 8]
        );
        assert!(positions(&[], rule, "XREAD STREAMS a b 0").is_empty());
        assert!(positions(&[], rule, "XREAD FOO STREAMS a 0").is_empty());
    }

    #[test]
    fn sort_rule_finds_the_last_store_outside_option_values() {
        // Each expectation is redis-server's COMMAND GETKEYS answer.
        let specs = [
            KeySpec::at(1, RO),
            KeySpec::unknown(RO),
            KeySpec::unknown(KeyFlags::of(&[KeyFlags::OW, KeyFlags::UPDATE])),
        ];
        let sort = Some(GetKeysProc::Sort);
        assert_eq!(positions(&specs, sort, "SORT k"), vec![1]);
        assert_eq!(
            positions(&specs, sort, "SORT k BY w_* GET # STORE d"),
            vec![1, 7]
        );
        assert_eq!(positions(&specs, sort, "SORT k STORE"), vec![1]);
        assert_eq!(
            positions(&specs, sort, "SORT k LIMIT store x STORE d2"),
            vec![1, 6]
        );
        assert_eq!(positions(&specs, sort, "SORT k STORE store x"), vec![1, 4]);
        assert_eq!(positions(&specs, sort, "SORT k GET store d"), vec![1]);
        assert_eq!(
            positions(&specs, sort, "SORT k store a store b"),
            vec![1, 5]
        );
        assert_eq!(positions(&specs, sort, "SORT k BY STORE d"), vec![1]);
        let flags: Vec<KeyFlags> = find_keys(&specs, sort, &argv("SORT k STORE d"))
            .into_iter()
            .map(|k| k.flags)
            .collect();
        assert_eq!(
            flags,
            vec![RO, KeyFlags::of(&[KeyFlags::OW, KeyFlags::UPDATE])]
        );
        let sort_ro = Some(GetKeysProc::SortRo);
        assert_eq!(positions(&specs[..2], sort_ro, "SORT_RO k BY w_*"), vec![1]);
        assert!(movable_keys(&specs));
        assert_eq!(legacy_range(&specs), (1, 1, 1));
    }

    #[test]
    fn legacy_range_follows_redis() {
        let rw = KeyFlags::RW;
        assert_eq!(legacy_range(&[KeySpec::at(1, rw)]), (1, 1, 1));
        assert_eq!(legacy_range(&[KeySpec::range(1, -1, 2, rw)]), (1, -1, 2));
        assert_eq!(
            legacy_range(&[KeySpec::at(1, rw), KeySpec::at(2, rw)]),
            (1, 2, 1)
        );
        assert_eq!(legacy_range(&[KeySpec::range(1, -2, 1, rw)]), (1, -2, 1));
        assert_eq!(legacy_range(&[KeySpec::keynum(2, rw)]), (0, 0, 0));
        assert_eq!(
            legacy_range(&[KeySpec::at(1, rw), KeySpec::keynum(2, rw)]),
            (1, 1, 1)
        );
        assert!(movable_keys(&[KeySpec::at(1, rw), KeySpec::keynum(2, rw)]));
        assert!(!movable_keys(&[KeySpec::at(1, rw), KeySpec::at(2, rw)]));
        assert!(!movable_keys(&[]));
    }
}
