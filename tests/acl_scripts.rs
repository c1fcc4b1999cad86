//! ACL checks inside Lua scripts and functions (issue 20, docs/security.md
//! "ACL"): a script's `redis.call` / `redis.pcall` runs on the storage node,
//! and is checked there against the user the client is authenticated as,
//! which the proxy names on the request. EVAL, EVAL_RO, FCALL and scripts
//! inside MULTI; replies compared byte for byte with a real redis-server
//! (7.0's script texts) in RESP2 and RESP3.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Cluster, RawConn};

fn s(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn raw(addr: &str) -> RawConn {
    RawConn::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

const NO_KEY: &str = "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments";
const NO_COMMAND: &str = "ERR The user executing the script can't run this command or subcommand";
const NO_CHANNEL: &str =
    "ERR The user executing the script can't publish to the channel mentioned in the command";

const LIBRARY: &str = "#!lua name=acllib\n\
redis.register_function('getkey', function(keys, args) local v = redis.call('get', args[1]) return v end)\n\
redis.register_function('pgetkey', function(keys, args) return redis.pcall('get', args[1]) end)";

/// `ACL LOG`'s entries as `count reason context object username`.
fn acl_log(addr: &str) -> Vec<String> {
    let mut con = common::connect(addr, None);
    let entries: Vec<HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query(&mut con)
        .expect("ACL LOG");
    entries
        .iter()
        .map(|entry| {
            let field = |name: &str| match entry.get(name) {
                Some(redis::Value::Int(i)) => i.to_string(),
                Some(v) => redis::from_redis_value::<String>(v).unwrap_or_default(),
                None => String::new(),
            };
            ["count", "reason", "context", "object", "username"]
                .map(field)
                .join(" ")
        })
        .collect()
}

/// What the restricted user `u` sends, in order; run against Rampart and
/// redis-server in each protocol.
fn script_commands() -> Vec<Vec<&'static str>> {
    let eval = |body: &'static str| vec!["EVAL", body, "0"];
    vec![
        // A key outside ~app:*: refused, as a Lua error with the script's
        // context (and the line of the call).
        eval("return redis.call('incr', 'other')"),
        eval("redis.call('incr', 'app:1')\nlocal v = redis.call('get', 'other')\nreturn v"),
        // A command the user lacks (-set), before the read-only check.
        eval("return redis.call('set', 'app:1', 'x')"),
        vec!["EVAL_RO", "return redis.call('set', 'app:1', 'x')", "0"],
        // A container's subcommand: its keys are checked.
        eval("return redis.call('object', 'encoding', 'other')"),
        // %R~ro:* lets it read, not write.
        eval("return redis.call('get', 'ro:1')"),
        eval("return redis.call('append', 'ro:1', 'x')"),
        // A channel outside &news.*.
        eval("return redis.call('publish', 'sport', 'm')"),
        // redis.pcall: an error table the script can inspect or return.
        eval("return redis.pcall('get', 'other')"),
        eval("local r = redis.pcall('get', 'other') return r['err']"),
        eval("local r = redis.pcall('set', 'app:1', 'x') return r['err']"),
        // Allowed keys work, the declared ones included.
        eval("return redis.call('incr', 'app:1')"),
        vec!["EVAL", "return redis.call('incr', KEYS[1])", "1", "app:2"],
        // Functions: the same checks, with the function's context.
        vec!["FUNCTION", "LOAD", "REPLACE", LIBRARY],
        vec!["FCALL", "getkey", "0", "other"],
        vec!["FCALL", "pgetkey", "0", "other"],
        vec!["FCALL", "getkey", "0", "app:1"],
        // Scripts inside MULTI: the refused script's error takes its place
        // in EXEC's reply; the rest of the transaction runs.
        vec!["MULTI"],
        vec!["INCR", "app:3"],
        eval("return redis.call('incr', 'other')"),
        eval("return redis.pcall('set', 'app:1', 'x')"),
        eval("return redis.call('incr', 'app:3')"),
        vec!["EXEC"],
        // redis.acl_check_cmd answers for the caller (and logs nothing).
        eval(
            "return {redis.acl_check_cmd('get', 'app:1'), redis.acl_check_cmd('get', 'other'), \
             redis.acl_check_cmd('set', 'app:1', 'x')}",
        ),
        vec!["ACL", "WHOAMI"],
    ]
}

#[test]
fn script_calls_are_checked_against_the_callers_user() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let redis = common::start_redis_server();
    if redis.is_none() {
        eprintln!("redis-server not installed; checking Rampart's replies only");
    }
    let setuser = [
        "ACL", "SETUSER", "u", "on", ">pw", "~app:*", "%R~ro:*", "&news.*", "+@all", "-set",
    ];
    let mut servers = vec![addr.clone()];
    servers.extend(redis.as_ref().map(|r| r.addr.clone()));
    for server in &servers {
        let mut admin = raw(server);
        assert_eq!(s(&admin.cmd(&setuser)), "+OK\r\n");
    }
    let mut replies: Vec<Vec<String>> = Vec::new();
    for server in &servers {
        let mut out = Vec::new();
        for protocol in ["2", "3"] {
            let mut u = raw(server);
            assert_eq!(s(&u.cmd(&["AUTH", "u", "pw"])), "+OK\r\n", "{server}");
            u.cmd(&["HELLO", protocol]);
            for args in script_commands() {
                out.push(format!("RESP{protocol} {args:?} -> {}", s(&u.cmd(&args))));
            }
        }
        replies.push(out);
    }
    let ours = &replies[0];
    let reply = |i: usize| ours[i].split(" -> ").nth(1).unwrap_or_default();
    // The texts, whether or not a redis-server is there to compare with.
    let sha = |body: &str| {
        let mut c = raw(&addr);
        let got = s(&c.cmd(&["EVAL", "return redis.sha1hex(ARGV[1])", "0", body]));
        got.lines().nth(1).unwrap_or_default().to_string()
    };
    let first = sha("return redis.call('incr', 'other')");
    assert_eq!(
        reply(0),
        format!("-{NO_KEY} script: {first}, on @user_script:1.\r\n")
    );
    assert!(
        reply(1).ends_with(", on @user_script:2.\r\n"),
        "{}",
        reply(1)
    );
    assert!(reply(2).starts_with(&format!("-{NO_COMMAND} script: ")));
    assert!(reply(3).starts_with(&format!("-{NO_COMMAND} script: ")));
    assert!(reply(4).starts_with(&format!("-{NO_KEY} script: ")));
    assert_eq!(reply(5), "$-1\r\n");
    assert!(reply(6).starts_with(&format!("-{NO_KEY} script: ")));
    assert!(reply(7).starts_with(&format!("-{NO_CHANNEL} script: ")));
    assert_eq!(reply(8), format!("-{NO_KEY}\r\n"));
    assert_eq!(reply(9), format!("${}\r\n{NO_KEY}\r\n", NO_KEY.len()));
    // The script at 1 incremented app:1 before its refused call: kept.
    assert_eq!(reply(11), ":2\r\n");
    assert_eq!(
        reply(14),
        format!("-{NO_KEY} script: getkey, on @user_function:2.\r\n")
    );
    if let [ours, theirs] = &replies[..] {
        for (ours, theirs) in ours.iter().zip(theirs) {
            assert_eq!(ours, theirs, "Rampart (left) and redis-server (right)");
        }
    }

    // Every refused call is in the proxy's ACL LOG with context "lua",
    // grouped and counted as Redis does.
    let log = acl_log(&addr);
    for wanted in [
        " key lua other u",
        " key lua ro:1 u",
        " command lua set u",
        " channel lua sport u",
    ] {
        assert!(
            log.iter().any(|e| e.ends_with(wanted)),
            "{wanted} in {log:?}"
        );
    }
    assert!(
        log.contains(&"2 channel lua sport u".to_string()),
        "{log:?}"
    );
    if let Some(redis) = &redis {
        assert_eq!(log, acl_log(&redis.addr), "ACL LOG: Rampart, redis-server");
    }

    // The keys the user may not touch were not written.
    let mut admin = raw(&addr);
    assert_eq!(s(&admin.cmd(&["EXISTS", "other", "ro:1"])), ":0\r\n");
    assert_eq!(s(&admin.cmd(&["GET", "app:1"])), "$1\r\n4\r\n");
    // The default user is unaffected.
    assert_eq!(
        s(&admin.cmd(&["EVAL", "return redis.call('set', 'other', '1')", "0"])),
        "+OK\r\n"
    );
    assert_eq!(
        s(&admin.cmd(&["FCALL", "getkey", "0", "other"])),
        "$1\r\n1\r\n"
    );
}

/// The node trusts the user the proxy names on the request, and refuses a
/// script sent for a user it does not know (deleted meanwhile): it must
/// not run unchecked. A request naming no user (a peer's own) is not
/// checked.
#[test]
fn the_node_checks_the_named_user_and_refuses_unknown_ones() {
    use rampart_proto::pb::execute_response::Outcome;
    use rampart_proto::pb::kv_client::KvClient;
    use rampart_proto::pb::{reply::Kind, Command, ExecuteRequest};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

    let cluster = Cluster::start();
    let mut admin = raw(cluster.proxy_addr());
    assert_eq!(
        s(&admin.cmd(&["ACL", "SETUSER", "w", "on", ">pw", "~app:*", "+@all"])),
        "+OK\r\n"
    );
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let addr = cluster.client_addr(leader);
    let certs = cluster
        .certs_dir()
        .expect("the harness runs mutual TLS")
        .to_path_buf();
    let read = |name: &str| std::fs::read(certs.join(name)).expect("certificate file");
    let body = "return redis.call('set', 'other', 'x')";
    let request = |seq: u64, user: Option<&str>, transaction: bool| ExecuteRequest {
        commands: vec![Command {
            args: vec![b"EVAL".to_vec(), body.as_bytes().to_vec(), b"0".to_vec()],
        }],
        client_id: "acl-script-test".into(),
        request_seq: seq,
        transaction,
        watches: vec![],
        user: user.map(str::to_string),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let texts: Vec<String> = rt.block_on(async {
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read("ca.pem")))
                    .identity(Identity::from_pem(read("proxy.pem"), read("proxy-key.pem")))
                    .domain_name(rampart_proto::cluster_tls::NODE_SERVER_NAME),
            )
            .expect("tls")
            .connect()
            .await
            .expect("connect to the leader");
        let mut kv = KvClient::new(channel);
        let mut out = Vec::new();
        let cases = [
            (Some("w"), false),
            (Some("ghost"), false),
            (Some("ghost"), true),
            (Some("default"), false),
            (None, false),
        ];
        for (seq, (user, transaction)) in (1..).zip(cases) {
            let response = kv
                .execute(request(seq, user, transaction))
                .await
                .expect("execute");
            let Some(Outcome::Replies(r)) = response.into_inner().outcome else {
                panic!("the leader did not answer with replies");
            };
            out.push(match r.replies.first().and_then(|r| r.kind.clone()) {
                Some(Kind::Error(e)) => format!("-{e}"),
                Some(Kind::Status(s)) => format!("+{s}"),
                Some(Kind::Array(a)) => format!("{:?}", a.items),
                other => format!("{other:?}"),
            });
        }
        out
    });
    assert!(
        texts[0].starts_with(&format!("-{NO_KEY} script: ")),
        "{texts:?}"
    );
    let ghost = "-NOPERM User ghost does not exist (it was deleted): the script was not run";
    assert_eq!(texts[1], ghost);
    assert_eq!(texts[2], ghost, "a transaction is refused as a whole");
    assert_eq!(texts[3], "+OK", "the cluster stores no default user");
    assert_eq!(texts[4], "+OK", "a peer's own request is not checked");
}
