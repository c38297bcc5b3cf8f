//! Test support shared by unit tests, the `tests/` crate, benches and fuzzers
//! (feature `testing`): fixed sample events and a seeded event generator whose
//! events refer to each other (same mounts, roles, leases, tokens), so folds do
//! real work; a fault-injecting plugin; and the always-open commit gate the load
//! generator's raw baseline runs the real plugin with.

use crate::event::*;

fn sealed(tag: u8) -> Sealed {
    Sealed { nonce: [tag; 12], ciphertext: vec![tag, tag.wrapping_add(1), 0xee] }
}

/// One fixed, fully populated event of each kind: what the golden test pins.
pub fn sample(kind: EventKind) -> Event {
    let s = |v: &str| v.to_string();
    match kind {
        EventKind::EngineInitialized => EngineInitialized { key_check: [1; 32], checkpoint_public_key: [2; 32] }.into(),
        EventKind::TailTruncated => TailTruncated { segment_first_lsn: 1, offset: 4096, bytes: 17 }.into(),
        EventKind::BatchSigned => BatchSigned { signature: vec![0x5a; 64] }.into(),
        EventKind::BatchMac => BatchMac { mac: vec![0xa5; 32] }.into(),
        EventKind::Checkpoint => {
            Checkpoint { lsn: 9, chain: [3; 32], ts_ms: 1_700_000_000_000, signature: vec![4; 64] }.into()
        }
        EventKind::MountEnabled => MountEnabled {
            path: s("database/"),
            mount_type: s("database"),
            description: s("prod"),
            default_lease_ttl_ms: 3_600_000,
            max_lease_ttl_ms: 86_400_000,
        }
        .into(),
        EventKind::MountTuned => {
            MountTuned { path: s("database/"), default_lease_ttl_ms: 60_000, max_lease_ttl_ms: 120_000 }.into()
        }
        EventKind::MountDisabled => MountDisabled { path: s("database/") }.into(),
        EventKind::ConnectionWritten => ConnectionWritten {
            mount: s("database/"),
            name: s("pg"),
            plugin_name: s("postgresql-database-plugin"),
            connection_url: s("postgresql://{{username}}:{{password}}@localhost:5432/app"),
            username: s("vaultadmin"),
            password: Some(sealed(5)),
            allowed_roles: vec![s("app-*")],
            verify_connection: true,
            max_open_connections: 4,
            max_idle_connections: 2,
            max_connection_lifetime_ms: 0,
            password_authentication: s("password"),
            root_rotation_statements: vec![s("ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}'")],
            username_template: s(""),
            password_policy: s(""),
            scram_iterations: 4096,
        }
        .into(),
        EventKind::ConnectionDeleted => ConnectionDeleted { mount: s("database/"), name: s("pg") }.into(),
        EventKind::ConnectionReset => ConnectionReset { mount: s("database/"), name: s("pg") }.into(),
        EventKind::RoleWritten => RoleWritten {
            mount: s("database/"),
            name: s("app-readonly"),
            db_name: s("pg"),
            creation_statements: vec![s("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'")],
            revocation_statements: vec![s("DROP ROLE IF EXISTS \"{{name}}\"")],
            renew_statements: vec![],
            rollback_statements: vec![],
            default_ttl_ms: 3_600_000,
            max_ttl_ms: 86_400_000,
            terminate_sessions: false,
            lease_count_max: 0,
        }
        .into(),
        EventKind::RoleDeleted => RoleDeleted { mount: s("database/"), name: s("app-readonly") }.into(),
        EventKind::PolicyWritten => PolicyWritten {
            name: s("app"),
            text: s("path \"database/creds/app-readonly\" { capabilities = [\"read\"] }"),
        }
        .into(),
        EventKind::PolicyDeleted => PolicyDeleted { name: s("app") }.into(),
        EventKind::TokenCreated => TokenCreated {
            accessor: s("acc1"),
            token_hash: [6; 32],
            parent_accessor: Some(s("acc0")),
            policies: vec![s("app")],
            display_name: s("token-app"),
            ttl_ms: 3_600_000,
            explicit_max_ttl_ms: 0,
            expire_time_ms: Some(1_700_003_600_000),
            renewable: true,
            num_uses: 0,
        }
        .into(),
        EventKind::TokenRenewed => TokenRenewed { accessor: s("acc1"), expire_time_ms: 1_700_007_200_000 }.into(),
        EventKind::TokenUsed => TokenUsed { accessor: s("acc1") }.into(),
        EventKind::TokenRevoked => TokenRevoked { accessor: s("acc1"), orphan_children: false }.into(),
        EventKind::IssueStarted => IssueStarted {
            lease_id: s("database/creds/app-readonly/abc"),
            mount: s("database/"),
            role: s("app-readonly"),
            connection: s("pg"),
            username: s("v-token-app-read-abc-1700000000"),
            accessor: s("acc1"),
            expire_time_ms: 1_700_003_600_000,
            expire_time_max_ms: 1_700_086_400_000,
            renewable: true,
            revocation_statements: vec![s("DROP ROLE IF EXISTS \"{{name}}\"")],
            request_id: s("5b77296a-e052-789c-12a3-921be973b48b"),
            path: s("database/creds/app-readonly"),
        }
        .into(),
        EventKind::IssueCompleted => IssueCompleted { lease_id: s("database/creds/app-readonly/abc") }.into(),
        EventKind::IssueFailed => {
            IssueFailed { lease_id: s("database/creds/app-readonly/abc"), error: s("permission denied") }.into()
        }
        EventKind::RenewStarted => RenewStarted {
            lease_id: s("database/creds/app-readonly/abc"),
            expire_time_ms: 1_700_007_200_000,
            accessor: s("acc1"),
            request_id: s("5b77296a-e052-789c-12a3-921be973b48b"),
            path: s("sys/leases/renew"),
        }
        .into(),
        EventKind::RenewCompleted => {
            RenewCompleted { lease_id: s("database/creds/app-readonly/abc"), expire_time_ms: 1_700_007_200_000 }.into()
        }
        EventKind::RenewFailed => {
            RenewFailed { lease_id: s("database/creds/app-readonly/abc"), error: s("timeout") }.into()
        }
        EventKind::RevokeStarted => {
            RevokeStarted::by_engine(s("database/creds/app-readonly/abc"), RevokeReason::Expired).into()
        }
        EventKind::RevokeCompleted => RevokeCompleted { lease_id: s("database/creds/app-readonly/abc") }.into(),
        EventKind::RevokeFailed => RevokeFailed {
            lease_id: s("database/creds/app-readonly/abc"),
            attempt: 2,
            error: s("connection refused"),
            next_attempt_time_ms: 1_700_000_040_000,
        }
        .into(),
        EventKind::LeaseIrrevocable => LeaseIrrevocable {
            lease_id: s("database/creds/app-readonly/abc"),
            attempts: 6,
            error: s("connection refused"),
        }
        .into(),
        EventKind::RevokeForced => RevokeForced {
            lease_id: s("database/creds/app-readonly/abc"),
            error: s("role \"v-app-x\" cannot be dropped because some objects depend on it"),
        }
        .into(),
        EventKind::RotateRootStarted => {
            RotateRootStarted { mount: s("database/"), name: s("pg"), old_password: sealed(7), new_password: sealed(8) }
                .into()
        }
        EventKind::RotateRootCompleted => {
            RotateRootCompleted { mount: s("database/"), name: s("pg"), password: sealed(8) }.into()
        }
        EventKind::RotateRootFailed => {
            RotateRootFailed { mount: s("database/"), name: s("pg"), error: s("timeout") }.into()
        }
        EventKind::RequestRecorded => RequestRecorded {
            request_id: s("req-1"),
            accessor: s("acc1"),
            display_name: s("token-app"),
            operation: Operation::Read,
            path: s("database/creds/other"),
            outcome: Outcome::Denied,
            error: Some(s("permission denied")),
        }
        .into(),
    }
}

/// A small deterministic PRNG (splitmix64): the generator must not depend on any
/// crate's RNG so a seed reproduces the same events forever.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Generates events over a small universe of names so that they hit the same
/// objects: `universe` bounds how many leases / tokens / roles exist.
pub fn generated_event(rng: &mut SplitMix64, universe: u64) -> Event {
    let universe = universe.max(1);
    let n = rng.below(universe);
    let lease_id = format!("database/creds/role{}/{n}", n % 7);
    let accessor = format!("acc{}", n % 13);
    let kinds = EventKind::ALL;
    let kind = match kinds[rng.below(kinds.len() as u64) as usize] {
        // Written by the engine and its writer, never by a request: an
        // EngineInitialized at LSN 1 would name a public key, and no one but the
        // writer (with the key) can make a proof that verifies under it.
        EventKind::EngineInitialized | EventKind::BatchSigned | EventKind::BatchMac => EventKind::TailTruncated,
        kind => kind,
    };
    let mut event = sample(kind);
    let ts = 1_700_000_000_000 + rng.below(1 << 30) as i64;
    match &mut event {
        Event::IssueStarted(e) => {
            e.lease_id = lease_id;
            e.role = format!("role{}", n % 7);
            e.username = format!("v-user-{n}");
            e.accessor = accessor;
            e.expire_time_ms = ts;
        }
        Event::IssueCompleted(e) => e.lease_id = lease_id,
        Event::IssueFailed(e) => e.lease_id = lease_id,
        Event::RenewStarted(e) => {
            e.lease_id = lease_id;
            e.expire_time_ms = ts;
        }
        Event::RenewCompleted(e) => {
            e.lease_id = lease_id;
            e.expire_time_ms = ts;
        }
        Event::RenewFailed(e) => e.lease_id = lease_id,
        Event::RevokeStarted(e) => e.lease_id = lease_id,
        Event::RevokeCompleted(e) => e.lease_id = lease_id,
        Event::RevokeFailed(e) => {
            e.lease_id = lease_id;
            e.attempt = rng.below(8) as u32;
        }
        Event::LeaseIrrevocable(e) => e.lease_id = lease_id,
        Event::RevokeForced(e) => e.lease_id = lease_id,
        Event::TokenCreated(e) => {
            e.accessor = accessor;
            e.parent_accessor = (!n.is_multiple_of(3)).then(|| format!("acc{}", (n / 3) % 13));
            e.token_hash = [n as u8; 32];
        }
        Event::TokenRenewed(e) => e.accessor = accessor,
        Event::TokenUsed(e) => e.accessor = accessor,
        Event::TokenRevoked(e) => {
            e.accessor = accessor;
            e.orphan_children = n.is_multiple_of(2);
        }
        Event::MountEnabled(e) => e.path = format!("db{}/", n % 3),
        Event::MountTuned(e) => e.path = format!("db{}/", n % 3),
        Event::MountDisabled(e) => e.path = format!("db{}/", n % 3),
        Event::RoleWritten(e) => {
            e.mount = format!("db{}/", n % 3);
            e.name = format!("role{}", n % 7);
        }
        Event::RoleDeleted(e) => {
            e.mount = format!("db{}/", n % 3);
            e.name = format!("role{}", n % 7);
        }
        Event::PolicyWritten(e) => e.name = format!("p{}", n % 5),
        Event::PolicyDeleted(e) => e.name = format!("p{}", n % 5),
        Event::RequestRecorded(e) => e.request_id = format!("req-{}", rng.next_u64()),
        _ => {}
    }
    event
}

/// A realistic issuance stream for benches: each credential is an issue intent and
/// outcome, an audit record, and later a revoke intent and outcome.
pub fn issuance_events(count: usize, seed: u64) -> Vec<Event> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(count);
    let mut i = 0u64;
    while out.len() < count {
        let id = format!("database/creds/app-readonly/{:020}", rng.next_u64());
        let mut started = match sample(EventKind::IssueStarted) {
            Event::IssueStarted(e) => e,
            _ => unreachable!("sample returns its kind"),
        };
        started.lease_id = id.clone();
        started.username = format!("v-token-app-read-{i:020}-1700000000");
        out.push(Event::IssueStarted(started));
        out.push(IssueCompleted { lease_id: id.clone() }.into());
        out.push(sample(EventKind::RequestRecorded));
        if i % 2 == 1 {
            out.push(RevokeStarted::by_engine(id.clone(), RevokeReason::Expired).into());
            out.push(RevokeCompleted { lease_id: id }.into());
        }
        i += 1;
    }
    out.truncate(count);
    out
}

/// A commit gate that is always open: a [`crate::plugin::DatabasePlugin`] given it
/// commits as soon as its statements ran. In the engine the gate is the issue
/// intent's fsync (I1); the load generator's raw baseline has no log, and issues
/// through the real PostgreSQL plugin's `create_user` with this gate instead of
/// copying its transaction loop — the same pool, rendering, SCRAM, serialized
/// catalog updates, retries and COMMIT as lessor — so the baseline cannot drift
/// from what it is compared with.
pub fn open_gate<'a>() -> crate::plugin::CommitGate<'a> {
    Box::pin(std::future::ready(Ok(())))
}

/// What the fault-injecting plugin's "database" holds, and the faults armed on it.
#[derive(Debug, Default)]
pub struct SimDatabase {
    /// Users that exist, with their `{{expiration}}`.
    pub users: std::collections::BTreeMap<String, String>,
    /// Every call fails as if the server were unreachable.
    pub down: bool,
    /// The next N creations fail inside their transaction (nothing created).
    pub fail_creates: u32,
    /// The next creation commits, then never returns (a process dying between
    /// COMMIT and recording the outcome).
    pub hang_after_commit: bool,
    /// Every revocation is refused with this message, as a database error (a
    /// role the database cannot drop).
    pub refuse_revokes: Option<String>,
    /// Usernames dropped, in order.
    pub revoked: Vec<String>,
}

/// **Test double**: a [`crate::plugin::DatabasePlugin`] over an in-memory
/// [`SimDatabase`] that fails or hangs on command.
#[derive(Debug, Clone, Default)]
pub struct FaultInjectingPlugin {
    pub db: std::sync::Arc<std::sync::Mutex<SimDatabase>>,
}

impl FaultInjectingPlugin {
    /// A factory for `EngineOptions::plugin_factory` handing out this plugin.
    pub fn factory(&self) -> crate::plugin::PluginFactory {
        let plugin = self.clone();
        crate::plugin::PluginFactory(std::sync::Arc::new(move |_| Ok(std::sync::Arc::new(plugin.clone()))))
    }

    fn db(&self) -> std::sync::MutexGuard<'_, SimDatabase> {
        self.db.lock().expect("sim database lock")
    }

    fn reachable(&self) -> Result<(), crate::plugin::PluginError> {
        if self.db().down {
            return Err(crate::plugin::PluginError::Connect("injected: database down".into()));
        }
        Ok(())
    }
}

impl crate::plugin::DatabasePlugin for FaultInjectingPlugin {
    fn verify(&self) -> crate::plugin::PluginFuture<'_, ()> {
        Box::pin(async move { self.reachable() })
    }

    fn create_user<'a>(
        &'a self,
        user: crate::plugin::NewUser<'a>,
        gate: crate::plugin::CommitGate<'a>,
    ) -> crate::plugin::PluginFuture<'a, ()> {
        Box::pin(async move {
            self.reachable()?;
            {
                let mut db = self.db();
                if db.fail_creates > 0 {
                    db.fail_creates -= 1;
                    return Err(crate::plugin::PluginError::Database {
                        message: "injected: creation failed".into(),
                        sqlstate: None,
                    });
                }
            }
            gate.await.map_err(crate::plugin::PluginError::Aborted)?;
            let hang = {
                let mut db = self.db();
                db.users.insert(user.username.to_string(), user.expiration.to_string());
                std::mem::take(&mut db.hang_after_commit)
            };
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }

    fn renew_user<'a>(
        &'a self,
        username: &'a str,
        expiration: &'a str,
        _statements: &'a [String],
    ) -> crate::plugin::PluginFuture<'a, ()> {
        Box::pin(async move {
            self.reachable()?;
            if let Some(e) = self.db().users.get_mut(username) {
                *e = expiration.to_string();
            }
            Ok(())
        })
    }

    fn revoke_user<'a>(
        &'a self,
        username: &'a str,
        _statements: &'a [String],
        _terminate_sessions: bool,
        gate: crate::plugin::CommitGate<'a>,
    ) -> crate::plugin::PluginFuture<'a, ()> {
        Box::pin(async move {
            self.reachable()?;
            if let Some(message) = self.db().refuse_revokes.clone() {
                return Err(crate::plugin::PluginError::Database { message, sqlstate: None });
            }
            gate.await.map_err(crate::plugin::PluginError::Aborted)?;
            let mut db = self.db();
            if db.users.remove(username).is_some() {
                db.revoked.push(username.to_string());
            }
            Ok(())
        })
    }

    fn rotate_root<'a>(
        &'a self,
        _username: &'a str,
        _new_password: &'a str,
        _statements: &'a [String],
    ) -> crate::plugin::PluginFuture<'a, ()> {
        Box::pin(async move { self.reachable() })
    }

    /// The simulated server keeps no sessions of a dead run.
    fn other_sessions<'a>(&'a self, _prefix: &'a str, _mine: &'a str) -> crate::plugin::PluginFuture<'a, Option<u64>> {
        Box::pin(async move {
            self.reachable()?;
            Ok(Some(0))
        })
    }

    fn user_exists<'a>(&'a self, username: &'a str) -> crate::plugin::PluginFuture<'a, bool> {
        Box::pin(async move {
            self.reachable()?;
            Ok(self.db().users.contains_key(username))
        })
    }
}
