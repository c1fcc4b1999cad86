//! Gate: one client's time budget of a class. A class may bound the slot
//! time one client IP uses per second (`per_client_ms_per_sec`); the rule
//! (GCRA over slot time) and why are in [`crate::budget`].
//!
//! Two steps, because a command's cost is only known when it ends:
//! [`ClientBudget::check`] refuses a client past its budget before anything
//! is taken, and [`ClientBudget::charge`], once the command is admitted,
//! yields a [`BudgetCharge`] that charges the time until it is dropped.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::budget::{Debts, TimeBudget};
use crate::identity::ClientKey;

/// Refusal: the client used up its time budget of the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this client used its time budget ({ms_per_sec}ms per second), paid off in {}ms", paid_off_in.as_millis())]
pub struct OverBudget {
    pub ms_per_sec: u32,
    /// When the client may run a command of the class again.
    pub paid_off_in: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// `None`: no limit.
    budget: Option<TimeBudget>,
    debts: Debts,
}

/// The per-client debts of one class, kept across reloads.
#[derive(Debug, Default)]
pub struct ClientBudget {
    state: Mutex<State>,
}

/// Charges its client for the time until it is dropped (at the budget in
/// force then; nothing if a reload removed it).
#[derive(Debug)]
pub struct BudgetCharge {
    budget: Arc<ClientBudget>,
    client: ClientKey,
    since: Instant,
}

impl Drop for BudgetCharge {
    fn drop(&mut self) {
        let now = Instant::now();
        let held = now.saturating_duration_since(self.since);
        let mut state = self.budget.lock();
        if let Some(budget) = state.budget {
            state.debts.charge(&budget, self.client.clone(), held, now);
        }
    }
}

impl ClientBudget {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new limit (`None`: none); debts already owed are kept.
    pub fn set(&self, budget: Option<TimeBudget>) {
        self.lock().budget = budget;
    }

    /// Refuses `client` while it is past its budget. No client, or no
    /// budget: never refused.
    pub fn check(&self, client: Option<&ClientKey>) -> Result<(), OverBudget> {
        let state = self.lock();
        let (Some(client), Some(budget)) = (client, state.budget) else {
            return Ok(());
        };
        match state.debts.refusal(&budget, client, Instant::now()) {
            None => Ok(()),
            Some(paid_off_in) => Err(OverBudget {
                ms_per_sec: budget.ms_per_sec,
                paid_off_in,
            }),
        }
    }

    /// Starts charging `client` from now (`None`: no client or no budget,
    /// nothing to charge).
    pub fn charge(self: &Arc<Self>, client: Option<ClientKey>) -> Option<BudgetCharge> {
        let client = client.filter(|_| self.lock().budget.is_some())?;
        Some(BudgetCharge {
            budget: self.clone(),
            client,
            since: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default `heavy_scan` budget.
    const QUARTER: TimeBudget = TimeBudget {
        ms_per_sec: 250,
        burst_ms: 1000,
    };

    fn ip(s: &str) -> Option<ClientKey> {
        Some(ClientKey::Ip(s.parse().unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_past_its_time_budget_is_refused_until_paid_off() {
        let gate = ClientBudget::new();
        gate.set(Some(QUARTER));
        let (hog, other) = (ip("10.0.0.1"), ip("10.0.0.2"));
        // Held for 2 s in one go: 8 s of debt, 4 s of it beyond what the
        // burst tolerates.
        gate.check(hog.as_ref()).unwrap();
        let long = gate.charge(hog.clone()).unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(long);
        assert_eq!(
            gate.check(hog.as_ref()).unwrap_err(),
            OverBudget {
                ms_per_sec: 250,
                paid_off_in: Duration::from_millis(4000)
            }
        );
        // Others, and the rest of a pipeline (no client), are unaffected.
        gate.check(other.as_ref()).unwrap();
        gate.check(None).unwrap();
        assert!(gate.charge(None).is_none());
        tokio::time::advance(Duration::from_millis(3900)).await;
        let almost = gate.check(hog.as_ref()).unwrap_err();
        assert_eq!(almost.paid_off_in, Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(gate.check(hog.as_ref()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_budget_nothing_is_charged_or_refused() {
        let gate = ClientBudget::new();
        assert!(gate.charge(ip("10.0.0.1")).is_none());
        // A charge running when a reload removes the budget is not charged.
        gate.set(Some(QUARTER));
        let long = gate.charge(ip("10.0.0.1")).unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        gate.set(None);
        drop(long);
        gate.set(Some(QUARTER));
        assert!(gate.check(ip("10.0.0.1").as_ref()).is_ok());
    }
}
