//! TLS between Redis clients and the proxy (`--tls-port`, docs/security.md
//! "Client TLS"), with the clients users run: `redis-cli --tls` and
//! redis-py (`ssl=True`). Certificates are made per test with rcgen.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_ports, rampart_command, shared_target, spawn_tied, wait_for, RawConn};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

const STARTUP: Duration = Duration::from_secs(45);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Certificates.

/// A throwaway CA that signs server and client certificates into `dir`.
struct Ca {
    name: String,
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str, dir: &Path) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Rampart test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA");
        std::fs::write(dir.join(format!("ca-{name}.crt")), cert.pem()).expect("write CA");
        Ca {
            name: name.to_string(),
            cert,
            key,
        }
    }

    fn ca_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("ca-{}.crt", self.name))
    }

    /// Writes `<stem>.crt` and `<stem>.key` signed by this CA; returns them.
    fn issue(&self, dir: &Path, stem: &str, usage: ExtendedKeyUsagePurpose) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{stem} ({})", self.name));
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        let (crt, pem_key) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&crt, cert.pem()).expect("write cert");
        std::fs::write(&pem_key, key.serialize_pem()).expect("write key");
        (crt, pem_key)
    }

    fn server(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        self.issue(dir, stem, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        self.issue(dir, stem, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

// ---------------------------------------------------------------------------
// A proxy with a TLS listener, in front of the shared cluster.

struct TlsProxy {
    child: Child,
    /// Plaintext port (`None`: turned off).
    plain: Option<u16>,
    tls: u16,
    log: PathBuf,
}

impl TlsProxy {
    /// `rampart proxy --tls-port ... <args>`; `plaintext: false` passes
    /// `--listen 127.0.0.1:0`. `None` when the tests run against a plain
    /// Redis (no proxy to configure).
    fn start(dir: &Path, plaintext: bool, args: &[&str]) -> Option<TlsProxy> {
        let cluster = shared_target().cluster.as_ref()?;
        let ports = free_ports(2);
        let plain = plaintext.then_some(ports[0]);
        let tls = ports[1];
        let nodes: Vec<String> = (1..=3).map(|id| cluster.client_addr(id)).collect();
        let log = dir.join(format!("proxy-{tls}.log"));
        let mut cmd = rampart_command();
        cmd.arg("proxy")
            .args(["--listen", &format!("127.0.0.1:{}", plain.unwrap_or(0))])
            .args(["--tls-port", &tls.to_string()])
            .args(["--nodes", &nodes.join(",")])
            .args(cluster.proxy_tls_args())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let mut proxy = TlsProxy {
            child: spawn_tied(cmd),
            plain,
            tls,
            log,
        };
        wait_for(
            "the TLS proxy to log its listeners",
            STARTUP,
            Duration::from_millis(100),
            || {
                if let Ok(Some(status)) = proxy.child.try_wait() {
                    panic!("proxy exited with {status}:\n{}", proxy.log());
                }
                let log = proxy.log();
                if log.contains(&format!(
                    "proxy listening for TLS clients on 127.0.0.1:{tls}"
                )) {
                    Ok(())
                } else {
                    Err(log)
                }
            },
        );
        // Ready once a command reaches the nodes (the first connection may
        // race the leader lookup).
        if let Some(port) = plain {
            wait_for(
                "the TLS proxy's plaintext port to answer",
                STARTUP,
                Duration::from_millis(100),
                || {
                    let mut c = RawConn::connect(&format!("127.0.0.1:{port}"))
                        .map_err(|e| e.to_string())?;
                    match c.cmd(&["PING"]).as_slice() {
                        b"+PONG\r\n" => Ok(()),
                        other => Err(String::from_utf8_lossy(other).into_owned()),
                    }
                },
            );
        }
        Some(proxy)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sighup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    }

    /// Waits until `needle` appears in the log `count` times.
    fn wait_log(&self, needle: &str, count: usize) {
        wait_for(
            &format!("{needle:?} x{count} in the proxy log"),
            CLIENT_TIMEOUT,
            Duration::from_millis(50),
            || {
                let log = self.log();
                if log.matches(needle).count() >= count {
                    Ok(())
                } else {
                    Err(log)
                }
            },
        );
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("----- TLS proxy log -----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Clients.

/// Runs `cmd` to completion within [`CLIENT_TIMEOUT`]; stdout and stderr
/// together (a hung client is killed and reported).
fn run(mut cmd: Command) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut hung = false;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            hung = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    if hung {
        format!("(killed after {CLIENT_TIMEOUT:?}) {text}")
    } else {
        text
    }
}

/// `redis-cli --tls --cacert CA [--cert C --key K] -p PORT ARGS...`.
fn redis_cli(port: u16, ca: &Path, cert: Option<&(PathBuf, PathBuf)>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((crt, key)) = cert {
        cmd.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    cmd.args(args);
    run(cmd)
}

/// A redis-py client on one connection, driven line by line from the test:
/// each line written is one command, each line read its reply (`repr`) or
/// `ERR <exception>`.
struct RedisPy {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const REDIS_PY: &str = r#"
import sys, redis
port, ca = int(sys.argv[1]), sys.argv[2]
cert = sys.argv[3] if len(sys.argv) > 3 else None
key = sys.argv[4] if len(sys.argv) > 4 else None
try:
    # single_connection_client connects (and handshakes) right here.
    r = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca,
                    ssl_certfile=cert, ssl_keyfile=key, single_connection_client=True,
                    socket_timeout=15)
except Exception as e:
    print("ERR", type(e).__name__, str(e).replace("\n", " "), flush=True)
    sys.exit(0)
print("ready", flush=True)
for line in sys.stdin:
    try:
        reply = r.execute_command(*line.split())
        print(repr(reply), flush=True)
    except Exception as e:
        print("ERR", type(e).__name__, str(e).replace("\n", " "), flush=True)
"#;

impl RedisPy {
    /// Connects; panics unless the connection is up.
    fn connect(port: u16, ca: &Path, cert: Option<&(PathBuf, PathBuf)>) -> RedisPy {
        let (py, hello) = RedisPy::spawn(port, ca, cert);
        assert_eq!(hello, "ready", "redis-py did not connect");
        py
    }

    /// Starts the client; returns it and its first line: `ready`, or `ERR
    /// ...` when connecting failed (redis-py missing shows as an empty line).
    fn spawn(port: u16, ca: &Path, cert: Option<&(PathBuf, PathBuf)>) -> (RedisPy, String) {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", REDIS_PY, &port.to_string()]).arg(ca);
        if let Some((crt, key)) = cert {
            cmd.arg(crt).arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 (with redis-py: ./dev.sh test installs it)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut py = RedisPy {
            child,
            stdin,
            stdout,
        };
        let hello = py.line();
        (py, hello)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from python");
        line.trim_end().to_string()
    }

    fn cmd(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("write to python");
        self.stdin.flush().expect("flush");
        self.line()
    }
}

impl Drop for RedisPy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pem_args(server: &(PathBuf, PathBuf), ca: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "--tls-cert-file".to_string(),
        server.0.display().to_string(),
        "--tls-key-file".to_string(),
        server.1.display().to_string(),
    ];
    if let Some(ca) = ca {
        args.push("--tls-ca-cert-file".into());
        args.push(ca.display().to_string());
    }
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn tls_clients_set_and_get_with_redis_cli_and_redis_py() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new("a", d);
    let server = ca.server(d, "server");
    let client = ca.client(d, "client");
    let mut args = pem_args(&server, Some(&ca.ca_file(d)));
    args.extend(["--tls-auth-clients".into(), "yes".into()]);
    let Some(proxy) = TlsProxy::start(d, true, &strs(&args)) else {
        return;
    };
    let ca_file = ca.ca_file(d);
    let set = redis_cli(
        proxy.tls,
        &ca_file,
        Some(&client),
        &["SET", "tls:greeting", "hello over tls"],
    );
    assert_eq!(set.trim(), "OK", "{set}");
    let get = redis_cli(proxy.tls, &ca_file, Some(&client), &["GET", "tls:greeting"]);
    assert_eq!(get.trim(), "hello over tls", "{get}");

    let mut py = RedisPy::connect(proxy.tls, &ca_file, Some(&client));
    assert_eq!(py.cmd("GET tls:greeting"), "b'hello over tls'");
    assert_eq!(py.cmd("SET tls:py 42"), "True");
    assert_eq!(py.cmd("INCR tls:py"), "43");

    // The plaintext port of the same proxy serves the same data.
    let mut plain = RawConn::connect(&format!("127.0.0.1:{}", proxy.plain.expect("plain")))
        .expect("plaintext connect");
    assert_eq!(plain.cmd(&["GET", "tls:py"]), b"$2\r\n43\r\n");
    // Both listeners register their clients in the same table.
    let list = String::from_utf8_lossy(&plain.cmd(&["CLIENT", "LIST"])).into_owned();
    assert!(
        list.contains(&format!("laddr=127.0.0.1:{}", proxy.tls)),
        "{list}"
    );
}

#[test]
fn auth_clients_yes_refuses_no_certificate_and_another_cas_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new("a", d);
    let other = Ca::new("other", d);
    let server = ca.server(d, "server");
    let good = ca.client(d, "good");
    let foreign = other.client(d, "foreign");
    // yes is the default, as in Redis.
    let args = pem_args(&server, Some(&ca.ca_file(d)));
    let Some(proxy) = TlsProxy::start(d, true, &strs(&args)) else {
        return;
    };
    let ca_file = ca.ca_file(d);
    let ok = redis_cli(proxy.tls, &ca_file, Some(&good), &["PING"]);
    assert_eq!(ok.trim(), "PONG", "{ok}");
    let none = redis_cli(proxy.tls, &ca_file, None, &["PING"]);
    assert!(!none.contains("PONG"), "no client certificate: {none}");
    let wrong = redis_cli(proxy.tls, &ca_file, Some(&foreign), &["PING"]);
    assert!(!wrong.contains("PONG"), "another CA's certificate: {wrong}");
    // redis-py likewise.
    let (_, refused) = RedisPy::spawn(proxy.tls, &ca_file, None);
    assert!(
        refused.starts_with("ERR") && refused.contains("CERTIFICATE_REQUIRED"),
        "redis-py without a certificate: {refused}"
    );
    let mut py = RedisPy::connect(proxy.tls, &ca_file, Some(&good));
    assert_eq!(py.cmd("PING"), "True");
}

#[test]
fn auth_clients_optional_accepts_with_and_without_a_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new("a", d);
    let other = Ca::new("other", d);
    let server = ca.server(d, "server");
    let good = ca.client(d, "good");
    let foreign = other.client(d, "foreign");
    let mut args = pem_args(&server, Some(&ca.ca_file(d)));
    args.extend(["--tls-auth-clients".into(), "optional".into()]);
    let Some(proxy) = TlsProxy::start(d, true, &strs(&args)) else {
        return;
    };
    let ca_file = ca.ca_file(d);
    for cert in [Some(&good), None] {
        let pong = redis_cli(proxy.tls, &ca_file, cert, &["PING"]);
        assert_eq!(pong.trim(), "PONG", "certificate {cert:?}: {pong}");
    }
    let mut py = RedisPy::connect(proxy.tls, &ca_file, None);
    assert_eq!(py.cmd("PING"), "True");
    // A certificate that is presented is still verified.
    let wrong = redis_cli(proxy.tls, &ca_file, Some(&foreign), &["PING"]);
    assert!(!wrong.contains("PONG"), "another CA's certificate: {wrong}");
}

#[test]
fn plaintext_listener_off_serves_tls_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new("a", d);
    let server = ca.server(d, "server");
    let mut args = pem_args(&server, None);
    args.extend(["--tls-auth-clients".into(), "no".into()]);
    let Some(proxy) = TlsProxy::start(d, false, &strs(&args)) else {
        return;
    };
    let ca_file = ca.ca_file(d);
    wait_for(
        "a TLS PING through the TLS-only proxy",
        STARTUP,
        Duration::from_millis(200),
        || {
            let pong = redis_cli(proxy.tls, &ca_file, None, &["PING"]);
            if pong.trim() == "PONG" {
                Ok(())
            } else {
                Err(pong)
            }
        },
    );
    // No plaintext listener was started...
    let log = proxy.log();
    assert!(!log.contains("proxy listening on "), "{log}");
    // ...and a plaintext client on the TLS port gets no reply.
    let mut raw = RawConn::connect(&format!("127.0.0.1:{}", proxy.tls)).expect("connect");
    raw.send(&common::resp_command(&["PING"])).expect("send");
    let got = raw.read_to_eof(CLIENT_TIMEOUT);
    assert!(
        !matches!(&got, Ok(bytes) if bytes.windows(4).any(|w| w == b"PONG")),
        "{got:?}"
    );
}

#[test]
fn per_ip_cap_applies_before_the_tls_handshake() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new("a", d);
    let server = ca.server(d, "server");
    let mut args = pem_args(&server, None);
    args.extend([
        "--tls-auth-clients".into(),
        "no".into(),
        "--per-ip-max-connections".into(),
        "2".into(),
    ]);
    let Some(proxy) = TlsProxy::start(d, true, &strs(&args)) else {
        return;
    };
    let tls_addr = format!("127.0.0.1:{}", proxy.tls);
    // Two connections from 127.0.0.41 that never start their handshake
    // hold that IP's two slots...
    let idle: Vec<RawConn> = (0..2)
        .map(|_| RawConn::connect_from("127.0.0.41", &tls_addr).expect("connect"))
        .collect();
    // ...so a third is refused at accept time, before any TLS: the error
    // text arrives in plaintext.
    wait_for(
        "the third connection from 127.0.0.41 to be refused",
        CLIENT_TIMEOUT,
        Duration::from_millis(100),
        || {
            let mut third =
                RawConn::connect_from("127.0.0.41", &tls_addr).map_err(|e| e.to_string())?;
            let got = third.read_to_eof(CLIENT_TIMEOUT)?;
            if got.starts_with(b"-ERR max connections per client exceeded") {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&got).into_owned())
            }
        },
    );
    // Other clients still get TLS.
    let pong = redis_cli(proxy.tls, &ca.ca_file(d), None, &["PING"]);
    assert_eq!(pong.trim(), "PONG", "{pong}");
    drop(idle);
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let first = Ca::new("first", d);
    let second = Ca::new("second", d);
    // The proxy serves server.crt/server.key; the test rewrites them.
    let live = first.server(d, "server");
    let next = second.server(d, "next");
    let mut args = pem_args(&live, None);
    args.extend(["--tls-auth-clients".into(), "no".into()]);
    let Some(proxy) = TlsProxy::start(d, true, &strs(&args)) else {
        return;
    };
    let (first_ca, second_ca) = (first.ca_file(d), second.ca_file(d));
    let pong = redis_cli(proxy.tls, &first_ca, None, &["PING"]);
    assert_eq!(pong.trim(), "PONG", "{pong}");
    // A connection opened before the reload (redis-py, one connection).
    let mut before = RedisPy::connect(proxy.tls, &first_ca, None);
    assert_eq!(before.cmd("SET tls:reload before"), "True");
    let id = before.cmd("CLIENT ID");

    std::fs::copy(&next.0, &live.0).expect("new cert");
    std::fs::copy(&next.1, &live.1).expect("new key");
    proxy.sighup();
    proxy.wait_log("client TLS certificates reloaded", 1);
    // New connections get the new certificate: only the second CA accepts it.
    let pong = redis_cli(proxy.tls, &second_ca, None, &["PING"]);
    assert_eq!(pong.trim(), "PONG", "{pong}");
    let refused = redis_cli(proxy.tls, &first_ca, None, &["PING"]);
    assert!(
        !refused.contains("PONG"),
        "old CA still accepted: {refused}"
    );
    // The old connection is the same one and still works.
    assert_eq!(before.cmd("CLIENT ID"), id);
    assert_eq!(before.cmd("GET tls:reload"), "b'before'");

    // A broken certificate file on reload keeps the running one.
    std::fs::write(&live.0, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("break cert");
    proxy.sighup();
    proxy.wait_log("client TLS reload failed", 1);
    let pong = redis_cli(proxy.tls, &second_ca, None, &["PING"]);
    assert_eq!(pong.trim(), "PONG", "{pong}");
    assert_eq!(before.cmd("GET tls:reload"), "b'before'");
    let mut after = RedisPy::connect(proxy.tls, &second_ca, None);
    assert_eq!(after.cmd("GET tls:reload"), "b'before'");
}
