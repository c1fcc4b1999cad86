//! The proxy over real TCP, without storage nodes: local commands, the
//! CLUSTERDOWN answer, protocol errors, pipelining and batching (with a fake
//! node service), AUTH gating and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rampart_proto::{reply, Reply};
use rampart_proxy::commands::Shared;
use rampart_proxy::registry::ClientRegistry;
use rampart_proxy::upstream::Upstream;
use rampart_proxy::{connection, Batch, Config, ProxyArgs, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A proxy whose only node address is a closed port.
async fn start_proxy(
    requirepass: Option<&str>,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let config = Config::load(ProxyArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        nodes: Some(vec!["127.0.0.1:1".into()]),
        retry_deadline_ms: Some(300),
        requirepass: requirepass.map(str::to_string),
        insecure: Some(true),
        ..ProxyArgs::default()
    })
    .unwrap();
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        server
            .serve(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
    });
    (addr, stop_tx, task)
}

async fn raw(addr: SocketAddr, input: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(input).await.unwrap();
    read_until_idle(&mut stream).await
}

/// Reads until the peer closes (true) or stays silent for 300 ms (false).
async fn read_until_idle(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test]
async fn local_commands_work_without_nodes() {
    let (addr, _stop, _task) = start_proxy(None).await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = redis::cmd("ECHO")
        .arg("hello")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(echo, "hello");
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("tester")
        .query_async(&mut con)
        .await
        .unwrap();
    let name: String = redis::cmd("CLIENT")
        .arg("GETNAME")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(name, "tester");
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut con)
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        list.contains(&format!("id={id} ")) && list.contains("name=tester"),
        "{list}"
    );
    // The redis crate announces itself with CLIENT SETINFO on connect.
    assert!(list.contains("lib-name=redis-rs"), "{list}");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(info.contains("redis_version:7.2.4\r\n"), "{info}");
    let count: i64 = redis::cmd("COMMAND")
        .arg("COUNT")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(count as usize, rampart_proto::command_table::COMMANDS.len());
    let err = redis::cmd("NOSUCH")
        .arg("a")
        .query_async::<String>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ERR"));
    assert!(
        err.to_string().contains("unknown command 'NOSUCH'"),
        "{err}"
    );
}

#[tokio::test]
async fn resp3_hello_and_replies() {
    let (addr, _stop, _task) = start_proxy(None).await;
    let (out, closed) = raw(addr, b"HELLO 3\r\nPING\r\nCLIENT GETNAME\r\nPING x\r\n").await;
    assert!(!closed);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n$5\r\nproto\r\n:3\r\n"), "{text}");
    assert!(text.ends_with("+PONG\r\n_\r\n$1\r\nx\r\n"), "{text}");

    let client = redis::Client::open(format!("redis://{addr}/?protocol=resp3")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let value: redis::Value = redis::cmd("HELLO")
        .arg(3)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        matches!(value, redis::Value::Map(ref m) if m.len() == 7),
        "{value:?}"
    );
}

#[tokio::test]
async fn forwarded_commands_get_clusterdown_after_the_deadline() {
    let (addr, _stop, _task) = start_proxy(None).await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let started = Instant::now();
    let err = redis::cmd("GET")
        .arg("k")
        .query_async::<Option<String>>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("CLUSTERDOWN"), "{err}");
    assert!(
        err.to_string()
            .contains("The cluster is down: no leader reachable"),
        "{err}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    // Arity errors are answered without a round trip.
    let err = redis::cmd("GET")
        .query_async::<Option<String>>(&mut con)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("wrong number of arguments for 'get' command"),
        "{err}"
    );
}

#[tokio::test]
async fn protocol_errors_close_only_the_offending_connection() {
    let (addr, _stop, _task) = start_proxy(None).await;
    let mut bystander = TcpStream::connect(addr).await.unwrap();
    // An unterminated array: the proxy waits for the rest.
    bystander.write_all(b"*2\r\n$4\r\nECHO\r\n").await.unwrap();
    let cases: &[(&[u8], &str)] = &[
        (
            b"*1\r\n$x\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$1073741824\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$536870913\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*99999999\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n:1\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"PING \"oops\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"PING\r\n*zz\r\n",
            "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ];
    for (input, expected) in cases {
        let (out, closed) = raw(addr, input).await;
        assert_eq!(
            String::from_utf8_lossy(&out),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            closed,
            "connection left open after {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut garbage = vec![0xffu8; 70 * 1024];
    garbage[0] = b'x';
    let (out, closed) = raw(addr, &garbage).await;
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR Protocol error: too big inline request\r\n"
    );
    assert!(closed);
    // The bystander finishes its command and is still served.
    bystander.write_all(b"$2\r\nhi\r\nPING\r\n").await.unwrap();
    let (out, closed) = read_until_idle(&mut bystander).await;
    assert_eq!(String::from_utf8_lossy(&out), "$2\r\nhi\r\n+PONG\r\n");
    assert!(!closed);
}

#[tokio::test]
async fn requirepass_gates_commands_until_auth() {
    let (addr, _stop, _task) = start_proxy(Some("s3cret")).await;
    let (out, _) = raw(
        addr,
        b"PING\r\nGET k\r\nNOSUCH\r\nHELLO 3\r\nAUTH nope\r\nAUTH s3cret\r\nPING\r\nRESET\r\nPING\r\nQUIT\r\nPING\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "-NOAUTH Authentication required.");
    assert_eq!(lines[1], "-NOAUTH Authentication required.");
    assert!(
        lines[2].starts_with("-ERR unknown command 'NOSUCH'"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("-NOAUTH HELLO must be called"),
        "{text}"
    );
    assert_eq!(
        lines[4],
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        &lines[5..10],
        &[
            "+OK",
            "+PONG",
            "+RESET",
            "-NOAUTH Authentication required.",
            "+OK"
        ]
    );
    // QUIT closed the connection: the last PING got no reply.
    assert_eq!(lines.len(), 11, "{text}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_clients() {
    let (addr, stop, task) = start_proxy(None).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    idle.read_exact(&mut buf).await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let (_, closed) = read_until_idle(&mut idle).await;
    assert!(closed);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_second_proxy_can_bind_the_same_port() {
    let first = rampart_proxy::listener::bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = first.local_addr().unwrap();
    let second = rampart_proxy::listener::bind_reuseport(addr).unwrap();
    assert_eq!(second.local_addr().unwrap(), addr);
}

/// Answers every forwarded command with "<name> <first arg>" and records the
/// size and seq of each batch.
#[derive(Clone, Default)]
struct FakeNodes {
    batches: Arc<Mutex<Vec<(u64, usize, String)>>>,
}

impl tower::Service<Batch> for FakeNodes {
    type Response = Vec<Reply>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Vec<Reply>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        self.batches.lock().unwrap().push((
            batch.seq,
            batch.commands.len(),
            batch.client.client_id.clone(),
        ));
        let replies = batch
            .commands
            .iter()
            .map(|argv| {
                let words: Vec<String> = argv
                    .iter()
                    .take(2)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                reply::bulk(words.join(" "))
            })
            .collect();
        Box::pin(async move { Ok(replies) })
    }
}

/// Serves connections with [`FakeNodes`] in place of the node tier.
async fn start_fake() -> (SocketAddr, FakeNodes) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local_addr = listener.local_addr().unwrap();
    let config = Config::load(ProxyArgs {
        nodes: Some(vec!["127.0.0.1:1".into()]),
        ..ProxyArgs::default()
    })
    .unwrap();
    let redis_config = Arc::new(rampart_proxy::redis_config::ConfigStore::new(&config));
    let shared = Arc::new(Shared {
        redis_config,
        upstream: Arc::new(Upstream::new(config.nodes.clone(), config.retry_deadline)),
        pubsub: Arc::new(
            rampart_proxy::pubsub::PubSub::new(
                &config.nodes,
                config.pubsub_limits(),
                config.retry_deadline,
            )
            .unwrap(),
        ),
        config,
        registry: Arc::new(ClientRegistry::new()),
        proxy_id: "proxy-uuid".into(),
        run_id: "0".repeat(40),
        started: Instant::now(),
        local_addr,
        acl: Arc::new(rampart_proxy::acl::AclStore::new(None)),
        // Policies off: every connection is admitted (and still counted).
        policies: Arc::new(
            rampart_policies::Policies::new(&rampart_policies::PolicyConfig {
                enabled: false,
                ..Default::default()
            })
            .unwrap(),
        ),
    });
    let fake = FakeNodes::default();
    let service = fake.clone();
    tokio::spawn(async move {
        let (done_tx, _done_rx) = mpsc::channel(1);
        while let Ok((socket, peer)) = listener.accept().await {
            let rampart_policies::Decision::Admit(slot) =
                shared.policies.connections.admit(peer.ip())
            else {
                continue;
            };
            tokio::spawn(connection::serve(
                rampart_proxy::tls::ClientStream::Plain(socket),
                peer,
                slot,
                shared.clone(),
                service.clone(),
                CancellationToken::new(),
                done_tx.clone(),
            ));
        }
    });
    (local_addr, fake)
}

#[tokio::test]
async fn pipelines_are_batched_in_order() {
    let (addr, fake) = start_fake().await;
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        if i % 250 == 249 {
            pipe.cmd("PING");
        } else {
            pipe.cmd("GET").arg(format!("key{i}"));
        }
    }
    let replies: Vec<String> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), 1000);
    for (i, r) in replies.iter().enumerate() {
        if i % 250 == 249 {
            assert_eq!(r, "PONG");
        } else {
            assert_eq!(r, &format!("GET key{i}"));
        }
    }
    let batches = fake.batches.lock().unwrap().clone();
    // Consecutive GETs travel together (the exact split depends on how the
    // pipeline arrived in reads); seqs increase and every command is sent once.
    assert_eq!(batches.iter().map(|b| b.1).sum::<usize>(), 996);
    assert!(batches.len() < 100, "{} batches", batches.len());
    assert!(batches.windows(2).all(|w| w[1].0 > w[0].0));
    assert!(batches.iter().all(|b| b.2.starts_with("proxy-uuid:")));
}

#[tokio::test]
async fn local_errors_do_not_split_a_batch() {
    let (addr, fake) = start_fake().await;
    let (out, _) = raw(addr, b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$3\r\nGET\r\n*1\r\n$4\r\nNOPE\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&out),
        "$5\r\nGET a\r\n-ERR wrong number of arguments for 'get' command\r\n\
         -ERR unknown command 'NOPE', with args beginning with: \r\n$5\r\nGET b\r\n"
    );
    let batches = fake.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].1, 2);
}
