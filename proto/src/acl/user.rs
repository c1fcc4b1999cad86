//! One ACL user: how rules change it ([`User::apply`]) and how it is
//! described (`ACL LIST` / `ACL GETUSER`). The description is also its
//! stored form: applying it to a fresh user gives the same user back.

use std::collections::BTreeSet;

use super::rule::{AclError, Rule};
use crate::command_table::{CommandSpec, COMMANDS};

/// A key pattern and what it grants (`~p` both, `%R~p` read, `%W~p` write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    pub read: bool,
    pub write: bool,
}

impl KeyPattern {
    fn describe(&self) -> String {
        let prefix = match (self.read, self.write) {
            (true, false) => "%R~",
            (false, true) => "%W~",
            _ => "~",
        };
        format!("{prefix}{}", String::from_utf8_lossy(&self.pattern))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` (true), `skip-sanitize-payload` (false) or
    /// neither; kept for Redis compatibility, Rampart has no RESTORE.
    pub sanitize: Option<bool>,
    /// SHA-256 hex of each password, in the order they were added.
    pub passwords: Vec<String>,
    /// Started from `+@all`: the description begins with it.
    all_commands_base: bool,
    /// Full command names (`get`, `client|kill`) the user may run.
    allowed: BTreeSet<&'static str>,
    /// Command rules since the `+@all` / `-@all` base, for the description.
    command_rules: Vec<String>,
    pub all_keys: bool,
    pub keys: Vec<KeyPattern>,
    pub all_channels: bool,
    pub channels: Vec<Vec<u8>>,
    /// Rampart's admission limits (`limit-...` rules).
    pub limits: super::Limits,
}

/// Every command and subcommand of the table.
fn all_specs() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS
        .iter()
        .flat_map(|spec| std::iter::once(spec).chain(spec.subcommands))
}

impl User {
    /// A user as `ACL SETUSER <name>` creates it: off, no password, no
    /// commands, keys or channels.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            all_commands_base: false,
            allowed: BTreeSet::new(),
            command_rules: Vec::new(),
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            limits: super::Limits::default(),
        }
    }

    /// The `default` user of a fresh cluster: `on`, `nopass` (or the
    /// `requirepass` password), every key and channel, `+@all`, and
    /// `+@admin` so that it keeps Rampart's own admin commands.
    pub fn default_user(requirepass: Option<&[u8]>) -> User {
        let mut user = User::new("default");
        let mut rules = vec![
            Rule::AllCommands,
            Rule::Category("admin", true),
            Rule::AllKeys,
            Rule::AllChannels,
            Rule::On,
        ];
        match requirepass {
            Some(pass) => rules.push(Rule::AddPassword(super::hash_password(pass))),
            None => rules.push(Rule::NoPass),
        }
        for rule in &rules {
            // These rules cannot fail on a fresh user.
            let _ = user.apply(rule);
        }
        user
    }

    /// Applies one rule, as Redis's `ACLSetUser`. On error the user may be
    /// partly changed: callers apply rules to a copy (SETUSER is all or
    /// nothing).
    pub fn apply(&mut self, rule: &Rule) -> Result<(), AclError> {
        match rule {
            Rule::On => self.enabled = true,
            Rule::Off => self.enabled = false,
            Rule::NoPass => {
                self.nopass = true;
                self.passwords.clear();
            }
            Rule::ResetPass => {
                self.nopass = false;
                self.passwords.clear();
            }
            Rule::SanitizePayload => self.sanitize = Some(true),
            Rule::SkipSanitizePayload => self.sanitize = Some(false),
            Rule::Reset => {
                for r in [
                    Rule::ResetPass,
                    Rule::ResetKeys,
                    Rule::ResetChannels,
                    Rule::Off,
                    Rule::SanitizePayload,
                    Rule::NoCommands,
                ] {
                    self.apply(&r)?;
                }
                self.limits = super::Limits::default();
            }
            Rule::AddPassword(hash) => {
                if !self.passwords.contains(hash) {
                    self.passwords.push(hash.clone());
                }
                self.nopass = false;
            }
            Rule::RemovePassword(hash) => {
                let at = self
                    .passwords
                    .iter()
                    .position(|p| p == hash)
                    .ok_or(AclError::NoSuchPassword)?;
                self.passwords.remove(at);
            }
            Rule::AllCommands | Rule::NoCommands => {
                let all = *rule == Rule::AllCommands;
                self.all_commands_base = all;
                self.command_rules.clear();
                self.allowed = if all {
                    all_specs()
                        .map(|s| s.name)
                        .filter(|n| super::granted_by_all(n))
                        .collect()
                } else {
                    BTreeSet::new()
                };
            }
            Rule::Category(..) | Rule::Command(..) => self.apply_command_rule(rule),
            Rule::AllKeys => {
                self.all_keys = true;
                self.keys.clear();
            }
            Rule::ResetKeys => {
                self.all_keys = false;
                self.keys.clear();
            }
            Rule::KeyPattern {
                pattern,
                read,
                write,
            } => {
                if self.all_keys {
                    return Err(AclError::KeyAfterAll);
                }
                match self.keys.iter_mut().find(|k| &k.pattern == pattern) {
                    Some(existing) => {
                        existing.read |= read;
                        existing.write |= write;
                    }
                    None => self.keys.push(KeyPattern {
                        pattern: pattern.clone(),
                        read: *read,
                        write: *write,
                    }),
                }
            }
            Rule::AllChannels => {
                self.all_channels = true;
                self.channels.clear();
            }
            Rule::ResetChannels => {
                self.all_channels = false;
                self.channels.clear();
            }
            Rule::ChannelPattern(pattern) => {
                if self.all_channels {
                    return Err(AclError::ChannelAfterAll);
                }
                if !self.channels.contains(pattern) {
                    self.channels.push(pattern.clone());
                }
            }
            Rule::Limit(limit) => self.limits.apply(limit),
        }
        Ok(())
    }

    /// `+cmd`, `-cmd`, `+@cat`, `-@cat`: changes the allowed set as Redis
    /// does (a container's rule covers its subcommands), and keeps the
    /// shortest rule list that reproduces the set for the description.
    fn apply_command_rule(&mut self, rule: &Rule) {
        let text = match *rule {
            Rule::Command(name, allow) => {
                change(&mut self.allowed, name, allow);
                format!("{}{name}", sign(allow))
            }
            Rule::Category(category, allow) => {
                for spec in COMMANDS {
                    if spec.categories.contains(&category) {
                        change(&mut self.allowed, spec.name, allow);
                    }
                    for sub in spec.subcommands {
                        if sub.categories.contains(&category) {
                            change(&mut self.allowed, sub.name, allow);
                        }
                    }
                }
                format!("{}@{category}", sign(allow))
            }
            _ => return,
        };
        // A later rule on the same command or category replaces an
        // earlier one; then every rule the others make redundant goes, so
        // `+get +@read` is described as `+@read` (as Redis does).
        let target = &text[1..];
        self.command_rules.retain(|r| &r[1..] != target);
        self.command_rules.push(text);
        let mut i = 0;
        while i < self.command_rules.len() {
            let removed = self.command_rules.remove(i);
            if self.replay_rules() == self.allowed {
                continue;
            }
            self.command_rules.insert(i, removed);
            i += 1;
        }
    }

    /// The allowed set the description's command rules produce.
    fn replay_rules(&self) -> BTreeSet<&'static str> {
        let mut fresh = User::new("");
        let _ = fresh.apply(if self.all_commands_base {
            &Rule::AllCommands
        } else {
            &Rule::NoCommands
        });
        for text in &self.command_rules {
            if let Ok(Some(rule)) = super::parse_rule(text.as_bytes()) {
                let (Rule::Command(..) | Rule::Category(..)) = rule else {
                    continue;
                };
                // Plain set changes; no description bookkeeping here.
                match rule {
                    Rule::Command(name, allow) => change(&mut fresh.allowed, name, allow),
                    Rule::Category(category, allow) => {
                        for spec in all_specs() {
                            if spec.categories.contains(&category) {
                                change(&mut fresh.allowed, spec.name, allow);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        fresh.allowed
    }

    /// Whether the user may run the command named `name` (table name).
    pub fn can_run(&self, name: &str) -> bool {
        self.allowed.contains(name)
    }

    /// Whether `password` is one of the user's (or the user is nopass).
    /// Compares hashes without an early exit.
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let hashed = super::hash_password(password);
        self.passwords.iter().fold(false, |ok, p| {
            ok | constant_time_eq(p.as_bytes(), hashed.as_bytes())
        })
    }

    /// Flags in Redis's order (`ACL GETUSER` flags).
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize {
            Some(false) => flags.push("skip-sanitize-payload"),
            Some(true) => flags.push("sanitize-payload"),
            None => {}
        }
        flags
    }

    /// `+@all -get`..., as `ACL GETUSER` shows under "commands".
    pub fn describe_commands(&self) -> String {
        let mut out = String::from(if self.all_commands_base {
            "+@all"
        } else {
            "-@all"
        });
        for rule in &self.command_rules {
            out.push(' ');
            out.push_str(rule);
        }
        out
    }

    /// `~*`, or the patterns separated by spaces (empty when none).
    pub fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        self.keys
            .iter()
            .map(KeyPattern::describe)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `&*`, or the channel patterns separated by spaces (empty when none).
    pub fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The rules after `user <name>` in `ACL LIST`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().iter().map(|f| f.to_string()).collect();
        parts.extend(self.passwords.iter().map(|p| format!("#{p}")));
        if self.all_keys {
            parts.push("~*".into());
        } else {
            parts.extend(self.keys.iter().map(KeyPattern::describe));
        }
        if self.all_channels {
            parts.push("&*".into());
        } else {
            parts.push("resetchannels".into());
            parts.extend(
                self.channels
                    .iter()
                    .map(|c| format!("&{}", String::from_utf8_lossy(c))),
            );
        }
        parts.push(self.describe_commands());
        parts.extend(self.limits.describe());
        parts.join(" ")
    }

    /// Rebuilds a user from [`User::describe`]'s text.
    pub fn from_description(name: &str, description: &str) -> Result<User, AclError> {
        let mut user = User::new(name);
        for op in description.split(' ') {
            if let Some(rule) = super::parse_rule(op.as_bytes())? {
                user.apply(&rule)?;
            }
        }
        Ok(user)
    }
}

fn sign(allow: bool) -> char {
    if allow {
        '+'
    } else {
        '-'
    }
}

/// Allows or denies `name` and, for a container, all its subcommands.
fn change(allowed: &mut BTreeSet<&'static str>, name: &'static str, allow: bool) {
    let spec = crate::command_table::lookup_name(name.as_bytes());
    let subs = spec.map(|s| s.subcommands).unwrap_or(&[]);
    for n in std::iter::once(name).chain(subs.iter().map(|s| s.name)) {
        if allow {
            allowed.insert(n);
        } else {
            allowed.remove(n);
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::parse_rule;

    fn user(rules: &str) -> User {
        let mut u = User::new("u");
        for op in rules.split_whitespace() {
            let rule = parse_rule(op.as_bytes()).unwrap().unwrap();
            u.apply(&rule).unwrap();
        }
        u
    }

    #[test]
    fn a_new_user_is_described_like_redis() {
        assert_eq!(User::new("u").describe(), "off resetchannels -@all");
        assert_eq!(
            user("on >p ~k* %R~r* &ch +get").describe(),
            format!(
                "on #{} ~k* %R~r* resetchannels &ch -@all +get",
                crate::acl::hash_password(b"p")
            )
        );
        assert_eq!(
            User::default_user(None).describe(),
            "on nopass ~* &* +@all +@admin"
        );
    }

    #[test]
    fn command_rules_follow_redis() {
        let u = user("+@read -get");
        assert!(u.can_run("mget") && !u.can_run("get") && !u.can_run("set"));
        assert_eq!(u.describe_commands(), "-@all +@read -get");
        let u = user("+@all -client|kill");
        assert!(u.can_run("client|list") && !u.can_run("client|kill"));
        assert!(!u.can_run("rampart.streamformat"), "+@all is not admin");
        let u = user("+client -client|kill +get +get");
        assert!(u.can_run("client|list") && !u.can_run("client|kill"));
        assert_eq!(u.describe_commands(), "-@all +client -client|kill +get");
        // Undoing a rule leaves no trace.
        assert_eq!(user("+get -get").describe_commands(), "-@all");
        assert_eq!(
            user("+get nocommands +set").describe_commands(),
            "-@all +set"
        );
    }

    #[test]
    fn descriptions_round_trip() {
        for rules in [
            "on >a >b nopass",
            "on #0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ~* &* +@all -@dangerous +flushdb",
            "reset on %RW~a %W~b ~c resetchannels &x +@hash -hdel",
            "skip-sanitize-payload allkeys allchannels +@admin",
            "on nopass +@all limit-connections=3 limit-share=heavy_scan:1 limit-reject-rate=2",
        ] {
            let u = user(rules);
            let back = User::from_description("u", &u.describe()).unwrap();
            assert_eq!(back.describe(), u.describe(), "{rules}");
            assert_eq!(back.allowed, u.allowed, "{rules}");
            assert_eq!(back.limits, u.limits, "{rules}");
        }
    }

    #[test]
    fn reset_clears_the_limits_and_the_description_ends_with_them() {
        let mut u = user("on nopass limit-connections=3 limit-share=heavy_scan:1");
        assert!(u
            .describe()
            .ends_with("-@all limit-connections=3 limit-share=heavy_scan:1"));
        u.apply(&Rule::Reset).unwrap();
        assert!(u.limits.is_empty());
        assert!(!u.describe().contains("limit-"));
    }

    #[test]
    fn errors_that_depend_on_the_user() {
        let mut u = user("allkeys allchannels");
        let key = parse_rule(b"~x").unwrap().unwrap();
        assert_eq!(u.apply(&key), Err(AclError::KeyAfterAll));
        let ch = parse_rule(b"&x").unwrap().unwrap();
        assert_eq!(u.apply(&ch), Err(AclError::ChannelAfterAll));
        let del = parse_rule(b"<nope").unwrap().unwrap();
        assert_eq!(u.apply(&del), Err(AclError::NoSuchPassword));
    }

    #[test]
    fn passwords() {
        let u = user("on >secret");
        assert!(u.password_ok(b"secret") && !u.password_ok(b"other"));
        assert!(user("on nopass").password_ok(b"anything"));
        assert!(!user("on").password_ok(b""));
    }
}
