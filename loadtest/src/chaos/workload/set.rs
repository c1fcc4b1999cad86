//! `set`: SADD of elements unique across the run to one key, then one
//! final read (SSCAN, page by page) once the faults are healed and load
//! has stopped. Every acknowledged element must be there, and nothing
//! never sent.
//!
//! An SADD of a never-used element that answers 0 ("already a member")
//! means an earlier attempt of the same request was applied and the retry
//! applied again instead of being deduplicated: harmless for a set, but a
//! double apply all the same, so it is noted for the report.

use super::{read_paged, Ctx, Pacer, Page, Recorded};
use crate::chaos::client::{argv, text, write_error_outcome, Call};
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

/// Members per SSCAN page.
const PAGE: &str = "1000";

/// Every member, with SSCAN page by page (a single SMEMBERS of a set of
/// 60,000 members could outlast a request's deadline on a loaded machine).
pub async fn final_read(ctx: &Ctx, deadline: Duration) -> Recorded {
    read_paged(
        ctx,
        deadline,
        "0".to_string(),
        |client, cursor| {
            Box::pin(async move {
                let cmd = argv(&["SSCAN", KEY, &cursor, "COUNT", PAGE]);
                match client.call(&[cmd]).await {
                    Call::Replies(r) => parse_sscan(&r[0]),
                    Call::NotSent(e) | Call::Unknown(e) => Err(e),
                }
            })
        },
        |elements: Option<Vec<u64>>| OpKind::SetRead {
            key: KEY.into(),
            elements: elements.map(|mut e| {
                // SSCAN may return a member twice; a set holds it once.
                e.sort_unstable();
                e.dedup();
                e
            }),
        },
    )
    .await
}

/// One SSCAN reply: the members, and the next cursor unless it is "0".
fn parse_sscan(reply: &Value) -> Page<u64, String> {
    let Value::Array(parts) = reply else {
        return Err(super::describe(reply));
    };
    let [cursor, Value::Array(members)] = parts.as_slice() else {
        return Err(format!("unexpected SSCAN reply {reply:?}"));
    };
    let cursor = text(cursor).ok_or_else(|| format!("SSCAN cursor {cursor:?}"))?;
    let members = members
        .iter()
        .map(|m| {
            text(m)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("SSCAN returned a non-integer member {m:?}"))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    Ok((members, (cursor != "0").then_some(cursor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_sscan_pages() {
        let page = Value::Array(vec![bulk("17"), Value::Array(vec![bulk("4"), bulk("9")])]);
        assert_eq!(parse_sscan(&page), Ok((vec![4, 9], Some("17".to_string()))));
        let last = Value::Array(vec![bulk("0"), Value::Array(vec![bulk("5")])]);
        assert_eq!(parse_sscan(&last), Ok((vec![5], None)));
        assert!(parse_sscan(&Value::Error("BUSY class heavy_data".into())).is_err());
        let junk = Value::Array(vec![bulk("0"), Value::Array(vec![bulk("x")])]);
        assert!(parse_sscan(&junk).is_err());
    }
}
