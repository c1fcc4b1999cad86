//! MULTI / EXEC / DISCARD / WATCH / UNWATCH: one connection's transaction
//! state machine (docs/transactions.md).
//!
//! It exists on its own so Redis's rules (what queues, what is refused
//! inside MULTI, when EXEC answers EXECABORT, what clears the watches) can
//! be read in one place. [`Transaction::step`] only decides; the two steps
//! that talk to the nodes, [`Transaction::watch`] and [`Exec::run`], are
//! called by the dispatcher once the commands before them have been sent,
//! so replies stay in request order.

use rampart_proto::command_table::{lookup, CommandSpec, Runs};
use rampart_proto::pb::WatchedKey;
use rampart_proto::{reply, Argv, Reply};
use tower::Service;

use crate::batch::Batcher;
use crate::commands::{self, Session, Shared};
use crate::service::{Batch, BoxError};

/// One connection's MULTI and WATCH state.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// Set between MULTI and EXEC/DISCARD.
    multi: Option<MultiState>,
    /// WATCHed keys and their revisions, until EXEC, DISCARD or UNWATCH.
    watches: Vec<WatchedKey>,
}

/// A MULTI in progress: the queued commands, and whether one failed to
/// queue (then EXEC answers EXECABORT).
#[derive(Debug, Default)]
struct MultiState {
    queued: Vec<Argv>,
    dirty: bool,
}

/// What [`Transaction::step`] made of a command.
pub(crate) enum Step {
    /// Not a transaction matter: the command runs as usual.
    Run,
    /// Answered by the state machine (`+QUEUED`, `+OK`, an error).
    Reply(Reply),
    /// WATCH outside MULTI: once the pending commands are sent, call
    /// [`Transaction::watch`].
    Watch,
    /// EXEC: once the pending commands are sent, call [`Exec::run`].
    Exec(Exec),
}

/// An EXEC to run: the MULTI it ends and the watches it checks.
pub(crate) struct Exec {
    multi: MultiState,
    watches: Vec<WatchedKey>,
}

impl Transaction {
    /// Between MULTI and EXEC/DISCARD.
    pub(crate) fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// A queueing error inside MULTI makes the EXEC fail (EXECABORT).
    pub(crate) fn abort_queueing(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.dirty = true;
        }
    }

    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH, RESET, and queueing inside
    /// MULTI, for a known command with the right arity from an
    /// authenticated client.
    pub(crate) fn step(&mut self, spec: &CommandSpec, argv: &Argv) -> Step {
        if spec.name == "reset" {
            self.multi = None;
            self.watches.clear();
            return Step::Run;
        }
        if let Some(multi) = &mut self.multi {
            return match spec.name {
                "exec" => Step::Exec(Exec {
                    multi: self.multi.take().unwrap_or_default(),
                    watches: std::mem::take(&mut self.watches),
                }),
                "discard" => {
                    self.multi = None;
                    self.watches.clear();
                    Step::Reply(reply::ok())
                }
                "multi" => Step::Reply(reply::error("ERR MULTI calls can not be nested")),
                "watch" => Step::Reply(reply::error("ERR WATCH inside MULTI is not allowed")),
                "quit" => Step::Run,
                _ => {
                    multi.queued.push(argv.clone());
                    Step::Reply(reply::status("QUEUED"))
                }
            };
        }
        match spec.name {
            "multi" => {
                self.multi = Some(MultiState::default());
                Step::Reply(reply::ok())
            }
            "exec" => Step::Reply(reply::error("ERR EXEC without MULTI")),
            "discard" => Step::Reply(reply::error("ERR DISCARD without MULTI")),
            "unwatch" => {
                self.watches.clear();
                Step::Reply(reply::ok())
            }
            "watch" => Step::Watch,
            _ => Step::Run,
        }
    }

    /// WATCH: reads each key's revision on the leader (a linearizable read)
    /// and keeps it until EXEC, DISCARD or UNWATCH.
    pub(crate) async fn watch<S>(&mut self, argv: &Argv, batcher: &mut Batcher<S>) -> Reply
    where
        S: Service<Batch, Response = Vec<Reply>> + Send,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        let reply = batcher.send(vec![argv.clone()], None).await.pop();
        let Some(reply) = reply else {
            return reply::error("ERR internal error: no reply to WATCH");
        };
        let Some(items) = reply.array_items() else {
            // An error (BUSY, CLUSTERDOWN...) is the WATCH reply.
            return reply;
        };
        for (key, token) in argv[1..].iter().zip(items) {
            let pair = token.array_items().unwrap_or_default();
            let int = |i: usize| pair.get(i).and_then(Reply::integer_value).unwrap_or(0);
            if self.watches.iter().any(|w| &w.key == key) {
                continue;
            }
            self.watches.push(WatchedKey {
                key: key.clone(),
                revision: int(0).max(0) as u64,
                existed: int(1) != 0,
            });
        }
        reply::ok()
    }
}

impl Exec {
    /// The queued node commands go to the leader as one transaction (one
    /// Raft entry, checked against the WATCHed revisions); commands the
    /// proxy answers itself (PING, ECHO...) run here, in their place.
    pub(crate) async fn run<S>(
        self,
        batcher: &mut Batcher<S>,
        session: &mut Session,
        shared: &Shared,
    ) -> Reply
    where
        S: Service<Batch, Response = Vec<Reply>> + Send,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        let Exec { multi, watches } = self;
        if multi.dirty {
            return reply::error("EXECABORT Transaction discarded because of previous errors.");
        }
        let specs: Vec<Option<&'static CommandSpec>> =
            multi.queued.iter().map(|argv| lookup(&argv[0])).collect();
        let mut results: Vec<Option<Reply>> = vec![None; multi.queued.len()];
        // Rules may have changed since the commands were queued (Redis
        // checks again at EXEC): a denied command is answered here.
        for (i, argv) in multi.queued.iter().enumerate() {
            if let Some(spec) = specs[i] {
                results[i] = commands::acl::recheck_queued(spec, argv, session, shared)
                    .or_else(|| commands::acl::sort_patterns_denied(argv, session, shared));
            }
        }
        let local_or_denied: Vec<bool> = specs
            .iter()
            .zip(&results)
            .map(|(spec, denied)| denied.is_some() || spec.is_some_and(|s| s.runs == Runs::Proxy))
            .collect();
        let node_commands: Vec<Argv> = multi
            .queued
            .iter()
            .zip(&local_or_denied)
            .filter(|(_, &skip)| !skip)
            .map(|(argv, _)| argv.clone())
            .collect();
        if !node_commands.is_empty() || !watches.is_empty() {
            let reply = batcher.send(node_commands, Some(watches)).await.pop();
            let Some(items) = reply.as_ref().and_then(Reply::array_items) else {
                // Aborted by WATCH (null array), or refused (BUSY...).
                return reply.unwrap_or_else(reply::null_array);
            };
            let mut items = items.into_iter();
            for (slot, &skip) in results.iter_mut().zip(&local_or_denied) {
                if !skip {
                    *slot = items.next();
                }
            }
        }
        for (i, argv) in multi.queued.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            if let Some(spec) = specs[i].filter(|s| s.runs == Runs::Proxy) {
                let reply = commands::execute(spec, argv, session, shared).await;
                results[i] = Some(reply);
            }
        }
        reply::array(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| reply::error("ERR internal error: missing reply")))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Argv {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn step(tx: &mut Transaction, items: &[&str]) -> Step {
        let argv = argv(items);
        let spec = lookup(&argv[0]).expect("known command");
        tx.step(spec, &argv)
    }

    fn replied(step: Step) -> String {
        match step {
            Step::Reply(reply) => commands::tests::text(&reply),
            Step::Run => "run".into(),
            Step::Watch => "watch".into(),
            Step::Exec(_) => "exec".into(),
        }
    }

    #[test]
    fn multi_queues_until_exec() {
        let mut tx = Transaction::default();
        assert_eq!(replied(step(&mut tx, &["GET", "k"])), "run");
        assert_eq!(replied(step(&mut tx, &["MULTI"])), "+OK");
        assert!(tx.in_multi());
        assert_eq!(replied(step(&mut tx, &["SET", "k", "v"])), "+QUEUED");
        assert_eq!(replied(step(&mut tx, &["PING"])), "+QUEUED");
        assert_eq!(
            replied(step(&mut tx, &["MULTI"])),
            "-ERR MULTI calls can not be nested"
        );
        assert_eq!(
            replied(step(&mut tx, &["WATCH", "k"])),
            "-ERR WATCH inside MULTI is not allowed"
        );
        assert_eq!(replied(step(&mut tx, &["QUIT"])), "run");
        match step(&mut tx, &["EXEC"]) {
            Step::Exec(exec) => {
                assert_eq!(
                    exec.multi.queued,
                    vec![argv(&["SET", "k", "v"]), argv(&["PING"])]
                );
                assert!(!exec.multi.dirty);
            }
            _ => panic!("EXEC inside MULTI runs the transaction"),
        }
        assert!(!tx.in_multi());
        assert_eq!(replied(step(&mut tx, &["EXEC"])), "-ERR EXEC without MULTI");
    }

    #[test]
    fn watches_end_with_exec_discard_unwatch_or_reset() {
        let mut tx = Transaction::default();
        assert_eq!(replied(step(&mut tx, &["WATCH", "k"])), "watch");
        let watched = |tx: &mut Transaction| {
            tx.watches.push(WatchedKey {
                key: b"k".to_vec(),
                revision: 1,
                existed: true,
            })
        };
        watched(&mut tx);
        assert_eq!(replied(step(&mut tx, &["UNWATCH"])), "+OK");
        assert!(tx.watches.is_empty());
        watched(&mut tx);
        step(&mut tx, &["MULTI"]);
        assert_eq!(replied(step(&mut tx, &["DISCARD"])), "+OK");
        assert!(tx.watches.is_empty() && !tx.in_multi());
        watched(&mut tx);
        step(&mut tx, &["MULTI"]);
        assert_eq!(replied(step(&mut tx, &["RESET"])), "run");
        assert!(tx.watches.is_empty() && !tx.in_multi());
        watched(&mut tx);
        step(&mut tx, &["MULTI"]);
        match step(&mut tx, &["EXEC"]) {
            Step::Exec(exec) => assert_eq!(exec.watches.len(), 1),
            _ => panic!("EXEC inside MULTI runs the transaction"),
        }
        assert!(tx.watches.is_empty());
        assert_eq!(
            replied(step(&mut tx, &["DISCARD"])),
            "-ERR DISCARD without MULTI"
        );
    }

    #[test]
    fn a_queueing_error_marks_the_transaction_dirty() {
        let mut tx = Transaction::default();
        tx.abort_queueing();
        step(&mut tx, &["MULTI"]);
        match step(&mut tx, &["EXEC"]) {
            Step::Exec(exec) => assert!(!exec.multi.dirty),
            _ => panic!("EXEC inside MULTI runs the transaction"),
        }
        step(&mut tx, &["MULTI"]);
        tx.abort_queueing();
        match step(&mut tx, &["EXEC"]) {
            Step::Exec(exec) => assert!(exec.multi.dirty),
            _ => panic!("EXEC inside MULTI runs the transaction"),
        }
    }
}
