//! Where the SCRAM cost of `CREATE ROLE … PASSWORD` goes, measured on one
//! connection, one statement at a time:
//!
//! * the server's time for `CREATE ROLE … PASSWORD '<plaintext>'` (the server
//!   computes the verifier: PBKDF2 at its own count) against
//!   `PASSWORD '<verifier>'` computed beforehand at 4096 and at 1 iteration —
//!   if PostgreSQL re-derived anything from a given verifier, the two verifier
//!   rows would differ, and the plaintext row would not stand apart;
//! * lessor's own time to compute a verifier at 4096, 16 and 1 iterations;
//! * a login (SCRAM handshake) of a role stored at 4096 and at 1 iteration.
//!
//! `cargo run --release -p lessor-benches --example scram_cost -- [roles] [postgres admin URL]`
//! (without a URL it starts a throwaway cluster, data on disk, fsync on).

use std::time::{Duration, Instant};

use lessor_engine::plugin::scram::scram_sha256_verifier;
use lessor_engine::text::password::{PasswordPolicy, generate_password};

fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("OS random");
}

fn median_us(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e6
}

/// How to log in as a given role: the admin's connection settings with its name.
type LoginConfig = Box<dyn Fn(&str, &str) -> tokio_postgres::Config>;

fn main() {
    let mut args = std::env::args().skip(1);
    let roles: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let url = args.next();
    let _cluster;
    let (config, login): (tokio_postgres::Config, LoginConfig) = match url {
        Some(url) => {
            let config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
            let base = config.clone();
            (
                config,
                Box::new(move |u: &str, p: &str| {
                    let mut c = base.clone();
                    c.user(u).password(p);
                    c
                }),
            )
        }
        None => {
            if std::env::var_os(lessor_pgtemp::ENV_PG_TMPDIR).is_none() {
                // SAFETY: single-threaded here; nothing reads the environment concurrently.
                unsafe { std::env::set_var(lessor_pgtemp::ENV_PG_TMPDIR, std::env::temp_dir()) };
            }
            let cluster = lessor_pgtemp::private_cluster();
            for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
                cluster.superuser_execute(&format!("ALTER SYSTEM SET {setting} = on"));
            }
            cluster.superuser_execute("SELECT pg_reload_conf()");
            let db = cluster.database("scram_cost");
            let config = db.admin_config();
            let db = std::sync::Arc::new(db);
            _cluster = cluster;
            (config, Box::new(move |u: &str, p: &str| db.login_config(u, p)))
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        let version: String = client.query_one("SHOW server_version", &[]).await.unwrap().get(0);
        let encryption: String = client.query_one("SHOW password_encryption", &[]).await.unwrap().get(0);
        println!("PostgreSQL {version}, password_encryption = {encryption}, {roles} roles per row");
        let policy = PasswordPolicy::default();
        let run = random_tag();
        let mut created = Vec::new();
        let mut passwords = std::collections::HashMap::new();
        for (label, iterations) in
            [("plaintext (server hashes)", None), ("verifier, 4096", Some(4096)), ("verifier, 1", Some(1))]
        {
            let mut times = Vec::with_capacity(roles);
            for i in 0..roles {
                let name = format!("v-scram-{run}-{}-{i}", iterations.unwrap_or(0));
                let password = generate_password(&policy, &mut fill);
                let value = match iterations {
                    None => password.clone(),
                    Some(n) => scram_sha256_verifier(&password, n, &mut fill).expect("ASCII password"),
                };
                let sql = format!("CREATE ROLE \"{name}\" LOGIN PASSWORD '{value}'");
                let start = Instant::now();
                client.batch_execute(&sql).await.expect("CREATE ROLE");
                times.push(start.elapsed());
                passwords.insert(name.clone(), password);
                created.push(name);
            }
            println!("CREATE ROLE with {label:<26}: median {:>7.0} µs (server + round trip)", median_us(times));
        }
        for iterations in [4096u32, 16, 1] {
            let times: Vec<Duration> = (0..roles)
                .map(|_| {
                    let start = Instant::now();
                    let _ = scram_sha256_verifier("Probe-Password-1-aaaa", iterations, &mut fill);
                    start.elapsed()
                })
                .collect();
            println!("lessor computes a verifier at {iterations:>4} iterations: median {:>7.0} µs", median_us(times));
        }
        for iterations in [4096, 1] {
            let mut times = Vec::new();
            for name in created.iter().filter(|n| n.contains(&format!("-{iterations}-"))).take(roles.min(50)) {
                let config = login(name, &passwords[name]);
                let start = Instant::now();
                let (c, conn) = config.connect(tokio_postgres::NoTls).await.expect("login");
                times.push(start.elapsed());
                drop(c);
                drop(conn);
            }
            println!(
                "login (SCRAM) of a role stored at {iterations:>4} iterations: median {:>7.0} µs",
                median_us(times)
            );
        }
        for name in &created {
            client.batch_execute(&format!("DROP ROLE \"{name}\"")).await.expect("DROP ROLE");
        }
    });
}

fn random_tag() -> String {
    lessor_engine::text::random::random_alnum(6, &mut fill).to_ascii_lowercase()
}
