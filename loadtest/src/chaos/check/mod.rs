//! Checkers: each takes a workload's [`History`](super::history::History)
//! and returns a [`Verdict`](super::history::Verdict).
