//! `cmsgpack.unpack` on arbitrary bytes: every object decodes or fails,
//! and decoding always makes progress.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_script_codecs::msgpack::Cursor;

fuzz_target!(|data: &[u8]| {
    let mut cursor = Cursor::new(data);
    while !cursor.at_end() {
        let before = cursor.position();
        if cursor.next_value().is_err() {
            return;
        }
        assert!(cursor.position() > before && cursor.position() <= data.len());
    }
});
