//! Layer 3 by identity: a per-user connection cap and reject rate, checked
//! when a connection logs in (AUTH, HELLO AUTH) as an ACL user.
//!
//! At accept time the user is unknown, so every connection is first
//! counted against its IP ([`crate::connections`]). A login as a user with
//! a connection cap moves it: the user's count goes up and the IP's goes
//! down, so tenants behind one NAT address are capped each on their own,
//! not together. A login past the user's cap is refused and the connection
//! closed, with Redis's reply (`-ERR max number of clients reached`, plus
//! the user), and once a user's refusals pass its reject rate, without any
//! reply, as the per-IP storm rule does.

use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, Quota};
use rampart_proto::acl::Limits;

use crate::metrics::{USER_CONNECTIONS_OPEN, USER_LOGINS_REJECTED};

/// The reply to a login past the user's cap.
pub fn max_connections_text(user: &str) -> String {
    format!("ERR max number of clients reached for user '{user}'")
}

/// A refused login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// Reply [`max_connections_text`], then close.
    Reject,
    /// Past the reject rate: close without a reply.
    Reset,
}

/// One counted connection of a user; dropping it releases the count.
#[derive(Debug)]
pub struct UserGuard {
    counts: Arc<DashMap<Arc<str>, u32>>,
    user: Arc<str>,
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        if let Some(mut n) = self.counts.get_mut(&self.user) {
            *n = n.saturating_sub(1);
        }
        self.counts.remove_if(&self.user, |_, n| *n == 0);
        metrics::gauge!(USER_CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// Per-user connection counts and reject-rate quotas of one proxy.
#[derive(Debug, Default)]
pub struct Logins {
    counts: Arc<DashMap<Arc<str>, u32>>,
    /// By user: the rate the limiter was built for, and the limiter.
    rejects: DashMap<Arc<str>, (u32, Arc<DefaultDirectRateLimiter>)>,
}

impl Logins {
    pub fn new() -> Self {
        Self::default()
    }

    /// A login as `user` with `limits` (configured and ACL limits merged).
    /// `Ok(None)`: the user has no cap, its connection stays counted
    /// against its IP. `default_reject_rate` applies when the user sets
    /// none (0: always reply).
    pub fn login(
        &self,
        user: &str,
        limits: &Limits,
        default_reject_rate: u32,
    ) -> Result<Option<UserGuard>, LoginRefused> {
        let Some(cap) = limits.connections else {
            return Ok(None);
        };
        let user: Arc<str> = Arc::from(user);
        {
            let mut n = self.counts.entry(user.clone()).or_insert(0);
            if *n < cap {
                *n += 1;
                metrics::gauge!(USER_CONNECTIONS_OPEN).increment(1.0);
                return Ok(Some(UserGuard {
                    counts: self.counts.clone(),
                    user,
                }));
            }
        }
        let rate = limits.reject_rate.unwrap_or(default_reject_rate);
        let storm = NonZeroU32::new(rate).is_some_and(|rate| {
            let limiter = self.reject_limiter(&user, rate);
            limiter.check().is_err()
        });
        let refused = if storm {
            LoginRefused::Reset
        } else {
            LoginRefused::Reject
        };
        let mode = if storm { "reset" } else { "error" };
        metrics::counter!(USER_LOGINS_REJECTED, "mode" => mode).increment(1);
        Err(refused)
    }

    fn reject_limiter(&self, user: &Arc<str>, rate: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
        let mut entry = self
            .rejects
            .entry(user.clone())
            .or_insert_with(|| (rate.get(), Arc::new(limiter(rate))));
        if entry.0 != rate.get() {
            *entry = (rate.get(), Arc::new(limiter(rate)));
        }
        entry.1.clone()
    }

    /// Connections counted for `user` now.
    pub fn open_for(&self, user: &str) -> u32 {
        self.counts.get(user).map_or(0, |n| *n)
    }
}

fn limiter(rate: NonZeroU32) -> DefaultDirectRateLimiter {
    governor::RateLimiter::direct(Quota::per_second(rate).allow_burst(rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(connections: u32, reject_rate: Option<u32>) -> Limits {
        Limits {
            connections: Some(connections),
            reject_rate,
            ..Limits::default()
        }
    }

    #[test]
    fn a_user_without_a_cap_is_not_counted() {
        let logins = Logins::new();
        assert!(logins.login("a", &Limits::default(), 5).unwrap().is_none());
        assert_eq!(logins.open_for("a"), 0);
    }

    #[test]
    fn users_are_capped_each_on_their_own_and_released_on_drop() {
        let logins = Logins::new();
        let limits = capped(2, Some(100));
        let a1 = logins.login("a", &limits, 0).unwrap().unwrap();
        let _a2 = logins.login("a", &limits, 0).unwrap().unwrap();
        assert_eq!(
            logins.login("a", &limits, 0).unwrap_err(),
            LoginRefused::Reject
        );
        let _b = logins.login("b", &limits, 0).unwrap().unwrap();
        assert_eq!(logins.open_for("a"), 2);
        drop(a1);
        assert_eq!(logins.open_for("a"), 1);
        assert!(logins.login("a", &limits, 0).is_ok());
    }

    #[test]
    fn refusals_past_the_reject_rate_become_silent_closes() {
        let logins = Logins::new();
        let limits = capped(1, Some(2));
        let _held = logins.login("a", &limits, 0).unwrap();
        let refusals: Vec<LoginRefused> = (0..5)
            .map(|_| logins.login("a", &limits, 0).unwrap_err())
            .collect();
        assert_eq!(&refusals[..2], [LoginRefused::Reject; 2]);
        assert_eq!(&refusals[2..], [LoginRefused::Reset; 3]);
        // Rate 0 (and no default): always the reply.
        let calm = Logins::new();
        let limits = capped(1, None);
        let _held = calm.login("a", &limits, 0).unwrap();
        for _ in 0..10 {
            assert_eq!(
                calm.login("a", &limits, 0).unwrap_err(),
                LoginRefused::Reject
            );
        }
    }
}
