//! Records appended by someone who can write the data directory but does not hold
//! the master key (issue 14, item 4): the crc and the hash chain use no key, so a
//! forger can recompute both; the batch proofs are what stop them.

use std::path::Path;
use std::sync::Arc;

use lessor_engine::audit::{self, VerifyError, VerifyOptions};
use lessor_engine::clock::ManualClock;
use lessor_engine::event::{BatchMac, BatchSigned, Event, PolicyWritten};
use lessor_engine::log::format::{self, SEGMENT_HEADER_BYTES, SegmentHeader};
use lessor_engine::log::storage::ReadOnlyDir;
use lessor_engine::log::{ScanError, read_entries};
use lessor_engine::request::{ErrorKind, Operation};
use lessor_engine::{Engine, EngineOptions, Host, HostOptions, OpenError};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000;

fn options() -> EngineOptions {
    EngineOptions { clock: Arc::new(ManualClock::new(T0)), snapshot_every_events: 0, ..EngineOptions::default() }
}

/// An initialized directory with a token that holds only the `default` policy.
fn engine_with_default_token() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, root) = Engine::init(dir.path(), options()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let r = rt
        .block_on(engine.request(
            root.expose(),
            Operation::Update,
            "auth/token/create",
            json!({"policies": ["default"]}),
        ))
        .unwrap();
    engine.close();
    (dir, r.auth.unwrap().client_token)
}

/// What the review did: a record appended after the log's end with its crc and
/// chain recomputed — no key needed for either. Returns where the log ends now:
/// the next LSN, the chain, the time.
fn append_forged(dir: &Path, events: &[Event]) -> (u64, format::Chain, i64) {
    let (entries, summary) = read_entries(&ReadOnlyDir::new(dir)).unwrap();
    let last = summary.segments.last().unwrap();
    let mut chain = summary.last_chain;
    let mut bytes = Vec::new();
    let ts = entries.last().unwrap().ts_ms;
    for (i, event) in events.iter().enumerate() {
        let lsn = summary.next_lsn + i as u64;
        chain = format::encode_record(&mut bytes, &chain, lsn, ts, event.kind().code(), &event.encode_payload());
    }
    // Where the log's data ends: over the zeros of a segment allocated ahead.
    let path = dir.join(&last.name);
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &bytes, last.valid_bytes).unwrap();
    (summary.next_lsn + events.len() as u64, chain, ts)
}

fn grant_everything() -> Event {
    Event::PolicyWritten(PolicyWritten {
        name: "default".into(),
        text: r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#.into(),
    })
}

fn read_mounts(engine: &Engine, token: &str) -> Result<(), ErrorKind> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(engine.request(token, Operation::Read, "sys/mounts", Value::Null)).map(drop).map_err(|e| e.kind())
}

#[test]
fn a_forged_record_without_a_proof_is_reported_by_verify_and_never_applied_by_open() {
    let (dir, token) = engine_with_default_token();
    let before = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert!(before.proven_lsn.is_some() && before.unproven_records == 0, "{before:?}");
    append_forged(dir.path(), &[grant_everything()]);

    let report = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!(report.unproven_records, 1, "verify does not report the forged record");
    assert_eq!(report.unproven_from_lsn, Some(before.last_lsn + 1));
    assert_eq!(report.proven_lsn, before.proven_lsn);

    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(read_mounts(&engine, &token), Err(ErrorKind::PermissionDenied), "the forged policy took effect");
    let default = engine.with_state(|s| s.policies["default"].clone());
    assert!(!default.contains(r#"path "*""#), "{default}");
    assert_eq!(engine.with_state(|s| s.counters.tail_truncations), 1, "the cut is not on the record");
    engine.close();
    // After the cut, the log is whole and proven again.
    let after = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!(after.unproven_records, 0);
    assert_eq!(after.proven_lsn, Some(after.last_lsn));
}

/// Starts a new segment where the log ends (`append_forged`'s answer), as a
/// seal does: its header carries the chain on. Then appends `events` to it,
/// forged as above. Returns its name.
fn start_forged_segment(dir: &Path, (next_lsn, prev_chain, ts): (u64, format::Chain, i64), events: &[Event]) -> String {
    let header = SegmentHeader { version: format::FORMAT_VERSION, first_lsn: next_lsn, prev_chain };
    let name = format::segment_name(next_lsn);
    let mut bytes = header.encode().to_vec();
    let mut chain = prev_chain;
    for (i, event) in events.iter().enumerate() {
        let lsn = next_lsn + i as u64;
        chain = format::encode_record(&mut bytes, &chain, lsn, ts, event.kind().code(), &event.encode_payload());
    }
    std::fs::write(dir.join(&name), bytes).unwrap();
    name
}

/// What a crash leaves when a batch sealed a segment half-way (its first
/// records end the old segment, its proof was to start the new one), and what
/// a forger gets by starting a segment after forged records: unproven records
/// at the end of a segment that is no longer the last. Row 11 looks back past
/// the seal: they are cut, the later segment goes, none of it is applied.
#[test]
fn unproven_records_before_a_seal_are_cut_with_the_segments_after_them() {
    for in_new_segment in [0, 2] {
        let (dir, token) = engine_with_default_token();
        let before = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
        let end = append_forged(dir.path(), &[grant_everything()]);
        let policy = |n: usize| {
            Event::PolicyWritten(PolicyWritten { name: format!("forged-{n}"), text: "path \"x\" {}".into() })
        };
        let events: Vec<Event> = (0..in_new_segment).map(policy).collect();
        let later = start_forged_segment(dir.path(), end, &events);
        let report = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
        assert_eq!(report.unproven_records, 1 + in_new_segment as u64, "{report:?}");

        let engine = Engine::open(dir.path(), options()).unwrap();
        assert_eq!(
            read_mounts(&engine, &token),
            Err(ErrorKind::PermissionDenied),
            "the unproven policy before the seal took effect ({in_new_segment} record(s) after it)"
        );
        assert!(engine.with_state(|s| !s.policies.keys().any(|p| p.starts_with("forged-"))));
        assert_eq!(engine.with_state(|s| s.counters.tail_truncations), 1, "the cut is not on the record");
        engine.close();
        assert!(!dir.path().join(&later).exists(), "the segment after the cut is still there");
        let after = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
        assert_eq!(after.unproven_records, 0, "{after:?}");
        assert_eq!(after.proven_lsn, Some(after.last_lsn));
        assert!(after.last_lsn > before.last_lsn, "the cut went further back than the forged records");
        // A second open finds nothing more to cut.
        let engine = Engine::open(dir.path(), options()).unwrap();
        assert_eq!(engine.with_state(|s| s.counters.tail_truncations), 1);
        engine.close();
    }
}

/// The seal itself is not a proof: a segment that ends exactly in a proof,
/// followed by an empty one, loses nothing and keeps the empty one.
#[test]
fn an_empty_segment_after_a_proven_one_is_kept_and_cuts_nothing() {
    let (dir, _) = engine_with_default_token();
    let before = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    let later = start_forged_segment(dir.path(), append_forged(dir.path(), &[]), &[]);
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(engine.with_state(|s| s.counters.tail_truncations), 0);
    engine.close();
    assert!(dir.path().join(&later).exists());
    let after = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert!(after.last_lsn >= before.last_lsn && after.unproven_records == 0, "{after:?}");
}

#[test]
fn a_forged_record_with_a_forged_proof_refuses_the_open_and_fails_verify() {
    let (dir, _) = engine_with_default_token();
    append_forged(dir.path(), &[grant_everything(), Event::BatchSigned(BatchSigned { signature: vec![7; 64] })]);
    match Engine::open(dir.path(), options()) {
        Err(OpenError::Scan(ScanError::Corrupt { what, .. })) => assert!(what.contains("batch proof"), "{what}"),
        other => panic!("open accepted a forged proof: {:?}", other.map(|_| ())),
    }
    match audit::verify(dir.path(), VerifyOptions::default()) {
        Err(VerifyError::Invalid { what, .. }) => assert!(what.contains("batch proof"), "{what}"),
        other => panic!("verify accepted a forged proof: {other:?}"),
    }
}

#[test]
fn a_forged_record_with_a_forged_mac_refuses_the_open_and_verify_calls_it_unsigned() {
    let (dir, _) = engine_with_default_token();
    let before = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    append_forged(dir.path(), &[grant_everything(), Event::BatchMac(BatchMac { mac: vec![7; 32] })]);
    match Engine::open(dir.path(), options()) {
        Err(OpenError::Scan(ScanError::Corrupt { what, .. })) => assert!(what.contains("batch proof"), "{what}"),
        other => panic!("open accepted a forged MAC: {:?}", other.map(|_| ())),
    }
    // An auditor cannot check a MAC: the record is reported as not signed, and
    // the signed history is what it was.
    let report = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!((report.unsigned_records, report.mac_lsn), (1, Some(before.last_lsn + 2)), "{report:?}");
    assert_eq!(report.proven_lsn, before.proven_lsn);
    assert_eq!(report.unproven_records, 0);
}

/// Options whose signature interval no test waits out: every batch after the
/// first ends with a MAC until the writer closes.
fn options_signing_rarely() -> EngineOptions {
    let mut o = options();
    o.log.signature_interval_ms = 24 * 3600 * 1000;
    o
}

fn write_policies(engine: &Engine, root: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for i in 0..n {
        let data = json!({ "policy": format!(r#"path "database/creds/m{i}" {{ capabilities = ["read"] }}"#) });
        rt.block_on(engine.request(root, Operation::Update, &format!("sys/policy/m{i}"), data)).unwrap();
    }
}

#[test]
fn batches_between_signatures_end_in_a_mac_and_a_clean_close_signs_them() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, root) = Engine::init(dir.path(), options_signing_rarely()).unwrap();
    write_policies(&engine, root.expose(), 5);
    let running = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!(running.mac_lsn, Some(running.last_lsn), "the newest batch does not end in a MAC: {running:?}");
    assert!(running.unsigned_records >= 5, "{running:?}");
    assert!(running.proven_lsn.unwrap() < running.last_lsn);
    let entries = read_entries(&ReadOnlyDir::new(dir.path())).unwrap().0;
    let macs = entries.iter().filter(|e| matches!(e.event, Event::BatchMac(_))).count();
    assert!(macs >= 5, "one MAC per batch expected, found {macs}");
    engine.close();
    let closed = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!(closed.proven_lsn, Some(closed.last_lsn), "close left records unsigned: {closed:?}");
    assert_eq!((closed.unsigned_records, closed.mac_lsn), (0, None));
    // It also checkpointed the head (checkpoints run on an interval by default),
    // so `audit checkpoint` has one to export.
    assert_eq!(closed.latest_checkpoint.map(|c| c.lsn), Some(closed.last_lsn - 2));
    // A close after nothing new appends nothing.
    Engine::open(dir.path(), options_signing_rarely()).unwrap().close();
    assert_eq!(audit::verify(dir.path(), VerifyOptions::default()).unwrap().last_lsn, closed.last_lsn);
}

#[test]
fn an_idle_engine_signs_what_its_macs_cover_at_the_expirers_tick_once_the_interval_passed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = EngineOptions { clock: clock.clone(), ..options() };
    o.expiry.tick_ms = 10;
    // The tick also finds a checkpoint due: it must sign the newest record at
    // that record's time, not the tick's.
    o.log.checkpoint_interval_ms = 500;
    let (engine, root) = Engine::init(dir.path(), o).unwrap();
    write_policies(&engine, root.expose(), 3);
    let before = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert!(before.unsigned_records > 0, "{before:?}");
    // The interval (1 s by default) passes on the engine's clock; the expirer's
    // next tick signs.
    clock.advance_ms(1_000);
    // The expirer an embedder gets: a host's (nothing to recover here).
    let mut host = Host::start(engine, HostOptions { worker_threads: 1, ..HostOptions::default() }).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let report = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
        if report.proven_lsn == Some(report.last_lsn) || std::time::Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(report.proven_lsn, Some(report.last_lsn), "the expirer's tick never signed: {report:?}");
    assert_eq!(report.last_lsn, before.last_lsn + 2, "not one checkpoint and one signature");
    assert_eq!(report.latest_checkpoint.map(|c| c.lsn), Some(before.last_lsn));
    // Idle from here on: later ticks log nothing (they once checkpointed the
    // checkpoint, every tick).
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!host.stop_expirer());
    let idle = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!(idle.last_lsn, report.last_lsn, "an idle engine went on logging at its ticks");
    host.close();
}

#[test]
fn a_crash_after_macd_batches_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, root) = Engine::init(dir.path(), options_signing_rarely()).unwrap();
    write_policies(&engine, root.expose(), 4);
    // The crash image: every file as the running engine left it (all of it
    // acknowledged), taken before any close could sign it.
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), image.path().join(entry.file_name())).unwrap();
        }
    }
    engine.close();
    let crashed = audit::verify(image.path(), VerifyOptions::default()).unwrap();
    assert!(crashed.mac_lsn.is_some() && crashed.unproven_records == 0, "{crashed:?}");
    let engine = Engine::open(image.path(), options_signing_rarely()).unwrap();
    for i in 0..4 {
        assert!(engine.with_state(|s| s.policies.contains_key(&format!("m{i}"))), "acknowledged policy m{i} lost");
    }
    assert_eq!(engine.with_state(|s| s.counters.tail_truncations), 0, "acknowledged records were cut");
    engine.close();
    let reopened = audit::verify(image.path(), VerifyOptions::default()).unwrap();
    assert_eq!(reopened.proven_lsn, Some(reopened.last_lsn));
    assert!(reopened.last_lsn > crashed.last_lsn);
}

#[test]
fn a_log_rewritten_whole_under_another_key_is_refused_by_open_and_by_a_pinned_verify() {
    let (dir, _) = engine_with_default_token();
    let real = audit::verify(dir.path(), VerifyOptions::default()).unwrap().public_key.unwrap();
    // The forger makes a key of their own, keeps the original key check (it is
    // public) and rewrites every record, proofs and all, under it.
    let forger = lessor_engine::auth::keys::Keys::derive(&lessor_engine::auth::keys::MasterKey::from_bytes([9; 32]));
    let (mut entries, summary) = read_entries(&ReadOnlyDir::new(dir.path())).unwrap();
    for e in &mut entries {
        if let Event::EngineInitialized(init) = &mut e.event {
            init.checkpoint_public_key = forger.checkpoint_public_key();
        }
    }
    entries.push(lessor_engine::event::Entry { lsn: entries.len() as u64 + 1, ts_ms: T0, event: grant_everything() });
    for seg in &summary.segments {
        std::fs::remove_file(dir.path().join(&seg.name)).unwrap();
    }
    let mut chain = format::GENESIS_CHAIN;
    let mut prev = (0, chain);
    let mut bytes =
        SegmentHeader { version: format::FORMAT_VERSION, first_lsn: 1, prev_chain: chain }.encode().to_vec();
    for e in &mut entries {
        match &mut e.event {
            Event::BatchSigned(proof) => {
                proof.signature = forger.sign_checkpoint(&lessor_engine::log::proof::message(prev.0, &prev.1)).to_vec();
            }
            Event::Checkpoint(cp) => {
                *cp = audit::SignedCheckpoint::sign(&forger, prev.0, &prev.1, e.ts_ms).to_event();
            }
            _ => {}
        }
        chain =
            format::encode_record(&mut bytes, &chain, e.lsn, e.ts_ms, e.event.kind().code(), &e.event.encode_payload());
        prev = (e.lsn, chain);
    }
    let proof = BatchSigned {
        signature: forger.sign_checkpoint(&lessor_engine::log::proof::message(prev.0, &prev.1)).to_vec(),
    };
    format::encode_record(
        &mut bytes,
        &chain,
        prev.0 + 1,
        T0,
        Event::BatchSigned(proof.clone()).kind().code(),
        &Event::BatchSigned(proof).encode_payload(),
    );
    assert!(bytes.len() > SEGMENT_HEADER_BYTES);
    std::fs::write(dir.path().join(format::segment_name(1)), bytes).unwrap();

    // The engine knows its own key: the log's is not it.
    assert!(matches!(Engine::open(dir.path(), options()), Err(OpenError::ForeignPublicKey)));
    // An auditor who pinned the real public key is not fooled either.
    let pinned = VerifyOptions { public_key: Some(real), ..VerifyOptions::default() };
    assert!(matches!(audit::verify(dir.path(), pinned), Err(VerifyError::ForeignPublicKey { .. })));
    // Without the pin the rewrite is self-consistent: that is what the pin is for.
    assert!(audit::verify(dir.path(), VerifyOptions::default()).is_ok());
}

/// Rewrites the log as a build before proofs wrote it: one format 1 segment,
/// no `BatchSigned` records.
fn rewrite_as_format_1(dir: &Path) {
    let (entries, summary) = read_entries(&ReadOnlyDir::new(dir)).unwrap();
    for seg in &summary.segments {
        std::fs::remove_file(dir.join(&seg.name)).unwrap();
    }
    let mut chain = format::GENESIS_CHAIN;
    let mut bytes = SegmentHeader { version: 1, first_lsn: 1, prev_chain: chain }.encode().to_vec();
    // (Checkpoints go too: they cover the record before them, which is gone.)
    let kept = entries
        .into_iter()
        .filter(|e| !matches!(e.event, Event::BatchSigned(_) | Event::BatchMac(_) | Event::Checkpoint(_)));
    for (lsn, e) in (1..).zip(kept) {
        chain =
            format::encode_record(&mut bytes, &chain, lsn, e.ts_ms, e.event.kind().code(), &e.event.encode_payload());
    }
    std::fs::write(dir.join(format::segment_name(1)), bytes).unwrap();
    // A build before proofs kept no head either.
    std::fs::remove_file(dir.join("HEAD")).unwrap();
}

#[test]
fn a_log_from_before_proofs_opens_and_goes_on_in_a_proven_segment() {
    let (dir, token) = engine_with_default_token();
    rewrite_as_format_1(dir.path());
    let old = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!((old.proven_lsn, old.unproven_records), (None, 0), "a format 1 log has no proofs to check");

    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(read_mounts(&engine, &token), Err(ErrorKind::PermissionDenied));
    engine.close();
    let names: Vec<String> =
        read_entries(&ReadOnlyDir::new(dir.path())).unwrap().1.segments.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names.len(), 2, "the writer did not start a segment of today's format: {names:?}");
    let header = std::fs::read(dir.path().join(&names[1])).unwrap();
    assert_eq!(SegmentHeader::decode(&header).unwrap().version, format::FORMAT_VERSION);
    let new = audit::verify(dir.path(), VerifyOptions::default()).unwrap();
    assert_eq!(new.proven_lsn, Some(new.last_lsn));
    // And it opens again, state intact.
    Engine::open(dir.path(), options()).unwrap().close();
}

#[test]
fn a_snapshot_planted_without_the_key_is_ignored() {
    let (dir, token) = engine_with_default_token();
    // A state in which `default` grants everything, at the log's real end and
    // chain, written as the engine would but without the key's signature.
    let (entries, summary) = read_entries(&ReadOnlyDir::new(dir.path())).unwrap();
    let mut state = lessor_engine::state::State::default();
    for e in &entries {
        state.apply(e);
    }
    let Event::PolicyWritten(forged) = grant_everything() else { unreachable!() };
    state.policies.insert(forged.name, forged.text);
    let last = entries.last().unwrap();
    let storage = lessor_engine::log::storage::FsStorage::open(dir.path()).unwrap();
    lessor_engine::log::snapshot::write(&storage, last.lsn, last.ts_ms, &summary.last_chain, &state.encode(), 0, None)
        .unwrap();
    drop(storage);
    let engine = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(read_mounts(&engine, &token), Err(ErrorKind::PermissionDenied), "the planted snapshot was used");
    // The engine's own snapshots are signed and used.
    let name = engine.snapshot().unwrap().unwrap();
    engine.close();
    let public_key = audit::public_key(dir.path()).unwrap().unwrap();
    let storage = ReadOnlyDir::new(dir.path());
    lessor_engine::log::snapshot::read_decoded(&storage, &name, Some(&public_key), |body| {
        std::io::copy(body, &mut std::io::sink()).map(drop).map_err(|e| e.to_string())
    })
    .unwrap();
}

/// A log of several small segments, closed cleanly: (dir, its segment names).
fn several_segments() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let small = || EngineOptions {
        log: lessor_engine::log::LogOptions { segment_bytes_max: 4096, ..Default::default() },
        ..options()
    };
    let (engine, root) = Engine::init(dir.path(), small()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for i in 0..40 {
        let data = json!({ "policy": format!(r#"path "database/creds/r{i}" {{ capabilities = ["read"] }}"#) });
        rt.block_on(engine.request(root.expose(), Operation::Update, &format!("sys/policy/p{i}"), data)).unwrap();
    }
    engine.close();
    let names =
        read_entries(&ReadOnlyDir::new(dir.path())).unwrap().1.segments.iter().map(|s| s.name.clone()).collect();
    (dir, names)
}

fn rolled_back(dir: &Path) -> bool {
    matches!(Engine::open(dir, options()), Err(OpenError::RolledBack { .. }))
}

#[test]
fn deleting_the_newest_segment_or_cutting_it_back_is_refused() {
    let (dir, names) = several_segments();
    assert!(names.len() >= 3, "{names:?}");
    // The newest segment deleted: the sealed one before it has no successor.
    let newest = dir.path().join(names.last().unwrap());
    let saved = std::fs::read(&newest).unwrap();
    std::fs::remove_file(&newest).unwrap();
    assert!(rolled_back(dir.path()), "a deleted newest segment opened");
    // Cut back at a record boundary (whole records gone, nothing torn).
    let mut offsets = vec![SEGMENT_HEADER_BYTES];
    while let Ok(rec) = format::read_record(&saved[*offsets.last().unwrap()..]) {
        offsets.push(offsets.last().unwrap() + rec.size);
        if *offsets.last().unwrap() >= saved.len() {
            break;
        }
    }
    let boundary = offsets[offsets.len() / 2];
    std::fs::write(&newest, &saved[..boundary]).unwrap();
    assert!(rolled_back(dir.path()), "a segment cut back at a record boundary opened");
    // Put back, it opens again.
    std::fs::write(&newest, &saved).unwrap();
    Engine::open(dir.path(), options()).unwrap().close();
}

#[test]
fn an_older_copy_of_the_segments_put_back_is_refused() {
    let (dir, _) = several_segments();
    let copy = tempfile::tempdir().unwrap();
    let segments = |d: &Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        v.sort();
        v
    };
    for seg in segments(dir.path()) {
        std::fs::copy(&seg, copy.path().join(seg.file_name().unwrap())).unwrap();
    }
    // The engine goes on (a snapshot, a refused request), then the old segments
    // come back.
    let engine = Engine::open(dir.path(), options()).unwrap();
    engine.snapshot().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _ = rt.block_on(engine.request("not-a-token", Operation::Read, "sys/mounts", Value::Null));
    engine.close();
    for seg in segments(dir.path()) {
        std::fs::remove_file(seg).unwrap();
    }
    for seg in segments(copy.path()) {
        std::fs::copy(&seg, dir.path().join(seg.file_name().unwrap())).unwrap();
    }
    for snap in std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()) {
        if snap.extension().is_some_and(|x| x == "bin") {
            std::fs::remove_file(snap).unwrap();
        }
    }
    assert!(rolled_back(dir.path()), "an older copy of the log opened");
    // A restore on purpose: the operator removes the head, as the error says.
    std::fs::remove_file(dir.path().join("HEAD")).unwrap();
    Engine::open(dir.path(), options()).unwrap().close();
    assert!(dir.path().join("HEAD").exists(), "the head was not written again");
}

#[test]
fn with_the_key_kept_elsewhere_the_head_is_beside_it() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("lessor.key");
    let dir = tempfile::tempdir().unwrap();
    let with_key = || EngineOptions { key_file: Some(key_file.clone()), ..options() };
    Engine::init(dir.path(), with_key()).unwrap().0.close();
    assert!(keys.path().join("lessor.key.head").exists());
    assert!(!dir.path().join("HEAD").exists());
    Engine::open(dir.path(), with_key()).unwrap().close();
}
