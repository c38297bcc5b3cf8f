//! Templates over arbitrary text, as a username template and as a statement and
//! connection-URL template. Parsing and rendering must never panic; a username that
//! renders is 1..=63 bytes of `[A-Za-z0-9_.-]`; a rendered statement holds no quote,
//! backslash or `;` that its template did not.
#![no_main]

use lessor_engine::text::random::RANDOM_CHARS_MAX;
use lessor_engine::text::template::{
    StatementVars, USERNAME_BYTES_MAX, UsernameContext, UsernameTemplate, render_connection_url, render_statement,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match UsernameTemplate::parse(text) {
        Ok(template) => {
            let ctx = UsernameContext {
                display_name: "token-app \"A\"",
                role_name: "app-readonly",
                unix_time_s: 1_693_258_841,
            };
            let mut rng = |n: usize| {
                assert!((1..=RANDOM_CHARS_MAX).contains(&n), "random {n}");
                "jNFRlKsZZMxJEx60o66i".chars().cycle().take(n).collect()
            };
            match template.render(&ctx, &mut rng) {
                Ok(name) => {
                    assert!(!name.is_empty() && name.len() <= USERNAME_BYTES_MAX, "{text:?} -> {name:?}");
                    assert!(
                        name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                        "{text:?} -> {name:?}"
                    );
                }
                Err(e) => assert!(e.to_string().len() < 1_000, "{e}"),
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() < 1_000, "error message too long ({} bytes): {message}", message.len());
        }
    }

    let vars = StatementVars {
        name: Some("v-token-app-read-jNFRlKsZZMxJEx60o66i-1693258841"),
        password: Some("A1b2-C3d4"),
        expiration: Some("2023-08-28 22:40:46+0000"),
    };
    if let Ok(sql) = render_statement(text, &vars) {
        for special in ['\'', '"', '\\', ';'] {
            assert_eq!(sql.matches(special).count(), text.matches(special).count(), "{text:?} -> {sql:?}");
        }
    }
    let revoke = StatementVars { name: Some("'; DROP TABLE x; --"), ..StatementVars::default() };
    if let Ok(sql) = render_statement(text, &revoke) {
        assert!(!sql.contains("DROP TABLE x") || text.contains("DROP TABLE x"), "{text:?} -> {sql:?}");
    }
    if let Ok(url) = render_connection_url(text, "user@x", "p:w/d") {
        assert!(!url.contains("p:w/d") || text.contains("p:w/d"), "{text:?} -> {url:?}");
    }
});
