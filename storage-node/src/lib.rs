//! Rampart storage node.
pub mod commands;
pub mod engine;
