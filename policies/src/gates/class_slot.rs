//! Gate: a slot of the command's class. Bounded concurrency per class, with
//! sub-pools that reserve slots of their parent. Nothing here queues without
//! bound: a full class refuses at once, and [`Slot::retry_on_release`] lets
//! the caller wait until a deadline for a release (the caller's line,
//! [`super::queue`], decides who may).
//!
//! **Sub-pools.** A top-level class with `max = M` and sub-pools each with a
//! `reserve` r_i and their own `max` m_i: a sub-pool may take a slot while it
//! uses fewer than r_i (its reservation, which nobody else can take), or
//! while the shared part (M - Σr) has room; never more than m_i. So the
//! default `heavy_scan` (max M/2, reserve 1) can never take more than half
//! of `heavy`, and `heavy_data` always keeps at least one slot for scans.
//!
//! **Retry hint.** A refusal says how long the class's slots are typically
//! held (an average of past hold times), clamped to the caller's bounds.
//!
//! **Reload.** Pools live across reloads (by class name) and only their
//! limits change, so permits taken before a reload are still counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use metrics::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::classes::ClassTable;
use crate::metrics::CLASS_IN_FLIGHT;

/// When nothing has finished in a class yet, hint this long (clamped).
const UNKNOWN_HOLD: Duration = Duration::from_millis(100);
/// Weight of the newest sample in the hold-time average.
const EWMA_ALPHA: f64 = 0.2;

/// Refusal: the class (or its parent) has no free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("class {class} is at its concurrency limit, retry after {}ms", retry_after.as_millis())]
pub struct ClassFull {
    pub class: &'static str,
    /// How long the class's slots are typically held.
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Member {
    name: &'static str,
    max: u32,
    reserve: u32,
    used: u32,
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

    /// The typical hold time of `member`'s slots, clamped.
    fn retry_after(&self, member: usize, min: Duration, max: Duration) -> Duration {
        self.members
            .get(member)
            .and_then(|m| m.ewma_hold_ms)
            .map(|ms| Duration::from_micros((ms * 1000.0) as u64))
            .unwrap_or(UNKNOWN_HOLD)
            .clamp(min, max)
    }
}

/// A top-level class and its sub-pools: the unit slots are shared in.
#[derive(Debug)]
struct Group {
    state: Mutex<GroupState>,
    /// Notified when a slot is released or the limits change, if anybody
    /// waits.
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
pub struct SlotPermit {
    group: Arc<Group>,
    member: usize,
    since: Instant,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        let held = self.since.elapsed().as_secs_f64() * 1000.0;
        {
            let mut state = self.group.lock();
            if let Some(m) = state.members.get_mut(self.member) {
                m.used = m.used.saturating_sub(1);
                m.gauge.decrement(1.0);
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
    /// The class's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Neither the class nor its parent has a bound: no slot to take.
    pub fn is_unbounded(&self) -> bool {
        self.unbounded
    }

    /// Takes a slot now, or says how long to back off (within `min..=max`).
    pub fn try_acquire(&self, min: Duration, max: Duration) -> Result<SlotPermit, ClassFull> {
        let mut state = self.group.lock();
        if state.has_room(self.member) {
            if let Some(m) = state.members.get_mut(self.member) {
                m.used += 1;
                m.gauge.increment(1.0);
                return Ok(SlotPermit {
                    group: self.group.clone(),
                    member: self.member,
                    since: Instant::now(),
                });
            }
        }
        Err(ClassFull {
            class: self.name,
            retry_after: state.retry_after(self.member, min, max),
        })
    }

    /// Whether [`Slot::try_acquire`] would succeed now.
    pub fn has_room(&self) -> bool {
        self.group.lock().has_room(self.member)
    }

    /// How long the class's slots are typically held, within `min..=max`:
    /// the retry hint of every refusal of this class.
    pub fn retry_after(&self, min: Duration, max: Duration) -> Duration {
        self.group.lock().retry_after(self.member, min, max)
    }

    /// Runs `attempt` until it succeeds, until it fails in a way `waits`
    /// says is not worth waiting for, or until `deadline`, trying again
    /// whenever a slot of this class's group is released (or a reload
    /// changes its limits). On time out the last refusal is returned.
    pub async fn retry_on_release<T, E>(
        &self,
        deadline: Instant,
        mut attempt: impl FnMut() -> Result<T, E>,
        waits: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        self.group.waiters.fetch_add(1, Ordering::AcqRel);
        let _unregister = WaiterGuard(&self.group.waiters);
        loop {
            // Registered before the attempt, so a release between the
            // attempt and the wait is not missed.
            let freed = self.group.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match attempt() {
                Ok(p) => return Ok(p),
                Err(refused) if !waits(&refused) => return Err(refused),
                Err(refused) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return attempt().map_err(|_| refused);
                    }
                }
            }
        }
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
                        i
                    }
                    None => {
                        state.members.push(Member {
                            name: class.name,
                            max,
                            reserve,
                            used: 0,
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
        assert!(!heavy.has_room());
        let full = heavy.try_acquire(MIN, MAX).unwrap_err();
        assert_eq!(full.class, "admin");
        assert_eq!(full.retry_after, UNKNOWN_HOLD);
        drop(a);
        assert!(heavy.has_room());
        assert!(heavy.try_acquire(MIN, MAX).is_ok());
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
        assert_eq!(admin.retry_after(MIN, MAX), Duration::from_millis(300));
        assert_eq!(
            admin.retry_after(MIN, Duration::from_millis(200)),
            Duration::from_millis(200),
            "clamped"
        );
        // A bounded wait that expires first is still refused...
        let soon = Instant::now() + Duration::from_millis(50);
        let waited = admin
            .retry_on_release(soon, || admin.try_acquire(MIN, MAX), |_| true)
            .await
            .unwrap_err();
        assert_eq!(waited.class, "admin");
        // ...one told not to wait returns at once...
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let refused = admin
            .retry_on_release(later, || admin.try_acquire(MIN, MAX), |_| false)
            .await;
        assert!(refused.is_err());
        assert_eq!(Instant::now(), now);
        // ...and one that sees the slot freed gets it.
        let waiter = {
            let admin = admin.clone();
            tokio::spawn(async move {
                let later = Instant::now() + Duration::from_secs(1);
                admin
                    .retry_on_release(later, || admin.try_acquire(MIN, MAX), |_| true)
                    .await
            })
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
}
