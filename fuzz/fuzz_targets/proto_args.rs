//! The argument parsers every command family uses (`rampart_proto::args`):
//! strict integers round-trip, floats are finite, timeouts never panic, and
//! the `Args` cursor reads arbitrary argument lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_proto::args::{parse_f64, parse_i64, parse_timeout_secs, Args};

fuzz_target!(|data: &[u8]| {
    if let Some(n) = parse_i64(data) {
        // Strict: only the canonical spelling parses.
        assert_eq!(n.to_string().as_bytes(), data);
    }
    if let Some(f) = parse_f64(data) {
        assert!(!f.is_nan());
    }
    for now in [0, 1_700_000_000_000, i64::MAX] {
        if let Ok(Some(ms)) = parse_timeout_secs(data, now) {
            assert!(ms > 0);
        }
    }
    // The same bytes as an argument list split on NUL.
    let items: Vec<Vec<u8>> = data.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    let mut args = Args::new(&items);
    while !args.is_empty() {
        let before = args.remaining();
        let _ = match before % 4 {
            0 => args.next_keyword().map(drop),
            1 => args.next_i64().map(drop),
            2 => args.next_f64().map(drop),
            _ => args.next_bytes().map(drop),
        };
        assert_eq!(args.remaining(), before - 1);
    }
    assert!(args.next_bytes().is_err());
});
