//! Layer 1's gates. Each is one concern that yields a permit, released on
//! drop, or a typed refusal; [`crate::admission`] takes them in this order
//! for each command, and the first refusal is the command's `-BUSY` reply:
//!
//! 1. [`time_budget`]: the client's slot time per second in the class;
//! 2. [`client_share`]: the client's requests running at once in the class;
//! 3. [`class_slot`]: a slot of the class, with sub-pools and reservations
//!    (a full class answers before a spent share);
//! 4. [`inflight`]: the proxy-wide in-flight cap (waited for, never a
//!    refusal).
//!
//! A request refused by 2 or 3 may wait, up to a deadline, in its client's
//! line of the class ([`queue`]) and try again when a slot is released; a
//! refusal by 1 is never waited for.
//!
//! The first three and the line are per class, bundled in a
//! [`ClassGates`]; [`Gates`]
//! keeps their state across reloads. [`Refused`] is every refusal with its
//! retry hint, and its text is the reply.

pub mod class_slot;
pub mod client_share;
pub mod inflight;
pub mod queue;
pub mod time_budget;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::classes::ClassTable;
use crate::metrics::CommandMetrics;
use class_slot::{ClassFull, Pools, Slot};
use client_share::{ClientShare, ShareFull};
use queue::WaitLines;
use time_budget::{ClientBudget, OverBudget};

/// The `-BUSY` text (without the leading '-') for a full class.
pub fn busy_class_text(class: &str, retry_after: Duration) -> String {
    format!(
        "BUSY class {class} is at its concurrency limit, retry after {}ms",
        retry_after.as_millis().max(1)
    )
}

/// The `-BUSY` text when this client already holds its share of a class.
pub fn busy_share_text(class: &str, held: u32, max: u32, retry_after: Duration) -> String {
    format!(
        "BUSY class {class}: this client already holds its share ({held} of {max} slots), retry after {}ms",
        retry_after.as_millis().max(1)
    )
}

/// The `-BUSY` text when this client used up its time budget of a class.
pub fn busy_time_text(class: &str, ms_per_sec: u32, retry_after: Duration) -> String {
    format!(
        "BUSY class {class}: this client used its time budget ({ms_per_sec}ms per second), retry after {}ms",
        retry_after.as_millis().max(1)
    )
}

/// A command refused by a gate; the text (`Display`) is its `-BUSY` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{}", busy_time_text(.class, .over.ms_per_sec, *.retry_after))]
    ClientTime {
        class: &'static str,
        over: OverBudget,
        /// When it is paid off, clamped to the hint's bounds.
        retry_after: Duration,
    },
    #[error("{}", busy_share_text(.class, .over.held, .over.max, *.retry_after))]
    ClientShare {
        class: &'static str,
        over: ShareFull,
        /// How long the class's slots are typically held.
        retry_after: Duration,
    },
    #[error("{}", busy_class_text(.0.class, .0.retry_after))]
    ClassFull(ClassFull),
}

impl Refused {
    /// Whether waiting can end this refusal: a full class or a spent share
    /// frees up when a running command ends. A spent time budget is the
    /// client's own doing, paid off only with time, and is answered at
    /// once (its hint says exactly when to come back).
    pub fn worth_waiting(&self) -> bool {
        !matches!(self, Refused::ClientTime { .. })
    }

    /// Counts the refusal in `rampart_commands_rejected_total{reason}`.
    pub fn count(&self, metrics: &CommandMetrics) {
        let counter = match self {
            Refused::ClientTime { .. } => &metrics.rejected_time,
            Refused::ClientShare { .. } => &metrics.rejected_share,
            Refused::ClassFull(_) => &metrics.rejected_class,
        };
        counter.increment(1);
    }
}

/// The per-class gates of one class.
#[derive(Debug, Clone)]
pub struct ClassGates {
    pub budget: Arc<ClientBudget>,
    pub share: Arc<ClientShare>,
    pub lines: Arc<WaitLines>,
    pub slot: Slot,
}

/// The state of every class's gates, kept across reloads: slots by class
/// in its top-level class's pool, per-client counts, debts and lines by
/// (top-level class, class), so permits taken before a reload are still
/// counted and waiting requests keep their places.
#[derive(Debug, Default)]
pub struct Gates {
    pools: Pools,
    per_client: Mutex<HashMap<(&'static str, &'static str), PerClient>>,
}

#[derive(Debug, Clone, Default)]
struct PerClient {
    budget: Arc<ClientBudget>,
    share: Arc<ClientShare>,
    lines: Arc<WaitLines>,
}

impl Gates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `table`'s limits (creating state for new classes) and returns
    /// one [`ClassGates`] per class of the table, by class index.
    pub fn bind(&self, table: &ClassTable) -> Vec<ClassGates> {
        let per_client: Vec<PerClient> = {
            let mut known = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            table
                .classes
                .iter()
                .map(|class| {
                    let top = class.within.map_or(class, |p| &table.classes[p]);
                    let gates = known.entry((top.name, class.name)).or_default();
                    gates.budget.set(class.time_budget);
                    // The class's bound in a share refusal: its own, else its
                    // parent's.
                    let max = if class.max > 0 { class.max } else { top.max };
                    gates.share.set(class.per_client, max);
                    gates.clone()
                })
                .collect()
        };
        // Last: binding the slots wakes anybody waiting, who must see every
        // new limit.
        let slots = self.pools.bind(table);
        per_client
            .into_iter()
            .zip(slots)
            .map(|(p, slot)| ClassGates {
                budget: p.budget,
                share: p.share,
                lines: p.lines,
                slot,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::{build_table, HEAVY_DATA, HEAVY_SCAN};
    use crate::config::ClassConfig;
    use crate::identity::ClientKey;
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    #[test]
    fn refusal_texts_are_the_busy_replies() {
        let ms = Duration::from_millis;
        let time = Refused::ClientTime {
            class: "heavy_scan",
            over: OverBudget {
                ms_per_sec: 250,
                paid_off_in: ms(4000),
            },
            retry_after: ms(4000),
        };
        assert_eq!(
            time.to_string(),
            "BUSY class heavy_scan: this client used its time budget (250ms per second), retry after 4000ms"
        );
        let share = Refused::ClientShare {
            class: "heavy_data",
            over: ShareFull { held: 2, max: 8 },
            retry_after: ms(100),
        };
        assert_eq!(
            share.to_string(),
            "BUSY class heavy_data: this client already holds its share (2 of 8 slots), retry after 100ms"
        );
        let full = Refused::ClassFull(ClassFull {
            class: "admin",
            retry_after: Duration::from_micros(300),
        });
        assert_eq!(
            full.to_string(),
            "BUSY class admin is at its concurrency limit, retry after 1ms",
            "never 0ms"
        );
    }

    fn table(classes: &[(&str, ClassConfig)]) -> ClassTable {
        let classes: BTreeMap<String, ClassConfig> = classes
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect();
        build_table(&classes, &BTreeMap::new(), 4).unwrap()
    }

    #[test]
    fn bind_sets_each_gate_and_keeps_counts_across_reloads() {
        let gates = Gates::new();
        let t = table(&[]);
        let bound = gates.bind(&t);
        let data = &bound[t.class_index(HEAVY_DATA).unwrap()];
        let scan = &bound[t.class_index(HEAVY_SCAN).unwrap()];
        // 4 CPUs: heavy_data max 8, a quarter per client; scans have the
        // default time budget, data commands none.
        let addr = ClientKey::Ip("10.0.0.1".parse::<IpAddr>().unwrap());
        let ip = || Some((addr.clone(), None));
        let held = data.share.try_acquire(ip()).unwrap();
        let _second = data.share.try_acquire(ip()).unwrap();
        assert_eq!(
            data.share.try_acquire(ip()).unwrap_err(),
            ShareFull { held: 2, max: 8 }
        );
        assert!(data.budget.charge(Some(addr.clone())).is_none());
        assert!(scan.budget.charge(Some(addr.clone())).is_some());
        // A reload with a wider share still counts the two running.
        let wider = ClassConfig {
            per_client: Some(3),
            ..Default::default()
        };
        let t2 = table(&[(HEAVY_DATA, wider)]);
        let data2 = gates.bind(&t2)[t2.class_index(HEAVY_DATA).unwrap()].clone();
        let _third = data2.share.try_acquire(ip()).unwrap();
        assert_eq!(
            data2.share.try_acquire(ip()).unwrap_err(),
            ShareFull { held: 3, max: 8 }
        );
        drop(held);
        assert_eq!(data2.share.held_by(&addr), 2);
    }
}
