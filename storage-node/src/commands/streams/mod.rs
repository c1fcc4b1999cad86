//! Stream commands (XADD, XRANGE, XREAD, consumer groups, XINFO) over the
//! per-entry layout of [`layout`], with the legacy one-blob layout and its
//! migration in [`legacy`]. See docs/streams.md.

pub mod admin;
pub mod claim;
pub mod entries;
#[cfg(test)]
mod group_tests;
pub mod groups;
pub mod id;
pub mod info;
pub mod layout;
pub mod legacy;
pub mod pel;
pub mod read;
pub mod readgroup;
