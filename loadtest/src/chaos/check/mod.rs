//! Checkers: each takes a workload's [`History`] and returns a [`Verdict`].

pub mod counter;
pub mod list_append;
pub mod register;
pub mod set;
pub mod stream;

use super::history::{History, Verdict};

/// The workloads a chaos run can record, by their command-line names.
pub const WORKLOADS: &[&str] = &["register", "list-append", "set", "counter", "stream"];

/// Runs the checker of `workload` (one of [`WORKLOADS`]) over `history`.
pub fn run(workload: &str, history: &History) -> Option<Verdict> {
    let mut verdict = match workload {
        "register" => register::check(history),
        "list-append" => list_append::check(history),
        "set" => set::check(history),
        "counter" => counter::check(history),
        "stream" => stream::check(history),
        _ => return None,
    };
    verdict.workload = workload.to_string();
    Some(verdict)
}
