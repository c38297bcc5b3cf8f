//! Statement splitting, templates and passwords through the public API: the tables a
//! Vault user's role definitions exercise, and properties over generated input.

use lessor_engine::text::password::{PasswordPolicy, generate_password};
use lessor_engine::text::random::random_alnum;
use lessor_engine::text::statements::{StatementError, normalize_statement_list, split_statements};
use lessor_engine::text::template::{
    DEFAULT_USERNAME_TEMPLATE, StatementVars, TemplateError, UsernameContext, UsernameTemplate, expiration_text,
    random_source, render_connection_url, render_statement,
};
use proptest::prelude::*;

const ARTICLE_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
const ARTICLE_REVOCATION: &str =
    "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";";

#[test]
fn split_table() {
    let table: &[(&str, &[&str])] = &[
        (
            ARTICLE_CREATION,
            &[
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\"",
            ],
        ),
        (
            ARTICLE_REVOCATION,
            &[
                "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"",
                "DROP ROLE IF EXISTS \"{{name}}\"",
            ],
        ),
        // Dollar quoting with `;` inside, and a DO block.
        ("SELECT $$a;b$$; SELECT 2", &["SELECT $$a;b$$", "SELECT 2"]),
        (
            "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{{name}}') THEN\n    CREATE ROLE \"{{name}}\";\n  END IF;\nEND\n$$;\nGRANT x TO \"{{name}}\";",
            &[
                "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{{name}}') THEN\n    CREATE ROLE \"{{name}}\";\n  END IF;\nEND\n$$",
                "GRANT x TO \"{{name}}\"",
            ],
        ),
        // Nested tags: only the opening tag closes.
        (
            "DO $body$ BEGIN EXECUTE $sql$ GRANT a TO b; $sql$; EXECUTE $$ SELECT ';' $$; END $body$; SELECT 1",
            &["DO $body$ BEGIN EXECUTE $sql$ GRANT a TO b; $sql$; EXECUTE $$ SELECT ';' $$; END $body$", "SELECT 1"],
        ),
        // `$1` is a parameter, not a tag; `$` inside a word is part of it.
        ("PREPARE p AS SELECT $1; EXECUTE p(1)", &["PREPARE p AS SELECT $1", "EXECUTE p(1)"]),
        ("SELECT a$b; SELECT 2", &["SELECT a$b", "SELECT 2"]),
        // Comments holding `;` and quotes.
        ("SELECT 1; -- it's \"here\"; still a comment\nSELECT 2;", &["SELECT 1", "SELECT 2"]),
        ("SELECT /* one; /* two; ' */ \" */ 1; SELECT 2", &["SELECT 1", "SELECT 2"]),
        // Quotes holding comment starts and `;`.
        ("SELECT '--;', \"/*;\"; SELECT 2", &["SELECT '--;', \"/*;\"", "SELECT 2"]),
        ("SELECT 'it''s; fine'; SELECT 2", &["SELECT 'it''s; fine'", "SELECT 2"]),
        // E-strings: backslash escapes the quote.
        (r"SELECT E'it\'s; fine'; SELECT 2", &[r"SELECT E'it\'s; fine'", "SELECT 2"]),
        (r"SELECT E'\\'; SELECT 2", &[r"SELECT E'\\'", "SELECT 2"]),
        // Standard strings: a backslash is just a character.
        (r"SELECT 'C:\'; SELECT 2", &[r"SELECT 'C:\'", "SELECT 2"]),
        // SQL-standard function bodies stay whole, as in psql.
        (
            "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END; CALL p()",
            &[
                "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END",
                "CALL p()",
            ],
        ),
        ("", &[]),
        (";;\n ; -- nothing\n", &[]),
    ];
    for (text, expected) in table {
        let got = split_statements(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(got, *expected, "{text:?}");
    }
}

#[test]
fn split_errors() {
    let table: &[(&str, StatementError)] = &[
        ("SELECT 'x", StatementError::UnterminatedString { offset: 7 }),
        ("SELECT 'it''s", StatementError::UnterminatedString { offset: 7 }),
        (r"SELECT E'x\'", StatementError::UnterminatedEscapeString { offset: 7 }),
        ("GRANT x TO \"{{name}}", StatementError::UnterminatedIdentifier { offset: 11 }),
        ("DO $$ BEGIN END; $x$", StatementError::UnterminatedDollarQuote { offset: 3, tag: "$$".into() }),
        ("DO $a$ x $A$;", StatementError::UnterminatedDollarQuote { offset: 3, tag: "$a$".into() }),
        ("SELECT 1; /* /* */", StatementError::UnterminatedBlockComment { offset: 10 }),
    ];
    for (text, expected) in table {
        assert_eq!(split_statements(text).as_ref(), Err(expected), "{text:?}");
    }
    let message = split_statements("SELECT 1; SELECT 'x").unwrap_err().to_string();
    assert_eq!(message, "unterminated string literal: the ' at byte 17 is never closed");
}

#[test]
fn statement_list_as_json_array_or_string() {
    let as_string = normalize_statement_list(&[ARTICLE_CREATION.to_owned()]).unwrap();
    let as_array = normalize_statement_list(&[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';".to_owned(),
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"".to_owned(),
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";".to_owned(),
    ])
    .unwrap();
    assert_eq!(as_string, as_array);
    assert_eq!(as_string.len(), 3);
}

#[test]
fn article_role_renders() {
    let vars = StatementVars {
        name: Some("v-token-app-read-jNFRlKsZZMxJEx60o66i-1693258841"),
        password: Some("A1b2C3d4e5f6g7h8-xyz"),
        expiration: Some(&expiration_text(1_693_262_441_000 + 5_000)),
    };
    let rendered: Vec<String> = split_statements(ARTICLE_CREATION)
        .unwrap()
        .iter()
        .map(|s| render_statement(s, &vars))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rendered[0],
        "CREATE ROLE \"v-token-app-read-jNFRlKsZZMxJEx60o66i-1693258841\" WITH LOGIN PASSWORD 'A1b2C3d4e5f6g7h8-xyz' VALID UNTIL '2023-08-28 22:40:46+0000'"
    );
    // Revocation has only the name.
    let revoke = StatementVars { name: vars.name, ..StatementVars::default() };
    for statement in split_statements(ARTICLE_REVOCATION).unwrap() {
        render_statement(&statement, &revoke).unwrap();
    }
    assert_eq!(
        render_statement(&split_statements(ARTICLE_CREATION).unwrap()[0], &revoke),
        Err(TemplateError::MissingVariable { name: "password".into() })
    );
}

#[test]
fn article_connection_url() {
    let url = render_connection_url(
        "postgresql://{{username}}:{{password}}@db.example.com:5432/postgres?sslmode=require",
        "vault_admin",
        "s3cr3t",
    )
    .unwrap();
    assert_eq!(url, "postgresql://vault_admin:s3cr3t@db.example.com:5432/postgres?sslmode=require");
    let url = render_connection_url("postgresql://{{username}}:{{password}}@h/db", "a@b", "p:w/d%").unwrap();
    assert_eq!(url, "postgresql://a%40b:p%3Aw%2Fd%25@h/db");
}

#[test]
fn vault_docs_username_example() {
    let template = UsernameTemplate::parse(DEFAULT_USERNAME_TEMPLATE).unwrap();
    let ctx = UsernameContext { display_name: "token", role_name: "app-readonly", unix_time_s: 1_693_258_841 };
    let mut fill = |buf: &mut [u8]| getrandom::fill(buf).unwrap();
    let name = template.render(&ctx, &mut random_source(&mut fill)).unwrap();
    let (prefix, rest) = name.split_at("v-token-app-read-".len());
    assert_eq!(prefix, "v-token-app-read-");
    let (random, time) = rest.split_at(20);
    assert!(random.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
    assert_eq!(time, "-1693258841");
}

#[test]
fn default_password_policy() {
    let mut fill = |buf: &mut [u8]| getrandom::fill(buf).unwrap();
    let policy = PasswordPolicy::default();
    for _ in 0..100 {
        let password = generate_password(&policy, &mut fill);
        assert_eq!(password.len(), 20);
        for class in [char::is_ascii_uppercase, char::is_ascii_lowercase, char::is_ascii_digit, |c: &char| *c == '-'] {
            assert!(password.chars().any(|c| class(&c)), "{password}");
        }
        // Always usable in a statement.
        let vars = StatementVars { password: Some(&password), ..StatementVars::default() };
        render_statement("ALTER ROLE x PASSWORD '{{password}}'", &vars).unwrap();
    }
}

/// Statement text without quotes, `;`, comment starts, `$` or parentheses: nothing
/// that the splitter treats specially.
fn plain_statement() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_ ,.=*+<>\n\t]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn split_gives_back_joined_statements(statements in prop::collection::vec(plain_statement(), 0..12), sep in "[ \n]{0,2}") {
        let text = statements.join(&format!(";{sep}"));
        let expected: Vec<String> = statements
            .iter()
            .map(|s| s.trim_matches([' ', '\n', '\t']).to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        prop_assert_eq!(split_statements(&text).unwrap(), expected);
    }

    #[test]
    fn rendering_never_lets_a_variable_add_a_quote(
        name in any::<String>(),
        password in any::<String>(),
        expiration in any::<String>(),
        template in prop::sample::select(vec![
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
            "ALTER ROLE \"{{ username }}\" PASSWORD '{{password}}'",
            "DO $$ BEGIN EXECUTE format('GRANT x TO %I', '{{name}}'); END $$",
            "{{name}}{{password}}{{expiration}}",
        ]),
    ) {
        let vars = StatementVars { name: Some(&name), password: Some(&password), expiration: Some(&expiration) };
        if let Ok(out) = render_statement(template, &vars) {
            for special in ['\'', '"', '\\', ';', '\0'] {
                prop_assert_eq!(out.matches(special).count(), template.matches(special).count());
            }
            prop_assert!(!out.chars().any(char::is_control));
        }
    }

    #[test]
    fn rendering_substitutes_safe_values_verbatim(name in "[A-Za-z0-9_.-]{1,63}", password in "[A-Za-z0-9-]{20}") {
        let vars = StatementVars { name: Some(&name), password: Some(&password), expiration: None };
        let out = render_statement("ALTER ROLE \"{{name}}\" PASSWORD '{{password}}'", &vars).unwrap();
        prop_assert_eq!(out, format!("ALTER ROLE \"{name}\" PASSWORD '{password}'"));
    }

    #[test]
    fn usernames_are_safe_whatever_the_names(display_name in any::<String>(), role_name in any::<String>(), seed in any::<u64>()) {
        let template = UsernameTemplate::default();
        let ctx = UsernameContext { display_name: &display_name, role_name: &role_name, unix_time_s: 1_700_000_000 };
        let mut state = seed | 1;
        let mut fill = |buf: &mut [u8]| for b in buf {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        };
        let name = template.render(&ctx, &mut |n| random_alnum(n, &mut fill)).unwrap();
        prop_assert!(name.len() <= 63);
        prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{}", name);
    }
}
