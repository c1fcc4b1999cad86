//! The option parsers of every command family (`rampart_proto::parse`),
//! which the storage node calls before it reads any data. One target that
//! dispatches on the first input byte, to keep the CI stage short.
//!
//! Input: `selector` byte, then NUL-separated arguments (after the command
//! name). Checks: no panic; an error is a Redis error text (an upper-case
//! code, a space, a message); a success satisfies the parser's invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_proto::parse::{
    bitmaps, collection, geo, keys, lists, sets, sort, streams, strings, zsets,
};

/// A Redis error reply text: `CODE message`, CODE upper-case letters.
fn check_error(text: &str) {
    let (code, rest) = text.split_once(' ').unwrap_or((text, ""));
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase()),
        "bad error code: {text:?}"
    );
    // Quoted arguments may hold CR or LF: the proxy's encoder turns them
    // into spaces, as Redis's addReplyErrorFormat does.
    assert!(!rest.is_empty(), "error without a message: {text:?}");
}

fn check<T>(result: Result<T, String>, ok: impl FnOnce(T)) {
    match result {
        Ok(value) => ok(value),
        Err(text) => check_error(&text),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let args: Vec<Vec<u8>> = rest.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    let first = args.first().map(Vec::as_slice).unwrap_or(b"");
    let now = 1_700_000_000_000;
    match selector % 16 {
        // strings
        0 => check(strings::set_flags(&args, selector & 0x10 == 0), |f| {
            assert!(!(f.nx && f.xx));
            assert!(!(f.keep_ttl && f.expire.is_some()));
            assert!(!(f.persist && (f.expire.is_some() || f.keep_ttl)));
            if let Some((kind, raw)) = f.expire {
                check(strings::expire_deadline(kind, raw, now, "set"), |ms| {
                    assert!(ms > 0)
                });
            }
        }),
        1 => check(strings::lcs_options(&args), |o| {
            assert!(!(o.len && o.idx));
            assert!(o.min_match_len >= 0);
        }),
        // keys
        2 => {
            check(keys::expire_condition(&args[1..]), |c| {
                assert!(!(c.nx && (c.xx || c.gt || c.lt)) && !(c.gt && c.lt));
            });
            for base in [
                keys::ExpireBase::RelativeSeconds,
                keys::ExpireBase::RelativeMillis,
                keys::ExpireBase::AbsSeconds,
                keys::ExpireBase::AbsMillis,
            ] {
                check(keys::expire_when(first, base, now, "expire"), |_| {});
            }
        }
        3 => check(keys::copy_options(&args), |_| {}),
        4 => check(keys::object_subcommand(&args), |_| {}),
        // shared by the collection families
        5 => check(collection::scan_args(&args, selector & 0x10 == 0), |s| {
            assert!(s.count >= 1);
            assert!(s.pattern != Some(b"*"));
        }),
        6 => {
            check(
                collection::random_args(&args, b"WITHSCORES"),
                |(_, counted)| {
                    if let Some((k, _)) = counted {
                        assert!(k <= (i64::MAX / 2) as u64);
                    }
                },
            );
            check(collection::random_count(first), |_| {});
        }
        7 => check(collection::mpop(&args, ["LEFT", "RIGHT"]), |m| {
            assert!(!m.keys.is_empty() && m.count >= 1);
            assert!(m.keys.len() < args.len());
        }),
        // lists
        8 => {
            check(lists::lpos_options(&args), |o| {
                assert!(o.rank != 0 && o.rank != i64::MIN);
                assert!(o.count.is_none_or(|c| c >= 0) && o.maxlen >= 0);
            });
            check(lists::side(first), |_| {});
            check(lists::insert_after(first), |_| {});
        }
        // sets
        9 => {
            check(sets::intercard(&args), |(keys, _)| {
                assert!(!keys.is_empty() && keys.len() < args.len());
            });
            check(sets::srandmember(&args), |_| {});
            // SORT / SORT_RO share the selector with the sets.
            let readonly = selector & 0x10 == 0;
            check(sort::sort_options(&args, readonly, selector & 0x20 == 0), |o| {
                assert!(o.store.is_none() || !readonly);
                let len = first.len();
                let (start, end) = sort::window(o.limit_start, o.limit_count, len);
                assert!(start >= -1 && end >= start - 1 && end < len as i64);
            });
            let _ = sort::weight(first);
            let _ = sort::target(first, first);
        }
        // sorted sets
        10 => {
            let cmd = match selector >> 4 {
                0..=3 => zsets::RangeCmd::Auto,
                4..=7 => zsets::RangeCmd::Score {
                    rev: selector & 1 == 1,
                },
                8..=11 => zsets::RangeCmd::Lex {
                    rev: selector & 1 == 1,
                },
                _ => zsets::RangeCmd::RevRank,
            };
            check(zsets::range(&args, cmd, selector & 2 == 2), |q| {
                if let zsets::Range::Score(r) = q.range {
                    assert!(!r.min.is_nan() && !r.max.is_nan());
                }
                assert!(!(q.with_scores && matches!(q.range, zsets::Range::Lex(_))));
            });
        }
        11 => {
            let (flags, used) = zsets::zadd_flags(&args);
            assert!(used <= args.len());
            check(zsets::zadd_scores(&flags, &args[used..]), |scores| {
                assert_eq!(scores.len() * 2, args.len() - used);
                assert!(scores.iter().all(|s| !s.is_nan()));
            });
            check(zsets::zpop_count(&args), |_| {});
            check(zsets::zrank_with_score(&args, false), |_| {});
            check(zsets::mpop(&args), |_| {});
        }
        12 => {
            let op = match selector >> 6 {
                0 => zsets::SetOp::Union,
                1 => zsets::SetOp::Inter,
                _ => zsets::SetOp::Diff,
            };
            check(zsets::combine_numkeys(&args, "zunion"), |n| {
                assert!(n >= 1 && n < args.len());
                check(
                    zsets::combine_options(&args, n, op, selector & 1 == 1),
                    |o| {
                        assert_eq!(o.weights.len(), n);
                    },
                );
                check(zsets::intercard_limit(&args, n), |_| {});
            });
        }
        // streams
        13 => {
            check(streams::add_or_trim(&args, selector & 0x10 == 0), |o| {
                if let Some((_, at)) = o.id {
                    assert!(at <= args.len());
                }
            });
            check(streams::parse_add_id(first), |_| {});
            for end in [streams::RangeEnd::Start, streams::RangeEnd::End] {
                check(streams::parse_range_bound(first, end), |_| {});
            }
            check(streams::pending_range(&args), |_| {});
            check(streams::xautoclaim(&args), |(idle, _, count, _)| {
                assert!(idle >= 0 && count >= 1);
            });
            check(streams::xgroup(&args), |g| assert!(g.entries_read >= -1));
        }
        14 => {
            check(streams::xread(&args, now), |x| {
                assert_eq!(x.keys.len(), x.ids.len())
            });
            check(streams::readgroup(&args, now), |g| {
                assert_eq!(g.keys.len(), g.ids.len())
            });
            check(streams::xclaim(&args, now), |(idle, _, o)| {
                assert!(idle >= 0);
                assert!(o.delivery_time.is_none_or(|t| (0..=now).contains(&t)));
            });
        }
        // geo and bitmaps
        _ => {
            if selector & 0x10 == 0 {
                let variant = match selector >> 5 {
                    0 | 1 => geo::Variant::Search,
                    2 | 3 => geo::Variant::SearchStore,
                    4 | 5 => geo::Variant::Radius {
                        store: selector & 0x20 == 0,
                    },
                    _ => geo::Variant::RadiusByMember {
                        store: selector & 0x20 == 0,
                    },
                };
                let centre = |member: &[u8]| -> Result<Option<(f64, f64)>, String> {
                    Ok((member.len() % 2 == 0).then_some((1.0, 2.0)))
                };
                check(
                    geo::request(variant, &args, selector & 1 == 0, centre, "geosearch"),
                    |r| {
                        if let Some((long, lat)) = r.centre {
                            assert!(geo::in_bounds(long, lat));
                        }
                        if r.any {
                            assert!(r.count > 0);
                        }
                    },
                );
                check(geo::geoadd(&args), |(_, triples)| {
                    assert_eq!(triples.len() % 3, 0)
                });
                check(geo::geodist_unit(&args), |_| {});
            } else {
                let max = 512 * 1024 * 1024;
                check(
                    bitmaps::field_ops(&args, selector & 0x20 == 0, max),
                    |ops| {
                        for op in ops {
                            let (bitmaps::FieldOp::Get(t, offset)
                            | bitmaps::FieldOp::Set(t, offset, ..)
                            | bitmaps::FieldOp::IncrBy(t, offset, ..)) = op;
                            assert!((1..=64).contains(&t.bits));
                            assert!(offset >> 3 < max);
                            let (min, top) = t.limits();
                            for v in [min - 1, top + 1, i128::from(i64::MIN), i128::from(u64::MAX)]
                            {
                                for o in [
                                    bitmaps::Overflow::Wrap,
                                    bitmaps::Overflow::Sat,
                                    bitmaps::Overflow::Fail,
                                ] {
                                    if let Some(fitted) = t.fit(v, o) {
                                        assert!((min..=top).contains(&fitted));
                                    }
                                }
                            }
                        }
                    },
                );
                check(bitmaps::bitcount_range(&args), |_| {});
                check(bitmaps::bitpos(&args), |_| {});
                check(bitmaps::bitop(&args), |_| {});
                check(bitmaps::bit_offset(first, Some(8), max), |o| {
                    assert!(o >> 3 < max)
                });
            }
        }
    }
});
