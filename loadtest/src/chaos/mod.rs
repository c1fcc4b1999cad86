//! `rampart-loadtest chaos`: a cluster under faults, workloads that record
//! histories, and checkers that judge them (issue 17).

pub mod check;
pub mod history;
