//! What reaches the operator's terminal, through the real binary (no PostgreSQL
//! needed): control characters from any caller are escaped in every table and
//! text renderer while JSON output stays valid JSON holding the same strings;
//! arguments that are not UTF-8 get an error naming them; a closed stdout ends
//! the output quietly.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lessor_engine::request::Operation;
use serde_json::Value;

mod common;
use common::{LESSOR, command, lessor, ok, text};

fn init(dir: &Path) -> String {
    let out = ok(dir, "", &["init"]);
    out.lines().find_map(|l| l.strip_prefix("Initial Root Token: ")).unwrap().trim().to_string()
}

/// What a hostile caller puts in a path: a screen clear, a window title ending in
/// BEL, DEL, a C1 CSI, a bidi override and a zero-width space (no whitespace, so
/// nothing upstream quotes it).
const HOSTILE: &str = "x\u{1b}[2J\u{1b}]0;owned\u{7}\u{7f}\u{9b}1m\u{202e}gpj.exe\u{200b}";
/// How the CLI shows it.
const SHOWN: &str = "x\\x1b[2J\\x1b]0;owned\\x07\\x7f\\x9b1m\\u{202e}gpj.exe\\u{200b}";
/// A description that would also forge a line of a table.
const FORGING: &str = "d\u{1b}[2J\n       9  forged";

/// Characters that must never reach a terminal raw (newline only as a line end).
fn raw_control(output: &str) -> Option<char> {
    output.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    })
}

fn assert_clean(what: &str, output: &[u8]) {
    let output = std::str::from_utf8(output).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    if let Some(c) = raw_control(output) {
        panic!("{what} prints {c:?} raw:\n{output:?}");
    }
}

#[test]
fn control_characters_from_any_caller_are_escaped_in_every_renderer() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = init(dir);
    let hostile_path = format!("sys/{HOSTILE}");

    // An invalid token, through the request path: refused, and recorded.
    let out = lessor(dir, "lsr.not-a-token", &["read", &hostile_path]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean("the refusal on stderr", &out.stderr);
    // A valid token: the error names the path, escaped.
    let out = lessor(dir, &root, &["read", &hostile_path]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean("the error on stderr", &out.stderr);
    assert!(text(&out.stderr).contains("\\x1b[2J"), "{}", text(&out.stderr));
    // clap's own errors quote the argument: escaped too.
    let out = lessor(dir, &root, &["read", "p", &format!("--{HOSTILE}")]);
    assert_eq!(out.status.code(), Some(1));
    assert_clean("clap's error", &out.stderr);
    assert!(text(&out.stderr).contains("unexpected argument"), "{}", text(&out.stderr));
    // NUL cannot be an argument: it comes through the engine, with an invalid token.
    let nul_path = "sys/\0nul\u{1b}[31m";
    {
        let engine = lessor_engine::Engine::open(dir, lessor_engine::EngineOptions::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let refused = rt.block_on(engine.request("lsr.invalid", Operation::Read, nul_path, Value::Null));
        assert!(refused.is_err());
        engine.close();
    }
    // A mount whose description carries the same, and a newline.
    let description = format!("-description={HOSTILE}{FORGING}");
    ok(dir, &root, &["secrets", "enable", "-path=db", &description, "database"]);

    // audit log (table mode): no raw control byte, one line per record, the
    // escapes visible.
    let log = lessor(dir, "", &["audit", "log"]);
    assert!(log.status.success());
    assert_clean("audit log", &log.stdout);
    let log = text(&log.stdout);
    // The engine's text lines quote such a value with Rust's escapes.
    assert!(log.contains(&format!("path={:?} ", format!("sys/{HOSTILE}"))), "{log}");
    assert!(log.contains("path=\"sys/\\0nul\\u{1b}[31m\" "), "{log}");
    let jsonl: Vec<Value> = ok(dir, "", &["audit", "log", "--jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("--jsonl line is not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(log.lines().count(), jsonl.len(), "the newline did not forge a line:\n{log}");
    assert!(!log.lines().any(|l| l.starts_with("       9  forged")), "{log}");

    // --jsonl and -format=json: valid JSON, no raw control either, and the same
    // strings once parsed.
    for args in [&["audit", "log", "--jsonl"][..], &["-format=json", "audit", "log"][..]] {
        let out = lessor(dir, "", args);
        assert_clean(&format!("{args:?}"), &out.stdout);
        let paths: Vec<String> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|l| l["event"]["path"].as_str().map(str::to_string))
            .collect();
        assert_eq!(paths.iter().filter(|p| **p == hostile_path).count(), 2, "{paths:?}");
        assert!(paths.iter().any(|p| p == nul_path), "{paths:?}");
    }

    // The other renderers: secrets list (table and JSON), audit state/diff text.
    let list = lessor(dir, &root, &["secrets", "list"]);
    assert!(list.status.success());
    assert_clean("secrets list", &list.stdout);
    let shown = text(&list.stdout);
    assert!(shown.contains(&format!("{SHOWN}d\\x1b[2J\\n       9  forged")), "{shown}");
    assert_eq!(shown.lines().count(), 3, "a header, a rule and db/; no forged row:\n{shown}");
    let list = lessor(dir, &root, &["secrets", "list", "-format=json"]);
    assert_clean("secrets list -format=json", &list.stdout);
    let mounts: Value = serde_json::from_str(&text(&list.stdout)).unwrap();
    assert_eq!(mounts["db/"]["description"], format!("{HOSTILE}{FORGING}"));
    for args in [&["audit", "diff", "0", "4102444800"][..], &["audit", "state", "--at", "4102444800"][..]] {
        let out = lessor(dir, "", args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_clean(&format!("{args:?}"), &out.stdout);
    }
    // read's Key/Value table of the same mount.
    let read = lessor(dir, &root, &["read", "sys/mounts"]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_clean("read sys/mounts", &read.stdout);
}

#[test]
fn an_argument_that_is_not_utf8_is_named_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(dir.path());
    let bad = |prefix: &str| {
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\xfe");
        OsString::from_vec(bytes)
    };
    let cases: Vec<(Vec<OsString>, &str)> = vec![
        (vec!["read".into(), bad("database/creds/")], "argument 2 is not valid UTF-8"),
        (vec!["token".into(), "revoke".into(), bad("lsr.")], "argument 3 is not valid UTF-8"),
        (vec![bad("-token=lsr."), "token".into(), "lookup".into()], "argument 1 (the value of -token) is not valid"),
        (vec!["write".into(), "sys/policy/p".into(), bad("policy=")], "argument 3 is not valid UTF-8"),
    ];
    for (args, expected) in cases {
        let out = command(dir.path(), &root).args(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("Error: ") && err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("lsr."), "{args:?}: {err}");
    }
    // The token from the environment is named by its variable, never shown.
    let out = command(dir.path(), "").env("LESSOR_TOKEN", bad("lsr.")).args(["token", "lookup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("LESSOR_TOKEN is not valid UTF-8"), "{}", text(&out.stderr));
    // A directory path may be any bytes, as on any Unix tool.
    let odd = dir.path().join(OsString::from_vec(b"data-\xff".to_vec()));
    let out = Command::new(LESSOR).arg("-d").arg(&odd).arg("init").env_remove("LESSOR_DATA_DIR").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Runs lessor with stdout a pipe whose reading end is already closed.
fn with_closed_stdout(dir: &Path, token: &str, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command(dir, token).args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = init(dir);
    for i in 0..40 {
        ok(dir, &root, &["write", &format!("sys/policy/p{i}"), "policy=path \"x\" { capabilities = [\"read\"] }"]);
    }
    for args in [
        &["audit", "log"][..],
        &["audit", "log", "--jsonl"][..],
        &["token", "lookup"][..],
        &["-format=json", "token", "lookup"][..],
        &["secrets", "list"][..],
        &["policy", "list"][..],
        &["policy", "read", "default"][..],
        &["read", "sys/mounts"][..],
        &["token", "create", "-display-name=x"][..],
    ] {
        let out = with_closed_stdout(dir, &root, args);
        let err = text(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("stack backtrace"), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}: nothing to say about a reader that left");
        assert_eq!(out.status.code(), Some(0), "{args:?}: the command itself worked");
    }
    // The engine was closed properly each time: the log still verifies and opens.
    ok(dir, "", &["audit", "verify"]);
    ok(dir, &root, &["token", "lookup"]);

    // init is the exception: its root token is shown once, so losing it is an error.
    let fresh = tempfile::tempdir().unwrap();
    let out = with_closed_stdout(fresh.path(), "", &["init"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("root token could not be written") && err.contains("lessor init"), "{err}");
    assert!(!err.contains("lsr.") && !err.contains("panicked"), "{err}");
}
