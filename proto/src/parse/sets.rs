//! Set commands' options: SINTERCARD's `numkeys key... [LIMIT n]` and
//! SRANDMEMBER's count. SSCAN's options are in [`super::collection`].

use crate::args::{parse_i64, Args};
use crate::errors;

use super::collection::random_count;

/// The keys of a `numkeys key...` command and the arguments after them.
pub type KeysAndRest<'a> = (&'a [Vec<u8>], &'a [Vec<u8>]);

pub const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
pub const TOO_MANY_KEYS: &str = "ERR Number of keys can't be greater than number of args";

/// Splits `numkeys key... rest` with Redis's checks (SINTERCARD,
/// ZINTERCARD).
pub fn numkeys_split(args: &[Vec<u8>]) -> Result<KeysAndRest<'_>, String> {
    // Redis answers this one text for a non-integer numkeys too.
    let n = args
        .first()
        .and_then(|raw| parse_i64(raw))
        .filter(|n| *n > 0)
        .ok_or(NUMKEYS_NOT_POSITIVE)?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > args.len() - 1 {
        return Err(TOO_MANY_KEYS.into());
    }
    Ok((&args[1..=n], &args[n + 1..]))
}

/// SINTERCARD's (and ZINTERCARD's) `numkeys key... [LIMIT limit]`: the keys
/// and the limit (0 = none).
pub fn intercard(args: &[Vec<u8>]) -> Result<(&[Vec<u8>], usize), String> {
    let (keys, rest) = numkeys_split(args)?;
    let mut limit = 0usize;
    let mut a = Args::new(rest);
    while !a.is_empty() {
        match a.next_keyword()?.as_str() {
            "LIMIT" if !a.is_empty() => {
                // Redis answers this one text for a negative or non-integer
                // LIMIT alike.
                let n = parse_i64(a.next_bytes()?).filter(|n| *n >= 0);
                limit =
                    usize::try_from(n.ok_or("ERR LIMIT can't be negative")?).unwrap_or(usize::MAX);
            }
            _ => return Err(errors::SYNTAX.into()),
        }
    }
    Ok((keys, limit))
}

/// SRANDMEMBER's `key [count]` (`args` include the key): the count as
/// `(k, distinct)` when given.
pub fn srandmember(args: &[Vec<u8>]) -> Result<Option<(u64, bool)>, String> {
    if args.len() > 2 {
        return Err(errors::SYNTAX.into());
    }
    args.get(1).map(|raw| random_count(raw)).transpose()
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
    fn intercard_follows_redis() {
        let a = argv("2 a b limit 5");
        let (keys, limit) = intercard(&a).unwrap();
        assert_eq!((keys.len(), limit), (2, 5));
        assert_eq!(intercard(&argv("0 a")), Err(NUMKEYS_NOT_POSITIVE.into()));
        assert_eq!(intercard(&argv("x a")), Err(NUMKEYS_NOT_POSITIVE.into()));
        assert_eq!(intercard(&argv("3 a b")), Err(TOO_MANY_KEYS.into()));
        assert_eq!(
            intercard(&argv("1 a limit -1")),
            Err("ERR LIMIT can't be negative".into())
        );
        assert_eq!(intercard(&argv("1 a limit")), Err(errors::SYNTAX.into()));
        assert_eq!(intercard(&[]), Err(NUMKEYS_NOT_POSITIVE.into()));
    }

    #[test]
    fn srandmember_counts() {
        assert_eq!(srandmember(&argv("k")), Ok(None));
        assert_eq!(srandmember(&argv("k -5")), Ok(Some((5, false))));
        assert_eq!(srandmember(&argv("k 1 2")), Err(errors::SYNTAX.into()));
    }
}
