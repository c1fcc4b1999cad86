//! CLIENT ID/SETNAME/GETNAME/INFO/LIST/SETINFO/KILL/NO-EVICT/NO-TOUCH/HELP.

use std::time::Instant;

use rampart_proto::args::parse_i64;
use rampart_proto::{errors, reply, Reply};

use super::{Session, Shared};
use crate::registry::ClientHandle;

const NAME_ERROR: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Redis accepts names made of printable ASCII without spaces ('!'..='~').
fn valid_attr(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// Validates a client name for CLIENT SETNAME and HELLO SETNAME.
pub fn validate_name(name: &[u8]) -> Result<(), &'static str> {
    if valid_attr(name) {
        Ok(())
    } else {
        Err(NAME_ERROR)
    }
}

const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients of specified IDs only.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "HELP",
    "    Print this help.",
];

pub fn client(args: &[Vec<u8>], session: &mut Session, shared: &Shared) -> Reply {
    let Some(sub) = args.first() else {
        return reply::error(errors::wrong_arity("client"));
    };
    let sub_name = String::from_utf8_lossy(sub).to_ascii_lowercase();
    let rest = &args[1..];
    let arity = |ok: bool, r: Reply| {
        if ok {
            r
        } else {
            reply::error(errors::wrong_arity(&format!("client|{sub_name}")))
        }
    };
    match sub_name.as_str() {
        "id" => arity(rest.is_empty(), reply::integer(session.id() as i64)),
        "getname" => {
            if !rest.is_empty() {
                return arity(false, reply::ok());
            }
            let name = session.handle.info().name.clone();
            if name.is_empty() {
                reply::null()
            } else {
                reply::bulk(name)
            }
        }
        "setname" => match rest {
            [name] => match validate_name(name) {
                Ok(()) => {
                    session.handle.info().name = name.clone();
                    reply::ok()
                }
                Err(text) => reply::error(text),
            },
            _ => arity(false, reply::ok()),
        },
        "info" => {
            if !rest.is_empty() {
                return arity(false, reply::ok());
            }
            let line = session.handle.list_line(Instant::now());
            session.text_reply(format!("{line}\n"))
        }
        "list" => list(rest, session, shared),
        "setinfo" => match rest {
            [attr, value] => setinfo(attr, value, session),
            _ => arity(false, reply::ok()),
        },
        "kill" => {
            if rest.is_empty() {
                return arity(false, reply::ok());
            }
            kill(rest, session, shared)
        }
        "no-evict" | "no-touch" => match rest {
            [mode] if mode.eq_ignore_ascii_case(b"on") || mode.eq_ignore_ascii_case(b"off") => {
                reply::ok()
            }
            [_] => reply::error(errors::SYNTAX),
            _ => arity(false, reply::ok()),
        },
        "help" => arity(
            rest.is_empty(),
            reply::array(HELP.iter().map(|l| reply::status(*l)).collect()),
        ),
        _ => reply::error(errors::unknown_subcommand("client", sub)),
    }
}

fn setinfo(attr: &[u8], value: &[u8], session: &mut Session) -> Reply {
    let attr_text = String::from_utf8_lossy(attr).into_owned();
    let lower = attr_text.to_ascii_lowercase();
    if lower != "lib-name" && lower != "lib-ver" {
        return reply::error(format!("ERR Unrecognized option '{attr_text}'"));
    }
    if !valid_attr(value) {
        return reply::error(format!(
            "ERR {attr_text} cannot contain spaces, newlines or special characters."
        ));
    }
    let mut info = session.handle.info();
    if lower == "lib-name" {
        info.lib_name = value.to_vec();
    } else {
        info.lib_ver = value.to_vec();
    }
    reply::ok()
}

fn list(args: &[Vec<u8>], session: &Session, shared: &Shared) -> Reply {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<ClientType> = None;
    let mut i = 0;
    while i < args.len() {
        let option = String::from_utf8_lossy(&args[i]).to_ascii_uppercase();
        if option == "TYPE" && i + 1 < args.len() {
            match ClientType::parse(&args[i + 1]) {
                Ok(k) => kind = Some(k),
                Err(e) => return e,
            }
            i += 2;
        } else if option == "ID" && i + 1 < args.len() {
            let mut list = Vec::new();
            for id in &args[i + 1..] {
                match parse_i64(id) {
                    Some(n) if n > 0 => list.push(n as u64),
                    _ => return reply::error("ERR Invalid client ID"),
                }
            }
            ids = Some(list);
            i = args.len();
        } else {
            return reply::error(errors::SYNTAX);
        }
    }
    let now = Instant::now();
    let mut text = String::new();
    for handle in shared.registry.all() {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&handle.id))
            || kind.is_some_and(|k| !k.matches(&handle))
        {
            continue;
        }
        text.push_str(&handle.list_line(now));
        text.push('\n');
    }
    session.text_reply(text)
}

/// `TYPE` of `CLIENT LIST` and `CLIENT KILL`: a proxy has no master or
/// replica connections; a client with a subscription is `pubsub` (as
/// Redis's `CLIENT_PUBSUB` flag), the others `normal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    PubSub,
    Replication,
}

impl ClientType {
    fn parse(value: &[u8]) -> Result<ClientType, Reply> {
        match String::from_utf8_lossy(value).to_ascii_lowercase().as_str() {
            "normal" => Ok(ClientType::Normal),
            "pubsub" => Ok(ClientType::PubSub),
            "master" | "replica" | "slave" => Ok(ClientType::Replication),
            _ => Err(reply::error(format!(
                "ERR Unknown client type '{}'",
                String::from_utf8_lossy(value)
            ))),
        }
    }

    fn matches(self, handle: &ClientHandle) -> bool {
        match self {
            ClientType::Normal => !handle.is_pubsub(),
            ClientType::PubSub => handle.is_pubsub(),
            ClientType::Replication => false,
        }
    }
}

/// Filters of `CLIENT KILL <option> <value> ...`.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<Vec<u8>>,
    kind: Option<ClientType>,
    skip_me: bool,
}

impl KillFilter {
    fn matches(&self, handle: &ClientHandle, me: u64) -> bool {
        (!self.skip_me || handle.id != me)
            && self.id.is_none_or(|id| id == handle.id)
            && self
                .addr
                .as_ref()
                .is_none_or(|a| *a == handle.addr.to_string())
            && self
                .laddr
                .as_ref()
                .is_none_or(|a| *a == handle.laddr.to_string())
            && self
                .user
                .as_ref()
                .is_none_or(|u| *u == handle.info().user.as_bytes())
            && self.kind.is_none_or(|k| k.matches(handle))
    }
}

fn kill(args: &[Vec<u8>], session: &mut Session, shared: &Shared) -> Reply {
    if let [addr] = args {
        // Old form: CLIENT KILL ip:port, may kill the caller itself.
        let filter = KillFilter {
            addr: Some(String::from_utf8_lossy(addr).into_owned()),
            ..KillFilter::default()
        };
        return if kill_matching(&filter, session, shared) == 0 {
            reply::error("ERR No such client")
        } else {
            reply::ok()
        };
    }
    if !args.chunks_exact(2).remainder().is_empty() {
        return reply::error(errors::SYNTAX);
    }
    let mut filter = KillFilter {
        skip_me: true,
        ..KillFilter::default()
    };
    for pair in args.chunks(2) {
        let (option, value) = (
            String::from_utf8_lossy(&pair[0]).to_ascii_uppercase(),
            &pair[1],
        );
        match option.as_str() {
            "ID" => match parse_i64(value) {
                Some(id) if id > 0 => filter.id = Some(id as u64),
                _ => return reply::error("ERR client-id should be greater than 0"),
            },
            "ADDR" => filter.addr = Some(String::from_utf8_lossy(value).into_owned()),
            "LADDR" => filter.laddr = Some(String::from_utf8_lossy(value).into_owned()),
            "USER" => filter.user = Some(value.clone()),
            "TYPE" => match ClientType::parse(value) {
                Ok(kind) => filter.kind = Some(kind),
                Err(e) => return e,
            },
            "SKIPME" => {
                if value.eq_ignore_ascii_case(b"yes") {
                    filter.skip_me = true;
                } else if value.eq_ignore_ascii_case(b"no") {
                    filter.skip_me = false;
                } else {
                    return reply::error(errors::SYNTAX);
                }
            }
            "MAXAGE" => {
                if parse_i64(value).is_none() {
                    return reply::error(errors::NOT_INTEGER);
                }
            }
            _ => return reply::error(errors::SYNTAX),
        }
    }
    reply::integer(kill_matching(&filter, session, shared) as i64)
}

/// Signals every matching connection to close; the caller closes after its
/// reply is written.
fn kill_matching(filter: &KillFilter, session: &mut Session, shared: &Shared) -> usize {
    let me = session.id();
    let mut killed = 0;
    for handle in shared.registry.all() {
        if filter.matches(&handle, me) {
            if handle.id == me {
                session.close_after_reply = true;
            } else {
                handle.kill.cancel();
            }
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::{session_and_shared, text};

    fn argv(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn setname_validates_and_getname_reads_back() {
        let (mut s, shared) = session_and_shared(None);
        assert_eq!(text(&client(&argv(&["GETNAME"]), &mut s, &shared)), "_");
        assert_eq!(
            text(&client(&argv(&["SETNAME", "my name"]), &mut s, &shared)),
            format!("-{NAME_ERROR}")
        );
        assert_eq!(
            text(&client(&argv(&["SETNAME", "a\nb"]), &mut s, &shared)),
            format!("-{NAME_ERROR}")
        );
        assert_eq!(
            text(&client(&argv(&["SETNAME", "worker-1"]), &mut s, &shared)),
            "+OK"
        );
        assert_eq!(
            text(&client(&argv(&["GETNAME"]), &mut s, &shared)),
            "$worker-1"
        );
        assert_eq!(
            text(&client(&argv(&["SETNAME", ""]), &mut s, &shared)),
            "+OK"
        );
        assert_eq!(text(&client(&argv(&["GETNAME"]), &mut s, &shared)), "_");
        assert_eq!(
            text(&client(&argv(&["SETNAME"]), &mut s, &shared)),
            "-ERR wrong number of arguments for 'client|setname' command"
        );
    }

    #[test]
    fn id_info_and_list() {
        let (mut s, shared) = session_and_shared(None);
        assert_eq!(
            text(&client(&argv(&["ID"]), &mut s, &shared)),
            format!(":{}", s.id())
        );
        let info = text(&client(&argv(&["INFO"]), &mut s, &shared));
        assert!(
            info.starts_with(&format!("$id={} addr=", s.id())) && info.ends_with("lib-ver=\n"),
            "{info}"
        );
        let addr = "127.0.0.1:50001".parse().unwrap();
        let other = shared.registry.register(addr, shared.local_addr, 4);
        let all = text(&client(&argv(&["LIST"]), &mut s, &shared));
        assert_eq!(all.matches('\n').count(), 2, "{all}");
        let one = text(&client(
            &argv(&["LIST", "ID", &other.handle().id.to_string()]),
            &mut s,
            &shared,
        ));
        assert!(
            one.contains("addr=127.0.0.1:50001") && one.matches('\n').count() == 1,
            "{one}"
        );
        assert_eq!(
            text(&client(&argv(&["LIST", "TYPE", "pubsub"]), &mut s, &shared)),
            "$"
        );
        other.handle().info().psub = 2;
        let pubsub = text(&client(&argv(&["LIST", "TYPE", "pubsub"]), &mut s, &shared));
        assert!(
            pubsub.contains("addr=127.0.0.1:50001")
                && pubsub.contains(" flags=P ")
                && pubsub.contains(" psub=2 ")
                && pubsub.matches('\n').count() == 1,
            "{pubsub}"
        );
        let normal = text(&client(&argv(&["LIST", "TYPE", "normal"]), &mut s, &shared));
        assert!(
            !normal.contains("addr=127.0.0.1:50001") && normal.matches('\n').count() == 1,
            "{normal}"
        );
        assert_eq!(
            text(&client(&argv(&["LIST", "ID", "x"]), &mut s, &shared)),
            "-ERR Invalid client ID"
        );
        assert_eq!(
            text(&client(&argv(&["LIST", "TYPE", "bogus"]), &mut s, &shared)),
            "-ERR Unknown client type 'bogus'"
        );
    }

    #[test]
    fn setinfo_records_library() {
        let (mut s, shared) = session_and_shared(None);
        assert_eq!(
            text(&client(
                &argv(&["SETINFO", "LIB-NAME", "redis-rs"]),
                &mut s,
                &shared
            )),
            "+OK"
        );
        assert_eq!(
            text(&client(
                &argv(&["SETINFO", "lib-ver", "0.32"]),
                &mut s,
                &shared
            )),
            "+OK"
        );
        assert_eq!(
            text(&client(&argv(&["SETINFO", "color", "x"]), &mut s, &shared)),
            "-ERR Unrecognized option 'color'"
        );
        assert_eq!(
            text(&client(
                &argv(&["SETINFO", "lib-name", "a b"]),
                &mut s,
                &shared
            )),
            "-ERR lib-name cannot contain spaces, newlines or special characters."
        );
        let line = s.handle.list_line(Instant::now());
        assert!(line.ends_with("lib-name=redis-rs lib-ver=0.32"), "{line}");
    }

    #[test]
    fn kill_by_id_signals_the_other_connection() {
        let (mut s, shared) = session_and_shared(None);
        let addr = "127.0.0.1:50002".parse().unwrap();
        let other = shared.registry.register(addr, shared.local_addr, 5);
        let id = other.handle().id.to_string();
        assert_eq!(
            text(&client(&argv(&["KILL", "ID", &id]), &mut s, &shared)),
            ":1"
        );
        assert!(other.handle().kill.is_cancelled());
        assert_eq!(
            text(&client(&argv(&["KILL", "10.0.0.1:1"]), &mut s, &shared)),
            "-ERR No such client"
        );
        assert_eq!(
            text(&client(&argv(&["KILL", "ID", "0"]), &mut s, &shared)),
            "-ERR client-id should be greater than 0"
        );
        // SKIPME defaults to yes in the filter form.
        let me = s.id().to_string();
        assert_eq!(
            text(&client(&argv(&["KILL", "ID", &me]), &mut s, &shared)),
            ":0"
        );
        assert!(!s.close_after_reply);
        assert_eq!(
            text(&client(
                &argv(&["KILL", "ID", &me, "SKIPME", "no"]),
                &mut s,
                &shared
            )),
            ":1"
        );
        assert!(s.close_after_reply);
    }

    #[test]
    fn unknown_subcommand_and_flags() {
        let (mut s, shared) = session_and_shared(None);
        assert_eq!(
            text(&client(&argv(&["FOO"]), &mut s, &shared)),
            "-ERR unknown subcommand 'FOO'. Try CLIENT HELP."
        );
        assert_eq!(
            text(&client(&argv(&["NO-EVICT", "on"]), &mut s, &shared)),
            "+OK"
        );
        assert_eq!(
            text(&client(&argv(&["NO-TOUCH", "maybe"]), &mut s, &shared)),
            "-ERR syntax error"
        );
        assert!(
            text(&client(&argv(&["HELP"]), &mut s, &shared)).starts_with("*[+CLIENT <subcommand>")
        );
    }
}
