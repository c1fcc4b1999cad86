//! Gate: a short line per (client, class) in front of the class's share and
//! slot, so that ordinary pooled load is paced instead of refused.
//!
//! Why: an application host's connection pool (redis-benchmark `-c 50`, a
//! web server's 50 connections) sends a burst of one class at once. With an
//! immediate `-BUSY` for everything past the client's share, such a pool got
//! errors it does not retry (most Redis clients, and redis-benchmark, treat
//! `-BUSY` as fatal). Waiting a bounded time in a line is what a client
//! would have done after the hint anyway, without the error.
//!
//! Order: the requests of one client in one class are served first come,
//! first served: only the first of its line tries the gates, so a new
//! request of the same client never takes a slot ahead of one already
//! waiting (with a share of one slot and 50 connections, "whoever wakes
//! first" would let some requests wait past their deadline while others
//! overtake them). Between clients there is no line: the first of each
//! client's line tries again whenever a slot of the class is released,
//! which shares a full class between the waiting clients.
//!
//! Bounds: a line holds at most `max` requests (beyond, the request is
//! refused at once, as before), and a request waits at most its deadline in
//! total; a waiting request holds no slot, no share and no unit of the
//! in-flight cap. A client's time budget is never waited for (its refusal
//! is immediate): the budget is what stops a host that keeps its share busy
//! all the time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::identity::ClientKey;

/// Refusal: the client's line of this class is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this client already has {waiting} requests waiting in the class")]
pub struct LineFull {
    pub waiting: usize,
}

#[derive(Debug, Default)]
struct Line {
    /// Waiting requests in arrival order: (id, its wake-up).
    waiting: VecDeque<(u64, Arc<Notify>)>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Clients with at least one waiting request.
    lines: HashMap<ClientKey, Line>,
}

/// The lines of one class, kept across reloads.
#[derive(Debug, Default)]
pub struct WaitLines {
    state: Mutex<State>,
}

/// A request's place in its client's line; leaving (drop) lets the next
/// one move up, however the wait ends (admitted, deadline, client gone).
#[derive(Debug)]
pub struct Place {
    lines: Arc<WaitLines>,
    client: ClientKey,
    id: u64,
    wake: Arc<Notify>,
}

impl WaitLines {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `client` has requests waiting in this class: a new request
    /// of it must then queue behind them instead of trying the gates.
    pub fn is_waiting(&self, client: &ClientKey) -> bool {
        self.lock().lines.contains_key(client)
    }

    /// Requests of `client` waiting now.
    pub fn waiting(&self, client: &ClientKey) -> usize {
        self.lock()
            .lines
            .get(client)
            .map_or(0, |line| line.waiting.len())
    }

    /// Takes the last place in `client`'s line, or refuses when `max`
    /// requests of it already wait.
    pub fn join(self: &Arc<Self>, client: ClientKey, max: usize) -> Result<Place, LineFull> {
        let mut state = self.lock();
        let waiting = state.lines.get(&client).map_or(0, |l| l.waiting.len());
        if waiting >= max {
            return Err(LineFull { waiting });
        }
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1);
        let wake = Arc::new(Notify::new());
        state
            .lines
            .entry(client.clone())
            .or_default()
            .waiting
            .push_back((id, wake.clone()));
        Ok(Place {
            lines: self.clone(),
            client,
            id,
            wake,
        })
    }
}

impl Place {
    /// Whether no request of the same client is ahead of this one.
    pub fn is_first(&self) -> bool {
        let state = self.lines.lock();
        state
            .lines
            .get(&self.client)
            .and_then(|line| line.waiting.front())
            .is_some_and(|(id, _)| *id == self.id)
    }

    /// Waits until this request is first in its line; `false` when the
    /// deadline passed first.
    pub async fn first_in_line(&self, deadline: Instant) -> bool {
        loop {
            if self.is_first() {
                return true;
            }
            // The one ahead wakes this one when it leaves; a wake-up that
            // comes before we wait is kept by `Notify` (one permit).
            if tokio::time::timeout_at(deadline, self.wake.notified())
                .await
                .is_err()
            {
                return self.is_first();
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut state = self.lines.lock();
        let Some(line) = state.lines.get_mut(&self.client) else {
            return;
        };
        let Some(at) = line.waiting.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        line.waiting.remove(at);
        if at == 0 {
            if let Some((_, next)) = line.waiting.front() {
                next.notify_one();
            }
        }
        if line.waiting.is_empty() {
            state.lines.remove(&self.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> ClientKey {
        ClientKey::Ip(s.parse().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_clients_requests_move_up_in_arrival_order() {
        let lines = WaitLines::new();
        let a = ip("10.0.0.1");
        let first = lines.join(a.clone(), 8).unwrap();
        let second = lines.join(a.clone(), 8).unwrap();
        let third = lines.join(a.clone(), 8).unwrap();
        assert!(first.is_first() && !second.is_first() && !third.is_first());
        assert!(lines.is_waiting(&a));
        // Another client has a line of its own.
        let other = lines.join(ip("10.0.0.2"), 8).unwrap();
        assert!(other.is_first());
        // The third cannot move past the second...
        let deadline = Instant::now() + Duration::from_millis(50);
        let waiting_third = async { third.first_in_line(deadline).await };
        drop(first);
        assert!(second.is_first());
        assert!(
            !waiting_third.await,
            "still behind the second at its deadline"
        );
        // ...and moves up when the second leaves.
        let deadline = Instant::now() + Duration::from_secs(1);
        let leave = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(second);
        };
        let (moved, ()) = tokio::join!(third.first_in_line(deadline), leave);
        assert!(moved);
        assert_eq!(Instant::now() + Duration::from_millis(990), deadline);
        drop(third);
        assert!(!lines.is_waiting(&a), "an empty line is forgotten");
        assert_eq!(lines.waiting(&ip("10.0.0.2")), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_line_refuses_and_a_place_left_in_the_middle_keeps_the_order() {
        let lines = WaitLines::new();
        let a = ip("10.0.0.1");
        let places: Vec<Place> = (0..3).map(|_| lines.join(a.clone(), 3).unwrap()).collect();
        assert_eq!(
            lines.join(a.clone(), 3).unwrap_err(),
            LineFull { waiting: 3 }
        );
        let mut places = places.into_iter();
        let (first, middle, last) = (
            places.next().unwrap(),
            places.next().unwrap(),
            places.next().unwrap(),
        );
        // A request that gives up in the middle (its client went away).
        drop(middle);
        assert!(!last.is_first());
        drop(first);
        assert!(last.is_first());
        assert!(lines.join(a, 3).is_ok(), "room again");
    }
}
