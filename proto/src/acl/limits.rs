//! Rampart's admission limits carried by an ACL user (docs/security.md,
//! "Admission by identity"): ACL SETUSER tokens that Redis does not have,
//! kept in the user so they replicate and survive restarts with it.
//!
//! - `limit-connections=<n>`: open connections authenticated as the user,
//!   per proxy (0: no cap);
//! - `limit-reject-rate=<n>`: refused logins per second before further
//!   refusals close the connection without a reply (0: always reply);
//! - `limit-share=<class>:<n>`: the user's requests running at once in a
//!   command class, per proxy, over all its connections (0: removes it);
//! - `limit-reset`: removes every limit (so does `reset`).
//!
//! Class names are checked against the proxy's class table by the proxy
//! (this crate does not know the policies); here they are only words.

use std::collections::BTreeMap;

use super::rule::AclError;

/// A class name may be at most this long.
const MAX_CLASS_NAME: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub connections: Option<u32>,
    pub reject_rate: Option<u32>,
    /// Class name -> requests at once.
    pub shares: BTreeMap<String, u32>,
}

/// One limit token, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitRule {
    Connections(u32),
    RejectRate(u32),
    Share(String, u32),
    Reset,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    pub fn apply(&mut self, rule: &LimitRule) {
        match rule {
            LimitRule::Connections(n) => self.connections = (*n > 0).then_some(*n),
            LimitRule::RejectRate(n) => self.reject_rate = (*n > 0).then_some(*n),
            LimitRule::Share(class, 0) => {
                self.shares.remove(class);
            }
            LimitRule::Share(class, n) => {
                self.shares.insert(class.clone(), *n);
            }
            LimitRule::Reset => *self = Limits::default(),
        }
    }

    /// The tokens that rebuild these limits, in a fixed order.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(n) = self.connections {
            out.push(format!("limit-connections={n}"));
        }
        if let Some(n) = self.reject_rate {
            out.push(format!("limit-reject-rate={n}"));
        }
        for (class, n) in &self.shares {
            out.push(format!("limit-share={class}:{n}"));
        }
        out
    }

    /// `base` with every limit set here laid over it (the ACL user's
    /// limits win over the proxy's configured ones, field by field).
    pub fn over(&self, base: &Limits) -> Limits {
        let mut shares = base.shares.clone();
        shares.extend(self.shares.iter().map(|(c, n)| (c.clone(), *n)));
        Limits {
            connections: self.connections.or(base.connections),
            reject_rate: self.reject_rate.or(base.reject_rate),
            shares,
        }
    }
}

/// Parses a `limit-...` token; `Ok(None)`: not a limit token at all.
pub fn parse_limit(op: &[u8]) -> Result<Option<LimitRule>, AclError> {
    let lower = op.to_ascii_lowercase();
    if lower == b"limit-reset" {
        return Ok(Some(LimitRule::Reset));
    }
    let Some(rest) = lower.strip_prefix(b"limit-") else {
        return Ok(None);
    };
    let Some(eq) = rest.iter().position(|&b| b == b'=') else {
        return Err(AclError::Syntax);
    };
    let (name, value) = (&rest[..eq], &rest[eq + 1..]);
    let rule = match name {
        b"connections" => LimitRule::Connections(count(value)?),
        b"reject-rate" => LimitRule::RejectRate(count(value)?),
        b"share" => {
            let colon = value
                .iter()
                .rposition(|&b| b == b':')
                .ok_or(AclError::Syntax)?;
            let class = &value[..colon];
            let valid = !class.is_empty()
                && class.len() <= MAX_CLASS_NAME
                && class
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(AclError::Syntax);
            }
            LimitRule::Share(
                String::from_utf8_lossy(class).into_owned(),
                count(&value[colon + 1..])?,
            )
        }
        _ => return Err(AclError::Syntax),
    };
    Ok(Some(rule))
}

/// A non-negative decimal count that fits in u32.
fn count(bytes: &[u8]) -> Result<u32, AclError> {
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(AclError::Syntax);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(AclError::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(op: &str) -> Result<Option<LimitRule>, AclError> {
        parse_limit(op.as_bytes())
    }

    #[test]
    fn tokens_parse_case_insensitively_and_zero_removes() {
        assert_eq!(parse("on"), Ok(None));
        assert_eq!(
            parse("LIMIT-Connections=4"),
            Ok(Some(LimitRule::Connections(4)))
        );
        assert_eq!(
            parse("limit-share=heavy_scan:2"),
            Ok(Some(LimitRule::Share("heavy_scan".into(), 2)))
        );
        let mut limits = Limits::default();
        for op in [
            "limit-connections=4",
            "limit-reject-rate=5",
            "limit-share=heavy_scan:2",
            "limit-share=heavy_data:1",
            "limit-share=heavy_data:0",
        ] {
            limits.apply(&parse(op).unwrap().unwrap());
        }
        assert_eq!(
            limits.describe(),
            [
                "limit-connections=4",
                "limit-reject-rate=5",
                "limit-share=heavy_scan:2"
            ]
        );
        limits.apply(&LimitRule::Connections(0));
        assert_eq!(limits.connections, None);
        limits.apply(&parse("limit-reset").unwrap().unwrap());
        assert!(limits.is_empty());
    }

    #[test]
    fn malformed_tokens_are_syntax_errors() {
        for bad in [
            "limit-",
            "limit-connections",
            "limit-connections=",
            "limit-connections=-1",
            "limit-connections=99999999999",
            "limit-connections=1x",
            "limit-share=heavy",
            "limit-share=:2",
            "limit-share=a b:2",
            "limit-share=x:y",
            "limit-speed=3",
        ] {
            assert_eq!(parse(bad), Err(AclError::Syntax), "{bad}");
        }
    }

    #[test]
    fn acl_limits_win_over_configured_ones_field_by_field() {
        let mut config = Limits {
            connections: Some(10),
            reject_rate: Some(3),
            ..Limits::default()
        };
        config.shares.insert("heavy_scan".into(), 4);
        config.shares.insert("heavy_data".into(), 2);
        let mut acl = Limits {
            connections: Some(2),
            ..Limits::default()
        };
        acl.shares.insert("heavy_scan".into(), 1);
        let both = acl.over(&config);
        assert_eq!(both.connections, Some(2));
        assert_eq!(both.reject_rate, Some(3));
        assert_eq!(both.shares["heavy_scan"], 1);
        assert_eq!(both.shares["heavy_data"], 2);
    }
}
