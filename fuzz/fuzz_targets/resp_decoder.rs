//! The proxy's request decoder (multibulk and inline) on arbitrary bytes,
//! delivered in pieces as the network would: it may refuse, never panic,
//! and never hold more than it was given.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rampart_proxy::resp::RequestDecoder;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size, so both whole buffers and
    // byte-by-byte delivery are explored; a small bulk limit reaches the
    // "invalid bulk length" paths with short inputs.
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let mut decoder = RequestDecoder::new(4096);
    let mut buf = BytesMut::new();
    let mut given = 0usize;
    for piece in input.chunks(step) {
        buf.extend_from_slice(piece);
        given += piece.len();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(argv)) => {
                    let bytes: usize = argv.iter().map(Vec::len).sum();
                    assert!(bytes <= given, "decoded more bytes than were sent");
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(e.reply_text().starts_with("ERR Protocol error: "));
                    return;
                }
            }
        }
        assert!(buf.len() + decoder.pending_bytes() <= given);
    }
});
