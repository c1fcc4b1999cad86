//! Pub/sub routing: which requests the pub/sub layer answers instead of the
//! ordinary request path, and how (docs/pubsub.md).
//!
//! It exists because pub/sub breaks the "one request, one reply" rule the
//! rest of the dispatch relies on: the subscribe family answers with one
//! frame per channel (push frames in RESP3), and while a RESP2 client is
//! subscribed only some commands may run. The dispatcher asks [`route`] for
//! every request and ends its current chunk of requests wherever the
//! pub/sub state can change, so every request is judged with the state its
//! predecessors left.

use bytes::BytesMut;
use rampart_proto::command_table::{lookup, CommandSpec};
use rampart_proto::Argv;

use crate::commands::{self, Session};
use crate::resp::{encode_reply, Protocol};

/// Who answers a request.
pub(crate) enum PubSubRoute {
    /// The ordinary path, in the current chunk.
    Normal,
    /// The ordinary path, then subscriptions are dropped ([`reset`]).
    Reset,
    /// The pub/sub layer ([`answer`]): the subscribe family, and in RESP2
    /// subscribed mode PING and the refusal of everything else.
    Local(&'static CommandSpec),
}

/// Routes one request. Unknown commands, wrong arity and NOAUTH are left to
/// the ordinary path, as Redis checks them first; inside MULTI
/// (`in_multi`) everything but RESET queues (EXEC answers it).
pub(crate) fn route(argv: &Argv, session: &Session, in_multi: bool) -> PubSubRoute {
    let Some(spec) = argv.first().and_then(|name| lookup(name)) else {
        return PubSubRoute::Normal;
    };
    if !spec.arity_ok(argv.len()) || !session.authenticated {
        return PubSubRoute::Normal;
    }
    if in_multi && spec.name != "reset" {
        return PubSubRoute::Normal;
    }
    if commands::pubsub::is_subscribe_family(spec.name) {
        return PubSubRoute::Local(spec);
    }
    let restricted = session.protocol == Protocol::Resp2 && session.pubsub.is_subscribed();
    match spec.name {
        "reset" => PubSubRoute::Reset,
        "ping" if restricted => PubSubRoute::Local(spec),
        "quit" => PubSubRoute::Normal,
        _ if restricted => PubSubRoute::Local(spec),
        _ => PubSubRoute::Normal,
    }
}

/// Answers a [`PubSubRoute::Local`] request, writing its frames to `output`.
pub(crate) async fn answer(
    spec: &'static CommandSpec,
    argv: &Argv,
    session: &mut Session,
    output: &mut BytesMut,
) {
    let args = &argv[1..];
    if commands::pubsub::is_subscribe_family(spec.name) {
        commands::pubsub::subscribe_family(spec.name, args, session, output).await;
    } else if spec.name == "ping" {
        commands::pubsub::subscribed_ping(args, output);
    } else {
        let error = commands::pubsub::not_allowed_when_subscribed(spec, argv);
        encode_reply(output, &error, session.protocol);
    }
}

/// After a [`PubSubRoute::Reset`] request ran: RESET leaves subscribed mode
/// without confirmations.
pub(crate) async fn reset(session: &mut Session) {
    session.pubsub.clear();
    session.pubsub.settle().await;
}
