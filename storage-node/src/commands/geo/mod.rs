//! Geo commands on sorted sets whose scores are 52-bit geohashes, as in
//! Redis: GEOADD, GEOPOS, GEOHASH, GEODIST, GEOSEARCH, GEOSEARCHSTORE and
//! the deprecated GEORADIUS family. A geo key is an ordinary zset (ZRANGE,
//! ZREM work on it); searches scan the score ranges of the 3×3 cells that
//! cover the shape ([`geohash`]), with Redis 7.2's options, errors and order.

mod geohash;

use rampart_proto::args::{parse_f64, parse_i64};
use rampart_proto::{errors, reply, Reply};

use super::collection as coll;
use super::zsets::{self, AddFlags};
use super::{CmdError, CmdResult};
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{DataRead, Txn};
use geohash::{Search, Shape};

const UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

fn lookup<R: DataRead + ?Sized>(r: &R, key: &[u8], now: i64) -> Result<Option<Meta>, CmdError> {
    coll::lookup(r, key, ValueType::ZSet, now)
}

/// A float argument: Redis's `getDoubleFromObjectOrReply` (NaN refused),
/// with the command's own message where it has one.
fn float(raw: &[u8], message: &str) -> Result<f64, CmdError> {
    parse_f64(raw)
        .filter(|v| !v.is_nan())
        .ok_or_else(|| CmdError::from(message))
}

fn long_lat(long: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let long = float(long, errors::NOT_FLOAT)?;
    let lat = float(lat, errors::NOT_FLOAT)?;
    if !geohash::in_bounds(long, lat) {
        return Err(format!("ERR invalid longitude,latitude pair {long:.6},{lat:.6}").into());
    }
    Ok((long, lat))
}

/// Meters per unit.
fn unit(raw: &[u8]) -> Result<f64, CmdError> {
    match raw.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(UNIT.into()),
    }
}

fn radius(value: &[u8], raw_unit: &[u8]) -> Result<(f64, f64), CmdError> {
    let radius = float(value, "ERR need numeric radius")?;
    if radius < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((radius, unit(raw_unit)?))
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
    let mut flags = AddFlags::default();
    let mut at = 1;
    while let Some(arg) = args.get(at) {
        match arg.to_ascii_lowercase().as_slice() {
            b"nx" => flags.nx = true,
            b"xx" => flags.xx = true,
            b"ch" => flags.ch = true,
            _ => break,
        }
        at += 1;
    }
    let triples = &args[at..];
    if triples.is_empty() || !triples.len().is_multiple_of(3) || (flags.nx && flags.xx) {
        return Err(errors::SYNTAX.into());
    }
    let mut pairs = Vec::with_capacity(triples.len() / 3 * 2);
    for triple in triples.chunks(3) {
        let (long, lat) = long_lat(&triple[0], &triple[1])?;
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
    let to_meters = match args.len() {
        3 => 1.0,
        4 => unit(&args[3])?,
        _ => return Err(errors::SYNTAX.into()),
    };
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

/// Which command's grammar a search follows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// GEORADIUS key longitude latitude radius unit [...]
    Radius { store: bool },
    /// GEORADIUSBYMEMBER key member radius unit [...]
    RadiusByMember { store: bool },
    /// GEOSEARCH key [...]
    Search,
    /// GEOSEARCHSTORE destination source [...] [STOREDIST]
    SearchStore,
}

impl Variant {
    fn is_search(self) -> bool {
        matches!(self, Variant::Search | Variant::SearchStore)
    }

    fn accepts_store(self) -> bool {
        matches!(
            self,
            Variant::Radius { store: true } | Variant::RadiusByMember { store: true }
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// The parsed request. `centre` and `shape` stay unset when the source key
/// is missing and the grammar lets parsing go on without them.
struct Request<'a> {
    centre: Option<(f64, f64)>,
    shape: Option<(Shape, f64)>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    any: bool,
    count: i64,
    sort: Sort,
    store: Option<&'a [u8]>,
    store_dist: bool,
}

struct Found {
    member: Vec<u8>,
    score: f64,
    long: f64,
    lat: f64,
    dist: f64,
}

/// Parses the arguments in Redis's order, so the first error a client sees
/// is Redis's. `source` is the source zset, when it exists.
fn parse<'a, R: DataRead + ?Sized>(
    r: &R,
    variant: Variant,
    args: &'a [Vec<u8>],
    source: Option<(&[u8], &Meta)>,
    command: &str,
) -> Result<Request<'a>, CmdError> {
    let mut req = Request {
        centre: None,
        shape: None,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        any: false,
        count: 0,
        sort: Sort::None,
        store: None,
        store_dist: false,
    };
    let options = match variant {
        Variant::Radius { .. } => {
            req.centre = Some(long_lat(&args[1], &args[2])?);
            let (size, unit) = radius(&args[3], &args[4])?;
            req.shape = Some((Shape::Radius(size), unit));
            &args[5..]
        }
        Variant::RadiusByMember { .. } => {
            if let Some((key, meta)) = source {
                let centre = member_position(r, key, meta, &args[1])?.ok_or(NO_MEMBER)?;
                req.centre = Some(centre);
                let (size, unit) = radius(&args[2], &args[3])?;
                req.shape = Some((Shape::Radius(size), unit));
            }
            &args[4..]
        }
        Variant::Search => &args[1..],
        Variant::SearchStore => {
            req.store = Some(args[0].as_slice());
            &args[2..]
        }
    };
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let mut i = 0;
    while i < options.len() {
        let left = options.len() - i - 1;
        let arg = options[i].to_ascii_lowercase();
        match arg.as_slice() {
            b"withdist" => req.with_dist = true,
            b"withhash" => req.with_hash = true,
            b"withcoord" => req.with_coord = true,
            b"any" => req.any = true,
            b"asc" => req.sort = Sort::Asc,
            b"desc" => req.sort = Sort::Desc,
            b"count" if left >= 1 => {
                req.count = parse_i64(&options[i + 1]).ok_or(errors::NOT_INTEGER)?;
                if req.count <= 0 {
                    return Err("ERR COUNT must be > 0".into());
                }
                i += 1;
            }
            b"store" | b"storedist" if left >= 1 && variant.accepts_store() => {
                req.store = Some(options[i + 1].as_slice());
                req.store_dist = arg == b"storedist";
                i += 1;
            }
            b"storedist" if variant == Variant::SearchStore => req.store_dist = true,
            b"frommember" if left >= 1 && variant.is_search() && !from_lonlat => {
                if let Some((key, meta)) = source {
                    let centre =
                        member_position(r, key, meta, &options[i + 1])?.ok_or(NO_MEMBER)?;
                    req.centre = Some(centre);
                }
                from_member = true;
                i += 1;
            }
            b"fromlonlat" if left >= 2 && variant.is_search() && !from_member => {
                req.centre = Some(long_lat(&options[i + 1], &options[i + 2])?);
                from_lonlat = true;
                i += 2;
            }
            b"byradius" if left >= 2 && variant.is_search() && !by_box => {
                let (size, unit) = radius(&options[i + 1], &options[i + 2])?;
                req.shape = Some((Shape::Radius(size), unit));
                by_radius = true;
                i += 2;
            }
            b"bybox" if left >= 3 && variant.is_search() && !by_radius => {
                let width = float(&options[i + 1], "ERR need numeric width")?;
                let height = float(&options[i + 2], "ERR need numeric height")?;
                if width < 0.0 || height < 0.0 {
                    return Err("ERR height or width cannot be negative".into());
                }
                req.shape = Some((Shape::Box { width, height }, unit(&options[i + 3])?));
                by_box = true;
                i += 3;
            }
            _ => return Err(errors::SYNTAX.into()),
        }
        i += 1;
    }
    if req.store.is_some() && (req.with_dist || req.with_hash || req.with_coord) {
        let who = if variant == Variant::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(format!(
            "ERR {who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )
        .into());
    }
    if variant.is_search() && !(from_member || from_lonlat) {
        return Err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {command}"
        )
        .into());
    }
    if variant.is_search() && !(by_radius || by_box) {
        return Err(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {command}"
        )
        .into());
    }
    if req.any && req.count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    Ok(req)
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
    let req = parse(
        r,
        variant,
        args,
        meta.as_ref().map(|m| (source, m)),
        command,
    )?;
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
