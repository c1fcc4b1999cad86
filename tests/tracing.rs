//! OpenTelemetry traces end to end: an OTLP/gRPC trace collector runs in this
//! test process, a cluster's nodes and proxy export to it, and commands sent
//! with a real Redis client must show up as one trace per command:
//!
//! ```text
//! proxy.command "SET"            rampart-proxy, kind server
//! └ grpc.client Kv/Execute       rampart-proxy, kind client
//!   └ grpc.server Kv/Execute     rampart-node,  kind server (remote parent)
//!     └ kv.execute
//!       └ raft.propose           (writes) | raft.read_index + kv.read (reads)
//! ```

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_ports, rampart_command, spawn_tied, wait_for, Cluster, ClusterOptions, RawConn};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;

/// One exported span with the `service.name` of the process that sent it.
#[derive(Clone, Debug)]
struct Collected {
    service: String,
    span: Span,
}

impl Collected {
    fn attr(&self, key: &str) -> Option<&Value> {
        attr(&self.span.attributes, key)
    }

    fn str_attr(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    fn is_error(&self) -> bool {
        self.span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32)
    }
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The OTLP trace service: keeps every span it receives.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Collected>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| match attr(&r.attributes, "service.name") {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Collected {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the collector on 127.0.0.1:<free port> on `runtime`.
fn start_collector(runtime: &tokio::runtime::Runtime, collector: Collector) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the collector");
    let addr = listener.local_addr().expect("collector address");
    runtime.spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from_listener(listener, true, None)
            .expect("collector incoming");
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming(incoming)
            .await
            .expect("collector server");
    });
    format!("http://{addr}")
}

/// The spans of one command's trace, as the test checks them.
struct Chain<'a> {
    proxy: &'a Collected,
    server: &'a Collected,
    execute: &'a Collected,
    children: Vec<&'a Collected>,
}

/// Finds the trace rooted at a proxy span named `command` whose gRPC chain
/// reached the node that executed it (a first attempt may have gone to a
/// follower and been redirected: that is a second client span).
fn find_chain<'a>(spans: &'a [Collected], command: &str) -> Result<Chain<'a>, String> {
    let by_id: HashMap<&[u8], &Collected> = spans
        .iter()
        .map(|c| (c.span.span_id.as_slice(), c))
        .collect();
    let children = |parent: &Collected| -> Vec<&'a Collected> {
        spans
            .iter()
            .filter(|c| {
                c.span.trace_id == parent.span.trace_id
                    && c.span.parent_span_id == parent.span.span_id
            })
            .collect()
    };
    let proxies: Vec<&Collected> = spans
        .iter()
        .filter(|c| c.span.name == command && c.service == "rampart-proxy")
        .collect();
    if proxies.is_empty() {
        let names: Vec<String> = spans
            .iter()
            .map(|c| format!("{}:{}", c.service, c.span.name))
            .collect();
        return Err(format!("no proxy span {command:?} yet; have {names:?}"));
    }
    for proxy in proxies {
        if !proxy.span.parent_span_id.is_empty() {
            return Err(format!("proxy span {command} is not a root: {proxy:?}"));
        }
        for client in children(proxy) {
            if client.span.name != "rampart.v1.Kv/Execute" {
                continue;
            }
            for server in children(client) {
                if server.span.name != "rampart.v1.Kv/Execute" {
                    continue;
                }
                for execute in children(server) {
                    if execute.span.name == "kv.execute"
                        && execute.str_attr("rampart.outcome") == Some("replies")
                    {
                        // Sanity: every link points at a span we hold.
                        for c in [client, server, execute] {
                            assert!(by_id.contains_key(c.span.parent_span_id.as_slice()));
                        }
                        return Ok(Chain {
                            proxy,
                            server,
                            execute,
                            children: children(execute),
                        });
                    }
                }
            }
        }
    }
    Err(format!(
        "no complete chain for {command} yet ({} spans collected)",
        spans.len()
    ))
}

#[test]
fn one_trace_holds_proxy_grpc_and_node_spans_with_parent_links() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("collector runtime");
    let collector = Collector::default();
    let endpoint = start_collector(&runtime, collector.clone());
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let cluster = Cluster::start_with(ClusterOptions {
        env,
        ..Default::default()
    });

    let mut con = cluster.connection();
    let _: () = redis::cmd("SET")
        .arg("trace:key")
        .arg("value")
        .query(&mut con)
        .expect("SET");
    let got: String = redis::cmd("GET")
        .arg("trace:key")
        .query(&mut con)
        .expect("GET");
    assert_eq!(got, "value");
    let err = redis::cmd("INCR")
        .arg("trace:key")
        .query::<i64>(&mut con)
        .expect_err("INCR of a non-integer fails");
    assert!(err.to_string().contains("not an integer"), "{err}");

    let snapshot = || {
        collector
            .spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    };
    // SET: proxy → gRPC client → node server → kv.execute → raft.propose.
    let spans = wait_for(
        "the SET trace at the collector",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let spans = snapshot();
            find_chain(&spans, "SET")?;
            find_chain(&spans, "GET")?;
            find_chain(&spans, "INCR")?;
            Ok(spans)
        },
    );

    let set = find_chain(&spans, "SET").expect("SET chain");
    assert_eq!(set.proxy.span.kind, SpanKind::Server as i32);
    assert_eq!(set.proxy.str_attr("db.operation.name"), Some("SET"));
    assert_eq!(set.proxy.str_attr("rampart.class"), Some("cheap"));
    assert_eq!(set.proxy.str_attr("rampart.admission"), Some("admitted"));
    assert!(
        matches!(set.proxy.attr("rampart.admission.wait_ms"), Some(Value::DoubleValue(ms)) if *ms >= 0.0),
        "{:?}",
        set.proxy.span.attributes
    );
    assert!(!set.proxy.is_error());
    assert_eq!(set.server.service, "rampart-node");
    assert_eq!(set.server.span.kind, SpanKind::Server as i32);
    assert_eq!(set.execute.service, "rampart-node");
    assert!(
        matches!(
            set.execute.attr("rampart.node.id"),
            Some(Value::IntValue(1..=3))
        ),
        "{:?}",
        set.execute.span.attributes
    );
    let propose: Vec<_> = set
        .children
        .iter()
        .filter(|c| c.span.name == "raft.propose")
        .collect();
    assert_eq!(propose.len(), 1, "one write run: {:?}", set.children);

    // The gRPC client span belongs to the proxy process, kind client.
    let client = spans
        .iter()
        .find(|c| c.span.span_id == set.server.span.parent_span_id)
        .expect("client span");
    assert_eq!(client.service, "rampart-proxy");
    assert_eq!(client.span.kind, SpanKind::Client as i32);
    assert_eq!(client.span.parent_span_id, set.proxy.span.span_id);
    assert_eq!(client.span.trace_id, set.proxy.span.trace_id);
    assert_eq!(client.str_attr("rampart.outcome"), Some("replies"));

    // GET: the read waits for ReadIndex, then reads.
    let get = find_chain(&spans, "GET").expect("GET chain");
    let names: Vec<&str> = get.children.iter().map(|c| c.span.name.as_str()).collect();
    assert!(names.contains(&"raft.read_index"), "{names:?}");
    assert!(names.contains(&"kv.read"), "{names:?}");
    assert_ne!(get.proxy.span.trace_id, set.proxy.span.trace_id);

    // An error reply marks the command's span as failed.
    let incr = find_chain(&spans, "INCR").expect("INCR chain");
    assert!(incr.proxy.is_error(), "{:?}", incr.proxy.span.status);
    assert!(
        incr.proxy
            .span
            .status
            .as_ref()
            .is_some_and(|s| s.message.contains("not an integer")),
        "{:?}",
        incr.proxy.span.status
    );

    // Only Kv calls are traced on the node: no Raft or Admin spans (the
    // harness's `admin status` polls go through the same server).
    assert!(
        spans
            .iter()
            .all(|c| !c.span.name.contains("RaftTransport") && !c.span.name.contains("Admin")),
        "{:?}",
        spans.iter().map(|c| &c.span.name).collect::<Vec<_>>()
    );

    // A graceful stop exports what is still buffered: a proxy whose batch
    // exporter would wait ten minutes still delivers its span on SIGTERM.
    let exiting = "rampart-proxy-exit";
    stop_proxy_after_one_command(&cluster, &endpoint, exiting);
    wait_for(
        "the stopped proxy's SET span at the collector",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let spans = snapshot();
            spans
                .iter()
                .find(|c| c.service == exiting && c.span.name == "SET")
                .map(|_| ())
                .ok_or_else(|| format!("{} spans, none from {exiting}", spans.len()))
        },
    );
    drop(cluster);
    runtime.shutdown_background();
}

/// Starts one more proxy exporting as `service` with a very long export
/// delay, sends it one SET, stops it with SIGTERM and waits for it to exit.
fn stop_proxy_after_one_command(cluster: &Cluster, endpoint: &str, service: &str) {
    let addr = format!("127.0.0.1:{}", free_ports(1)[0]);
    let nodes: Vec<String> = (1..=3).map(|id| cluster.client_addr(id)).collect();
    let log = |name: &str| std::fs::File::create(cluster.dir().join(name)).expect("proxy log file");
    let mut cmd = rampart_command();
    cmd.arg("proxy")
        .args(["--listen", &addr])
        .args(["--nodes", &nodes.join(",")])
        .args(cluster.proxy_tls_args())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("OTEL_SERVICE_NAME", service)
        .stdin(std::process::Stdio::null())
        .stdout(log("exit-proxy.stdout.log"))
        .stderr(log("exit-proxy.stderr.log"));
    let mut child = spawn_tied(cmd);
    let mut con = wait_for(
        "the extra proxy to answer PING",
        common::STARTUP_TIMEOUT,
        Duration::from_millis(100),
        || {
            let mut con = RawConn::connect(&addr).map_err(|e| e.to_string())?;
            match con.cmd(&["PING"]).as_slice() {
                b"+PONG\r\n" => Ok(con),
                other => Err(String::from_utf8_lossy(other).into_owned()),
            }
        },
    );
    assert_eq!(con.cmd(&["SET", "trace:exit", "1"]), b"+OK\r\n");
    drop(con);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM the proxy");
    let status = wait_for(
        "the extra proxy to exit after SIGTERM",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    assert!(status.success(), "proxy exited with {status}");
}
