//! Geo commands on sorted sets whose scores are 52-bit geohashes, as in
//! Redis: GEOADD, GEOPOS, GEOHASH, GEODIST, GEOSEARCH, GEOSEARCHSTORE and
//! the deprecated GEORADIUS family. A geo key is an ordinary zset (ZRANGE,
//! ZREM work on it); searches scan the score ranges of the 3×3 cells that
//! cover the shape ([`geohash`]), with Redis 7.2's options, errors and order.

mod geohash;

pub use rampart_proto::parse::geo::Variant;
use rampart_proto::parse::geo::{self, Request, Sort};
use rampart_proto::{errors, reply, Reply};

use super::collection as coll;
use super::zsets;
use super::{CmdError, CmdResult};
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{DataRead, Txn};
use geohash::Search;

fn lookup<R: DataRead + ?Sized>(r: &R, key: &[u8], now: i64) -> Result<Option<Meta>, CmdError> {
    coll::lookup(r, key, ValueType::ZSet, now)
}

fn member_position<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
    member: &[u8],
) -> Result<Option<(f64, f64)>, CmdError> {
    Ok(zsets::member_score(r, key, meta, member)?.map(geohash::decode_score))
}

/// GEOADD key [NX | XX] [CH] longitude latitude member [...]
pub fn geoadd(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let (flags, triples) = geo::geoadd(args)?;
    let mut pairs = Vec::with_capacity(triples.len() / 3 * 2);
    for triple in triples.chunks(3) {
        let (long, lat) = geo::long_lat(&triple[0], &triple[1])?;
        let hash = geohash::encode(long, lat, geohash::STEP_MAX).ok_or(errors::SYNTAX)?;
        pairs.push(hash.align52().to_string().into_bytes());
        pairs.push(triple[2].clone());
    }
    zsets::zadd_generic(txn, key, flags, &pairs, now)
}

/// GEOPOS key [member ...]
pub fn geopos<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let meta = lookup(r, key, now)?;
    let mut out = Vec::with_capacity(args.len() - 1);
    for member in &args[1..] {
        let position = match &meta {
            Some(meta) => member_position(r, key, meta, member)?,
            None => None,
        };
        out.push(match position {
            Some((long, lat)) => coordinates(long, lat),
            None => reply::null_array(),
        });
    }
    Ok(reply::array(out))
}

fn coordinates(long: f64, lat: f64) -> Reply {
    reply::array(vec![reply::human_double(long), reply::human_double(lat)])
}

/// GEOHASH key [member ...]
pub fn geohash_cmd<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    let meta = lookup(r, key, now)?;
    let mut out = Vec::with_capacity(args.len() - 1);
    for member in &args[1..] {
        let score = match &meta {
            Some(meta) => zsets::member_score(r, key, meta, member)?,
            None => None,
        };
        out.push(match score {
            Some(score) => reply::bulk(geohash::geohash_string(score)),
            None => reply::null(),
        });
    }
    Ok(reply::array(out))
}

/// Distances are bulk strings with four decimals in both protocols.
fn distance_reply(meters: f64) -> Reply {
    reply::bulk(format!("{meters:.4}"))
}

/// GEODIST key member1 member2 [M | KM | FT | MI]
pub fn geodist<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let to_meters = geo::geodist_unit(args)?;
    let key = &args[0];
    let Some(meta) = lookup(r, key, now)? else {
        return Ok(reply::null());
    };
    let a = member_position(r, key, &meta, &args[1])?;
    let b = member_position(r, key, &meta, &args[2])?;
    Ok(match (a, b) {
        (Some((long1, lat1)), Some((long2, lat2))) => {
            distance_reply(geohash::distance(long1, lat1, long2, lat2) / to_meters)
        }
        _ => reply::null(),
    })
}

struct Found {
    member: Vec<u8>,
    score: f64,
    long: f64,
    lat: f64,
    dist: f64,
}

/// Every member inside the shape, in Redis's scan order; stops at `limit`
/// (ANY) when it is non-zero.
fn scan<R: DataRead + ?Sized>(
    r: &R,
    key: &[u8],
    meta: &Meta,
    search: &Search,
    limit: usize,
) -> Result<Vec<Found>, CmdError> {
    let mut found = Vec::new();
    for (min, max) in geohash::score_ranges(&search.cells()) {
        if limit != 0 && found.len() >= limit {
            break;
        }
        zsets::walk_score_range(r, key, meta, min, max, &mut |member, score| {
            let (long, lat) = geohash::decode_score(score);
            if let Some(dist) = search.distance_if_inside(long, lat) {
                found.push(Found {
                    member: member.to_vec(),
                    score,
                    long,
                    lat,
                    dist,
                });
            }
            limit == 0 || found.len() < limit
        })?;
    }
    Ok(found)
}

/// The search itself, shared by every variant. `source` is the zset's key.
fn search<'a, R: DataRead + ?Sized>(
    r: &R,
    variant: Variant,
    args: &'a [Vec<u8>],
    source: &[u8],
    now: i64,
    command: &str,
) -> Result<(Request<'a>, Option<Vec<Found>>), CmdError> {
    let meta = lookup(r, source, now)?;
    // Redis looks the centre member up while it parses the options.
    let member_centre = |member: &[u8]| match &meta {
        Some(meta) => member_position(r, source, meta, member),
        None => Ok(None),
    };
    let req = geo::request(variant, args, meta.is_some(), member_centre, command)?;
    let Some(meta) = meta else {
        return Ok((req, None));
    };
    let (Some((long, lat)), Some((shape, unit))) = (req.centre, req.shape) else {
        return Ok((req, None));
    };
    let search = Search {
        long,
        lat,
        shape,
        unit,
    };
    let limit = if req.any { req.count as usize } else { 0 };
    let mut found = scan(r, source, &meta, &search, limit)?;
    let sort = match req.sort {
        Sort::None if req.count != 0 && !req.any => Sort::Asc,
        other => other,
    };
    match sort {
        Sort::Asc => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Sort::Desc => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        Sort::None => {}
    }
    if req.count > 0 {
        found.truncate(req.count as usize);
    }
    for f in &mut found {
        f.dist /= unit;
    }
    Ok((req, Some(found)))
}

fn results_reply(req: &Request<'_>, found: Vec<Found>) -> Reply {
    let options =
        usize::from(req.with_dist) + usize::from(req.with_hash) + usize::from(req.with_coord);
    reply::array(
        found
            .into_iter()
            .map(|f| {
                if options == 0 {
                    return reply::bulk(f.member);
                }
                let mut item = vec![reply::bulk(f.member)];
                if req.with_dist {
                    item.push(distance_reply(f.dist));
                }
                if req.with_hash {
                    item.push(reply::integer(f.score as i64));
                }
                if req.with_coord {
                    item.push(coordinates(f.long, f.lat));
                }
                reply::array(item)
            })
            .collect(),
    )
}

/// GEOSEARCH, GEORADIUS_RO and GEORADIUSBYMEMBER_RO: read-only searches.
pub fn search_read<R: DataRead + ?Sized>(
    r: &R,
    args: &[Vec<u8>],
    now: i64,
    variant: Variant,
    command: &str,
) -> CmdResult {
    let (req, found) = search(r, variant, args, &args[0], now, command)?;
    Ok(results_reply(&req, found.unwrap_or_default()))
}

/// GEOSEARCHSTORE, GEORADIUS and GEORADIUSBYMEMBER (which may STORE).
pub fn search_write(
    txn: &mut Txn<'_>,
    args: &[Vec<u8>],
    now: i64,
    variant: Variant,
    command: &str,
) -> CmdResult {
    let source = if variant == Variant::SearchStore {
        &args[1]
    } else {
        &args[0]
    };
    let (req, found) = search(&*txn, variant, args, source, now, command)?;
    let Some(dest) = req.store else {
        return Ok(results_reply(&req, found.unwrap_or_default()));
    };
    let found = found.unwrap_or_default();
    let items: Vec<(Vec<u8>, f64)> = found
        .into_iter()
        .map(|f| {
            let score = if req.store_dist { f.dist } else { f.score };
            (f.member, score)
        })
        .collect();
    let stored = items.len() as i64;
    zsets::replace_with(txn, dest, &items)?;
    Ok(reply::integer(stored))
}
