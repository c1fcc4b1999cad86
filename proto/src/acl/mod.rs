//! Redis 7.2 ACL users as pure data and pure functions, shared by the proxy
//! (which checks every command) and the storage node (which applies
//! `ACL SETUSER` / `DELUSER` inside Raft entries, so every replica holds the
//! same users). Nothing here does I/O.
//!
//! - [`rule`]: one `ACL SETUSER` rule parsed ([`parse_rule`]), with Redis's
//!   error texts ([`AclError`]).
//! - [`user`]: a [`User`] and how rules change it; its description in
//!   `ACL LIST` form, which is also how users are stored.
//! - [`check`]: may a user run this command, on these keys and channels
//!   ([`check::check_command`]), and the `NOPERM` texts.
//! - [`users`]: the whole user table, serialized as `ACL LIST` lines.
//! - [`limits`]: Rampart's per-user admission limits (`limit-...` rules).
//!
//! Categories and key flags come from the command table
//! ([`crate::command_table`]); nothing about a command is listed here.

pub mod check;
pub mod limits;
pub mod rule;
pub mod user;
pub mod users;

pub use check::{check_command, sort_pattern_denial, Denial};
pub use limits::{LimitRule, Limits};
pub use rule::{hash_password, parse_rule, AclError, Rule};
pub use user::User;
pub use users::Users;

/// Redis's ACL categories, in `ACL CAT` order. Which command is in which
/// category is the command table's business (`CommandSpec::categories`).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The internal commands that carry users through the Raft log. They are
/// not in the command table, so no client (and no Lua script) can send
/// them; the proxy's `ACL` command does.
pub mod internal {
    /// `rampart.acl.setuser <name> <rule>...`: applies the rules to the user
    /// (created when missing) all or nothing; replies OK or the
    /// `ERR Error in ACL SETUSER modifier ...` error.
    pub const SETUSER: &str = "rampart.acl.setuser";
    /// `rampart.acl.deluser <name>...`: replies the number deleted.
    pub const DELUSER: &str = "rampart.acl.deluser";
    /// `rampart.acl.get <version>`: a read; nil when the stored version is
    /// still `<version>`, else `[version, users]` (users as `ACL LIST`
    /// lines joined by `\n`).
    pub const GET: &str = "rampart.acl.get";
    /// Prefix shared by the three.
    pub const PREFIX: &[u8] = b"rampart.acl.";
}

/// Whether a command may be granted by `+@all` / `allcommands`: Rampart's
/// own administration commands (`RAMPART.*`) need an explicit grant
/// (`+@admin` or `+rampart.<name>`), see docs/security.md.
pub fn granted_by_all(name: &str) -> bool {
    !name.starts_with("rampart.")
}
