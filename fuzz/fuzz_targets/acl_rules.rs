//! The ACL rule parser (`rampart_proto::acl`): `ACL SETUSER <name> <rule>...`
//! on arbitrary bytes, the user description round trip (how users are
//! stored and replicated: parse -> describe -> parse gives the same user),
//! the stored `ACL LIST` form, and the key and channel checks.
//!
//! Input: NUL-separated items; the first is the user name, the rest are
//! rules; each item is also used as a key and a channel to check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_proto::acl::check::{channel_allowed, key_allowed};
use rampart_proto::acl::{parse_rule, AclError, User, Users};
use rampart_proto::command_table::KeyFlags;

fuzz_target!(|data: &[u8]| {
    let items: Vec<Vec<u8>> = data.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    let (name, rules) = items.split_first().expect("split gives at least one item");
    for op in rules {
        match parse_rule(op) {
            Ok(_) => {}
            // Errors that depend on a user never come from the parser.
            Err(AclError::KeyAfterAll | AclError::ChannelAfterAll | AclError::NoSuchPassword) => {
                panic!("user-dependent error from parse_rule")
            }
            Err(_) => {}
        }
    }
    let mut users = Users::default();
    match users.setuser(name, rules) {
        Ok(()) => {
            let user = users
                .users
                .values()
                .next()
                .expect("setuser stored the user");
            // The description is the stored and replicated form.
            let back =
                User::from_description(&user.name, &user.describe()).expect("a description parses");
            assert_eq!(&back, user, "description round trip: {}", user.describe());
            let (reloaded, bad) = Users::parse(&users.serialize());
            assert!(bad.is_empty(), "stored lines that do not parse: {bad:?}");
            assert_eq!(reloaded, users);
            for item in &items {
                for flags in [
                    KeyFlags::ACCESS,
                    KeyFlags::INSERT,
                    KeyFlags::DELETE,
                    KeyFlags::NONE,
                ] {
                    let _ = key_allowed(user, item, flags);
                }
                let _ = channel_allowed(user, item, false);
                let _ = channel_allowed(user, item, true);
            }
        }
        Err(text) => {
            assert!(text.starts_with("ERR "), "not a Redis error: {text}");
            assert!(users.users.is_empty(), "a failed SETUSER stored a user");
        }
    }
    // The stored form itself, as a node reads it back from RocksDB.
    if let Ok(text) = std::str::from_utf8(data) {
        let (parsed, _) = Users::parse(text);
        let (again, bad) = Users::parse(&parsed.serialize());
        assert!(
            bad.is_empty(),
            "re-serialized lines that do not parse: {bad:?}"
        );
        assert_eq!(again, parsed);
    }
});
