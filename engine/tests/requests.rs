//! The request model end to end through `Engine::request`: init and keys, mounts,
//! policies, tokens, the audit record of every request, and I5 (no secret at rest).

use std::path::Path;
use std::sync::Arc;

use lessor_engine::clock::ManualClock;
use lessor_engine::event::{Event, Outcome, RequestRecorded};
use lessor_engine::log::read_entries;
use lessor_engine::log::storage::ReadOnlyDir;
use lessor_engine::request::{ErrorKind, Operation, RequestError, Response};
use lessor_engine::{Engine, EngineOptions, OpenError};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000;

struct Harness {
    dir: tempfile::TempDir,
    engine: Option<Engine>,
    root: String,
    clock: Arc<ManualClock>,
    rt: tokio::runtime::Runtime,
}

fn options(clock: &Arc<ManualClock>) -> EngineOptions {
    EngineOptions { clock: clock.clone(), snapshot_every_events: 0, ..EngineOptions::default() }
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let (engine, root) = Engine::init(dir.path(), options(&clock)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        Harness { dir, engine: Some(engine), root: root.expose().to_string(), clock, rt }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    fn req(&self, token: &str, op: Operation, path: &str, data: Value) -> Result<Response, RequestError> {
        self.rt.block_on(self.engine().request(token, op, path, data))
    }

    fn root(&self, op: Operation, path: &str, data: Value) -> Response {
        self.req(&self.root, op, path, data).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Creates a token with `policies` and returns its secret and accessor.
    fn token(&self, parent: &str, data: Value) -> (String, String) {
        let r = self.req(parent, Operation::Update, "auth/token/create", data).unwrap();
        let auth = r.auth.unwrap();
        (auth.client_token, auth.accessor)
    }

    fn reopen(&mut self) {
        self.engine.take().unwrap().close();
        self.engine = Some(Engine::open(self.dir.path(), options(&self.clock)).unwrap());
    }

    fn audit(&self) -> Vec<RequestRecorded> {
        read_entries(&ReadOnlyDir::new(self.dir.path()))
            .unwrap()
            .0
            .into_iter()
            .filter_map(|e| match e.event {
                Event::RequestRecorded(r) => Some(r),
                _ => None,
            })
            .collect()
    }
}

fn policy(h: &Harness, name: &str, text: &str) {
    h.root(Operation::Update, &format!("sys/policy/{name}"), json!({ "policy": text }));
}

#[test]
fn init_returns_a_root_token_that_works_and_refuses_a_second_init() {
    let h = Harness::new();
    assert!(h.root.starts_with("lsr.") && h.root.len() >= 28);
    let me = h.root(Operation::Read, "auth/token/lookup-self", Value::Null).data.unwrap();
    assert_eq!(me["policies"], json!(["root"]));
    assert_eq!(me["display_name"], "root");
    assert_eq!(me["expire_time"], Value::Null);
    let err = Engine::init(h.dir.path(), options(&h.clock)).unwrap_err().to_string();
    assert!(err.contains("already initialized"), "{err}");
}

#[test]
fn opening_with_the_wrong_master_key_is_a_clear_error() {
    let h = Harness::new();
    let dir = h.dir.path().to_path_buf();
    drop(h.engine);
    let wrong = lessor_engine::auth::keys::MasterKey::from_bytes([42; 32]);
    let opts = EngineOptions { master_key: Some(wrong), ..EngineOptions::default() };
    match Engine::open(&dir, opts) {
        Err(e @ OpenError::WrongMasterKey) => assert!(e.to_string().contains("wrong master key")),
        other => panic!("expected WrongMasterKey, got {other:?}"),
    }
}

#[test]
fn opening_a_directory_that_was_never_initialized_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("typo");
    let err = Engine::open(&missing, EngineOptions::default()).unwrap_err().to_string();
    assert!(err.contains("holds no lessor data") && err.contains("init"), "{err}");
    assert!(!missing.exists(), "a failed open must not create the directory");
}

#[test]
fn without_the_key_the_engine_opens_read_only() {
    let h = Harness::new();
    let dir = h.dir.path().to_path_buf();
    let digest = h.engine().digest();
    drop(h.engine);
    std::fs::rename(dir.join("master.key"), dir.join("elsewhere.key")).unwrap();
    let engine = Engine::open(&dir, EngineOptions::default()).unwrap();
    assert_eq!(engine.digest(), digest);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let lsn = engine.with_state(|s| s.applied_lsn);
    let err = rt.block_on(engine.request(&h.root, Operation::Read, "sys/mounts", Value::Null)).unwrap_err();
    assert!(err.to_string().contains("without its master key"), "{err}");
    // Read-only means nothing written: not even the refusal's audit record.
    assert_eq!(engine.with_state(|s| s.applied_lsn), lsn);
}

#[test]
fn mounts_enable_list_tune_disable() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    h.root(
        Operation::Update,
        "sys/mounts/db-prod",
        json!({"type": "database", "description": "prod", "config": {"default_lease_ttl": "1h", "max_lease_ttl": "24h"}}),
    );
    let list = h.root(Operation::Read, "sys/mounts", Value::Null).data.unwrap();
    assert_eq!(list["db-prod/"]["config"]["default_lease_ttl"], 3600);
    assert_eq!(list["database/"]["type"], "database");

    let err = h.req(&h.root, Operation::Update, "sys/mounts/database", json!({"type": "database"})).unwrap_err();
    assert!(err.to_string().contains("already in use at \"database/\""), "{err}");
    let err = h.req(&h.root, Operation::Update, "sys/mounts/kv", json!({"type": "kv"})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("\"type\""), "{err}");
    let err = h.req(&h.root, Operation::Update, "sys/mounts/sys", json!({"type": "database"})).unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");

    h.root(Operation::Update, "sys/mounts/database/tune", json!({"default_lease_ttl": "30m", "max_lease_ttl": 7200}));
    let tune = h.root(Operation::Read, "sys/mounts/database/tune", Value::Null).data.unwrap();
    assert_eq!((tune["default_lease_ttl"].as_u64(), tune["max_lease_ttl"].as_u64()), (Some(1800), Some(7200)));
    let err = h.req(&h.root, Operation::Update, "sys/mounts/database/tune", json!({"default_lease_ttl": "3h"}));
    assert!(err.unwrap_err().to_string().contains("must not exceed max_lease_ttl"));

    h.root(Operation::Delete, "sys/mounts/db-prod", Value::Null);
    assert!(h.engine().with_state(|s| !s.mounts.contains_key("db-prod/") && s.mounts.contains_key("database/")));
}

#[test]
fn bad_input_names_the_field_and_changes_nothing() {
    let h = Harness::new();
    let before = h.engine().with_state(|s| (s.mounts.clone(), s.policies.clone(), s.tokens.len()));
    let cases = [
        (
            Operation::Update,
            "sys/mounts/database",
            json!({"type": "database", "config": {"default_lease_ttl": "1x"}}),
            "default_lease_ttl",
        ),
        (Operation::Update, "sys/mounts/database", json!({"type": "database", "tpye": 1}), "\"tpye\""),
        (Operation::Update, "sys/policy/p", json!({"policy": "path \"a/*b\" { capabilities = [\"read\"] }"}), "policy"),
        (Operation::Update, "sys/policy/p", json!({}), "\"policy\""),
        (Operation::Update, "auth/token/create", json!({"ttl": "soon"}), "\"ttl\""),
        (Operation::Update, "auth/token/create", json!({"num_uses": -1}), "\"num_uses\""),
        (Operation::Update, "sys/policy/root", json!({"policy": "path \"x\" { capabilities = [\"read\"] }"}), "root"),
        (Operation::Delete, "sys/policy/default", Value::Null, "default"),
    ];
    for (op, path, data, field) in cases {
        let err = h.req(&h.root, op, path, data.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{path} {data}: {err}");
        assert!(err.to_string().contains(field), "{path} {data}: {err}");
    }
    let after = h.engine().with_state(|s| (s.mounts.clone(), s.policies.clone(), s.tokens.len()));
    assert_eq!(before, after);
    let invalid = h.audit().iter().filter(|r| r.outcome == Outcome::Invalid).count();
    assert_eq!(invalid, 8, "every invalid request is on the record");
}

#[test]
fn a_read_only_creds_policy_allows_its_path_and_denies_the_rest_and_every_denial_is_logged() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    policy(&h, "app", r#"path "database/creds/app-readonly" { capabilities = ["read"] }"#);
    let (app, accessor) = h.token(&h.root, json!({"policies": ["app"], "display_name": "app-A"}));

    // Allowed by policy: the request gets past authorization (the database
    // engine's handler answers it, not the ACL).
    let allowed = h.req(&app, Operation::Read, "database/creds/app-readonly", Value::Null);
    assert!(!matches!(allowed, Err(RequestError::PermissionDenied(_))), "{allowed:?}");

    let denied_paths = ["database/creds/other", "database/config/x", "sys/policy/x", "sys/mounts"];
    for path in denied_paths {
        let err = h.req(&app, Operation::Read, path, Value::Null).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{path}: {err}");
    }
    let err = h.req(&app, Operation::Update, "database/creds/app-readonly", json!({})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "update needs update, not read");

    let audit = h.audit();
    for path in denied_paths {
        let rec = audit.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("no audit record for {path}"));
        assert_eq!(rec.outcome, Outcome::Denied);
        assert_eq!(rec.accessor, accessor);
        assert_eq!(rec.display_name, "token-app-A");
        assert!(rec.error.as_deref().unwrap().contains("permission denied"));
    }
    let allowed_rec = audit.iter().find(|r| r.path == "database/creds/app-readonly").unwrap();
    assert_ne!(allowed_rec.outcome, Outcome::Denied);

    // A token nobody issued: denied, and recorded without an accessor.
    let err = h.req("lsr.notatoken", Operation::Read, "sys/mounts", Value::Null).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let last = h.audit().pop().unwrap();
    assert_eq!((last.outcome, last.accessor.as_str()), (Outcome::Denied, ""));
}

#[test]
fn the_default_policy_lets_a_token_look_itself_up() {
    let h = Harness::new();
    let (t, _) = h.token(&h.root, json!({"policies": []}));
    let me = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap().data.unwrap();
    assert_eq!(me["policies"], json!(["default"]));
    assert_eq!(me["id"], t);
    let (nd, _) = h.token(&h.root, json!({"policies": [], "no_default_policy": true}));
    assert_eq!(
        h.req(&nd, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn a_token_cannot_grant_policies_it_does_not_hold() {
    let h = Harness::new();
    policy(&h, "a", r#"path "auth/token/create" { capabilities = ["update"] }"#);
    policy(&h, "b", r#"path "sys/*" { capabilities = ["read"] }"#);
    let (ta, _) = h.token(&h.root, json!({"policies": "a"}));
    let err = h.req(&ta, Operation::Update, "auth/token/create", json!({"policies": ["b"]})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("\"b\""), "{err}");
    let err = h.req(&ta, Operation::Update, "auth/token/create", json!({"policies": ["root"]})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    // Its own policies, and none (inherits), are fine.
    let (child, _) = h.token(&ta, json!({"policies": ["a"]}));
    let (inherit, _) = h.token(&ta, json!({}));
    for t in [child, inherit] {
        let me = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap().data.unwrap();
        assert_eq!(me["policies"], json!(["a", "default"]));
    }
    // no_parent needs root or sudo.
    let err = h.req(&ta, Operation::Update, "auth/token/create", json!({"no_parent": true})).unwrap_err();
    assert!(err.to_string().contains("no_parent"), "{err}");
}

#[test]
fn revoking_a_parent_revokes_its_children_and_an_orphan_survives() {
    let h = Harness::new();
    policy(&h, "maker", r#"path "auth/token/create" { capabilities = ["update"] }"#);
    let (parent, parent_acc) = h.token(&h.root, json!({"policies": ["maker"]}));
    let (child, child_acc) = h.token(&parent, json!({}));
    let (grandchild, _) = h.token(&child, json!({}));
    let (orphan, orphan_acc) = h.token(&h.root, json!({"no_parent": true, "policies": ["maker"]}));
    let (orphan_child, _) = h.token(&orphan, json!({}));

    h.root(Operation::Update, "auth/token/revoke-accessor", json!({"accessor": parent_acc}));
    for t in [&parent, &child, &grandchild] {
        let err = h.req(t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }
    assert!(h.engine().with_state(|s| !s.tokens.contains_key(&child_acc)));
    h.req(&orphan, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap();

    // revoke-orphan: the children live on, parentless.
    h.root(Operation::Update, "auth/token/revoke-orphan", json!({"token": orphan}));
    let me = h.req(&orphan_child, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap().data.unwrap();
    assert_eq!(me["orphan"], true);
    assert!(h.engine().with_state(|s| !s.tokens.contains_key(&orphan_acc)));
}

#[test]
fn expired_tokens_are_refused_on_the_engine_clock_and_renewal_extends_them() {
    let h = Harness::new();
    let (t, _) = h.token(&h.root, json!({"ttl": "1h", "explicit_max_ttl": "3h"}));
    h.clock.advance_ms(59 * 60_000);
    let renewed = h.req(&t, Operation::Update, "auth/token/renew-self", json!({"increment": "2h"})).unwrap();
    assert_eq!(renewed.auth.unwrap().lease_duration, 7200);
    h.clock.advance_ms(110 * 60_000);
    h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap();
    // The explicit max TTL caps the next renewal at creation + 3h.
    let capped = h.req(&t, Operation::Update, "auth/token/renew-self", json!({"increment": "5h"})).unwrap();
    assert_eq!(capped.auth.unwrap().lease_duration, (3 * 3600) - (169 * 60));
    assert!(capped.warnings.unwrap()[0].contains("explicit max TTL"));
    h.clock.advance_ms(12 * 60_000);
    let err = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(h.audit().last().unwrap().error.as_deref().unwrap().contains("expired"));
}

#[test]
fn a_traced_request_names_its_audit_record_refusals_and_stale_tokens_included() {
    let h = Harness::new();
    let traced =
        |token: &str, path: &str| h.rt.block_on(h.engine().request_traced(token, Operation::Read, path, Value::Null));
    let (t, accessor) = h.token(&h.root, json!({"ttl": "1h", "policies": []}));

    // Allowed: the trace names the reply's request id and the caller.
    let (answer, trace) = traced(&t, "auth/token/lookup-self");
    let answer = answer.unwrap();
    assert_eq!(trace.request_id.as_deref(), Some(answer.request_id.as_str()));
    assert_eq!(trace.accessor.as_deref(), Some(accessor.as_str()));
    let record = h.audit().pop().unwrap();
    assert_eq!((record.request_id.as_str(), record.outcome), (answer.request_id.as_str(), Outcome::Ok));

    // Denied by policy: no reply, but the trace points at the denial's record.
    let (answer, trace) = traced(&t, "sys/mounts");
    assert_eq!(answer.unwrap_err().kind(), ErrorKind::PermissionDenied);
    let record = h.audit().pop().unwrap();
    assert_eq!(trace.request_id.as_deref(), Some(record.request_id.as_str()));
    assert_eq!((record.outcome, record.accessor.as_str()), (Outcome::Denied, accessor.as_str()));
    assert_eq!(trace.accessor.as_deref(), Some(accessor.as_str()));

    // An expired token is refused, and the record says whose it was.
    h.clock.advance_ms(61 * 60_000);
    let (answer, trace) = traced(&t, "auth/token/lookup-self");
    assert_eq!(answer.unwrap_err().kind(), ErrorKind::PermissionDenied);
    let record = h.audit().pop().unwrap();
    assert!(record.error.as_deref().unwrap().contains("expired"), "{record:?}");
    assert_eq!((record.outcome, record.accessor.as_str()), (Outcome::Denied, accessor.as_str()));
    assert_eq!(trace.request_id.as_deref(), Some(record.request_id.as_str()));
    assert_eq!(trace.accessor.as_deref(), Some(accessor.as_str()));

    // A token nobody issued: recorded, without an accessor.
    let (_, trace) = traced("lsr.notatoken", "sys/mounts");
    let record = h.audit().pop().unwrap();
    assert_eq!(trace.request_id.as_deref(), Some(record.request_id.as_str()));
    assert_eq!((trace.accessor, record.accessor.as_str()), (None, ""));
}

#[test]
fn a_child_token_never_outlives_its_parent() {
    let h = Harness::new();
    policy(&h, "maker", r#"path "auth/token/create" { capabilities = ["update"] }"#);
    let (parent, _) = h.token(&h.root, json!({"policies": ["maker"], "ttl": "1h"}));
    let r = h.req(&parent, Operation::Update, "auth/token/create", json!({"ttl": "10h"})).unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 3600);
    assert!(r.warnings.unwrap()[0].contains("parent"));
}

#[test]
fn num_uses_are_spent_one_per_request() {
    let h = Harness::new();
    let (t, _) = h.token(&h.root, json!({"num_uses": 2}));
    let first = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap().data.unwrap();
    assert_eq!(first["num_uses"], 1, "this request spent one of two");
    h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap();
    let err = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap_err();
    assert!(err.to_string().contains("no uses left"), "{err}");
}

#[test]
fn policies_round_trip_and_list_and_delete() {
    let h = Harness::new();
    let text = r#"path "database/creds/*" { capabilities = ["read", "list"] }"#;
    policy(&h, "Readers", text);
    let got = h.root(Operation::Read, "sys/policies/acl/readers", Value::Null).data.unwrap();
    assert_eq!((got["name"].as_str(), got["policy"].as_str()), (Some("readers"), Some(text)));
    let list = h.root(Operation::List, "sys/policy", Value::Null).data.unwrap();
    assert_eq!(list["keys"], json!(["default", "readers", "root"]));
    h.root(Operation::Delete, "sys/policy/readers", Value::Null);
    assert_eq!(
        h.req(&h.root, Operation::Read, "sys/policy/readers", Value::Null).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // JSON policies are accepted too.
    policy(&h, "j", r#"{"path": {"sys/mounts": {"capabilities": ["read"]}}}"#);
    let (t, _) = h.token(&h.root, json!({"policies": ["j"]}));
    h.req(&t, Operation::Read, "sys/mounts", Value::Null).unwrap();
}

#[test]
fn the_legacy_policy_path_answers_in_its_own_field_names() {
    // As Vault: `sys/policy` reads `rules` and lists `policies` too, and still
    // takes `rules` for the text (with a warning); `sys/policies/acl` does neither.
    let h = Harness::new();
    let text = r#"path "sys/mounts" { capabilities = ["read"] }"#;
    let written = h.root(Operation::Update, "sys/policy/old", json!({ "rules": text }));
    assert!(written.warnings.unwrap()[0].contains("'rules' is deprecated"));
    let legacy = h.root(Operation::Read, "sys/policy/old", Value::Null).data.unwrap();
    assert_eq!(Value::Object(legacy), json!({"name": "old", "rules": text}));
    let acl = h.root(Operation::Read, "sys/policies/acl/old", Value::Null).data.unwrap();
    assert_eq!(Value::Object(acl), json!({"name": "old", "policy": text}));
    let legacy = h.root(Operation::List, "sys/policy", Value::Null).data.unwrap();
    assert_eq!(
        Value::Object(legacy),
        json!({"keys": ["default", "old", "root"], "policies": ["default", "old", "root"]})
    );
    let acl = h.root(Operation::List, "sys/policies/acl", Value::Null).data.unwrap();
    assert_eq!(Value::Object(acl), json!({"keys": ["default", "old", "root"]}));
    let e = h.req(&h.root, Operation::Update, "sys/policies/acl/new", json!({ "rules": text })).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("\"rules\""), "{e}");
}

#[test]
fn an_operation_a_path_does_not_take_is_its_own_kind_and_changes_nothing() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    let before = h.root(Operation::Read, "sys/mounts", Value::Null).data;
    for (op, path) in [
        (Operation::Update, "sys/mounts"),
        (Operation::List, "sys/mounts/database"),
        (Operation::List, "sys/policy/default"),
        (Operation::Read, "auth/token/create"),
        (Operation::Read, "sys/leases/renew"),
        (Operation::Delete, "database/creds/ro"),
        (Operation::Update, "database/creds/ro"),
        (Operation::Read, "database/rotate-root/pg"),
        (Operation::Update, "database/roles"),
        (Operation::List, "database/roles/ro"),
    ] {
        let e = h.req(&h.root, op, path, json!({})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedOperation, "{op:?} {path}: {e}");
        assert!(e.to_string().contains("unsupported operation") && e.to_string().contains(path), "{e}");
    }
    assert_eq!(h.root(Operation::Read, "sys/mounts", Value::Null).data, before);
    let refused = h.audit().into_iter().filter(|r| r.outcome == Outcome::Invalid).count();
    assert_eq!(refused, 10, "every refusal is recorded, as an invalid request");
}

#[test]
fn a_policy_change_takes_effect_on_the_next_request() {
    let h = Harness::new();
    policy(&h, "p", r#"path "sys/mounts" { capabilities = ["read"] }"#);
    let (t, _) = h.token(&h.root, json!({"policies": ["p"]}));
    h.req(&t, Operation::Read, "sys/mounts", Value::Null).unwrap();
    policy(&h, "p", r#"path "sys/mounts" { capabilities = ["deny"] }"#);
    assert_eq!(h.req(&t, Operation::Read, "sys/mounts", Value::Null).unwrap_err().kind(), ErrorKind::PermissionDenied);
}

#[test]
fn after_reopen_tokens_policies_and_mounts_are_exactly_as_before() {
    let mut h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    policy(&h, "app", r#"path "database/creds/app" { capabilities = ["read"] }"#);
    let (t, acc) = h.token(&h.root, json!({"policies": ["app"], "ttl": "2h"}));
    let digest = h.engine().digest();
    let state = h.engine().with_state(|s| (s.mounts.clone(), s.policies.clone(), s.tokens.clone()));
    h.reopen();
    assert_eq!(h.engine().digest(), digest);
    assert_eq!(h.engine().with_state(|s| (s.mounts.clone(), s.policies.clone(), s.tokens.clone())), state);
    let me = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap().data.unwrap();
    assert_eq!(me["accessor"], acc);
    // And through a snapshot, too.
    h.engine().snapshot().unwrap();
    let digest = h.engine().digest();
    h.reopen();
    assert_eq!(h.engine().digest(), digest);
    h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap();
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn no_token_secret_and_no_password_is_anywhere_in_the_data_directory() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    let mut secrets = vec![h.root.clone()];
    for i in 0..5 {
        secrets.push(h.token(&h.root, json!({"display_name": format!("t{i}")})).0);
    }
    let password = "rootpw-Zq9vX2-never-in-plaintext";
    h.engine().append_sealed_secret_for_tests("connection database/ pg", password.as_bytes()).unwrap();
    h.engine().snapshot().unwrap();
    drop(h.engine);
    secrets.push(password.to_string());
    for file in files_under(h.dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in &secrets {
            for needle in [secret.as_bytes(), &secret.as_bytes()[4..]] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} contains a secret in plaintext",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn typed_fast_paths_go_through_the_same_pipeline() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    policy(&h, "none", r#"path "sys/mounts" { capabilities = ["read"] }"#);
    let (t, _) = h.token(&h.root, json!({"policies": ["none"]}));
    // Authorization and audit apply exactly as for `request`.
    let err = h.rt.block_on(h.engine().issue(&t, "database/creds/app")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    // The default policy grants sys/leases/renew: past the ACL, the lease is unknown.
    let err = h.rt.block_on(h.engine().renew(&t, "database/creds/app/x", 60)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // Revoking a lease that is gone succeeds with nothing to do (as Vault), and
    // is on the record as asked.
    h.rt.block_on(h.engine().revoke(&h.root, "database/creds/app/x")).unwrap();
    let err = h.rt.block_on(h.engine().revoke(&t, "database/creds/app/x")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "the ACL still decides first");
    let audit = h.audit();
    let n = audit.len();
    assert_eq!(audit[n - 4].path, "database/creds/app");
    assert_eq!((audit[n - 3].path.as_str(), audit[n - 3].outcome), ("sys/leases/renew", Outcome::Error));
    assert_eq!((audit[n - 2].path.as_str(), audit[n - 2].outcome), ("sys/leases/revoke", Outcome::Ok));
    assert_eq!((audit[n - 1].path.as_str(), audit[n - 1].outcome), ("sys/leases/revoke", Outcome::Denied));
    // `issue` on a path that issues nothing says so (by kind), rather than
    // pretending an empty credential.
    let err = h.rt.block_on(h.engine().issue(&h.root, "sys/mounts")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("<mount>/creds/<role>"), "{err}");
}

/// Writes `database/config/pg` with `fields` over a valid, unverified base.
fn write_connection(h: &Harness, fields: Value) -> Result<Response, RequestError> {
    let mut data = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": "postgresql://{{username}}:{{password}}@db.example:5432/app",
        "username": "lessor_admin",
        "password": "sealed-root-pw",
        "allowed_roles": "*",
        "verify_connection": false,
    });
    data.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    h.req(&h.root, Operation::Update, "database/config/pg", data)
}

#[test]
fn a_password_inside_connection_url_is_refused_and_never_stored() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    for url in [
        "postgresql://lessor_admin:adminpw@db.example:5432/app",
        "postgresql://db.example:5432/app?user=lessor_admin&password=adminpw",
        "host=db.example user=lessor_admin password=adminpw dbname=app",
    ] {
        let e = write_connection(&h, json!({ "connection_url": url })).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{url}: {e}");
        let message = e.to_string();
        assert!(message.contains("connection_url") && message.contains("field \"password\""), "{message}");
        assert!(!message.contains("adminpw"), "the error repeats the secret: {message}");
    }
    // Nothing was written.
    assert_eq!(
        h.req(&h.root, Operation::Read, "database/config/pg", Value::Null).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // The templated form is accepted, and the password field is sealed.
    write_connection(&h, json!({})).unwrap();
    for file in files_under(h.dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [&b"adminpw"[..], b"sealed-root-pw"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} holds a password", file.display());
        }
    }
}

#[test]
fn connection_urls_and_username_templates_that_cannot_work_are_refused_when_written() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    for (fields, names) in [
        (json!({ "connection_url": "not a url" }), "connection_url"),
        (json!({ "connection_url": "postgresql://{{user}}@db/app" }), "connection_url"),
        (json!({ "connection_url": "postgresql://{{username}}:{{password}}@db/app?sslmode=sometimes" }), "sslmode"),
        (json!({ "username_template": "{{ \"\" }}" }), "username_template"),
        (json!({ "username_template": "v {{.RoleName}}" }), "username_template"),
    ] {
        let e = write_connection(&h, fields.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{fields}: {e}");
        assert!(e.to_string().contains(names), "{fields}: {e}");
    }
    assert_eq!(
        h.req(&h.root, Operation::Read, "database/config/pg", Value::Null).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_password_an_older_log_holds_in_connection_url_is_masked_when_shown() {
    let h = Harness::new();
    h.root(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    write_connection(&h, json!({})).unwrap();
    // What an older build let through: the URL itself carries the password.
    let Event::ConnectionWritten(mut old) =
        lessor_engine::testing::sample(lessor_engine::event::EventKind::ConnectionWritten)
    else {
        unreachable!()
    };
    old.mount = "database/".into();
    old.name = "legacy".into();
    old.connection_url = "postgresql://lessor_admin:adminpw@db.example:5432/app".into();
    h.engine().append_unchecked_blocking(vec![old.into()]).unwrap();
    let r = h.root(Operation::Read, "database/config/legacy", Value::Null);
    let url = r.data.unwrap()["connection_details"]["connection_url"].as_str().unwrap().to_string();
    assert_eq!(url, "postgresql://lessor_admin:*****@db.example:5432/app");
    // And the auditor's renderings mask it too.
    let (entries, _) = read_entries(&ReadOnlyDir::new(h.dir.path())).unwrap();
    let entry =
        entries.iter().rev().find(|e| matches!(&e.event, Event::ConnectionWritten(c) if c.name == "legacy")).unwrap();
    let chain = [0u8; 32];
    for shown in [
        lessor_engine::audit::event_json(entry, &chain).to_string(),
        lessor_engine::audit::event_json_line(entry, &chain),
        lessor_engine::audit::event_text(entry, &chain),
    ] {
        assert!(!shown.contains("adminpw") && shown.contains("*****"), "{shown}");
    }
}

#[test]
fn a_caller_without_access_is_denied_before_learning_whether_a_route_exists() {
    let h = Harness::new();
    let (t, _) = h.token(&h.root, json!({"policies": ["default"]}));
    for (op, path) in [
        (Operation::Read, "no/such/engine"),
        (Operation::Read, "auth/token/no-such-verb"),
        (Operation::List, "sys/mounts/database/tune"),
        (Operation::Delete, "sys/mounts"),
    ] {
        let e = h.req(&t, op, path, Value::Null).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{path}: {e}");
        assert!(!e.to_string().contains("no handler") && !e.to_string().contains("unsupported"), "{e}");
    }
    // Root, and a caller granted the path, get the routing detail.
    assert_eq!(h.req(&h.root, Operation::Read, "no/such/engine", Value::Null).unwrap_err().kind(), ErrorKind::NotFound);
    policy(&h, "seer", r#"path "no/such/*" { capabilities = ["read"] }"#);
    let (seer, _) = h.token(&h.root, json!({"policies": ["seer"]}));
    let e = h.req(&seer, Operation::Read, "no/such/engine", Value::Null).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

#[test]
fn a_request_the_acl_denies_spends_none_of_a_tokens_uses() {
    let h = Harness::new();
    let (t, _) = h.token(&h.root, json!({"num_uses": 2, "policies": ["default"]}));
    for _ in 0..3 {
        let e = h.req(&t, Operation::Read, "sys/mounts", Value::Null).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }
    let looked = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap().data.unwrap();
    assert_eq!(looked["num_uses"], 1, "denied requests spent uses");
    h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap();
    let e = h.req(&t, Operation::Read, "auth/token/lookup-self", Value::Null).unwrap_err();
    assert!(e.to_string().contains("no uses left"), "{e}");
}

#[test]
fn capabilities_self_answers_from_the_acl_the_pipeline_authorizes_with() {
    let h = Harness::new();
    policy(
        &h,
        "app",
        "path \"database/creds/app\" { capabilities = [\"read\"] }\npath \"secret/*\" { capabilities = [\"deny\"] }",
    );
    let (t, accessor) = h.token(&h.root, json!({"policies": ["app"]}));
    let paths = ["database/creds/app", "database/creds/other", "secret/x", "auth/token/lookup-self"];
    // The default policy grants capabilities-self (Vault's), so any token may ask.
    let r = h.req(&t, Operation::Update, "sys/capabilities-self", json!({ "paths": paths })).unwrap();
    let data = r.data.unwrap();
    assert_eq!(data["database/creds/app"], json!(["read"]));
    assert_eq!(data["database/creds/other"], json!(["deny"]), "nothing granted reads as deny");
    assert_eq!(data["secret/x"], json!(["deny"]));
    assert_eq!(data["auth/token/lookup-self"], json!(["read"]));
    assert!(data.get("capabilities").is_none(), "`capabilities` only when one path was asked");
    // The answer agrees with what a request gets.
    assert_eq!(
        h.req(&t, Operation::Read, "database/creds/other", Value::Null).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    // One path (the older `path` field): also under `capabilities`.
    let r = h.req(&t, Operation::Update, "sys/capabilities-self", json!({ "path": "database/creds/app" })).unwrap();
    assert_eq!(r.data.unwrap()["capabilities"], json!(["read"]));
    // Root holds every capability, as `["root"]`.
    let r = h.root(Operation::Update, "sys/capabilities-self", json!({ "paths": ["anything/at/all"] }));
    assert_eq!(r.data.unwrap()["capabilities"], json!(["root"]));
    // Another token's, by accessor or secret: root (or a policy granting it) only.
    let r = h.root(
        Operation::Update,
        "sys/capabilities-accessor",
        json!({ "accessor": accessor, "paths": ["database/creds/app"] }),
    );
    assert_eq!(r.data.unwrap()["capabilities"], json!(["read"]));
    let r = h.root(Operation::Update, "sys/capabilities", json!({ "token": t, "paths": "database/creds/app" }));
    assert_eq!(r.data.unwrap()["capabilities"], json!(["read"]));
    let err =
        h.req(&t, Operation::Update, "sys/capabilities-accessor", json!({ "accessor": accessor, "paths": ["x"] }));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::PermissionDenied);
    // Bad input names the field.
    let err = h.req(&t, Operation::Update, "sys/capabilities-self", json!({})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("paths"), "{err}");
    let err = h
        .req(&h.root, Operation::Update, "sys/capabilities-accessor", json!({ "accessor": "nope", "paths": ["x"] }))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("accessor"), "{err}");
    // A read is not what it takes (a caller the ACL grants no read is denied first).
    let err = h.req(&h.root, Operation::Read, "sys/capabilities-self", Value::Null).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedOperation, "{err}");
    assert_eq!(
        h.req(&t, Operation::Read, "sys/capabilities-self", Value::Null).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}
