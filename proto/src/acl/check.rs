//! May a user run a command: the command itself, every key it names (from
//! the command table's key specs, with their read/write flags) and every
//! pub/sub channel. Pure; the proxy calls [`check_command`] for every
//! command, at queue time inside MULTI, and `ACL DRYRUN` shows the result.

use super::User;
use crate::command_table::{CommandSpec, KeyFlags};
use crate::glob::glob_match;

/// Why a command was refused, with the argument index of the key or
/// channel that was (Redis reports the first one it finds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denial {
    /// `ACL LOG`'s "reason".
    pub fn reason(self) -> &'static str {
        match self {
            Denial::Command => "command",
            Denial::Key(_) => "key",
            Denial::Channel(_) => "channel",
        }
    }

    /// `ACL LOG`'s "object": the command name, or the key or channel.
    pub fn object(self, spec: &CommandSpec, argv: &[Vec<u8>]) -> Vec<u8> {
        match self {
            Denial::Command => spec.name.as_bytes().to_vec(),
            Denial::Key(i) | Denial::Channel(i) => argv.get(i).cloned().unwrap_or_default(),
        }
    }

    /// The text after `-NOPERM ` for a refused command (Redis 7.2's
    /// `getAclErrorMessage`, not verbose).
    pub fn noperm(self, user: &str, spec: &CommandSpec) -> String {
        match self {
            Denial::Command => format!(
                "NOPERM User {user} has no permissions to run the '{}' command",
                spec.name
            ),
            Denial::Key(_) => "NOPERM No permissions to access a key".into(),
            Denial::Channel(_) => "NOPERM No permissions to access a channel".into(),
        }
    }

    /// `ACL DRYRUN`'s answer (the verbose form).
    pub fn dryrun(self, user: &str, spec: &CommandSpec, argv: &[Vec<u8>]) -> String {
        let object = String::from_utf8_lossy(&self.object(spec, argv)).into_owned();
        match self {
            Denial::Command => format!(
                "User {user} has no permissions to run the '{}' command",
                spec.name
            ),
            Denial::Key(_) => {
                format!("User {user} has no permissions to access the '{object}' key")
            }
            Denial::Channel(_) => {
                format!("User {user} has no permissions to access the '{object}' channel")
            }
        }
    }
}

/// Checks `argv` (name first) against `user`. `spec` is what
/// `lookup_argv` found: the subcommand for a container.
pub fn check_command(user: &User, spec: &CommandSpec, argv: &[Vec<u8>]) -> Result<(), Denial> {
    if !spec.flags.contains(&"no_auth") && !user.can_run(spec.name) {
        return Err(Denial::Command);
    }
    if !user.all_keys && spec.has_keys() {
        for key in spec.find_keys(argv) {
            let Some(name) = argv.get(key.pos) else {
                continue;
            };
            if !key_allowed(user, name, key.flags) {
                return Err(Denial::Key(key.pos));
            }
        }
    }
    if !user.all_channels {
        // Redis's ACLDoesCommandHaveChannels: these five name channels;
        // the unsubscribe family never needs a permission.
        let (from, to, literal) = match spec.name {
            "publish" | "spublish" => (1, 2.min(argv.len()), false),
            "subscribe" | "ssubscribe" => (1, argv.len(), false),
            // A pattern subscription must be granted literally (7.x).
            "psubscribe" => (1, argv.len(), true),
            _ => return Ok(()),
        };
        for (i, channel) in argv.iter().enumerate().take(to).skip(from) {
            if !channel_allowed(user, channel, literal) {
                return Err(Denial::Channel(i));
            }
        }
    }
    Ok(())
}

/// SORT's BY and GET patterns read keys no key spec names, so Redis lets
/// them through only for a user who may read every key
/// (`ACLUserCheckCmdWithUnrestrictedKeyAccess`: all keys, or a `*` pattern
/// with read permission). For anyone else the first such option is
/// refused with a command error, not a NOPERM and not logged, in argument
/// order with SORT's other errors: the text, when that is the answer.
pub fn sort_pattern_denial(user: &User, argv: &[Vec<u8>]) -> Option<&'static str> {
    use crate::parse::sort::{sort_options, BY_DENIED, GET_DENIED};
    let name = argv.first()?;
    let readonly = if name.eq_ignore_ascii_case(b"sort_ro") {
        true
    } else if name.eq_ignore_ascii_case(b"sort") {
        false
    } else {
        return None;
    };
    if user.all_keys || user.keys.iter().any(|p| p.read && p.pattern == b"*") {
        return None;
    }
    match sort_options(argv.get(2..)?, readonly, false) {
        Err(text) if text == BY_DENIED => Some(BY_DENIED),
        Err(text) if text == GET_DENIED => Some(GET_DENIED),
        _ => None,
    }
}

/// Redis's `ACLSelectorCheckKey`: reading the value needs a pattern with
/// read permission, inserting, updating or deleting one with write.
pub fn key_allowed(user: &User, key: &[u8], flags: KeyFlags) -> bool {
    if user.all_keys {
        return true;
    }
    let need_read = flags.contains(KeyFlags::ACCESS);
    let need_write = flags.contains(KeyFlags::INSERT)
        || flags.contains(KeyFlags::DELETE)
        || flags.contains(KeyFlags::UPDATE);
    user.keys
        .iter()
        .any(|p| (p.read || !need_read) && (p.write || !need_write) && glob_match(&p.pattern, key))
}

/// Whether `channel` is granted; `literal` compares patterns as strings
/// (PSUBSCRIBE).
pub fn channel_allowed(user: &User, channel: &[u8], literal: bool) -> bool {
    user.all_channels
        || user.channels.iter().any(|p| {
            if literal {
                p == channel
            } else {
                glob_match(p, channel)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::parse_rule;
    use crate::command_table::lookup_argv;

    fn user(rules: &str) -> User {
        let mut u = User::new("u");
        for op in rules.split_whitespace() {
            u.apply(&parse_rule(op.as_bytes()).unwrap().unwrap())
                .unwrap();
        }
        u
    }

    fn check(u: &User, cmd: &str) -> Result<(), Denial> {
        let argv: Vec<Vec<u8>> = cmd.split(' ').map(|s| s.as_bytes().to_vec()).collect();
        check_command(u, lookup_argv(&argv).unwrap(), &argv)
    }

    #[test]
    fn commands_keys_and_channels() {
        let u = user("on +@all ~app:* %R~ro:* %W~wo:* &news.*");
        assert_eq!(check(&u, "GET app:1"), Ok(()));
        assert_eq!(check(&u, "GET other"), Err(Denial::Key(1)));
        assert_eq!(check(&u, "GET ro:1"), Ok(()));
        assert_eq!(check(&u, "SET ro:1 v"), Err(Denial::Key(1)));
        assert_eq!(check(&u, "SET wo:1 v"), Ok(()));
        assert_eq!(check(&u, "GET wo:1"), Err(Denial::Key(1)));
        // LMOVE reads and deletes from the source, inserts in the target.
        assert_eq!(check(&u, "LMOVE app:a wo:b LEFT LEFT"), Ok(()));
        assert_eq!(check(&u, "LMOVE wo:a app:b LEFT LEFT"), Err(Denial::Key(1)));
        assert_eq!(check(&u, "MSET app:1 a x b"), Err(Denial::Key(3)));
        assert_eq!(check(&u, "EVAL s 2 app:1 x"), Err(Denial::Key(4)));
        assert_eq!(check(&u, "PUBLISH news.a m"), Ok(()));
        assert_eq!(check(&u, "PUBLISH sport m"), Err(Denial::Channel(1)));
        assert_eq!(check(&u, "SUBSCRIBE news.a sport"), Err(Denial::Channel(2)));
        assert_eq!(check(&u, "PSUBSCRIBE news.a"), Err(Denial::Channel(1)));
        assert_eq!(check(&u, "PSUBSCRIBE news.*"), Ok(()));
        assert_eq!(check(&u, "UNSUBSCRIBE sport"), Ok(()));
        let ro = user("on +@read ~*");
        assert_eq!(check(&ro, "SET k v"), Err(Denial::Command));
        assert_eq!(
            check(&ro, "AUTH a b"),
            Ok(()),
            "no_auth commands always run"
        );
    }

    #[test]
    fn texts_are_redis_7_2() {
        let u = user("on +get ~a*");
        let argv: Vec<Vec<u8>> = vec![b"GET".to_vec(), b"b".to_vec()];
        let spec = lookup_argv(&argv).unwrap();
        assert_eq!(
            Denial::Command.noperm("u", spec),
            "NOPERM User u has no permissions to run the 'get' command"
        );
        let denial = check_command(&u, spec, &argv).unwrap_err();
        assert_eq!(
            denial.noperm("u", spec),
            "NOPERM No permissions to access a key"
        );
        assert_eq!(
            denial.dryrun("u", spec, &argv),
            "User u has no permissions to access the 'b' key"
        );
    }

    #[test]
    fn sort_patterns_need_access_to_every_key() {
        let argv = |text: &str| -> Vec<Vec<u8>> {
            text.split(' ').map(|a| a.as_bytes().to_vec()).collect()
        };
        let some = user("on nopass +@all ~k*");
        assert_eq!(
            sort_pattern_denial(&some, &argv("SORT k BY w_*")),
            Some(crate::parse::sort::BY_DENIED)
        );
        assert_eq!(
            sort_pattern_denial(&some, &argv("SORT_RO k BY nosort GET #")),
            Some(crate::parse::sort::GET_DENIED)
        );
        assert_eq!(
            sort_pattern_denial(&some, &argv("SORT k BY nosort LIMIT 0 1")),
            None
        );
        assert_eq!(
            sort_pattern_denial(&some, &argv("SORT k FOO GET #")),
            None,
            "syntax first"
        );
        assert_eq!(sort_pattern_denial(&some, &argv("GET k")), None);
        for rules in [
            "on nopass +@all ~*",
            "on nopass +@all allkeys",
            "on nopass +@all %R~*",
        ] {
            assert_eq!(
                sort_pattern_denial(&user(rules), &argv("SORT k BY w_* GET #")),
                None,
                "{rules}"
            );
        }
        let write_only = user("on nopass +@all %W~*");
        assert!(sort_pattern_denial(&write_only, &argv("SORT k GET #")).is_some());
    }
}
