//! Issue through the C API vs the same issue through the Rust API, against the
//! same throwaway PostgreSQL: what the C boundary costs (target: ≤ 1.1×).
//!
//! `cargo bench -p lessor-ffi --bench c_vs_rust`
//!
//! Each side has its own data directory and engine (with its expirer), the same
//! connection and the same role (`CREATE ROLE … LOGIN PASSWORD … VALID UNTIL`, the
//! cheapest creation, so the boundary's cost is as visible as it can be). Only the
//! issue is timed; the leases are revoked after each sample, untimed.

use std::ffi::{CStr, CString, c_char};
use std::ptr;
use std::time::{Duration, Instant};

use ::lessor_engine::request::Operation;
use ::lessor_engine::{Engine, EngineOptions, Host, HostOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use lessor::{
    lessor_credential, lessor_credential_free, lessor_credential_lease_id, lessor_engine as CEngine,
    lessor_engine_free, lessor_engine_open, lessor_init, lessor_issue, lessor_request, lessor_revoke, lessor_status,
    lessor_string_free,
};
use lessor_tests::pg;
use serde_json::{Value, json};

const ROLE: &str = "bench";

fn setup_requests(db: &pg::TestDb) -> Vec<(&'static str, String, Value)> {
    vec![
        ("update", "sys/mounts/database".into(), json!({"type": "database"})),
        (
            "update",
            "database/config/pg".into(),
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": db.url_template(),
                "username": db.admin_username(),
                "password": db.admin_password(),
                "allowed_roles": "*",
                "max_open_connections": 4,
            }),
        ),
        (
            "update",
            format!("database/roles/{ROLE}"),
            json!({
                "db_name": "pg",
                "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                "default_ttl": "1h",
            }),
        ),
    ]
}

struct CSide {
    engine: *mut CEngine,
    token: CString,
    path: CString,
}

impl CSide {
    fn new(db: &pg::TestDb, dir: &std::path::Path) -> CSide {
        let dir = CString::new(dir.to_str().unwrap()).unwrap();
        let mut root: *mut c_char = ptr::null_mut();
        assert_eq!(lessor_init(dir.as_ptr(), ptr::null(), &mut root, ptr::null_mut()), lessor_status::LESSOR_OK);
        // SAFETY: lessor_init wrote a NUL-terminated string we own.
        let token = unsafe { CStr::from_ptr(root) }.to_owned();
        lessor_string_free(root);
        let mut engine = ptr::null_mut();
        assert_eq!(
            lessor_engine_open(dir.as_ptr(), ptr::null(), &mut engine, ptr::null_mut()),
            lessor_status::LESSOR_OK
        );
        for (op, path, data) in setup_requests(db) {
            let (op, path, data) =
                (CString::new(op).unwrap(), CString::new(path).unwrap(), CString::new(data.to_string()).unwrap());
            let mut out = ptr::null_mut();
            let status = lessor_request(
                engine,
                token.as_ptr(),
                op.as_ptr(),
                path.as_ptr(),
                data.as_ptr(),
                &mut out,
                ptr::null_mut(),
            );
            assert_eq!(status, lessor_status::LESSOR_OK);
            lessor_string_free(out);
        }
        CSide { engine, token, path: CString::new(format!("database/creds/{ROLE}")).unwrap() }
    }

    fn issue(&self) -> *mut lessor_credential {
        let mut credential = ptr::null_mut();
        let status =
            lessor_issue(self.engine, self.token.as_ptr(), self.path.as_ptr(), &mut credential, ptr::null_mut());
        assert_eq!(status, lessor_status::LESSOR_OK);
        credential
    }

    fn revoke(&self, credential: *mut lessor_credential) {
        let lease = lessor_credential_lease_id(credential);
        assert_eq!(lessor_revoke(self.engine, self.token.as_ptr(), lease, ptr::null_mut()), lessor_status::LESSOR_OK);
        lessor_credential_free(credential);
    }
}

impl Drop for CSide {
    fn drop(&mut self) {
        lessor_engine_free(self.engine);
    }
}

struct RustSide {
    host: Host,
    token: String,
}

impl RustSide {
    fn new(db: &pg::TestDb, dir: &std::path::Path) -> RustSide {
        let (engine, root) = Engine::init(dir, EngineOptions::default()).unwrap();
        // Hosted as lessor_engine_open hosts it: same runtime, recovery, expirer.
        let host = Host::start(engine, HostOptions::default()).unwrap();
        let token = root.expose().to_string();
        for (_, path, data) in setup_requests(db) {
            host.block_on(host.engine().request(&token, Operation::Update, &path, data)).unwrap();
        }
        RustSide { host, token }
    }
}

fn bench(c: &mut Criterion) {
    let db = pg::database("bench_c_vs_rust");
    let (c_dir, rust_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c_side = CSide::new(&db, c_dir.path());
    let rust = RustSide::new(&db, rust_dir.path());
    let creds_path = format!("database/creds/{ROLE}");

    let mut group = c.benchmark_group("issue_via");
    group.sample_size(20).measurement_time(Duration::from_secs(20));
    group.bench_function("c_api", |b| {
        b.iter_custom(|iters| {
            let mut issued = Vec::with_capacity(iters as usize);
            let start = Instant::now();
            for _ in 0..iters {
                issued.push(c_side.issue());
            }
            let elapsed = start.elapsed();
            issued.into_iter().for_each(|credential| c_side.revoke(credential));
            elapsed
        })
    });
    group.bench_function("rust_api", |b| {
        b.iter_custom(|iters| {
            let mut issued = Vec::with_capacity(iters as usize);
            let start = Instant::now();
            for _ in 0..iters {
                issued.push(rust.host.block_on(rust.host.engine().issue(&rust.token, &creds_path)).unwrap());
            }
            let elapsed = start.elapsed();
            for credential in issued {
                rust.host.block_on(rust.host.engine().revoke(&rust.token, &credential.lease_id)).unwrap();
            }
            elapsed
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
