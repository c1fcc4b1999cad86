//! Redis's geohash arithmetic: 52-bit interleaved scores over WGS84 with
//! latitudes clipped to Web Mercator's ±85.05112878°, the haversine
//! distance on Redis's Earth radius, and the choice of the 3×3 boxes that
//! cover a search shape. Every step follows Redis's order of floating-point
//! operations, so positions, distances and the members a search finds are
//! Redis's to the last digit.

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;
pub const STEP_MAX: u8 = 26;
const EARTH_RADIUS_IN_METERS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;

#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

const LONG_RANGE: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// A cell: `step` bits of latitude and of longitude, interleaved
/// (latitude in the even bits). Step 0 with no bits is "no cell".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    const NONE: Hash = Hash { bits: 0, step: 0 };

    fn is_none(self) -> bool {
        self == Hash::NONE
    }

    /// The cell's lowest 52-bit score.
    pub fn align52(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Area {
    pub long: Range,
    pub lat: Range,
}

fn spread(v: u32) -> u64 {
    (0..32).fold(0, |out, i| out | (u64::from((v >> i) & 1) << (2 * i)))
}

fn interleave(lat: u32, long: u32) -> u64 {
    spread(lat) | (spread(long) << 1)
}

fn squash(v: u64) -> u32 {
    (0..32).fold(0, |out, i| out | ((((v >> (2 * i)) & 1) as u32) << i))
}

pub fn in_bounds(long: f64, lat: f64) -> bool {
    rampart_proto::parse::geo::in_bounds(long, lat)
}

/// `geohashEncode`; `None` outside the indexable area.
pub fn encode_in(
    long_range: Range,
    lat_range: Range,
    long: f64,
    lat: f64,
    step: u8,
) -> Option<Hash> {
    if !in_bounds(long, lat)
        || lat < lat_range.min
        || lat > lat_range.max
        || long < long_range.min
        || long > long_range.max
    {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (long - long_range.min) / (long_range.max - long_range.min) * scale;
    // C converts the offsets to uint32_t by truncation.
    Some(Hash {
        bits: interleave(lat_offset as u32, long_offset as u32),
        step,
    })
}

pub fn encode(long: f64, lat: f64, step: u8) -> Option<Hash> {
    encode_in(LONG_RANGE, LAT_RANGE, long, lat, step)
}

fn decode_area(hash: Hash) -> Area {
    let lat_bits = squash(hash.bits);
    let long_bits = squash(hash.bits >> 1);
    let cells = (1u64 << hash.step) as f64;
    let lat_scale = LAT_RANGE.max - LAT_RANGE.min;
    let long_scale = LONG_RANGE.max - LONG_RANGE.min;
    let edge = |min: f64, bits: u32, scale: f64| min + (f64::from(bits) / cells) * scale;
    let far = |min: f64, bits: u32, scale: f64| min + ((f64::from(bits) + 1.0) / cells) * scale;
    Area {
        lat: Range {
            min: edge(LAT_RANGE.min, lat_bits, lat_scale),
            max: far(LAT_RANGE.min, lat_bits, lat_scale),
        },
        long: Range {
            min: edge(LONG_RANGE.min, long_bits, long_scale),
            max: far(LONG_RANGE.min, long_bits, long_scale),
        },
    }
}

/// The (longitude, latitude) a 52-bit score stands for: its cell's centre.
pub fn decode_score(score: f64) -> (f64, f64) {
    let area = decode_area(Hash {
        bits: score as u64,
        step: STEP_MAX,
    });
    let long = ((area.long.min + area.long.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (long, lat)
}

/// The standard 11-character geohash (latitude over ±90°) of a score.
pub fn geohash_string(score: f64) -> String {
    const ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (long, lat) = decode_score(score);
    let standard = Range {
        min: -90.0,
        max: 90.0,
    };
    let bits = encode_in(LONG_RANGE, standard, long, lat, STEP_MAX).map_or(0, |h| h.bits);
    (0..11)
        .map(|i| {
            let index = if i == 10 {
                0
            } else {
                (bits >> (52 - (i + 1) * 5)) & 0x1f
            };
            ALPHABET[index as usize] as char
        })
        .collect()
}

fn deg_rad(degrees: f64) -> f64 {
    degrees * (std::f64::consts::PI / 180.0)
}

fn rad_deg(radians: f64) -> f64 {
    radians / (std::f64::consts::PI / 180.0)
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in meters.
pub fn distance(long1: f64, lat1: f64, long2: f64, lat2: f64) -> f64 {
    let (long1r, long2r) = (deg_rad(long1), deg_rad(long2));
    let v = ((long2r - long1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

pub use rampart_proto::parse::geo::Shape;

#[derive(Debug, Clone, Copy)]
pub struct Search {
    pub long: f64,
    pub lat: f64,
    pub shape: Shape,
    /// Meters per unit.
    pub unit: f64,
}

impl Search {
    /// The distance (meters) from the centre to a point inside the shape.
    pub fn distance_if_inside(&self, long: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(radius) => {
                let d = distance(self.long, self.lat, long, lat);
                (d <= radius * self.unit).then_some(d)
            }
            Shape::Box { width, height } => {
                let (width, height) = (width * self.unit, height * self.unit);
                if lat_distance(lat, self.lat) > height / 2.0 {
                    return None;
                }
                if distance(long, lat, self.long, lat) > width / 2.0 {
                    return None;
                }
                Some(distance(self.long, self.lat, long, lat))
            }
        }
    }

    /// `geohashBoundingBox`: [min long, min lat, max long, max lat].
    fn bounds(&self) -> [f64; 4] {
        let (half_height, half_width) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (height, width) = (self.unit * half_height, self.unit * half_width);
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat - lat_delta).cos());
        let long_delta = if self.lat < 0.0 {
            long_delta_bottom
        } else {
            long_delta_top
        };
        [
            self.long - long_delta,
            self.lat - lat_delta,
            self.long + long_delta,
            self.lat + lat_delta,
        ]
    }

    /// `geohashCalculateAreasByShapeWGS84`: the centre cell and its eight
    /// neighbours, in Redis's scan order (centre, N, S, E, W, NE, NW, SE,
    /// SW), with cells that cannot hold a match left out.
    pub fn cells(&self) -> [Hash; 9] {
        let [min_long, min_lat, max_long, max_lat] = self.bounds();
        let radius_meters = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.unit;
        let mut step = estimate_step(radius_meters, self.lat);
        let centre = |step| encode(self.long, self.lat, step).unwrap_or(Hash { bits: 0, step });
        let mut hash = centre(step);
        let mut n = Neighbours::of(hash);
        let too_coarse = decode_area(n.north).lat.max < max_lat
            || decode_area(n.south).lat.min > min_lat
            || decode_area(n.east).long.max < max_long
            || decode_area(n.west).long.min > min_long;
        if step > 1 && too_coarse {
            step -= 1;
            hash = centre(step);
            n = Neighbours::of(hash);
        }
        let area = decode_area(hash);
        if step >= 2 {
            if area.lat.min < min_lat {
                n.south = Hash::NONE;
                n.south_west = Hash::NONE;
                n.south_east = Hash::NONE;
            }
            if area.lat.max > max_lat {
                n.north = Hash::NONE;
                n.north_east = Hash::NONE;
                n.north_west = Hash::NONE;
            }
            if area.long.min < min_long {
                n.west = Hash::NONE;
                n.south_west = Hash::NONE;
                n.north_west = Hash::NONE;
            }
            if area.long.max > max_long {
                n.east = Hash::NONE;
                n.south_east = Hash::NONE;
                n.north_east = Hash::NONE;
            }
        }
        [
            hash,
            n.north,
            n.south,
            n.east,
            n.west,
            n.north_east,
            n.north_west,
            n.south_east,
            n.south_west,
        ]
    }
}

/// The cells to scan, each as a score range [min, max), skipping empty
/// cells and a cell equal to the last one scanned (huge radii).
pub fn score_ranges(cells: &[Hash; 9]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut last: Option<usize> = None;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_none() {
            continue;
        }
        // Redis's `last_processed` starts at 0 and is tested for non-zero,
        // so the centre cell is never treated as a previous duplicate.
        if let Some(prev) = last.filter(|p| *p != 0) {
            if cells[prev] == *cell {
                continue;
            }
        }
        let min = cell.align52();
        let max = Hash {
            bits: cell.bits + 1,
            step: cell.step,
        }
        .align52();
        out.push((min as f64, max as f64));
        last = Some(i);
    }
    out
}

fn estimate_step(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

struct Neighbours {
    north: Hash,
    south: Hash,
    east: Hash,
    west: Hash,
    north_east: Hash,
    north_west: Hash,
    south_east: Hash,
    south_west: Hash,
}

impl Neighbours {
    fn of(hash: Hash) -> Neighbours {
        let at = |dx: i8, dy: i8| move_y(move_x(hash, dx), dy);
        Neighbours {
            east: at(1, 0),
            west: at(-1, 0),
            south: at(0, -1),
            north: at(0, 1),
            north_west: at(-1, 1),
            south_west: at(-1, -1),
            north_east: at(1, 1),
            south_east: at(1, -1),
        }
    }
}

const ODD: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const EVEN: u64 = 0x5555_5555_5555_5555;

/// Moves one cell east (+1) or west (-1): the longitude bits are the odd ones.
fn move_x(hash: Hash, d: i8) -> Hash {
    step_bits(hash, d, ODD, EVEN)
}

/// Moves one cell north (+1) or south (-1).
fn move_y(hash: Hash, d: i8) -> Hash {
    step_bits(hash, d, EVEN, ODD)
}

fn step_bits(hash: Hash, d: i8, moving: u64, other: u64) -> Hash {
    if d == 0 {
        return hash;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let mut x = hash.bits & moving;
    let y = hash.bits & other;
    let zz = other >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x = (x | zz).wrapping_sub(zz + 1);
    }
    x &= moving >> shift;
    Hash {
        bits: x | y,
        step: hash.step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_doc_example_round_trips() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo": score and position.
        let hash = encode(13.361389, 38.115556, STEP_MAX).unwrap();
        assert_eq!(hash.align52(), 3_479_099_956_230_698);
        let (long, lat) = decode_score(3_479_099_956_230_698.0);
        assert_eq!(
            rampart_proto::reply::format_human_double(long),
            "13.36138933897018433"
        );
        assert_eq!(
            rampart_proto::reply::format_human_double(lat),
            "38.11555639549629859"
        );
        assert_eq!(geohash_string(3_479_099_956_230_698.0), "sqc8b49rny0");
    }

    #[test]
    fn distance_matches_redis_doc() {
        let (p_long, p_lat) =
            decode_score(encode(13.361389, 38.115556, 26).unwrap().align52() as f64);
        let (c_long, c_lat) =
            decode_score(encode(15.087269, 37.502669, 26).unwrap().align52() as f64);
        assert_eq!(
            format!("{:.4}", distance(p_long, p_lat, c_long, c_lat)),
            "166274.1516"
        );
    }

    #[test]
    fn out_of_range_positions_do_not_encode() {
        assert!(encode(180.1, 0.0, 26).is_none());
        assert!(encode(0.0, 85.06, 26).is_none());
        assert!(encode(-180.0, -85.05112878, 26).is_some());
    }

    #[test]
    fn neighbours_wrap_and_step() {
        let hash = encode(0.0, 0.0, 4).unwrap();
        let n = Neighbours::of(hash);
        assert!(decode_area(n.north).lat.min >= decode_area(hash).lat.max - 1e-9);
        assert!(decode_area(n.east).long.min >= decode_area(hash).long.max - 1e-9);
        assert_eq!(n.west.step, 4);
    }
}
