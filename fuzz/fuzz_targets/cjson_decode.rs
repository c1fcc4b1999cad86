//! `cjson.decode` on arbitrary bytes: a value or an error, never a panic
//! or a stack overflow, and a decoded value encodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_script_codecs::json::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = decode(data) {
        let text = value.to_string();
        assert!(
            decode(text.as_bytes()).is_ok(),
            "re-encoded JSON must decode"
        );
    }
});
