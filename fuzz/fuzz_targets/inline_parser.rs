//! Redis's `sdssplitargs` rules for inline commands: any line splits or is
//! refused as unbalanced; arguments never hold more bytes than the line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_proxy::resp::inline::split_args;

fuzz_target!(|line: &[u8]| {
    if let Some(args) = split_args(line) {
        let bytes: usize = args.iter().map(Vec::len).sum();
        assert!(bytes <= line.len());
    }
});
