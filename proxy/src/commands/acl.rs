//! ACL: users, permissions and the ACL log, with Redis 7.2's replies.
//!
//! Reads (GETUSER, LIST, USERS, CAT, DRYRUN, WHOAMI) answer from this
//! proxy's copy of the users ([`crate::acl`]). Changes (SETUSER, DELUSER)
//! are validated here with the same code the node runs, then sent to the
//! cluster as an internal command applied through the Raft log; the proxy
//! re-reads the users before answering, so the change is visible at once
//! here and within a second on every other proxy. Clear-text passwords
//! (`>p`, `<p`) are hashed before they leave the proxy: only hashes reach
//! the log and the disk.

use std::sync::Arc;
use std::time::Instant;

use rampart_proto::acl::limits::parse_limit;
use rampart_proto::acl::{hash_password, internal, users, Denial, LimitRule, CATEGORIES};
use rampart_proto::args::parse_i64;
use rampart_proto::command_table::{lookup_argv, CommandSpec, COMMANDS};
use rampart_proto::pb::AclDenial;
use rampart_proto::{errors, reply, Reply};

use super::{Session, Shared};
use crate::acl::{now_ms, Context};
use crate::upstream::CallOptions;

const NO_ACL_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";
const GENPASS_MAX_BITS: i64 = 4096;

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
];

pub async fn acl(
    spec: &CommandSpec,
    args: &[Vec<u8>],
    session: &mut Session,
    shared: &Shared,
) -> Reply {
    let Some(sub) = args.first() else {
        return reply::error(errors::wrong_arity("acl"));
    };
    let Some(sub_spec) = spec.subcommand(sub) else {
        return reply::error(errors::unknown_subcommand("acl", sub));
    };
    if !sub_spec.arity_ok(args.len() + 1) {
        return reply::error(errors::wrong_arity(sub_spec.name));
    }
    let rest = &args[1..];
    match sub_spec.name {
        "acl|setuser" => setuser(rest, shared).await,
        "acl|deluser" => deluser(rest, shared).await,
        "acl|getuser" => getuser(&rest[0], shared),
        "acl|list" => reply::bulk_array(
            shared
                .acl
                .snapshot()
                .users
                .values()
                .map(|u| format!("user {} {}", u.name, u.describe())),
        ),
        "acl|users" => reply::bulk_array(shared.acl.snapshot().users.keys().cloned()),
        "acl|whoami" => reply::bulk(session.user.name.clone()),
        "acl|cat" => cat(rest),
        "acl|dryrun" => dryrun(rest, shared),
        "acl|log" => log(rest, shared),
        "acl|genpass" => genpass(rest),
        "acl|load" | "acl|save" => reply::error(NO_ACL_FILE),
        _ => reply::array(HELP.iter().map(|l| reply::status(*l)).collect()),
    }
}

/// Sends one internal ACL write to the cluster, then re-reads the users.
async fn write(command: Vec<Vec<u8>>, shared: &Shared) -> Reply {
    let (client_id, seq) = shared.acl.next_request(&shared.proxy_id);
    let replies = shared
        .upstream
        .call(vec![command], client_id, seq, CallOptions::default())
        .await;
    let reply = match replies {
        Ok(replies) => replies
            .into_iter()
            .next()
            .unwrap_or_else(|| reply::error("ERR internal error: no reply")),
        Err(crate::ProxyError::ClusterDown(_)) => return reply::error(crate::CLUSTERDOWN_TEXT),
        Err(e) => return reply::error(format!("ERR {e}")),
    };
    if !reply.is_error() {
        if let Err(error) = shared
            .acl
            .refresh(&shared.upstream, &shared.proxy_id, &shared.registry)
            .await
        {
            tracing::warn!(%error, "ACL change applied but not re-read yet");
        }
    }
    reply
}

async fn setuser(args: &[Vec<u8>], shared: &Shared) -> Reply {
    let (name, rules) = (&args[0], &args[1..]);
    // Validated here first, against this proxy's copy, so the error names
    // the rule as the client wrote it; the node checks again.
    let existing = shared.acl.user(&String::from_utf8_lossy(name));
    if let Err(text) = users::preview_user(existing.as_deref(), name, rules) {
        return reply::error(text);
    }
    // The class of a `limit-share` must exist here (the node cannot know).
    for rule in rules {
        if let Ok(Some(LimitRule::Share(class, _))) = parse_limit(rule) {
            if !shared.policies.has_class(&class) {
                return reply::error(format!(
                    "ERR Error in ACL SETUSER modifier '{}': no command class '{class}'",
                    String::from_utf8_lossy(rule)
                ));
            }
        }
    }
    let mut command = vec![internal::SETUSER.as_bytes().to_vec(), name.clone()];
    if name == b"default" && !shared.acl.cluster_has_default() {
        // The stored default user starts as this proxy's (requirepass).
        command.extend(shared.acl.local_default_rules());
    }
    command.extend(rules.iter().map(|rule| hashed(rule)));
    write(command, shared).await
}

/// `>password` as `#hash`, `<password` as `!hash`; other rules unchanged.
fn hashed(rule: &[u8]) -> Vec<u8> {
    match rule.first() {
        Some(b'>') => format!("#{}", hash_password(&rule[1..])).into_bytes(),
        Some(b'<') => format!("!{}", hash_password(&rule[1..])).into_bytes(),
        _ => rule.to_vec(),
    }
}

async fn deluser(names: &[Vec<u8>], shared: &Shared) -> Reply {
    if names.iter().any(|n| n == b"default") {
        return reply::error(users::DELETE_DEFAULT);
    }
    let mut command = vec![internal::DELUSER.as_bytes().to_vec()];
    command.extend(names.iter().cloned());
    write(command, shared).await
}

/// Redis 7.2's shape: flags, passwords, commands, keys, channels,
/// selectors (always empty: Rampart has no selectors).
fn getuser(name: &[u8], shared: &Shared) -> Reply {
    let Some(user) = shared.acl.user(&String::from_utf8_lossy(name)) else {
        return reply::null();
    };
    let mut fields = vec![
        (
            reply::bulk("flags"),
            reply::set(user.flags().into_iter().map(reply::bulk).collect()),
        ),
        (
            reply::bulk("passwords"),
            reply::bulk_array(user.passwords.iter().cloned()),
        ),
        (
            reply::bulk("commands"),
            reply::bulk(user.describe_commands()),
        ),
        (reply::bulk("keys"), reply::bulk(user.describe_keys())),
        (
            reply::bulk("channels"),
            reply::bulk(user.describe_channels()),
        ),
        (reply::bulk("selectors"), reply::array(Vec::new())),
    ];
    // Rampart's admission limits, only for a user that has some, so the
    // reply is Redis's own shape otherwise.
    if !user.limits.is_empty() {
        fields.push((
            reply::bulk("limits"),
            reply::bulk(user.limits.describe().join(" ")),
        ));
    }
    reply::map(fields)
}

fn cat(args: &[Vec<u8>]) -> Reply {
    let Some(wanted) = args.first() else {
        return reply::bulk_array(CATEGORIES.iter().copied());
    };
    let Some(category) = CATEGORIES
        .iter()
        .find(|c| wanted.eq_ignore_ascii_case(c.as_bytes()))
    else {
        let shown = &wanted[..wanted.len().min(128)];
        return reply::error(format!(
            "ERR Unknown category '{}'",
            String::from_utf8_lossy(shown)
        ));
    };
    let names = COMMANDS
        .iter()
        .flat_map(|spec| std::iter::once(spec).chain(spec.subcommands))
        .filter(|spec| spec.categories.contains(category))
        .map(|spec| spec.name);
    reply::bulk_array(names)
}

fn dryrun(args: &[Vec<u8>], shared: &Shared) -> Reply {
    let name = String::from_utf8_lossy(&args[0]).into_owned();
    let Some(user) = shared.acl.user(&name) else {
        return reply::error(format!("ERR User '{name}' not found"));
    };
    let argv = &args[1..];
    let Some(spec) = lookup_argv(argv) else {
        return reply::error(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&argv[0])
        ));
    };
    if !spec.arity_ok(argv.len()) {
        return reply::error(errors::wrong_arity(spec.name));
    }
    match rampart_proto::acl::check_command(&user, spec, argv) {
        Ok(()) => reply::ok(),
        Err(denial) => reply::bulk(denial.dryrun(&user.name, spec, argv)),
    }
}

fn log(args: &[Vec<u8>], shared: &Shared) -> Reply {
    let mut count = 10;
    if let Some(arg) = args.first() {
        if arg.eq_ignore_ascii_case(b"reset") {
            shared
                .acl
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reset();
            return reply::ok();
        }
        match parse_i64(arg) {
            Some(n) => count = n.max(0) as usize,
            None => return reply::error(errors::NOT_INTEGER),
        }
    }
    let now = now_ms();
    let log = shared.acl.log.lock().unwrap_or_else(|p| p.into_inner());
    let entries = log.entries.iter().take(count).map(|e| {
        let field = |name: &str, value: Reply| (reply::bulk(name), value);
        reply::map(vec![
            field("count", reply::integer(e.count as i64)),
            field("reason", reply::bulk(e.reason)),
            field("context", reply::bulk(e.context.name())),
            field("object", reply::bulk(e.object.clone())),
            field("username", reply::bulk(e.username.clone())),
            field(
                "age-seconds",
                reply::double(now.saturating_sub(e.updated_ms) as f64 / 1000.0),
            ),
            field("client-info", reply::bulk(e.client_info.clone())),
            field("entry-id", reply::integer(e.entry_id as i64)),
            field("timestamp-created", reply::integer(e.created_ms as i64)),
            field(
                "timestamp-last-updated",
                reply::integer(e.updated_ms as i64),
            ),
        ])
    });
    reply::array(entries.collect())
}

fn genpass(args: &[Vec<u8>]) -> Reply {
    let bits = match args.first() {
        None => 256,
        Some(arg) => match parse_i64(arg) {
            Some(n) => n,
            None => return reply::error(errors::NOT_INTEGER),
        },
    };
    if bits <= 0 || bits > GENPASS_MAX_BITS {
        return reply::error(format!(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to {GENPASS_MAX_BITS}"
        ));
    }
    use rand::RngCore;
    let chars = ((bits + 3) / 4) as usize;
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    reply::bulk(hex)
}

/// Checks `argv` against the session's user before it runs or is queued;
/// the `NOPERM` reply (and an ACL LOG entry) when refused. `None` also
/// when the command is unknown to the table (its own error comes later).
pub fn check(
    spec: &'static CommandSpec,
    argv: &[Vec<u8>],
    in_multi: bool,
    session: &mut Session,
    shared: &Shared,
) -> Option<Reply> {
    // A container's permission is its subcommand's (`client|kill`).
    let spec = if spec.subcommands.is_empty() {
        spec
    } else {
        spec.subcommand(argv.get(1)?)?
    };
    let user = session.current_user(shared)?;
    let denial = rampart_proto::acl::check_command(&user, spec, argv).err()?;
    let context = if in_multi {
        Context::Multi
    } else {
        Context::Toplevel
    };
    log_denial(session, shared, denial, context, spec, argv);
    Some(reply::error(denial.noperm(&user.name, spec)))
}

/// SORT / SORT_RO with a BY or GET pattern from a user who may not read
/// every key: Redis's command error (`rampart_proto::acl::sort_pattern_denial`).
/// Checked when the command would run: at once, or at EXEC inside MULTI.
pub fn sort_patterns_denied(
    argv: &[Vec<u8>],
    session: &mut Session,
    shared: &Shared,
) -> Option<Reply> {
    // Every command passes here: the name first, the user only for SORT.
    let name = argv.first()?;
    if !name.eq_ignore_ascii_case(b"sort") && !name.eq_ignore_ascii_case(b"sort_ro") {
        return None;
    }
    let user = session.current_user(shared)?;
    rampart_proto::acl::sort_pattern_denial(&user, argv).map(reply::error)
}

/// EXEC's second look: a queued command the user may no longer run (its
/// rules changed since it was queued) gets Redis 7.2's error in its place
/// in the EXEC reply, and is not run; the others run.
pub fn recheck_queued(
    spec: &'static CommandSpec,
    argv: &[Vec<u8>],
    session: &mut Session,
    shared: &Shared,
) -> Option<Reply> {
    let spec = if spec.subcommands.is_empty() {
        spec
    } else {
        spec.subcommand(argv.get(1)?)?
    };
    let user = session.current_user(shared)?;
    let denial = rampart_proto::acl::check_command(&user, spec, argv).err()?;
    log_denial(session, shared, denial, Context::Multi, spec, argv);
    let reason = match denial {
        Denial::Command => "no permission to execute the command or subcommand",
        Denial::Key(_) => "no permission to touch the specified keys",
        Denial::Channel(_) => "no permission to access one of the channels used as arguments",
    };
    Some(reply::error(format!(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated \
         and the EXEC call. This command is no longer allowed for the following reason: {reason}"
    )))
}

fn log_denial(
    session: &Session,
    shared: &Shared,
    denial: Denial,
    context: Context,
    spec: &CommandSpec,
    argv: &[Vec<u8>],
) {
    let info = session.handle.list_line(Instant::now());
    shared
        .acl
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add(
            denial.reason(),
            context,
            denial.object(spec, argv),
            &session.user.name,
            info,
        );
}

/// Entries for the denials a batch's scripts met on the node (context
/// `lua`), with the client's `CLIENT LIST` line while it is connected.
/// `client_id` is the batch's (`<proxy id>:<connection id>`).
pub fn log_script_denials(shared: &Shared, client_id: &str, denials: &[AclDenial]) {
    let handle = client_id
        .strip_prefix(shared.proxy_id.as_str())
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|id| id.parse().ok())
        .and_then(|id| shared.registry.get(id));
    let info = handle
        .map(|h| h.list_line(Instant::now()))
        .unwrap_or_default();
    let mut log = shared.acl.log.lock().unwrap_or_else(|p| p.into_inner());
    for denial in denials {
        // The log keeps Redis's three reasons; anything else is not ours.
        let reason = match denial.reason.as_str() {
            "command" => "command",
            "key" => "key",
            "channel" => "channel",
            _ => continue,
        };
        log.add(
            reason,
            Context::Lua,
            denial.object.clone(),
            &denial.username,
            info.clone(),
        );
    }
}

/// An `auth` entry for a failed AUTH / HELLO AUTH of `username`.
pub fn log_auth_failure(session: &Session, shared: &Shared, command: &[u8], username: &[u8]) {
    let info = session.handle.list_line(Instant::now());
    shared
        .acl
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .add(
            "auth",
            Context::Toplevel,
            command.to_vec(),
            &String::from_utf8_lossy(username),
            info,
        );
}

/// The users a session may authenticate as: `None` for an unknown or
/// disabled user or a wrong password.
pub async fn authenticate(
    shared: &Shared,
    username: &[u8],
    password: &[u8],
) -> Option<Arc<rampart_proto::acl::User>> {
    let name = String::from_utf8_lossy(username);
    if shared.acl.snapshot().version.is_none() && name != "default" {
        // Users not read from the cluster yet (a proxy just started).
        let _ = shared
            .acl
            .refresh(&shared.upstream, &shared.proxy_id, &shared.registry)
            .await;
    }
    let user = shared.acl.user(&name)?;
    (user.enabled && user.password_ok(password)).then_some(user)
}
