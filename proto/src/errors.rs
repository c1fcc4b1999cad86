//! Redis 7.2 error texts, without the leading '-'. Clients and test suites
//! match on these strings, so they live in one place and are copied exactly.

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const INCR_NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const NX_XX_GT_LT_CONFLICT: &str =
    "ERR NX and XX, GT or LT options at the same time are not compatible";
/// Redis 7.2's answer to a random-pick count beyond ±LONG_MAX/2
/// (CVE-2023-25155).
pub const VALUE_OUT_OF_RANGE: &str = "ERR value is out of range";
pub const GT_LT_NX_CONFLICT: &str =
    "ERR GT, LT, and/or NX options at the same time are not compatible";

/// A write (or MULTI/EXEC, or script commit) too large to replicate: it is
/// refused before it is proposed (see [`crate::limits`]).
pub fn too_large_to_replicate(bytes: usize) -> String {
    format!(
        "ERR request of {bytes} bytes exceeds the replication limit of {} bytes",
        crate::limits::MAX_REPLICATED_BYTES
    )
}

/// A read command that gathered more than the node's `max-reply-bytes`.
pub fn reply_too_large(limit: usize) -> String {
    format!(
        "ERR reply exceeds the limit of {limit} bytes (max-reply-bytes); \
         read a smaller range or use SCAN"
    )
}

/// `ERR wrong number of arguments for 'get' command`
pub fn wrong_arity(command_name: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}' command",
        command_name.to_ascii_lowercase()
    )
}

/// Redis's reply to an unknown command, e.g.
/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
pub fn unknown_command(name: &[u8], args: &[impl AsRef<[u8]>]) -> String {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        truncated(name)
    );
    for arg in args {
        text.push('\'');
        text.push_str(&truncated(arg.as_ref()));
        text.push_str("' ");
    }
    text
}

/// `ERR unknown subcommand 'foo'. Try CLIENT HELP.`
pub fn unknown_subcommand(command: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        truncated(sub),
        command.to_ascii_uppercase()
    )
}

/// `ERR invalid expire time in 'set' command`
pub fn invalid_expire(command_name: &str) -> String {
    format!(
        "ERR invalid expire time in '{}' command",
        command_name.to_ascii_lowercase()
    )
}

/// Redis quotes at most 128 bytes of a user-supplied name in error texts.
fn truncated(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(128)];
    String::from_utf8_lossy(cut).into_owned()
}
