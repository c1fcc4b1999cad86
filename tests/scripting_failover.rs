//! EVALSHA after the leader dies: scripts are cached through Raft, so the
//! new leader knows them. A test binary of its own because it needs its own
//! cluster (the harness runs one cluster per test process at a time, and
//! killing the shared cluster's leader would disturb the other tests).

mod common;

use std::time::Duration;

use common::{Cluster, RawConn};

fn ask(c: &mut RawConn, args: &[&str]) -> String {
    String::from_utf8_lossy(&c.cmd(args)).into_owned()
}

#[test]
fn evalsha_works_after_the_leader_fails() {
    if std::env::var("RAMPART_TEST_REDIS_ADDR").is_ok() {
        return;
    }
    let cluster = Cluster::start();
    let mut c = RawConn::connect(cluster.proxy_addr()).expect("connect");
    let got = ask(
        &mut c,
        &["SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])"],
    );
    let sha = got.lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(sha.len(), 40, "{got}");
    assert_eq!(ask(&mut c, &["EVALSHA", &sha, "1", "lua:fo"]), ":1\r\n");
    // A script cached by EVAL (not SCRIPT LOAD) survives too.
    let body = "return 'eval-cached'";
    assert_eq!(ask(&mut c, &["EVAL", body, "0"]), "$11\r\neval-cached\r\n");
    let got = ask(
        &mut c,
        &["EVAL", "return redis.sha1hex(ARGV[1])", "0", body],
    );
    let eval_sha = got.lines().nth(1).unwrap_or_default().to_string();
    let old = cluster.leader_id();
    cluster.kill_node(old);
    let new = cluster.wait_for_leader(Duration::from_secs(20));
    assert_ne!(new, old);
    let mut c = RawConn::connect(cluster.proxy_addr()).expect("connect");
    assert_eq!(ask(&mut c, &["EVALSHA", &sha, "1", "lua:fo"]), ":2\r\n");
    assert_eq!(
        ask(
            &mut c,
            &[
                "SCRIPT",
                "EXISTS",
                &sha,
                "0000000000000000000000000000000000000000"
            ]
        ),
        "*2\r\n:1\r\n:0\r\n"
    );
    assert_eq!(
        ask(&mut c, &["EVALSHA", &eval_sha, "0"]),
        "$11\r\neval-cached\r\n"
    );
}

/// A script request resent with the same client id and seq (what a proxy
/// does when a failover hides the first answer) is answered with the first
/// attempt's reply, not run again: a compare-and-set that succeeded must
/// not turn into "the value differed" because it now sees its own write
/// (found by the chaos tool's register checker, docs/reliability.md).
#[test]
fn a_resent_script_request_is_answered_from_its_first_run() {
    use rampart_proto::pb::execute_response::Outcome;
    use rampart_proto::pb::kv_client::KvClient;
    use rampart_proto::pb::{reply::Kind, Command, ExecuteRequest};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

    if std::env::var("RAMPART_TEST_REDIS_ADDR").is_ok() {
        return;
    }
    let cluster = Cluster::start();
    let mut c = RawConn::connect(cluster.proxy_addr()).expect("connect");
    assert_eq!(ask(&mut c, &["SET", "lua:cas", "a"]), "+OK\r\n");
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let addr = cluster.client_addr(leader);
    let certs = cluster
        .certs_dir()
        .expect("the harness runs mutual TLS")
        .to_path_buf();
    let read = |name: &str| std::fs::read(certs.join(name)).expect("certificate file");
    let cas = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
               redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";
    let request = ExecuteRequest {
        commands: vec![Command {
            args: ["EVAL", cas, "1", "lua:cas", "a", "b"]
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect(),
        }],
        client_id: "script-retry-test".into(),
        request_seq: 7,
        transaction: false,
        watches: vec![],
        user: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let replies: Vec<i64> = rt.block_on(async {
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
        for _ in 0..2 {
            let response = kv.execute(request.clone()).await.expect("execute");
            let Some(Outcome::Replies(r)) = response.into_inner().outcome else {
                panic!("the leader did not answer with replies");
            };
            match r.replies.first().and_then(|r| r.kind.clone()) {
                Some(Kind::Integer(n)) => out.push(n),
                other => panic!("unexpected reply {other:?}"),
            }
        }
        out
    });
    assert_eq!(replies, [1, 1], "the resent request got another answer");
    assert_eq!(ask(&mut c, &["GET", "lua:cas"]), "$1\r\nb\r\n");
}
