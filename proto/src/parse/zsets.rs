//! Sorted-set commands' options: ZADD's flags, score and lex ranges, the
//! ZRANGE family (`zrangeGenericCommand`: BYSCORE, BYLEX, REV, LIMIT,
//! WITHSCORES), ZUNION / ZINTER / ZDIFF's WEIGHTS and AGGREGATE,
//! ZINTERCARD's LIMIT, ZPOP's count, ZRANK's WITHSCORE and ZMPOP.

use crate::args::{parse_f64, parse_i64};
use crate::errors;

use super::collection::{self, MpopArgs};

pub const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
pub const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";
pub const XX_NX_CONFLICT: &str = "ERR XX and NX options at the same time are not compatible";
pub const INCR_SINGLE_PAIR: &str = "ERR INCR option supports a single increment-element pair";
pub const LIMIT_NEEDS_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
pub const WITHSCORES_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";

/// ZADD's `[NX | XX] [GT | LT] [CH] [INCR]` (also used by ZINCRBY and GEOADD).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub ch: bool,
    pub incr: bool,
}

/// Reads ZADD's leading flags (`args` after the key); returns them and how
/// many arguments they took. Anything else ends the flags, as in Redis.
pub fn zadd_flags(args: &[Vec<u8>]) -> (AddFlags, usize) {
    let mut flags = AddFlags::default();
    let mut i = 0;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"NX" => flags.nx = true,
            b"XX" => flags.xx = true,
            b"GT" => flags.gt = true,
            b"LT" => flags.lt = true,
            b"CH" => flags.ch = true,
            b"INCR" => flags.incr = true,
            _ => break,
        }
        i += 1;
    }
    (flags, i)
}

/// Checks ZADD's flags against its `score member ...` pairs and parses the
/// scores, with Redis's errors in Redis's order.
pub fn zadd_scores(flags: &AddFlags, pairs: &[Vec<u8>]) -> Result<Vec<f64>, String> {
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(errors::SYNTAX.into());
    }
    if flags.nx && flags.xx {
        return Err(XX_NX_CONFLICT.into());
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(errors::GT_LT_NX_CONFLICT.into());
    }
    if flags.incr && pairs.len() > 2 {
        return Err(INCR_SINGLE_PAIR.into());
    }
    pairs
        .chunks(2)
        .map(|pair| parse_f64(&pair[0]).ok_or_else(|| errors::NOT_FLOAT.to_string()))
        .collect()
}

/// A score range: `min max` with `(` for an exclusive bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub min_ex: bool,
    pub max: f64,
    pub max_ex: bool,
}

impl ScoreRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, String> {
        let bound = |raw: &[u8]| -> Result<(f64, bool), String> {
            let (ex, text) = match raw.split_first() {
                Some((b'(', rest)) => (true, rest),
                _ => (false, raw),
            };
            Ok((parse_f64(text).ok_or(NOT_FLOAT_RANGE)?, ex))
        };
        let (min, min_ex) = bound(min)?;
        let (max, max_ex) = bound(max)?;
        Ok(ScoreRange {
            min,
            min_ex,
            max,
            max_ex,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_ex || self.max_ex))
    }

    pub fn above_min(&self, s: f64) -> bool {
        if self.min_ex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    pub fn below_max(&self, s: f64) -> bool {
        if self.max_ex {
            s < self.max
        } else {
            s <= self.max
        }
    }
}

/// One end of a lex range: `-`, `+`, `[incl` or `(excl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

impl LexBound {
    pub fn parse(raw: &[u8]) -> Result<LexBound, String> {
        match raw.split_first() {
            Some((b'-', [])) => Ok(LexBound::NegInf),
            Some((b'+', [])) => Ok(LexBound::PosInf),
            Some((b'[', rest)) => Ok(LexBound::Incl(rest.to_vec())),
            Some((b'(', rest)) => Ok(LexBound::Excl(rest.to_vec())),
            _ => Err(NOT_LEX_RANGE.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, String> {
        Ok(LexRange {
            min: LexBound::parse(min)?,
            max: LexBound::parse(max)?,
        })
    }

    pub fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(b) => m >= b.as_slice(),
            LexBound::Excl(b) => m > b.as_slice(),
        }
    }

    pub fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(b) => m <= b.as_slice(),
            LexBound::Excl(b) => m < b.as_slice(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match (&self.min, &self.max) {
            (LexBound::PosInf, _) | (_, LexBound::NegInf) => true,
            (LexBound::NegInf, _) | (_, LexBound::PosInf) => false,
            (LexBound::Incl(a), LexBound::Incl(b)) => a > b,
            (LexBound::Incl(a) | LexBound::Excl(a), LexBound::Incl(b) | LexBound::Excl(b)) => {
                a >= b
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// What ZREMRANGEBY* (and ZCOUNT / ZLEXCOUNT) select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemBy {
    Rank,
    Score,
    Lex,
}

impl Range {
    /// `min max` read as ranks, scores or lex bounds.
    pub fn parse(by: RemBy, min: &[u8], max: &[u8]) -> Result<Range, String> {
        Ok(match by {
            RemBy::Rank => Range::Rank(
                parse_i64(min).ok_or(errors::NOT_INTEGER)?,
                parse_i64(max).ok_or(errors::NOT_INTEGER)?,
            ),
            RemBy::Score => Range::Score(ScoreRange::parse(min, max)?),
            RemBy::Lex => Range::Lex(LexRange::parse(min, max)?),
        })
    }
}

/// A parsed ZRANGE-family request (`min`/`max` already swapped for REV).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    pub range: Range,
    pub rev: bool,
    pub offset: i64,
    /// Negative = no limit.
    pub limit: i64,
    pub with_scores: bool,
}

impl RangeQuery {
    /// The whole range, forward, no LIMIT (ZCOUNT, ZREMRANGEBY*).
    pub fn plain(range: Range) -> RangeQuery {
        RangeQuery {
            range,
            rev: false,
            offset: 0,
            limit: -1,
            with_scores: false,
        }
    }
}

/// How a ZRANGE-family command was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeCmd {
    /// ZRANGE / ZRANGESTORE: BYSCORE, BYLEX and REV are options.
    Auto,
    /// ZRANGEBYSCORE / ZREVRANGEBYSCORE.
    Score { rev: bool },
    /// ZRANGEBYLEX / ZREVRANGEBYLEX.
    Lex { rev: bool },
    /// ZREVRANGE.
    RevRank,
}

/// Parses `min max [options]` like Redis's `zrangeGenericCommand`;
/// `store` is ZRANGESTORE (no WITHSCORES). Fewer than two arguments is a
/// syntax error (the command table's arity keeps them out).
pub fn range(args: &[Vec<u8>], cmd: RangeCmd, store: bool) -> Result<RangeQuery, String> {
    #[derive(PartialEq)]
    enum Type {
        Auto,
        Rank,
        Score,
        Lex,
    }
    let [min, max, ..] = args else {
        return Err(errors::SYNTAX.into());
    };
    let (mut kind, mut rev) = match cmd {
        RangeCmd::Auto => (Type::Auto, None),
        RangeCmd::Score { rev } => (Type::Score, Some(rev)),
        RangeCmd::Lex { rev } => (Type::Lex, Some(rev)),
        RangeCmd::RevRank => (Type::Rank, Some(true)),
    };
    let (mut offset, mut limit, mut with_scores, mut has_limit) = (0i64, -1i64, false, false);
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let opt = args[j].to_ascii_uppercase();
        match opt.as_slice() {
            b"WITHSCORES" if !store => with_scores = true,
            b"LIMIT" if left >= 2 => {
                offset = parse_i64(&args[j + 1]).ok_or(errors::NOT_INTEGER)?;
                limit = parse_i64(&args[j + 2]).ok_or(errors::NOT_INTEGER)?;
                has_limit = true;
                j += 2;
            }
            b"REV" if rev.is_none() => rev = Some(true),
            b"BYSCORE" if kind == Type::Auto => kind = Type::Score,
            b"BYLEX" if kind == Type::Auto => kind = Type::Lex,
            _ => return Err(errors::SYNTAX.into()),
        }
        j += 1;
    }
    if kind == Type::Auto {
        kind = Type::Rank;
    }
    let rev = rev.unwrap_or(false);
    if has_limit && kind == Type::Rank {
        return Err(LIMIT_NEEDS_BY.into());
    }
    if with_scores && kind == Type::Lex {
        return Err(WITHSCORES_BYLEX.into());
    }
    let (mut min, mut max) = (min, max);
    if rev && kind != Type::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    let by = match kind {
        Type::Score => RemBy::Score,
        Type::Lex => RemBy::Lex,
        _ => RemBy::Rank,
    };
    Ok(RangeQuery {
        range: Range::parse(by, min, max)?,
        rev,
        offset,
        limit,
        with_scores,
    })
}

/// ZPOPMIN / ZPOPMAX's `key [count]` (`args` include the key).
pub fn zpop_count(args: &[Vec<u8>]) -> Result<Option<u64>, String> {
    if args.len() > 2 {
        return Err(errors::SYNTAX.into());
    }
    match args.get(1) {
        Some(raw) => match parse_i64(raw) {
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            _ => Err(errors::NOT_POSITIVE.into()),
        },
        None => Ok(None),
    }
}

/// ZRANK / ZREVRANK's `key member [WITHSCORE]` (`args` include the key):
/// whether WITHSCORE is given.
pub fn zrank_with_score(args: &[Vec<u8>], rev: bool) -> Result<bool, String> {
    if args.len() > 3 {
        // The table's arity is "at least 2"; Redis caps it here.
        return Err(errors::wrong_arity(if rev { "zrevrank" } else { "zrank" }));
    }
    match args.get(2) {
        Some(opt) if opt.eq_ignore_ascii_case(b"WITHSCORE") => Ok(true),
        Some(_) => Err(errors::SYNTAX.into()),
        None => Ok(false),
    }
}

/// ZMPOP's `numkeys key [key ...] MIN | MAX [COUNT count]`; `second_end`
/// is MAX.
pub fn mpop(args: &[Vec<u8>]) -> Result<MpopArgs<'_>, String> {
    collection::mpop(args, ["MIN", "MAX"])
}

/// How ZUNION & co combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    Union,
    Inter,
    Diff,
}

/// ZUNION / ZINTER's AGGREGATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Sum,
    Min,
    Max,
}

/// The `numkeys` of ZUNION / ZINTER / ZDIFF (+STORE) and ZINTERCARD
/// (`args` start at numkeys): checked before any key is read, as in Redis.
pub fn combine_numkeys(args: &[Vec<u8>], command: &str) -> Result<usize, String> {
    let n = args
        .first()
        .and_then(|raw| parse_i64(raw))
        .ok_or(errors::NOT_INTEGER)?;
    if n < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{command}' command"
        ));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > args.len() - 1 {
        return Err(errors::SYNTAX.into());
    }
    Ok(n)
}

/// The options of ZUNION / ZINTER / ZDIFF (+STORE).
#[derive(Debug, Clone, PartialEq)]
pub struct CombineOptions {
    /// One weight per key (1 by default).
    pub weights: Vec<f64>,
    pub aggregate: Aggregate,
    pub with_scores: bool,
}

/// Parses the options after `numkeys key...` (`args` start at numkeys,
/// `n` from [`combine_numkeys`]); Redis reads them after the keys' types.
pub fn combine_options(
    args: &[Vec<u8>],
    n: usize,
    op: SetOp,
    store: bool,
) -> Result<CombineOptions, String> {
    let mut o = CombineOptions {
        weights: vec![1.0; n],
        aggregate: Aggregate::Sum,
        with_scores: false,
    };
    let mut j = n.saturating_add(1);
    while j < args.len() {
        let remaining = args.len() - j;
        let opt = args[j].to_ascii_uppercase();
        if op != SetOp::Diff && remaining > n && opt == b"WEIGHTS" {
            for (i, w) in o.weights.iter_mut().enumerate() {
                *w = parse_f64(&args[j + 1 + i]).ok_or("ERR weight value is not a float")?;
            }
            j += n + 1;
        } else if op != SetOp::Diff && remaining >= 2 && opt == b"AGGREGATE" {
            o.aggregate = match args[j + 1].to_ascii_uppercase().as_slice() {
                b"SUM" => Aggregate::Sum,
                b"MIN" => Aggregate::Min,
                b"MAX" => Aggregate::Max,
                _ => return Err(errors::SYNTAX.into()),
            };
            j += 2;
        } else if !store && opt == b"WITHSCORES" {
            o.with_scores = true;
            j += 1;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    Ok(o)
}

/// ZINTERCARD's `[LIMIT limit]` after `numkeys key...` (`args` start at
/// numkeys): the limit, 0 = none.
pub fn intercard_limit(args: &[Vec<u8>], n: usize) -> Result<usize, String> {
    let mut limit = 0usize;
    let mut j = n.saturating_add(1);
    while j < args.len() {
        if args.len() - j >= 2 && args[j].eq_ignore_ascii_case(b"LIMIT") {
            let parsed = parse_i64(&args[j + 1]).filter(|v| *v >= 0);
            limit =
                usize::try_from(parsed.ok_or("ERR LIMIT can't be negative")?).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    Ok(limit)
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
    fn zadd_flags_and_scores() {
        let a = argv("nx ch 1 a");
        let (flags, used) = zadd_flags(&a);
        assert!(flags.nx && flags.ch && used == 2);
        assert_eq!(zadd_scores(&flags, &a[used..]), Ok(vec![1.0]));
        let both = AddFlags {
            nx: true,
            xx: true,
            ..AddFlags::default()
        };
        assert_eq!(zadd_scores(&both, &argv("1 a")), Err(XX_NX_CONFLICT.into()));
        let incr = AddFlags {
            incr: true,
            ..AddFlags::default()
        };
        assert_eq!(
            zadd_scores(&incr, &argv("1 a 2 b")),
            Err(INCR_SINGLE_PAIR.into())
        );
        assert_eq!(
            zadd_scores(&incr, &argv("x a")),
            Err(errors::NOT_FLOAT.into())
        );
        assert_eq!(zadd_scores(&incr, &argv("1")), Err(errors::SYNTAX.into()));
    }

    #[test]
    fn zrange_options_follow_redis() {
        let q = range(
            &argv("(1 +inf byscore rev limit 1 2 withscores"),
            RangeCmd::Auto,
            false,
        )
        .unwrap();
        assert!(q.rev && q.with_scores && q.offset == 1 && q.limit == 2);
        // REV swaps the bounds of a score range.
        assert_eq!(
            q.range,
            Range::Score(ScoreRange {
                min: f64::INFINITY,
                min_ex: false,
                max: 1.0,
                max_ex: true
            })
        );
        assert_eq!(
            range(&argv("0 1 limit 0 1"), RangeCmd::Auto, false),
            Err(LIMIT_NEEDS_BY.into())
        );
        assert_eq!(
            range(&argv("- + bylex withscores"), RangeCmd::Auto, false),
            Err(WITHSCORES_BYLEX.into())
        );
        assert_eq!(
            range(&argv("0 1 withscores"), RangeCmd::Auto, true),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(
            range(&argv("0 1 rev"), RangeCmd::RevRank, false),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(
            range(&argv("a b"), RangeCmd::Lex { rev: false }, false),
            Err(NOT_LEX_RANGE.into())
        );
        assert_eq!(
            range(&argv("0"), RangeCmd::Auto, false),
            Err(errors::SYNTAX.into())
        );
    }

    #[test]
    fn combine_options_follow_redis() {
        let a = argv("2 a b weights 2 3 aggregate max withscores");
        let n = combine_numkeys(&a, "zunion").unwrap();
        let o = combine_options(&a, n, SetOp::Union, false).unwrap();
        assert_eq!(o.weights, vec![2.0, 3.0]);
        assert_eq!(o.aggregate, Aggregate::Max);
        assert!(o.with_scores);
        assert!(combine_options(&a, n, SetOp::Diff, false).is_err());
        assert_eq!(
            combine_numkeys(&argv("0 a"), "zinter"),
            Err("ERR at least 1 input key is needed for 'zinter' command".into())
        );
        assert_eq!(
            combine_numkeys(&argv("3 a"), "zinter"),
            Err(errors::SYNTAX.into())
        );
        assert_eq!(
            combine_options(&argv("1 a weights x"), 1, SetOp::Inter, false),
            Err("ERR weight value is not a float".into())
        );
        assert_eq!(intercard_limit(&argv("1 a limit 3"), 1), Ok(3));
        assert_eq!(
            intercard_limit(&argv("1 a limit -3"), 1),
            Err("ERR LIMIT can't be negative".into())
        );
    }

    #[test]
    fn pops_and_ranks() {
        assert_eq!(zpop_count(&argv("k")), Ok(None));
        assert_eq!(zpop_count(&argv("k -1")), Err(errors::NOT_POSITIVE.into()));
        assert_eq!(zrank_with_score(&argv("k m withscore"), false), Ok(true));
        assert_eq!(
            zrank_with_score(&argv("k m a b"), true),
            Err("ERR wrong number of arguments for 'zrevrank' command".into())
        );
    }
}
