//! Layer 1 as a tower layer. Each command of a batch passes the gates of
//! [`crate::gates`] in order (its client's time budget and share of the
//! command's class, a slot of the class, a unit of the global in-flight cap)
//! or is answered `-BUSY ... retry after <ms>ms` by the first that refuses.
//! The admitted commands of a batch go to the inner service as one smaller
//! batch; replies come back merged in the original order.
//!
//! The permits are held inside the response future until the inner service
//! answers the batch (the node has executed every command of it), and
//! released however the call ends, including when the client disconnects
//! and the future is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::Histogram;
use rampart_proto::{reply, Reply};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::classes::{ClassTable, Classified, Entry};
use crate::gates::class_slot::{ClassFull, SlotPermit};
use crate::gates::client_share::SharePermit;
use crate::gates::inflight::{Inflight, InflightPermit};
use crate::gates::time_budget::BudgetCharge;
use crate::gates::{ClassGates, Gates, Refused};
use crate::identity::Identity;
use crate::metrics::CLASS_WAITS;
use crate::resolved::Resolved;

pub use crate::gates::{busy_class_text, busy_share_text, busy_time_text};

/// A request made of commands (the proxy's pipeline segment).
pub trait CommandBatch: Send + 'static {
    /// Each command's argv: name first.
    fn commands(&self) -> &[Vec<Vec<u8>>];
    /// Keeps only the commands whose `keep` flag is set, in order.
    fn retain_commands(&mut self, keep: &[bool]);
    /// A transaction (MULTI/EXEC): admitted whole or not at all, and
    /// answered with ONE reply; a rejection is that one reply.
    fn all_or_nothing(&self) -> bool {
        false
    }
    /// Who sent it, for per-client shares and time budgets of a class
    /// (`None`: none applies).
    fn client(&self) -> Option<&Identity> {
        None
    }
}

/// The reloadable part of Layer 1.
#[derive(Debug)]
struct Live {
    enabled: bool,
    table: ClassTable,
    /// By class index.
    gates: Vec<ClassGates>,
    wait: Duration,
    queue_max: usize,
    min_retry: Duration,
    max_retry: Duration,
}

/// Layer 1's shared state: the class table, the gates' state and the
/// global cap.
#[derive(Debug)]
pub struct AdmissionControl {
    live: ArcSwap<Live>,
    gates: Gates,
    inflight: Arc<Inflight>,
}

impl AdmissionControl {
    pub fn new(policy: &Resolved) -> Arc<Self> {
        let gates = Gates::new();
        let live = Live::new(policy, &gates);
        Arc::new(AdmissionControl {
            live: ArcSwap::from_pointee(live),
            gates,
            inflight: Inflight::new(policy.inflight_max),
        })
    }

    /// New limits apply to admissions from now on; commands already running
    /// keep their slots (and are still counted).
    pub fn reload(&self, policy: &Resolved) {
        let live = Live::new(policy, &self.gates);
        self.inflight.set_max(policy.inflight_max);
        self.live.store(Arc::new(live));
    }

    /// The class a command is in now (`None`: never rejected).
    pub fn class_of(&self, argv: &[Vec<u8>]) -> Option<&'static str> {
        self.live.load().table.class_name(argv)
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.live.load().table.class_index(class).is_some()
    }

    pub fn inflight(&self) -> &Arc<Inflight> {
        &self.inflight
    }
}

/// Wraps a service with Layer 1.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    control: Arc<AdmissionControl>,
}

impl AdmissionLayer {
    pub fn new(control: Arc<AdmissionControl>) -> Self {
        AdmissionLayer { control }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            control: self.control.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admission<S> {
    inner: S,
    control: Arc<AdmissionControl>,
}

impl<S, B> Service<B> for Admission<S>
where
    B: CommandBatch,
    S: Service<B, Response = Vec<Reply>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Vec<Reply>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Vec<Reply>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut batch: B) -> Self::Future {
        // The readied service goes into the future; a clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let live = self.control.live.load_full();
        if !live.enabled {
            trace_decision(&tracing::Span::current(), "off", 0, None);
            return Box::pin(inner.call(batch));
        }
        let inflight = self.control.inflight.clone();
        Box::pin(async move {
            // The caller's trace span, if any (see `trace_decision`).
            let span = tracing::Span::current();
            let admitting = (!span.is_disabled()).then(Instant::now);
            let admitted = live.admit_batch(batch.commands(), batch.client()).await;
            let mut admitted = match admitted.run_or_answer(batch.all_or_nothing()) {
                Ok(admitted) => admitted,
                Err(replies) => {
                    if let Some(started) = admitting {
                        trace_refused(&span, replies.len(), started.elapsed());
                    }
                    return Ok(replies);
                }
            };
            // The in-flight cap paces, it never refuses: a transaction is
            // one unit, a pipeline segment one per command it runs.
            let units = if batch.all_or_nothing() {
                1
            } else {
                admitted.held.len() as u64
            };
            if units > 0 {
                admitted.inflight = Some(inflight.acquire(units).await);
            }
            if let Some(started) = admitting {
                admitted.trace(&span, started.elapsed());
            }
            if admitted.any_refused() {
                batch.retain_commands(&admitted.keep());
            }
            let started = Instant::now();
            let result = inner.call(batch).await;
            admitted.finish(started.elapsed(), result)
        })
    }
}

impl Live {
    fn new(policy: &Resolved, gates: &Gates) -> Live {
        Live {
            enabled: policy.enabled,
            gates: gates.bind(&policy.classes),
            table: policy.classes.clone(),
            wait: policy.wait,
            queue_max: policy.queue_max,
            min_retry: policy.min_retry,
            max_retry: policy.max_retry,
        }
    }

    /// Every command of a batch through the gates. A batch (a pipeline
    /// segment or a transaction) runs as one run on the node, one heavy
    /// slot there too, so it holds at most one slot per class and gets one
    /// verdict per class, shared by its commands of that class: a
    /// pipeline's depth is never a reason for `-BUSY`, and a transaction
    /// with more heavy commands than the class allows can still run.
    ///
    /// Classes are taken in one global order (their index), not in the
    /// order of the commands: a batch may wait for a class while holding
    /// another, and two batches taking two classes in opposite orders
    /// would each wait for the other until their deadlines.
    async fn admit_batch(&self, commands: &[Vec<Vec<u8>>], client: Option<&Identity>) -> Admitted {
        let entries: Vec<Option<&Entry>> = commands
            .iter()
            .map(|argv| match self.table.classify(argv) {
                Classified::Exempt => None,
                Classified::Class(entry) => {
                    entry.metrics.submitted.increment(1);
                    Some(entry)
                }
            })
            .collect();
        let mut classes: Vec<usize> = entries.iter().flatten().map(|e| e.class).collect();
        classes.sort_unstable();
        classes.dedup();
        let mut verdicts: Vec<(usize, Result<Option<ClassPermit>, Refused>)> =
            Vec::with_capacity(classes.len());
        for class in classes {
            verdicts.push((class, self.admit_class(class, client).await));
        }
        let mut admitted = Admitted::with_capacity(commands.len());
        for entry in entries {
            let Some(entry) = entry else {
                admitted.exempt();
                continue;
            };
            let Some((_, verdict)) = verdicts.iter_mut().find(|(c, _)| *c == entry.class) else {
                // Unreachable: every class of the batch has a verdict. A
                // place per command keeps the replies in order regardless.
                admitted.exempt();
                continue;
            };
            match verdict {
                Ok(permit) => {
                    entry.metrics.admitted.increment(1);
                    // The batch's first command of the class holds the
                    // permit for all of them.
                    let held = Held {
                        _class: permit.take(),
                    };
                    admitted.admit(held, entry.metrics.duration.clone());
                }
                Err(refused) => {
                    refused.count(&entry.metrics);
                    admitted.refuse(*refused);
                }
            }
        }
        admitted
    }

    /// A batch's verdict for one class: the class's gates now, or after a
    /// wait of at most `wait` in the client's line of the class
    /// ([`crate::gates::queue`]). `Ok(None)`: the class is unbounded.
    async fn admit_class(
        &self,
        class: usize,
        client: Option<&Identity>,
    ) -> Result<Option<ClassPermit>, Refused> {
        let gates = &self.gates[class];
        if gates.slot.is_unbounded() {
            return Ok(None);
        }
        let line_key = client.map(|c| c.share(gates.slot.name()).0);
        let queued_behind = line_key.as_ref().is_some_and(|k| gates.lines.is_waiting(k));
        // Nobody of this client waits for the class: try at once.
        if !queued_behind || self.wait.is_zero() {
            match self.try_class_gates(gates, client) {
                Ok(permit) => return Ok(Some(permit)),
                Err(refused) if self.wait.is_zero() || !refused.worth_waiting() => {
                    return Err(refused)
                }
                Err(_) => {}
            }
        } else if let refused @ Refused::ClientTime { .. } = self.refusal(gates, client) {
            // A spent budget is answered at once, not after the line.
            return Err(refused);
        }
        let deadline = Instant::now() + self.wait;
        // Behind the client's earlier requests of the class (first come,
        // first served); a client-less batch has no line.
        let place = match line_key {
            Some(key) => match gates.lines.join(key, self.queue_max) {
                Ok(place) => Some(place),
                Err(_full) => return Err(self.refusal(gates, client)),
            },
            None => None,
        };
        metrics::counter!(CLASS_WAITS, "class" => gates.slot.name()).increment(1);
        if let Some(place) = &place {
            if !place.first_in_line(deadline).await {
                return Err(self.refusal(gates, client));
            }
        }
        let permit = gates
            .slot
            .retry_on_release(
                deadline,
                || self.try_class_gates(gates, client),
                Refused::worth_waiting,
            )
            .await?;
        // Leaving the line (dropping the place) lets the next one move up.
        drop(place);
        Ok(Some(permit))
    }

    /// A class's gates, in the order their refusals take
    /// precedence; when one refuses, nothing is held.
    fn try_class_gates(
        &self,
        gates: &ClassGates,
        client: Option<&Identity>,
    ) -> Result<ClassPermit, Refused> {
        let (class, min, max) = (gates.slot.name(), self.min_retry, self.max_retry);
        let key = client.map(Identity::key);
        // 1. The client's time budget, whatever room the class has.
        gates
            .budget
            .check(key.as_ref())
            .map_err(|over| Refused::ClientTime {
                class,
                over,
                retry_after: over.paid_off_in.clamp(min, max),
            })?;
        // 2. The client's share; a full class answers first.
        let share = match gates.share.try_acquire(client.map(|c| c.share(class))) {
            Ok(share) => share,
            Err(over) => {
                let retry_after = gates.slot.retry_after(min, max);
                return Err(if gates.slot.has_room() {
                    Refused::ClientShare {
                        class,
                        over,
                        retry_after,
                    }
                } else {
                    Refused::ClassFull(ClassFull { class, retry_after })
                });
            }
        };
        // 3. A slot of the class.
        let slot = gates
            .slot
            .try_acquire(min, max)
            .map_err(Refused::ClassFull)?;
        Ok(ClassPermit {
            _charge: gates.budget.charge(key),
            _share: share,
            _slot: slot,
        })
    }

    /// Why `client` cannot have a slot of the class now, without taking
    /// anything: the reply of a request whose wait ended without one.
    fn refusal(&self, gates: &ClassGates, client: Option<&Identity>) -> Refused {
        let (class, min, max) = (gates.slot.name(), self.min_retry, self.max_retry);
        let key = client.map(Identity::key);
        if let Err(over) = gates.budget.check(key.as_ref()) {
            return Refused::ClientTime {
                class,
                over,
                retry_after: over.paid_off_in.clamp(min, max),
            };
        }
        let retry_after = gates.slot.retry_after(min, max);
        match gates.share.check(client.map(|c| c.share(class))) {
            Err(over) if gates.slot.has_room() => Refused::ClientShare {
                class,
                over,
                retry_after,
            },
            _ => Refused::ClassFull(ClassFull { class, retry_after }),
        }
    }
}

/// What a command holds from its class's gates. Fields drop in order: the
/// client is charged and its share freed before the slot, whose release
/// wakes anybody waiting for the class.
#[derive(Debug)]
struct ClassPermit {
    _charge: Option<BudgetCharge>,
    _share: Option<SharePermit>,
    _slot: SlotPermit,
}

/// What one admitted command holds until the node answers its batch
/// (`_class` is `None` for an unbounded class, and for a batch's further
/// commands of a class it holds).
#[derive(Debug)]
struct Held {
    _class: Option<ClassPermit>,
}

/// A batch's admission: per command, its refusal if it has one, and what
/// the admitted commands hold.
struct Admitted {
    /// Per command: `None` = admitted (or exempt).
    refused: Vec<Option<Refused>>,
    held: Vec<Held>,
    /// The admitted commands' duration histograms.
    timed: Vec<Histogram>,
    /// Units of the global in-flight cap, taken once the batch is to run.
    inflight: Option<InflightPermit>,
}

impl Admitted {
    fn with_capacity(count: usize) -> Self {
        Admitted {
            refused: Vec::with_capacity(count),
            held: Vec::with_capacity(count),
            timed: Vec::with_capacity(count),
            inflight: None,
        }
    }

    fn exempt(&mut self) {
        self.refused.push(None);
    }

    fn admit(&mut self, held: Held, duration: Histogram) {
        self.held.push(held);
        self.timed.push(duration);
        self.refused.push(None);
    }

    fn refuse(&mut self, refused: Refused) {
        self.refused.push(Some(refused));
    }

    fn refusals(&self) -> impl Iterator<Item = &Refused> {
        self.refused.iter().flatten()
    }

    fn any_refused(&self) -> bool {
        self.refusals().next().is_some()
    }

    /// Which commands go to the inner service.
    fn keep(&self) -> Vec<bool> {
        self.refused.iter().map(Option::is_none).collect()
    }

    fn trace(&self, span: &tracing::Span, waited: Duration) {
        let refused = self.refusals().count();
        let decision = match (self.held.is_empty(), refused) {
            (true, 0) => "exempt",
            (false, 0) => "admitted",
            (true, _) => "rejected",
            (false, _) => "partial",
        };
        trace_decision(span, decision, refused, Some(waited));
    }

    /// `Err(replies)` when nothing is to run: a transaction with a refused
    /// command (the first refusal answers for the whole; its other permits
    /// are released), or a batch with nothing admitted.
    fn run_or_answer(self, all_or_nothing: bool) -> Result<Self, Vec<Reply>> {
        let answer = |refusals: &mut dyn Iterator<Item = &Refused>| -> Vec<Reply> {
            refusals.map(|r| reply::error(r.to_string())).collect()
        };
        if all_or_nothing {
            if self.any_refused() {
                return Err(answer(&mut self.refusals().take(1)));
            }
        } else if self.held.is_empty() {
            return Err(answer(&mut self.refusals()));
        }
        Ok(self)
    }

    /// After the inner service answered in `elapsed`: records the admitted
    /// commands' durations, releases their permits and puts the `-BUSY`
    /// replies back between the inner service's, in the original order.
    fn finish<E>(self, elapsed: Duration, result: Result<Vec<Reply>, E>) -> Result<Vec<Reply>, E> {
        let elapsed = elapsed.as_secs_f64();
        for histogram in &self.timed {
            histogram.record(elapsed);
        }
        drop(self.held);
        let replies = result?;
        if !self.refused.iter().any(Option::is_some) {
            return Ok(replies);
        }
        let mut replies = replies.into_iter();
        Ok(self
            .refused
            .into_iter()
            .map(|refused| match refused {
                Some(busy) => reply::error(busy.to_string()),
                None => replies
                    .next()
                    .unwrap_or_else(|| reply::error("ERR internal error: missing reply")),
            })
            .collect())
    }
}

/// Records Layer 1's verdict on the caller's trace span (the proxy's
/// `proxy.command` span declares these fields; on any other span, or when
/// traces are off, nothing is recorded): `rampart.admission` = `admitted`
/// | `partial` | `rejected` | `exempt` (no command has a class) | `off`
/// (Layer 1 disabled), `rampart.admission.rejected` = commands answered
/// `-BUSY`, `rampart.admission.wait_ms` = time spent taking slots.
/// A batch answered without running (every command refused).
fn trace_refused(span: &tracing::Span, refused: usize, waited: Duration) {
    trace_decision(span, "rejected", refused, Some(waited));
}

fn trace_decision(span: &tracing::Span, decision: &str, rejected: usize, wait: Option<Duration>) {
    if span.is_disabled() {
        return;
    }
    span.record("rampart.admission", decision);
    span.record("rampart.admission.rejected", rejected as i64);
    if let Some(wait) = wait {
        span.record("rampart.admission.wait_ms", wait.as_secs_f64() * 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;
    use std::collections::BTreeMap;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    #[derive(Debug, Clone)]
    struct TestBatch(Vec<Vec<Vec<u8>>>);

    /// A MULTI/EXEC batch: admitted whole or refused whole.
    #[derive(Debug, Clone)]
    struct TxBatch(TestBatch);

    impl CommandBatch for TxBatch {
        fn commands(&self) -> &[Vec<Vec<u8>>] {
            self.0.commands()
        }
        fn retain_commands(&mut self, keep: &[bool]) {
            self.0.retain_commands(keep)
        }
        fn all_or_nothing(&self) -> bool {
            true
        }
    }

    impl Service<TxBatch> for Echo {
        type Response = Vec<Reply>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Vec<Reply>, Infallible>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, b: TxBatch) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            // One reply for the whole transaction, like the node's EXEC.
            let n = b.0 .0.len() as i64;
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(vec![reply::integer(n)])
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_transaction_is_admitted_whole_or_refused_whole() {
        let cfg: PolicyConfig = toml::from_str(HEAVY2).unwrap();
        let control = AdmissionControl::new(&cfg.resolve().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AdmissionLayer::new(control.clone()).layer(Echo {
            delay: Duration::ZERO,
            calls: calls.clone(),
        });
        // Within the limits: the inner service runs it and its one reply
        // comes back as is.
        let ok = svc
            .clone()
            .oneshot(TxBatch(batch(&[&["SET", "a", "1"], &["KEYS", "*"]])))
            .await
            .unwrap();
        assert_eq!(texts(&ok), vec![format!("{:?}", reply::integer(2))]);
        // A transaction runs as one unit: three KEYS hold one of
        // heavy_scan's 2 slots.
        let three = svc
            .clone()
            .oneshot(TxBatch(batch(&[
                &["SET", "a", "1"],
                &["KEYS", "1"],
                &["KEYS", "2"],
                &["KEYS", "3"],
            ])))
            .await
            .unwrap();
        assert_eq!(texts(&three), vec![format!("{:?}", reply::integer(4))]);
        // Both slots taken by slow transactions: the next one needing the
        // class is refused whole, nothing of it runs.
        let slow = AdmissionLayer::new(control.clone()).layer(Echo {
            delay: Duration::from_secs(10),
            calls: calls.clone(),
        });
        let holders: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|k| tokio::spawn(slow.clone().oneshot(TxBatch(batch(&[&["KEYS", k]])))))
            .collect();
        while calls.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        let refused = svc
            .oneshot(TxBatch(batch(&[&["SET", "a", "1"], &["KEYS", "1"]])))
            .await
            .unwrap();
        assert_eq!(refused.len(), 1);
        assert!(refused[0]
            .error_text()
            .is_some_and(|t| t.starts_with("BUSY class heavy_scan")));
        assert_eq!(calls.load(Ordering::SeqCst), 4, "the refused one never ran");
        for h in holders {
            h.await.unwrap().unwrap();
        }
    }

    impl CommandBatch for TestBatch {
        fn commands(&self) -> &[Vec<Vec<u8>>] {
            &self.0
        }
        fn retain_commands(&mut self, keep: &[bool]) {
            let mut i = 0;
            self.0.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
    }

    fn batch(cmds: &[&[&str]]) -> TestBatch {
        TestBatch(
            cmds.iter()
                .map(|c| c.iter().map(|a| a.as_bytes().to_vec()).collect())
                .collect(),
        )
    }

    /// Echoes each command's last argument after `delay`, counting calls:
    /// a stand-in for the node tier, which is not under test here.
    #[derive(Clone)]
    struct Echo {
        delay: Duration,
        calls: Arc<AtomicUsize>,
    }

    impl Service<TestBatch> for Echo {
        type Response = Vec<Reply>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Vec<Reply>, Infallible>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, b: TestBatch) -> Self::Future {
            let delay = self.delay;
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(b.0
                    .iter()
                    .map(|c| reply::bulk(c.last().cloned().unwrap_or_default()))
                    .collect())
            })
        }
    }

    fn stack(toml_text: &str, delay: Duration) -> (Admission<Echo>, Arc<AdmissionControl>) {
        let cfg: PolicyConfig = toml::from_str(toml_text).unwrap();
        let control = AdmissionControl::new(&cfg.resolve().unwrap());
        let svc = AdmissionLayer::new(control.clone()).layer(Echo {
            delay,
            calls: Arc::new(AtomicUsize::new(0)),
        });
        (svc, control)
    }

    fn texts(replies: &[Reply]) -> Vec<String> {
        replies
            .iter()
            .map(|r| match r.error_text() {
                Some(e) => format!("-{e}"),
                None => format!("{r:?}"),
            })
            .collect()
    }

    const HEAVY2: &str = "[classes.heavy]\nmax = 2\n[classes.heavy_scan]\nmax = 2\nreserve = 0\n[classes.heavy_data]\nreserve = 0\n";

    #[tokio::test(start_paused = true)]
    async fn third_concurrent_heavy_command_is_busy_at_once_while_cheap_runs() {
        // Waiting off: a full class refuses at once.
        let (svc, _) = stack(
            &format!("{HEAVY2}[admission]\nwait_ms = 0\n"),
            Duration::from_secs(10),
        );
        let slow = |svc: &Admission<Echo>| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(batch(&[&["KEYS", "*"]])).await })
        };
        let a = slow(&svc);
        let b = slow(&svc);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = tokio::time::Instant::now();
        let third = svc
            .clone()
            .oneshot(batch(&[&["KEYS", "x*"]]))
            .await
            .unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "rejected without waiting"
        );
        let text = third[0].error_text().unwrap();
        assert!(
            text.starts_with("BUSY class heavy_scan is at its concurrency limit, retry after "),
            "{text}"
        );
        assert!(text.ends_with("ms"), "{text}");
        // Cheap commands are not affected by a full heavy class.
        let (fast, _) = (svc.clone(), ());
        let get = tokio::spawn(async move { fast.oneshot(batch(&[&["GET", "k"]])).await });
        let replies = get.await.unwrap().unwrap();
        assert!(replies[0].error_text().is_none());
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        // Slots came back.
        let again = svc.oneshot(batch(&[&["KEYS", "*"]])).await.unwrap();
        assert!(again[0].error_text().is_none());
    }

    /// A batch from a client IP, for per-client shares.
    #[derive(Debug, Clone)]
    struct FromIp(Identity, TestBatch);

    impl CommandBatch for FromIp {
        fn commands(&self) -> &[Vec<Vec<u8>>] {
            self.1.commands()
        }
        fn retain_commands(&mut self, keep: &[bool]) {
            self.1.retain_commands(keep)
        }
        fn client(&self) -> Option<&Identity> {
            Some(&self.0)
        }
    }

    impl Service<FromIp> for Echo {
        type Response = Vec<Reply>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Vec<Reply>, Infallible>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, b: FromIp) -> Self::Future {
            <Echo as Service<TestBatch>>::call(self, b.1)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_past_its_share_gets_busy_while_other_clients_are_admitted() {
        // heavy = 8: heavy_data allows 2 requests per client.
        let (svc, _) = stack("[classes.heavy]\nmax = 8\n", Duration::from_secs(10));
        let ip = |s: &str| Identity::ip(s.parse().unwrap());
        let send = |from: &str, cmds: &[&[&str]]| {
            let (svc, b) = (svc.clone(), FromIp(ip(from), batch(cmds)));
            tokio::spawn(async move { svc.oneshot(b).await.unwrap() })
        };
        let held = [
            send("10.0.0.1", &[&["HGETALL", "a"]]),
            send("10.0.0.1", &[&["HGETALL", "b"]]),
        ];
        tokio::time::sleep(Duration::from_millis(1)).await;
        let third = svc
            .clone()
            .oneshot(FromIp(ip("10.0.0.1"), batch(&[&["HGETALL", "c"]])))
            .await
            .unwrap();
        let text = third[0].error_text().unwrap();
        assert!(
            text.starts_with(
                "BUSY class heavy_data: this client already holds its share (2 of 8 slots), retry after "
            ),
            "{text}"
        );
        // Another host is admitted; a pipeline counts as one request.
        let other = send(
            "10.0.0.2",
            &[&["HGETALL", "d"], &["HGETALL", "e"], &["HGETALL", "f"]],
        );
        let other = other.await.unwrap();
        assert!(
            other.iter().all(|r| r.error_text().is_none()),
            "{:?}",
            texts(&other)
        );
        for h in held {
            assert!(h.await.unwrap()[0].error_text().is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn users_at_one_ip_have_their_own_shares_and_a_users_own_share_spans_ips() {
        // heavy = 8: heavy_data allows 2 requests per client.
        let (svc, _) = stack("[classes.heavy]\nmax = 8\n", Duration::from_secs(10));
        let at = |ip: &str, user: &str, own: Option<u32>| {
            let shares = own
                .map(|n| BTreeMap::from([("heavy_data".to_string(), n)]))
                .unwrap_or_default();
            Identity::user(ip.parse().unwrap(), user, shares)
        };
        let send = |who: Identity, key: &str| {
            let b = FromIp(who, batch(&[&["HGETALL", key]]));
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(b).await.unwrap() })
        };
        // Tenant A holds its (user, IP) share of 2 at 10.0.0.1...
        let held = [
            send(at("10.0.0.1", "a", None), "a1"),
            send(at("10.0.0.1", "a", None), "a2"),
        ];
        tokio::time::sleep(Duration::from_millis(1)).await;
        let refused = send(at("10.0.0.1", "a", None), "a3").await.unwrap();
        assert!(refused[0]
            .error_text()
            .is_some_and(|t| t.contains("its share")));
        // ...while tenant B and the default user at the same IP run.
        for who in [
            at("10.0.0.1", "b", None),
            Identity::ip("10.0.0.1".parse().unwrap()),
        ] {
            let ok = send(who, "x").await.unwrap();
            assert!(ok[0].error_text().is_none(), "{:?}", texts(&ok));
        }
        // Tenant C's own share of 1 holds over two addresses.
        let c = send(at("10.0.0.1", "c", Some(1)), "c1");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let elsewhere = send(at("10.0.0.2", "c", Some(1)), "c2").await.unwrap();
        let text = elsewhere[0].error_text().unwrap_or_default();
        assert!(
            text.contains("this client already holds its share"),
            "{text}"
        );
        for h in held.into_iter().chain([c]) {
            assert!(h.await.unwrap()[0].error_text().is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rejection_is_per_command_and_replies_stay_in_order() {
        let (svc, control) = stack(HEAVY2, Duration::from_millis(5));
        // Scans hold both heavy slots; then a mixed segment comes.
        let slow = with_delay(&control, Duration::from_secs(10));
        let holders: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|k| tokio::spawn(slow.clone().oneshot(batch(&[&["KEYS", k]]))))
            .collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let replies = svc
            .oneshot(batch(&[
                &["GET", "a"],
                &["KEYS", "1"],
                &["SET", "k", "b"],
                &["HGETALL", "2"],
                &["GET", "c"],
            ]))
            .await
            .unwrap();
        let t = texts(&replies);
        assert_eq!(t.len(), 5);
        assert!(t[1].starts_with("-BUSY class heavy_scan"), "{t:?}");
        assert!(t[3].starts_with("-BUSY class heavy"), "{t:?}");
        for i in [0, 2, 4] {
            assert!(replies[i].error_text().is_none(), "{i}: {t:?}");
        }
        assert_eq!(replies[4], reply::bulk(b"c".to_vec()));
        for h in holders {
            h.await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pipeline_segment_holds_one_slot_per_class_however_deep() {
        let (svc, control) = stack(HEAVY2, Duration::from_millis(5));
        let keys: &[&str] = &["KEYS", "*"];
        let replies = svc.oneshot(batch(&vec![keys; 100])).await.unwrap();
        assert!(
            replies.iter().all(|r| r.error_text().is_none()),
            "{:?}",
            texts(&replies)
        );
        assert_eq!(control.inflight().in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_inflight_cap_paces_batches_and_never_refuses() {
        let (svc, control) = stack("[inflight]\nmax = 2\n", Duration::from_millis(5));
        // Three commands on a cap of 2: the batch runs (alone), all OK.
        let replies = svc
            .clone()
            .oneshot(batch(&[&["GET", "a"], &["GET", "b"], &["GET", "c"]]))
            .await
            .unwrap();
        assert!(replies.iter().all(|r| r.error_text().is_none()));
        // Two batches at once: the second waits for the first's units.
        let first = {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(batch(&[&["GET", "a"], &["GET", "b"]])).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(control.inflight().in_use(), 2);
        let second = {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(batch(&[&["GET", "c"]])).await })
        };
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(!second.is_finished(), "waits while the cap is full");
        let first = first.await.unwrap().unwrap();
        let second = second.await.unwrap().unwrap();
        assert!(first
            .iter()
            .chain(&second)
            .all(|r| r.error_text().is_none()));
        assert_eq!(control.inflight().in_use(), 0, "units released");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transaction_of_any_length_is_one_inflight_unit() {
        let cfg: PolicyConfig = toml::from_str("[inflight]\nmax = 2\n").unwrap();
        let control = AdmissionControl::new(&cfg.resolve().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AdmissionLayer::new(control.clone()).layer(Echo {
            delay: Duration::from_millis(10),
            calls,
        });
        let set: &[&str] = &["SET", "k", "v"];
        let commands: Vec<&[&str]> = vec![set; 10_000];
        let running = tokio::spawn(svc.clone().oneshot(TxBatch(batch(&commands))));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(control.inflight().in_use(), 1);
        let reply = running.await.unwrap().unwrap();
        assert_eq!(reply, vec![reply::integer(10_000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn reload_and_disable_take_effect_for_new_batches() {
        let (svc, control) = stack(HEAVY2, Duration::from_millis(5));
        assert_eq!(
            control.class_of(&batch(&[&["get", "k"]]).0[0]),
            Some("cheap")
        );
        let cfg: PolicyConfig =
            toml::from_str("[commands]\nget = \"admin\"\n[classes.admin]\nmax = 1\n").unwrap();
        control.reload(&cfg.resolve().unwrap());
        assert_eq!(
            control.class_of(&batch(&[&["GET", "k"]]).0[0]),
            Some("admin")
        );
        let holder = tokio::spawn(
            with_delay(&control, Duration::from_secs(10)).oneshot(batch(&[&["GET", "a"]])),
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
        let replies = svc.clone().oneshot(batch(&[&["GET", "b"]])).await.unwrap();
        assert!(replies[0]
            .error_text()
            .unwrap()
            .starts_with("BUSY class admin"));
        holder.await.unwrap().unwrap();
        let off: PolicyConfig = toml::from_str("enabled = false\n").unwrap();
        control.reload(&off.resolve().unwrap());
        let replies = svc
            .oneshot(batch(&[&["KEYS", "a"], &["KEYS", "b"], &["KEYS", "c"]]))
            .await
            .unwrap();
        assert!(replies.iter().all(|r| r.error_text().is_none()));
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_call_releases_its_slots() {
        let (svc, control) = stack(HEAVY2, Duration::from_secs(60));
        let pending = {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(batch(&[&["KEYS", "1"], &["KEYS", "2"]])).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(control.inflight().in_use(), 2);
        pending.abort();
        let _ = pending.await;
        assert_eq!(control.inflight().in_use(), 0);
        let replies = svc
            .oneshot(batch(&[&["KEYS", "1"], &["KEYS", "2"]]))
            .await
            .unwrap();
        assert!(replies.iter().all(|r| r.error_text().is_none()));
    }
    /// A service on `control` whose commands each take `delay`.
    fn with_delay(control: &Arc<AdmissionControl>, delay: Duration) -> Admission<Echo> {
        AdmissionLayer::new(control.clone()).layer(Echo {
            delay,
            calls: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn from(ip: &str, cmds: &[&[&str]]) -> FromIp {
        FromIp(Identity::ip(ip.parse().unwrap()), batch(cmds))
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_class_answers_before_a_spent_share() {
        // heavy = 8: heavy_data may use 7 (heavy_scan reserves 1), 2 per
        // client.
        let (svc, control) = stack("[classes.heavy]\nmax = 8\n", Duration::from_secs(10));
        let mut holders = Vec::new();
        for ip in [
            "10.0.0.1", "10.0.0.1", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4",
        ] {
            let b = from(ip, &[&["HGETALL", "h"]]);
            holders.push(tokio::spawn(svc.clone().oneshot(b)));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let fast = with_delay(&control, Duration::ZERO);
        let share = fast
            .clone()
            .oneshot(from("10.0.0.1", &[&["HGETALL", "h"]]))
            .await
            .unwrap();
        assert!(
            share[0].error_text().unwrap().starts_with(
                "BUSY class heavy_data: this client already holds its share (2 of 8 slots)"
            ),
            "{:?}",
            texts(&share)
        );
        holders.push(tokio::spawn(
            svc.clone().oneshot(from("10.0.1.5", &[&["HGETALL", "h"]])),
        ));
        tokio::time::sleep(Duration::from_millis(1)).await;
        for ip in ["10.0.0.1", "10.0.2.1"] {
            let full = fast
                .clone()
                .oneshot(from(ip, &[&["HGETALL", "h"]]))
                .await
                .unwrap();
            assert!(
                full[0]
                    .error_text()
                    .unwrap()
                    .starts_with("BUSY class heavy_data is at its concurrency limit"),
                "{ip}: {:?}",
                texts(&full)
            );
        }
        for h in holders {
            assert!(h.await.unwrap().unwrap()[0].error_text().is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_past_its_time_budget_is_refused_first_while_others_run() {
        // heavy = 8: heavy_scan max 4, one per client, the default budget
        // of 250 ms per second with a burst of 1000 ms.
        let (slow, control) = stack("[classes.heavy]\nmax = 8\n", Duration::from_secs(2));
        // Held for 2 s in one go: 8 s of debt, 4 s beyond the burst.
        let ran = slow
            .clone()
            .oneshot(from("10.0.0.1", &[&["KEYS", "*"]]))
            .await
            .unwrap();
        assert!(ran[0].error_text().is_none());
        let fast = with_delay(&control, Duration::ZERO);
        let refused = fast
            .clone()
            .oneshot(from("10.0.0.1", &[&["KEYS", "*"]]))
            .await
            .unwrap();
        assert_eq!(
            refused[0].error_text(),
            Some("BUSY class heavy_scan: this client used its time budget (250ms per second), retry after 4000ms")
        );
        // Another host, and a client-less batch, run.
        let other = fast
            .clone()
            .oneshot(from("10.0.0.2", &[&["KEYS", "*"]]))
            .await
            .unwrap();
        assert!(other[0].error_text().is_none());
        // With the class full, the spent budget still answers first.
        let hog = with_delay(&control, Duration::from_secs(60));
        let holders: Vec<_> = (1..=4)
            .map(|i| {
                let b = from(&format!("10.0.1.{i}"), &[&["KEYS", "*"]]);
                tokio::spawn(hog.clone().oneshot(b))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let refused = fast
            .clone()
            .oneshot(from("10.0.0.1", &[&["KEYS", "*"]]))
            .await
            .unwrap();
        assert!(refused[0]
            .error_text()
            .unwrap()
            .starts_with("BUSY class heavy_scan: this client used its time budget"));
        let full = fast
            .oneshot(from("10.0.0.2", &[&["KEYS", "*"]]))
            .await
            .unwrap();
        assert!(full[0]
            .error_text()
            .unwrap()
            .starts_with("BUSY class heavy_scan is at its concurrency limit"));
        for h in holders {
            h.await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_wait_gets_a_released_slot_or_busy_when_it_expires() {
        let one = "[classes.admin]\nmax = 1\n[admission]\nwait_ms = 1000\n";
        let (holder, control) = stack(one, Duration::from_millis(300));
        let held = tokio::spawn(holder.oneshot(batch(&[&["FLUSHALL"]])));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = tokio::time::Instant::now();
        let waited = with_delay(&control, Duration::ZERO)
            .oneshot(batch(&[&["FLUSHALL"]]))
            .await
            .unwrap();
        assert!(waited[0].error_text().is_none(), "{:?}", texts(&waited));
        assert_eq!(started.elapsed(), Duration::from_millis(299));
        held.await.unwrap().unwrap();
        // A wait that expires first is BUSY after the wait.
        let hog = with_delay(&control, Duration::from_secs(10));
        let held = tokio::spawn(hog.oneshot(batch(&[&["FLUSHALL"]])));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = tokio::time::Instant::now();
        let busy = with_delay(&control, Duration::ZERO)
            .oneshot(batch(&[&["FLUSHALL"]]))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert!(busy[0]
            .error_text()
            .unwrap()
            .starts_with("BUSY class admin is at its concurrency limit"));
        held.await.unwrap().unwrap();
    }

    /// heavy = 4: heavy_data and heavy_scan allow one request per client;
    /// the default wait (1000 ms) and line (64).
    const SHARE1: &str = "[classes.heavy]\nmax = 4\n";

    #[tokio::test(start_paused = true)]
    async fn a_pools_burst_past_its_share_is_paced_in_arrival_order_without_busy() {
        let (svc, _) = stack(SHARE1, Duration::from_millis(10));
        // Ten connections of one host send an LRANGE each, one after the
        // other (each reaches the line before the next is sent).
        let mut sent = Vec::new();
        for i in 0..10 {
            let (svc, b) = (
                svc.clone(),
                from("10.0.0.1", &[&["LRANGE", "l", "0", "99"]]),
            );
            sent.push(tokio::spawn(async move {
                let replies = svc.oneshot(b).await.unwrap();
                (i, replies, tokio::time::Instant::now())
            }));
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        let mut done = Vec::new();
        for h in sent {
            done.push(h.await.unwrap());
        }
        for (i, replies, at) in &done {
            assert!(
                replies[0].error_text().is_none(),
                "{i}: {:?}",
                texts(replies)
            );
            // One at a time, first come first served: the i-th ends after
            // i + 1 runs of 10 ms.
            assert_eq!(
                *at - started,
                Duration::from_millis(10 * (*i as u64 + 1)),
                "request {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_reaches_its_deadline_is_busy_and_others_run_meanwhile() {
        let (slow, control) = stack(SHARE1, Duration::from_secs(10));
        let holder = tokio::spawn(slow.oneshot(from("10.0.0.1", &[&["HGETALL", "h"]])));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let fast = with_delay(&control, Duration::ZERO);
        let started = tokio::time::Instant::now();
        let waited = {
            let fast = fast.clone();
            tokio::spawn(async move {
                fast.oneshot(from("10.0.0.1", &[&["HGETALL", "h"]]))
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Another host is not behind this host's line.
        let other = fast
            .clone()
            .oneshot(from("10.0.0.2", &[&["HGETALL", "h"]]))
            .await
            .unwrap();
        assert!(other[0].error_text().is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(1));
        let waited = waited.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(1000));
        let text = waited[0].error_text().unwrap_or_default();
        assert!(
            text.starts_with(
                "BUSY class heavy_data: this client already holds its share (1 of 4 slots), retry after "
            ),
            "{text}"
        );
        holder.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_line_is_refused_at_once() {
        let cfg = format!("{SHARE1}[admission]\nqueue_max = 2\n");
        let (slow, control) = stack(&cfg, Duration::from_secs(10));
        let send = |svc: &Admission<Echo>| {
            let svc = svc.clone();
            tokio::spawn(async move {
                svc.oneshot(from("10.0.0.1", &[&["HGETALL", "h"]]))
                    .await
                    .unwrap()
            })
        };
        // One runs, two wait.
        let running: Vec<_> = (0..3).map(|_| send(&slow)).collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = tokio::time::Instant::now();
        let refused = with_delay(&control, Duration::ZERO)
            .oneshot(from("10.0.0.1", &[&["HGETALL", "h"]]))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "not queued");
        assert!(refused[0]
            .error_text()
            .unwrap_or_default()
            .starts_with("BUSY class heavy_data: this client already holds its share"));
        for h in running {
            h.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_time_budget_is_answered_at_once_even_behind_a_line() {
        // heavy_scan: one request per client, 100 ms per second.
        let cfg = format!(
            "{SHARE1}[classes.heavy_scan]\nper_client_ms_per_sec = 100\nper_client_burst_ms = 100\n"
        );
        let (slow, control) = stack(&cfg, Duration::from_millis(500));
        // One long scan (500 ms: past the budget) and one waiting behind it.
        let long = tokio::spawn(slow.clone().oneshot(from("10.0.0.1", &[&["KEYS", "*"]])));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let behind = tokio::spawn(slow.clone().oneshot(from("10.0.0.1", &[&["KEYS", "*"]])));
        long.await.unwrap().unwrap();
        // The one behind was first in line when the budget was spent.
        let behind = behind.await.unwrap().unwrap();
        assert!(
            behind[0]
                .error_text()
                .unwrap_or_default()
                .starts_with("BUSY class heavy_scan: this client used its time budget"),
            "{:?}",
            texts(&behind)
        );
        let started = tokio::time::Instant::now();
        let again = with_delay(&control, Duration::ZERO)
            .oneshot(from("10.0.0.1", &[&["KEYS", "*"]]))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(again[0]
            .error_text()
            .unwrap_or_default()
            .contains("time budget"));
    }

    #[tokio::test(start_paused = true)]
    async fn batches_taking_two_classes_in_opposite_orders_do_not_wait_for_each_other() {
        let (svc, _) = stack(SHARE1, Duration::from_millis(50));
        let send = |cmds: &'static [&'static [&'static str]]| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(from("10.0.0.1", cmds)).await.unwrap() })
        };
        let started = tokio::time::Instant::now();
        let a = send(&[&["LRANGE", "l", "0", "9"], &["KEYS", "a*"]]);
        let b = send(&[&["KEYS", "b*"], &["LRANGE", "l", "0", "9"]]);
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(
            a.iter().chain(&b).all(|r| r.error_text().is_none()),
            "{:?} {:?}",
            texts(&a),
            texts(&b)
        );
        // One after the other, not each until the other's deadline.
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(
            a[1],
            reply::bulk(b"a*".to_vec()),
            "replies keep their order"
        );
    }
}
