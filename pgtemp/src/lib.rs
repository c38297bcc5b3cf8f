//! Throwaway PostgreSQL for tests, benches and `lessor dev`: one real server per process, one database per user of it.
//!
//! ```no_run
//! use lessor_pgtemp as pg;
//!
//! let db = pg::database("issue_and_revoke");
//! // Hand these to the engine as a connection's `connection_url` / root credentials:
//! let template = db.url_template(); // postgresql://{{username}}:{{password}}@127.0.0.1:PORT/DB
//! let (user, password) = (db.admin_username(), db.admin_password());
//! # let _ = (template, user, password);
//! // ... issue a credential with the engine, with a username template unique to this test
//! // (`issue-{{random 16}}`), then assert on the server as its superuser:
//! assert_eq!(db.roles_with_prefix("issue-").len(), 1);
//! let n = db.superuser_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'issue-%'");
//! assert_eq!(n.as_deref(), Some("0"));
//! ```
//!
//! # What is started
//!
//! The first call to [`database`] in a test binary starts a private cluster (`initdb` +
//! `pg_ctl`, the highest PostgreSQL version found in `$LESSOR_TEST_PG_BINDIR`, on `PATH`
//! or in `/usr/lib/postgresql/*/bin`) in a fresh temporary directory (in `/dev/shm` when it
//! has 2 GiB free, as `CREATE DATABASE` is ~5x faster on tmpfs; else in `$TMPDIR`;
//! `LESSOR_TEST_PG_TMPDIR` overrides):
//!
//! * TCP on `127.0.0.1` only, on a free port; password authentication (SCRAM-SHA-256)
//!   for every TCP connection; `trust` over a unix socket in a private directory, which
//!   only the harness uses (as the bootstrap superuser `postgres`).
//! * TLS (`ssl = on`) with a throwaway CA and a server certificate for `localhost` /
//!   `127.0.0.1` when the `openssl` command is available ([`tls_available`],
//!   [`TestDb::ca_cert_path`]); without `openssl` the server runs without TLS.
//! * An admin role [`ADMIN_ROLE`] (`LOGIN CREATEROLE`, *not* a superuser, random
//!   password): the least privilege a real deployment gives lessor's connection user.
//!   Every test database is `OWNED` by it, so it can create tables and grant on them.
//! * `fsync`, `synchronous_commit` and `full_page_writes` off; `max_connections = 200`.
//!
//! When the test process runs as root, `initdb` and the server run as the `postgres` OS
//! user (PostgreSQL refuses to run as root), switched to with `runuser` (or `su`); the
//! temporary directories are owned by that user.
//!
//! # Teardown
//!
//! A static is never dropped, so the shared cluster is stopped by a *watchdog*: a small
//! `sh` child, in its own process group and ignoring SIGINT/SIGTERM/SIGHUP, that blocks
//! reading a pipe whose only writer is the test process. When the test process exits,
//! normally, by a panic or by SIGKILL, the kernel closes the pipe; the watchdog then
//! runs `pg_ctl stop -m immediate`, SIGKILLs a postmaster that survived that, and removes
//! the temporary directory. Nothing is left running, and no `atexit` hook is needed.
//! A [`private_cluster`] has a watchdog too, and its `Drop` stops the server and waits
//! for the watchdog to finish the cleanup.
//!
//! # Sharing
//!
//! Databases are per test, but *roles are cluster-wide*: every test of a binary sees the
//! roles of all the others. Assert on roles with a prefix unique to the test (for example
//! the database name, [`TestDb::dbname`], inside the username template), not on
//! `LIKE 'v-%'` over the whole cluster, unless the test has a [`private_cluster`].
//! Stopping a server ([`Cluster::stop`]) needs `&mut Cluster`, which only a
//! [`private_cluster`] gives: outage tests cannot take the shared server down.
//!
//! # Using an existing server: `LESSOR_TEST_DATABASE_URL`
//!
//! When `LESSOR_TEST_DATABASE_URL` is set (for example
//! `postgresql://lessor_ci:secret@127.0.0.1:5432/postgres`), [`database`] starts nothing:
//! it creates each test database on that server through that URL, and the URL's user is
//! the admin the tests hand to the engine. That user needs `LOGIN CREATEDB CREATEROLE`
//! and should *not* be a superuser (the harness's own test checks this, as it mirrors a
//! real deployment). The URL must use a TCP host. In this mode the "superuser" helpers
//! run as that same user, [`tls_available`] is false, databases are dropped when their
//! [`TestDb`] is dropped, and roles the tests create are left behind.
//! [`private_cluster`] still starts a local server.
//!
//! # Missing PostgreSQL
//!
//! Is a loud failure, never a skip: the panic says `apt-get install -y postgresql`.

mod cluster;
mod external;
mod shared;
mod sql;
mod test_db;
mod tls;
mod util;

pub use cluster::{Cluster, KeptCluster};
pub use shared::{ca_cert_path, database, private_cluster, tls_available, try_private_cluster};
pub use sql::{error_text, quote_ident, quote_literal};
pub use test_db::TestDb;
pub use tls::{tls_connector_no_verify, tls_connector_verify_full};
pub use util::{percent_encode, pid_alive};

/// An existing server's admin URL; when set, no cluster is started (module docs).
pub const ENV_DATABASE_URL: &str = "LESSOR_TEST_DATABASE_URL";
/// A directory holding `initdb` and `pg_ctl`, to use instead of searching for them.
pub const ENV_PG_BINDIR: &str = "LESSOR_TEST_PG_BINDIR";
/// A directory for the clusters' temporary directories (default: `/dev/shm` when it has
/// 2 GiB free, else the system temp dir).
pub const ENV_PG_TMPDIR: &str = "LESSOR_TEST_PG_TMPDIR";
/// The non-superuser admin role of a harness-started cluster.
pub const ADMIN_ROLE: &str = "lessor_admin";
/// The bootstrap superuser of a harness-started cluster (reachable over the socket only).
pub const SUPERUSER: &str = "postgres";

/// How to get PostgreSQL, for every "not found" message.
pub const INSTALL_HINT: &str = "install PostgreSQL's server binaries (Debian/Ubuntu: \
`apt-get install -y postgresql`; only initdb and pg_ctl are used, no service is needed), \
or set LESSOR_TEST_PG_BINDIR to a directory holding initdb and pg_ctl, or set \
LESSOR_TEST_DATABASE_URL to the admin URL of an existing server \
(a user with LOGIN CREATEDB CREATEROLE)";
