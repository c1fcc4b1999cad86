//! `rampart dev`: one command starts three nodes and a proxy, prints a line
//! containing `ready` once the proxy answers, and stops everything on
//! SIGTERM.

mod common;

use common::{connect, wait_for};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[test]
fn dev_starts_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy_port = common::free_ports(1)[0];
    let base = common::free_dev_base_port();
    let data_dir = dir.path().join("data");
    let mut cmd = common::rampart_command();
    cmd.arg("dev")
        .args(["--proxy-port", &proxy_port.to_string()])
        .args(["--base-port", &base.to_string()])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--fresh")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = common::spawn_tied(cmd);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[rampart dev] {line}");
            let _ = tx.send(line);
        }
    });

    // "ready" within a bounded time.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut mutual_tls = false;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("ready") => break,
            Ok(line) => mutual_tls |= line.contains("cluster links: mutual TLS"),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rampart dev printed no `ready` line within 90 s ({e})");
            }
        }
    }

    // The local cluster runs mutual TLS by default, with certificates it
    // made itself; clients still talk plaintext RESP to the proxy.
    assert!(mutual_tls, "rampart dev did not report mutual TLS");
    assert!(data_dir.join("certs").join("ca.pem").exists());
    let addr = format!("127.0.0.1:{proxy_port}");
    let mut c = connect(&addr, None);
    common::check(&mut c, &["PING"], "+PONG");
    common::check(&mut c, &["SET", "dev:k", "v"], "+OK");
    common::check(&mut c, &["GET", "dev:k"], "\"v\"");
    drop(c);

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    let status = wait_for(
        "rampart dev to exit after SIGTERM",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match child.try_wait() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    let _ = reader.join();
    eprintln!("[rampart dev] exited with {status}");
    // Everything it started is gone: the proxy and node ports are free again.
    wait_for(
        "the proxy and node ports to be released",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            for port in [proxy_port, base + 1, base + 2, base + 3] {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Err(format!("port {port} still accepts connections"));
                }
            }
            Ok(())
        },
    );
}
