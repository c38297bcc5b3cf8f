//! Statement splitting over arbitrary text. It must never panic; whatever splits
//! must split the same way again once re-joined with `;`, each statement must split
//! to itself, and no statement may be empty, padded or hold a NUL.
#![no_main]

use lessor_engine::text::statements::{STATEMENTS_TEXT_BYTES_MAX, normalize_statement_list, split_statements};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match split_statements(text) {
        Ok(statements) => {
            for statement in &statements {
                assert!(!statement.is_empty(), "{text:?}");
                assert_eq!(statement.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']), statement, "{text:?}");
                assert!(!statement.contains('\0'), "{text:?}");
            }
            let joined = statements.join(";\n");
            if joined.len() <= STATEMENTS_TEXT_BYTES_MAX {
                let again = split_statements(&joined).unwrap_or_else(|e| panic!("{joined:?}: {e}"));
                assert_eq!(again, statements, "re-joined: {joined:?}");
            }
            let each = normalize_statement_list(&statements).unwrap_or_else(|e| panic!("{statements:?}: {e}"));
            assert_eq!(each, statements);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() < 1_000, "error message too long ({} bytes): {message}", message.len());
        }
    }
});
