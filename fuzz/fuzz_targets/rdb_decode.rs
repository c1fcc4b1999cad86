//! RESTORE's payload decoder (`rampart_proto::rdb`). The first input byte
//! picks the mode: odd values re-seal the rest with a valid footer (RDB
//! version 10 and its CRC-64), so mutations reach the value decoders
//! instead of dying at the checksum; even values decode the rest as is.
//! Whatever decodes must encode to a payload that decodes to the same
//! value (consumers' active times aside: the RDB version DUMP writes does
//! not carry them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_proto::rdb::{crc64, decode, encode, Value};

fn without_active_times(v: Value) -> Value {
    match v {
        Value::Stream(mut s) => {
            for g in &mut s.groups {
                for c in &mut g.consumers {
                    c.active_time_ms = c.seen_time_ms;
                }
            }
            Value::Stream(s)
        }
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let payload = if mode & 1 == 1 {
        let mut p = rest.to_vec();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    } else {
        rest.to_vec()
    };
    if let Ok(value) = decode(&payload) {
        let value = without_active_times(value);
        let again = decode(&encode(&value)).expect("an encoded value decodes");
        assert_eq!(again, value);
    }
});
