//! Per-client time budget of a class: how much slot time one client IP may
//! use per second, on average.
//!
//! Why: the per-client share bounds how many commands of one host run at
//! once, not how many per second. A host that keeps its one `heavy_scan`
//! slot busy with `KEYS *` back to back takes every saving in a command's
//! cost as more throughput (docs/benchmarks.md, stop 13). Charging the time
//! each command held its slot bounds the work itself.
//!
//! **Rule** (GCRA over slot time): every IP has a *debt horizon* `t`, the
//! moment its past use would be paid off at `ms_per_sec`. A command that
//! held its slot for `h` moves it to `max(t, now) + h × 1000 / ms_per_sec`.
//! A new command is refused while `t - now` exceeds what `burst_ms` of slot
//! time is worth, and told to retry when it no longer does. So an idle
//! client can use `burst_ms` at once, and a busy one `ms_per_sec` every
//! second. Charged when the command finishes: its cost is known only then.
//!
//! Not the `governor` crate: its GCRA takes the cost of a cell up front and
//! refuses rather than going into debt, and here the cost is only known
//! afterwards.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::identity::ClientKey;

/// Fewest entries before a pruning pass.
const PRUNE_MIN: usize = 64;

/// A class's per-client budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBudget {
    /// Slot milliseconds one IP may use per second of wall time (> 0).
    pub ms_per_sec: u32,
    /// Slot milliseconds an idle IP may use at once (> 0).
    pub burst_ms: u32,
}

impl TimeBudget {
    /// The wall time that `slot` of slot time costs at this rate.
    fn cost(&self, slot: Duration) -> Duration {
        slot.mul_f64(1000.0 / f64::from(self.ms_per_sec.max(1)))
    }

    /// How far ahead of now the debt horizon may be.
    fn tolerance(&self) -> Duration {
        self.cost(Duration::from_millis(u64::from(self.burst_ms)))
    }
}

/// Debt horizons by client IP. An IP whose horizon has passed is the same
/// as a new one, so such entries are dropped when the map grows.
#[derive(Debug, Default)]
pub struct Debts {
    horizon: HashMap<ClientKey, Instant>,
    prune_at: usize,
}

impl Debts {
    /// `Some(wait)` when `ip` has used up its budget: it may run again
    /// after `wait`.
    pub fn refusal(&self, budget: &TimeBudget, ip: &ClientKey, now: Instant) -> Option<Duration> {
        let horizon = *self.horizon.get(ip)?;
        let allowed_from = horizon.checked_sub(budget.tolerance()).unwrap_or(now);
        (allowed_from > now).then(|| allowed_from - now)
    }

    /// Charges `ip` for holding a slot for `held`.
    pub fn charge(&mut self, budget: &TimeBudget, ip: ClientKey, held: Duration, now: Instant) {
        let horizon = self.horizon.entry(ip).or_insert(now);
        *horizon = (*horizon).max(now) + budget.cost(held);
        if self.horizon.len() > self.prune_at.max(PRUNE_MIN) {
            self.horizon.retain(|_, h| *h > now);
            self.prune_at = 2 * self.horizon.len();
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.horizon.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const QUARTER: TimeBudget = TimeBudget {
        ms_per_sec: 250,
        burst_ms: 1000,
    };

    fn ip(last: u8) -> ClientKey {
        ClientKey::Ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_client_may_use_its_burst_then_its_rate() {
        let mut debts = Debts::default();
        let a = ip(1);
        // Back-to-back 100 ms commands: the burst (1 s of slot time) lasts
        // while debt outruns wall time (100 ms costs 400 ms of debt).
        let mut ran = 0;
        loop {
            let now = Instant::now();
            if debts.refusal(&QUARTER, &a, now).is_some() {
                break;
            }
            tokio::time::advance(ms(100)).await;
            debts.charge(&QUARTER, a.clone(), ms(100), Instant::now());
            ran += 1;
            assert!(ran < 100, "never refused");
        }
        // 1 s of burst plus what was earned while running (≈ 1.33 s).
        assert!((13..=15).contains(&ran), "ran {ran} commands");
        let wait = debts
            .refusal(&QUARTER, &a, Instant::now())
            .expect("refused");
        assert!(wait <= ms(400), "{wait:?}");
        tokio::time::advance(wait).await;
        assert_eq!(debts.refusal(&QUARTER, &a, Instant::now()), None);
        // Sustained: 100 ms of slot time every 400 ms.
        debts.charge(&QUARTER, a.clone(), ms(100), Instant::now());
        assert_eq!(debts.refusal(&QUARTER, &a, Instant::now() + ms(400)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn clients_are_charged_separately_and_forgotten_once_paid_off() {
        let mut debts = Debts::default();
        let now = Instant::now();
        debts.charge(&QUARTER, ip(1), ms(2000), now);
        assert!(debts.refusal(&QUARTER, &ip(1), now).is_some());
        assert_eq!(debts.refusal(&QUARTER, &ip(2), now), None);
        // Paid off after 8 s; a crowd of other clients then prunes it.
        tokio::time::advance(Duration::from_secs(9)).await;
        let later = Instant::now();
        assert_eq!(debts.refusal(&QUARTER, &ip(1), later), None);
        for last in 10..=(10 + PRUNE_MIN as u8) {
            debts.charge(&QUARTER, ip(last), ms(1), later);
        }
        assert_eq!(debts.refusal(&QUARTER, &ip(1), later), None);
        assert!(debts.tracked() <= PRUNE_MIN + 1, "{}", debts.tracked());
    }

    #[test]
    fn a_short_command_costs_its_share_of_a_second() {
        assert_eq!(QUARTER.cost(ms(10)), ms(40));
        assert_eq!(QUARTER.tolerance(), ms(4000));
    }
}
