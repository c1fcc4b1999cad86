//! `set`: SADD of elements unique across the run to one key, then one
//! final SMEMBERS once the faults are healed and load has stopped. Every
//! acknowledged element must be there, and nothing never sent.
//!
//! An SADD of a never-used element that answers 0 ("already a member")
//! means an earlier attempt of the same request was applied and the retry
//! applied again instead of being deduplicated: harmless for a set, but a
//! double apply all the same, so it is noted for the report.

use super::{read_until_ok, Ctx, Pacer, Recorded};
use crate::chaos::client::{argv, write_error_outcome, Call};
use crate::chaos::history::{OpKind, Outcome};
use crate::conn::Value;
use std::time::Duration;

pub const KEY: &str = "chaos:set";

pub async fn client(mut ctx: Ctx, index: usize) -> Recorded {
    let mut client = ctx.new_client(index);
    let mut pacer = Pacer::new(&ctx, index);
    let mut out = Recorded::default();
    while pacer.next(&mut ctx.stop).await {
        let element = ctx.next_unique();
        let start = client.clock().now_ns();
        let kind = OpKind::SetAdd {
            key: KEY.into(),
            element,
        };
        let (outcome, error) = match client
            .call(&[argv(&["SADD", KEY, &element.to_string()])])
            .await
        {
            Call::Replies(r) => match &r[0] {
                Value::Int(1) => (Outcome::Ok, None),
                Value::Int(0) => {
                    out.notes.push(format!(
                        "SADD {KEY} {element} answered 0 for an element never added before \
                         (a retried request applied twice?)"
                    ));
                    (Outcome::Ok, None)
                }
                v => {
                    let e = super::describe(v);
                    (write_error_outcome(&e), Some(e))
                }
            },
            Call::NotSent(e) => (Outcome::Fail, Some(e)),
            Call::Unknown(e) => (Outcome::Info, Some(e)),
        };
        out.ops.push(client.finish(start, outcome, kind, error));
    }
    out
}

pub async fn final_read(ctx: &Ctx, deadline: Duration) -> Recorded {
    read_until_ok(ctx, deadline, |client| {
        Box::pin(async move {
            let failed = |e: String| {
                Err((
                    OpKind::SetRead {
                        key: KEY.into(),
                        elements: None,
                    },
                    e,
                ))
            };
            match client.call(&[argv(&["SMEMBERS", KEY])]).await {
                Call::Replies(r) => match &r[0] {
                    Value::Array(items) => {
                        let parsed: Option<Vec<u64>> = items
                            .iter()
                            .map(|v| match v {
                                Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                                _ => None,
                            })
                            .collect();
                        match parsed {
                            Some(mut elements) => {
                                elements.sort_unstable();
                                Ok(OpKind::SetRead {
                                    key: KEY.into(),
                                    elements: Some(elements),
                                })
                            }
                            None => failed("SMEMBERS returned a non-integer member".into()),
                        }
                    }
                    v => failed(super::describe(v)),
                },
                Call::NotSent(e) | Call::Unknown(e) => failed(e),
            }
        })
    })
    .await
}
