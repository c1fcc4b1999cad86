//! Stream entry ids (`<ms>-<seq>`) and the ways commands spell them:
//! XADD's `*` / `<ms>-*` / explicit ids, range bounds (`-`, `+`, `(` for
//! exclusive, a bare `<ms>`), and XREAD's `$`. The parsing itself is
//! `rampart_proto::parse::streams` (tested and fuzzed there).

use rampart_proto::parse::streams as parse;
pub use rampart_proto::parse::streams::{AddId, RangeEnd, StreamId};

use super::super::CmdError;

/// Parses `<ms>-<seq>` or `<ms>`; a missing seq becomes `missing_seq`.
/// `-` and `+` are accepted as the minimum and maximum id.
pub fn parse_id(raw: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    Ok(parse::parse_id(raw, missing_seq)?)
}

/// Parses a range bound: `-`, `+`, `<id>`, `<ms>` (seq 0 as a start, max as
/// an end), or `(<id>` for exclusive; returns it as an inclusive id.
pub fn parse_range_bound(raw: &[u8], end: RangeEnd) -> Result<StreamId, CmdError> {
    Ok(parse::parse_range_bound(raw, end)?)
}
