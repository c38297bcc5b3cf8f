//! The timeline: matching events in log order, as text lines or JSON lines.
//!
//! Filters combine with AND. Several follow a lease through its life, though only
//! the intent names its owner: a lease belongs to `--username U` (or `--accessor
//! A`, or `--token T`) from the `IssueStarted` that says so until it ends
//! (`RevokeCompleted`, `RevokeForced`, `IssueFailed`), so the reader remembers the
//! ids of such leases while they live — memory grows with those leases, not with
//! the log. Events before `since` are still read (not printed) for that.

use std::collections::HashSet;
use std::ops::ControlFlow;

use serde_json::{Map, Value, json};

use super::reader::Reader;
use super::time::rfc3339_ms;
use super::{PROGRESS_EVERY_RECORDS, Progress, QueryError, report};
use crate::event::{Entry, Event, EventKind, Lsn, Outcome};
use crate::log::format::Chain;

/// Which events a timeline shows. `None` fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Events at or after this instant (Unix ms).
    pub since_ms: Option<i64>,
    /// Events at or before this instant (Unix ms).
    pub until_ms: Option<i64>,
    /// A role name (`app-readonly`) or mount and role (`database/app-readonly`):
    /// role writes and deletes, issue requests, and the events of its leases.
    pub role: Option<String>,
    /// One lease's events.
    pub lease_id: Option<String>,
    /// The events of the leases that created this database username.
    pub username: Option<String>,
    /// A token's own events, its requests, and the events of the leases it owns.
    pub accessor: Option<String>,
    /// Like `accessor`, for the token whose secret has this keyed hash
    /// ([`super::hash_value`] without the prefix; the CLI hashes `--token` locally).
    pub token_hash: Option<[u8; 32]>,
    /// A request path or the path an event is about (`database/roles/app`, a lease
    /// id, `sys/policy/app`): exact, a parent (`database/creds` matches
    /// `database/creds/app/…`), or a raw prefix ending in `*`.
    pub path: Option<String>,
    /// Only audit records of requests with this outcome.
    pub outcome: Option<Outcome>,
}

impl Filter {
    fn tracks_leases(&self) -> bool {
        self.username.is_some() || self.accessor.is_some() || self.token_hash.is_some()
    }
}

/// What a timeline scan went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimelineStats {
    pub scanned: u64,
    pub matched: u64,
    pub last_lsn: Lsn,
}

/// Leases followed for the owner filters.
#[derive(Debug, Default)]
struct Owners {
    by_username: HashSet<String>,
    by_accessor: HashSet<String>,
    by_token: HashSet<String>,
    /// The accessor of the token `token_hash` names, once its creation is read.
    token_accessor: Option<String>,
}

impl Owners {
    fn observe(&mut self, f: &Filter, event: &Event) {
        match event {
            Event::IssueStarted(e) => {
                let follow = |set: &mut HashSet<String>, yes: bool| {
                    if yes {
                        set.insert(e.lease_id.clone());
                    } else {
                        set.remove(&e.lease_id);
                    }
                };
                follow(&mut self.by_username, f.username.as_deref() == Some(e.username.as_str()));
                follow(&mut self.by_accessor, f.accessor.as_deref() == Some(e.accessor.as_str()));
                follow(&mut self.by_token, self.token_accessor.as_deref() == Some(e.accessor.as_str()));
            }
            Event::TokenCreated(e) if f.token_hash == Some(e.token_hash) => {
                self.token_accessor = Some(e.accessor.clone());
            }
            _ => {}
        }
    }

    /// After an event is matched: a lease that ended is no longer followed.
    fn forget_ended(&mut self, event: &Event) {
        if let Event::RevokeCompleted(_) | Event::RevokeForced(_) | Event::IssueFailed(_) = event {
            let id = event.lease_id().expect("lease events name their lease");
            self.by_username.remove(id);
            self.by_accessor.remove(id);
            self.by_token.remove(id);
        }
    }
}

/// Can an event of this kind match `f` at all? Lets the scan skip decoding the
/// rest: a filtered timeline mostly verifies and moves on.
fn kind_may_match(f: &Filter, kind: u16) -> bool {
    use EventKind as K;
    let Some(kind) = EventKind::from_code(kind) else { return true };
    let lease = kind >= K::IssueStarted && kind <= K::RevokeForced;
    let token = kind >= K::TokenCreated && kind <= K::TokenRevoked;
    let request = kind == K::RequestRecorded;
    (f.outcome.is_none() || request)
        && (f.lease_id.is_none() || lease)
        && (f.username.is_none() || lease)
        && ((f.accessor.is_none() && f.token_hash.is_none()) || lease || token || request)
        && (f.role.is_none() || lease || request || matches!(kind, K::RoleWritten | K::RoleDeleted))
        && (f.path.is_none() || !(token || matches!(kind, K::EngineInitialized | K::TailTruncated | K::Checkpoint)))
}

/// Kinds whose events the owner filters must see even outside the time window.
fn observed_kind(kind: u16) -> bool {
    [
        EventKind::IssueStarted,
        EventKind::TokenCreated,
        EventKind::RevokeCompleted,
        EventKind::RevokeForced,
        EventKind::IssueFailed,
    ]
    .iter()
    .any(|k| k.code() == kind)
}

fn matches(f: &Filter, owners: &Owners, event: &Event) -> bool {
    if let Some(id) = &f.lease_id
        && event.lease_id() != Some(id.as_str())
    {
        return false;
    }
    let lease = event.lease_id();
    if let Some(u) = &f.username {
        let own = matches!(event, Event::IssueStarted(e) if &e.username == u);
        if !own && !lease.is_some_and(|id| owners.by_username.contains(id)) {
            return false;
        }
    }
    if let Some(a) = &f.accessor
        && event_accessor(event) != Some(a.as_str())
        && !lease.is_some_and(|id| owners.by_accessor.contains(id))
    {
        return false;
    }
    if f.token_hash.is_some() {
        let Some(a) = &owners.token_accessor else { return false };
        if event_accessor(event) != Some(a.as_str()) && !lease.is_some_and(|id| owners.by_token.contains(id)) {
            return false;
        }
    }
    if let Some(r) = &f.role
        && !event_role(event).is_some_and(|(mount, role)| role == r || format!("{mount}{role}") == *r)
    {
        return false;
    }
    if let Some(p) = &f.path
        && !event_path(event).is_some_and(|path| path_matches(&path, p))
    {
        return false;
    }
    if let Some(o) = f.outcome
        && !matches!(event, Event::RequestRecorded(e) if e.outcome == o)
    {
        return false;
    }
    true
}

/// The token an event is by or about.
fn event_accessor(event: &Event) -> Option<&str> {
    match event {
        Event::TokenCreated(e) => Some(&e.accessor),
        Event::TokenRenewed(e) => Some(&e.accessor),
        Event::TokenUsed(e) => Some(&e.accessor),
        Event::TokenRevoked(e) => Some(&e.accessor),
        Event::IssueStarted(e) => Some(&e.accessor),
        Event::RequestRecorded(e) => Some(&e.accessor),
        _ => None,
    }
}

/// `(mount, role)` an event is about. Lease ids are `<mount>creds/<role>/<id>`.
fn event_role(event: &Event) -> Option<(&str, &str)> {
    match event {
        Event::IssueStarted(e) => Some((&e.mount, &e.role)),
        Event::RoleWritten(e) => Some((&e.mount, &e.name)),
        Event::RoleDeleted(e) => Some((&e.mount, &e.name)),
        Event::RequestRecorded(e) => role_of_path(&e.path, &["creds", "roles"]),
        _ => event.lease_id().and_then(|id| {
            let (rest, _random) = id.rsplit_once('/')?;
            role_of_path(rest, &["creds"])
        }),
    }
}

/// `database/creds/app` → `("database/", "app")` when the second-to-last segment
/// is one of `kinds`.
fn role_of_path<'a>(path: &'a str, kinds: &[&str]) -> Option<(&'a str, &'a str)> {
    let (head, role) = path.rsplit_once('/')?;
    let (mount, kind) = match head.rsplit_once('/') {
        Some((mount, kind)) => (&path[..mount.len() + 1], kind),
        None => ("", head),
    };
    kinds.contains(&kind).then_some((mount, role))
}

/// The API path an event is about, as Vault would name it.
fn event_path(event: &Event) -> Option<String> {
    Some(match event {
        Event::RequestRecorded(e) => e.path.clone(),
        Event::MountEnabled(e) => format!("sys/mounts/{}", e.path.trim_end_matches('/')),
        Event::MountTuned(e) => format!("sys/mounts/{}/tune", e.path.trim_end_matches('/')),
        Event::MountDisabled(e) => format!("sys/mounts/{}", e.path.trim_end_matches('/')),
        Event::ConnectionWritten(e) => format!("{}config/{}", e.mount, e.name),
        Event::ConnectionDeleted(e) => format!("{}config/{}", e.mount, e.name),
        Event::ConnectionReset(e) => format!("{}reset/{}", e.mount, e.name),
        Event::RoleWritten(e) => format!("{}roles/{}", e.mount, e.name),
        Event::RoleDeleted(e) => format!("{}roles/{}", e.mount, e.name),
        Event::PolicyWritten(e) => format!("sys/policy/{}", e.name),
        Event::PolicyDeleted(e) => format!("sys/policy/{}", e.name),
        Event::RotateRootStarted(e) => format!("{}rotate-root/{}", e.mount, e.name),
        Event::RotateRootCompleted(e) => format!("{}rotate-root/{}", e.mount, e.name),
        Event::RotateRootFailed(e) => format!("{}rotate-root/{}", e.mount, e.name),
        _ => event.lease_id()?.to_string(),
    })
}

fn path_matches(path: &str, want: &str) -> bool {
    if let Some(prefix) = want.strip_suffix('*') {
        return path.starts_with(prefix);
    }
    let want = want.trim_end_matches('/');
    path == want || path.strip_prefix(want).is_some_and(|rest| rest.starts_with('/'))
}

/// Scans the log in `dir` and calls `visit` with every matching entry and the
/// chain after it, in LSN order, until the log ends, `until` passes, or `visit`
/// breaks.
pub fn timeline(
    dir: &std::path::Path,
    filter: &Filter,
    mut progress: Progress<'_>,
    visit: &mut dyn FnMut(&Entry, &Chain) -> ControlFlow<()>,
) -> Result<TimelineStats, QueryError> {
    let mut reader = Reader::open(dir)?;
    let mut owners = Owners::default();
    let mut stats = TimelineStats::default();
    let tracking = filter.tracks_leases();
    loop {
        if stats.scanned.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            report(&mut progress, &reader);
        }
        let Some(rec) = reader.next_record()? else { break };
        stats.scanned += 1;
        stats.last_lsn = rec.lsn;
        if filter.until_ms.is_some_and(|u| rec.ts_ms > u) {
            // Timestamps never go backwards (the reader checks): nothing later matches.
            break;
        }
        let in_window = filter.since_ms.is_none_or(|s| rec.ts_ms >= s) && kind_may_match(filter, rec.kind);
        if !(in_window || (tracking && observed_kind(rec.kind))) {
            continue;
        }
        let event = rec.decode()?;
        owners.observe(filter, &event);
        if in_window && matches(filter, &owners, &event) {
            stats.matched += 1;
            let entry = Entry { lsn: rec.lsn, ts_ms: rec.ts_ms, event };
            let chain = rec.chain;
            if visit(&entry, &chain).is_break() {
                break;
            }
            owners.forget_ended(&entry.event);
        } else {
            owners.forget_ended(&event);
        }
    }
    report(&mut progress, &reader);
    Ok(stats)
}

/// The event's fields as JSON with nothing secret in it: sealed values become
/// `"sealed"`, token hashes `hmac-sha256:<hex>`, other byte strings hex.
fn body_json(event: &Event) -> Value {
    let v = match event {
        Event::EngineInitialized(b) => serde_json::to_value(b),
        Event::TailTruncated(b) => serde_json::to_value(b),
        Event::Checkpoint(b) => serde_json::to_value(b),
        Event::BatchSigned(b) => serde_json::to_value(b),
        Event::BatchMac(b) => serde_json::to_value(b),
        Event::MountEnabled(b) => serde_json::to_value(b),
        Event::MountTuned(b) => serde_json::to_value(b),
        Event::MountDisabled(b) => serde_json::to_value(b),
        Event::ConnectionWritten(b) => serde_json::to_value(b),
        Event::ConnectionDeleted(b) => serde_json::to_value(b),
        Event::ConnectionReset(b) => serde_json::to_value(b),
        Event::RoleWritten(b) => serde_json::to_value(b),
        Event::RoleDeleted(b) => serde_json::to_value(b),
        Event::PolicyWritten(b) => serde_json::to_value(b),
        Event::PolicyDeleted(b) => serde_json::to_value(b),
        Event::TokenCreated(b) => serde_json::to_value(b),
        Event::TokenRenewed(b) => serde_json::to_value(b),
        Event::TokenUsed(b) => serde_json::to_value(b),
        Event::TokenRevoked(b) => serde_json::to_value(b),
        Event::IssueStarted(b) => serde_json::to_value(b),
        Event::IssueCompleted(b) => serde_json::to_value(b),
        Event::IssueFailed(b) => serde_json::to_value(b),
        Event::RenewStarted(b) => serde_json::to_value(b),
        Event::RenewCompleted(b) => serde_json::to_value(b),
        Event::RenewFailed(b) => serde_json::to_value(b),
        Event::RevokeStarted(b) => serde_json::to_value(b),
        Event::RevokeCompleted(b) => serde_json::to_value(b),
        Event::RevokeFailed(b) => serde_json::to_value(b),
        Event::LeaseIrrevocable(b) => serde_json::to_value(b),
        Event::RevokeForced(b) => serde_json::to_value(b),
        Event::RotateRootStarted(b) => serde_json::to_value(b),
        Event::RotateRootCompleted(b) => serde_json::to_value(b),
        Event::RotateRootFailed(b) => serde_json::to_value(b),
        Event::RequestRecorded(b) => serde_json::to_value(b),
    };
    let mut v = v.expect("event bodies serialize to JSON");
    sanitize(None, &mut v);
    v
}

fn sanitize(key: Option<&str>, v: &mut Value) {
    match v {
        Value::Object(map) if map.len() == 2 && map.contains_key("nonce") && map.contains_key("ciphertext") => {
            *v = Value::String("sealed".into());
        }
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                sanitize(Some(k), child);
            }
        }
        // Logs written before literal passwords in URLs were refused may hold one.
        Value::String(url) if key == Some("connection_url") => {
            *url = crate::text::template::mask_url_password(url);
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(|i| i.as_u64().is_some_and(|n| n < 256)) => {
            let bytes: Vec<u8> = items.iter().map(|i| i.as_u64().unwrap_or(0) as u8).collect();
            let text = hex::encode(bytes);
            *v = Value::String(if key == Some("token_hash") { format!("hmac-sha256:{text}") } else { text });
        }
        _ => {}
    }
}

/// One JSON line: `{"lsn", "ts", "chain", "kind", "event": {…}}`.
pub fn event_json(entry: &Entry, chain: &Chain) -> Value {
    json!({
        "lsn": entry.lsn,
        "ts": rfc3339_ms(entry.ts_ms),
        "chain": hex::encode(chain),
        "kind": entry.event.kind().name(),
        "event": body_json(&entry.event),
    })
}

/// [`event_json`] as one line of text, built without the intermediate JSON tree
/// for the kinds that hold nothing to hide (most of a log): `audit log --jsonl`.
pub fn event_json_line(entry: &Entry, chain: &Chain) -> String {
    let plain = match &entry.event {
        Event::IssueStarted(b) => serde_json::to_string(b),
        Event::IssueCompleted(b) => serde_json::to_string(b),
        Event::IssueFailed(b) => serde_json::to_string(b),
        Event::RenewStarted(b) => serde_json::to_string(b),
        Event::RenewCompleted(b) => serde_json::to_string(b),
        Event::RenewFailed(b) => serde_json::to_string(b),
        Event::RevokeStarted(b) => serde_json::to_string(b),
        Event::RevokeCompleted(b) => serde_json::to_string(b),
        Event::RevokeFailed(b) => serde_json::to_string(b),
        Event::LeaseIrrevocable(b) => serde_json::to_string(b),
        Event::RevokeForced(b) => serde_json::to_string(b),
        Event::RequestRecorded(b) => serde_json::to_string(b),
        Event::TokenRenewed(b) => serde_json::to_string(b),
        Event::TokenUsed(b) => serde_json::to_string(b),
        Event::TokenRevoked(b) => serde_json::to_string(b),
        _ => return event_json(entry, chain).to_string(),
    };
    let body = plain.expect("event bodies serialize to JSON");
    format!(
        "{{\"lsn\":{},\"ts\":\"{}\",\"chain\":\"{}\",\"kind\":\"{}\",\"event\":{body}}}",
        entry.lsn,
        rfc3339_ms(entry.ts_ms),
        hex::encode(chain),
        entry.event.kind().name()
    )
}

/// Fields left out of text lines: long, and in the JSON form for whoever needs them.
const TEXT_SKIPPED: &[&str] = &[
    "creation_statements",
    "revocation_statements",
    "renew_statements",
    "rollback_statements",
    "root_rotation_statements",
    "text",
    "description",
];

/// One text line: `<lsn> <ts> <kind> key=value …`, times in RFC 3339.
pub fn event_text(entry: &Entry, chain: &Chain) -> String {
    let mut line = format!("{:>8}  {}  {:<19}", entry.lsn, rfc3339_ms(entry.ts_ms), entry.event.kind().name());
    if let Value::Object(map) = body_json(&entry.event) {
        push_fields(&mut line, &map);
    }
    line.push_str("  chain=");
    line.push_str(&hex::encode(&chain[..8]));
    line
}

fn push_fields(line: &mut String, map: &Map<String, Value>) {
    for (k, v) in map {
        if TEXT_SKIPPED.contains(&k.as_str()) {
            continue;
        }
        let text = match v {
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::Array(a) if a.is_empty() => continue,
            Value::Number(n) if is_duration(k) => n.as_u64().map_or_else(|| n.to_string(), duration),
            Value::Number(n) if k.ends_with("_ms") => n.as_i64().map_or_else(|| n.to_string(), rfc3339_ms),
            Value::String(s) => quote(s),
            Value::Array(a) => {
                a.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), quote)).collect::<Vec<_>>().join(",")
            }
            other => other.to_string(),
        };
        let k = k.strip_suffix("_ms").unwrap_or(k);
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(&text);
    }
}

/// Millisecond fields that hold a span; every other `_ms` field is an instant.
fn is_duration(key: &str) -> bool {
    key.ends_with("ttl_ms") || key.ends_with("lifetime_ms")
}

/// Milliseconds as Vault prints durations: `768h`, `1h30m`, `45s`, `0s`.
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, sec, rest) = (s / 3600, s / 60 % 60, s % 60, ms % 1000);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    if out.is_empty() { "0s".into() } else { out }
}

/// A value as one token of a text line: quoted, with Rust's escapes, when it
/// holds a separator or any character a terminal would act on or not show
/// (controls, bidi overrides, zero-width marks), so a caller's path can never
/// drive the auditor's terminal.
fn quote(s: &str) -> String {
    let plain = |c: char| !c.is_whitespace() && c != '"' && c != ',' && c != '\\' && c.escape_debug().len() == 1;
    if s.chars().all(plain) { s.to_string() } else { format!("{s:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;

    #[test]
    fn text_lines_escape_what_a_terminal_would_act_on() {
        for raw in ["a\u{1b}[31mb", "bell\u{7}", "nul\u{0}", "rlo\u{202e}x", "del\u{7f}"] {
            let q = quote(raw);
            assert!(q.chars().all(|c| !c.is_control() && c != '\u{202e}'), "{raw:?} -> {q:?}");
        }
        assert_eq!(quote("plain-value"), "plain-value");
    }

    #[test]
    fn nothing_secret_and_every_line_has_its_place() {
        for &kind in EventKind::ALL {
            let entry = Entry { lsn: 42, ts_ms: 1_795_600_800_123, event: sample(kind) };
            let j = event_json(&entry, &[0xcd; 32]);
            assert_eq!(j["lsn"], 42);
            assert_eq!(j["ts"], "2026-11-25T10:00:00.123Z");
            assert_eq!(j["chain"], "cd".repeat(32));
            let text = j.to_string() + &event_text(&entry, &[0xcd; 32]);
            // The sample sealed values hold these bytes: they must not appear.
            for tag in [5u8, 7, 8] {
                let ciphertext = hex::encode([tag, tag + 1, 0xee]);
                assert!(!text.contains(&ciphertext), "{kind:?} shows sealed bytes: {text}");
            }
        }
        for &kind in EventKind::ALL {
            let entry = Entry { lsn: 9, ts_ms: -5, event: sample(kind) };
            let line: Value = serde_json::from_str(&event_json_line(&entry, &[7; 32])).unwrap();
            assert_eq!(line, event_json(&entry, &[7; 32]), "{kind:?}");
        }
        let entry = Entry { lsn: 1, ts_ms: 0, event: sample(EventKind::TokenCreated) };
        assert_eq!(event_json(&entry, &[0; 32])["event"]["token_hash"], format!("hmac-sha256:{}", "06".repeat(32)));
        let conn = Entry { lsn: 1, ts_ms: 0, event: sample(EventKind::ConnectionWritten) };
        assert_eq!(event_json(&conn, &[0; 32])["event"]["password"], "sealed");
    }

    #[test]
    fn text_lines_show_times_and_durations() {
        let entry = Entry { lsn: 7, ts_ms: 1_795_600_800_123, event: sample(EventKind::TokenCreated) };
        let line = event_text(&entry, &[0xab; 32]);
        assert!(line.starts_with("       7  2026-11-25T10:00:00.123Z  TokenCreated "), "{line}");
        assert!(line.contains(" ttl=1h ") && line.contains(" explicit_max_ttl=0s "), "{line}");
        assert!(line.contains(" expire_time=2023-11-14T23:13:20.000Z "), "{line}");
        assert!(line.ends_with("chain=abababababababab"), "{line}");
        assert_eq!(duration(5_400_500), "1h30m500ms");
    }

    /// The shortcut never hides an event that matches: every sample event that
    /// matches a filter has a kind the filter allows.
    #[test]
    fn kind_shortcut_is_sound() {
        let filters = [
            Filter { outcome: Some(Outcome::Denied), ..Filter::default() },
            Filter { lease_id: Some("database/creds/app-readonly/abc".into()), ..Filter::default() },
            Filter { accessor: Some("acc1".into()), ..Filter::default() },
            Filter { role: Some("app-readonly".into()), ..Filter::default() },
            Filter { path: Some("database".into()), ..Filter::default() },
            Filter { path: Some("sys".into()), ..Filter::default() },
        ];
        let mut owners = Owners::default();
        owners.by_accessor.insert("database/creds/app-readonly/abc".into());
        for f in &filters {
            let mut matched = 0;
            for &kind in EventKind::ALL {
                let event = sample(kind);
                if matches(f, &owners, &event) {
                    matched += 1;
                    assert!(kind_may_match(f, kind.code()), "{kind:?} matches {f:?} but would be skipped");
                }
            }
            assert!(matched > 0, "{f:?} matched no sample: the check above proved nothing");
        }
    }

    #[test]
    fn roles_and_paths_of_events() {
        let issue = sample(EventKind::IssueCompleted);
        assert_eq!(event_role(&issue), Some(("database/", "app-readonly")));
        assert_eq!(role_of_path("db/prod/creds/app", &["creds"]), Some(("db/prod/", "app")));
        assert_eq!(role_of_path("database/config/pg", &["creds", "roles"]), None);
        assert!(path_matches("database/creds/app/x", "database/creds"));
        assert!(path_matches("database/creds/app/x", "database/creds/"));
        assert!(!path_matches("database/credsx", "database/creds"));
        assert!(path_matches("database/credsx", "database/creds*"));
        assert_eq!(event_path(&sample(EventKind::RoleWritten)).as_deref(), Some("database/roles/app-readonly"));
    }
}
