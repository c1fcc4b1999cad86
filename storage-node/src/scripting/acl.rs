//! Who runs a script, and whether they may run what it calls. The proxy
//! checks every command a client sends, but a script's `redis.call` /
//! `redis.pcall` runs here, on the node: so the proxy names the client's
//! ACL user on the request (`ExecuteRequest.user`), the node looks that
//! name up in its own copy of the replicated user table (the record the
//! proxies follow, `commands::acl`) and checks each call with the same
//! function the proxy uses ([`check_command`]), answering Redis 7.0's
//! script texts. The denials go back to the proxy with the replies
//! (`Replies.acl_denials`) for its ACL LOG.
//!
//! The request field is trusted: only a proxy or node certificate may
//! send commands that need it (docs/security.md, "Mutual TLS").

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rampart_proto::acl::{check_command, Denial, User};
use rampart_proto::command_table::{lookup, lookup_argv, CommandSpec};
use rampart_proto::pb::AclDenial;
use rampart_proto::{reply, Reply};

use crate::commands::acl::{parse_users, users_text};
use crate::engine::DataRead;

/// Redis 7.0's `redis.call` errors for a refused call (script.c,
/// `scriptVerifyACL`); `redis.call` raises them with the script's context
/// appended, `redis.pcall` returns them as `{err = ...}`.
pub const NO_COMMAND: &str =
    "ERR The user executing the script can't run this command or subcommand";
pub const NO_KEY: &str = "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments";
pub const NO_CHANNEL: &str =
    "ERR The user executing the script can't publish to the channel mentioned in the command";

/// Who a request's scripts run for (`ExecuteRequest.user`), and the
/// denials they met, for the reply.
#[derive(Debug, Default, Clone)]
pub struct Caller {
    pub user: Option<Arc<str>>,
    pub denials: Denials,
}

impl Caller {
    pub fn new(user: Option<String>) -> Caller {
        Caller {
            user: user.map(Arc::from),
            denials: Denials::default(),
        }
    }

    /// What a run of this caller's script checks its calls with, read
    /// from `r`; `None`: nothing to check; the refusal when the user is
    /// unknown (see [`UserCache::resolve`]).
    pub fn script_acl<R: DataRead + ?Sized>(
        &self,
        cache: &UserCache,
        r: &R,
    ) -> Result<Option<ScriptAcl>, Reply> {
        Ok(cache
            .resolve(r, self.user.as_deref())?
            .map(|user| ScriptAcl {
                user,
                denials: self.denials.clone(),
            }))
    }
}

/// The denials the scripts of one request met, shared with their runs on
/// the heavy executor.
#[derive(Debug, Default, Clone)]
pub struct Denials(Arc<Mutex<Vec<AclDenial>>>);

impl Denials {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<AclDenial>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, denial: AclDenial) {
        self.list().push(denial);
    }

    /// How many so far: a run that conflicts and runs again forgets the
    /// ones it added ([`Denials::truncate`]), so ACL LOG counts each
    /// refused call once.
    pub fn mark(&self) -> usize {
        self.list().len()
    }

    pub fn truncate(&self, mark: usize) {
        self.list().truncate(mark);
    }

    pub fn take(&self) -> Vec<AclDenial> {
        std::mem::take(&mut *self.list())
    }
}

/// A script run's user and where its denials go.
#[derive(Debug, Clone)]
pub struct ScriptAcl {
    pub user: Arc<User>,
    pub denials: Denials,
}

impl ScriptAcl {
    /// Checks one `redis.call`; a refusal is recorded for the ACL LOG and
    /// its text returned.
    pub fn check(&self, argv: &[Vec<u8>]) -> Result<(), &'static str> {
        let Err((denial, spec)) = check_call(&self.user, argv) else {
            // SORT's BY/GET refusal is the command's own error, not logged.
            return match rampart_proto::acl::sort_pattern_denial(&self.user, argv) {
                Some(text) => Err(text),
                None => Ok(()),
            };
        };
        self.denials.push(AclDenial {
            reason: denial.reason().into(),
            object: denial.object(spec, argv),
            username: self.user.name.clone(),
        });
        Err(script_text(denial))
    }
}

/// The users by name, parsed from one version of the stored table.
type Table = Arc<HashMap<String, Arc<User>>>;

/// The node's parsed user table, kept from run to run: it is parsed again
/// only when the stored text changed (an `ACL SETUSER` / `DELUSER`), so
/// a script pays one small read for it.
#[derive(Default)]
pub struct UserCache {
    parsed: Mutex<Option<(Vec<u8>, Table)>>,
}

impl UserCache {
    pub fn new() -> UserCache {
        UserCache::default()
    }

    /// The user a script sent as `name` runs as, read from `r`:
    /// - `Ok(None)`: nothing to check. No name: the sender is a trusted
    ///   peer acting for itself (it could send any command directly).
    ///   `default` while the cluster stores no default user: every proxy
    ///   then uses its built-in default, which may run everything.
    /// - `Err(reply)`: no such user. It was deleted after the client sent
    ///   the script (Redis closes the connections of a deleted user); the
    ///   script must not run, and certainly not unchecked.
    pub fn resolve<R: DataRead + ?Sized>(
        &self,
        r: &R,
        name: Option<&str>,
    ) -> Result<Option<Arc<User>>, Reply> {
        let Some(name) = name else {
            return Ok(None);
        };
        match self.table(r).get(name) {
            Some(user) => Ok(Some(user.clone())),
            None if name == "default" => Ok(None),
            None => Err(reply::error(unknown_user(name))),
        }
    }

    fn table<R: DataRead + ?Sized>(&self, r: &R) -> Table {
        let text = users_text(r);
        let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, table)) = parsed.as_ref() {
            if *cached == text {
                return table.clone();
            }
        }
        let table: Table = Arc::new(
            parse_users(&text)
                .users
                .into_iter()
                .map(|(name, user)| (name, Arc::new(user)))
                .collect(),
        );
        *parsed = Some((text, table.clone()));
        table
    }
}

/// The refusal of a script sent for a user the node does not know.
pub fn unknown_user(name: &str) -> String {
    format!("NOPERM User {name} does not exist (it was deleted): the script was not run")
}

/// May `user` run `argv` (name first) from a script: the command or
/// subcommand, every key by the command table's key specs (read / write
/// for `%R~` / `%W~`), and PUBLISH's channel. The error names the denial
/// and the spec it was checked with.
pub fn check_call(user: &User, argv: &[Vec<u8>]) -> Result<(), (Denial, &'static CommandSpec)> {
    // A container with an unknown subcommand fails later on its own; its
    // permission is still the container's.
    let Some(spec) = lookup_argv(argv).or_else(|| argv.first().and_then(|n| lookup(n))) else {
        return Ok(());
    };
    check_command(user, spec, argv).map_err(|denial| (denial, spec))
}

/// The text `redis.call` raises for `denial`.
pub fn script_text(denial: Denial) -> &'static str {
    match denial {
        Denial::Command => NO_COMMAND,
        Denial::Key(_) => NO_KEY,
        Denial::Channel(_) => NO_CHANNEL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use rampart_proto::acl::parse_rule;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|p| p.as_bytes().to_vec()).collect()
    }

    fn user(rules: &str) -> User {
        let mut u = User::new("u");
        for op in rules.split_whitespace() {
            u.apply(&parse_rule(op.as_bytes()).unwrap().unwrap())
                .unwrap();
        }
        u
    }

    fn check_call(u: &User, argv: &[Vec<u8>]) -> Result<(), &'static str> {
        super::check_call(u, argv).map_err(|(denial, _)| script_text(denial))
    }

    #[test]
    fn calls_are_checked_with_redis_script_texts() {
        let u = user("on +@all -set ~app:* %R~ro:* &news.*");
        assert_eq!(check_call(&u, &argv("get app:1")), Ok(()));
        assert_eq!(check_call(&u, &argv("get other")), Err(NO_KEY));
        assert_eq!(check_call(&u, &argv("get ro:1")), Ok(()));
        assert_eq!(check_call(&u, &argv("append ro:1 x")), Err(NO_KEY));
        assert_eq!(check_call(&u, &argv("set app:1 x")), Err(NO_COMMAND));
        assert_eq!(check_call(&u, &argv("setex app:1 1 x")), Ok(()));
        assert_eq!(check_call(&u, &argv("object encoding other")), Err(NO_KEY));
        assert_eq!(check_call(&u, &argv("object encoding app:1")), Ok(()));
        assert_eq!(check_call(&u, &argv("publish sport m")), Err(NO_CHANNEL));
        assert_eq!(check_call(&u, &argv("publish news.a m")), Ok(()));
        let no_object = user("on +@all -object|encoding ~*");
        assert_eq!(
            check_call(&no_object, &argv("object encoding k")),
            Err(NO_COMMAND)
        );
        assert_eq!(check_call(&no_object, &argv("object freq k")), Ok(()));
    }

    #[test]
    fn refusals_are_recorded_for_the_acl_log() {
        let acl = ScriptAcl {
            user: Arc::new(user("on +@all -set ~app:*")),
            denials: Denials::default(),
        };
        assert_eq!(acl.check(&argv("get app:1")), Ok(()));
        assert_eq!(acl.check(&argv("get other")), Err(NO_KEY));
        let mark = acl.denials.mark();
        assert_eq!(acl.check(&argv("set app:1 x")), Err(NO_COMMAND));
        assert_eq!(acl.check(&argv("object encoding x")), Err(NO_KEY));
        acl.denials.truncate(mark + 1);
        let denial = |reason: &str, object: &str| AclDenial {
            reason: reason.into(),
            object: object.as_bytes().to_vec(),
            username: "u".into(),
        };
        assert_eq!(
            acl.denials.take(),
            vec![denial("key", "other"), denial("command", "set")]
        );
        assert!(acl.denials.take().is_empty());
    }

    #[test]
    fn users_are_looked_up_in_the_stored_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let cache = UserCache::new();
        let mut txn = engine.txn();
        assert_eq!(cache.resolve(&txn, None), Ok(None), "a peer's own call");
        assert_eq!(
            cache.resolve(&txn, Some("default")),
            Ok(None),
            "no stored default: the proxies' built-in one"
        );
        assert_eq!(
            cache.resolve(&txn, Some("alice")),
            Err(reply::error(unknown_user("alice")))
        );
        let setuser = argv("rampart.acl.setuser alice on ~a* +get");
        crate::commands::acl::apply_internal(&mut txn, &setuser);
        let alice = cache.resolve(&txn, Some("alice")).unwrap().unwrap();
        assert!(alice.can_run("get") && !alice.can_run("set"));
        let change = argv("rampart.acl.setuser alice +set");
        crate::commands::acl::apply_internal(&mut txn, &change);
        let alice = cache.resolve(&txn, Some("alice")).unwrap().unwrap();
        assert!(alice.can_run("set"), "a changed table is read again");
        let restrict = argv("rampart.acl.setuser default -@all");
        crate::commands::acl::apply_internal(&mut txn, &restrict);
        let default = cache.resolve(&txn, Some("default")).unwrap().unwrap();
        assert!(!default.can_run("get"), "a stored default is checked");
    }
}
