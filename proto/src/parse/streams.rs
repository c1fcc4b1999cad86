//! Stream commands' arguments: entry ids (`<ms>-<seq>`) and the ways
//! commands spell them (XADD's `*` / `<ms>-*`, range bounds with `-`, `+`
//! and `(`, strict ids), and the options of XADD / XTRIM, XREAD,
//! XREADGROUP, XCLAIM, XAUTOCLAIM, XPENDING and XGROUP CREATE / SETID.

use std::fmt;

use crate::args::parse_i64;
use crate::errors;

/// `ERR Invalid stream ID specified as stream command argument`.
pub const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// A stream entry id. Ordered by `(ms, seq)`, as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// 16 bytes whose byte order is id order (the entry key suffix).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<StreamId> {
        if bytes.len() != 16 {
            return None;
        }
        Some(StreamId {
            ms: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            seq: u64::from_be_bytes(bytes[8..].try_into().ok()?),
        })
    }

    /// The next id after this one, `None` at the maximum.
    pub fn successor(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The id before this one, `None` at 0-0.
    pub fn predecessor(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The id as a bulk-string reply payload.
    pub fn to_reply_bytes(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses a decimal u64 the way Redis's `string2ull` does: digits only,
/// no sign, no spaces, no overflow.
pub fn parse_u64(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// Parses `<ms>-<seq>` or `<ms>`; a missing seq becomes `missing_seq`.
/// `-` and `+` are accepted as the minimum and maximum id.
pub fn parse_id(raw: &[u8], missing_seq: u64) -> Result<StreamId, String> {
    parse_id_opt(raw, missing_seq).ok_or_else(|| INVALID_ID.into())
}

fn parse_id_opt(raw: &[u8], missing_seq: u64) -> Option<StreamId> {
    match raw {
        b"-" => return Some(StreamId::MIN),
        b"+" => return Some(StreamId::MAX),
        _ => {}
    }
    match raw.iter().position(|&b| b == b'-') {
        None => Some(StreamId::new(parse_u64(raw)?, missing_seq)),
        Some(dash) => Some(StreamId::new(
            parse_u64(&raw[..dash])?,
            parse_u64(&raw[dash + 1..])?,
        )),
    }
}

/// An XADD id argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddId {
    /// `*`: the leader's clock, or last id + 1.
    Auto,
    /// `<ms>-*`: the given ms with the next free sequence number.
    AutoSeq(u64),
    /// A complete id.
    Explicit(StreamId),
}

/// Parses XADD's id argument (`*`, `<ms>-*`, `<ms>-<seq>`, `<ms>`).
pub fn parse_add_id(raw: &[u8]) -> Result<AddId, String> {
    if raw == b"*" {
        return Ok(AddId::Auto);
    }
    if let Some(ms) = raw.strip_suffix(b"-*") {
        return parse_u64(ms)
            .map(AddId::AutoSeq)
            .ok_or_else(|| INVALID_ID.into());
    }
    if raw == b"-" || raw == b"+" {
        return Err(INVALID_ID.into());
    }
    parse_id(raw, 0).map(AddId::Explicit)
}

/// Which end of an XRANGE/XREVRANGE/XPENDING interval a bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    Start,
    End,
}

/// Parses a range bound: `-`, `+`, `<id>`, `<ms>` (seq 0 as a start, max as
/// an end), or `(<id>` for exclusive; returns it as an inclusive id.
pub fn parse_range_bound(raw: &[u8], end: RangeEnd) -> Result<StreamId, String> {
    let missing_seq = match end {
        RangeEnd::Start => 0,
        RangeEnd::End => u64::MAX,
    };
    if let Some(inner) = raw.strip_prefix(b"(") {
        if inner == b"-" || inner == b"+" {
            return Err(INVALID_ID.into());
        }
        let id = parse_id(inner, missing_seq)?;
        return match end {
            RangeEnd::Start => match id.successor() {
                Some(next) => Ok(next),
                None => Err("ERR invalid start ID for the interval".into()),
            },
            RangeEnd::End => match id.predecessor() {
                Some(prev) => Ok(prev),
                None => Err("ERR invalid end ID for the interval".into()),
            },
        };
    }
    parse_id(raw, missing_seq)
}

/// A strict id: `-` and `+` are not ids here (Redis's
/// `streamParseStrictIDOrReply`), as XDEL, XSETID, MINID, XREAD and the
/// group commands take them.
pub fn parse_strict_id(raw: &[u8]) -> Result<StreamId, String> {
    if raw == b"-" || raw == b"+" {
        return Err(INVALID_ID.into());
    }
    parse_id(raw, 0)
}

fn is(raw: &[u8], word: &str) -> bool {
    raw.eq_ignore_ascii_case(word.as_bytes())
}

/// Redis quotes names in error texts as `%s`; keep them readable and short.
pub fn quote(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(128)]).into_owned()
}

// ---------------------------------------------------------------------------
// XADD / XTRIM

/// Entries per "node" for approximate trimming (Redis's
/// `stream-node-max-entries` default).
pub const APPROX_NODE: u64 = 100;
/// LIMIT's default with `~` (Redis: 100 * stream-node-max-entries).
pub const APPROX_DEFAULT_LIMIT: u64 = 100 * APPROX_NODE;

pub const MAXLEN_AND_MINID: &str =
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
pub const LIMIT_WITHOUT_APPROX: &str =
    "ERR syntax error, LIMIT cannot be used without the special ~ option";

/// What a trim keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimTo {
    /// At most this many entries.
    MaxLen(u64),
    /// Only entries with ids at or above this one.
    MinId(StreamId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    pub to: TrimTo,
    pub approx: bool,
    /// Most entries one trim removes; 0 = no limit.
    pub limit: u64,
}

/// The options of XADD (`xadd`) or XTRIM, after the key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AddOrTrim {
    pub trim: Option<Trim>,
    pub nomkstream: bool,
    /// XADD only: the id and the index of the first field in `args`.
    pub id: Option<(AddId, usize)>,
}

/// Parses `[NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] id`
/// (XADD) or `MAXLEN|MINID [=|~] threshold [LIMIT count]` (XTRIM), with
/// Redis's checks in Redis's order. `args[0]` is the key.
pub fn add_or_trim(args: &[Vec<u8>], xadd: bool) -> Result<AddOrTrim, String> {
    let mut out = AddOrTrim::default();
    let mut to: Option<TrimTo> = None;
    let mut approx = false;
    let mut limit: Option<u64> = None;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args[i].as_slice();
        if xadd && opt == b"*" {
            out.id = Some((AddId::Auto, i + 1));
            break;
        }
        let is_maxlen = is(opt, "maxlen");
        if (is_maxlen || is(opt, "minid")) && more >= 1 {
            if to.is_some() {
                return Err(MAXLEN_AND_MINID.into());
            }
            approx = false;
            let next = args[i + 1].as_slice();
            if more >= 2 && (next == b"~" || next == b"=") {
                approx = next == b"~";
                i += 1;
            }
            let raw = &args[i + 1];
            to = Some(if is_maxlen {
                let n = parse_i64(raw).ok_or(errors::NOT_INTEGER)?;
                if n < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                TrimTo::MaxLen(n as u64)
            } else {
                TrimTo::MinId(parse_strict_id(raw)?)
            });
            i += 2;
        } else if is(opt, "limit") && more >= 1 {
            let n = parse_i64(&args[i + 1]).ok_or(errors::NOT_INTEGER)?;
            if n < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            limit = Some(n as u64);
            i += 2;
        } else if xadd && is(opt, "nomkstream") {
            out.nomkstream = true;
            i += 1;
        } else if xadd {
            out.id = Some((parse_add_id(opt)?, i + 1));
            break;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    let limit = match limit {
        Some(_) if !approx => return Err(LIMIT_WITHOUT_APPROX.into()),
        Some(n) => n,
        None if approx => APPROX_DEFAULT_LIMIT,
        None => 0,
    };
    out.trim = to.map(|to| Trim { to, approx, limit });
    if !xadd && out.trim.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// XREAD / XREADGROUP

/// BLOCK's timeout (milliseconds) with Redis's errors: `None` for 0
/// (forever).
pub fn block_ms(raw: &[u8], now: i64) -> Result<Option<u64>, String> {
    let ms = parse_i64(raw).ok_or("ERR timeout is not an integer or out of range")?;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    if ms > 0 && ms > i64::MAX - now.max(0) {
        return Err("ERR timeout is out of range".into());
    }
    Ok((ms > 0).then_some(ms as u64))
}

/// XREAD's arguments, ids still as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XRead {
    /// 0 = no limit.
    pub count: u64,
    /// `Some(None)`: BLOCK 0 (forever); `Some(Some(ms))`; `None`: no BLOCK.
    pub block: Option<Option<u64>>,
    pub keys: Vec<Vec<u8>>,
    pub ids: Vec<Vec<u8>>,
}

/// Parses XREAD's `[COUNT count] [BLOCK ms] STREAMS key [key ...] id [id
/// ...]` with Redis's errors. `now` bounds the timeout as Redis does.
pub fn xread(args: &[Vec<u8>], now: i64) -> Result<XRead, String> {
    let mut out = XRead {
        count: 0,
        block: None,
        keys: Vec::new(),
        ids: Vec::new(),
    };
    let mut streams_at = None;
    let mut i = 0;
    while i < args.len() {
        let more = args.len() - i - 1;
        let opt = args[i].as_slice();
        if is(opt, "block") && more > 0 {
            out.block = Some(block_ms(&args[i + 1], now)?);
            i += 2;
        } else if is(opt, "count") && more > 0 {
            let n = parse_i64(&args[i + 1]).ok_or(errors::NOT_INTEGER)?;
            out.count = n.max(0) as u64;
            i += 2;
        } else if is(opt, "streams") && more > 0 {
            if !more.is_multiple_of(2) {
                return Err("ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.".into());
            }
            streams_at = Some(i + 1);
            break;
        } else if is(opt, "group") && more >= 2 {
            return Err(
                "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
                    .into(),
            );
        } else if is(opt, "noack") {
            return Err(
                "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
                    .into(),
            );
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    let Some(at) = streams_at else {
        return Err(errors::SYNTAX.into());
    };
    let half = (args.len() - at) / 2;
    out.keys = args[at..at + half].to_vec();
    out.ids = args[at + half..].to_vec();
    Ok(out)
}

/// XREADGROUP's parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadGroupArgs<'a> {
    pub group: &'a [u8],
    pub consumer: &'a [u8],
    /// 0: no limit.
    pub count: usize,
    pub noack: bool,
    pub keys: &'a [Vec<u8>],
    pub ids: &'a [Vec<u8>],
}

/// Parses XREADGROUP's arguments (after the command name) like Redis's
/// `xreadCommand`: options in any order until STREAMS, which takes the rest.
pub fn readgroup(args: &[Vec<u8>], now: i64) -> Result<ReadGroupArgs<'_>, String> {
    let mut group_consumer = None;
    let mut count = 0usize;
    let mut noack = false;
    let mut streams_at = None;
    let mut i = 0;
    while i < args.len() {
        let more = args.len() - i - 1;
        let opt = &args[i];
        if is(opt, "BLOCK") && more > 0 {
            i += 1;
            block_ms(&args[i], now)?;
        } else if is(opt, "COUNT") && more > 0 {
            i += 1;
            let n = parse_i64(&args[i]).ok_or(errors::NOT_INTEGER)?;
            count = n.max(0) as usize;
        } else if is(opt, "STREAMS") && more > 0 {
            if !more.is_multiple_of(2) {
                return Err("ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified.".into());
            }
            streams_at = Some(i + 1);
            break;
        } else if is(opt, "GROUP") && more >= 2 {
            group_consumer = Some((&args[i + 1][..], &args[i + 2][..]));
            i += 2;
        } else if is(opt, "NOACK") {
            noack = true;
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 1;
    }
    let Some(at) = streams_at else {
        return Err(errors::SYNTAX.into());
    };
    let Some((group, consumer)) = group_consumer else {
        return Err("ERR Missing GROUP option for XREADGROUP".into());
    };
    let n = (args.len() - at) / 2;
    Ok(ReadGroupArgs {
        group,
        consumer,
        count,
        noack,
        keys: &args[at..at + n],
        ids: &args[at + n..],
    })
}

// ---------------------------------------------------------------------------
// XCLAIM / XPENDING

/// XCLAIM's arguments after the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimOptions {
    /// The delivery time to set; `None`: now.
    pub delivery_time: Option<i64>,
    pub retry_count: Option<u64>,
    pub force: bool,
    pub justid: bool,
    pub last_id: StreamId,
}

/// Parses XCLAIM's min-idle-time, ids and options (args from the
/// min-idle-time on). Like Redis, the ids run until the first argument that
/// is not an id; the rest are options.
pub fn xclaim(args: &[Vec<u8>], now: i64) -> Result<(i64, Vec<StreamId>, ClaimOptions), String> {
    let min_idle = args
        .first()
        .and_then(|raw| parse_i64(raw))
        .ok_or("ERR Invalid min-idle-time argument for XCLAIM")?
        .max(0);
    let mut ids = Vec::new();
    let mut j = 1;
    while j < args.len() {
        match parse_strict_id(&args[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let mut opts = ClaimOptions {
        delivery_time: None,
        retry_count: None,
        force: false,
        justid: false,
        last_id: StreamId::MIN,
    };
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        let number = |raw: &[u8], what: &str| -> Result<i64, String> {
            parse_i64(raw).ok_or_else(|| format!("ERR Invalid {what} option argument for XCLAIM"))
        };
        if is(opt, "FORCE") {
            opts.force = true;
        } else if is(opt, "JUSTID") {
            opts.justid = true;
        } else if is(opt, "IDLE") && more > 0 {
            j += 1;
            opts.delivery_time = Some(now.saturating_sub(number(&args[j], "IDLE")?));
        } else if is(opt, "TIME") && more > 0 {
            j += 1;
            opts.delivery_time = Some(number(&args[j], "TIME")?);
        } else if is(opt, "RETRYCOUNT") && more > 0 {
            j += 1;
            // A negative count means "not given", as in Redis.
            let n = number(&args[j], "RETRYCOUNT")?;
            opts.retry_count = u64::try_from(n).ok();
        } else if is(opt, "LASTID") && more > 0 {
            j += 1;
            opts.last_id = parse_strict_id(&args[j])?;
        } else {
            return Err(format!("ERR Unrecognized XCLAIM option '{}'", quote(opt)));
        }
        j += 1;
    }
    // A delivery time in the future or before the epoch is taken as now:
    // client clocks drift, and that is no reason to fail the claim.
    opts.delivery_time = opts
        .delivery_time
        .map(|t| if t < 0 || t > now { now } else { t });
    Ok((min_idle, ids, opts))
}

/// XPENDING's extended form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRange<'a> {
    pub min_idle: i64,
    pub start: StreamId,
    pub end: StreamId,
    pub count: usize,
    pub consumer: Option<&'a [u8]>,
}

/// Parses XPENDING's `key group [[IDLE ms] start end count [consumer]]`
/// (`args` include key and group) in Redis's order (count first, then
/// start, then end); `None` for the summary form.
pub fn pending_range(args: &[Vec<u8>]) -> Result<Option<PendingRange<'_>>, String> {
    let argc = args.len() + 1;
    if argc == 3 {
        return Ok(None);
    }
    if !(6..=9).contains(&argc) {
        return Err(errors::SYNTAX.into());
    }
    let mut at = 2;
    let mut min_idle = 0;
    if is(&args[2], "IDLE") {
        min_idle = parse_i64(&args[3]).ok_or(errors::NOT_INTEGER)?;
        if argc < 8 {
            return Err(errors::SYNTAX.into());
        }
        at += 2;
    }
    let count = parse_i64(&args[at + 2]).ok_or(errors::NOT_INTEGER)?.max(0) as usize;
    let start = parse_range_bound(&args[at], RangeEnd::Start)?;
    let end = parse_range_bound(&args[at + 1], RangeEnd::End)?;
    Ok(Some(PendingRange {
        min_idle,
        start,
        end,
        count,
        consumer: args.get(at + 3).map(Vec::as_slice),
    }))
}

/// XAUTOCLAIM's largest COUNT, Redis's `LONG_MAX / max(sizeof(streamID), 10)`.
pub const MAX_AUTOCLAIM_COUNT: i64 = i64::MAX / 16;

/// XAUTOCLAIM's `key group consumer min-idle-time start [COUNT count]
/// [JUSTID]` (`args` from the key on): `(min_idle, start, count, justid)`.
pub fn xautoclaim(args: &[Vec<u8>]) -> Result<(i64, StreamId, i64, bool), String> {
    if args.len() < 5 {
        return Err(errors::SYNTAX.into());
    }
    let min_idle = parse_i64(&args[3])
        .ok_or("ERR Invalid min-idle-time argument for XAUTOCLAIM")?
        .max(0);
    let start = parse_range_bound(&args[4], RangeEnd::Start)?;
    let mut count = 100i64;
    let mut justid = false;
    let mut j = 5;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "COUNT") && more > 0 {
            count = parse_i64(&args[j + 1])
                .filter(|n| (1..=MAX_AUTOCLAIM_COUNT).contains(n))
                .ok_or("ERR COUNT must be > 0")?;
            j += 1;
        } else if is(&args[j], "JUSTID") {
            justid = true;
        } else {
            return Err(errors::SYNTAX.into());
        }
        j += 1;
    }
    Ok((min_idle, start, count, justid))
}

// ---------------------------------------------------------------------------
// XGROUP

/// XGROUP's subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSub {
    Create,
    SetId,
    Destroy,
    CreateConsumer,
    DelConsumer,
    Help,
}

/// XGROUP's subcommand and options, as far as they are checked before the
/// key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XGroup {
    pub sub: GroupSub,
    pub mkstream: bool,
    /// ENTRIESREAD, -1 when not given.
    pub entries_read: i64,
    /// Whether the argument count fits the subcommand's forms; Redis
    /// reports it only after checking the key and group.
    pub form_ok: bool,
}

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try XGROUP HELP.`
pub fn xgroup_syntax(sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
        quote(sub)
    )
}

/// `ERR wrong number of arguments for '<command>|<sub>' command` when
/// `argc` (with the command name) does not fit `arity` (Redis's sign
/// convention: negative = at least).
pub fn subcommand_arity(command: &str, sub: &str, arity: i64, argc: usize) -> Result<(), String> {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    if (arity > 0 && argc != arity) || argc < -arity {
        return Err(errors::wrong_arity(&format!(
            "{command}|{}",
            sub.to_ascii_lowercase()
        )));
    }
    Ok(())
}

/// Parses XGROUP's arguments (after the command name): the subcommand with
/// its arity, then CREATE's and SETID's options.
pub fn xgroup(args: &[Vec<u8>]) -> Result<XGroup, String> {
    let argc = args.len() + 1;
    let Some(sub_raw) = args.first() else {
        return Err(errors::wrong_arity("xgroup"));
    };
    let sub_name = String::from_utf8_lossy(sub_raw).to_ascii_uppercase();
    let (sub, arity) = match sub_name.as_str() {
        "CREATE" => (GroupSub::Create, -5),
        "SETID" => (GroupSub::SetId, -5),
        "DESTROY" => (GroupSub::Destroy, 4),
        "CREATECONSUMER" => (GroupSub::CreateConsumer, 5),
        "DELCONSUMER" => (GroupSub::DelConsumer, 5),
        "HELP" => (GroupSub::Help, 2),
        _ => return Err(errors::unknown_subcommand("xgroup", sub_raw)),
    };
    subcommand_arity("xgroup", &sub_name, arity, argc)?;
    let mut out = XGroup {
        sub,
        mkstream: false,
        entries_read: -1,
        form_ok: true,
    };
    if sub == GroupSub::Help {
        return Ok(out);
    }
    let mut i = 4;
    while i < args.len() {
        if sub == GroupSub::Create && is(&args[i], "MKSTREAM") {
            out.mkstream = true;
            i += 1;
        } else if matches!(sub, GroupSub::Create | GroupSub::SetId)
            && is(&args[i], "ENTRIESREAD")
            && i + 1 < args.len()
        {
            let n = parse_i64(&args[i + 1]).ok_or(errors::NOT_INTEGER)?;
            if n < -1 {
                return Err("ERR value for ENTRIESREAD must be positive or -1".into());
            }
            out.entries_read = n;
            i += 2;
        } else {
            return Err(xgroup_syntax(sub_raw));
        }
    }
    out.form_ok = match sub {
        GroupSub::Create => (5..=8).contains(&argc),
        GroupSub::SetId => argc == 5 || argc == 7,
        _ => true,
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Vec<u8>> {
        s.split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn xadd_and_xtrim_options() {
        let a = argv("k nomkstream maxlen ~ 10 limit 5 * f v");
        let o = add_or_trim(&a, true).unwrap();
        assert!(o.nomkstream);
        assert_eq!(o.id, Some((AddId::Auto, 8)));
        assert_eq!(
            o.trim,
            Some(Trim {
                to: TrimTo::MaxLen(10),
                approx: true,
                limit: 5
            })
        );
        assert_eq!(
            add_or_trim(&argv("k maxlen 1 minid 2 *"), true),
            Err(MAXLEN_AND_MINID.into())
        );
        assert_eq!(
            add_or_trim(&argv("k maxlen 1 limit 2"), false),
            Err(LIMIT_WITHOUT_APPROX.into())
        );
        assert_eq!(
            add_or_trim(&argv("k"), false),
            Err("ERR syntax error, XTRIM must be called with a trimming strategy".into())
        );
        assert_eq!(
            add_or_trim(&argv("k minid + *"), true),
            Err(INVALID_ID.into())
        );
    }

    #[test]
    fn xread_and_xreadgroup_options() {
        let x = xread(&argv("count 2 block 0 streams a b 0 $"), 5).unwrap();
        assert_eq!((x.count, x.block), (2, Some(None)));
        assert_eq!(x.keys, argv("a b"));
        assert!(xread(&argv("streams a"), 5)
            .unwrap_err()
            .contains("Unbalanced 'xread'"));
        assert_eq!(
            xread(&argv("block -1 streams a 0"), 5),
            Err("ERR timeout is negative".into())
        );
        let a = argv("group g c noack streams a >");
        let g = readgroup(&a, 5).unwrap();
        assert!(g.noack && g.group == b"g" && g.ids == argv(">").as_slice());
        assert_eq!(
            readgroup(&argv("streams a >"), 5),
            Err("ERR Missing GROUP option for XREADGROUP".into())
        );
    }

    #[test]
    fn xautoclaim_and_xgroup_options() {
        let a = argv("k g c 10 (1-1 count 5 justid");
        assert_eq!(xautoclaim(&a), Ok((10, StreamId::new(1, 2), 5, true)));
        assert_eq!(
            xautoclaim(&argv("k g c 10 0 count 0")),
            Err("ERR COUNT must be > 0".into())
        );
        let g = xgroup(&argv("create k g $ mkstream entriesread 3")).unwrap();
        assert!(g.mkstream && g.entries_read == 3 && g.form_ok);
        assert_eq!(xgroup(&argv("help")).unwrap().sub, GroupSub::Help);
        assert_eq!(
            xgroup(&argv("destroy k")),
            Err("ERR wrong number of arguments for 'xgroup|destroy' command".into())
        );
        assert_eq!(
            xgroup(&argv("create k g $ bogus")),
            Err("ERR unknown subcommand or wrong number of arguments for 'create'. Try XGROUP HELP.".into())
        );
        assert_eq!(
            xgroup(&argv("setid k g $ entriesread -2")),
            Err("ERR value for ENTRIESREAD must be positive or -1".into())
        );
        assert!(xgroup(&argv("setid k g $ mkstream x")).is_err());
        assert!(xgroup(&argv("setid k g $ entriesread 1 x")).is_err());
    }

    #[test]
    fn xclaim_and_xpending_options() {
        let (idle, ids, o) = xclaim(&argv("10 1-1 2 idle 5 force justid lastid 3-0"), 100).unwrap();
        assert_eq!((idle, ids.len()), (10, 2));
        assert!(o.force && o.justid && o.delivery_time == Some(95));
        assert_eq!(o.last_id, StreamId::new(3, 0));
        assert_eq!(
            xclaim(&argv("10 1-1 bogus"), 100),
            Err("ERR Unrecognized XCLAIM option 'bogus'".into())
        );
        assert_eq!(
            xclaim(&argv("x 1-1"), 100),
            Err("ERR Invalid min-idle-time argument for XCLAIM".into())
        );
        let a = argv("k g idle 5 - + 10 c");
        let p = pending_range(&a).unwrap().unwrap();
        assert_eq!((p.min_idle, p.count, p.consumer), (5, 10, Some(&b"c"[..])));
        assert_eq!(pending_range(&argv("k g")), Ok(None));
        assert_eq!(pending_range(&argv("k g -")), Err(errors::SYNTAX.into()));
    }

    #[test]
    fn ids_parse_and_print_like_redis() {
        assert_eq!(parse_id(b"5-3", 0).unwrap(), StreamId::new(5, 3));
        assert_eq!(parse_id(b"5", 7).unwrap(), StreamId::new(5, 7));
        assert_eq!(parse_id(b"-", 0).unwrap(), StreamId::MIN);
        assert_eq!(parse_id(b"+", 0).unwrap(), StreamId::MAX);
        for bad in [
            &b""[..],
            b"a",
            b"1-",
            b"-1",
            b"1-2-3",
            b"+1",
            b" 1",
            b"99999999999999999999999",
        ] {
            assert!(
                parse_id(bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(StreamId::new(1, 2).to_string(), "1-2");
    }

    #[test]
    fn byte_order_is_id_order() {
        let ids = [
            StreamId::new(0, 1),
            StreamId::new(0, 256),
            StreamId::new(1, 0),
            StreamId::new(1 << 40, 3),
        ];
        for pair in ids.windows(2) {
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
            assert_eq!(StreamId::from_bytes(&pair[1].to_bytes()), Some(pair[1]));
        }
    }

    #[test]
    fn add_ids() {
        assert_eq!(parse_add_id(b"*").unwrap(), AddId::Auto);
        assert_eq!(parse_add_id(b"12-*").unwrap(), AddId::AutoSeq(12));
        assert_eq!(
            parse_add_id(b"12").unwrap(),
            AddId::Explicit(StreamId::new(12, 0))
        );
        assert!(parse_add_id(b"x-*").is_err());
        assert!(parse_add_id(b"+").is_err());
    }

    #[test]
    fn exclusive_bounds() {
        assert_eq!(
            parse_range_bound(b"(5-3", RangeEnd::Start).unwrap(),
            StreamId::new(5, 4)
        );
        assert_eq!(
            parse_range_bound(b"(5", RangeEnd::End).unwrap(),
            StreamId::new(5, u64::MAX - 1)
        );
        assert!(parse_range_bound(b"(0-0", RangeEnd::End).is_err());
        assert!(parse_range_bound(b"(-", RangeEnd::Start).is_err());
        assert_eq!(
            parse_range_bound(b"7", RangeEnd::End).unwrap(),
            StreamId::new(7, u64::MAX)
        );
    }
}
