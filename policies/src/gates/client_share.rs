//! Gate: one client's share of a class. A class may bound how many requests
//! of one client IP run in it at once (`per_client`), so one host cannot
//! take a whole class from the others however many connections it opens:
//! the incident's abusive host held every heavy slot.
//!
//! A request is what the caller counts: admission passes the client only
//! for the first command of a pipeline segment in a class, so a segment is
//! counted once. An IP's count is dropped when it reaches zero.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::identity::ClientKey;

/// Refusal: the client already holds its share of the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this client already holds its share ({held} of {max} slots)")]
pub struct ShareFull {
    /// Requests of this client running in the class.
    pub held: u32,
    /// The class's bound (its slots, not the share).
    pub max: u32,
}

#[derive(Debug, Default)]
struct State {
    /// Requests one client IP may run at once; 0 = no limit.
    per_client: u32,
    /// The class's bound, for the refusal.
    class_max: u32,
    /// Requests running per client IP (only IPs with at least one).
    by_client: HashMap<ClientKey, u32>,
}

/// The per-client counts of one class, kept across reloads.
#[derive(Debug, Default)]
pub struct ClientShare {
    state: Mutex<State>,
}

/// One request counted in its client's share, uncounted on drop.
#[derive(Debug)]
pub struct SharePermit {
    share: Arc<ClientShare>,
    client: ClientKey,
}

impl Drop for SharePermit {
    fn drop(&mut self) {
        let mut state = self.share.lock();
        if let Some(n) = state.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.by_client.remove(&self.client);
            }
        }
    }
}

impl ClientShare {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// New limits; requests already counted stay counted.
    pub fn set(&self, per_client: u32, class_max: u32) {
        let mut state = self.lock();
        state.per_client = per_client;
        state.class_max = class_max;
    }

    /// Counts one request of `client`, or refuses it past its share: the
    /// client's own bound when it has one (a user's `limit-share`), else
    /// the class's per-client share. `Ok(None)`: nothing to count (no
    /// client, or no share applies).
    pub fn try_acquire(
        self: &Arc<Self>,
        client: Option<(ClientKey, Option<u32>)>,
    ) -> Result<Option<SharePermit>, ShareFull> {
        let mut state = self.lock();
        let Some((client, own)) = client else {
            return Ok(None);
        };
        let bound = own.unwrap_or(state.per_client);
        if bound == 0 {
            return Ok(None);
        }
        let held = state.by_client.get(&client).copied().unwrap_or(0);
        if held >= bound {
            return Err(ShareFull {
                held,
                max: state.class_max,
            });
        }
        *state.by_client.entry(client.clone()).or_insert(0) += 1;
        Ok(Some(SharePermit {
            share: self.clone(),
            client,
        }))
    }

    /// What [`ClientShare::try_acquire`] would answer now, without counting
    /// anything: the refusal of a request that waited in vain.
    pub fn check(&self, client: Option<(ClientKey, Option<u32>)>) -> Result<(), ShareFull> {
        let state = self.lock();
        let Some((client, own)) = client else {
            return Ok(());
        };
        let bound = own.unwrap_or(state.per_client);
        let held = state.by_client.get(&client).copied().unwrap_or(0);
        if bound == 0 || held < bound {
            return Ok(());
        }
        Err(ShareFull {
            held,
            max: state.class_max,
        })
    }

    /// Requests of `client` counted now.
    pub fn held_by(&self, client: &ClientKey) -> u32 {
        self.lock().by_client.get(client).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<(ClientKey, Option<u32>)> {
        Some((ClientKey::Ip(s.parse().unwrap()), None))
    }

    fn key(s: &str) -> ClientKey {
        ClientKey::Ip(s.parse().unwrap())
    }

    #[test]
    fn one_client_holds_at_most_its_share_and_others_still_get_theirs() {
        let share = ClientShare::new();
        share.set(2, 8);
        let a1 = share.try_acquire(ip("10.0.0.1")).unwrap();
        let _a2 = share.try_acquire(ip("10.0.0.1")).unwrap();
        assert_eq!(
            share.try_acquire(ip("10.0.0.1")).unwrap_err(),
            ShareFull { held: 2, max: 8 }
        );
        assert_eq!(
            share.check(ip("10.0.0.1")).unwrap_err(),
            ShareFull { held: 2, max: 8 },
            "check counts nothing and answers like try_acquire"
        );
        assert!(share.check(ip("10.0.0.2")).is_ok() && share.check(None).is_ok());
        let _o = share.try_acquire(ip("10.0.0.2")).unwrap();
        // No client (the rest of a pipeline): nothing is counted.
        assert!(share.try_acquire(None).unwrap().is_none());
        drop(a1);
        assert_eq!(share.held_by(&key("10.0.0.1")), 1);
        assert!(
            share.try_acquire(ip("10.0.0.1")).unwrap().is_some(),
            "a released share can be taken again"
        );
    }

    #[test]
    fn no_share_counts_nothing_and_counts_survive_new_limits() {
        let share = ClientShare::new();
        share.set(0, 8);
        assert!(share.try_acquire(ip("10.0.0.1")).unwrap().is_none());
        share.set(1, 4);
        let held = share.try_acquire(ip("10.0.0.1")).unwrap();
        share.set(2, 8);
        let _second = share.try_acquire(ip("10.0.0.1")).unwrap();
        assert_eq!(
            share.try_acquire(ip("10.0.0.1")).unwrap_err(),
            ShareFull { held: 2, max: 8 }
        );
        // Turning the share off does not lose the count of running ones.
        share.set(0, 8);
        drop(held);
        assert_eq!(share.held_by(&key("10.0.0.1")), 1);
    }

    #[test]
    fn a_users_own_bound_replaces_the_class_share_even_when_it_has_none() {
        let share = ClientShare::new();
        share.set(0, 8);
        let user = |own| Some((ClientKey::User("tenant".into()), Some(own)));
        let held = share.try_acquire(user(1)).unwrap();
        assert!(held.is_some());
        assert_eq!(
            share.try_acquire(user(1)).unwrap_err(),
            ShareFull { held: 1, max: 8 }
        );
        assert!(share.try_acquire(ip("10.0.0.1")).unwrap().is_none());
        drop(held);
        assert!(share.try_acquire(user(1)).unwrap().is_some());
    }

    #[test]
    fn an_ip_is_forgotten_when_its_last_request_ends() {
        let share = ClientShare::new();
        share.set(1, 1);
        let held = share.try_acquire(ip("10.0.0.1")).unwrap();
        drop(held);
        assert!(share.lock().by_client.is_empty());
    }
}
