//! The user table as the cluster stores it: one `ACL LIST` line per user
//! (`user <name> <rules>`), and the two changes the Raft log carries,
//! [`Users::setuser`] and [`Users::deluser`], all or nothing, with Redis's
//! error texts. The storage node applies them; the proxy validates with
//! the same code before sending, and reads the table back.

use std::collections::BTreeMap;

use super::rule::{has_spaces, parse_rule};
use super::User;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    pub users: BTreeMap<String, User>,
}

/// `ACL DELUSER default`.
pub const DELETE_DEFAULT: &str = "ERR The 'default' user cannot be removed";
/// `ACL SETUSER` of a name with a space.
pub const NAME_WITH_SPACES: &str = "ERR Usernames can't contain spaces or null characters";
/// `ACL SETUSER` of a name that is not UTF-8 (Rampart stores users as
/// text; Redis accepts any bytes).
pub const NAME_NOT_UTF8: &str = "ERR Usernames must be valid UTF-8 in Rampart";

impl Users {
    /// Parses [`Users::serialize`]'s text; lines that do not parse are
    /// skipped (and reported), never fatal.
    pub fn parse(text: &str) -> (Users, Vec<String>) {
        let mut users = Users::default();
        let mut bad = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.splitn(3, ' ');
            let (Some("user"), Some(name)) = (parts.next(), parts.next()) else {
                bad.push(line.to_string());
                continue;
            };
            match User::from_description(name, parts.next().unwrap_or("")) {
                Ok(user) => {
                    users.users.insert(name.to_string(), user);
                }
                Err(_) => bad.push(line.to_string()),
            }
        }
        (users, bad)
    }

    /// One `user <name> <rules>` line per user, by name.
    pub fn serialize(&self) -> String {
        self.lines().join("\n")
    }

    /// `ACL LIST`.
    pub fn lines(&self) -> Vec<String> {
        self.users
            .values()
            .map(|u| format!("user {} {}", u.name, u.describe()))
            .collect()
    }

    /// Applies `rules` to the user `name` (created when missing, from
    /// `base` when given) all or nothing. The error is the whole reply
    /// text, e.g. `ERR Error in ACL SETUSER modifier '~x': ...`.
    pub fn setuser(&mut self, name: &[u8], rules: &[Vec<u8>]) -> Result<(), String> {
        let updated = self.preview(name, rules)?;
        self.users.insert(updated.name.clone(), updated);
        Ok(())
    }

    /// What [`Users::setuser`] would make of the user, without storing it.
    pub fn preview(&self, name: &[u8], rules: &[Vec<u8>]) -> Result<User, String> {
        let existing = self.users.get(String::from_utf8_lossy(name).as_ref());
        preview_user(existing, name, rules)
    }

    /// Deletes the users named; refuses (deleting nothing) when `default`
    /// is among them. Returns how many existed.
    pub fn deluser(&mut self, names: &[Vec<u8>]) -> Result<usize, String> {
        if names.iter().any(|n| n == b"default") {
            return Err(DELETE_DEFAULT.into());
        }
        Ok(names
            .iter()
            .filter(|n| {
                self.users
                    .remove(String::from_utf8_lossy(n).as_ref())
                    .is_some()
            })
            .count())
    }
}

/// Applies `rules` to a copy of `existing` (or a new user `name`), all or
/// nothing; the error is the whole `ACL SETUSER` reply text.
pub fn preview_user(
    existing: Option<&User>,
    name: &[u8],
    rules: &[Vec<u8>],
) -> Result<User, String> {
    if has_spaces(name) {
        return Err(NAME_WITH_SPACES.into());
    }
    let Ok(name) = String::from_utf8(name.to_vec()) else {
        return Err(NAME_NOT_UTF8.into());
    };
    let mut user = existing.cloned().unwrap_or_else(|| User::new(&name));
    for op in rules {
        let applied = parse_rule(op).and_then(|rule| match rule {
            Some(rule) => user.apply(&rule),
            None => Ok(()),
        });
        if let Err(e) = applied {
            return Err(format!(
                "ERR Error in ACL SETUSER modifier '{}': {e}",
                String::from_utf8_lossy(op)
            ));
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn setuser_is_all_or_nothing_and_round_trips() {
        let mut users = Users::default();
        users.setuser(b"alice", &args("on >pw ~a* +get")).unwrap();
        let err = users
            .setuser(b"alice", &args("+set ~b* +nosuch"))
            .unwrap_err();
        assert_eq!(
            err,
            "ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
        );
        assert!(!users.users["alice"].can_run("set"));
        assert_eq!(users.setuser(b"a b", &[]).unwrap_err(), NAME_WITH_SPACES);
        // Found by the acl_rules fuzz target: a name or pattern that is not
        // UTF-8 came back changed from the stored form.
        assert_eq!(users.setuser(b"a\xff", &[]).unwrap_err(), NAME_NOT_UTF8);
        assert_eq!(
            users.setuser(b"bob", &[b"~k\x96*".to_vec()]).unwrap_err(),
            "ERR Error in ACL SETUSER modifier '~k\u{fffd}*': Syntax error"
        );
        let (back, bad) = Users::parse(&users.serialize());
        assert!(bad.is_empty());
        assert_eq!(back, users);
        assert_eq!(
            users.deluser(&args("default alice")),
            Err(DELETE_DEFAULT.into())
        );
        assert_eq!(users.deluser(&args("alice bob")), Ok(1));
    }
}
