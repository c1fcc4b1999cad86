//! List commands' options: LMOVE / BLMOVE sides, LINSERT's position, LPOS,
//! and the MPOP tail of LMPOP / BLMPOP.

use crate::args::{parse_i64, Args};
use crate::errors;

use super::collection::{self, MpopArgs, OUTSIDE_LONG_RANGE};

pub const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";

/// `LEFT` (true) or `RIGHT` (false), any case.
pub fn side(raw: &[u8]) -> Result<bool, String> {
    match raw.to_ascii_uppercase().as_slice() {
        b"LEFT" => Ok(true),
        b"RIGHT" => Ok(false),
        _ => Err(errors::SYNTAX.into()),
    }
}

/// LINSERT's `BEFORE` (false) or `AFTER` (true).
pub fn insert_after(raw: &[u8]) -> Result<bool, String> {
    match raw.to_ascii_uppercase().as_slice() {
        b"BEFORE" => Ok(false),
        b"AFTER" => Ok(true),
        _ => Err(errors::SYNTAX.into()),
    }
}

/// LPOS's `[RANK rank] [COUNT num-matches] [MAXLEN len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LposOptions {
    /// Never 0 nor `i64::MIN`.
    pub rank: i64,
    /// `Some` when COUNT was given (then the reply is an array); >= 0.
    pub count: Option<i64>,
    /// 0 = no limit; >= 0.
    pub maxlen: i64,
}

/// Parses LPOS's options (the arguments after the element).
pub fn lpos_options(options: &[Vec<u8>]) -> Result<LposOptions, String> {
    let mut o = LposOptions {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let mut a = Args::new(options);
    while !a.is_empty() {
        let opt = a.next_keyword()?;
        if a.is_empty() {
            return Err(errors::SYNTAX.into());
        }
        match opt.as_str() {
            "RANK" => {
                o.rank = a.next_i64()?;
                if o.rank == 0 {
                    return Err(RANK_ZERO.into());
                }
                if o.rank == i64::MIN {
                    return Err(OUTSIDE_LONG_RANGE.into());
                }
            }
            "COUNT" => {
                // Redis answers these texts for non-integers too.
                let n = parse_i64(a.next_bytes()?).filter(|n| *n >= 0);
                o.count = Some(n.ok_or("ERR COUNT can't be negative")?);
            }
            "MAXLEN" => {
                let n = parse_i64(a.next_bytes()?).filter(|n| *n >= 0);
                o.maxlen = n.ok_or("ERR MAXLEN can't be negative")?;
            }
            _ => return Err(errors::SYNTAX.into()),
        }
    }
    Ok(o)
}

/// LMPOP's `numkeys key [key ...] LEFT | RIGHT [COUNT count]`;
/// `second_end` is RIGHT.
pub fn mpop(args: &[Vec<u8>]) -> Result<MpopArgs<'_>, String> {
    collection::mpop(args, ["LEFT", "RIGHT"])
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
    fn sides_and_positions() {
        assert_eq!(side(b"left"), Ok(true));
        assert_eq!(side(b"Right"), Ok(false));
        assert_eq!(side(b"up"), Err(errors::SYNTAX.into()));
        assert_eq!(insert_after(b"after"), Ok(true));
        assert_eq!(insert_after(b"x"), Err(errors::SYNTAX.into()));
    }

    #[test]
    fn lpos_options_follow_redis() {
        assert_eq!(
            lpos_options(&argv("rank -2 count 0 maxlen 9")),
            Ok(LposOptions {
                rank: -2,
                count: Some(0),
                maxlen: 9
            })
        );
        assert_eq!(lpos_options(&argv("rank 0")), Err(RANK_ZERO.into()));
        assert_eq!(
            lpos_options(&argv("rank -9223372036854775808")),
            Err(OUTSIDE_LONG_RANGE.into())
        );
        assert_eq!(
            lpos_options(&argv("count x")),
            Err("ERR COUNT can't be negative".into())
        );
        assert_eq!(
            lpos_options(&argv("maxlen -1")),
            Err("ERR MAXLEN can't be negative".into())
        );
        assert_eq!(lpos_options(&argv("rank")), Err(errors::SYNTAX.into()));
    }
}
