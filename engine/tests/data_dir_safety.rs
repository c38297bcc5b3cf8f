//! A data directory is private to the user running lessor (issue 14, items 5 and 7).
//!
//! Whoever can change a data directory must not be able to make lessor — often run
//! as root — write a file outside it: a `LOCK`, segment, snapshot or key file that
//! is a symbolic link (or a hard link, for the `LOCK` lessor rewrites) is refused
//! and its target left as it was; so is a directory that is a link, is writable by
//! group or others, or belongs to another user. Modes do not come from the umask:
//! under `umask 000` everything lessor creates is 0600 (files) / 0700 (the
//! directory). Errors are matched by variant; messages are checked only for naming
//! the path and the fix.

use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use lessor_engine::audit::{self, ReadError, VerifyError, VerifyOptions};
use lessor_engine::auth::keys::{KEY_FILE_NAME, KeyError, MasterKey};
use lessor_engine::event::{Event, EventKind};
use lessor_engine::log::storage::{FsStorage, LOCK_FILE, LockError, NotRegularFile, ReadOnlyDir, Storage};
use lessor_engine::log::{LogOptions, read_entries};
use lessor_engine::testing::{SplitMix64, generated_event};
use lessor_engine::{Engine, EngineOptions, InitError, OpenError};

/// Set in a child process this test binary re-executes (see [`run_in_child`]).
const CHILD_ENV: &str = "LESSOR_DATA_DIR_SAFETY_CHILD";
const VICTIM_TEXT: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n";

fn options() -> EngineOptions {
    EngineOptions {
        // Small segments: several seals, each logging a signed checkpoint.
        log: LogOptions { segment_bytes_max: 4096, ..LogOptions::default() },
        snapshot_every_events: 0,
        ..EngineOptions::default()
    }
}

/// Events that keep a log valid (no forged keys, checkpoints or truncations).
fn events(rng: &mut SplitMix64, n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let e = generated_event(rng, 50);
        if !matches!(e.kind(), EventKind::EngineInitialized | EventKind::Checkpoint | EventKind::TailTruncated) {
            out.push(e);
        }
    }
    out
}

/// An initialized, closed data directory at `dir` (its key in `<dir>/master.key`)
/// with several segments and a snapshot.
fn initialized(dir: &Path) {
    let (engine, _root) = Engine::init(dir, options()).unwrap();
    let mut rng = SplitMix64(14);
    for _ in 0..20 {
        engine.append_unchecked_blocking(events(&mut rng, 5)).unwrap();
    }
    engine.snapshot().unwrap().expect("a snapshot is written");
    engine.close();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn first_named(dir: &Path, pred: impl Fn(&str) -> bool) -> String {
    names(dir).into_iter().find(|n| pred(n)).expect("such a file")
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn open_err(dir: &Path) -> OpenError {
    match Engine::open(dir, EngineOptions::default()) {
        Ok(_) => panic!("open of {} must be refused", dir.display()),
        Err(e) => e,
    }
}

/// Asserts `err` is the refusal of `path` as not a regular file, `found` being what
/// is there instead, and that its message names the path.
fn assert_not_regular(err: &NotRegularFile, path: &Path, found: &str) {
    assert_eq!(err.path, path, "{err}");
    assert_eq!(err.found, found, "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

/// Whether this process runs as root: the owner of a file it just created.
fn running_as_root(scratch: &Path) -> bool {
    let probe = scratch.join("uid-probe");
    fs::write(&probe, b"").unwrap();
    let uid = fs::metadata(&probe).unwrap().uid();
    fs::remove_file(&probe).unwrap();
    uid == 0
}

/// Runs the test `name` of this binary again in a child process, with `CHILD_ENV`
/// and `env` set, after `sh` ran `shell_setup` (e.g. `umask 000`: the umask is
/// process-wide, so it is never changed under the test harness's other threads).
/// Asserts the child ran exactly that one test and it passed.
fn run_in_child(name: &str, shell_setup: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{shell_setup}; exec \"$0\" \"$@\""))
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child {name} failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("1 passed"), "child did not run {name}:\n{stdout}\n{stderr}");
}

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

#[test]
fn a_lock_symlinked_to_a_victim_is_refused_and_the_victim_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("passwd");
    fs::write(&victim, VICTIM_TEXT).unwrap();
    chmod(&victim, 0o644);
    let victim_mode = mode_of(&victim);
    let lock = data.join(LOCK_FILE);
    fs::remove_file(&lock).unwrap();
    symlink(&victim, &lock).unwrap();

    match open_err(&data) {
        OpenError::Lock(LockError::NotRegularFile(e)) => assert_not_regular(&e, &lock, "a symbolic link"),
        other => panic!("expected the LOCK link refused, got {other:?}: {other}"),
    }
    match FsStorage::open(&data) {
        Err(LockError::NotRegularFile(e)) => assert_not_regular(&e, &lock, "a symbolic link"),
        other => panic!("expected the LOCK link refused, got {other:?}"),
    }
    assert_eq!(fs::read(&victim).unwrap(), VICTIM_TEXT, "the victim was written through the link");
    assert_eq!(mode_of(&victim), victim_mode, "the victim's mode was changed");

    // A dangling link: following it would create the victim.
    let created = outside.path().join("created-by-lessor");
    fs::remove_file(&lock).unwrap();
    symlink(&created, &lock).unwrap();
    assert!(matches!(open_err(&data), OpenError::Lock(LockError::NotRegularFile(_))));
    assert!(!created.exists(), "a file was created through the dangling LOCK link");

    // A new directory whose LOCK is a link: init refuses before writing anything.
    let fresh = tmp.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    chmod(&fresh, 0o700);
    symlink(&victim, fresh.join(LOCK_FILE)).unwrap();
    match Engine::init(&fresh, options()).map(|_| ()).expect_err("init must refuse") {
        InitError::Open(OpenError::Lock(LockError::NotRegularFile(e))) => {
            assert_not_regular(&e, &fresh.join(LOCK_FILE), "a symbolic link")
        }
        other => panic!("expected the LOCK link refused, got {other:?}"),
    }
    assert_eq!(names(&fresh), vec![LOCK_FILE.to_string()], "init wrote into a refused directory");
    assert_eq!(fs::read(&victim).unwrap(), VICTIM_TEXT);
}

#[test]
fn a_lock_hard_linked_to_a_victim_is_refused_and_the_victim_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    // Outside the data directory, on the same file system (a hard link needs it).
    let victim = tmp.path().join("passwd");
    fs::write(&victim, VICTIM_TEXT).unwrap();
    let lock = data.join(LOCK_FILE);
    fs::remove_file(&lock).unwrap();
    fs::hard_link(&victim, &lock).unwrap();
    match open_err(&data) {
        OpenError::Lock(LockError::HardLinked { path, links }) => {
            assert_eq!(path, lock);
            assert_eq!(links, 2);
        }
        other => panic!("expected the hard-linked LOCK refused, got {other:?}: {other}"),
    }
    assert_eq!(fs::read(&victim).unwrap(), VICTIM_TEXT, "the victim was written through the hard link");
}

#[test]
fn a_second_opener_leaves_the_lock_file_alone() {
    if in_child() {
        // The other process: the directory is held by the parent.
        let data = PathBuf::from(std::env::var("LESSOR_TEST_DATA_DIR").unwrap());
        let parent_pid = std::env::var("LESSOR_TEST_PARENT_PID").unwrap();
        match FsStorage::open(&data) {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.starts_with(&parent_pid), "holder {holder}, parent {parent_pid}")
            }
            other => panic!("expected the lock held by the parent, got {other:?}"),
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    let engine = Engine::open(&data, EngineOptions::default()).unwrap();
    let lock = data.join(LOCK_FILE);
    let before = fs::read(&lock).unwrap();
    assert!(String::from_utf8_lossy(&before).starts_with(&format!("{} ", std::process::id())), "{before:?}");
    run_in_child(
        "a_second_opener_leaves_the_lock_file_alone",
        "true",
        &[
            ("LESSOR_TEST_DATA_DIR", data.to_str().unwrap()),
            ("LESSOR_TEST_PARENT_PID", &std::process::id().to_string()),
        ],
    );
    assert_eq!(fs::read(&lock).unwrap(), before, "a refused opener changed LOCK");
    engine.close();
}

#[test]
fn a_symlinked_segment_snapshot_or_key_is_refused_and_its_target_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    initialized(&base);
    let segment = first_named(&base, |n| n.ends_with(".log"));
    let snapshot = first_named(&base, |n| n.starts_with("snap-"));
    for (i, name) in [segment.as_str(), snapshot.as_str(), KEY_FILE_NAME].into_iter().enumerate() {
        let data = tmp.path().join(format!("data{i}"));
        let outside = tmp.path().join(format!("outside{i}"));
        fs::create_dir(&data).unwrap();
        fs::create_dir(&outside).unwrap();
        chmod(&data, 0o700);
        for n in names(&base) {
            fs::copy(base.join(&n), data.join(&n)).unwrap();
        }
        let inside = data.join(name);
        let target = outside.join(name);
        fs::rename(&inside, &target).unwrap();
        symlink(&target, &inside).unwrap();
        let target_bytes = fs::read(&target).unwrap();

        match open_err(&data) {
            OpenError::Lock(LockError::NotRegularFile(e)) => assert_not_regular(&e, &inside, "a symbolic link"),
            other => panic!("{name}: expected the link refused, got {other:?}: {other}"),
        }
        // The auditor's reader follows no link either.
        let listed = ReadOnlyDir::new(&data).list().expect_err("listing must refuse the link");
        let e = listed.get_ref().and_then(|e| e.downcast_ref::<NotRegularFile>()).expect("a NotRegularFile");
        assert_not_regular(e, &inside, "a symbolic link");
        if name.ends_with(".log") {
            let verified = audit::verify(&data, VerifyOptions::default());
            assert!(matches!(verified, Err(VerifyError::Read(ReadError::Io { .. }))), "{name}: {verified:?}");
        }
        if name == KEY_FILE_NAME {
            match MasterKey::read_file_no_follow(&inside) {
                Err(KeyError::NotRegularFile { path, found }) => {
                    assert_eq!(path, inside.display().to_string());
                    assert_eq!(found, "a symbolic link");
                }
                other => panic!("expected the key link refused, got {other:?}"),
            }
            // A key file named explicitly may be a link (e.g. a mounted secret).
            assert!(MasterKey::read_file(&inside).is_ok(), "an explicitly named key file is followed");
        }
        assert_eq!(fs::read(&target).unwrap(), target_bytes, "{name}: the link's target changed");
    }
}

#[test]
fn a_fifo_in_the_data_directory_is_refused_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    let fifo = data.join("00000000000000099999.log");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils) runs");
    assert!(made.success());
    match open_err(&data) {
        OpenError::Lock(LockError::NotRegularFile(e)) => assert_not_regular(&e, &fifo, "a FIFO"),
        other => panic!("expected the FIFO refused, got {other:?}: {other}"),
    }
}

#[test]
fn a_data_directory_writable_by_group_or_others_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    for mode in [0o777, 0o770, 0o720, 0o702, 0o1777] {
        chmod(&data, mode);
        match open_err(&data) {
            OpenError::Lock(e @ LockError::DirWritableByOthers { .. }) => {
                let LockError::DirWritableByOthers { dir, mode: found } = &e else { unreachable!() };
                assert_eq!(dir, &data);
                assert_eq!(*found, mode);
                let message = e.to_string();
                assert!(message.contains(&format!("chmod 700 {}", data.display())), "{message}");
            }
            other => panic!("mode {mode:o}: expected the directory refused, got {other:?}: {other}"),
        }
    }
    // Readable by others is not a way to change it.
    for mode in [0o700, 0o750, 0o755] {
        chmod(&data, mode);
        Engine::open(&data, EngineOptions::default()).unwrap().close();
    }

    // init refuses such a directory before writing a key into it.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    chmod(&empty, 0o777);
    match Engine::init(&empty, options()).map(|_| ()).expect_err("init must refuse") {
        InitError::Open(OpenError::Lock(LockError::DirWritableByOthers { dir, mode })) => {
            assert_eq!(dir, empty);
            assert_eq!(mode, 0o777);
        }
        other => panic!("expected the directory refused, got {other:?}: {other}"),
    }
    assert!(names(&empty).is_empty(), "init wrote into a refused directory: {:?}", names(&empty));
}

#[test]
fn a_data_directory_that_is_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    let link = tmp.path().join("link");
    symlink(&data, &link).unwrap();
    let with_slash = PathBuf::from(format!("{}/", link.display()));
    for given in [&link, &with_slash] {
        match open_err(given) {
            OpenError::Lock(e @ LockError::DirIsSymlink { .. }) => {
                let LockError::DirIsSymlink { dir, target } = &e else { unreachable!() };
                assert_eq!(dir, &link);
                assert_eq!(target, &data);
                assert!(e.to_string().contains(&link.display().to_string()), "{e}");
            }
            other => panic!("{}: expected the link refused, got {other:?}: {other}", given.display()),
        }
    }
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let empty_link = tmp.path().join("empty-link");
    symlink(&empty, &empty_link).unwrap();
    let refused = Engine::init(&empty_link, options()).map(|_| ()).expect_err("init must refuse");
    assert!(matches!(refused, InitError::Open(OpenError::Lock(LockError::DirIsSymlink { .. }))), "{refused:?}");
    assert!(names(&empty).is_empty());
}

#[test]
fn a_data_directory_or_lock_of_another_user_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    // Our own directory opens (the check does not refuse everything).
    Engine::open(&data, EngineOptions::default()).unwrap().close();
    if !running_as_root(tmp.path()) {
        eprintln!(
            "SKIPPED in a_data_directory_or_lock_of_another_user_is_refused: not running as root, so the \
             directory cannot be given to another user; run the tests as root to check the owner refusal"
        );
        return;
    }
    const NOBODY: u32 = 65534;
    std::os::unix::fs::chown(&data, Some(NOBODY), None).unwrap();
    match open_err(&data) {
        OpenError::Lock(e @ LockError::OwnedByOther { .. }) => {
            let LockError::OwnedByOther { dir, path, owner, uid } = &e else { unreachable!() };
            assert_eq!((dir, path, *owner, *uid), (&data, &data, NOBODY, 0));
            assert!(e.to_string().contains(&format!("chown -R 0 {}", data.display())), "{e}");
        }
        other => panic!("expected the directory refused, got {other:?}: {other}"),
    }
    std::os::unix::fs::chown(&data, Some(0), None).unwrap();
    let lock = data.join(LOCK_FILE);
    std::os::unix::fs::chown(&lock, Some(NOBODY), None).unwrap();
    match open_err(&data) {
        OpenError::Lock(LockError::OwnedByOther { path, owner, .. }) => assert_eq!((path, owner), (lock, NOBODY)),
        other => panic!("expected LOCK refused, got {other:?}: {other}"),
    }
}

#[test]
fn a_key_file_open_to_group_or_others_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    initialized(&data);
    let key = data.join(KEY_FILE_NAME);
    assert_eq!(mode_of(&key), 0o600);
    for mode in [0o640, 0o604, 0o620, 0o602, 0o660, 0o644, 0o700 | 0o010] {
        chmod(&key, mode);
        match open_err(&data) {
            OpenError::Key(e @ KeyError::Permissions { .. }) => {
                let KeyError::Permissions { path, mode: found } = &e else { unreachable!() };
                assert_eq!(path, &key.display().to_string());
                assert_eq!(*found, mode);
                assert!(e.to_string().contains(&format!("chmod 600 {}", key.display())), "{e}");
            }
            other => panic!("mode {mode:o}: expected the key refused, got {other:?}: {other}"),
        }
        assert!(matches!(MasterKey::read_file(&key), Err(KeyError::Permissions { .. })));
    }
    chmod(&key, 0o400);
    Engine::open(&data, EngineOptions::default()).unwrap().close();
}

/// Item 7: under `umask 000` (set in a child process), everything lessor creates
/// — the directory and a missing parent, `LOCK`, `master.key`, segments, snapshots
/// and their temp files, a key file named elsewhere — is 0700 / 0600.
#[test]
fn modes_do_not_come_from_the_umask() {
    if !in_child() {
        run_in_child("modes_do_not_come_from_the_umask", "umask 000", &[]);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The umask really is 000 here, or this test proves nothing.
    let probe = tmp.path().join("probe");
    fs::OpenOptions::new().write(true).create_new(true).mode(0o666).open(&probe).unwrap();
    assert_eq!(mode_of(&probe), 0o666, "the child does not run under umask 000");

    let parent = tmp.path().join("parent");
    let data = parent.join("data");
    initialized(&data);
    let mut engine = Engine::open(&data, EngineOptions { snapshot_every_events: 50, ..options() }).unwrap();
    let mut rng = SplitMix64(7);
    for _ in 0..40 {
        engine.append_unchecked_blocking(events(&mut rng, 5)).unwrap();
    }
    engine.snapshot().unwrap().expect("a snapshot");
    engine.close();
    // A key file named outside the data directory, as lessor_init writes one.
    let elsewhere = tmp.path().join("data2");
    let key_file = tmp.path().join("elsewhere.key");
    engine = Engine::init(&elsewhere, EngineOptions { key_file: Some(key_file.clone()), ..options() }).unwrap().0;
    engine.close();

    let (entries, _) = read_entries(&ReadOnlyDir::new(&data)).unwrap();
    assert!(entries.iter().any(|e| matches!(e.event, Event::Checkpoint(_))), "no checkpoint was logged");
    let listed = names(&data);
    assert!(listed.iter().filter(|n| n.ends_with(".log")).count() >= 2, "{listed:?}");
    assert!(listed.iter().any(|n| n.starts_with("snap-")), "{listed:?}");
    assert!(listed.contains(&LOCK_FILE.to_string()) && listed.contains(&KEY_FILE_NAME.to_string()), "{listed:?}");
    assert_eq!(mode_of(&data), 0o700, "{}", data.display());
    assert_eq!(mode_of(&elsewhere), 0o700, "{}", elsewhere.display());
    assert_eq!(mode_of(&parent) & 0o022, 0, "a parent lessor created is writable by others");
    for dir in [&data, &elsewhere] {
        for name in names(dir) {
            let path = dir.join(&name);
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode_of(&key_file), 0o600, "{}", key_file.display());
}
