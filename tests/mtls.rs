//! Mutual TLS inside the cluster (docs/security.md): every node port
//! refuses a peer without a certificate of the cluster CA, the roles in a
//! certificate decide which gRPC services it may call, Admin is served on
//! the Raft listener only, internal commands need a proxy or node identity,
//! and a process without certificates starts only with `--insecure`.
//!
//! The harness runs every cluster with mutual TLS (certificates from
//! `rampart certs`), so the rest of the suite covers the proxy → node,
//! node ↔ node and admin → node links working; this file checks what must
//! be refused.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{run_rampart, Cluster, ClusterOptions, ADMIN_TIMEOUT};
use rampart_proto::cluster_tls::NODE_SERVER_NAME;
use rampart_proto::pb::admin_client::AdminClient;
use rampart_proto::pb::kv_client::KvClient;
use rampart_proto::pb::raft_transport_client::RaftTransportClient;
use rampart_proto::pb::{Command, ExecuteRequest, RaftMessage, StatusRequest};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

/// How a test client presents itself to a node.
enum Client<'a> {
    /// No TLS at all.
    Plaintext,
    /// TLS trusting the cluster CA, but no client certificate.
    NoCert(&'a Path),
    /// TLS trusting the cluster CA (`ca_dir`), with certificate `name` from
    /// the folder `cert_dir` (another CA's folder for a foreign identity).
    Cert {
        ca_dir: &'a Path,
        cert_dir: &'a Path,
        name: &'a str,
    },
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

/// A channel to `addr`; `Err` when the connection (or its handshake) fails.
async fn channel(addr: &str, client: &Client<'_>) -> Result<Channel, String> {
    let endpoint = match client {
        Client::Plaintext => Endpoint::from_shared(format!("http://{addr}")).unwrap(),
        Client::NoCert(ca_dir) => Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(ca_dir.join("ca.pem"))))
                    .domain_name(NODE_SERVER_NAME),
            )
            .unwrap(),
        Client::Cert {
            ca_dir,
            cert_dir,
            name,
        } => Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(ca_dir.join("ca.pem"))))
                    .identity(Identity::from_pem(
                        read(cert_dir.join(format!("{name}.pem"))),
                        read(cert_dir.join(format!("{name}-key.pem"))),
                    ))
                    .domain_name(NODE_SERVER_NAME),
            )
            .unwrap(),
    };
    endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

/// The gRPC calls tried on a node port, one per service.
#[derive(Clone, Copy, Debug)]
enum Call {
    KvStatus,
    KvInternal,
    AdminStatus,
    RaftVote,
}

/// Makes `call` on `addr` as `client`: `Ok` or the refusal (a transport
/// error, or the gRPC status code and message).
async fn try_call(
    addr: &str,
    client: &Client<'_>,
    call: Call,
) -> Result<(), (Option<Code>, String)> {
    let channel = channel(addr, client).await.map_err(|e| (None, e))?;
    let result = match call {
        Call::KvStatus => KvClient::new(channel)
            .status(StatusRequest {})
            .await
            .map(drop),
        Call::KvInternal => KvClient::new(channel)
            .execute(ExecuteRequest {
                commands: vec![Command {
                    args: vec![b"rampart.streamformat".to_vec(), b"somekey".to_vec()],
                }],
                client_id: "mtls-test".into(),
                request_seq: 1,
                transaction: false,
                watches: vec![],
                user: None,
            })
            .await
            .map(drop),
        Call::AdminStatus => AdminClient::new(channel)
            .status(StatusRequest {})
            .await
            .map(drop),
        Call::RaftVote => RaftTransportClient::new(channel)
            .vote(RaftMessage { data: vec![] })
            .await
            .map(drop),
    };
    result.map_err(|s| (Some(s.code()), s.message().to_string()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn certs(cluster: &Cluster) -> &Path {
    cluster.certs_dir().expect("the harness runs mutual TLS")
}

/// A set of certificates from a CA the cluster does not trust.
fn foreign_certs(cluster: &Cluster) -> std::path::PathBuf {
    let dir = cluster.dir().join("foreign-certs");
    let arg = dir.to_string_lossy().into_owned();
    let (ok, out, err) = run_rampart(&["certs", "--dir", &arg], ADMIN_TIMEOUT);
    assert!(ok, "rampart certs: {out}{err}");
    dir
}

#[test]
fn every_node_port_refuses_peers_without_a_cluster_certificate() {
    let cluster = Cluster::start();
    let ours = certs(&cluster);
    let foreign = foreign_certs(&cluster);
    let rt = runtime();
    let ports = [
        (cluster.client_addr(1), Call::KvStatus),
        (cluster.raft_addr(1), Call::AdminStatus),
        (cluster.raft_addr(1), Call::RaftVote),
    ];
    for (addr, call) in &ports {
        let clients = [
            ("plaintext", Client::Plaintext),
            ("no certificate", Client::NoCert(ours)),
            (
                "another CA's admin certificate",
                Client::Cert {
                    ca_dir: ours,
                    cert_dir: &foreign,
                    name: "admin",
                },
            ),
            (
                "another CA's node certificate",
                Client::Cert {
                    ca_dir: ours,
                    cert_dir: &foreign,
                    name: "node-1",
                },
            ),
        ];
        for (what, client) in &clients {
            let result = rt.block_on(try_call(addr, client, *call));
            // Refused by the handshake: never an answer, nor a gRPC status
            // from the service (a permission check would mean TLS let it in).
            match result {
                Ok(()) => panic!("{call:?} on {addr} with {what} was served"),
                Err((Some(Code::PermissionDenied), m)) => {
                    panic!("{call:?} on {addr} with {what}: TLS accepted it ({m})")
                }
                Err(_) => {}
            }
        }
    }
    // The same calls with the right certificates go through.
    let admin = Client::Cert {
        ca_dir: ours,
        cert_dir: ours,
        name: "admin",
    };
    rt.block_on(try_call(&cluster.client_addr(1), &admin, Call::KvStatus))
        .expect("Kv.Status with the admin certificate");
    rt.block_on(try_call(&cluster.raft_addr(1), &admin, Call::AdminStatus))
        .expect("Admin.Status with the admin certificate");
}

#[test]
fn a_proxy_certificate_calls_kv_but_not_admin_or_raft() {
    let cluster = Cluster::start();
    let ours = certs(&cluster);
    let rt = runtime();
    let proxy = Client::Cert {
        ca_dir: ours,
        cert_dir: ours,
        name: "proxy",
    };
    rt.block_on(try_call(&cluster.client_addr(1), &proxy, Call::KvStatus))
        .expect("a proxy may call Kv");
    for call in [Call::AdminStatus, Call::RaftVote] {
        let (code, message) = rt
            .block_on(try_call(&cluster.raft_addr(1), &proxy, call))
            .expect_err("a proxy certificate must be refused");
        assert_eq!(code, Some(Code::PermissionDenied), "{call:?}: {message}");
        assert!(message.contains("role proxy"), "{call:?}: {message}");
    }
    // Nor may an admin certificate pose as a Raft peer.
    let admin = Client::Cert {
        ca_dir: ours,
        cert_dir: ours,
        name: "admin",
    };
    let (code, message) = rt
        .block_on(try_call(&cluster.raft_addr(1), &admin, Call::RaftVote))
        .expect_err("an admin certificate must not call RaftTransport");
    assert_eq!(code, Some(Code::PermissionDenied), "{message}");
}

#[test]
fn admin_is_served_on_the_raft_listener_only() {
    let cluster = Cluster::start();
    let ours = certs(&cluster);
    let rt = runtime();
    let admin = Client::Cert {
        ca_dir: ours,
        cert_dir: ours,
        name: "admin",
    };
    for id in 1..=3 {
        let (code, message) = rt
            .block_on(try_call(
                &cluster.client_addr(id),
                &admin,
                Call::AdminStatus,
            ))
            .expect_err("Admin must not be served on the client listener");
        assert_eq!(code, Some(Code::Unimplemented), "node {id}: {message}");
    }

    // `rampart admin` with the admin certificate on the Raft address.
    let raft = cluster.raft_addr(1);
    let (ok, out, err) = cluster.admin(&["status", "--node", &raft]);
    assert!(ok && out.contains("\"leader_id\""), "{out}{err}");
    // ... but not with the proxy's certificate.
    let mut args = vec!["admin".to_string(), "status".into(), "--node".into(), raft];
    args.extend(cluster.tls_flags("proxy"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = run_rampart(&args, ADMIN_TIMEOUT);
    assert!(!ok, "admin status with the proxy certificate: {out}");
    assert!(err.contains("role admin"), "{err}");
}

#[test]
fn internal_commands_need_a_proxy_or_node_identity() {
    let cluster = Cluster::start();
    let ours = certs(&cluster);
    let rt = runtime();
    let leader = cluster.leader_id();
    let addr = cluster.client_addr(leader);
    let as_cert = |name| Client::Cert {
        ca_dir: ours,
        cert_dir: ours,
        name,
    };
    let (code, message) = rt
        .block_on(try_call(&addr, &as_cert("admin"), Call::KvInternal))
        .expect_err("an admin certificate must not send internal commands");
    assert_eq!(code, Some(Code::PermissionDenied), "{message}");
    assert!(
        message.contains("rampart.streamformat is an internal command"),
        "{message}"
    );
    for name in ["proxy", "node-2"] {
        rt.block_on(try_call(&addr, &as_cert(name), Call::KvInternal))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // Clients reach it through the proxy, which holds a proxy identity.
    let mut con = cluster.connection();
    let reply = common::query(&mut con, &["RAMPART.STREAMFORMAT", "nosuchkey"]);
    assert!(
        !common::error_text(&reply).is_some_and(|e| e.contains("internal command")),
        "{reply:?}"
    );
}

#[test]
fn insecure_cluster_runs_in_plaintext_and_warns() {
    let cluster = Cluster::start_with(ClusterOptions {
        insecure: true,
        ..ClusterOptions::default()
    });
    let mut con = cluster.connection();
    common::check(&mut con, &["SET", "k", "v"], "+OK");
    common::check(&mut con, &["GET", "k"], "\"v\"");
    let rt = runtime();
    rt.block_on(try_call(
        &cluster.raft_addr(1),
        &Client::Plaintext,
        Call::AdminStatus,
    ))
    .expect("plaintext Admin on an insecure node");
    let warning = "--insecure: cluster gRPC links are plaintext";
    let node_log = cluster.log_tail("node1", 10_000);
    assert!(node_log.contains(warning), "{node_log}");
    let proxy_log = cluster.log_tail("proxy0", 10_000);
    assert!(proxy_log.contains(warning), "{proxy_log}");
}

#[test]
fn processes_without_certificates_or_insecure_refuse_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let runs: [&[&str]; 3] = [
        &[
            "node",
            "--id",
            "1",
            "--raft-addr",
            "127.0.0.1:0",
            "--client-addr",
            "127.0.0.1:0",
            "--data-dir",
            &data,
        ],
        &["proxy", "--listen", "127.0.0.1:0", "--nodes", "127.0.0.1:1"],
        &["admin", "status", "--node", "127.0.0.1:1"],
    ];
    for args in runs {
        let (ok, out, err) = run_rampart(args, ADMIN_TIMEOUT);
        assert!(!ok, "rampart {args:?} started: {out}");
        assert!(
            err.contains("--cluster-tls-ca-file") && err.contains("--insecure"),
            "rampart {args:?}: {err}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "the node opened its data before refusing"
    );
    // Half a set is refused too.
    let (ok, _, err) = run_rampart(
        &[
            "proxy",
            "--nodes",
            "127.0.0.1:1",
            "--cluster-tls-ca-file",
            "/x",
        ],
        ADMIN_TIMEOUT,
    );
    assert!(
        !ok && err.contains("--cluster-tls-cert-file is missing"),
        "{err}"
    );
}
