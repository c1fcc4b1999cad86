//! PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET.

use rampart_proto::args::parse_i64;
use rampart_proto::{errors, reply, Reply};

use super::acl;
use super::client::validate_name;
use super::{LoginError, Session, Shared};
use crate::resp::Protocol;

/// What Redis 7.2 reports as its version; clients gate features on it.
pub const REDIS_VERSION: &str = "7.2.4";

const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
version at the same time";
const AUTH_WITHOUT_PASSWORD: &str =
    "ERR AUTH <password> called without any password configured for the default \
user. Are you sure your configuration is correct?";

pub fn ping(args: &[Vec<u8>]) -> Reply {
    match args {
        [] => reply::status("PONG"),
        [message] => reply::bulk(message.clone()),
        _ => reply::error(errors::wrong_arity("ping")),
    }
}

pub fn echo(args: &[Vec<u8>]) -> Reply {
    match args {
        [message] => reply::bulk(message.clone()),
        _ => reply::error(errors::wrong_arity("echo")),
    }
}

/// AUTH [user] password: the default user when no user is given.
pub async fn auth(argv: &[Vec<u8>], session: &mut Session, shared: &Shared) -> Reply {
    let (user, password): (&[u8], &[u8]) = match &argv[1..] {
        [password] => {
            if shared.acl.default_user().nopass {
                return reply::error(AUTH_WITHOUT_PASSWORD);
            }
            (b"default", password)
        }
        [user, password] => (user, password),
        _ => return reply::error(errors::SYNTAX),
    };
    match acl::authenticate(shared, user, password).await {
        Some(found) => match session.login(found, shared) {
            Ok(()) => reply::ok(),
            Err(error) => login_refused(error),
        },
        None => {
            acl::log_auth_failure(session, shared, &argv[0], user);
            reply::error(errors::WRONGPASS)
        }
    }
}

pub async fn hello(argv: &[Vec<u8>], session: &mut Session, shared: &Shared) -> Reply {
    let args = &argv[1..];
    let mut protocol = session.protocol;
    if let Some(version) = args.first() {
        match parse_i64(version) {
            None => return reply::error("ERR Protocol version is not an integer or out of range"),
            Some(2) => protocol = Protocol::Resp2,
            Some(3) => protocol = Protocol::Resp3,
            Some(_) => return reply::error("NOPROTO unsupported protocol version"),
        }
    }
    let mut credentials = None;
    let mut name = None;
    let mut i = 1;
    while i < args.len() {
        let option = String::from_utf8_lossy(&args[i]).to_ascii_uppercase();
        let more = args.len() - 1 - i;
        if option == "AUTH" && more >= 2 {
            credentials = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if option == "SETNAME" && more >= 1 {
            if let Err(text) = validate_name(&args[i + 1]) {
                return reply::error(text);
            }
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return reply::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
        }
    }
    if let Some((user, password)) = credentials {
        match acl::authenticate(shared, user, password).await {
            Some(found) => {
                if let Err(error) = session.login(found, shared) {
                    return login_refused(error);
                }
            }
            None => {
                acl::log_auth_failure(session, shared, &argv[0], user);
                return reply::error(errors::WRONGPASS);
            }
        }
    }
    if !session.authenticated {
        return reply::error(HELLO_NOAUTH);
    }
    if let Some(name) = name {
        session.handle.info().name = name;
    }
    session.set_protocol(protocol);
    reply::map(vec![
        (reply::bulk("server"), reply::bulk("redis")),
        (reply::bulk("version"), reply::bulk(REDIS_VERSION)),
        (reply::bulk("proto"), reply::integer(protocol.version())),
        (reply::bulk("id"), reply::integer(session.id() as i64)),
        (reply::bulk("mode"), reply::bulk("standalone")),
        (reply::bulk("role"), reply::bulk("master")),
        (reply::bulk("modules"), reply::array(Vec::new())),
    ])
}

/// The reply to a login Layer 3 refused (a silent close writes nothing:
/// the session's `abort` is set).
fn login_refused(error: LoginError) -> Reply {
    match error {
        LoginError::Refused(text) => reply::error(text),
        LoginError::Silent => reply::error("ERR connection closed"),
    }
}

pub fn select(args: &[Vec<u8>]) -> Reply {
    let Some(index) = args.first() else {
        return reply::error(errors::wrong_arity("select"));
    };
    match parse_i64(index) {
        Some(0) => reply::ok(),
        Some(i) if i32::try_from(i).is_ok() => reply::error(errors::DB_INDEX_OUT_OF_RANGE),
        _ => reply::error(errors::NOT_INTEGER),
    }
}

pub fn quit(session: &mut Session) -> Reply {
    session.close_after_reply = true;
    reply::ok()
}

/// RESET: back to RESP2, no name, the default user, and unauthenticated
/// unless the default user needs no password.
pub fn reset(session: &mut Session, shared: &Shared) -> Reply {
    session.set_protocol(Protocol::Resp2);
    let default = shared.acl.default_user();
    let open = default.enabled && default.nopass;
    session.reset_login(default, shared);
    session.authenticated = open;
    {
        let mut info = session.handle.info();
        info.name.clear();
    }
    reply::status("RESET")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::{session_and_shared, text};
    use rampart_proto::pb::reply::Kind;

    fn argv(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn ping_and_echo() {
        assert_eq!(text(&ping(&[])), "+PONG");
        assert_eq!(text(&ping(&argv(&["hi"]))), "$hi");
        assert_eq!(
            text(&ping(&argv(&["a", "b"]))),
            "-ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(text(&echo(&argv(&["x"]))), "$x");
    }

    #[tokio::test]
    async fn hello_3_switches_protocol_and_returns_the_server_map() {
        let (mut session, shared) = session_and_shared(None);
        let r = hello(&argv(&["HELLO", "3"]), &mut session, &shared).await;
        assert_eq!(session.protocol, Protocol::Resp3);
        let Some(Kind::Map(list)) = r.kind else {
            panic!("not a map: {r:?}")
        };
        let keys: Vec<String> = list.items.iter().step_by(2).map(text).collect();
        assert_eq!(
            keys,
            vec!["$server", "$version", "$proto", "$id", "$mode", "$role", "$modules"]
        );
        assert_eq!(text(&list.items[5]), ":3");
        assert_eq!(text(&list.items[3]), "$7.2.4");
        assert_eq!(text(&list.items[7]), format!(":{}", session.id()));
        // No argument keeps the current protocol.
        hello(&argv(&["HELLO"]), &mut session, &shared).await;
        assert_eq!(session.protocol, Protocol::Resp3);
    }

    #[tokio::test]
    async fn hello_rejects_bad_versions_and_options() {
        let (mut session, shared) = session_and_shared(None);
        assert_eq!(
            text(&hello(&argv(&["HELLO", "4"]), &mut session, &shared).await),
            "-NOPROTO unsupported protocol version"
        );
        assert_eq!(
            text(&hello(&argv(&["HELLO", "x"]), &mut session, &shared).await),
            "-ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(
            text(
                &hello(
                    &argv(&["HELLO", "3", "AUTH", "default"]),
                    &mut session,
                    &shared
                )
                .await
            ),
            "-ERR Syntax error in HELLO option 'AUTH'"
        );
        assert_eq!(session.protocol, Protocol::Resp2);
    }

    #[tokio::test]
    async fn hello_setname_and_auth() {
        let (mut session, shared) = session_and_shared(Some("secret"));
        assert!(
            text(&hello(&argv(&["HELLO", "3"]), &mut session, &shared).await)
                .starts_with("-NOAUTH HELLO must be called")
        );
        assert_eq!(
            text(
                &hello(
                    &argv(&["HELLO", "3", "AUTH", "default", "nope"]),
                    &mut session,
                    &shared
                )
                .await
            ),
            format!("-{}", errors::WRONGPASS)
        );
        let r = hello(
            &argv(&["HELLO", "3", "AUTH", "default", "secret", "SETNAME", "app"]),
            &mut session,
            &shared,
        )
        .await;
        assert!(!r.is_error());
        assert!(session.authenticated);
        assert_eq!(session.handle.info().name, b"app");
    }

    #[tokio::test]
    async fn auth_flows() {
        let (mut open, shared_open) = session_and_shared(None);
        assert!(
            text(&auth(&argv(&["AUTH", "pw"]), &mut open, &shared_open).await)
                .starts_with("-ERR AUTH <password> called without any password configured")
        );
        assert_eq!(
            text(&auth(&argv(&["AUTH", "default", "any"]), &mut open, &shared_open).await),
            "+OK"
        );

        let (mut session, shared) = session_and_shared(Some("secret"));
        assert!(!session.authenticated);
        assert_eq!(
            text(&auth(&argv(&["AUTH", "wrong"]), &mut session, &shared).await),
            format!("-{}", errors::WRONGPASS)
        );
        assert_eq!(
            text(&auth(&argv(&["AUTH", "bob", "secret"]), &mut session, &shared).await),
            format!("-{}", errors::WRONGPASS)
        );
        assert!(!session.authenticated);
        assert_eq!(
            text(&auth(&argv(&["AUTH", "secret"]), &mut session, &shared).await),
            "+OK"
        );
        assert!(session.authenticated);
        assert_eq!(
            text(&auth(&argv(&["AUTH", "a", "b", "c"]), &mut session, &shared).await),
            "-ERR syntax error"
        );
        // RESET forgets the authentication.
        assert_eq!(text(&reset(&mut session, &shared)), "+RESET");
        assert!(!session.authenticated);
    }

    #[test]
    fn select_only_db_zero() {
        assert_eq!(text(&select(&argv(&["0"]))), "+OK");
        assert_eq!(
            text(&select(&argv(&["1"]))),
            "-ERR DB index is out of range"
        );
        assert_eq!(
            text(&select(&argv(&["x"]))),
            "-ERR value is not an integer or out of range"
        );
    }

    #[tokio::test]
    async fn reset_goes_back_to_resp2_and_clears_the_name() {
        let (mut session, shared) = session_and_shared(None);
        hello(
            &argv(&["HELLO", "3", "SETNAME", "n"]),
            &mut session,
            &shared,
        )
        .await;
        assert_eq!(text(&reset(&mut session, &shared)), "+RESET");
        assert_eq!(session.protocol, Protocol::Resp2);
        assert!(session.handle.info().name.is_empty());
        assert!(session.authenticated);
    }
}
