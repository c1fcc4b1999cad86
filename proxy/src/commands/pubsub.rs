//! SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE / SSUBSCRIBE /
//! SUNSUBSCRIBE, PUBLISH / SPUBLISH, PUBSUB, and the RESP2 subscribed-mode
//! rules (docs/pubsub.md).
//!
//! The subscribe family answers with one array per channel (RESP3: push
//! frames), so the pub/sub route (`pubsub_route.rs`) calls
//! [`subscribe_family`] itself and writes the frames; the rest are ordinary
//! one-reply commands.

use bytes::{Bytes, BytesMut};
use rampart_proto::command_table::CommandSpec;
use rampart_proto::pb::PubSubQuery;
use rampart_proto::{errors, reply, Reply};

use super::{Session, Shared};
use crate::pubsub::{encode_push, Item, Kind};
use crate::resp::{encode_reply, Protocol};

/// When no node answers a PUBLISH or PUBSUB within the retry deadline.
pub const NO_NODE: &str = "CLUSTERDOWN The cluster is down: no node reachable for pub/sub";

const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// The subscribe-family commands the pub/sub route answers itself.
pub fn is_subscribe_family(name: &str) -> bool {
    matches!(
        name,
        "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe" | "sunsubscribe"
    )
}

/// Commands a RESP2 client may send while subscribed (Redis's list).
pub fn allowed_when_subscribed(name: &str) -> bool {
    is_subscribe_family(name) || matches!(name, "ping" | "quit" | "reset")
}

/// The error a RESP2 subscribed client gets for any other command.
pub fn not_allowed_when_subscribed(spec: &CommandSpec, argv: &[Vec<u8>]) -> Reply {
    reply::error(format!(
        "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
        super::display_name(spec, argv)
    ))
}

/// PING in RESP2 subscribed mode: `["pong", message or ""]`.
pub fn subscribed_ping(args: &[Vec<u8>], out: &mut BytesMut) {
    match args {
        [] => encode_push(
            out,
            Protocol::Resp2,
            &[Item::Bulk(b"pong"), Item::Bulk(b"")],
        ),
        [message] => encode_push(
            out,
            Protocol::Resp2,
            &[Item::Bulk(b"pong"), Item::Bulk(message)],
        ),
        _ => encode_reply(
            out,
            &reply::error(errors::wrong_arity("ping")),
            Protocol::Resp2,
        ),
    }
}

/// Runs a subscribe-family command and writes its confirmations to `out`:
/// one `[verb, name, count]` per name, or `[verb, nil, count]` for an
/// argument-less unsubscribe with nothing to drop.
pub async fn subscribe_family(
    name: &str,
    args: &[Vec<u8>],
    session: &mut Session,
    out: &mut BytesMut,
) {
    let (kind, subscribing) = match name {
        "subscribe" => (Kind::Channel, true),
        "psubscribe" => (Kind::Pattern, true),
        "ssubscribe" => (Kind::Shard, true),
        "unsubscribe" => (Kind::Channel, false),
        "punsubscribe" => (Kind::Pattern, false),
        "sunsubscribe" => (Kind::Shard, false),
        other => {
            let text = errors::unknown_command(other.as_bytes(), args);
            encode_reply(out, &reply::error(text), session.protocol);
            return;
        }
    };
    let names: Vec<Bytes> = if args.is_empty() && !subscribing {
        session.pubsub.names(kind)
    } else {
        args.iter().map(|a| Bytes::copy_from_slice(a)).collect()
    };
    let counts = if subscribing {
        session.pubsub.subscribe(kind, &names).await
    } else {
        let counts = session.pubsub.unsubscribe(kind, &names);
        session.pubsub.settle().await;
        counts
    };
    let protocol = session.protocol;
    if names.is_empty() {
        let count = match kind {
            Kind::Shard => session.pubsub.shard_count(),
            _ => session.pubsub.count(),
        };
        encode_push(
            out,
            protocol,
            &[
                Item::Bulk(name.as_bytes()),
                Item::Null,
                Item::Integer(count as i64),
            ],
        );
        return;
    }
    for (channel, count) in names.iter().zip(counts) {
        encode_push(
            out,
            protocol,
            &[
                Item::Bulk(name.as_bytes()),
                Item::Bulk(channel),
                Item::Integer(count as i64),
            ],
        );
    }
}

/// PUBLISH / SPUBLISH channel message: the number of subscriptions the
/// message was sent to, over every proxy linked to the node that relayed it.
pub async fn publish(args: &[Vec<u8>], shared: &Shared, shard: bool) -> Reply {
    let [channel, message] = args else {
        return reply::error(errors::wrong_arity(if shard {
            "spublish"
        } else {
            "publish"
        }));
    };
    match shared
        .pubsub
        .publish(shard, channel.clone(), message.clone())
        .await
    {
        Ok(receivers) => reply::integer(receivers),
        Err(e) => {
            tracing::debug!(error = %e, "publish failed");
            reply::error(NO_NODE)
        }
    }
}

/// PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB / HELP.
pub async fn pubsub(args: &[Vec<u8>], shared: &Shared) -> Reply {
    let Some(sub) = args.first() else {
        return reply::error(errors::wrong_arity("pubsub"));
    };
    let sub_name = String::from_utf8_lossy(sub).to_ascii_lowercase();
    let rest = &args[1..];
    let query = match sub_name.as_str() {
        "channels" | "shardchannels" => {
            if rest.len() > 1 {
                return reply::error(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                    String::from_utf8_lossy(sub)
                ));
            }
            PubSubQuery {
                subcommand: sub_name.clone(),
                pattern: rest.first().cloned(),
                channels: Vec::new(),
            }
        }
        "numsub" | "shardnumsub" => {
            if rest.is_empty() {
                return reply::array(Vec::new());
            }
            PubSubQuery {
                subcommand: sub_name.clone(),
                pattern: None,
                channels: rest.to_vec(),
            }
        }
        "numpat" => {
            if !rest.is_empty() {
                return reply::error(errors::wrong_arity("pubsub|numpat"));
            }
            PubSubQuery {
                subcommand: sub_name.clone(),
                ..PubSubQuery::default()
            }
        }
        "help" => {
            if !rest.is_empty() {
                return reply::error(errors::wrong_arity("pubsub|help"));
            }
            return reply::array(HELP.iter().map(|l| reply::status(*l)).collect());
        }
        _ => return reply::error(errors::unknown_subcommand("pubsub", sub)),
    };
    let response = match shared.pubsub.query(query).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "pubsub query failed");
            return reply::error(NO_NODE);
        }
    };
    match sub_name.as_str() {
        "numpat" => reply::integer(response.numpat),
        "numsub" | "shardnumsub" => reply::array(
            response
                .channels
                .into_iter()
                .zip(response.counts)
                .flat_map(|(channel, count)| [reply::bulk(channel), reply::integer(count)])
                .collect(),
        ),
        _ => reply::array(response.channels.into_iter().map(reply::bulk).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::{session_and_shared, text};
    use rampart_proto::command_table::lookup;

    fn argv(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn subscribed_mode_rules_and_texts() {
        assert!(allowed_when_subscribed("psubscribe") && allowed_when_subscribed("reset"));
        assert!(!allowed_when_subscribed("get") && !allowed_when_subscribed("publish"));
        let spec = lookup(b"client").unwrap();
        assert_eq!(
            text(&not_allowed_when_subscribed(spec, &argv(&["CLIENT", "LIST"]))),
            "-ERR Can't execute 'client|list': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        );
        let mut out = BytesMut::new();
        subscribed_ping(&[], &mut out);
        subscribed_ping(&argv(&["hi"]), &mut out);
        subscribed_ping(&argv(&["a", "b"]), &mut out);
        assert_eq!(
            &out[..],
            &b"*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$2\r\nhi\r\n-ERR wrong number of arguments for 'ping' command\r\n"[..]
        );
    }

    #[tokio::test]
    async fn unsubscribe_without_subscriptions_and_counts() {
        let (mut session, _shared) = session_and_shared(None);
        let mut out = BytesMut::new();
        subscribe_family("unsubscribe", &[], &mut session, &mut out).await;
        assert_eq!(&out[..], b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
        out.clear();
        subscribe_family("subscribe", &argv(&["a", "b", "a"]), &mut session, &mut out).await;
        subscribe_family("ssubscribe", &argv(&["s"]), &mut session, &mut out).await;
        assert_eq!(
            String::from_utf8_lossy(&out),
            "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n"
        );
        assert!(session.pubsub.is_subscribed());
        assert_eq!(session.handle.info().sub, 2);
        out.clear();
        session.set_protocol(Protocol::Resp3);
        subscribe_family("unsubscribe", &[], &mut session, &mut out).await;
        assert_eq!(
            String::from_utf8_lossy(&out),
            ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
        );
        session.pubsub.clear();
        assert!(!session.pubsub.is_subscribed());
    }

    #[tokio::test]
    async fn pubsub_argument_errors_need_no_node() {
        let (_session, shared) = session_and_shared(None);
        assert_eq!(
            text(&pubsub(&argv(&["NUMPAT", "x"]), &shared).await),
            "-ERR wrong number of arguments for 'pubsub|numpat' command"
        );
        assert_eq!(
            text(&pubsub(&argv(&["FOO"]), &shared).await),
            "-ERR unknown subcommand 'FOO'. Try PUBSUB HELP."
        );
        assert_eq!(
            text(&pubsub(&argv(&["channels", "a", "b"]), &shared).await),
            "-ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP."
        );
        assert_eq!(text(&pubsub(&argv(&["NUMSUB"]), &shared).await), "*[]");
        assert!(
            text(&pubsub(&argv(&["HELP"]), &shared).await).starts_with("*[+PUBSUB <subcommand>")
        );
    }
}
