//! Server-family commands the proxy answers itself: TIME.
//!
//! TIME reads the proxy's clock. Expiry runs on the Raft leader's clock
//! (docs/time.md); with NTP both agree to milliseconds, which is what an
//! application computing EXPIREAT from TIME needs, and answering here keeps
//! TIME as cheap as in Redis instead of costing a read round.

use std::time::{SystemTime, UNIX_EPOCH};

use rampart_proto::{reply, Reply};

pub fn time() -> Reply {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    reply::array(vec![
        reply::bulk(now.as_secs().to_string()),
        reply::bulk(now.subsec_micros().to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::text;

    #[test]
    fn time_is_seconds_and_microseconds_as_bulk_strings() {
        let shown = text(&time());
        let parts: Vec<&str> = shown
            .trim_start_matches("*[")
            .trim_end_matches(']')
            .split(", ")
            .collect();
        assert_eq!(parts.len(), 2, "{shown}");
        let secs: u64 = parts[0].trim_start_matches('$').parse().expect("seconds");
        let micros: u32 = parts[1].trim_start_matches('$').parse().expect("micros");
        assert!(secs > 1_700_000_000, "{secs}");
        assert!(micros < 1_000_000);
    }
}
