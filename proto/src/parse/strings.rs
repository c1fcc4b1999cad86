//! String commands' options: SET / GETEX (`parseExtendedStringArgumentsOrReply`),
//! their expiry arithmetic, and LCS.

use crate::args::{parse_i64, Args};
use crate::errors;

/// The expiry options of SET and GETEX (and SETEX / PSETEX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// SET's or GETEX's options; the expiry value is kept raw because Redis
/// checks it later (GETEX: after the key's type).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SetFlags<'a> {
    pub nx: bool,
    pub xx: bool,
    pub get: bool,
    pub keep_ttl: bool,
    pub persist: bool,
    pub expire: Option<(ExpireKind, &'a [u8])>,
}

/// Parses SET's (`for_set`) or GETEX's options exactly like Redis's
/// `parseExtendedStringArgumentsOrReply`: a repeated option is fine,
/// conflicting ones are `ERR syntax error`.
pub fn set_flags(options: &[Vec<u8>], for_set: bool) -> Result<SetFlags<'_>, String> {
    let mut flags = SetFlags::default();
    let mut i = 0;
    while i < options.len() {
        let opt = options[i].to_ascii_uppercase();
        let next = options.get(i + 1);
        let expire_kind = match opt.as_slice() {
            b"EX" => Some(ExpireKind::Ex),
            b"PX" => Some(ExpireKind::Px),
            b"EXAT" => Some(ExpireKind::ExAt),
            b"PXAT" => Some(ExpireKind::PxAt),
            _ => None,
        };
        let other_expire = |kind| matches!(flags.expire, Some((k, _)) if k != kind);
        match opt.as_slice() {
            b"NX" if for_set && !flags.xx => flags.nx = true,
            b"XX" if for_set && !flags.nx => flags.xx = true,
            b"GET" if for_set => flags.get = true,
            b"KEEPTTL" if for_set && !flags.persist && flags.expire.is_none() => {
                flags.keep_ttl = true
            }
            b"PERSIST" if !for_set && flags.expire.is_none() && !flags.keep_ttl => {
                flags.persist = true
            }
            _ => match (expire_kind, next) {
                (Some(kind), Some(value))
                    if !flags.keep_ttl && !flags.persist && !other_expire(kind) =>
                {
                    flags.expire = Some((kind, value.as_slice()));
                    i += 1;
                }
                _ => return Err(errors::SYNTAX.into()),
            },
        }
        i += 1;
    }
    Ok(flags)
}

/// The absolute deadline in ms for an expiry option, with Redis's checks:
/// the number must be positive and the result must not overflow.
/// `command` names the command in `ERR invalid expire time in '<command>' command`.
pub fn expire_deadline(
    kind: ExpireKind,
    raw: &[u8],
    now: i64,
    command: &str,
) -> Result<i64, String> {
    let value = parse_i64(raw).ok_or(errors::NOT_INTEGER)?;
    let seconds = matches!(kind, ExpireKind::Ex | ExpireKind::ExAt);
    if value <= 0 || (seconds && value > i64::MAX / 1000) {
        return Err(errors::invalid_expire(command));
    }
    let mut ms = if seconds { value * 1000 } else { value };
    if matches!(kind, ExpireKind::Ex | ExpireKind::Px) {
        ms = ms
            .checked_add(now)
            .ok_or_else(|| errors::invalid_expire(command))?;
    }
    if ms <= 0 {
        return Err(errors::invalid_expire(command));
    }
    Ok(ms)
}

/// LCS's options after the two keys.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LcsOptions {
    pub len: bool,
    pub idx: bool,
    pub with_match_len: bool,
    /// MINMATCHLEN, negative values read as 0.
    pub min_match_len: i64,
}

/// `[LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]`.
pub fn lcs_options(options: &[Vec<u8>]) -> Result<LcsOptions, String> {
    let mut a = Args::new(options);
    let mut o = LcsOptions::default();
    while !a.is_empty() {
        match a.next_keyword()?.as_str() {
            "LEN" => o.len = true,
            "IDX" => o.idx = true,
            "WITHMATCHLEN" => o.with_match_len = true,
            "MINMATCHLEN" if !a.is_empty() => o.min_match_len = a.next_i64()?.max(0),
            _ => return Err(errors::SYNTAX.into()),
        }
    }
    if o.idx && o.len {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    Ok(o)
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
    fn set_flags_follow_redis() {
        let a = argv("nx ex 10 get");
        let f = set_flags(&a, true).unwrap();
        assert!(f.nx && f.get && !f.xx);
        assert_eq!(f.expire, Some((ExpireKind::Ex, &b"10"[..])));
        for bad in [
            "nx xx",
            "ex 1 px 1",
            "keepttl ex 1",
            "ex",
            "persist",
            "bogus",
        ] {
            assert_eq!(
                set_flags(&argv(bad), true),
                Err(errors::SYNTAX.into()),
                "{bad}"
            );
        }
        assert_eq!(set_flags(&argv("get"), false), Err(errors::SYNTAX.into()));
        assert!(set_flags(&argv("persist"), false).unwrap().persist);
        assert!(set_flags(&argv("ex 1 ex 2"), true).is_ok());
    }

    #[test]
    fn expire_deadlines_follow_redis() {
        assert_eq!(expire_deadline(ExpireKind::Ex, b"10", 5, "set"), Ok(10_005));
        assert_eq!(expire_deadline(ExpireKind::PxAt, b"7", 5, "set"), Ok(7));
        assert_eq!(
            expire_deadline(ExpireKind::Ex, b"0", 5, "set"),
            Err("ERR invalid expire time in 'set' command".into())
        );
        assert_eq!(
            expire_deadline(ExpireKind::Px, b"9223372036854775807", 5, "getex"),
            Err("ERR invalid expire time in 'getex' command".into())
        );
        assert_eq!(
            expire_deadline(ExpireKind::Ex, b"x", 5, "set"),
            Err(errors::NOT_INTEGER.into())
        );
    }

    #[test]
    fn lcs_options_follow_redis() {
        let o = lcs_options(&argv("idx minmatchlen -3 withmatchlen")).unwrap();
        assert!(o.idx && o.with_match_len && o.min_match_len == 0);
        assert!(lcs_options(&argv("len idx"))
            .unwrap_err()
            .contains("just use IDX"));
        assert_eq!(
            lcs_options(&argv("minmatchlen")),
            Err(errors::SYNTAX.into())
        );
    }
}
