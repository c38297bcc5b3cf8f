//! Module-level API: the shared server of this test binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::ENV_DATABASE_URL;
use crate::cluster::Cluster;
use crate::external::External;
use crate::test_db::TestDb;

enum Shared {
    Local(Cluster),
    External(External),
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

fn shared() -> &'static Shared {
    let shared = SHARED.get_or_init(|| match std::env::var(ENV_DATABASE_URL) {
        Ok(url) if !url.trim().is_empty() => External::connect(url.trim()).map(Shared::External),
        _ => Cluster::start_new().map(|cluster| {
            eprintln!(
                "lessor-tests: PostgreSQL {} started in {:.2?} on 127.0.0.1:{} ({})",
                cluster.version(),
                cluster.startup_time(),
                cluster.port(),
                cluster.root_dir().display()
            );
            Shared::Local(cluster)
        }),
    });
    match shared {
        Ok(shared) => shared,
        Err(message) => panic!("lessor-tests: no PostgreSQL for the tests: {message}"),
    }
}

/// A fresh database for one test on the shared server of this test binary (started on
/// first use), owned by the admin role. Panics loudly when PostgreSQL is missing.
pub fn database(name_hint: &str) -> TestDb {
    match shared() {
        Shared::Local(cluster) => cluster.database(name_hint),
        Shared::External(external) => external.database(name_hint),
    }
}

/// Whether the shared server accepts TLS (`sslmode=require`, and verify-full against
/// [`ca_cert_path`] for host `localhost` or `127.0.0.1`).
pub fn tls_available() -> bool {
    match shared() {
        Shared::Local(cluster) => cluster.tls_available(),
        Shared::External(_) => false,
    }
}

/// The CA certificate (PEM) that signed the shared server's certificate, when TLS is on.
pub fn ca_cert_path() -> Option<PathBuf> {
    match shared() {
        Shared::Local(cluster) => cluster.ca_cert_path().map(Path::to_path_buf),
        Shared::External(_) => None,
    }
}

/// Starts a separate cluster owned by the caller, stopped and deleted when dropped.
/// For tests that stop or restart the server; it ignores `LESSOR_TEST_DATABASE_URL`.
/// Panics loudly when PostgreSQL is missing or does not start.
pub fn private_cluster() -> Cluster {
    match try_private_cluster() {
        Ok(cluster) => cluster,
        Err(message) => panic!("lessor-tests: could not start a private PostgreSQL cluster: {message}"),
    }
}

/// As [`private_cluster`], returning why the cluster did not start (the message
/// names the missing package) instead of panicking: for `lessor dev`.
pub fn try_private_cluster() -> Result<Cluster, String> {
    Cluster::start_new()
}
