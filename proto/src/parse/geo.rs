//! Geo commands' options: GEOADD's flags, coordinates, units and radii,
//! GEODIST's unit, and the search grammar of GEOSEARCH / GEOSEARCHSTORE /
//! GEORADIUS* (`georadiusGeneric`), in Redis's order.
//!
//! A search names its centre by member (FROMMEMBER, GEORADIUSBYMEMBER):
//! Redis looks it up while it parses, so an unknown member is reported
//! before a later syntax error. [`request`] therefore takes the lookup as
//! a function, and stays free of any storage.

use crate::args::{parse_f64, parse_i64};
use crate::errors;

use super::zsets::AddFlags;

pub const UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
pub const NO_MEMBER: &str = "ERR could not decode requested zset member";

/// The area Redis can index (`GEO_LONG_MIN`..., Web Mercator).
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;

/// Whether a coordinate pair is inside the indexable area.
pub fn in_bounds(long: f64, lat: f64) -> bool {
    (LONG_MIN..=LONG_MAX).contains(&long) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// A float argument: Redis's `getDoubleFromObjectOrReply` (NaN refused),
/// with the command's own message where it has one.
pub fn float(raw: &[u8], message: &str) -> Result<f64, String> {
    parse_f64(raw)
        .filter(|v| !v.is_nan())
        .ok_or_else(|| message.to_string())
}

/// `longitude latitude`, inside the indexable area.
pub fn long_lat(long: &[u8], lat: &[u8]) -> Result<(f64, f64), String> {
    let long = float(long, errors::NOT_FLOAT)?;
    let lat = float(lat, errors::NOT_FLOAT)?;
    if !in_bounds(long, lat) {
        return Err(format!(
            "ERR invalid longitude,latitude pair {long:.6},{lat:.6}"
        ));
    }
    Ok((long, lat))
}

/// Meters per unit.
pub fn unit(raw: &[u8]) -> Result<f64, String> {
    match raw.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(UNIT.into()),
    }
}

/// `radius unit`: the radius and meters per unit.
pub fn radius(value: &[u8], raw_unit: &[u8]) -> Result<(f64, f64), String> {
    let radius = float(value, "ERR need numeric radius")?;
    if radius < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((radius, unit(raw_unit)?))
}

/// GEOADD's `key [NX | XX] [CH] longitude latitude member [...]` (`args`
/// include the key): the flags and the triples, unchecked coordinates.
pub fn geoadd(args: &[Vec<u8>]) -> Result<(AddFlags, &[Vec<u8>]), String> {
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
    let triples = args.get(at..).unwrap_or(&[]);
    if triples.is_empty() || !triples.len().is_multiple_of(3) || (flags.nx && flags.xx) {
        return Err(errors::SYNTAX.into());
    }
    Ok((flags, triples))
}

/// GEODIST's `key member1 member2 [unit]` (`args` include the key): meters
/// per unit.
pub fn geodist_unit(args: &[Vec<u8>]) -> Result<f64, String> {
    match args.len() {
        3 => Ok(1.0),
        4 => unit(&args[3]),
        _ => Err(errors::SYNTAX.into()),
    }
}

/// A search shape around a centre, sizes in the caller's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// Which command's grammar a search follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub fn is_search(self) -> bool {
        matches!(self, Variant::Search | Variant::SearchStore)
    }

    pub fn accepts_store(self) -> bool {
        matches!(
            self,
            Variant::Radius { store: true } | Variant::RadiusByMember { store: true }
        )
    }

    /// How many arguments (with the key) come before the options.
    pub fn fixed_args(self) -> usize {
        match self {
            Variant::Radius { .. } => 5,
            Variant::RadiusByMember { .. } => 4,
            Variant::Search => 1,
            Variant::SearchStore => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    None,
    Asc,
    Desc,
}

/// A parsed search. `centre` and `shape` stay unset when the source key is
/// missing and the grammar lets parsing go on without them.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    pub centre: Option<(f64, f64)>,
    /// The shape and meters per unit.
    pub shape: Option<(Shape, f64)>,
    pub with_dist: bool,
    pub with_hash: bool,
    pub with_coord: bool,
    pub any: bool,
    /// 0 = no COUNT.
    pub count: i64,
    pub sort: Sort,
    pub store: Option<&'a [u8]>,
    pub store_dist: bool,
}

/// Parses a search's arguments (`args` after the command name) in Redis's
/// order, so the first error a client sees is Redis's. `source_exists`
/// says whether the source zset exists; `member_centre(member)` is the
/// position of a member of it (`None` when it is not there), called only
/// when it exists. Fewer arguments than the grammar's fixed ones is
/// `ERR syntax error` (the command table's arity keeps them out).
pub fn request<'a, E: From<String>>(
    variant: Variant,
    args: &'a [Vec<u8>],
    source_exists: bool,
    mut member_centre: impl FnMut(&[u8]) -> Result<Option<(f64, f64)>, E>,
    command: &str,
) -> Result<Request<'a>, E> {
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
    if args.len() < variant.fixed_args() {
        return Err(E::from(errors::SYNTAX.into()));
    }
    let options = match variant {
        Variant::Radius { .. } => {
            req.centre = Some(long_lat(&args[1], &args[2])?);
            let (size, unit) = radius(&args[3], &args[4])?;
            req.shape = Some((Shape::Radius(size), unit));
            &args[5..]
        }
        Variant::RadiusByMember { .. } => {
            if source_exists {
                let centre = member_centre(&args[1])?.ok_or_else(|| NO_MEMBER.to_string())?;
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
                req.count = parse_i64(&options[i + 1]).ok_or(errors::NOT_INTEGER.to_string())?;
                if req.count <= 0 {
                    return Err(E::from("ERR COUNT must be > 0".into()));
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
                if source_exists {
                    let centre =
                        member_centre(&options[i + 1])?.ok_or_else(|| NO_MEMBER.to_string())?;
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
                    return Err(E::from("ERR height or width cannot be negative".into()));
                }
                req.shape = Some((Shape::Box { width, height }, unit(&options[i + 3])?));
                by_box = true;
                i += 3;
            }
            _ => return Err(E::from(errors::SYNTAX.into())),
        }
        i += 1;
    }
    if req.store.is_some() && (req.with_dist || req.with_hash || req.with_coord) {
        let who = if variant == Variant::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(E::from(format!(
            "ERR {who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    if variant.is_search() && !(from_member || from_lonlat) {
        return Err(E::from(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {command}"
        )));
    }
    if variant.is_search() && !(by_radius || by_box) {
        return Err(E::from(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {command}"
        )));
    }
    if req.any && req.count == 0 {
        return Err(E::from(
            "ERR the ANY argument requires COUNT argument".into(),
        ));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    fn nowhere(_: &[u8]) -> Result<Option<(f64, f64)>, String> {
        Ok(None)
    }

    fn here(_: &[u8]) -> Result<Option<(f64, f64)>, String> {
        Ok(Some((1.0, 2.0)))
    }

    #[test]
    fn search_grammar_follows_redis() {
        let a = argv("k fromlonlat 15 37 bybox 400 400 km asc count 4 any withcoord");
        let req = request(Variant::Search, &a, true, nowhere, "geosearch").unwrap();
        assert_eq!(req.centre, Some((15.0, 37.0)));
        assert_eq!(
            req.shape,
            Some((
                Shape::Box {
                    width: 400.0,
                    height: 400.0
                },
                1000.0
            ))
        );
        assert!(req.any && req.with_coord && req.count == 4 && req.sort == Sort::Asc);
        let missing = argv("k frommember m byradius 1 m");
        assert_eq!(
            request(Variant::Search, &missing, true, nowhere, "geosearch"),
            Err(NO_MEMBER.to_string())
        );
        // A missing source key: the member is not looked up.
        assert!(request(Variant::Search, &missing, false, nowhere, "geosearch").is_ok());
        assert_eq!(
            request(Variant::Search, &missing, true, here, "geosearch")
                .unwrap()
                .centre,
            Some((1.0, 2.0))
        );
        assert_eq!(
            request(
                Variant::Search,
                &argv("k byradius 1 m"),
                true,
                here,
                "geosearch"
            ),
            Err(
                "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch".into()
            )
        );
        assert_eq!(
            request(
                Variant::Radius { store: true },
                &argv("k 200 0 1 m"),
                true,
                here,
                "georadius"
            ),
            Err("ERR invalid longitude,latitude pair 200.000000,0.000000".into())
        );
        assert_eq!(
            request(
                Variant::Radius { store: true },
                &argv("k 1 1 1 m store d withdist"),
                true,
                here,
                "georadius"
            ),
            Err("ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options".into())
        );
        assert_eq!(
            request(
                Variant::Radius { store: false },
                &argv("k 1"),
                true,
                here,
                "georadius"
            ),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(
            request(
                Variant::Search,
                &argv("k fromlonlat 1 1 byradius 1 m any"),
                true,
                here,
                "geosearch"
            ),
            Err("ERR the ANY argument requires COUNT argument".into())
        );
    }

    #[test]
    fn geoadd_and_units() {
        let a = argv("k nx ch 1 2 m");
        let (flags, triples) = geoadd(&a).unwrap();
        assert!(flags.nx && flags.ch && triples.len() == 3);
        assert_eq!(geoadd(&argv("k nx xx 1 2 m")), Err(errors::SYNTAX.into()));
        assert_eq!(geoadd(&argv("k 1 2")), Err(errors::SYNTAX.into()));
        assert_eq!(geodist_unit(&argv("k a b KM")), Ok(1000.0));
        assert_eq!(geodist_unit(&argv("k a b yd")), Err(UNIT.into()));
        assert_eq!(
            radius(b"-1", b"m"),
            Err("ERR radius cannot be negative".into())
        );
    }
}
