//! ACL through two real proxies over TCP, with a fake node tier: a gRPC Kv
//! server that keeps the user table with the same `rampart_proto::acl` code
//! the storage node runs (without Raft or RocksDB). The cross-process
//! version with real nodes is tests/acl.rs.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use rampart_proto::acl::{internal, Users};
use rampart_proto::args::parse_i64;
use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::kv_server::{Kv, KvServer};
use rampart_proto::pb::{
    BlockingEvent, ClusterStatus, ExecuteRequest, ExecuteResponse, Replies, StatusRequest,
};
use rampart_proto::{reply, Reply};
use rampart_proxy::{Config, ProxyArgs, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::{Request, Response, Status};

/// The node tier as far as ACL goes: the users and their version.
#[derive(Clone, Default)]
struct FakeNode {
    state: Arc<Mutex<(Users, u64)>>,
}

impl FakeNode {
    fn run(&self, argv: &[Vec<u8>]) -> Reply {
        let mut state = self.state.lock().unwrap();
        let (users, version) = &mut *state;
        let name = argv[0].as_slice();
        if name == internal::SETUSER.as_bytes() {
            match users.setuser(&argv[1], &argv[2..]) {
                Ok(()) => {
                    *version += 1;
                    reply::ok()
                }
                Err(e) => reply::error(e),
            }
        } else if name == internal::DELUSER.as_bytes() {
            match users.deluser(&argv[1..]) {
                Ok(n) => {
                    *version += 1;
                    reply::integer(n as i64)
                }
                Err(e) => reply::error(e),
            }
        } else if name == internal::GET.as_bytes() {
            if parse_i64(&argv[1]) == Some(*version as i64) {
                reply::null()
            } else {
                reply::array(vec![
                    reply::integer(*version as i64),
                    reply::bulk(users.serialize()),
                ])
            }
        } else {
            // Any other command "succeeds".
            reply::ok()
        }
    }
}

#[tonic::async_trait]
impl Kv for FakeNode {
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let replies = request
            .into_inner()
            .commands
            .iter()
            .map(|c| self.run(&c.args))
            .collect();
        Ok(Response::new(ExecuteResponse {
            outcome: Some(Outcome::Replies(Replies {
                replies,
                ..Default::default()
            })),
        }))
    }

    type ExecuteBlockingStream =
        Pin<Box<dyn Stream<Item = Result<BlockingEvent, Status>> + Send + 'static>>;

    async fn execute_blocking(
        &self,
        _request: Request<ExecuteRequest>,
    ) -> Result<Response<Self::ExecuteBlockingStream>, Status> {
        Err(Status::unimplemented("no blocking commands here"))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        Err(Status::unimplemented("no cluster status here"))
    }
}

async fn start_node() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream_of(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(FakeNode::default()))
            .serve_with_incoming(incoming),
    );
    addr
}

fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = Result<TcpStream, std::io::Error>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(s, _)| s);
        Some((accepted, listener))
    })
}

async fn start_proxy(node: SocketAddr, requirepass: Option<&str>) -> SocketAddr {
    let config = Config::load(ProxyArgs {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        nodes: Some(vec![node.to_string()]),
        retry_deadline_ms: Some(2000),
        requirepass: requirepass.map(str::to_string),
        insecure: Some(true),
        ..ProxyArgs::default()
    })
    .unwrap();
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(async move {
        server.serve(std::future::pending()).await.unwrap();
    });
    addr
}

struct Conn(TcpStream);

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn(TcpStream::connect(addr).await.unwrap())
    }

    /// Sends one command and returns what arrives until the reply is idle.
    async fn cmd(&mut self, args: &[&str]) -> String {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.write_all(out.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_millis(300), self.0.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("read: {e}"),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }
}

/// AUTH until the user reaches the proxy (it polls the node).
async fn login(addr: SocketAddr, user: &str, pass: &str) -> Conn {
    for _ in 0..50 {
        let mut c = Conn::open(addr).await;
        if c.cmd(&["AUTH", user, pass]).await == "+OK\r\n" {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("AUTH {user} never succeeded on {addr}");
}

#[tokio::test]
async fn a_user_set_on_one_proxy_applies_on_another() {
    let node = start_node().await;
    let a = start_proxy(node, None).await;
    let b = start_proxy(node, None).await;
    let mut admin = Conn::open(a).await;
    assert_eq!(
        admin
            .cmd(&[
                "ACL",
                "SETUSER",
                "alice",
                "on",
                ">pw",
                "~app:*",
                "+@all",
                "-@dangerous"
            ])
            .await,
        "+OK\r\n"
    );
    let mut alice = login(b, "alice", "pw").await;
    assert_eq!(alice.cmd(&["SET", "app:1", "v"]).await, "+OK\r\n");
    assert_eq!(
        alice.cmd(&["SET", "other", "v"]).await,
        "-NOPERM No permissions to access a key\r\n"
    );
    assert_eq!(
        alice.cmd(&["FLUSHALL"]).await,
        "-NOPERM User alice has no permissions to run the 'flushall' command\r\n"
    );
    assert_eq!(alice.cmd(&["ACL", "WHOAMI"]).await, "$5\r\nalice\r\n");
    let list = Conn::open(b).await.cmd(&["CLIENT", "LIST"]).await;
    assert!(list.contains("user=alice"), "{list}");

    // MULTI: refused at queue time, EXEC aborts.
    assert_eq!(alice.cmd(&["MULTI"]).await, "+OK\r\n");
    assert_eq!(
        alice.cmd(&["GET", "secret"]).await,
        "-NOPERM No permissions to access a key\r\n"
    );
    assert_eq!(
        alice.cmd(&["EXEC"]).await,
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // The log is per proxy: the denial happened on B.
    let log = Conn::open(b).await.cmd(&["ACL", "LOG", "1"]).await;
    assert!(log.starts_with("*1\r\n*20\r\n$5\r\ncount\r\n:1\r\n$6\r\nreason\r\n$3\r\nkey\r\n$7\r\ncontext\r\n$5\r\nmulti\r\n$6\r\nobject\r\n$6\r\nsecret\r\n$8\r\nusername\r\n$5\r\nalice\r\n"), "{log}");

    // Changes reach open connections on the other proxy.
    assert_eq!(
        admin.cmd(&["ACL", "SETUSER", "alice", "-get"]).await,
        "+OK\r\n"
    );
    let mut refused = String::new();
    for _ in 0..50 {
        refused = alice.cmd(&["GET", "app:1"]).await;
        if refused.starts_with("-NOPERM") {
            break;
        }
    }
    assert_eq!(
        refused,
        "-NOPERM User alice has no permissions to run the 'get' command\r\n"
    );

    // Deleting the user closes its connections everywhere.
    assert_eq!(admin.cmd(&["ACL", "DELUSER", "alice"]).await, ":1\r\n");
    let mut closed = false;
    for _ in 0..50 {
        let mut buf = [0u8; 64];
        let _ = alice.0.write_all(b"PING\r\n").await;
        if let Ok(Ok(0)) | Ok(Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), alice.0.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "the deleted user's connection stayed open");
    assert_eq!(
        Conn::open(b).await.cmd(&["AUTH", "alice", "pw"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
}

#[tokio::test]
async fn getuser_shapes_and_requirepass() {
    let node = start_node().await;
    let p = start_proxy(node, Some("pw")).await;
    let mut c = Conn::open(p).await;
    assert_eq!(
        c.cmd(&["GET", "k"]).await,
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(c.cmd(&["AUTH", "pw"]).await, "+OK\r\n");
    assert_eq!(
        c.cmd(&["ACL", "SETUSER", "carol", "on", ">foo", "~k*", "&c", "+get"])
            .await,
        "+OK\r\n"
    );
    let fields = "$5\r\nflags\r\n{flags}$9\r\npasswords\r\n*1\r\n$64\r\n2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\r\n\
                  $8\r\ncommands\r\n$10\r\n-@all +get\r\n$4\r\nkeys\r\n$3\r\n~k*\r\n\
                  $8\r\nchannels\r\n$2\r\n&c\r\n$9\r\nselectors\r\n*0\r\n";
    assert_eq!(
        c.cmd(&["ACL", "GETUSER", "carol"]).await,
        format!("*12\r\n{}", fields.replace("{flags}", "*1\r\n$2\r\non\r\n"))
    );
    assert!(c.cmd(&["HELLO", "3"]).await.starts_with("%7\r\n"));
    assert_eq!(
        c.cmd(&["ACL", "GETUSER", "carol"]).await,
        format!("%6\r\n{}", fields.replace("{flags}", "~1\r\n$2\r\non\r\n"))
    );
    let list = c.cmd(&["ACL", "LIST"]).await;
    assert!(
        list.contains("user default on #"),
        "requirepass is the default user's password: {list}"
    );
    let mut h = Conn::open(p).await;
    assert!(h
        .cmd(&["HELLO", "3", "AUTH", "carol", "foo"])
        .await
        .starts_with("%7\r\n"));
    assert_eq!(
        h.cmd(&["PUBLISH", "c", "m"]).await,
        "-NOPERM User carol has no permissions to run the 'publish' command\r\n"
    );
    assert_eq!(
        c.cmd(&["ACL", "DRYRUN", "carol", "GET", "x"]).await,
        "$51\r\nUser carol has no permissions to access the 'x' key\r\n"
    );
    assert_eq!(
        c.cmd(&["ACL", "SETUSER", "carol", "+subscribe"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        h.cmd(&["SUBSCRIBE", "d"]).await,
        "-NOPERM No permissions to access a channel\r\n"
    );
}
