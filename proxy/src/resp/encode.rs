//! Reply encoding: [`Reply`] to RESP2 or RESP3 bytes through `redis_protocol`
//! frames. The node never knows which protocol a client speaks; the
//! downgrades to RESP2 happen here, as Redis does them.

use bytes::{Bytes, BytesMut};
use rampart_proto::pb::reply::Kind;
use rampart_proto::reply::{format_double, format_human_double, one_line};
use rampart_proto::Reply;
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::{
    BytesFrame as Frame3, FrameMap, FrameSet, VerbatimStringFormat,
};

use super::Protocol;

/// Appends the encoding of `reply` to `out`.
pub fn encode_reply(out: &mut BytesMut, reply: &Reply, protocol: Protocol) {
    if let Some(Kind::Resp(encoded)) = &reply.kind {
        // Encoded by the node, the same in both protocols.
        out.extend_from_slice(encoded);
        return;
    }
    match protocol {
        Protocol::Resp2 => encode_resp2(out, reply),
        Protocol::Resp3 if holds_unhashable_set(reply) => encode_resp3_by_hand(out, reply),
        Protocol::Resp3 => {
            let frame = to_resp3(reply);
            if redis_protocol::resp3::encode::complete::extend_encode(out, &frame, false).is_err() {
                // Only reachable for frames the library considers malformed
                // (none of ours); never leave the client without a reply.
                out.extend_from_slice(b"-ERR reply encoding failed\r\n");
            }
        }
    }
}

/// The whole reply as bytes (tests and one-off writes).
pub fn encode_to_vec(reply: &Reply, protocol: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_reply(&mut out, reply, protocol);
    out.to_vec()
}

/// The members of an aggregate reply; none for a scalar.
fn members(reply: &Reply) -> &[Reply] {
    match &reply.kind {
        Some(
            Kind::Array(list)
            | Kind::Map(list)
            | Kind::Set(list)
            | Kind::Pairs(list)
            | Kind::Keyed(list),
        ) => &list.items,
        _ => &[],
    }
}

fn is_aggregate(reply: &Reply) -> bool {
    matches!(
        reply.kind,
        Some(Kind::Array(_) | Kind::Map(_) | Kind::Set(_) | Kind::Pairs(_) | Kind::Keyed(_))
    )
}

/// Whether `reply` holds a set with an aggregate member (COMMAND INFO's key
/// specs: a set of maps). `redis_protocol` keeps a set's members in a hash
/// set and panics hashing an aggregate, so such replies are written here.
fn holds_unhashable_set(reply: &Reply) -> bool {
    let set_of_aggregates =
        matches!(reply.kind, Some(Kind::Set(_))) && members(reply).iter().any(is_aggregate);
    set_of_aggregates || members(reply).iter().any(holds_unhashable_set)
}

/// RESP3 aggregates written by hand (the same shapes as [`to_resp3`]),
/// scalars through `redis_protocol`.
fn encode_resp3_by_hand(out: &mut BytesMut, reply: &Reply) {
    let header = |out: &mut BytesMut, kind: char, len: usize| {
        out.extend_from_slice(format!("{kind}{len}\r\n").as_bytes());
    };
    match &reply.kind {
        Some(Kind::Array(list)) => {
            header(out, '*', list.items.len());
            list.items.iter().for_each(|i| encode_resp3_by_hand(out, i));
        }
        Some(Kind::Set(list)) => {
            header(out, '~', list.items.len());
            list.items.iter().for_each(|i| encode_resp3_by_hand(out, i));
        }
        Some(Kind::Map(list) | Kind::Keyed(list)) => {
            header(out, '%', list.items.len() / 2);
            for pair in list.items.chunks_exact(2) {
                pair.iter().for_each(|i| encode_resp3_by_hand(out, i));
            }
        }
        Some(Kind::Pairs(list)) => {
            header(out, '*', list.items.len().div_ceil(2));
            for pair in list.items.chunks(2) {
                header(out, '*', pair.len());
                pair.iter().for_each(|i| encode_resp3_by_hand(out, i));
            }
        }
        _ => {
            if redis_protocol::resp3::encode::complete::extend_encode(out, &to_resp3(reply), false)
                .is_err()
            {
                out.extend_from_slice(b"-ERR reply encoding failed\r\n");
            }
        }
    }
}

fn encode_resp2(out: &mut BytesMut, reply: &Reply) {
    // redis_protocol's RESP2 frames have a single null (`$-1`), so a null
    // array (`*-1`), and any aggregate holding one, is written here.
    match &reply.kind {
        Some(Kind::NullArray(_)) => out.extend_from_slice(b"*-1\r\n"),
        Some(Kind::Keyed(list)) if list.items.iter().any(contains_null_array) => {
            out.extend_from_slice(format!("*{}\r\n", list.items.len() / 2).as_bytes());
            for pair in list.items.chunks(2) {
                out.extend_from_slice(format!("*{}\r\n", pair.len()).as_bytes());
                for item in pair {
                    encode_resp2(out, item);
                }
            }
        }
        Some(Kind::Array(list) | Kind::Map(list) | Kind::Set(list) | Kind::Pairs(list))
            if list.items.iter().any(contains_null_array) =>
        {
            out.extend_from_slice(format!("*{}\r\n", list.items.len()).as_bytes());
            for item in &list.items {
                encode_resp2(out, item);
            }
        }
        _ => {
            let frame = to_resp2(reply);
            if redis_protocol::resp2::encode::extend_encode(out, &frame, false).is_err() {
                out.extend_from_slice(b"-ERR reply encoding failed\r\n");
            }
        }
    }
}

fn contains_null_array(reply: &Reply) -> bool {
    matches!(reply.kind, Some(Kind::NullArray(_))) || members(reply).iter().any(contains_null_array)
}

fn to_resp2(reply: &Reply) -> Frame2 {
    match &reply.kind {
        Some(Kind::Status(s)) => Frame2::SimpleString(Bytes::from(one_line(s))),
        Some(Kind::Error(e)) => Frame2::Error(one_line(e).into()),
        Some(Kind::Integer(i)) => Frame2::Integer(*i),
        Some(Kind::Bulk(b)) => Frame2::BulkString(Bytes::copy_from_slice(b)),
        Some(Kind::Null(_)) | Some(Kind::NullArray(_)) | None => Frame2::Null,
        Some(Kind::Array(list) | Kind::Map(list) | Kind::Set(list) | Kind::Pairs(list)) => {
            Frame2::Array(list.items.iter().map(to_resp2).collect())
        }
        Some(Kind::Keyed(list)) => Frame2::Array(
            list.items
                .chunks(2)
                .map(|pair| Frame2::Array(pair.iter().map(to_resp2).collect()))
                .collect(),
        ),
        Some(Kind::Double(d)) => Frame2::BulkString(Bytes::from(format_double(*d))),
        Some(Kind::HumanDouble(d)) => Frame2::BulkString(Bytes::from(format_human_double(*d))),
        Some(Kind::Boolean(b)) => Frame2::Integer(i64::from(*b)),
        Some(Kind::Verbatim(v)) => Frame2::BulkString(Bytes::copy_from_slice(&v.text)),
        Some(Kind::Resp(_)) => Frame2::Error(NESTED_ENCODED.into()),
    }
}

/// Nodes encode only whole top-level replies ([`encode_reply`] writes
/// those); one nested in another reply would be a node bug.
const NESTED_ENCODED: &str = "ERR internal error: nested encoded reply";

fn to_resp3(reply: &Reply) -> Frame3 {
    match &reply.kind {
        Some(Kind::Status(s)) => Frame3::SimpleString {
            data: Bytes::from(one_line(s)),
            attributes: None,
        },
        Some(Kind::Error(e)) => Frame3::SimpleError {
            data: one_line(e).into(),
            attributes: None,
        },
        Some(Kind::Integer(i)) => Frame3::Number {
            data: *i,
            attributes: None,
        },
        Some(Kind::Bulk(b)) => Frame3::BlobString {
            data: Bytes::copy_from_slice(b),
            attributes: None,
        },
        Some(Kind::Null(_)) | Some(Kind::NullArray(_)) | None => Frame3::Null,
        Some(Kind::Array(list)) => Frame3::Array {
            data: list.items.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Some(Kind::Pairs(list)) => Frame3::Array {
            data: list
                .items
                .chunks(2)
                .map(|pair| Frame3::Array {
                    data: pair.iter().map(to_resp3).collect(),
                    attributes: None,
                })
                .collect(),
            attributes: None,
        },
        Some(Kind::Map(list) | Kind::Keyed(list)) => {
            let mut data = FrameMap::with_capacity(list.items.len() / 2);
            for pair in list.items.chunks(2) {
                if let [k, v] = pair {
                    data.insert(to_resp3(k), to_resp3(v));
                }
            }
            Frame3::Map {
                data,
                attributes: None,
            }
        }
        Some(Kind::Set(list)) => {
            let mut data = FrameSet::with_capacity(list.items.len());
            for item in &list.items {
                data.insert(to_resp3(item));
            }
            Frame3::Set {
                data,
                attributes: None,
            }
        }
        Some(Kind::Double(d) | Kind::HumanDouble(d)) => Frame3::Double {
            data: *d,
            attributes: None,
        },
        Some(Kind::Boolean(b)) => Frame3::Boolean {
            data: *b,
            attributes: None,
        },
        Some(Kind::Verbatim(v)) => Frame3::VerbatimString {
            data: Bytes::copy_from_slice(&v.text),
            format: if v.format == "mkd" {
                VerbatimStringFormat::Markdown
            } else {
                VerbatimStringFormat::Text
            },
            attributes: None,
        },
        Some(Kind::Resp(_)) => Frame3::SimpleError {
            data: NESTED_ENCODED.into(),
            attributes: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_proto::reply;

    fn r2(reply: &Reply) -> String {
        String::from_utf8(encode_to_vec(reply, Protocol::Resp2)).unwrap()
    }

    fn r3(reply: &Reply) -> String {
        String::from_utf8(encode_to_vec(reply, Protocol::Resp3)).unwrap()
    }

    #[test]
    fn a_set_of_maps_is_written_not_hashed() {
        let spec = reply::map(vec![(
            reply::bulk("flags"),
            reply::set(vec![reply::status("RO")]),
        )]);
        let info = reply::array(vec![
            reply::bulk("get"),
            reply::set(vec![spec.clone(), spec]),
        ]);
        assert_eq!(
            r3(&info),
            "*2\r\n$3\r\nget\r\n~2\r\n%1\r\n$5\r\nflags\r\n~1\r\n+RO\r\n\
             %1\r\n$5\r\nflags\r\n~1\r\n+RO\r\n"
        );
        assert_eq!(
            r2(&info),
            "*2\r\n$3\r\nget\r\n*2\r\n*2\r\n$5\r\nflags\r\n*1\r\n+RO\r\n\
             *2\r\n$5\r\nflags\r\n*1\r\n+RO\r\n"
        );
    }

    #[test]
    fn scalars_in_both_protocols() {
        assert_eq!(r2(&reply::ok()), "+OK\r\n");
        assert_eq!(r3(&reply::ok()), "+OK\r\n");
        assert_eq!(
            r2(&reply::error("ERR syntax error")),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            r3(&reply::error("ERR syntax error")),
            "-ERR syntax error\r\n"
        );
        assert_eq!(r2(&reply::integer(-7)), ":-7\r\n");
        assert_eq!(r3(&reply::integer(42)), ":42\r\n");
        assert_eq!(r2(&reply::bulk("hey")), "$3\r\nhey\r\n");
        assert_eq!(r3(&reply::bulk("")), "$0\r\n\r\n");
    }

    #[test]
    fn nulls() {
        assert_eq!(r2(&reply::null()), "$-1\r\n");
        assert_eq!(r2(&reply::null_array()), "*-1\r\n");
        assert_eq!(r3(&reply::null()), "_\r\n");
        assert_eq!(r3(&reply::null_array()), "_\r\n");
        let nested = reply::array(vec![reply::integer(1), reply::null_array(), reply::null()]);
        assert_eq!(r2(&nested), "*3\r\n:1\r\n*-1\r\n$-1\r\n");
    }

    #[test]
    fn aggregates() {
        let arr = reply::array(vec![reply::bulk("a"), reply::integer(2)]);
        assert_eq!(r2(&arr), "*2\r\n$1\r\na\r\n:2\r\n");
        assert_eq!(r3(&arr), "*2\r\n$1\r\na\r\n:2\r\n");
        let map = reply::map(vec![
            (reply::bulk("server"), reply::bulk("redis")),
            (reply::bulk("proto"), reply::integer(3)),
        ]);
        assert_eq!(
            r2(&map),
            "*4\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
        );
        assert_eq!(
            r3(&map),
            "%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
        );
        let set = reply::set(vec![reply::status("write"), reply::status("fast")]);
        assert_eq!(r2(&set), "*2\r\n+write\r\n+fast\r\n");
        assert_eq!(r3(&set), "~2\r\n+write\r\n+fast\r\n");
    }

    #[test]
    fn keyed_is_a_map_or_an_array_of_pairs() {
        let keyed = reply::keyed(vec![(reply::bulk("k"), reply::array(vec![]))]);
        assert_eq!(r2(&keyed), "*1\r\n*2\r\n$1\r\nk\r\n*0\r\n");
        assert_eq!(r3(&keyed), "%1\r\n$1\r\nk\r\n*0\r\n");
        // The RESP2 path that writes nested null arrays itself.
        let with_null = reply::keyed(vec![(reply::bulk("k"), reply::null_array())]);
        assert_eq!(r2(&with_null), "*1\r\n*2\r\n$1\r\nk\r\n*-1\r\n");
    }

    #[test]
    fn doubles_booleans_verbatim() {
        assert_eq!(r2(&reply::double(1.5)), "$3\r\n1.5\r\n");
        assert_eq!(r2(&reply::double(f64::INFINITY)), "$3\r\ninf\r\n");
        assert_eq!(r2(&reply::double(f64::NEG_INFINITY)), "$4\r\n-inf\r\n");
        assert_eq!(r3(&reply::double(1.5)), ",1.5\r\n");
        assert_eq!(r3(&reply::double(f64::NEG_INFINITY)), ",-inf\r\n");
        assert_eq!(r2(&reply::boolean(true)), ":1\r\n");
        assert_eq!(r2(&reply::boolean(false)), ":0\r\n");
        assert_eq!(r3(&reply::boolean(true)), "#t\r\n");
        assert_eq!(r3(&reply::boolean(false)), "#f\r\n");
        assert_eq!(r2(&reply::verbatim("txt", "a:b")), "$3\r\na:b\r\n");
        assert_eq!(r3(&reply::verbatim("txt", "a:b")), "=7\r\ntxt:a:b\r\n");
    }

    #[test]
    fn pairs_nest_in_resp3_and_flatten_in_resp2() {
        let pairs = reply::pairs(vec![
            (reply::bulk("a"), reply::double(1.0)),
            (reply::bulk("b"), reply::double(2.5)),
        ]);
        assert_eq!(
            r2(&pairs),
            "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\n2.5\r\n"
        );
        assert_eq!(
            r3(&pairs),
            "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
        );
        assert_eq!(r2(&reply::pairs(Vec::new())), "*0\r\n");
        assert_eq!(r3(&reply::pairs(Vec::new())), "*0\r\n");
    }

    #[test]
    fn error_lines_cannot_break_framing() {
        assert_eq!(r2(&reply::error("ERR a\r\nb")), "-ERR a  b\r\n");
    }

    #[test]
    fn a_node_encoded_reply_is_written_as_it_is_and_matches_both_protocols() {
        let keys: Vec<Reply> = (0..300).map(|i| reply::bulk(format!("key:{i}"))).collect();
        let entry = reply::array(vec![
            reply::bulk("1-1"),
            reply::array(vec![reply::bulk("f"), reply::bulk("v")]),
        ]);
        for tree in [
            reply::array(keys),
            reply::array(vec![reply::bulk("0"), reply::array(vec![entry; 100])]),
            reply::array((0..300).map(reply::integer).collect()),
        ] {
            let encoded = reply::encode_if_large(tree.clone(), reply::PRE_ENCODE_MIN_ELEMENTS);
            assert!(matches!(encoded.kind, Some(Kind::Resp(_))), "{tree:?}");
            let resp2 = encode_to_vec(&tree, Protocol::Resp2);
            assert_eq!(resp2, encode_to_vec(&tree, Protocol::Resp3));
            assert_eq!(encode_to_vec(&encoded, Protocol::Resp2), resp2);
            assert_eq!(encode_to_vec(&encoded, Protocol::Resp3), resp2);
        }
    }

    #[test]
    fn encoded_replies_decode_back() {
        let value = reply::array(vec![
            reply::bulk("x"),
            reply::integer(1),
            reply::map(vec![(reply::bulk("k"), reply::double(2.5))]),
        ]);
        let bytes = encode_to_vec(&value, Protocol::Resp3);
        let (frame, used) = redis_protocol::resp3::decode::complete::decode(&bytes)
            .unwrap()
            .unwrap();
        assert_eq!(used, bytes.len());
        assert!(
            matches!(frame, redis_protocol::resp3::types::OwnedFrame::Array { ref data, .. } if data.len() == 3)
        );
    }
}
