//! Bounded concurrency per class, with sub-pools that reserve slots of their
//! parent, and the global in-flight cap. Nothing here queues without bound:
//! a full pool answers at once, or after an optional short bounded wait.
//!
//! **Sub-pools.** A top-level class with `max = M` and sub-pools each with a
//! `reserve` r_i and their own `max` m_i: a sub-pool may take a slot while it
//! uses fewer than r_i (its reservation, which nobody else can take), or
//! while the shared part (M - Σr) has room; never more than m_i. So the
//! default `heavy_scan` (max M/2, reserve 1) can never take more than half
//! of `heavy`, and `heavy_data` always keeps at least one slot for scans.
//!
//! **Per-client share.** A class may also bound how many requests of one
//! client IP run in it at once (`per_client`), so one host cannot take a
//! whole class from the others however many connections it opens: the
//! incident's abusive host held every heavy slot. Admission counts a
//! pipeline segment once (only its first command of the class passes the
//! client to [`Slot::try_acquire_for`]). Counted under the same lock as the
//! slots; an IP's count is dropped when it reaches zero.
//!
//! **Per-client time budget.** A class may also bound the slot time one
//! client IP uses per second (`per_client_ms_per_sec`, see
//! [`crate::budget`]): each permit charges its holding time when it drops,
//! and a client past its budget is refused until it is paid off.
//!
//! **Reload.** Pools live across reloads (by class name) and only their
//! limits change, so permits taken before a reload are still counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use metrics::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::budget::{Debts, TimeBudget};
use crate::classes::ClassTable;
use crate::metrics::{CLASS_IN_FLIGHT, REQUESTS_IN_FLIGHT};

/// When nothing has finished in a class yet, hint this long (clamped).
const UNKNOWN_HOLD: Duration = Duration::from_millis(100);
/// Weight of the newest sample in the hold-time average.
const EWMA_ALPHA: f64 = 0.2;

/// A class refused a command: why, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("class {class} refused the command ({refusal:?}), retry after {}ms", retry_after.as_millis())]
pub struct ClassFull {
    pub class: &'static str,
    /// For a full class, how long its slots are typically held; for a
    /// spent budget, when it is paid off.
    pub retry_after: Duration,
    pub refusal: Refusal,
}

/// Why a class refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The class (or its parent) had no free slot.
    Full,
    /// The class had room, but this client already held `held` of its
    /// `max` slots.
    ClientShare { held: u32, max: u32 },
    /// This client used up its time budget of the class.
    ClientTime { ms_per_sec: u32 },
}

#[derive(Debug)]
struct Member {
    name: &'static str,
    max: u32,
    reserve: u32,
    used: u32,
    /// Requests one client IP may run in this class at once; 0 = no limit.
    per_client: u32,
    /// Requests running per client IP (only IPs with at least one).
    by_client: HashMap<IpAddr, u32>,
    /// Slot time one client IP may use per second; `None` = no limit.
    budget: Option<TimeBudget>,
    debts: Debts,
    ewma_hold_ms: Option<f64>,
    gauge: Gauge,
}

#[derive(Debug)]
struct GroupState {
    /// 0 = unbounded.
    max: u32,
    members: Vec<Member>,
}

impl GroupState {
    fn shared_in_use(&self) -> u32 {
        self.members
            .iter()
            .map(|m| m.used.saturating_sub(m.reserve))
            .sum()
    }

    fn has_room(&self, member: usize) -> bool {
        let Some(m) = self.members.get(member) else {
            return false;
        };
        if m.max > 0 && m.used >= m.max {
            return false;
        }
        if self.max == 0 || m.used < m.reserve {
            return true;
        }
        let reserved: u32 = self.members.iter().map(|m| m.reserve).sum();
        self.shared_in_use() < self.max.saturating_sub(reserved)
    }
}

/// A top-level class and its sub-pools: the unit slots are shared in.
#[derive(Debug)]
pub struct Group {
    state: Mutex<GroupState>,
    freed: Notify,
    waiters: AtomicUsize,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A held class slot, released on drop (however the command ends).
#[derive(Debug)]
pub struct ClassPermit {
    group: Arc<Group>,
    member: usize,
    /// Counted in the client's share.
    client: Option<IpAddr>,
    /// Charged to the client's time budget.
    charged: Option<IpAddr>,
    since: Instant,
}

impl Drop for ClassPermit {
    fn drop(&mut self) {
        let now = Instant::now();
        let held_for = now.saturating_duration_since(self.since);
        let held = held_for.as_secs_f64() * 1000.0;
        {
            let mut state = self.group.lock();
            if let Some(m) = state.members.get_mut(self.member) {
                if let (Some(ip), Some(budget)) = (self.charged, m.budget) {
                    m.debts.charge(&budget, ip, held_for, now);
                }
                m.used = m.used.saturating_sub(1);
                m.gauge.decrement(1.0);
                if let Some(ip) = self.client {
                    if let Some(n) = m.by_client.get_mut(&ip) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            m.by_client.remove(&ip);
                        }
                    }
                }
                m.ewma_hold_ms = Some(match m.ewma_hold_ms {
                    Some(avg) => avg + EWMA_ALPHA * (held - avg),
                    None => held,
                });
            }
        }
        if self.group.waiters.load(Ordering::Acquire) > 0 {
            self.group.freed.notify_waiters();
        }
    }
}

/// Where one class's slots are taken from.
#[derive(Debug, Clone)]
pub struct Slot {
    group: Arc<Group>,
    member: usize,
    name: &'static str,
    unbounded: bool,
}

impl Slot {
    /// Takes a slot now, or says how long to back off.
    pub fn try_acquire(&self, min: Duration, max: Duration) -> Result<ClassPermit, ClassFull> {
        self.try_acquire_for(None, min, max)
    }

    /// [`Slot::try_acquire`] on behalf of `client`, within its share.
    pub fn try_acquire_for(
        &self,
        client: Option<IpAddr>,
        min: Duration,
        max: Duration,
    ) -> Result<ClassPermit, ClassFull> {
        let mut state = self.group.lock();
        let mut refusal = Refusal::Full;
        if let (Some(ip), Some(m)) = (client, state.members.get(self.member)) {
            if let Some(budget) = m.budget {
                if let Some(wait) = m.debts.refusal(&budget, ip, Instant::now()) {
                    return Err(ClassFull {
                        class: self.name,
                        retry_after: wait.clamp(min, max),
                        refusal: Refusal::ClientTime {
                            ms_per_sec: budget.ms_per_sec,
                        },
                    });
                }
            }
        }
        if state.has_room(self.member) {
            let group_max = state.max;
            if let Some(m) = state.members.get_mut(self.member) {
                // The client is counted only where the class has a share.
                let tracked = client.filter(|_| m.per_client > 0);
                let held = tracked.map_or(0, |ip| m.by_client.get(&ip).copied().unwrap_or(0));
                if tracked.is_some() && held >= m.per_client {
                    let class_max = if m.max > 0 { m.max } else { group_max };
                    refusal = Refusal::ClientShare {
                        held,
                        max: class_max,
                    };
                } else {
                    m.used += 1;
                    m.gauge.increment(1.0);
                    if let Some(ip) = tracked {
                        *m.by_client.entry(ip).or_insert(0) += 1;
                    }
                    return Ok(ClassPermit {
                        group: self.group.clone(),
                        member: self.member,
                        client: tracked,
                        charged: client.filter(|_| m.budget.is_some()),
                        since: Instant::now(),
                    });
                }
            }
        }
        let hold = state
            .members
            .get(self.member)
            .and_then(|m| m.ewma_hold_ms)
            .map(|ms| Duration::from_micros((ms * 1000.0) as u64))
            .unwrap_or(UNKNOWN_HOLD);
        Err(ClassFull {
            class: self.name,
            retry_after: hold.clamp(min, max),
            refusal,
        })
    }

    /// Like [`Slot::try_acquire`], waiting at most `wait` for a slot.
    pub async fn acquire(
        &self,
        wait: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<ClassPermit, ClassFull> {
        self.acquire_for(None, wait, min, max).await
    }

    /// [`Slot::acquire`] on behalf of `client`, within its share.
    pub async fn acquire_for(
        &self,
        client: Option<IpAddr>,
        wait: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<ClassPermit, ClassFull> {
        let first = self.try_acquire_for(client, min, max);
        if first.is_ok() || wait.is_zero() {
            return first;
        }
        let deadline = Instant::now() + wait;
        self.group.waiters.fetch_add(1, Ordering::AcqRel);
        let _unregister = WaiterGuard(&self.group.waiters);
        loop {
            let freed = self.group.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_acquire_for(client, min, max) {
                Ok(p) => return Ok(p),
                Err(full) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return self.try_acquire_for(client, min, max).map_err(|_| full);
                    }
                }
            }
        }
    }

    pub fn is_unbounded(&self) -> bool {
        self.unbounded
    }
}

struct WaiterGuard<'a>(&'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every class pool, kept across reloads.
#[derive(Debug, Default)]
pub struct Pools {
    groups: Mutex<HashMap<&'static str, Arc<Group>>>,
}

impl Pools {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `table`'s limits (creating pools for new classes) and returns
    /// one [`Slot`] per class of the table, by class index.
    pub fn bind(&self, table: &ClassTable) -> Vec<Slot> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut slots = Vec::with_capacity(table.classes.len());
        for class in &table.classes {
            let top = match class.within {
                Some(p) => &table.classes[p],
                None => class,
            };
            let group = groups
                .entry(top.name)
                .or_insert_with(|| {
                    Arc::new(Group {
                        state: Mutex::new(GroupState {
                            max: 0,
                            members: Vec::new(),
                        }),
                        freed: Notify::new(),
                        waiters: AtomicUsize::new(0),
                    })
                })
                .clone();
            let member = {
                let mut state = group.lock();
                state.max = top.max;
                // A class used directly next to its sub-pools is capped by
                // the parent and reserves nothing.
                let (max, reserve) = if class.within.is_some() {
                    (class.max, class.reserve)
                } else {
                    (0, 0)
                };
                match state.members.iter().position(|m| m.name == class.name) {
                    Some(i) => {
                        state.members[i].max = max;
                        state.members[i].reserve = reserve;
                        state.members[i].per_client = class.per_client;
                        state.members[i].budget = class.time_budget;
                        i
                    }
                    None => {
                        state.members.push(Member {
                            name: class.name,
                            max,
                            reserve,
                            used: 0,
                            per_client: class.per_client,
                            by_client: HashMap::new(),
                            budget: class.time_budget,
                            debts: Debts::default(),
                            ewma_hold_ms: None,
                            gauge: metrics::gauge!(CLASS_IN_FLIGHT, "class" => class.name),
                        });
                        state.members.len() - 1
                    }
                }
            };
            slots.push(Slot {
                unbounded: top.max == 0 && class.max == 0,
                group,
                member,
                name: class.name,
            });
        }
        // A class that left a group keeps its member (and counts) there, but
        // reserves nothing any more.
        for (name, group) in groups.iter() {
            let mut state = group.lock();
            for m in state.members.iter_mut() {
                let still_here = table.classes.iter().any(|c| {
                    c.name == m.name
                        && match c.within {
                            Some(p) => table.classes[p].name == *name,
                            None => c.name == *name,
                        }
                });
                if !still_here {
                    m.reserve = 0;
                }
            }
        }
        if groups
            .values()
            .any(|g| g.waiters.load(Ordering::Acquire) > 0)
        {
            for g in groups.values() {
                g.freed.notify_waiters();
            }
        }
        slots
    }
}

/// The global in-flight request cap: one unit per executing command across
/// all connections. Lock-free; a full cap rejects at once.
#[derive(Debug)]
pub struct Inflight {
    used: AtomicU64,
    /// 0 = unlimited.
    max: AtomicU64,
    gauge: Gauge,
}

/// One in-flight unit, released on drop.
#[derive(Debug)]
pub struct InflightPermit {
    owner: Arc<Inflight>,
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        self.owner.used.fetch_sub(1, Ordering::AcqRel);
        self.owner.gauge.decrement(1.0);
    }
}

impl Inflight {
    pub fn new(max: u64) -> Arc<Self> {
        Arc::new(Inflight {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
            gauge: metrics::gauge!(REQUESTS_IN_FLIGHT),
        })
    }

    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Release);
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn try_acquire(self: &Arc<Self>) -> Option<InflightPermit> {
        let max = self.max.load(Ordering::Acquire);
        let before = self.used.fetch_add(1, Ordering::AcqRel);
        if max > 0 && before >= max {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.gauge.increment(1.0);
        Some(InflightPermit {
            owner: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::{build_table, HEAVY_DATA, HEAVY_SCAN, HEAVY_SCRIPT};
    use crate::config::ClassConfig;
    use std::collections::BTreeMap;

    const MIN: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_millis(5000);

    fn slots(classes: &[(&str, ClassConfig)], cpus: u32) -> (ClassTable, Vec<Slot>, Pools) {
        let classes: BTreeMap<String, ClassConfig> = classes
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect();
        let table = build_table(&classes, &BTreeMap::new(), cpus).unwrap();
        let pools = Pools::new();
        let slots = pools.bind(&table);
        (table, slots, pools)
    }

    fn slot<'a>(table: &ClassTable, slots: &'a [Slot], name: &str) -> &'a Slot {
        &slots[table.class_index(name).unwrap()]
    }

    #[tokio::test]
    async fn a_full_class_rejects_at_once_and_frees_on_drop() {
        let cfg = ClassConfig {
            max: Some(2),
            ..Default::default()
        };
        let (t, s, _p) = slots(&[("admin", cfg)], 4);
        let heavy = slot(&t, &s, "admin");
        let a = heavy.try_acquire(MIN, MAX).unwrap();
        let _b = heavy.try_acquire(MIN, MAX).unwrap();
        let full = heavy.try_acquire(MIN, MAX).unwrap_err();
        assert_eq!(full.class, "admin");
        assert_eq!(full.retry_after, UNKNOWN_HOLD);
        drop(a);
        assert!(heavy.try_acquire(MIN, MAX).is_ok());
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_share_and_others_still_get_slots() {
        // 4 CPUs: heavy_data max 8, per client a quarter (2).
        let (t, s, _p) = slots(&[], 4);
        let data = slot(&t, &s, HEAVY_DATA);
        let abuser: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let other: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        let a1 = data.try_acquire_for(abuser, MIN, MAX).unwrap();
        let _a2 = data.try_acquire_for(abuser, MIN, MAX).unwrap();
        let refused = data.try_acquire_for(abuser, MIN, MAX).unwrap_err();
        assert_eq!(refused.class, HEAVY_DATA);
        assert_eq!(refused.refusal, Refusal::ClientShare { held: 2, max: 8 });
        let _o = data.try_acquire_for(other, MIN, MAX).unwrap();
        // Untracked acquisitions (the rest of a pipeline) are not shares.
        let _untracked = data.try_acquire_for(None, MIN, MAX).unwrap();
        drop(a1);
        assert!(
            data.try_acquire_for(abuser, MIN, MAX).is_ok(),
            "a released share can be taken again"
        );
        // A full class (7 usable: heavy_scan reserves 1) is a class
        // rejection, not a share one.
        let rest: Vec<_> = (0..4)
            .map(|i| {
                let ip: IpAddr = format!("10.0.1.{i}").parse().unwrap();
                data.try_acquire_for(Some(ip), MIN, MAX).unwrap()
            })
            .collect();
        let full = data
            .try_acquire_for(Some("10.0.2.1".parse().unwrap()), MIN, MAX)
            .unwrap_err();
        assert_eq!(full.refusal, Refusal::Full);
        drop(rest);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_past_its_time_budget_is_refused_until_paid_off() {
        // Default heavy_scan budget: 250 ms of slot time per second, burst
        // 1000 ms. Share 1 per client (4 CPUs: max 4).
        let (t, s, _p) = slots(&[], 4);
        let scan = slot(&t, &s, HEAVY_SCAN);
        let hog: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let other: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        // Held for 2 s in one go: 8 s of debt, 4 s of it beyond what the
        // burst tolerates.
        let long = scan.try_acquire_for(hog, MIN, MAX).unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(long);
        let refused = scan.try_acquire_for(hog, MIN, MAX).unwrap_err();
        assert_eq!(refused.refusal, Refusal::ClientTime { ms_per_sec: 250 });
        assert_eq!(refused.retry_after, Duration::from_millis(4000));
        // Others, and the rest of a pipeline (no client), are unaffected.
        drop(scan.try_acquire_for(other, MIN, MAX).unwrap());
        drop(scan.try_acquire_for(None, MIN, MAX).unwrap());
        tokio::time::advance(Duration::from_millis(3900)).await;
        let almost = scan.try_acquire_for(hog, MIN, MAX).unwrap_err();
        assert_eq!(almost.retry_after, Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(scan.try_acquire_for(hog, MIN, MAX).is_ok());
        // Classes without a budget never refuse for time.
        let data = slot(&t, &s, HEAVY_DATA);
        let long = data.try_acquire_for(hog, MIN, MAX).unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        drop(long);
        assert!(data.try_acquire_for(hog, MIN, MAX).is_ok());
    }

    #[tokio::test]
    async fn scans_cannot_starve_data_commands_nor_the_reverse() {
        // 4 CPUs: heavy = 8, scans at most 4, each sub-pool reserves 1.
        let (t, s, _p) = slots(&[], 4);
        let scan = slot(&t, &s, HEAVY_SCAN);
        let data = slot(&t, &s, HEAVY_DATA);
        let script = slot(&t, &s, HEAVY_SCRIPT);
        let scans: Vec<_> = (0..4)
            .map(|_| scan.try_acquire(MIN, MAX).unwrap())
            .collect();
        assert!(scan.try_acquire(MIN, MAX).is_err(), "scans capped at half");
        let datas: Vec<_> = (0..4)
            .map(|_| data.try_acquire(MIN, MAX).unwrap())
            .collect();
        assert!(data.try_acquire(MIN, MAX).is_err(), "heavy is full");
        let scripts: Vec<_> = (0..32)
            .map(|_| script.try_acquire(MIN, MAX).unwrap())
            .collect();
        assert!(
            script.try_acquire(MIN, MAX).is_err(),
            "scripts are bounded on their own, not by a full heavy"
        );
        drop(scans);
        // Data may now take everything but the scans' reserved slot.
        let more: Vec<_> = (0..3)
            .map(|_| data.try_acquire(MIN, MAX).unwrap())
            .collect();
        assert!(data.try_acquire(MIN, MAX).is_err());
        let reserved = scan.try_acquire(MIN, MAX);
        assert!(reserved.is_ok(), "a scan still gets its reserved slot");
        drop((datas, more, scripts));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_hint_follows_the_hold_time_and_bounded_wait_gets_a_freed_slot() {
        let cfg = ClassConfig {
            max: Some(1),
            ..Default::default()
        };
        let (t, s, _p) = slots(&[("admin", cfg)], 1);
        let admin = slot(&t, &s, "admin").clone();
        let held = admin.try_acquire(MIN, MAX).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        let held = admin.try_acquire(MIN, MAX).unwrap();
        let full = admin.try_acquire(MIN, MAX).unwrap_err();
        assert_eq!(full.retry_after, Duration::from_millis(300));
        // A bounded wait that expires first is still BUSY...
        let waited = admin
            .acquire(Duration::from_millis(50), MIN, MAX)
            .await
            .unwrap_err();
        assert_eq!(waited.class, "admin");
        // ...and one that sees the slot freed gets it.
        let waiter = {
            let admin = admin.clone();
            tokio::spawn(async move { admin.acquire(Duration::from_secs(1), MIN, MAX).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn reload_keeps_counting_permits_taken_before_it() {
        let two = ClassConfig {
            max: Some(2),
            ..Default::default()
        };
        let pools = Pools::new();
        let mk = |cfg: &ClassConfig| {
            let mut m = BTreeMap::new();
            m.insert("admin".to_string(), cfg.clone());
            build_table(&m, &BTreeMap::new(), 1).unwrap()
        };
        let t1 = mk(&two);
        let s1 = pools.bind(&t1);
        let a = slot(&t1, &s1, "admin").try_acquire(MIN, MAX).unwrap();
        let _b = slot(&t1, &s1, "admin").try_acquire(MIN, MAX).unwrap();
        let three = ClassConfig {
            max: Some(3),
            ..Default::default()
        };
        let t2 = mk(&three);
        let s2 = pools.bind(&t2);
        let admin = slot(&t2, &s2, "admin");
        let _c = admin.try_acquire(MIN, MAX).unwrap();
        assert!(admin.try_acquire(MIN, MAX).is_err(), "2 old + 1 new = 3");
        drop(a);
        assert!(admin.try_acquire(MIN, MAX).is_ok());
    }

    #[test]
    fn inflight_cap_is_exact_and_zero_means_unlimited() {
        let cap = Inflight::new(2);
        let a = cap.try_acquire().unwrap();
        let _b = cap.try_acquire().unwrap();
        assert!(cap.try_acquire().is_none());
        drop(a);
        assert!(cap.try_acquire().is_some());
        cap.set_max(0);
        let many: Vec<_> = (0..100).map(|_| cap.try_acquire().unwrap()).collect();
        assert_eq!(cap.in_use(), 101);
        drop(many);
    }
}
