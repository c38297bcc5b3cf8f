//! ACL policies: parsing and validation, Vault's matching and priority rules, and
//! properties (deny wins, order never matters) checked against a naive model.

use lessor_engine::auth::policy::*;
use proptest::prelude::*;

const CREATE: Capabilities = Capabilities::CREATE;
const READ: Capabilities = Capabilities::READ;
const UPDATE: Capabilities = Capabilities::UPDATE;
const DELETE: Capabilities = Capabilities::DELETE;
const LIST: Capabilities = Capabilities::LIST;
const SUDO: Capabilities = Capabilities::SUDO;
const DENY: Capabilities = Capabilities::DENY;
const NONE: Capabilities = Capabilities::NONE;
const EACH: [Capabilities; 6] = [CREATE, READ, UPDATE, DELETE, LIST, SUDO];

/// `path "<pattern>" { capabilities = [<caps>] }`
fn rule(pattern: &str, caps: Capabilities) -> String {
    let names: Vec<String> = caps.names().map(|n| format!("{n:?}")).collect();
    format!("path {pattern:?} {{\n  capabilities = [{}]\n}}\n", names.join(", "))
}

fn policy(text: &str) -> Policy {
    parse_policy("test", text).unwrap_or_else(|e| panic!("{text}\ndoes not parse: {e}"))
}

/// One ACL from several policy texts.
fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Policy> = texts.iter().map(|t| policy(t)).collect();
    Acl::new(&policies)
}

fn err(text: &str) -> PolicyError {
    match parse_policy("test", text) {
        Ok(p) => panic!("{text}\nparsed, as {p:?}"),
        Err(e) => e,
    }
}

// ---- Capabilities ----

#[test]
fn capabilities_bitset() {
    let rw = READ | UPDATE;
    assert!(rw.contains(READ) && rw.contains(UPDATE) && rw.contains(rw) && rw.contains(NONE));
    assert!(!rw.contains(READ | LIST));
    assert_eq!(READ.union(UPDATE), rw);
    assert!(NONE.is_empty() && !READ.is_empty() && Capabilities::default().is_empty());
    let all = Capabilities::ALL_GRANTS | DENY;
    assert_eq!(all.names().collect::<Vec<_>>(), ["create", "read", "update", "delete", "list", "sudo", "deny"]);
    assert_eq!((DENY | LIST | CREATE).names().collect::<Vec<_>>(), ["create", "list", "deny"]);
    assert_eq!((UPDATE | READ).to_string(), "[read, update]");
    assert_eq!(NONE.to_string(), "[]");
    assert_eq!(format!("{:?}", SUDO | LIST), "Capabilities[list, sudo]");
    for name in ["create", "read", "update", "delete", "list", "sudo", "deny"] {
        assert_eq!(Capabilities::from_name(name).unwrap().names().collect::<Vec<_>>(), [name]);
    }
    assert_eq!(Capabilities::from_name("Read"), None, "names are case-sensitive, as in Vault");
    assert_eq!(Capabilities::from_name("patch"), None);
    assert_eq!(Capabilities::from_bits(rw.bits()), Some(rw));
    assert_eq!(Capabilities::from_bits(0x80), None);
    assert_eq!([READ, LIST].into_iter().collect::<Capabilities>(), READ | LIST);
}

// ---- Matching ----

/// Vault's documented examples for `*` and `+`.
#[test]
fn vault_documented_matching_examples() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        // Permit reading only "secret/foo": not "secret/food" or "secret/foo/bar".
        ("secret/foo", &["secret/foo"], &["secret/food", "secret/foo/bar", "secret/fo", "secret/foo/"]),
        // Everything under "secret/bar", but not "secret/bars/zip".
        ("secret/bar/*", &["secret/bar/zip", "secret/bar/zip/zap", "secret/bar/"], &["secret/bars/zip", "secret/bar"]),
        // Everything prefixed with "zip-".
        ("secret/zip-*", &["secret/zip-zap", "secret/zip-zap/zong", "secret/zip-"], &["secret/zip/zap"]),
        // "teamb" under any top-level path under secret/.
        ("secret/+/teamb", &["secret/foo/teamb", "secret/bar/teamb"], &["secret/foo/bar/teamb", "secret/teamb"]),
        ("+/foo/+/teamb", &["secret/foo/bar/teamb", "bar/foo/lala/teamb"], &["secret/foo/teamb", "foo/bar/teamb"]),
    ];
    for (pattern, allowed, denied) in cases {
        let acl = acl(&[&rule(pattern, READ)]);
        for path in *allowed {
            assert!(acl.allows(path, READ), "{pattern} should match {path}");
        }
        for path in *denied {
            assert!(!acl.allows(path, READ), "{pattern} should not match {path}");
            assert_eq!(acl.capabilities(path), NONE);
        }
    }
}

#[test]
fn glob_is_a_prefix_match_at_the_end_only() {
    let acl = acl(&[&rule("secret/*", READ)]);
    for path in ["secret/", "secret/a", "secret/a/b", "secret/a/b/"] {
        assert!(acl.allows(path, READ), "{path}");
    }
    for path in ["secret", "secrets", "secrets/a", "other/secret/a", ""] {
        assert!(!acl.allows(path, READ), "{path}");
    }
    let acl = self::acl(&[&rule("secret*", READ)]);
    for path in ["secret", "secrets", "secret/", "secret/a/b", "secret-x"] {
        assert!(acl.allows(path, READ), "{path}");
    }
    assert!(!acl.allows("secre", READ));
    let acl = self::acl(&[&rule("*", LIST)]);
    for path in ["", "a", "a/b/c", "/"] {
        assert!(acl.allows(path, LIST), "{path:?}");
    }
}

#[test]
fn plus_matches_exactly_one_non_empty_segment() {
    let acl = acl(&[&rule("secret/+/x", READ)]);
    assert!(acl.allows("secret/a/x", READ));
    assert!(acl.allows("secret/a-b.c/x", READ));
    for path in ["secret//x", "secret/x", "secret/a/b/x", "secret/a/x/", "secret/a/xy", "secret/a/x/y"] {
        assert!(!acl.allows(path, READ), "{path}");
    }
    let acl = self::acl(&[&rule("secret/+", READ)]);
    assert!(acl.allows("secret/a", READ));
    for path in ["secret/", "secret", "secret/a/", "secret/a/b"] {
        assert!(!acl.allows(path, READ), "{path}");
    }
    let acl = self::acl(&[&rule("+", READ)]);
    assert!(acl.allows("a", READ));
    assert!(!acl.allows("", READ) && !acl.allows("a/", READ) && !acl.allows("a/b", READ));
    // `+` then a glob: one segment, then anything.
    let acl = self::acl(&[&rule("secret/+/*", READ), &rule("kv/+/conf*", LIST)]);
    for path in ["secret/a/", "secret/a/b", "secret/a/b/c"] {
        assert!(acl.allows(path, READ), "{path}");
    }
    for path in ["secret/a", "secret//b", "secret/"] {
        assert!(!acl.allows(path, READ), "{path}");
    }
    for path in ["kv/a/conf", "kv/a/config", "kv/a/config/x"] {
        assert!(acl.allows(path, LIST), "{path}");
    }
    assert!(!acl.allows("kv/a/con", LIST) && !acl.allows("kv/a/b/config", LIST));
}

/// Each case: the patterns present (each granting a distinct set of
/// capabilities), a path, and the pattern that must decide it.
#[test]
fn vault_priority_rules() {
    let cases: &[(&[&str], &str, &str)] = &[
        // An exact pattern always wins.
        (&["secret/*", "secret/foo"], "secret/foo", "secret/foo"),
        (&["secret/*", "secret/foo"], "secret/food", "secret/*"),
        (&["secret/a*", "secret/ab"], "secret/ab", "secret/ab"),
        (&["secret/a*", "secret/ab"], "secret/abc", "secret/a*"),
        (&["+/+/+", "*", "a/b/c"], "a/b/c", "a/b/c"),
        // 1. The first wildcard occurs earlier: lower priority.
        (&["secret/+/bar", "secret/foo/*"], "secret/foo/bar", "secret/foo/*"),
        (&["foo/a*", "foo/+"], "foo/ab", "foo/a*"),
        (&["foo/bar/+/baz", "foo/+/bar/baz"], "foo/bar/bar/baz", "foo/bar/+/baz"),
        (&["+/foo", "bar/*"], "bar/foo", "bar/*"),
        (&["secret/*", "secret/foo/*"], "secret/foo/x", "secret/foo/*"),
        (&["*", "secret/*"], "secret/x", "secret/*"),
        (&["*", "secret/*"], "other", "*"),
        // 2. Ends in `*` while the other does not: lower priority.
        (&["foo/+/bar", "foo/+/ba*"], "foo/x/bar", "foo/+/bar"),
        (&["foo/+", "foo/*"], "foo/x", "foo/+"),
        (&["secret/+/x", "secret/*"], "secret/a/x", "secret/+/x"),
        // 3. More `+` segments: lower priority ("secret/+/*" loses to "secret/*").
        (&["secret/*", "secret/+/*"], "secret/a/b", "secret/*"),
        (&["a/+/b/*", "a/+/+/*"], "a/x/b/y", "a/+/b/*"),
        (&["a/+/b", "a/+/+"], "a/x/b", "a/+/b"),
        // 4. Shorter: lower priority.
        (&["foo/+/bar/ba*", "foo/+/bar/b*"], "foo/x/bar/baz", "foo/+/bar/ba*"),
        (&["secret/a*", "secret/ab*"], "secret/abc", "secret/ab*"),
        // 5. Lexicographically smaller: lower priority.
        (&["a/+/x/+", "a/+/+/y"], "a/q/x/y", "a/+/x/+"),
    ];
    for (patterns, path, winner) in cases {
        // Pattern i grants capability set i + 1: distinct, never empty, never deny.
        let grant = |i: usize| Capabilities::from_bits(i as u8 + 1).unwrap();
        let texts: Vec<String> = patterns.iter().enumerate().map(|(i, p)| rule(p, grant(i))).collect();
        let expected = grant(patterns.iter().position(|p| p == winner).unwrap());
        // One policy or one policy per pattern, in both orders: same answer.
        let one = texts.concat();
        let reversed: Vec<&str> = texts.iter().rev().map(String::as_str).collect();
        for acl in [
            acl(&[&one]),
            acl(&texts.iter().map(String::as_str).collect::<Vec<_>>()),
            acl(&reversed),
            acl(&[&reversed.concat()]),
        ] {
            assert_eq!(acl.capabilities(path), expected, "{patterns:?} on {path}: {winner} should win");
        }
    }
}

#[test]
fn only_the_best_match_counts() {
    // A glob's deny does not reach a more specific grant, and a broad grant does
    // not leak into a more specific pattern that grants less.
    let acl =
        acl(&[&rule("secret/*", DENY), &rule("secret/app", READ), &rule("kv/*", READ | LIST), &rule("kv/x/*", LIST)]);
    assert!(acl.allows("secret/app", READ));
    assert!(!acl.allows("secret/other", READ));
    assert!(acl.allows("kv/y", READ));
    assert!(!acl.allows("kv/x/y", READ));
    assert!(acl.allows("kv/x/y", LIST));
}

#[test]
fn same_pattern_in_several_policies_unions() {
    let acl = acl(&[&rule("database/creds/app", READ), &rule("database/creds/app", UPDATE), &rule("kv/+/x", LIST)]);
    assert_eq!(acl.capabilities("database/creds/app"), READ | UPDATE);
    assert!(acl.allows("database/creds/app", READ | UPDATE));
    // Twice in one policy, and for a wildcard pattern.
    let acl = self::acl(&[&(rule("kv/+/x", LIST) + &rule("kv/+/x", READ)), &rule("kv/+/x", SUDO)]);
    assert_eq!(acl.capabilities("kv/a/x"), READ | LIST | SUDO);
}

#[test]
fn deny_in_the_union_denies_everything() {
    for pattern in ["secret/foo", "secret/*", "secret/+", "secret/fo*"] {
        let acl = acl(&[&rule(pattern, Capabilities::ALL_GRANTS), &rule(pattern, DENY)]);
        assert_eq!(acl.capabilities("secret/foo"), DENY, "{pattern}");
        for c in EACH {
            assert!(!acl.allows("secret/foo", c), "{pattern} {c}");
        }
        // Deny together with other capabilities in one rule is still just deny.
        let acl = self::acl(&[&rule(pattern, READ | DENY)]);
        assert_eq!(acl.capabilities("secret/foo"), DENY);
        assert!(!acl.allows("secret/foo", READ));
    }
}

#[test]
fn token_style_example() {
    let acl = acl(&[r#"path "database/creds/app-readonly" { capabilities = ["read"] }"#]);
    assert!(acl.allows("database/creds/app-readonly", READ));
    assert_eq!(acl.capabilities("database/creds/app-readonly"), READ);
    assert!(!acl.allows("database/creds/app-readonly", UPDATE));
    for path in ["database/creds/other", "database/config/x", "sys/policy/x", "database/creds/app-readonly/x"] {
        assert_eq!(acl.capabilities(path), NONE, "{path}");
        for c in EACH {
            assert!(!acl.allows(path, c), "{path} {c}");
        }
    }
    // No policies at all: deny everything.
    let empty = Acl::new([]);
    assert_eq!(empty.capabilities("database/creds/app-readonly"), NONE);
    assert!(!empty.allows("anything", READ));
}

#[test]
fn root_acl_grants_everything() {
    let root = Acl::root();
    assert!(root.is_root());
    for path in ["", "sys/leases/revoke-force/x", "database/creds/a"] {
        assert_eq!(root.capabilities(path), Capabilities::ALL_GRANTS);
        assert!(root.allows(path, Capabilities::ALL_GRANTS));
        assert!(root.allows(path, SUDO | UPDATE));
    }
    assert!(!acl(&[DEFAULT_POLICY_TEXT]).is_root());
}

#[test]
fn default_policy() {
    assert_eq!(ROOT_POLICY, "root");
    assert_eq!(DEFAULT_POLICY, "default");
    let p = parse_policy(DEFAULT_POLICY, DEFAULT_POLICY_TEXT).unwrap();
    let acl = Acl::new([&p]);
    assert_eq!(acl.capabilities("auth/token/lookup-self"), READ);
    for path in [
        "auth/token/renew-self",
        "auth/token/revoke-self",
        "sys/capabilities-self",
        "sys/leases/renew",
        "sys/leases/lookup",
    ] {
        assert_eq!(acl.capabilities(path), UPDATE, "{path}");
    }
    for path in ["auth/token/create", "sys/leases/revoke", "database/creds/app", "sys/leases/lookup/database"] {
        assert_eq!(acl.capabilities(path), NONE, "{path}");
    }
}

// ---- Parsing ----

#[test]
fn hcl_with_comments_and_several_blocks() {
    let text = r#"
        # hash comment
        // slash comment
        /* block
           comment */
        path "database/creds/app" {
          capabilities = ["read"] # trailing comment
        }

        path "sys/leases/+" { capabilities = ["update", "read",] }
        path "/secret/*" {
          capabilities = [
            "create",
            "list",
          ]
        }
        name = "ignored, as Vault does"
    "#;
    let p = parse_policy("p", text).unwrap();
    assert_eq!(p.name, "p");
    assert_eq!(
        p.rules,
        vec![
            PathRule { pattern: "database/creds/app".into(), capabilities: READ },
            PathRule { pattern: "sys/leases/+".into(), capabilities: READ | UPDATE },
            // A leading `/` is stripped, as in Vault.
            PathRule { pattern: "secret/*".into(), capabilities: CREATE | LIST },
        ]
    );
    assert!(parse_policy("empty", "").unwrap().rules.is_empty());
    assert!(parse_policy("empty", "# only a comment\n").unwrap().rules.is_empty());
}

#[test]
fn json_form_matches_hcl_form() {
    let hcl = r#"
        path "database/creds/app" { capabilities = ["read"] }
        path "secret/*" { capabilities = ["read", "list"] }
        path "secret/+/admin" { capabilities = ["deny"] }
        path "kv/+/conf*" { capabilities = ["create", "update", "sudo"] }
        path "kv/a/config" { capabilities = ["delete"] }
        path "kv/a/config" { capabilities = ["read"] }
    "#;
    let json = r#"  {
        "path": {
            "database/creds/app": {"capabilities": ["read"]},
            "secret/*": {"capabilities": ["read", "list"]},
            "secret/+/admin": {"capabilities": ["deny"]},
            "kv/+/conf*": {"capabilities": ["create", "update", "sudo"]},
            "kv/a/config": {"capabilities": ["delete"]},
            "kv/a/config": {"capabilities": ["read"]}
        }
    }"#;
    // HCL's JSON form also allows lists of objects.
    let json_lists = r#"{"path": [
        {"database/creds/app": [{"capabilities": ["read"]}]},
        {"secret/*": {"capabilities": ["read", "list"]}, "secret/+/admin": {"capabilities": ["deny"]}},
        {"kv/+/conf*": {"capabilities": ["create", "update", "sudo"]}},
        {"kv/a/config": [{"capabilities": ["delete"]}, {"capabilities": ["read"]}]}
    ], "name": "ignored"}"#;
    let from_hcl = policy(hcl);
    let from_json = policy(json);
    assert_eq!(from_hcl, from_json, "duplicate keys in JSON must not be dropped");
    assert_eq!(from_hcl, policy(json_lists));
    let (a, b) = (Acl::new([&from_hcl]), Acl::new([&from_json]));
    for path in [
        "database/creds/app",
        "database/creds/other",
        "secret/x",
        "secret/x/admin",
        "secret/x/admin/y",
        "kv/a/config",
        "kv/b/config",
        "kv/b/conf/x",
        "kv/b/c",
    ] {
        assert_eq!(a.capabilities(path), b.capabilities(path), "{path}");
    }
    assert_eq!(a.capabilities("secret/x/admin"), DENY);
    assert_eq!(a.capabilities("kv/a/config"), READ | DELETE);
}

#[test]
fn json_errors() {
    let e = err(r#"{"path": {"secret/x": {"capabilities": ["read"], "allowed_parameters": {"*": []}}}}"#);
    assert!(matches!(e, PolicyError::UnsupportedAttribute { .. }), "{e:?}");
    assert!(e.to_string().contains("\"allowed_parameters\" is not supported"), "{e}");
    let e = err(r#"{"paths": {}}"#);
    assert!(matches!(e, PolicyError::UnknownTopLevel { .. }), "{e:?}");
    assert!(e.to_string().starts_with("unexpected key \"paths\" at the top level"), "{e}");
    let e = err(r#"{"path": {"secret/x": {"capabilities": ["reed"]}}}"#);
    assert!(matches!(e, PolicyError::UnknownCapability { .. }), "{e:?}");
    let e = err(r#"{"path": {"secret/x": {"capabilities": "read"}}}"#);
    assert!(matches!(e, PolicyError::CapabilitiesNotList { .. }), "{e:?}");
    let e = err(r#"{"path": {"secret/x": "read"}}"#);
    assert!(e.to_string().contains(r#"path "secret/x": the rule must be an object"#), "{e}");
    let e = err(r#"{"path": "secret/x"}"#);
    assert!(matches!(e, PolicyError::Json { .. }), "{e:?}");
    let e = err(r#"{"path": {"secret/x": {"capabilities": ["read"]}"#);
    assert!(matches!(e, PolicyError::Json { .. }), "{e:?}");
    assert!(e.to_string().starts_with("policy is not valid JSON: "), "{e}");
    let e = err(r#"{"path": {"secret/x": {}}}"#);
    assert!(matches!(e, PolicyError::MissingCapabilities { .. }), "{e:?}");
    let e = err(r#"{"path": {"a/*/b": {"capabilities": ["read"]}}}"#);
    assert!(matches!(e, PolicyError::MisplacedGlob { .. }), "{e:?}");
    // Hostile nesting is an error, not a stack overflow.
    let deep = format!("{{\"path\": {}{}}}", "[".repeat(100_000 / 2), "]".repeat(100_000 / 2));
    assert!(matches!(parse_policy("x", &deep[..POLICY_TEXT_BYTES_MAX]), Err(PolicyError::Json { .. })));
}

#[test]
fn unknown_capability_lists_the_valid_ones() {
    let e = err(&rule("secret/x", READ).replace("\"read\"", "\"reed\""));
    assert!(matches!(e, PolicyError::UnknownCapability { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        concat!(
            r#"path "secret/x": unknown capability "reed"; "#,
            "valid capabilities are: create, read, update, delete, list, sudo, deny"
        )
    );
    // Vault's newer capabilities are not lessor's.
    assert!(matches!(err(r#"path "a" { capabilities = ["patch"] }"#), PolicyError::UnknownCapability { .. }));
    assert!(matches!(err(r#"path "a" { capabilities = ["READ"] }"#), PolicyError::UnknownCapability { .. }));
}

#[test]
fn glob_only_at_the_end() {
    for pattern in ["secret/*/x", "*/x", "secret/**", "a*b", "*a*"] {
        let e = err(&rule(pattern, READ));
        assert!(matches!(e, PolicyError::MisplacedGlob { .. }), "{pattern}: {e:?}");
        assert_eq!(
            e.to_string(),
            format!("path {pattern:?}: `*` is only allowed at the end of a path pattern; use `+` for one segment")
        );
    }
    for pattern in ["secret/+x", "secret/x+", "a+/b", "secret/+*", "+*", "a/++/b"] {
        let e = err(&rule(pattern, READ));
        assert!(matches!(e, PolicyError::MisplacedPlus { .. }), "{pattern}: {e:?}");
        assert!(e.to_string().contains("`+` must be a whole path segment"), "{e}");
    }
}

#[test]
fn capabilities_must_be_present_and_non_empty() {
    let e = err(r#"path "secret/x" { capabilities = [] }"#);
    assert!(matches!(e, PolicyError::EmptyCapabilities { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        concat!(
            r#"path "secret/x": capabilities is empty; "#,
            r#"list at least one of: create, read, update, delete, list, sudo, deny (use ["deny"] to forbid the path)"#
        )
    );
    let e = err(r#"path "secret/x" {}"#);
    assert!(matches!(e, PolicyError::MissingCapabilities { .. }), "{e:?}");
    assert!(e.to_string().starts_with(r#"path "secret/x": missing `capabilities = [...]`"#), "{e}");
    let e = err(r#"path "secret/x" { capabilities = "read" }"#);
    assert!(matches!(e, PolicyError::CapabilitiesNotList { .. }), "{e:?}");
    let e = err(r#"path "secret/x" { capabilities = [read] }"#);
    assert!(matches!(e, PolicyError::CapabilitiesNotList { .. }), "{e:?}");
    // HCL itself refuses a repeated attribute; JSON gets the same check here.
    let e = err("path \"secret/x\" {\n capabilities = [\"read\"]\n capabilities = [\"list\"]\n}");
    assert!(matches!(e, PolicyError::Hcl { .. }) && e.to_string().contains("redefined attribute"), "{e:?}");
    let e = err(r#"{"path": {"secret/x": {"capabilities": ["read"], "capabilities": ["list"]}}}"#);
    assert!(matches!(e, PolicyError::DuplicateCapabilities { .. }), "{e:?}");
    assert_eq!(e.to_string(), r#"path "secret/x": capabilities is given twice in one block; merge the two lists"#);
}

#[test]
fn other_path_attributes_are_refused_not_ignored() {
    let attributes = [
        r#"allowed_parameters = { "*" = [] }"#,
        r#"required_parameters = ["ttl"]"#,
        r#"denied_parameters = { "ttl" = [] }"#,
        r#"min_wrapping_ttl = "1s""#,
        r#"max_wrapping_ttl = "90s""#,
        r#"policy = "read""#,
        r#"mfa_methods = ["x"]"#,
        r#"allowed_parameters { ttl = [] }"#,
    ];
    for attribute in attributes {
        let name = attribute.split([' ', '=']).next().unwrap();
        for text in [
            format!("path \"secret/x\" {{\n  capabilities = [\"read\"]\n  {attribute}\n}}"),
            format!("path \"secret/x\" {{\n  {attribute}\n  capabilities = [\"read\"]\n}}"),
        ] {
            let e = err(&text);
            assert!(matches!(e, PolicyError::UnsupportedAttribute { .. }), "{text}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!(
                    "path \"secret/x\": {name:?} is not supported: lessor supports only `capabilities` in a path \
                     block, and silently ignoring a restriction would widen access; remove it"
                )
            );
        }
    }
}

#[test]
fn unknown_top_level_is_refused() {
    let e = err(r#"paths "secret/x" { capabilities = ["read"] }"#);
    assert!(matches!(e, PolicyError::UnknownTopLevel { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        concat!(
            r#"unexpected block "paths" at the top level of the policy; "#,
            r#"a policy holds only `path "<pattern>" { capabilities = [...] }` blocks"#
        )
    );
    let e = err(r#"capabilities = ["read"]"#);
    assert!(e.to_string().starts_with(r#"unexpected attribute "capabilities" at the top level"#), "{e}");
    assert!(matches!(err("name = 3"), PolicyError::UnknownTopLevel { .. }));
    let e = err(r#"path { capabilities = ["read"] }"#);
    assert_eq!(e, PolicyError::PathLabels { labels: 0 });
    assert!(e.to_string().contains(r#"needs exactly one quoted pattern, as in `path "database/creds/app" { ... }`"#));
    assert_eq!(err(r#"path "a" "b" { capabilities = ["read"] }"#), PolicyError::PathLabels { labels: 2 });
    for pattern in ["", "/"] {
        let e = err(&rule(pattern, READ));
        assert_eq!(e, PolicyError::EmptyPattern);
        assert!(e.to_string().starts_with("a path pattern is empty"));
    }
    let e = err(&rule("secret/\nx", READ));
    assert!(matches!(e, PolicyError::ControlCharacter { .. }), "{e:?}");
    assert_eq!(e.to_string(), r#"path "secret/\nx": a path pattern cannot contain control characters"#);
    let deep = |n: usize| vec!["+"; n].join("/");
    assert_eq!(policy(&rule(&deep(POLICY_PATTERN_SEGMENTS_MAX), READ)).rules.len(), 1);
    let e = err(&rule(&deep(POLICY_PATTERN_SEGMENTS_MAX + 1), READ));
    assert!(matches!(e, PolicyError::PatternTooDeep { segments: 65, .. }), "{e:?}");
    assert!(e.to_string().ends_with(": 65 segments, over the limit of 64"), "{e}");
}

#[test]
fn syntax_errors_name_a_position_and_do_not_echo_the_input() {
    let e = err("path \"secret/x\" {\n  capabilities = [\"read\"\n}");
    assert!(matches!(e, PolicyError::Hcl { .. }), "{e:?}");
    assert!(e.to_string().starts_with("policy is not valid HCL: line "), "{e}");
    let long = format!("path \"secret/x\" {{ capabilities = [\"read\"] }} {}", "x!".repeat(20_000));
    let e = err(&long);
    assert!(matches!(e, PolicyError::Hcl { .. }), "{e:?}");
    assert!(e.to_string().len() < 300, "{e}");
    // Long patterns, capabilities and attribute names are clipped.
    for text in [
        rule(&format!("{}*{}", "a".repeat(5_000), "b".repeat(5_000)), READ),
        format!("path \"a\" {{ capabilities = [\"{}\"] }}", "r".repeat(10_000)),
        format!("path \"a\" {{ {} = 1 }}", "x".repeat(10_000)),
        format!("{} \"a\" {{ }}", "y".repeat(10_000)),
        format!("{{\"{}\": 1}}", "z".repeat(10_000)),
    ] {
        let e = err(&text);
        assert!(e.to_string().len() < 400, "{} bytes: {e}", e.to_string().len());
        assert!(format!("{e:?}").len() < 400);
    }
    // Hostile nesting is an error, not a stack overflow.
    let deep = format!("path \"a\" {{ capabilities = {}{} }}", "[".repeat(5_000), "]".repeat(5_000));
    assert!(matches!(err(&deep), PolicyError::Hcl { .. }));
}

/// hcl-rs backtracks exponentially over operators nested in objects; a policy
/// never needs an expression, so they are refused before it parses.
#[test]
fn expressions_are_refused_before_parsing() {
    let cases = [
        (r#"path "a" { capabilities = ["read"] } x = 1 * 2"#, "line 1, column 44: '*' outside quotes"),
        ("path \"a\" {\n  capabilities = [\"re\" + \"ad\"]\n}", "line 2, column 24: '+' outside quotes"),
        ("x = (1)", "line 1, column 5: '(' outside quotes"),
        ("x = <<EOF\nread\nEOF\n", "line 1, column 5: '<' outside quotes"),
        ("x = a-b", "line 1, column 6: '-' outside quotes"),
        (r#"path "a" { capabilities = ["${x}"] }"#, "line 1, column 29: `${` templates are not supported in a policy"),
        (r#"path "%{if x}a%{endif}" { }"#, "line 1, column 7: `%{` templates are not supported in a policy"),
        (&format!("x = {}{}", "[".repeat(17), "]".repeat(17)), "line 1, column 21: nested more than 16 levels deep"),
    ];
    for (text, message) in cases {
        let e = err(text);
        assert!(matches!(e, PolicyError::Hcl { .. }), "{text}: {e:?}");
        assert!(e.to_string().starts_with(&format!("policy is not valid HCL: {message}")), "{text}: {e}");
    }
    // Operators, brackets and templates inside quotes and comments are fine.
    let p = policy(concat!(
        "# a * b { [ ( ${x}\n",
        "/* - + ! < > ) */\n",
        "path \"a-b.c/{{identity.entity.id}}/+/x*\" { // (one) [two]\n",
        "  capabilities = [\"read\"] # \"${nope}\"\n",
        "}\n",
    ));
    assert_eq!(p.rules[0].pattern, "a-b.c/{{identity.entity.id}}/+/x*");
    // The fuzzer's one-minute input, and a 64 KiB version of the same shape.
    let start = std::time::Instant::now();
    for text in [
        "p=p*t*{p*t*{B!=0*{BB*t*{B!=p*{B!=p*{B!=p*{B!=p*{t*t*{B!=t*{Bt*t*{Bt*t*{B*t*{B!=p*{B!=p*{B!=p*{B!=p*",
        &format!("p={}", "{t*t*".repeat(13_000)),
    ] {
        assert!(matches!(err(text), PolicyError::Hcl { .. }));
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(1), "{:?}", start.elapsed());
}

#[test]
fn size_limits() {
    assert_eq!(POLICY_TEXT_BYTES_MAX, 64 * 1024);
    assert_eq!(POLICY_PATH_RULES_MAX, 1_000);
    let base = rule("secret/x", READ);
    let pad = |len: usize| format!("{base}#{}", "x".repeat(len - base.len() - 1));
    assert_eq!(policy(&pad(POLICY_TEXT_BYTES_MAX)).rules.len(), 1);
    let e = err(&pad(POLICY_TEXT_BYTES_MAX + 1));
    assert_eq!(e, PolicyError::TextTooLarge { bytes: POLICY_TEXT_BYTES_MAX + 1 });
    assert_eq!(e.to_string(), "policy text is 65537 bytes, over the limit of 65536; split it into several policies");

    let rules =
        |n: usize| (0..n).map(|i| format!("path \"p/{i}\" {{ capabilities = [\"read\"] }}\n")).collect::<String>();
    assert_eq!(policy(&rules(POLICY_PATH_RULES_MAX)).rules.len(), POLICY_PATH_RULES_MAX);
    let e = err(&rules(POLICY_PATH_RULES_MAX + 1));
    assert_eq!(e, PolicyError::TooManyRules);
    assert_eq!(e.to_string(), "policy has more than 1000 path rules; split it into several policies");
    let json = format!(
        "{{\"path\": {{{}}}}}",
        (0..=POLICY_PATH_RULES_MAX)
            .map(|i| format!("\"p/{i}\": {{\"capabilities\": [\"read\"]}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(err(&json), PolicyError::TooManyRules);
}

#[test]
fn policy_names() {
    for name in ["a", "app-read", "App_Read.v2", &"n".repeat(POLICY_NAME_BYTES_MAX), "default", "root"] {
        assert_eq!(validate_policy_name(name), Ok(()), "{name}");
    }
    assert_eq!(validate_policy_name(""), Err(PolicyError::EmptyName));
    assert_eq!(PolicyError::EmptyName.to_string(), "policy name is empty");
    let e = validate_policy_name(&"n".repeat(129)).unwrap_err();
    assert_eq!(e, PolicyError::NameTooLong { bytes: 129 });
    assert_eq!(e.to_string(), "policy name is 129 bytes, over the limit of 128");
    for (name, c) in [("a b", ' '), ("a/b", '/'), ("café", 'é'), ("a*", '*'), ("a\n", '\n')] {
        let e = validate_policy_name(name).unwrap_err();
        assert_eq!(e, PolicyError::InvalidNameCharacter { name: format!("{name:?}"), character: c });
        assert_eq!(
            e.to_string(),
            format!("policy name {name:?} contains {c:?}; use only letters, digits, `_`, `-` and `.`")
        );
    }
    assert_eq!(normalize_policy_name("App-Read"), "app-read");
    assert_eq!(check_policy_writable("Dev.Team"), Ok("dev.team".to_string()));
    assert_eq!(check_policy_writable("default"), Ok("default".to_string()));
    for root in ["root", "ROOT", "Root"] {
        let e = check_policy_writable(root).unwrap_err();
        assert_eq!(e, PolicyError::RootPolicy { action: "written" });
        assert_eq!(
            e.to_string(),
            "the \"root\" policy cannot be written: it is built in and grants every capability on every path"
        );
        assert_eq!(check_policy_deletable(root), Err(PolicyError::RootPolicy { action: "deleted" }));
    }
    let e = check_policy_deletable("Default").unwrap_err();
    assert_eq!(e, PolicyError::DeleteDefaultPolicy);
    assert_eq!(
        e.to_string(),
        "the \"default\" policy cannot be deleted: it is built in; write it to change what it grants"
    );
    assert_eq!(check_policy_deletable("app"), Ok("app".to_string()));
    assert!(matches!(check_policy_writable("a b"), Err(PolicyError::InvalidNameCharacter { .. })));
}

// ---- Properties, against a naive model of Vault's rules ----

mod model {
    use super::*;

    fn is_wildcard(pattern: &str) -> bool {
        pattern.ends_with('*') || pattern.split('/').any(|s| s == "+")
    }

    /// Character by character: `+` takes one non-empty segment, a final `*` the rest.
    pub fn matches(pattern: &[u8], path: &[u8]) -> bool {
        match pattern.first() {
            None => path.is_empty(),
            Some(b'*') => true,
            Some(b'+') => {
                let n = path.iter().position(|&c| c == b'/').unwrap_or(path.len());
                n > 0 && matches(&pattern[1..], &path[n..])
            }
            Some(c) => path.first() == Some(c) && matches(&pattern[1..], &path[1..]),
        }
    }

    /// Vault's `less` from acl.go: whether `p1` has lower priority than `p2`.
    fn less(p1: &str, p2: &str) -> bool {
        let describe = |p: &str| {
            let wc = p.strip_suffix('*').unwrap_or(p);
            let first = if p.split('/').any(|s| s == "+") { p.find('+').unwrap() } else { wc.len() };
            (first, p.ends_with('*'), p.split('/').filter(|s| *s == "+").count(), wc.to_string())
        };
        let (f1, g1, w1, s1) = describe(p1);
        let (f2, g2, w2, s2) = describe(p2);
        if f1 != f2 {
            return f1 < f2;
        }
        if g1 != g2 {
            return g1;
        }
        if w1 != w2 {
            return w1 > w2;
        }
        if s1.len() != s2.len() {
            return s1.len() < s2.len();
        }
        s1 < s2
    }

    /// The pattern deciding `path`, by brute force.
    pub fn best<'a>(policies: &'a [Policy], path: &str) -> Option<&'a str> {
        let patterns = policies.iter().flat_map(|p| &p.rules).map(|r| r.pattern.as_str());
        if let Some(exact) = patterns.clone().find(|p| !is_wildcard(p) && *p == path) {
            return Some(exact);
        }
        patterns.filter(|p| is_wildcard(p) && matches(p.as_bytes(), path.as_bytes())).fold(None, |best, p| match best {
            Some(b) if !less(b, p) => Some(b),
            _ => Some(p),
        })
    }

    pub fn capabilities(policies: &[Policy], path: &str) -> Capabilities {
        let Some(best) = best(policies, path) else { return NONE };
        let union: Capabilities =
            policies.iter().flat_map(|p| &p.rules).filter(|r| r.pattern == best).map(|r| r.capabilities).collect();
        if union.contains(DENY) { DENY } else { union }
    }
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let segment = prop::sample::select(vec!["a", "b", "ab", "+"]);
    (prop::collection::vec(segment, 0..=3), 0..4usize).prop_map(|(segments, suffix)| {
        if segments.is_empty() {
            return "*".to_string();
        }
        let mut p = segments.join("/");
        match suffix {
            1 if p.ends_with('+') => p.push_str("/*"),
            1 => p.push('*'),
            2 => p.push_str("/*"),
            3 => p.push('/'),
            _ => {}
        }
        p
    })
}

fn path_strategy() -> impl Strategy<Value = String> {
    let first = prop::sample::select(vec!["a", "b", "ab", "abc", "x"]);
    let segment = prop::sample::select(vec!["a", "b", "ab", "abc", "x", ""]);
    (first, prop::collection::vec(segment, 0..=3))
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect::<Vec<_>>().join("/"))
}

fn caps_strategy() -> impl Strategy<Value = Capabilities> {
    // Deny sometimes, grants mostly.
    (1u8..=127).prop_map(|bits| Capabilities::from_bits(if bits > 100 { bits } else { bits & 0x3f | 1 }).unwrap())
}

fn policies_strategy() -> impl Strategy<Value = Vec<Policy>> {
    let rules = prop::collection::vec((pattern_strategy(), caps_strategy()), 0..6);
    prop::collection::vec(rules, 1..5).prop_map(|policies| {
        policies
            .into_iter()
            .enumerate()
            .map(|(i, rules)| {
                // Through the parser, so the patterns are ones it accepts.
                let text: String = rules.iter().map(|(p, c)| rule(p, *c)).collect();
                parse_policy(&format!("p{i}"), &text).unwrap()
            })
            .collect()
    })
}

/// A path the pattern matches: each `+` and the `*` filled in.
fn instantiate(pattern: &str, fill: &[&str], tail: &str) -> String {
    let body = pattern.strip_suffix('*');
    let mut path: Vec<&str> = Vec::new();
    for (i, segment) in body.unwrap_or(pattern).split('/').enumerate() {
        path.push(if segment == "+" { fill[i % fill.len()] } else { segment });
    }
    let mut path = path.join("/");
    if body.is_some() {
        path.push_str(tail);
    }
    path
}

/// A deterministic shuffle of the policies and of the rules inside each.
fn shuffled(policies: &[Policy], mut seed: u64) -> Vec<Policy> {
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut out = policies.to_vec();
    for i in (1..out.len()).rev() {
        out.swap(i, next(i + 1));
    }
    for p in &mut out {
        for i in (1..p.rules.len()).rev() {
            p.rules.swap(i, next(i + 1));
        }
    }
    out
}

fn deny_policy(pattern: &str) -> Policy {
    parse_policy("deny", &rule(pattern, DENY)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The compiled ACL agrees with the brute-force model, and shuffling the
    /// policies and their rules changes nothing.
    #[test]
    fn acl_matches_the_model_in_any_order(
        policies in policies_strategy(),
        paths in prop::collection::vec(path_strategy(), 1..12),
        seed in 1u64..,
    ) {
        let acl = Acl::new(&policies);
        let shuffled = shuffled(&policies, seed);
        let acl_shuffled = Acl::new(&shuffled);
        for path in &paths {
            let expected = model::capabilities(&policies, path);
            prop_assert_eq!(acl.capabilities(path), expected, "path {}", path);
            prop_assert_eq!(acl_shuffled.capabilities(path), expected, "path {} shuffled", path);
            for c in EACH {
                prop_assert_eq!(acl.allows(path, c), !expected.contains(DENY) && expected.contains(c));
            }
        }
    }

    /// A policy denying a path exactly denies every capability there, wherever it
    /// is added, and changes nothing elsewhere.
    #[test]
    fn exact_deny_denies_everything(
        policies in policies_strategy(),
        path in path_strategy(),
        others in prop::collection::vec(path_strategy(), 0..8),
        at in any::<prop::sample::Index>(),
    ) {
        let before = Acl::new(&policies);
        let mut with_deny = policies.clone();
        with_deny.insert(at.index(policies.len() + 1), deny_policy(&path));
        let after = Acl::new(&with_deny);
        prop_assert_eq!(after.capabilities(&path), DENY);
        for c in EACH {
            prop_assert!(!after.allows(&path, c));
        }
        prop_assert!(!after.allows(&path, Capabilities::ALL_GRANTS));
        for other in others.iter().filter(|o| **o != path) {
            prop_assert_eq!(after.capabilities(other), before.capabilities(other), "path {}", other);
        }
    }

    /// Adding `deny` on a pattern present in the set — to any policy, at any
    /// position — denies exactly the paths that pattern decides; order never
    /// matters.
    #[test]
    fn deny_on_a_present_pattern_denies_what_it_decides(
        policies in policies_strategy().prop_filter("needs a rule", |p| p.iter().any(|p| !p.rules.is_empty())),
        pick in any::<prop::sample::Index>(),
        target in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
        fills in prop::collection::vec(prop::sample::select(vec!["a", "b", "x", "ab"]), 1..4),
        tails in prop::collection::vec(prop::sample::select(vec!["", "x", "/", "/a", "b/c", "a/b"]), 1..4),
        paths in prop::collection::vec(path_strategy(), 0..8),
        seed in 1u64..,
    ) {
        let patterns: Vec<&str> = policies.iter().flat_map(|p| &p.rules).map(|r| r.pattern.as_str()).collect();
        let pattern = patterns[pick.index(patterns.len())].to_string();
        let mut probes = paths.clone();
        for tail in &tails {
            probes.push(instantiate(&pattern, &fills, tail));
        }
        let before = Acl::new(&policies);

        let mut with_deny = policies.clone();
        let denial = PathRule { pattern: pattern.clone(), capabilities: DENY };
        let t = target.index(with_deny.len() + 1);
        if t == with_deny.len() {
            with_deny.push(Policy { name: "deny".into(), rules: vec![denial] });
        } else {
            let rules = &mut with_deny[t].rules;
            rules.insert(position.index(rules.len() + 1), denial);
        }
        let after = Acl::new(&with_deny);
        let after_shuffled = Acl::new(&shuffled(&with_deny, seed));

        let mut decided = 0;
        for path in &probes {
            let best = model::best(&policies, path);
            if best == Some(pattern.as_str()) {
                decided += 1;
                prop_assert_eq!(after.capabilities(path), DENY, "path {} decided by {}", path, pattern);
                for c in EACH {
                    prop_assert!(!after.allows(path, c));
                }
            } else {
                prop_assert_eq!(after.capabilities(path), before.capabilities(path), "path {}", path);
            }
            prop_assert_eq!(after_shuffled.capabilities(path), after.capabilities(path), "path {} shuffled", path);
        }
        let _ = decided;
    }
}
