//! Writes too large to replicate are refused before they are proposed
//! (`rampart_proto::limits`): a clear error for that command, the commands
//! pipelined with it still run, the connection stays usable, and a write
//! just under the limit is replicated and committed.

mod common;

use common::{resp_command_bytes, Cluster, RawConn};
use rampart_proto::limits::{replicated_size, MAX_REPLICATED_BYTES};

/// A `SET key value` of exactly `size` replicated bytes.
fn set_of_size(key: &[u8], size: usize) -> Vec<Vec<u8>> {
    let overhead = replicated_size(&vec![vec![b"SET".to_vec(), key.to_vec(), Vec::new()]]);
    vec![b"SET".to_vec(), key.to_vec(), vec![b'v'; size - overhead]]
}

fn send(conn: &mut RawConn, argv: &[Vec<u8>]) {
    let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    conn.send(&resp_command_bytes(&args)).expect("send");
}

#[test]
fn a_write_over_the_replication_limit_is_refused_and_others_go_on() {
    let cluster = Cluster::start();
    let mut conn = RawConn::connect(cluster.proxy_addr()).expect("connect");

    // One pipeline: a small write, one just over the limit, a small write.
    let over = set_of_size(b"big", MAX_REPLICATED_BYTES + 1);
    send(&mut conn, &[b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()]);
    send(&mut conn, &over);
    send(&mut conn, &[b"SET".to_vec(), b"b".to_vec(), b"2".to_vec()]);
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    let refused = String::from_utf8_lossy(&conn.read_reply().expect("reply")).to_string();
    assert_eq!(
        refused,
        format!(
            "-ERR request of {} bytes exceeds the replication limit of {MAX_REPLICATED_BYTES} bytes\r\n",
            MAX_REPLICATED_BYTES + 1
        )
    );
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    assert_eq!(conn.cmd(&["EXISTS", "big"]), b":0\r\n");
    assert_eq!(
        conn.cmd(&["MGET", "a", "b"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    );

    // Inside MULTI it aborts the transaction, as a queueing error does.
    assert_eq!(conn.cmd(&["MULTI"]), b"+OK\r\n");
    send(&mut conn, &over);
    assert!(conn
        .read_reply()
        .expect("reply")
        .starts_with(b"-ERR request of "));
    assert!(conn.cmd(&["EXEC"]).starts_with(b"-EXECABORT"));

    // Just under the limit: committed, replicated, readable.
    let under = set_of_size(b"fits", MAX_REPLICATED_BYTES);
    let len = under[2].len();
    send(&mut conn, &under);
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    assert_eq!(
        conn.cmd(&["STRLEN", "fits"]),
        format!(":{len}\r\n").into_bytes()
    );
    // Replication did not stall behind it.
    assert_eq!(conn.cmd(&["SET", "after", "x"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&["GET", "after"]), b"$1\r\nx\r\n");
}
