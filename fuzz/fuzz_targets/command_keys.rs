//! The command table on arbitrary argument lists: lookup, arity, the exact
//! key extraction (key specs and getkeys rules, what routing and ACL key
//! patterns use), blocking timeouts, and the glob matcher of KEYS/SCAN.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_proto::command_table::lookup_argv;
use rampart_proto::glob::glob_match;

fuzz_target!(|data: &[u8]| {
    let argv: Vec<Vec<u8>> = data.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    if let Some(spec) = lookup_argv(&argv) {
        if spec.arity_ok(argv.len()) {
            for key in spec.find_keys(&argv) {
                assert!(key.pos > 0 && key.pos < argv.len(), "key outside argv");
            }
            let _ = spec.blocks(&argv);
            let _ = spec.block_timeout(&argv);
        }
    }
    if let [pattern, text, ..] = argv.as_slice() {
        let _ = glob_match(pattern, text);
    }
});
