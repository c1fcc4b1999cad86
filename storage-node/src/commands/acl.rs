//! ACL users as replicated state: the internal commands the proxy's `ACL`
//! command sends (`rampart.acl.*`, see [`rampart_proto::acl::internal`]).
//! They are not in the command table, so no client and no Lua script can
//! send them through a proxy.
//!
//! The whole user table is one record (`ACL LIST` lines, a few hundred
//! bytes per user) under the replicated setting `acl.users`, next to a
//! version counter `acl.version` that every change bumps: proxies poll
//! `rampart.acl.get <version>` and reload only when it moved. Both live
//! outside FLUSHALL's range, as Redis keeps users across FLUSHALL, and
//! travel in snapshots like every other DATA record.

use rampart_proto::acl::{internal, Users};
use rampart_proto::args::parse_i64;
use rampart_proto::{reply, Reply};

use crate::engine::{keys, DataRead, Txn};

const USERS: &[u8] = b"acl.users";
const VERSION: &[u8] = b"acl.version";

/// Whether `argv` is an internal ACL write (goes through the log).
pub fn is_internal_write(argv: &[Vec<u8>]) -> bool {
    argv.first().is_some_and(|name| {
        name == internal::SETUSER.as_bytes() || name == internal::DELUSER.as_bytes()
    })
}

/// Whether `argv` is one of the internal ACL commands.
pub fn is_internal(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|name| name.starts_with(internal::PREFIX))
}

/// The stored user table as text (`ACL LIST` lines; empty when no user
/// was ever set). Scripts check their calls against it (`scripting::acl`).
pub fn users_text<R: DataRead + ?Sized>(r: &R) -> Vec<u8> {
    r.get(&keys::setting_key(USERS))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Parses [`users_text`]'s text; a line that does not parse is skipped and
/// logged.
pub fn parse_users(text: &[u8]) -> Users {
    let (users, bad) = Users::parse(&String::from_utf8_lossy(text));
    for line in bad {
        tracing::warn!(line, "skipping an ACL user record that does not parse");
    }
    users
}

fn load<R: DataRead + ?Sized>(r: &R) -> (Users, u64) {
    (parse_users(&users_text(r)), version(r))
}

fn version<R: DataRead + ?Sized>(r: &R) -> u64 {
    crate::engine::setting_version(r, VERSION)
}

fn store(txn: &mut Txn<'_>, users: &Users, version: u64) {
    txn.put(keys::setting_key(USERS), users.serialize().into_bytes());
    txn.put(
        keys::setting_key(VERSION),
        (version + 1).to_be_bytes().to_vec(),
    );
}

/// Applies an internal ACL write inside a Raft entry; `None` when `argv`
/// is not one.
pub fn apply_internal(txn: &mut Txn<'_>, argv: &[Vec<u8>]) -> Option<Reply> {
    if !is_internal_write(argv) {
        return None;
    }
    let (mut users, version) = load(&*txn);
    Some(match argv {
        [name, user, rules @ ..] if name == internal::SETUSER.as_bytes() => {
            match users.setuser(user, rules) {
                Ok(()) => {
                    store(txn, &users, version);
                    reply::ok()
                }
                Err(text) => reply::error(text),
            }
        }
        [_, names @ ..] if !names.is_empty() => match users.deluser(names) {
            Ok(0) => reply::integer(0),
            Ok(n) => {
                store(txn, &users, version);
                reply::integer(n as i64)
            }
            Err(text) => reply::error(text),
        },
        _ => reply::error("ERR internal error: malformed ACL command"),
    })
}

/// Answers `rampart.acl.get <version>`: nil when unchanged, else
/// `[version, users]`.
pub fn read_internal<R: DataRead + ?Sized>(r: &R, argv: &[Vec<u8>]) -> Reply {
    let known = argv.get(1).and_then(|v| parse_i64(v));
    let current = version(r);
    if known == Some(current as i64) {
        return reply::null();
    }
    let (users, _) = load(r);
    reply::array(vec![
        reply::integer(current as i64),
        reply::bulk(users.serialize()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn users_are_stored_versioned_and_kept_by_flushall() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let mut txn = engine.txn();
        assert_eq!(
            apply_internal(&mut txn, &argv("rampart.acl.setuser alice on ~a* +get")),
            Some(reply::ok())
        );
        let err = apply_internal(&mut txn, &argv("rampart.acl.setuser alice +nosuch")).unwrap();
        assert!(err.is_error());
        assert_eq!(version(&txn), 1, "a refused change bumps nothing");
        crate::commands::apply_write(&mut txn, &[b"FLUSHALL".to_vec()], 0);
        let got = read_internal(&txn, &argv("rampart.acl.get 0"));
        assert_eq!(
            got,
            reply::array(vec![
                reply::integer(1),
                reply::bulk("user alice on ~a* resetchannels -@all +get")
            ])
        );
        assert_eq!(
            read_internal(&txn, &argv("rampart.acl.get 1")),
            reply::null()
        );
        assert_eq!(
            apply_internal(&mut txn, &argv("rampart.acl.deluser alice bob")),
            Some(reply::integer(1))
        );
        assert_eq!(version(&txn), 2);
    }
}
