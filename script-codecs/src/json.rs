//! `cjson.decode`'s parsing: JSON text to a `serde_json::Value`, with the
//! nesting limit the Lua conversion relies on.

/// Nesting limit of cjson encode/decode (cyclic tables, hostile input).
/// serde_json stops at 128 levels by itself; this is the conversion's own
/// guard and the encoder's.
pub const MAX_DEPTH: usize = 1000;

/// Why a JSON text was refused: the message `cjson.decode` raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Parses `bytes` as one JSON value.
pub fn decode(bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
    serde_json::from_slice(bytes)
        .map_err(|e| DecodeError(format!("Expected value but found invalid token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_values_and_refuses_garbage() {
        assert_eq!(
            decode(br#"{"a":[1,2.5,"x",null,true]}"#).unwrap()["a"][1],
            serde_json::json!(2.5)
        );
        assert!(decode(b"{").is_err());
        assert!(decode(b"").is_err());
        // Deep nesting is an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(decode(deep.as_bytes()).is_err());
    }
}
