//! Generic key commands' options: the EXPIRE family's conditions and time
//! arithmetic, and COPY. SCAN's options are in [`super::collection`].

use crate::args::{parse_i64, Args};
use crate::errors;

pub const GT_LT_CONFLICT: &str = "ERR GT and LT options at the same time are not compatible";

/// How EXPIRE-family commands read their time argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireBase {
    RelativeSeconds,
    RelativeMillis,
    AbsSeconds,
    AbsMillis,
}

/// EXPIRE's `[NX | XX | GT | LT]`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpireCondition {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

/// Parses the EXPIRE family's conditions (the arguments after the time).
pub fn expire_condition(options: &[Vec<u8>]) -> Result<ExpireCondition, String> {
    let mut c = ExpireCondition::default();
    for opt in options {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => c.nx = true,
            b"XX" => c.xx = true,
            b"GT" => c.gt = true,
            b"LT" => c.lt = true,
            _ => {
                return Err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(errors::NX_XX_GT_LT_CONFLICT.into());
    }
    if c.gt && c.lt {
        return Err(GT_LT_CONFLICT.into());
    }
    Ok(c)
}

/// The absolute deadline in ms that an EXPIRE-family time argument names,
/// with Redis's overflow errors (`ERR invalid expire time in '<command>'
/// command`). Zero or past deadlines are valid: they delete the key.
pub fn expire_when(time: &[u8], base: ExpireBase, now: i64, command: &str) -> Result<i64, String> {
    let mut when = parse_i64(time).ok_or(errors::NOT_INTEGER)?;
    if matches!(base, ExpireBase::RelativeSeconds | ExpireBase::AbsSeconds) {
        when = when
            .checked_mul(1000)
            .ok_or_else(|| errors::invalid_expire(command))?;
    }
    if matches!(
        base,
        ExpireBase::RelativeSeconds | ExpireBase::RelativeMillis
    ) {
        when = when
            .checked_add(now)
            .ok_or_else(|| errors::invalid_expire(command))?;
    }
    Ok(when)
}

/// COPY's `[DB destination-db] [REPLACE]`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    pub replace: bool,
    pub db: i64,
}

/// Parses COPY's options; a DB outside i32 is not an integer, as in Redis.
pub fn copy_options(options: &[Vec<u8>]) -> Result<CopyOptions, String> {
    let mut a = Args::new(options);
    let mut o = CopyOptions::default();
    while !a.is_empty() {
        let opt = a.next_keyword()?;
        match opt.as_str() {
            "REPLACE" => o.replace = true,
            "DB" if !a.is_empty() => {
                let raw = a.next_bytes()?;
                o.db = parse_i64(raw)
                    .filter(|n| i32::try_from(*n).is_ok())
                    .ok_or(errors::NOT_INTEGER)?;
            }
            _ => return Err(errors::SYNTAX.into()),
        }
    }
    Ok(o)
}

/// OBJECT's subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectSub {
    Help,
    Encoding,
    Freq,
    IdleTime,
    RefCount,
}

/// OBJECT `<subcommand> [key]` (`args` after OBJECT): the subcommand, with
/// its arity checked as Redis does (`object|help` takes no key).
pub fn object_subcommand(args: &[Vec<u8>]) -> Result<ObjectSub, String> {
    let sub_raw = Args::new(args).next_bytes()?;
    let sub = String::from_utf8_lossy(sub_raw).to_ascii_lowercase();
    let (which, arity) = match sub.as_str() {
        "help" => (ObjectSub::Help, 0),
        "encoding" => (ObjectSub::Encoding, 1),
        "freq" => (ObjectSub::Freq, 1),
        "idletime" => (ObjectSub::IdleTime, 1),
        "refcount" => (ObjectSub::RefCount, 1),
        _ => return Err(errors::unknown_subcommand("object", sub_raw)),
    };
    if args.len() - 1 != arity {
        return Err(errors::wrong_arity(&format!("object|{sub}")));
    }
    Ok(which)
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
    fn expire_conditions_follow_redis() {
        assert!(expire_condition(&argv("gt xx")).unwrap().gt);
        assert_eq!(
            expire_condition(&argv("nx gt")),
            Err(errors::NX_XX_GT_LT_CONFLICT.into())
        );
        assert_eq!(expire_condition(&argv("gt lt")), Err(GT_LT_CONFLICT.into()));
        assert_eq!(
            expire_condition(&argv("foo")),
            Err("ERR Unsupported option foo".into())
        );
    }

    #[test]
    fn expire_times_overflow_like_redis() {
        assert_eq!(
            expire_when(b"10", ExpireBase::RelativeSeconds, 5, "expire"),
            Ok(10_005)
        );
        assert_eq!(
            expire_when(b"-10", ExpireBase::AbsMillis, 5, "pexpireat"),
            Ok(-10)
        );
        assert_eq!(
            expire_when(
                b"9223372036854775807",
                ExpireBase::AbsSeconds,
                5,
                "expireat"
            ),
            Err("ERR invalid expire time in 'expireat' command".into())
        );
        assert_eq!(
            expire_when(b"1.5", ExpireBase::RelativeMillis, 5, "pexpire"),
            Err(errors::NOT_INTEGER.into())
        );
    }

    #[test]
    fn object_subcommands_check_arity() {
        assert_eq!(object_subcommand(&argv("HELP")), Ok(ObjectSub::Help));
        assert_eq!(
            object_subcommand(&argv("encoding k")),
            Ok(ObjectSub::Encoding)
        );
        assert_eq!(
            object_subcommand(&argv("encoding")),
            Err("ERR wrong number of arguments for 'object|encoding' command".into())
        );
        assert_eq!(
            object_subcommand(&argv("nope k")),
            Err("ERR unknown subcommand 'nope'. Try OBJECT HELP.".into())
        );
        assert_eq!(object_subcommand(&[]), Err(errors::SYNTAX.into()));
    }

    #[test]
    fn copy_options_follow_redis() {
        assert_eq!(
            copy_options(&argv("replace db 0")),
            Ok(CopyOptions {
                replace: true,
                db: 0
            })
        );
        assert_eq!(
            copy_options(&argv("db 2147483648")),
            Err(errors::NOT_INTEGER.into())
        );
        assert_eq!(copy_options(&argv("db")), Err(errors::SYNTAX.into()));
    }
}
