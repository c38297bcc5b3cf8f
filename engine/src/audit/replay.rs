//! Replaying the log to an instant: the state then ([`state_at`]), what changed
//! between two instants ([`diff`]), and the story behind a username ([`who_had`]).
//!
//! The fold is the engine's own, the same function its open runs
//! ([`crate::fold`]), so these answers are the state the engine had, not a
//! second opinion. Timestamps never go backwards in a
//! log (the reader checks), so "the state at `t`" is the fold of every record
//! with `ts <= t`, and the scan stops at the first record after `t`.
//!
//! # Snapshots
//! A snapshot whose timestamp is at or before `t` is a shortcut: its state is
//! loaded and only the records after it are read (from the segment holding its
//! LSN on). It is used only if the log agrees with it (the chain at its LSN); the
//! records before it are then not re-verified here — that is `verify`'s job, and
//! [`ReplayOptions::use_snapshots`] `= false` replays from the log alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;

use super::reader::{ReadError, Reader, Rec};
use super::time::{serialize_ms, serialize_opt_ms};
use super::{PROGRESS_EVERY_RECORDS, Progress, QueryError, report};
use crate::event::{Entry, Event, EventKind, Lsn, RevokeReason};
use crate::fold;
use crate::log::format::Chain;
use crate::log::snapshot;
use crate::log::storage::ReadOnlyDir;
use crate::state::{LeaseStatus, State};

/// How a replay may start.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Start from the newest snapshot at or before the instant, when the log
    /// agrees with it. `false`: replay from LSN 1, trusting only the log.
    pub use_snapshots: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { use_snapshots: true }
    }
}

/// The engine's state as of an instant.
#[derive(Debug)]
pub struct ReplayedState {
    pub state: State,
    /// The last record folded in (0: none).
    pub lsn: Lsn,
    /// The chain after that record.
    pub chain: Chain,
    /// The snapshot the replay started from.
    pub snapshot: Option<String>,
    /// Records decoded and folded (after the snapshot, if any).
    pub events_replayed: u64,
}

/// Snapshot names whose timestamp is at or before `at_ms`, newest first. Only the
/// header is read here; the body is checked when a snapshot is loaded.
fn snapshots_before(dir: &Path, at_ms: i64) -> Vec<String> {
    let storage = ReadOnlyDir::new(dir);
    let Ok(names) = snapshot::list_newest_first(&storage) else { return Vec::new() };
    names
        .into_iter()
        .filter(|name| snapshot::read_header(&storage, name).is_ok_and(|stands| stands.ts_ms <= at_ms))
        .collect()
}

/// A replay that stopped at the first record after its instant.
struct Stopped {
    replayed: ReplayedState,
    reader: Reader,
    /// The first record after the instant, decoded, with its chain.
    next: Option<(Entry, Chain)>,
}

/// The auditor's replay as a fold ([`fold`]): the records come from the
/// read-only [`Reader`], from the segment holding the snapshot's LSN on; a log
/// that does not agree with a snapshot, or ends before it, sends the fold to an
/// older one.
struct AuditFold<'a> {
    dir: &'a Path,
}

impl fold::FoldSource for AuditFold<'_> {
    type Records = Reader;
    type Error = QueryError;

    fn load(&mut self, name: &str) -> Option<fold::Base> {
        // Only the key holder's snapshots: one planted by someone who can write the
        // directory would otherwise become the auditor's answer.
        let storage = ReadOnlyDir::new(self.dir);
        let public_key = crate::log::recovery::first_public_key(&storage);
        fold::load_snapshot(&storage, name, public_key.as_ref()).ok()
    }

    fn records(&mut self, base_lsn: Lsn) -> Result<Reader, QueryError> {
        Ok(Reader::open_from(self.dir, base_lsn + 1)?)
    }

    fn disagrees(&mut self, _: &str, _: Lsn, _: fold::Disagreement, _: &Reader) -> Result<(), QueryError> {
        Ok(())
    }

    fn thread_failed(source: std::io::Error) -> QueryError {
        ReadError::Io { file: "a replay thread".into(), source }.into()
    }
}

fn replay_to(
    dir: &Path,
    at_ms: i64,
    options: ReplayOptions,
    progress: &mut Progress<'_>,
) -> Result<Stopped, QueryError> {
    let candidates = if options.use_snapshots { snapshots_before(dir, at_ms) } else { Vec::new() };
    // Timestamps never go backwards (the reader checks), so the state at `at_ms`
    // is the fold up to the first record after it.
    let folded = fold::fold_from_newest_agreeing(
        &mut AuditFold { dir },
        &candidates,
        |entry| entry.ts_ms > at_ms,
        &mut |reader| report(progress, reader),
    )?;
    let replayed = ReplayedState {
        state: folded.state,
        lsn: folded.lsn,
        chain: folded.chain,
        snapshot: folded.snapshot,
        events_replayed: folded.events,
    };
    Ok(Stopped { replayed, reader: folded.records, next: folded.next })
}

/// The full engine state as of `at_ms`: every record with a timestamp at or before
/// it, folded.
pub fn replay_until(
    dir: &Path,
    at_ms: i64,
    options: ReplayOptions,
    mut progress: Progress<'_>,
) -> Result<ReplayedState, QueryError> {
    Ok(replay_to(dir, at_ms, options, &mut progress)?.replayed)
}

fn reason_name(reason: RevokeReason) -> &'static str {
    match reason {
        RevokeReason::Expired => "expired",
        RevokeReason::Explicit => "explicit",
        RevokeReason::Prefix => "prefix",
        RevokeReason::TokenRevoked => "token_revoked",
        RevokeReason::MountDisabled => "mount_disabled",
        RevokeReason::Recovery => "recovery",
        RevokeReason::Forced => "forced",
    }
}

/// A lease as it stood at an instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveLease {
    pub lease_id: String,
    pub mount: String,
    pub role: String,
    pub username: String,
    /// The owning token's accessor.
    pub accessor: String,
    /// The owning token's display name, if the token still existed then.
    pub display_name: Option<String>,
    #[serde(rename = "issued", serialize_with = "serialize_ms")]
    pub issue_time_ms: i64,
    #[serde(rename = "expires", serialize_with = "serialize_ms")]
    pub expire_time_ms: i64,
    /// `issuing` (intent logged, no outcome yet), `active`, or `revoking`.
    pub status: &'static str,
    pub revoke_reason: Option<&'static str>,
    /// Its revocations failed past the retry budget (still retried).
    pub irrevocable: bool,
}

/// The leases live at an instant: every lease the state held then. A lease past
/// its expiry that was not revoked yet (the engine was down, or revocation is
/// failing) is listed: its database user still existed.
#[derive(Clone, Debug, Serialize)]
pub struct StateAt {
    #[serde(rename = "at", serialize_with = "serialize_ms")]
    pub at_ms: i64,
    /// The last record at or before the instant.
    pub lsn: Lsn,
    #[serde(serialize_with = "serialize_chain")]
    pub chain: Chain,
    pub snapshot: Option<String>,
    pub events_replayed: u64,
    pub leases: Vec<LiveLease>,
}

fn serialize_chain<S: serde::Serializer>(c: &Chain, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(c))
}

fn live_lease(state: &State, lease: &crate::state::Lease) -> LiveLease {
    let (status, revoke_reason) = match lease.status {
        LeaseStatus::Issuing => ("issuing", None),
        LeaseStatus::Active => ("active", None),
        LeaseStatus::Revoking(r) => ("revoking", Some(reason_name(r))),
    };
    LiveLease {
        lease_id: lease.lease_id.to_string(),
        mount: lease.mount.to_string(),
        role: lease.role.to_string(),
        username: lease.username.to_string(),
        accessor: lease.accessor.to_string(),
        display_name: state.tokens.get(&*lease.accessor).map(|t| t.display_name.clone()),
        issue_time_ms: lease.issue_time_ms,
        expire_time_ms: lease.expire_time_ms,
        status,
        revoke_reason,
        irrevocable: lease.irrevocable,
    }
}

/// The leases live at `at_ms`, in lease id order.
pub fn state_at(dir: &Path, at_ms: i64, options: ReplayOptions, progress: Progress<'_>) -> Result<StateAt, QueryError> {
    let r = replay_until(dir, at_ms, options, progress)?;
    let leases = r.state.leases.values().map(|l| live_lease(&r.state, l)).collect();
    Ok(StateAt { at_ms, lsn: r.lsn, chain: r.chain, snapshot: r.snapshot, events_replayed: r.events_replayed, leases })
}

/// A credential handed out in the window (its `IssueCompleted`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IssuedLease {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "serialize_ms")]
    pub ts_ms: i64,
    pub lease_id: String,
    pub role: String,
    pub username: String,
    pub accessor: String,
    pub display_name: Option<String>,
    #[serde(rename = "expires", serialize_with = "serialize_ms")]
    pub expire_time_ms: i64,
}

/// A renewal that took effect in the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Renewal {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "serialize_ms")]
    pub ts_ms: i64,
    pub lease_id: String,
    pub username: String,
    #[serde(rename = "expired_before", serialize_with = "serialize_ms")]
    pub previous_expire_time_ms: i64,
    #[serde(rename = "expires", serialize_with = "serialize_ms")]
    pub expire_time_ms: i64,
}

/// A lease that ended in the window: its database user was dropped (or the
/// lease was force-forgotten).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "serialize_ms")]
    pub ts_ms: i64,
    pub lease_id: String,
    pub role: String,
    pub username: String,
    /// Why the revocation started (`expired`, `explicit`, `prefix`, `token
    /// revoked`, `mount disabled`, `recovery`, `forced`), or `unknown` if no
    /// intent was logged.
    pub reason: &'static str,
    /// `revoke -force`: forgotten although the database refused, so the user may
    /// still exist. A forced revocation the database accepted is not `forced`
    /// here (its reason is).
    pub forced: bool,
    /// What the database said when it refused (only when `forced`).
    pub refusal: Option<String>,
}

/// A lease whose time ran out in the window. See [`diff`] for the exact rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expiry {
    pub lease_id: String,
    pub role: String,
    pub username: String,
    pub accessor: String,
    #[serde(rename = "expired", serialize_with = "serialize_ms")]
    pub expire_time_ms: i64,
    /// When its revocation completed, if that happened in the window too.
    #[serde(rename = "revoked", serialize_with = "serialize_opt_ms")]
    pub revoked_ms: Option<i64>,
}

/// A role created, updated or deleted in the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoleChange {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "serialize_ms")]
    pub ts_ms: i64,
    pub mount: String,
    pub name: String,
    /// `created`, `updated`, `deleted`, or `deleted with its mount`.
    pub change: &'static str,
}

/// A policy created, updated or deleted in the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "serialize_ms")]
    pub ts_ms: i64,
    pub name: String,
    /// `created`, `updated` or `deleted`.
    pub change: &'static str,
}

/// What changed in the window `(from, to]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffReport {
    #[serde(rename = "from", serialize_with = "serialize_ms")]
    pub from_ms: i64,
    #[serde(rename = "to", serialize_with = "serialize_ms")]
    pub to_ms: i64,
    /// The last record at or before `from` (0: none).
    pub from_lsn: Lsn,
    /// The last record at or before `to`.
    pub to_lsn: Lsn,
    pub issued: Vec<IssuedLease>,
    pub renewed: Vec<Renewal>,
    pub revoked: Vec<Revocation>,
    pub expired: Vec<Expiry>,
    pub roles: Vec<RoleChange>,
    pub policies: Vec<PolicyChange>,
}

/// Active leases waiting for their expiry, ordered by it; kept equal to the
/// state's active leases after every event.
#[derive(Debug, Default)]
struct Deadlines {
    queue: BTreeSet<(i64, String)>,
    by_lease: HashMap<String, i64>,
}

impl Deadlines {
    fn sync(&mut self, state: &State, lease_id: &str) {
        if let Some(old) = self.by_lease.remove(lease_id) {
            self.queue.remove(&(old, lease_id.to_string()));
        }
        if let Some(lease) = state.leases.get(lease_id)
            && lease.status == LeaseStatus::Active
        {
            self.queue.insert((lease.expire_time_ms, lease_id.to_string()));
            self.by_lease.insert(lease_id.to_string(), lease.expire_time_ms);
        }
    }

    /// Leases whose expiry is at or before `now`, removed from the queue.
    fn due(&mut self, now: i64) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        while let Some(first) = self.queue.first()
            && first.0 <= now
        {
            let (at, id) = self.queue.pop_first().expect("non-empty");
            self.by_lease.remove(&id);
            out.push((at, id));
        }
        out
    }
}

/// What changed between `from_ms` and `to_ms`: the records with
/// `from < ts <= to`, applied to the state at `from`.
///
/// - **issued**: `IssueCompleted` of a lease that was issuing;
/// - **renewed**: every `RenewCompleted` of a known lease;
/// - **revoked**: every `RevokeCompleted` / `RevokeForced` of a known lease, with
///   the reason its revocation started for (revocations by the expirer included);
/// - **expired**: a lease whose expiry instant `E` lies in `(from, to]` and that
///   was active (issued, no revocation started) with expiry `E` when the log
///   passed `E`: the next record after the lease's last change has `ts >= E`, or
///   no record follows in the window. That is, its time ran out in the window —
///   whether or not the expirer had revoked it by `to` (`revoked` says when it
///   did, if in the window). A lease explicitly revoked
///   before its expiry did not expire; a lease renewed past `to` did not either. A
///   lease that expires and is revoked by the expirer in the window is in both
///   `expired` and `revoked` (reason `expired`): two facts, both true. Each
///   lease is listed once per expiry instant;
/// - **roles** and **policies**: creations, updates and deletions (a role goes
///   with its mount when the mount is disabled).
pub fn diff(
    dir: &Path,
    from_ms: i64,
    to_ms: i64,
    options: ReplayOptions,
    mut progress: Progress<'_>,
) -> Result<DiffReport, QueryError> {
    if to_ms < from_ms {
        return Err(QueryError::BadArgument {
            what: format!(
                "the window ends ({}) before it starts ({}): give the earlier instant first",
                super::time::rfc3339_ms(to_ms),
                super::time::rfc3339_ms(from_ms)
            ),
        });
    }
    let Stopped { replayed, mut reader, next } = replay_to(dir, from_ms, options, &mut progress)?;
    let mut state = replayed.state;
    let mut report_out =
        DiffReport { from_ms, to_ms, from_lsn: replayed.lsn, to_lsn: replayed.lsn, ..DiffReport::default() };
    let mut deadlines = Deadlines::default();
    for (id, lease) in &state.leases {
        if lease.status == LeaseStatus::Active && lease.expire_time_ms > from_ms {
            deadlines.queue.insert((lease.expire_time_ms, id.to_string()));
            deadlines.by_lease.insert(id.to_string(), lease.expire_time_ms);
        }
    }
    let mut expired_index: HashMap<String, usize> = HashMap::new();
    let mut pending = next.map(|(entry, _)| entry);
    let mut events = 0u64;
    loop {
        let entry = match pending.take() {
            Some(e) => e,
            None => match reader.next_record()? {
                Some(rec) => to_entry(&rec)?,
                None => break,
            },
        };
        if entry.ts_ms > to_ms {
            break;
        }
        for (at, id) in deadlines.due(entry.ts_ms) {
            push_expiry(&state, &mut report_out.expired, &mut expired_index, at, id, from_ms);
        }
        record_change(&state, &entry, &mut report_out, &mut expired_index);
        let lease_id = entry.event.lease_id().map(str::to_string);
        report_out.to_lsn = entry.lsn;
        state.apply_owned(entry);
        if let Some(id) = lease_id {
            deadlines.sync(&state, &id);
        }
        events += 1;
        if events.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            report(&mut progress, &reader);
        }
    }
    for (at, id) in deadlines.due(to_ms) {
        push_expiry(&state, &mut report_out.expired, &mut expired_index, at, id, from_ms);
    }
    report(&mut progress, &reader);
    report_out.expired.sort_by(|a, b| (a.expire_time_ms, &a.lease_id).cmp(&(b.expire_time_ms, &b.lease_id)));
    Ok(report_out)
}

fn to_entry(rec: &Rec<'_>) -> Result<Entry, QueryError> {
    Ok(Entry { lsn: rec.lsn, ts_ms: rec.ts_ms, event: rec.decode()? })
}

fn push_expiry(
    state: &State,
    out: &mut Vec<Expiry>,
    index: &mut HashMap<String, usize>,
    at: i64,
    id: String,
    from_ms: i64,
) {
    // A renewal to an instant already past the window's start is not an expiry in it.
    let Some(lease) = state.leases.get(id.as_str()).filter(|_| at > from_ms) else { return };
    // An overdue lease touched again (a failed revocation, say) is the same expiry.
    if index.get(&id).is_some_and(|&i| out[i].expire_time_ms == at) {
        return;
    }
    index.insert(id.clone(), out.len());
    out.push(Expiry {
        lease_id: id,
        role: lease.role.to_string(),
        username: lease.username.to_string(),
        accessor: lease.accessor.to_string(),
        expire_time_ms: at,
        revoked_ms: None,
    });
}

/// Notes what `entry` changes, looking at the state before it is applied.
fn record_change(state: &State, entry: &Entry, out: &mut DiffReport, expired_index: &mut HashMap<String, usize>) {
    let (lsn, ts_ms) = (entry.lsn, entry.ts_ms);
    match &entry.event {
        Event::IssueCompleted(e) => {
            if let Some(l) = state.leases.get(e.lease_id.as_str())
                && l.status == LeaseStatus::Issuing
            {
                out.issued.push(IssuedLease {
                    lsn,
                    ts_ms,
                    lease_id: l.lease_id.to_string(),
                    role: l.role.to_string(),
                    username: l.username.to_string(),
                    accessor: l.accessor.to_string(),
                    display_name: state.tokens.get(&*l.accessor).map(|t| t.display_name.clone()),
                    expire_time_ms: l.expire_time_ms,
                });
            }
        }
        Event::RenewCompleted(e) => {
            if let Some(l) = state.leases.get(e.lease_id.as_str()) {
                out.renewed.push(Renewal {
                    lsn,
                    ts_ms,
                    lease_id: l.lease_id.to_string(),
                    username: l.username.to_string(),
                    previous_expire_time_ms: l.expire_time_ms,
                    expire_time_ms: e.expire_time_ms,
                });
            }
        }
        Event::RevokeCompleted(_) | Event::RevokeForced(_) => {
            let id = entry.event.lease_id().expect("lease event");
            if let Some(l) = state.leases.get(id) {
                let refusal = match &entry.event {
                    Event::RevokeForced(f) => Some(f.error.clone()),
                    _ => None,
                };
                let forced = refusal.is_some();
                let reason = match l.status {
                    LeaseStatus::Revoking(r) => reason_name(r),
                    _ if forced => "forced",
                    _ => "unknown",
                };
                out.revoked.push(Revocation {
                    lsn,
                    ts_ms,
                    lease_id: id.to_string(),
                    role: l.role.to_string(),
                    username: l.username.to_string(),
                    reason,
                    forced,
                    refusal,
                });
                if let Some(&i) = expired_index.get(id) {
                    out.expired[i].revoked_ms.get_or_insert(ts_ms);
                }
            }
        }
        Event::RoleWritten(e) => {
            let existed = state.roles.contains_key(&(e.mount.clone(), e.name.clone()));
            let change = if existed { "updated" } else { "created" };
            out.roles.push(RoleChange { lsn, ts_ms, mount: e.mount.clone(), name: e.name.clone(), change });
        }
        Event::RoleDeleted(e) if state.roles.contains_key(&(e.mount.clone(), e.name.clone())) => {
            out.roles.push(RoleChange { lsn, ts_ms, mount: e.mount.clone(), name: e.name.clone(), change: "deleted" });
        }
        Event::MountDisabled(e) => {
            for (mount, name) in state.roles.keys().filter(|(m, _)| m == &e.path) {
                let change = "deleted with its mount";
                out.roles.push(RoleChange { lsn, ts_ms, mount: mount.clone(), name: name.clone(), change });
            }
        }
        Event::PolicyWritten(e) => {
            let change = if state.policies.contains_key(&e.name) { "updated" } else { "created" };
            out.policies.push(PolicyChange { lsn, ts_ms, name: e.name.clone(), change });
        }
        Event::PolicyDeleted(e) if state.policies.contains_key(&e.name) => {
            out.policies.push(PolicyChange { lsn, ts_ms, name: e.name.clone(), change: "deleted" });
        }
        _ => {}
    }
}

/// One renewal in a lease's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RenewalAt {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "serialize_ms")]
    pub ts_ms: i64,
    #[serde(rename = "expires", serialize_with = "serialize_ms")]
    pub expire_time_ms: i64,
}

/// How and when a lease ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseEnd {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "serialize_ms")]
    pub ts_ms: i64,
    /// `revoked (<reason>)` (the user was dropped; `revoked (forced)` for a
    /// revoke-force the database accepted), `revoke forced: … (<database
    /// error>)` (forgotten, the user may still exist), or `issue failed:
    /// <database error>`.
    pub how: String,
}

/// The life of one lease behind a database username.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseLife {
    pub lease_id: String,
    pub mount: String,
    pub role: String,
    pub connection: String,
    pub username: String,
    pub accessor: String,
    /// The owning token's display name and policies, from its creation record.
    pub display_name: Option<String>,
    pub token_policies: Vec<String>,
    /// The issue intent.
    pub requested_lsn: Lsn,
    #[serde(rename = "requested", serialize_with = "serialize_ms")]
    pub requested_ms: i64,
    /// The issue outcome: the caller got the credential.
    #[serde(rename = "issued", serialize_with = "serialize_opt_ms")]
    pub issued_ms: Option<i64>,
    /// The expiry in force at the end of the log (or when the lease ended).
    #[serde(rename = "expires", serialize_with = "serialize_ms")]
    pub expire_time_ms: i64,
    #[serde(rename = "expires_max", serialize_with = "serialize_ms")]
    pub expire_time_max_ms: i64,
    pub renewals: Vec<RenewalAt>,
    /// Its revocation started (and why), if it did.
    pub revoke_reason: Option<&'static str>,
    #[serde(rename = "revoke_started", serialize_with = "serialize_opt_ms")]
    pub revoke_started_ms: Option<i64>,
    pub irrevocable: bool,
    /// `None`: still live at the end of the log.
    pub ended: Option<LeaseEnd>,
}

impl LeaseLife {
    /// Did this lease's database user possibly exist at `at_ms` (from the intent
    /// on, until the lease ended; never for a failed issue)?
    pub fn held_at(&self, at_ms: i64) -> bool {
        let failed = self.ended.as_ref().is_some_and(|e| e.how.starts_with("issue failed"));
        !failed && self.requested_ms <= at_ms && self.ended.as_ref().is_none_or(|e| e.ts_ms > at_ms)
    }
}

/// Every lease that created database user `username`, with its owner and
/// lifetime; with `at_ms`, only those that held it at that instant. Two passes:
/// the leases, then (up to the last intent) the creation records of their tokens.
pub fn who_had(
    dir: &Path,
    username: &str,
    at_ms: Option<i64>,
    mut progress: Progress<'_>,
) -> Result<Vec<LeaseLife>, QueryError> {
    let mut lives: Vec<LeaseLife> = Vec::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut reader = Reader::open(dir)?;
    let mut scanned = 0u64;
    let lease_kinds: Vec<u16> = [
        EventKind::IssueStarted,
        EventKind::IssueCompleted,
        EventKind::IssueFailed,
        EventKind::RenewCompleted,
        EventKind::RevokeStarted,
        EventKind::RevokeCompleted,
        EventKind::RevokeForced,
        EventKind::LeaseIrrevocable,
    ]
    .iter()
    .map(|k| k.code())
    .collect();
    loop {
        scanned += 1;
        if scanned.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            report(&mut progress, &reader);
        }
        let Some(rec) = reader.next_record()? else { break };
        if !lease_kinds.contains(&rec.kind) {
            continue;
        }
        let (lsn, ts_ms) = (rec.lsn, rec.ts_ms);
        let event = rec.decode()?;
        if let Event::IssueStarted(e) = &event {
            if e.username == username {
                open.insert(e.lease_id.clone(), lives.len());
                lives.push(LeaseLife {
                    lease_id: e.lease_id.clone(),
                    mount: e.mount.clone(),
                    role: e.role.clone(),
                    connection: e.connection.clone(),
                    username: e.username.clone(),
                    accessor: e.accessor.clone(),
                    display_name: None,
                    token_policies: Vec::new(),
                    requested_lsn: lsn,
                    requested_ms: ts_ms,
                    issued_ms: None,
                    expire_time_ms: e.expire_time_ms,
                    expire_time_max_ms: e.expire_time_max_ms,
                    renewals: Vec::new(),
                    revoke_reason: None,
                    revoke_started_ms: None,
                    irrevocable: false,
                    ended: None,
                });
            } else {
                // The id now names someone else's lease.
                open.remove(&e.lease_id);
            }
            continue;
        }
        let Some(&i) = event.lease_id().and_then(|id| open.get(id)) else { continue };
        let life = &mut lives[i];
        let end = |how: String| Some(LeaseEnd { lsn, ts_ms, how });
        match event {
            Event::IssueCompleted(_) => {
                life.issued_ms.get_or_insert(ts_ms);
            }
            Event::IssueFailed(e) if life.issued_ms.is_none() => life.ended = end(format!("issue failed: {}", e.error)),
            Event::RenewCompleted(e) => {
                life.expire_time_ms = e.expire_time_ms;
                life.renewals.push(RenewalAt { lsn, ts_ms, expire_time_ms: e.expire_time_ms });
            }
            Event::RevokeStarted(e) if life.revoke_reason.is_none() => {
                life.revoke_reason = Some(reason_name(e.reason));
                life.revoke_started_ms = Some(ts_ms);
            }
            Event::LeaseIrrevocable(_) => life.irrevocable = true,
            Event::RevokeCompleted(_) => {
                life.ended = end(format!("revoked ({})", life.revoke_reason.unwrap_or("no intent logged")));
            }
            Event::RevokeForced(e) => {
                life.ended = end(format!(
                    "revoke forced: forgotten although the database refused, the user may still exist ({})",
                    e.error
                ));
            }
            _ => {}
        }
        if life.ended.is_some() {
            open.remove(&life.lease_id);
        }
    }
    report(&mut progress, &reader);
    if let Some(at) = at_ms {
        lives.retain(|l| l.held_at(at));
    }
    name_owners(dir, &mut lives)?;
    Ok(lives)
}

/// Fills in display names and policies from the owners' `TokenCreated` records,
/// which precede their leases' intents.
fn name_owners(dir: &Path, lives: &mut [LeaseLife]) -> Result<(), QueryError> {
    let Some(until) = lives.iter().map(|l| l.requested_lsn).max() else { return Ok(()) };
    let mut wanted: BTreeMap<String, Option<(String, Vec<String>)>> =
        lives.iter().map(|l| (l.accessor.clone(), None)).collect();
    let mut reader = Reader::open(dir)?;
    while let Some(rec) = reader.next_record()? {
        if rec.lsn >= until {
            break;
        }
        if rec.kind != EventKind::TokenCreated.code() {
            continue;
        }
        if let Event::TokenCreated(t) = rec.decode()?
            && let Some(slot) = wanted.get_mut(&t.accessor)
        {
            *slot = Some((t.display_name, t.policies));
        }
    }
    for life in lives {
        if let Some(Some((name, policies))) = wanted.get(&life.accessor) {
            life.display_name = Some(name.clone());
            life.token_policies = policies.clone();
        }
    }
    Ok(())
}
