//! Policy parsing over arbitrary text (HCL, or JSON when it starts with `{`).
//! Parsing must never panic or overflow the stack; whatever parses must compile
//! into an `Acl` that answers checks, agrees on `allows`, and quotes at most a
//! bounded part of the input in its errors.
#![no_main]

use lessor_engine::auth::policy::{Acl, Capabilities, parse_policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_policy("fuzz", text) {
        Ok(policy) => {
            let acl = Acl::new([&policy]);
            let mut paths: Vec<&str> = vec!["", "secret/foo", "database/creds/app", "a/b/c/d"];
            // The policy's own patterns, read as paths, exercise every trie branch.
            paths.extend(policy.rules.iter().take(16).map(|r| r.pattern.as_str()));
            for path in paths {
                let granted = acl.capabilities(path);
                assert!(granted == Capabilities::DENY || !granted.contains(Capabilities::DENY), "{path}: {granted}");
                assert_eq!(
                    acl.allows(path, Capabilities::READ),
                    !granted.contains(Capabilities::DENY) && granted.contains(Capabilities::READ)
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() < 1_000, "error message too long ({} bytes): {message}", message.len());
        }
    }
});
