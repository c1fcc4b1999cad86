//! ACL users (issue 20, docs/security.md "ACL") end to end: users made on
//! one proxy apply on another and survive proxy and node restarts; NOPERM
//! texts for commands, keys and channels; %R~ / %W~; MULTI and EVAL; the
//! ACL log; DRYRUN; GETUSER in RESP2 and RESP3; AUTH and HELLO AUTH;
//! requirepass as the default user's password. Raw RESP bytes are compared
//! with what Redis 7.2 sends.
//!
//! Timing is only used as generous liveness bounds.

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Cluster, RawConn};

fn s(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn bulk(text: &str) -> String {
    format!("${}\r\n{text}\r\n", text.len())
}

fn raw(addr: &str) -> RawConn {
    RawConn::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

fn expect(conn: &mut RawConn, args: &[&str], expected: &str) {
    assert_eq!(s(&conn.cmd(args)), expected, "reply to {args:?}");
}

/// A connection authenticated as `user`, retried until the user exists on
/// the proxy at `addr` (users reach other proxies by polling).
fn login(addr: &str, user: &str, password: &str) -> RawConn {
    wait_for(
        &format!("AUTH {user} on {addr}"),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let mut c = raw(addr);
            match s(&c.cmd(&["AUTH", user, password])).as_str() {
                "+OK\r\n" => Ok(c),
                other => Err(other.to_string()),
            }
        },
    )
}

const NOPERM_KEY: &str = "-NOPERM No permissions to access a key\r\n";
const NOPERM_CHANNEL: &str = "-NOPERM No permissions to access a channel\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

#[test]
fn users_apply_on_every_proxy_and_survive_restarts() {
    let cluster = Cluster::start();
    let a = cluster.proxy_addr().to_string();
    let b = cluster.start_proxy(&[1, 2, 3], None);
    let mut admin = raw(&a);
    expect(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "alice",
            "on",
            ">pw",
            "~app:*",
            "+@all",
            "-@dangerous",
        ],
        "+OK\r\n",
    );

    // Proxy B follows the cluster's users.
    let started = Instant::now();
    let mut alice = login(&b, "alice", "pw");
    eprintln!(
        "[acl] SETUSER on proxy A usable on proxy B after {:?}",
        started.elapsed()
    );
    expect(&mut alice, &["SET", "app:1", "v"], "+OK\r\n");
    expect(&mut alice, &["SET", "other", "v"], NOPERM_KEY);
    expect(
        &mut alice,
        &["FLUSHALL"],
        "-NOPERM User alice has no permissions to run the 'flushall' command\r\n",
    );
    expect(&mut alice, &["ACL", "WHOAMI"], "$5\r\nalice\r\n");

    // A change made on A applies to B's open connection.
    expect(&mut admin, &["ACL", "SETUSER", "alice", "-get"], "+OK\r\n");
    wait_for(
        "GET refused on proxy B",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || match s(&alice.cmd(&["GET", "app:1"])).as_str() {
            "-NOPERM User alice has no permissions to run the 'get' command\r\n" => Ok(()),
            other => Err(other.to_string()),
        },
    );

    // A proxy that restarts reads the users from the cluster.
    cluster.signal_proxy(&b, nix::sys::signal::Signal::SIGKILL);
    let c = cluster.start_proxy(&[1, 2, 3], None);
    let mut alice = login(&c, "alice", "pw");
    expect(&mut alice, &["SET", "other", "v"], NOPERM_KEY);

    // So does a cluster whose every node restarts (users are in RocksDB).
    for id in 1..=3 {
        cluster.kill_node(id);
    }
    for id in 1..=3 {
        cluster.restart_node(id);
    }
    cluster.wait_for_leader(Duration::from_secs(30));
    let d = cluster.start_proxy(&[1, 2, 3], None);
    let mut alice = login(&d, "alice", "pw");
    expect(&mut alice, &["SET", "app:2", "v"], "+OK\r\n");
    let mut admin = login(&d, "default", "anything");
    let list = s(&admin.cmd(&["ACL", "USERS"]));
    assert_eq!(list, "*2\r\n$5\r\nalice\r\n$7\r\ndefault\r\n");

    // Deleting a user closes its connections, here and on other proxies.
    let mut alice_on_a = login(&a, "alice", "pw");
    expect(&mut admin, &["ACL", "DELUSER", "alice", "nobody"], ":1\r\n");
    expect(
        &mut admin,
        &["ACL", "DELUSER", "default"],
        "-ERR The 'default' user cannot be removed\r\n",
    );
    for conn in [&mut alice, &mut alice_on_a] {
        wait_for(
            "the deleted user's connection to close",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                let _ = conn.send(b"*1\r\n$4\r\nPING\r\n");
                conn.read_to_eof(Duration::from_secs(2)).map(drop)
            },
        );
    }
    let mut again = raw(&a);
    expect(&mut again, &["AUTH", "alice", "pw"], WRONGPASS);
}

#[test]
fn permissions_log_dryrun_and_getuser() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let mut admin = raw(&addr);
    expect(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "bob",
            "on",
            ">secret",
            "%R~ro:*",
            "%W~wo:*",
            "~rw:*",
            "&news.*",
            "+@all",
            "-flushall",
        ],
        "+OK\r\n",
    );
    let mut bob = login(&addr, "bob", "secret");

    // %R~ lets GET through but not SET; %W~ the other way round.
    expect(&mut bob, &["GET", "ro:1"], "$-1\r\n");
    expect(&mut bob, &["SET", "ro:1", "v"], NOPERM_KEY);
    expect(&mut bob, &["SET", "wo:1", "v"], "+OK\r\n");
    expect(&mut bob, &["GET", "wo:1"], NOPERM_KEY);
    // Every key of a command is checked: LMOVE reads and deletes its source.
    expect(
        &mut bob,
        &["LMOVE", "ro:l", "rw:l", "LEFT", "LEFT"],
        NOPERM_KEY,
    );
    expect(&mut bob, &["MSET", "rw:a", "1", "secret", "2"], NOPERM_KEY);
    // EVAL's declared keys.
    expect(&mut bob, &["EVAL", "return 1", "1", "secret"], NOPERM_KEY);
    expect(&mut bob, &["EVAL", "return 1", "1", "rw:x"], ":1\r\n");
    expect(
        &mut bob,
        &["FLUSHALL"],
        "-NOPERM User bob has no permissions to run the 'flushall' command\r\n",
    );
    // RAMPART.* commands need an explicit admin grant: +@all is not one.
    expect(
        &mut bob,
        &["RAMPART.STREAMFORMAT", "rw:s"],
        "-NOPERM User bob has no permissions to run the 'rampart.streamformat' command\r\n",
    );
    // Channels: PUBLISH and SUBSCRIBE match patterns, PSUBSCRIBE literally.
    expect(&mut bob, &["PUBLISH", "news.today", "m"], ":0\r\n");
    expect(&mut bob, &["PUBLISH", "sport", "m"], NOPERM_CHANNEL);
    expect(&mut bob, &["SPUBLISH", "sport", "m"], NOPERM_CHANNEL);
    expect(&mut bob, &["SUBSCRIBE", "news.a", "sport"], NOPERM_CHANNEL);
    expect(&mut bob, &["PSUBSCRIBE", "news.a*"], NOPERM_CHANNEL);
    expect(&mut bob, &["SSUBSCRIBE", "sport"], NOPERM_CHANNEL);

    // Inside MULTI the check is at queue time, and EXEC then aborts.
    expect(&mut bob, &["MULTI"], "+OK\r\n");
    expect(&mut bob, &["SET", "rw:1", "v"], "+QUEUED\r\n");
    expect(&mut bob, &["SET", "secret", "v"], NOPERM_KEY);
    expect(
        &mut bob,
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );

    // The ACL log: newest first, Redis 7.2's ten fields.
    let log = s(&admin.cmd(&["ACL", "LOG", "1"]));
    for field in [
        "$5\r\ncount\r\n:1\r\n",
        "$6\r\nreason\r\n$3\r\nkey\r\n",
        "$7\r\ncontext\r\n$5\r\nmulti\r\n",
        "$6\r\nobject\r\n$6\r\nsecret\r\n",
        "$8\r\nusername\r\n$3\r\nbob\r\n",
        "$11\r\nage-seconds\r\n",
        "$11\r\nclient-info\r\n",
        "$8\r\nentry-id\r\n",
        "$17\r\ntimestamp-created\r\n",
        "$22\r\ntimestamp-last-updated\r\n",
    ] {
        assert!(log.starts_with("*1\r\n*20\r\n"), "{log}");
        assert!(log.contains(field), "{field:?} not in {log}");
    }
    assert!(
        log.contains("user=bob"),
        "client-info names the user: {log}"
    );
    let all = s(&admin.cmd(&["ACL", "LOG"]));
    for reason in ["command", "channel"] {
        assert!(all.contains(&format!(
            "$6\r\nreason\r\n${}\r\n{reason}\r\n",
            reason.len()
        )));
    }
    expect(&mut bob, &["AUTH", "bob", "wrong"], WRONGPASS);
    let auth = s(&admin.cmd(&["ACL", "LOG", "1"]));
    assert!(auth.contains("$6\r\nreason\r\n$4\r\nauth\r\n"), "{auth}");
    assert!(auth.contains("$6\r\nobject\r\n$4\r\nAUTH\r\n"), "{auth}");
    expect(&mut admin, &["ACL", "LOG", "RESET"], "+OK\r\n");
    expect(&mut admin, &["ACL", "LOG"], "*0\r\n");

    // DRYRUN answers without running.
    expect(
        &mut admin,
        &["ACL", "DRYRUN", "bob", "GET", "ro:1"],
        "+OK\r\n",
    );
    expect(
        &mut admin,
        &["ACL", "DRYRUN", "bob", "SET", "ro:1", "v"],
        &bulk("User bob has no permissions to access the 'ro:1' key"),
    );
    expect(
        &mut admin,
        &["ACL", "DRYRUN", "bob", "FLUSHALL"],
        &bulk("User bob has no permissions to run the 'flushall' command"),
    );
    expect(
        &mut admin,
        &["ACL", "DRYRUN", "nobody", "GET", "x"],
        "-ERR User 'nobody' not found\r\n",
    );

    // GETUSER: a map in RESP3, a flat array in RESP2; flags are a set.
    expect(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "carol",
            "on",
            "#2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "~k*",
            "&c",
            "+get",
        ],
        "+OK\r\n",
    );
    let fields = "$5\r\nflags\r\n{flags}$9\r\npasswords\r\n*1\r\n$64\r\n2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\r\n\
                  $8\r\ncommands\r\n$10\r\n-@all +get\r\n$4\r\nkeys\r\n$3\r\n~k*\r\n\
                  $8\r\nchannels\r\n$2\r\n&c\r\n$9\r\nselectors\r\n*0\r\n";
    expect(
        &mut admin,
        &["ACL", "GETUSER", "carol"],
        &format!("*12\r\n{}", fields.replace("{flags}", "*1\r\n$2\r\non\r\n")),
    );
    assert!(s(&admin.cmd(&["HELLO", "3"])).starts_with("%7\r\n"));
    expect(
        &mut admin,
        &["ACL", "GETUSER", "carol"],
        &format!("%6\r\n{}", fields.replace("{flags}", "~1\r\n$2\r\non\r\n")),
    );
    expect(&mut admin, &["ACL", "GETUSER", "nobody"], "_\r\n");
    let list = s(&admin.cmd(&["ACL", "LIST"]));
    assert!(
        list.contains("user carol on #2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae ~k* resetchannels &c -@all +get\r\n"),
        "{list}"
    );
    assert!(
        list.contains("user default on nopass ~* &* +@all +@admin\r\n"),
        "{list}"
    );
    // '#' hash of "foo": carol logs in with the clear text.
    let mut carol = login(&addr, "carol", "foo");
    expect(&mut carol, &["GET", "k1"], "$-1\r\n");
    expect(
        &mut carol,
        &["ACL", "WHOAMI"],
        "-NOPERM User carol has no permissions to run the 'acl|whoami' command\r\n",
    );

    // SETUSER errors quote the rule as Redis does, and change nothing.
    expect(
        &mut admin,
        &["ACL", "SETUSER", "carol", "+set", "+nosuch"],
        "-ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL\r\n",
    );
    expect(
        &mut admin,
        &["ACL", "SETUSER", "dave", "allkeys", "~x"],
        "-ERR Error in ACL SETUSER modifier '~x': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns\r\n",
    );
    expect(
        &mut carol,
        &["SET", "k1", "v"],
        "-NOPERM User carol has no permissions to run the 'set' command\r\n",
    );
    expect(
        &mut admin,
        &["ACL", "USERS"],
        "*3\r\n$3\r\nbob\r\n$5\r\ncarol\r\n$7\r\ndefault\r\n",
    );

    // CAT, GENPASS, LOAD/SAVE.
    let cat = s(&admin.cmd(&["ACL", "CAT"]));
    assert!(cat.starts_with("*21\r\n$8\r\nkeyspace\r\n"), "{cat}");
    let read = s(&admin.cmd(&["ACL", "CAT", "read"]));
    assert!(read.contains("$3\r\nget\r\n") && !read.contains("$3\r\nset\r\n"));
    expect(
        &mut admin,
        &["ACL", "CAT", "nope"],
        "-ERR Unknown category 'nope'\r\n",
    );
    let pass = s(&admin.cmd(&["ACL", "GENPASS"]));
    assert!(pass.starts_with("$64\r\n"), "{pass}");
    assert!(s(&admin.cmd(&["ACL", "GENPASS", "5"])).starts_with("$2\r\n"));
    assert!(s(&admin.cmd(&["ACL", "LOAD"]))
        .starts_with("-ERR This Redis instance is not configured to use an ACL file."));
}

#[test]
fn requirepass_is_the_default_users_password() {
    let cluster = Cluster::start();
    let addr = cluster.start_proxy(&[1, 2, 3], Some("pw"));
    let mut c = raw(&addr);
    expect(
        &mut c,
        &["GET", "k"],
        "-NOAUTH Authentication required.\r\n",
    );
    expect(&mut c, &["AUTH", "wrong"], WRONGPASS);
    expect(&mut c, &["AUTH", "default", "wrong"], WRONGPASS);
    expect(&mut c, &["AUTH", "pw"], "+OK\r\n");
    expect(&mut c, &["ACL", "WHOAMI"], "$7\r\ndefault\r\n");
    let default = s(&c.cmd(&["ACL", "GETUSER", "default"]));
    assert!(
        default.contains("$5\r\nflags\r\n*1\r\n$2\r\non\r\n"),
        "{default}"
    );
    let log = s(&c.cmd(&["ACL", "LOG"]));
    assert!(
        log.starts_with("*1\r\n"),
        "two equal AUTH failures are one entry: {log}"
    );
    assert!(log.contains("$5\r\ncount\r\n:2\r\n"), "{log}");

    // HELLO 3 AUTH, with a user of the cluster.
    expect(
        &mut c,
        &["ACL", "SETUSER", "erin", "on", ">e", "+@connection"],
        "+OK\r\n",
    );
    let mut h = raw(&addr);
    let hello = s(&h.cmd(&["HELLO", "3", "AUTH", "erin", "e"]));
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    expect(
        &mut h,
        &["ACL", "WHOAMI"],
        "-NOPERM User erin has no permissions to run the 'acl|whoami' command\r\n",
    );
    expect(&mut h, &["PING"], "+PONG\r\n");
    expect(&mut h, &["HELLO", "3", "AUTH", "erin", "x"], WRONGPASS);
    // RESET goes back to the (password-protected) default user.
    expect(&mut h, &["RESET"], "+RESET\r\n");
    expect(&mut h, &["PING"], "-NOAUTH Authentication required.\r\n");

    // Through a redis crate client too.
    let client = common::redis_client(&addr, None);
    let mut con = client.get_connection().expect("connect");
    let _: () = redis::cmd("AUTH")
        .arg("erin")
        .arg("e")
        .query(&mut con)
        .expect("AUTH");
    let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
    assert_eq!(pong, "PONG");
    let denied = redis::cmd("GET")
        .arg("k")
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert_eq!(denied.code(), Some("NOPERM"));
}

/// Replies that Redis 7.0 (the reference server from apt) and 7.2 agree on,
/// compared byte for byte with a real redis-server. (The NOPERM and DRYRUN
/// texts changed in 7.2; the tests above check those against 7.2's.)
#[test]
fn acl_replies_match_redis_server() {
    let Some(redis) = common::start_redis_server() else {
        eprintln!("redis-server not installed; skipping the comparison");
        return;
    };
    let cluster = Cluster::start();
    let commands: &[&[&str]] = &[
        &[
            "ACL", "SETUSER", "u", "on", ">p", "%R~ro:*", "~k*", "&c", "+get", "+@read", "-mget",
        ],
        &["ACL", "GETUSER", "u"],
        &[
            "ACL",
            "SETUSER",
            "v",
            "reset",
            "%RW~x",
            "%W~y",
            "+client|list",
            "-client",
        ],
        &["ACL", "GETUSER", "v"],
        &["ACL", "SETUSER", "u", "+nosuch"],
        &["ACL", "SETUSER", "u", "-@nosuch"],
        &["ACL", "SETUSER", "u", "allkeys", "~x"],
        &["ACL", "SETUSER", "u", "allchannels", "&x"],
        &["ACL", "SETUSER", "u", "#abc"],
        &["ACL", "SETUSER", "u", "%RR~x"],
        &["ACL", "SETUSER", "u", "bogus"],
        &["ACL", "SETUSER", "u", "+client|kill|x"],
        &["ACL", "SETUSER", "u", "+client|"],
        &["ACL", "SETUSER", "u", "<notapassword"],
        &["ACL", "SETUSER", "a b"],
        &["ACL", "GETUSER", "u"],
        &["ACL", "DELUSER", "default"],
        &["ACL", "GETUSER", "nobody"],
        &["ACL", "CAT"],
        &["ACL", "CAT", "nope"],
        &["ACL", "GENPASS", "0"],
        &["ACL", "GENPASS", "x"],
        &["ACL", "WHOAMI"],
        &["ACL", "USERS"],
        &["AUTH", "nobody", "x"],
        &["AUTH", "u", "wrong"],
        &["AUTH", "x"],
        &["ACL", "LOG", "RESET"],
        &["ACL", "DELUSER", "u", "v", "w"],
        &["ACL", "NOSUCH"],
        &["ACL", "GETUSER"],
    ];
    for protocol in ["2", "3"] {
        let mut theirs = raw(&redis.addr);
        let mut ours = raw(cluster.proxy_addr());
        theirs.cmd(&["HELLO", protocol]);
        ours.cmd(&["HELLO", protocol]);
        for args in commands {
            assert_eq!(
                s(&ours.cmd(args)),
                s(&theirs.cmd(args)),
                "RESP{protocol} reply to {args:?}"
            );
        }
    }
}

/// Redis checks a transaction's commands again at EXEC: a command the user
/// lost between MULTI and EXEC is answered with NOPERM in its place (and
/// logged with context "multi"); the others run. Texts as redis-server's.
#[test]
fn exec_rechecks_queued_commands_against_changed_rules() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let mut admin = raw(&addr);
    expect(
        &mut admin,
        &["ACL", "SETUSER", "carol", "on", ">pw", "~*", "+@all"],
        "+OK\r\n",
    );
    let mut carol = login(&addr, "carol", "pw");
    expect(&mut carol, &["MULTI"], "+OK\r\n");
    expect(&mut carol, &["SET", "k", "1"], "+QUEUED\r\n");
    expect(&mut carol, &["SET", "other", "1"], "+QUEUED\r\n");
    expect(&mut carol, &["GET", "k"], "+QUEUED\r\n");
    expect(&mut carol, &["PING"], "+QUEUED\r\n");
    // Another proxy connection takes SET away and narrows the keys.
    expect(
        &mut admin,
        &["ACL", "SETUSER", "carol", "-set", "resetkeys", "~k"],
        "+OK\r\n",
    );
    let changed = "-NOPERM ACLs rules changed between the moment the transaction was \
                   accumulated and the EXEC call. This command is no longer allowed for the \
                   following reason: no permission to execute the command or subcommand\r\n";
    expect(
        &mut carol,
        &["EXEC"],
        &format!("*4\r\n{changed}{changed}$-1\r\n+PONG\r\n"),
    );
    expect(&mut carol, &["EXISTS", "k"], ":0\r\n");
    // A key the user lost.
    expect(&mut carol, &["MULTI"], "+OK\r\n");
    expect(&mut carol, &["GET", "k"], "+QUEUED\r\n");
    expect(
        &mut admin,
        &["ACL", "SETUSER", "carol", "resetkeys", "~x"],
        "+OK\r\n",
    );
    expect(
        &mut carol,
        &["EXEC"],
        "*1\r\n-NOPERM ACLs rules changed between the moment the transaction was \
         accumulated and the EXEC call. This command is no longer allowed for the \
         following reason: no permission to touch the specified keys\r\n",
    );
    let log = s(&admin.cmd(&["ACL", "LOG", "1"]));
    assert!(log.contains("$7\r\ncontext\r\n$5\r\nmulti\r\n"), "{log}");
}

/// A subscriber whose user loses the channel it listens to is disconnected,
/// as Redis does; one whose channels are still granted stays.
#[test]
fn a_subscriber_losing_its_channel_permission_is_disconnected() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let mut admin = raw(&addr);
    expect(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "dave",
            "on",
            ">pw",
            "resetchannels",
            "&news.*",
            "&sport",
            "+@all",
        ],
        "+OK\r\n",
    );
    let mut news = login(&addr, "dave", "pw");
    expect(
        &mut news,
        &["SUBSCRIBE", "news.a"],
        "*3\r\n$9\r\nsubscribe\r\n$6\r\nnews.a\r\n:1\r\n",
    );
    let mut sport = login(&addr, "dave", "pw");
    expect(
        &mut sport,
        &["SUBSCRIBE", "sport"],
        "*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:1\r\n",
    );
    expect(
        &mut admin,
        &["ACL", "SETUSER", "dave", "resetchannels", "&sport"],
        "+OK\r\n",
    );
    let rest = news
        .read_to_eof(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the news subscriber was not closed: {e}"));
    assert!(rest.is_empty(), "{}", s(&rest));
    // The other still hears its channel.
    expect(&mut admin, &["PUBLISH", "sport", "goal"], ":1\r\n");
    assert_eq!(
        s(&sport.read_reply().expect("message")),
        "*3\r\n$7\r\nmessage\r\n$5\r\nsport\r\n$4\r\ngoal\r\n"
    );
}
