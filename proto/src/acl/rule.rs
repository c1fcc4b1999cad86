//! One `ACL SETUSER` rule: [`parse_rule`] turns its bytes into a [`Rule`]
//! without looking at any user. Errors that depend on the user (a pattern
//! after `allkeys`, removing a password that is not there) come from
//! [`crate::acl::User::apply`].

use sha2::{Digest, Sha256};

use crate::command_table::{lookup, lookup_name};

/// A rule, resolved: passwords already hashed, commands and categories
/// already looked up in the command table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    On,
    Off,
    NoPass,
    ResetPass,
    /// `reset`: resetpass, resetkeys, resetchannels, off, sanitize-payload,
    /// -@all.
    Reset,
    SanitizePayload,
    SkipSanitizePayload,
    /// `>password` (hashed here) or `#hash`: SHA-256, 64 lower-case hex.
    AddPassword(String),
    /// `<password` (hashed here) or `!hash`.
    RemovePassword(String),
    /// `allcommands` / `+@all`.
    AllCommands,
    /// `nocommands` / `-@all`.
    NoCommands,
    /// `+@category` (true) or `-@category`.
    Category(&'static str, bool),
    /// `+command`, `+command|sub` (true) or `-command...`; the command
    /// table's name (`client|kill`).
    Command(&'static str, bool),
    /// `allkeys` / `~*`.
    AllKeys,
    ResetKeys,
    /// `~pattern`, `%R~pattern`, `%W~pattern`, `%RW~pattern`.
    KeyPattern {
        pattern: Vec<u8>,
        read: bool,
        write: bool,
    },
    /// `allchannels` / `&*`.
    AllChannels,
    ResetChannels,
    /// `&pattern`.
    ChannelPattern(Vec<u8>),
    /// `limit-...`: Rampart's admission limits ([`crate::acl::limits`]).
    Limit(crate::acl::LimitRule),
}

/// Why a rule cannot be applied; `Display` is Redis 7.2's text, which
/// `ACL SETUSER` quotes after `Error in ACL SETUSER modifier '<rule>': `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("Unknown command or category name in ACL")]
    UnknownCommand,
    #[error("Syntax error")]
    Syntax,
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    KeyAfterAll,
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    ChannelAfterAll,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSubcommand,
    /// Rampart does not implement selectors (`(...)`) nor first-arg rules
    /// (`+select|0`); said plainly rather than half-supported.
    #[error("{0} are not supported by Rampart")]
    Unsupported(&'static str),
}

/// SHA-256 of `password` as 64 lower-case hex digits (how Redis stores and
/// shows passwords).
pub fn hash_password(password: &[u8]) -> String {
    let digest = Sha256::digest(password);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    out
}

fn valid_hash(hash: &[u8]) -> bool {
    hash.len() == 64
        && hash
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Redis refuses spaces and NUL in patterns (and user names): they would
/// not survive the `ACL LIST` form.
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&b| b.is_ascii_whitespace() || b == 0 || b == 0x0b)
}

/// Whether a pattern or user name can be stored: Rampart keeps users as
/// their `ACL LIST` text (UTF-8), so bytes that are not UTF-8 would come
/// back changed on every other replica and after a restart (found by the
/// `acl_rules` fuzz target). Redis accepts them; Rampart refuses them.
pub fn storable(s: &[u8]) -> bool {
    !has_spaces(s) && std::str::from_utf8(s).is_ok()
}

/// Parses one rule as Redis's `ACLSetUser` reads it. An empty rule is a
/// no-op in Redis; here it is `Ok(None)`.
pub fn parse_rule(op: &[u8]) -> Result<Option<Rule>, AclError> {
    if op.is_empty() {
        return Ok(None);
    }
    let word = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
    let rule = if word("on") {
        Rule::On
    } else if word("off") {
        Rule::Off
    } else if word("nopass") {
        Rule::NoPass
    } else if word("resetpass") {
        Rule::ResetPass
    } else if word("reset") {
        Rule::Reset
    } else if word("sanitize-payload") {
        Rule::SanitizePayload
    } else if word("skip-sanitize-payload") {
        Rule::SkipSanitizePayload
    } else if word("allkeys") || op == b"~*" {
        Rule::AllKeys
    } else if word("resetkeys") {
        Rule::ResetKeys
    } else if word("allchannels") || op == b"&*" {
        Rule::AllChannels
    } else if word("resetchannels") {
        Rule::ResetChannels
    } else if word("allcommands") || word("+@all") {
        Rule::AllCommands
    } else if word("nocommands") || word("-@all") {
        Rule::NoCommands
    } else if word("clearselectors") {
        // No selectors exist, so there is nothing to clear.
        return Ok(None);
    } else if let Some(limit) = crate::acl::limits::parse_limit(op)? {
        Rule::Limit(limit)
    } else {
        return parse_prefixed(op).map(Some);
    };
    Ok(Some(rule))
}

fn parse_prefixed(op: &[u8]) -> Result<Rule, AclError> {
    let rest = &op[1..];
    match op[0] {
        b'>' => Ok(Rule::AddPassword(hash_password(rest))),
        b'<' => Ok(Rule::RemovePassword(hash_password(rest))),
        b'#' | b'!' => {
            if !valid_hash(rest) {
                return Err(AclError::BadHash);
            }
            let hash = String::from_utf8_lossy(rest).into_owned();
            Ok(if op[0] == b'#' {
                Rule::AddPassword(hash)
            } else {
                Rule::RemovePassword(hash)
            })
        }
        b'(' if op.ends_with(b")") => Err(AclError::Unsupported("Selectors")),
        b'~' | b'%' => parse_key_pattern(op),
        b'&' => {
            if !storable(rest) {
                return Err(AclError::Syntax);
            }
            Ok(Rule::ChannelPattern(rest.to_vec()))
        }
        b'+' | b'-' if rest.first() == Some(&b'@') => {
            let name = &rest[1..];
            let category = crate::acl::CATEGORIES
                .iter()
                .find(|c| name.eq_ignore_ascii_case(c.as_bytes()))
                .ok_or(AclError::UnknownCommand)?;
            Ok(Rule::Category(category, op[0] == b'+'))
        }
        b'+' | b'-' => parse_command(rest, op[0] == b'+'),
        _ => Err(AclError::Syntax),
    }
}

/// `%R~`, `%W~`, `%RW~` (any order, once each) or `~`.
fn parse_key_pattern(op: &[u8]) -> Result<Rule, AclError> {
    let (read, write, offset) = if op[0] == b'%' {
        let (mut read, mut write) = (false, false);
        let mut offset = 1;
        loop {
            match op.get(offset).map(u8::to_ascii_uppercase) {
                Some(b'R') if !read => read = true,
                Some(b'W') if !write => write = true,
                Some(b'~') => {
                    offset += 1;
                    break;
                }
                // Redis accepts a missing '~' and stores a pattern with
                // no permission; refusing it is safer and clearer.
                _ => return Err(AclError::Syntax),
            }
            offset += 1;
        }
        if !read && !write {
            return Err(AclError::Syntax);
        }
        (read, write, offset)
    } else {
        (true, true, 1)
    };
    let pattern = &op[offset..];
    if !storable(pattern) {
        return Err(AclError::Syntax);
    }
    Ok(Rule::KeyPattern {
        pattern: pattern.to_vec(),
        read,
        write,
    })
}

/// `command` or `container|subcommand`.
fn parse_command(name: &[u8], allow: bool) -> Result<Rule, AclError> {
    let Some(bar) = name.iter().rposition(|&b| b == b'|') else {
        let spec = lookup(name).ok_or(AclError::UnknownCommand)?;
        return Ok(Rule::Command(spec.name, allow));
    };
    let parent = lookup(&name[..bar]);
    if allow {
        // Checked in Redis's order: a subcommand cannot take a first-arg,
        // and the part after '|' cannot be empty.
        if parent.is_none() {
            // `client|kill|x`: the parent part is itself `client|kill`.
            return Err(if lookup_name(&name[..bar]).is_some() {
                AclError::FirstArgOfSubcommand
            } else {
                AclError::UnknownCommand
            });
        }
        if bar + 1 == name.len() {
            return Err(AclError::Syntax);
        }
    }
    let parent = parent.ok_or(AclError::UnknownCommand)?;
    if parent.subcommands.is_empty() {
        return Err(if allow {
            AclError::Unsupported("First-arg rules")
        } else {
            AclError::UnknownCommand
        });
    }
    let sub = parent
        .subcommand(&name[bar + 1..])
        .ok_or(AclError::UnknownCommand)?;
    Ok(Rule::Command(sub.name, allow))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(op: &str) -> Result<Option<Rule>, AclError> {
        parse_rule(op.as_bytes())
    }

    #[test]
    fn passwords_are_hashed_like_redis() {
        // redis-cli ACL SETUSER u >foo; ACL GETUSER u → this hash.
        assert_eq!(
            hash_password(b"foo"),
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
        assert_eq!(
            parse(">foo"),
            Ok(Some(Rule::AddPassword(hash_password(b"foo"))))
        );
        assert_eq!(parse("#abc"), Err(AclError::BadHash));
        assert_eq!(
            parse(&format!("!{}", "A".repeat(64))),
            Err(AclError::BadHash)
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse("ON"), Ok(Some(Rule::On)));
        assert_eq!(parse("AllKeys"), Ok(Some(Rule::AllKeys)));
        assert_eq!(parse("~*"), Ok(Some(Rule::AllKeys)));
        assert_eq!(parse("+@ALL"), Ok(Some(Rule::AllCommands)));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("bogus"), Err(AclError::Syntax));
    }

    #[test]
    fn commands_and_categories_come_from_the_table() {
        assert_eq!(parse("+GET"), Ok(Some(Rule::Command("get", true))));
        assert_eq!(
            parse("-client|KILL"),
            Ok(Some(Rule::Command("client|kill", false)))
        );
        assert_eq!(parse("+@read"), Ok(Some(Rule::Category("read", true))));
        assert_eq!(parse("+nosuch"), Err(AclError::UnknownCommand));
        assert_eq!(parse("-@nosuch"), Err(AclError::UnknownCommand));
        assert_eq!(parse("+client|"), Err(AclError::Syntax));
        assert_eq!(parse("+client|kill|x"), Err(AclError::FirstArgOfSubcommand));
        assert_eq!(parse("-get|x"), Err(AclError::UnknownCommand));
    }

    #[test]
    fn key_and_channel_patterns() {
        let key = |p: &str, read, write| {
            Ok(Some(Rule::KeyPattern {
                pattern: p.as_bytes().to_vec(),
                read,
                write,
            }))
        };
        assert_eq!(parse("~k*"), key("k*", true, true));
        assert_eq!(parse("%R~r*"), key("r*", true, false));
        assert_eq!(parse("%w~w*"), key("w*", false, true));
        assert_eq!(parse("%WR~x"), key("x", true, true));
        assert_eq!(parse("%RR~x"), Err(AclError::Syntax));
        assert_eq!(parse("%~x"), Err(AclError::Syntax));
        assert_eq!(parse("~a b"), Err(AclError::Syntax));
        // Not UTF-8: it would not survive the stored ACL LIST form.
        assert_eq!(parse_rule(b"~cac\x96he:*"), Err(AclError::Syntax));
        assert_eq!(parse_rule(b"%R~\xff"), Err(AclError::Syntax));
        assert_eq!(parse_rule(b"&\xc3"), Err(AclError::Syntax));
        assert!(parse("~caf\u{e9}:*").is_ok());
        assert_eq!(
            parse("&news.*"),
            Ok(Some(Rule::ChannelPattern(b"news.*".to_vec())))
        );
        assert_eq!(parse("(+get ~x)"), Err(AclError::Unsupported("Selectors")));
    }

    #[test]
    fn hostile_input_never_panics() {
        for op in [
            &b"+"[..],
            b"-",
            b"%",
            b"~",
            b"&",
            b"#",
            b"!",
            b">",
            b"<",
            b"+@",
            b"(",
            b")",
            b"|",
            b"+|",
            b"-|",
            b"~\x96",
            b"&\xff",
            b"%R",
            b"\xff\xfe",
            b"+\xff|\xff",
        ] {
            let _ = parse_rule(op);
        }
    }
}
