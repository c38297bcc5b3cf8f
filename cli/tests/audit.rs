//! `lessor audit …` through the real binary, on a directory made with the CLI
//! itself (no PostgreSQL needed): verify and its exit status on tampering,
//! checkpoints exported and checked, the timeline as text and JSON lines, the
//! keyed hash, time arguments, and auditing beside a running engine.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::{LESSOR, lessor, ok, text};

struct Dir {
    dir: tempfile::TempDir,
    root: String,
    app: String,
}

/// init, a policy, an `app-A` token, and one denied request by it.
fn setup() -> Dir {
    let dir = tempfile::tempdir().unwrap();
    let init = ok(dir.path(), "", &["init"]);
    let root = init.lines().find_map(|l| l.strip_prefix("Initial Root Token: ")).unwrap().trim().to_string();
    let policy = dir.path().join("app.hcl");
    std::fs::write(&policy, "path \"database/creds/app\" { capabilities = [\"read\"] }\n").unwrap();
    ok(dir.path(), &root, &["policy", "write", "app", policy.to_str().unwrap()]);
    let created = ok(dir.path(), &root, &["token", "create", "-policy=app", "-display-name=app-A", "-format=json"]);
    let app = serde_json::from_str::<Value>(&created).unwrap()["auth"]["client_token"].as_str().unwrap().to_string();
    let denied = lessor(dir.path(), &app, &["read", "sys/policy/app"]);
    assert!(!denied.status.success());
    Dir { dir, root, app }
}

fn jsonl(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "log", "--jsonl"];
    all.extend_from_slice(args);
    ok(dir, "", &all).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn verify_then_tamper() {
    let d = setup();
    let out = lessor(d.dir.path(), "", &["audit", "verify"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("OK: 1 segments, ") && stdout.contains("checkpoint key: lessor/"), "{stdout}");
    assert_eq!(text(&out.stderr), "", "no progress bar without a terminal");
    let report: Value = serde_json::from_str(&ok(d.dir.path(), "", &["audit", "verify", "--json"])).unwrap();
    assert_eq!(report["ok"], true);
    // The global `-format=json` (Vault's flag) means the same for audit commands.
    let same: Value = serde_json::from_str(&ok(d.dir.path(), "", &["audit", "verify", "-format=json"])).unwrap();
    assert_eq!(same, report);
    assert_eq!(
        ok(d.dir.path(), "", &["-format=json", "audit", "log"]),
        ok(d.dir.path(), "", &["audit", "log", "--jsonl"])
    );
    let records = report["records"].as_u64().unwrap();
    assert!(records >= 8, "{report}");

    let segment = d.dir.path().join("00000000000000000001.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    // Half way into the records (the segment is allocated ahead: zeros
    // follow its data).
    let data_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let at = data_end / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let out = lessor(d.dir.path(), "", &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("FAILED: ") && err.contains("00000000000000000001.log at byte ") && err.contains("LSN "),
        "{err}"
    );
}

#[test]
fn checkpoints_exported_and_checked() {
    let d = setup();
    let dir = d.dir.path();
    // Every one-shot command that appended closed with a signed checkpoint of
    // the head, so even a fresh directory has one to export.
    let latest = ok(dir, "", &["audit", "checkpoint"]);
    let last_lsn = lessor_engine::audit::verify(dir, Default::default()).unwrap().last_lsn;
    let size: u64 = latest.lines().nth(1).unwrap().parse().unwrap();
    // It covers the record before it; its batch proof follows it.
    assert_eq!(size + 2, last_lsn, "the checkpoint is not of the head at the last close: {latest}");
    let file = dir.join("kept.checkpoint");
    ok(dir, "", &["audit", "checkpoint", "--head", "--out", file.to_str().unwrap()]);
    let note = std::fs::read_to_string(&file).unwrap();
    let keys = ok(dir, "", &["audit", "checkpoint", "--public-key"]);
    let origin = note.lines().next().unwrap();
    assert!(keys.contains(&format!("verifier key: {origin}+")), "{keys}\n{note}");
    assert!(note.contains(&format!("\n\n\u{2014} {origin} ")), "{note}");
    let out = ok(dir, "", &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert!(out.contains("the history up to it is unchanged"), "{out}");

    // History goes on; the old checkpoint still holds.
    ok(dir, &d.root, &["policy", "delete", "app"]);
    ok(dir, "", &["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    // A checkpoint edited by hand does not.
    let size = note.lines().nth(1).unwrap();
    let edited = dir.join("edited.checkpoint");
    std::fs::write(&edited, note.replacen(&format!("\n{size}\n"), "\n3\n", 1)).unwrap();
    let out = lessor(dir, "", &["audit", "verify", "--checkpoint", edited.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("forged or edited"), "{}", text(&out.stderr));
}

#[test]
fn timeline_text_jsonl_filters_and_hash() {
    let d = setup();
    let dir = d.dir.path();
    let all = jsonl(dir, &[]);
    assert!(all.len() >= 8);
    for (i, line) in all.iter().enumerate() {
        assert_eq!(line["lsn"], i as u64 + 1);
        assert!(line["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!(line["chain"].as_str().unwrap().len(), 64);
    }
    let text_lines = ok(dir, "", &["audit", "log"]);
    assert_eq!(text_lines.lines().count(), all.len());
    for secret in [&d.root, &d.app] {
        assert!(!text_lines.contains(secret.as_str()) && !all.iter().any(|l| l.to_string().contains(secret.as_str())));
    }

    let denied = jsonl(dir, &["--outcome", "denied"]);
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["event"]["path"], "sys/policy/app");
    let app_accessor = denied[0]["event"]["accessor"].as_str().unwrap().to_string();
    // By secret, hashed locally with master.key: the token's creation and its request.
    let by_secret = jsonl(dir, &["--token-secret", &d.app]);
    let kinds: Vec<&str> = by_secret.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["TokenCreated", "RequestRecorded"]);
    assert_eq!(by_secret, jsonl(dir, &["--accessor", &app_accessor]));
    assert_eq!(jsonl(dir, &["--path", "sys/policy"]).len(), 4, "default and app written, two requests");

    // `audit hash` gives the form the log stores.
    let hash = ok(dir, "", &["audit", "hash", &d.app]);
    assert_eq!(hash.trim(), by_secret[0]["event"]["token_hash"].as_str().unwrap());
    std::fs::rename(dir.join("master.key"), dir.join("elsewhere.key")).unwrap();
    let out = lessor(dir, "", &["audit", "hash", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("LESSOR_MASTER_KEY_FILE"), "{}", text(&out.stderr));
    let out = Command::new(LESSOR)
        .args(["audit", "hash", &d.app])
        .env("LESSOR_DATA_DIR", dir)
        .env("LESSOR_MASTER_KEY_FILE", dir.join("elsewhere.key"))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), hash);
}

#[test]
fn times_state_diff_and_who_had() {
    let d = setup();
    let dir = d.dir.path();
    for (args, name) in [
        (&["audit", "log", "--since", "2026-13-01T00:00:00Z"][..], "--since <T>"),
        (&["audit", "state", "--at", "yesterday"][..], "--at <T>"),
        (&["audit", "diff", "1700000000", "soon"][..], "<T2>"),
    ] {
        let out = lessor(dir, "", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(name) && err.contains("RFC 3339"), "{args:?}: {err}");
    }
    let backwards = lessor(dir, "", &["audit", "diff", "1800000000", "1700000000"]);
    assert_eq!(backwards.status.code(), Some(2));
    assert!(text(&backwards.stderr).contains("earlier instant first"));

    let all = jsonl(dir, &[]);
    let start = all[0]["ts"].as_str().unwrap();
    let at_init = all.iter().filter(|l| l["ts"] == start).count();
    let state = ok(dir, "", &["audit", "state", "--at", start]);
    assert!(state.starts_with("state at ") && state.contains("0 leases live"), "{state}");
    let json: Value = serde_json::from_str(&ok(dir, "", &["audit", "state", "--at", start, "--json"])).unwrap();
    assert!(at_init >= 3, "init writes its records at one instant: {all:?}");
    assert_eq!(json["lsn"], at_init as u64, "the state at init's instant holds all of init's records: {json}");
    let diff: Value = serde_json::from_str(&ok(dir, "", &["audit", "diff", "0", "4102444800", "--json"])).unwrap();
    let policies: Vec<&str> =
        diff["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(policies, ["default", "app"]);
    let text_diff = ok(dir, "", &["audit", "diff", "0", "4102444800"]);
    assert!(text_diff.contains("policies (2):") && text_diff.contains("sys/policy/app  created"), "{text_diff}");
    let who = ok(dir, "", &["audit", "who-had", "v-nobody"]);
    assert_eq!(who.trim(), "no lease created database user v-nobody");
}

#[test]
fn audits_beside_a_running_engine() {
    let d = setup();
    let dir = d.dir.path();
    let mut run = Command::new(LESSOR)
        .arg("run")
        .env("LESSOR_DATA_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut banner).unwrap();
    assert!(banner.contains("running on"), "{banner}");
    let verified = lessor(dir, "", &["audit", "verify"]);
    let log = lessor(dir, "", &["audit", "log"]);
    let term = Command::new("kill").args(["-TERM", &run.id().to_string()]).status().unwrap();
    assert!(term.success());
    assert!(run.wait().unwrap().success());
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(log.status.success() && !log.stdout.is_empty());
}

#[test]
fn verify_pins_the_public_key_and_reports_records_without_a_proof() {
    let d = setup();
    let dir = d.dir.path();
    let keys = ok(dir, "", &["audit", "checkpoint", "--public-key"]);
    let verifier = keys.lines().find_map(|l| l.strip_prefix("verifier key: ")).unwrap().trim().to_string();
    let hex = keys.lines().find_map(|l| l.strip_prefix("public key:")).unwrap().trim().to_string();
    for pinned in [&verifier, &hex] {
        let out = ok(dir, "", &["audit", "verify", "--public-key", pinned]);
        assert!(out.contains("verifies under the pinned key"), "{out}");
    }
    let other = "42".repeat(32);
    let out = lessor(dir, "", &["audit", "verify", "--public-key", &other]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not the pinned key"), "{}", text(&out.stderr));
    let out = lessor(dir, "", &["audit", "verify", "--public-key", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--public-key"), "{}", text(&out.stderr));

    // A record appended with a recomputed crc and chain, but no proof.
    let segment = dir.join("00000000000000000001.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let mut at = lessor_engine::log::format::SEGMENT_HEADER_BYTES;
    let mut last = None;
    // Up to the zeros the segment (allocated ahead) ends in.
    while bytes[at..].iter().any(|&b| b != 0) {
        let rec = lessor_engine::log::format::read_record(&bytes[at..]).unwrap();
        last = Some((rec.lsn, rec.ts_ms, rec.chain));
        at += rec.size;
    }
    let (lsn, ts, chain) = last.unwrap();
    bytes.truncate(at);
    let forged = lessor_engine::event::Event::PolicyDeleted(lessor_engine::event::PolicyDeleted { name: "app".into() });
    lessor_engine::log::format::encode_record(
        &mut bytes,
        &chain,
        lsn + 1,
        ts,
        forged.kind().code(),
        &forged.encode_payload(),
    );
    std::fs::write(&segment, bytes).unwrap();
    let out = lessor(dir, "", &["audit", "verify"]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("1 record(s) from LSN {} on carry no batch proof", lsn + 1)), "{err}");
}
