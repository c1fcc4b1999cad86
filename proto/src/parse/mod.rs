//! The pure option parsing of each command family: arguments in, a typed
//! options struct (or Redis 7.2's exact error text) out, without reading
//! any data. The storage node calls these where it used to parse inline,
//! at the same point of each command, so the order of errors (syntax
//! before WRONGTYPE, or after, as in Redis) is unchanged. Being pure and
//! free of RocksDB, they are fuzzed (`fuzz/fuzz_targets/command_args.rs`).
//!
//! Every `Err` is a complete Redis error text, ready to be the reply.

pub mod bitmaps;
pub mod collection;
pub mod geo;
pub mod keys;
pub mod lists;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod zsets;
