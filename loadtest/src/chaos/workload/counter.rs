//! `counter`: INCR of one key during the run, then one final GET once the
//! faults are healed and load has stopped. The final value must lie
//! between the acknowledged increments and those plus the unknown ones.

use super::{read_until_ok, Ctx, Pacer, Recorded};
use crate::chaos::client::{argv, int, write_error_outcome, Call};
use crate::chaos::history::{OpKind, Outcome};
use crate::conn::Value;
use std::time::Duration;

pub const KEY: &str = "chaos:counter";

pub async fn client(mut ctx: Ctx, index: usize) -> Recorded {
    let mut client = ctx.new_client(index);
    let mut pacer = Pacer::new(&ctx, index);
    let mut out = Recorded::default();
    while pacer.next(&mut ctx.stop).await {
        let start = client.clock().now_ns();
        let (outcome, value, error) = match client.call(&[argv(&["INCR", KEY])]).await {
            Call::Replies(r) => match &r[0] {
                Value::Int(n) => (Outcome::Ok, Some(*n), None),
                v => {
                    let e = super::describe(v);
                    (write_error_outcome(&e), None, Some(e))
                }
            },
            Call::NotSent(e) => (Outcome::Fail, None, Some(e)),
            Call::Unknown(e) => (Outcome::Info, None, Some(e)),
        };
        let kind = OpKind::CounterIncr {
            key: KEY.into(),
            value,
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
                    OpKind::CounterRead {
                        key: KEY.into(),
                        value: None,
                    },
                    e,
                ))
            };
            match client.call(&[argv(&["GET", KEY])]).await {
                Call::Replies(r) => match &r[0] {
                    // Never incremented: the counter is 0.
                    Value::Nil => Ok(OpKind::CounterRead {
                        key: KEY.into(),
                        value: Some(0),
                    }),
                    v => match int(v) {
                        Some(n) => Ok(OpKind::CounterRead {
                            key: KEY.into(),
                            value: Some(n),
                        }),
                        None => failed(super::describe(v)),
                    },
                },
                Call::NotSent(e) | Call::Unknown(e) => failed(e),
            }
        })
    })
    .await
}
