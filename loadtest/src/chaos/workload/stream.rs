//! `stream`: XADD of unique payloads to one stream while consumers read it
//! with XREAD (from the last id they saw) and XREADGROUP (a consumer group
//! created at setup; what they read is acknowledged), then a final full
//! read with XRANGE, paged. No acknowledged entry may be lost, ids must
//! strictly increase, no entry may appear twice.
//!
//! Roles by client index: 0 reads with XREAD, 1 with XREADGROUP, the others
//! add entries (with fewer than three clients, everyone adds).

use super::{read_paged, Ctx, Pacer, Recorded, WorkloadKind};
use crate::chaos::client::{argv, text, write_error_outcome, Call, Client};
use crate::chaos::error::ChaosError;
use crate::chaos::history::{Op, OpKind, Outcome, StreamId, StreamReadVia};
use crate::conn::Value;
use std::time::Duration;

pub const KEY: &str = "chaos:stream";
pub const GROUP: &str = "chaos-group";
const FIELD: &str = "payload";
/// Entries per XREAD/XREADGROUP/XRANGE page.
const PAGE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Adder,
    Xread,
    Xreadgroup,
}

fn role(index: usize, concurrency: usize) -> Role {
    match index {
        _ if concurrency < 3 => Role::Adder,
        0 => Role::Xread,
        1 => Role::Xreadgroup,
        _ => Role::Adder,
    }
}

/// Creates the consumer group (and the empty stream).
pub async fn setup(ctx: &Ctx, deadline: Duration) -> Result<Recorded, ChaosError> {
    let until = tokio::time::Instant::now() + deadline;
    let mut client = ctx.new_client(ctx.concurrency);
    loop {
        let cmd = argv(&["XGROUP", "CREATE", KEY, GROUP, "$", "MKSTREAM"]);
        let why = match client.call(&[cmd]).await {
            Call::Replies(r) => match &r[0] {
                Value::Simple(s) if s == "OK" => return Ok(Recorded::default()),
                // An earlier attempt whose answer was lost created it.
                Value::Error(e) if e.starts_with("BUSYGROUP") => return Ok(Recorded::default()),
                v => super::describe(v),
            },
            Call::NotSent(e) | Call::Unknown(e) => e,
        };
        if tokio::time::Instant::now() >= until {
            return Err(ChaosError::Timeout(format!(
                "stream setup: XGROUP CREATE ({why})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn client(mut ctx: Ctx, index: usize) -> Recorded {
    let _ = ctx.client_seed(WorkloadKind::Stream, index);
    let mut client = ctx.new_client(index);
    let mut pacer = Pacer::new(&ctx, index);
    let mut out = Recorded::default();
    let me = role(index, ctx.concurrency);
    let consumer = format!("c{index}");
    let mut last = StreamId { ms: 0, seq: 0 };
    while pacer.next(&mut ctx.stop).await {
        let op = match me {
            Role::Adder => add(&mut client, ctx.next_unique()).await,
            Role::Xread => xread(&mut client, &mut last).await,
            Role::Xreadgroup => {
                let (op, ids) = xreadgroup(&mut client, &consumer).await;
                if !ids.is_empty() {
                    ack(&mut client, &ids).await;
                }
                op
            }
        };
        out.ops.push(op);
    }
    out
}

async fn add(client: &mut Client, payload: u64) -> Op {
    let start = client.clock().now_ns();
    let cmd = argv(&["XADD", KEY, "*", FIELD, &payload.to_string()]);
    let (outcome, id, error) = match client.call(&[cmd]).await {
        Call::Replies(r) => match text(&r[0]).as_deref().and_then(parse_id) {
            Some(id) if !matches!(r[0], Value::Error(_)) => (Outcome::Ok, Some(id), None),
            _ => {
                let e = super::describe(&r[0]);
                (write_error_outcome(&e), None, Some(e))
            }
        },
        Call::NotSent(e) => (Outcome::Fail, None, Some(e)),
        Call::Unknown(e) => (Outcome::Info, None, Some(e)),
    };
    let kind = OpKind::StreamAdd {
        key: KEY.into(),
        payload,
        id,
    };
    client.finish(start, outcome, kind, error)
}

async fn xread(client: &mut Client, last: &mut StreamId) -> Op {
    let start = client.clock().now_ns();
    let from = format!("{}-{}", last.ms, last.seq);
    let page = PAGE.to_string();
    let cmd = argv(&["XREAD", "COUNT", &page, "STREAMS", KEY, &from]);
    let result = read_reply(client.call(&[cmd]).await);
    if let Ok(entries) = &result {
        if let Some((id, _)) = entries.last() {
            *last = *id;
        }
    }
    finish_read(client, start, StreamReadVia::Xread, result)
}

/// Reads new entries for `consumer`; the ids to acknowledge.
async fn xreadgroup(client: &mut Client, consumer: &str) -> (Op, Vec<StreamId>) {
    let start = client.clock().now_ns();
    let page = PAGE.to_string();
    let cmd = argv(&[
        "XREADGROUP",
        "GROUP",
        GROUP,
        consumer,
        "COUNT",
        &page,
        "STREAMS",
        KEY,
        ">",
    ]);
    let call = client.call(&[cmd]).await;
    // XREADGROUP moves the group's cursor: it is a write, and an unknown
    // outcome is Info (the entries may have been delivered to nobody).
    let unknown = matches!(call, Call::Unknown(_));
    let result = read_reply(call);
    let ids = match &result {
        Ok(entries) => entries.iter().map(|(id, _)| *id).collect(),
        Err(_) => Vec::new(),
    };
    let op = if unknown {
        let e = result.err().unwrap_or_default();
        let kind = OpKind::StreamRead {
            key: KEY.into(),
            via: StreamReadVia::Xreadgroup,
            entries: None,
        };
        client.finish(start, Outcome::Info, kind, Some(e))
    } else {
        finish_read(client, start, StreamReadVia::Xreadgroup, result)
    };
    (op, ids)
}

/// Acknowledges `ids` (best effort: not part of the history).
async fn ack(client: &mut Client, ids: &[StreamId]) {
    let mut cmd = argv(&["XACK", KEY, GROUP]);
    cmd.extend(
        ids.iter()
            .map(|id| format!("{}-{}", id.ms, id.seq).into_bytes()),
    );
    let _ = client.call(&[cmd]).await;
}

fn finish_read(
    client: &mut Client,
    start: u64,
    via: StreamReadVia,
    result: Result<Vec<(StreamId, u64)>, String>,
) -> Op {
    let (outcome, entries, error) = match result {
        Ok(e) => (Outcome::Ok, Some(e), None),
        Err(e) => (Outcome::Fail, None, Some(e)),
    };
    let kind = OpKind::StreamRead {
        key: KEY.into(),
        via,
        entries,
    };
    client.finish(start, outcome, kind, error)
}

/// Entries of an XREAD/XREADGROUP reply for our one stream (nil = none).
fn read_reply(call: Call) -> Result<Vec<(StreamId, u64)>, String> {
    let replies = match call {
        Call::Replies(r) => r,
        Call::NotSent(e) | Call::Unknown(e) => return Err(e),
    };
    match &replies[0] {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(pair) = s else {
                    return Err(format!("stream reply {s:?}"));
                };
                match pair.as_slice() {
                    [_name, Value::Array(entries)] => out.extend(parse_entries(entries)?),
                    [_name, Value::Nil] => {}
                    _ => return Err(format!("stream reply {pair:?}")),
                }
            }
            Ok(out)
        }
        v => Err(super::describe(v)),
    }
}

/// `[[id, [field, value, ...]], ...]` → (id, payload).
fn parse_entries(entries: &[Value]) -> Result<Vec<(StreamId, u64)>, String> {
    entries
        .iter()
        .map(|e| {
            let Value::Array(parts) = e else {
                return Err(format!("stream entry {e:?}"));
            };
            let [id, Value::Array(fields)] = parts.as_slice() else {
                return Err(format!("stream entry {parts:?}"));
            };
            let id = text(id)
                .as_deref()
                .and_then(parse_id)
                .ok_or_else(|| format!("stream entry id {id:?}"))?;
            let payload = fields
                .chunks(2)
                .find(|kv| text(&kv[0]).as_deref() == Some(FIELD))
                .and_then(|kv| kv.get(1))
                .and_then(text)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("stream entry {id:?} without a numeric payload"))?;
            Ok((id, payload))
        })
        .collect()
}

pub fn parse_id(text: &str) -> Option<StreamId> {
    let (ms, seq) = text.split_once('-')?;
    Some(StreamId {
        ms: ms.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// The id right after `id`, for paging XRANGE without `(` exclusive ranges.
fn successor(id: StreamId) -> StreamId {
    match id.seq.checked_add(1) {
        Some(seq) => StreamId { ms: id.ms, seq },
        None => StreamId {
            ms: id.ms + 1,
            seq: 0,
        },
    }
}

/// The whole stream with XRANGE, page by page.
pub async fn final_read(ctx: &Ctx, deadline: Duration) -> Recorded {
    read_paged(
        ctx,
        deadline,
        "-".to_string(),
        |client, from| {
            Box::pin(async move {
                let page = PAGE.to_string();
                let cmd = argv(&["XRANGE", KEY, &from, "+", "COUNT", &page]);
                let entries = match client.call(&[cmd]).await {
                    Call::Replies(r) => match &r[0] {
                        Value::Array(items) => parse_entries(items)?,
                        v => return Err(super::describe(v)),
                    },
                    Call::NotSent(e) | Call::Unknown(e) => return Err(e),
                };
                let next = match entries.last() {
                    Some((id, _)) if entries.len() == PAGE => {
                        let next = successor(*id);
                        Some(format!("{}-{}", next.ms, next.seq))
                    }
                    _ => None,
                };
                Ok((entries, next))
            })
        },
        |entries| OpKind::StreamRead {
            key: KEY.into(),
            via: StreamReadVia::Xrange,
            entries,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_xread_replies() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(KEY),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("5-0"),
                    Value::Array(vec![bulk(FIELD), bulk("11")]),
                ]),
                Value::Array(vec![
                    bulk("5-1"),
                    Value::Array(vec![bulk(FIELD), bulk("12")]),
                ]),
            ]),
        ])]);
        let entries = read_reply(Call::Replies(vec![reply])).expect("well-formed");
        assert_eq!(
            entries,
            vec![
                (StreamId { ms: 5, seq: 0 }, 11),
                (StreamId { ms: 5, seq: 1 }, 12)
            ]
        );
        assert_eq!(read_reply(Call::Replies(vec![Value::Nil])), Ok(Vec::new()));
        assert!(read_reply(Call::Replies(vec![Value::Int(3)])).is_err());
        assert!(read_reply(Call::Unknown("timeout".into())).is_err());
    }

    #[test]
    fn ids_and_paging() {
        assert_eq!(
            parse_id("1700000000000-3"),
            Some(StreamId {
                ms: 1_700_000_000_000,
                seq: 3
            })
        );
        assert_eq!(parse_id("12"), None);
        assert_eq!(parse_id("a-1"), None);
        assert_eq!(
            successor(StreamId {
                ms: 1,
                seq: u64::MAX
            }),
            StreamId { ms: 2, seq: 0 }
        );
    }

    #[test]
    fn roles_keep_writers() {
        assert_eq!(role(0, 2), Role::Adder);
        assert_eq!(role(0, 5), Role::Xread);
        assert_eq!(role(1, 5), Role::Xreadgroup);
        assert_eq!(role(4, 5), Role::Adder);
    }
}
