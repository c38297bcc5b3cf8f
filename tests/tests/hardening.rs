//! The security review's reproductions (issue 14), against a real PostgreSQL:
//! lease prefixes are paths, revoke-force still drops the user, and a password
//! written inside `connection_url` is never stored or shown.

use lessor_engine::audit;
use lessor_engine::request::{ErrorKind, Operation};
use lessor_tests::lessor::Lessor;
use lessor_tests::pg;
use serde_json::{Value, json};

const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// Issues a credential of `role` as root: (lease_id, username).
fn issue(l: &Lessor, role: &str) -> (String, String) {
    let r = l.read(&format!("database/creds/{role}")).unwrap_or_else(|e| panic!("issue {role}: {e}"));
    (r.lease_id, r.data.unwrap()["username"].as_str().unwrap().to_string())
}

fn role_exists(db: &pg::TestDb, user: &str) -> bool {
    db.superuser_scalar(&format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'")).as_deref() == Some("1")
}

fn live(l: &Lessor, lease_id: &str) -> bool {
    l.request(Operation::Update, "sys/leases/lookup", json!({ "lease_id": lease_id })).is_ok()
}

fn keys(l: &Lessor, token: &str, path: &str) -> Result<Vec<String>, ErrorKind> {
    let r = l.request_as(token, Operation::List, path, Value::Null).map_err(|e| e.kind())?;
    Ok(r.data.unwrap()["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect())
}

/// Three roles whose names share a prefix, as in the review: `app`, `app2`,
/// `app-readonly`.
fn three_roles(hint: &str) -> (pg::TestDb, Lessor) {
    let db = pg::database(hint);
    let l = Lessor::new();
    l.connect(&db, hint, "");
    for role in ["app", "app2", "app-readonly"] {
        l.write(&format!("database/roles/{role}"), json!({ "db_name": "pg", "creation_statements": CREATION }));
    }
    (db, l)
}

#[test]
fn revoke_prefix_and_lease_listing_match_paths_not_strings() {
    let (db, l) = three_roles("prefix");
    let app = [issue(&l, "app"), issue(&l, "app")];
    let others = [issue(&l, "app2"), issue(&l, "app-readonly")];

    // A token allowed exactly what the review gave it.
    l.write(
        "sys/policy/app-revoker",
        json!({ "policy": r#"
            path "sys/leases/revoke-prefix/database/creds/app" { capabilities = ["update", "sudo"] }
            path "sys/leases/lookup/database/creds/app" { capabilities = ["list", "sudo"] }
        "# }),
    );
    let r = l.write("auth/token/create", json!({ "policies": ["app-revoker"], "display_name": "revoker" }));
    let token = r.auth.unwrap().client_token;

    // Listing shows app's leases only (the next path segment under app/).
    let listed = keys(&l, &token, "sys/leases/lookup/database/creds/app").unwrap();
    let mut want: Vec<String> = app.iter().map(|(id, _)| id.rsplit('/').next().unwrap().to_string()).collect();
    want.sort();
    assert_eq!(listed, want, "app's listing shows other roles' leases");
    // The directory above lists the three roles as directories.
    let roles = keys(&l, &l.root, "sys/leases/lookup/database/creds").unwrap();
    assert_eq!(roles, ["app-readonly/", "app/", "app2/"]);

    // Empty prefixes are refused, and change nothing.
    for path in ["sys/leases/revoke-prefix/", "sys/leases/revoke-force/"] {
        let e = l.request(Operation::Update, path, json!({})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{path}: {e}");
        assert!(e.to_string().contains("prefix is empty"), "{e}");
    }
    // A prefix that is a string prefix but not a path prefix matches nothing.
    l.write("sys/leases/revoke-prefix/d", json!({}));
    l.write("sys/leases/revoke-prefix/database/cre", json!({}));
    l.rt().block_on(l.engine().recover()).unwrap();
    for (lease, _) in app.iter().chain(&others) {
        assert!(live(&l, lease), "{lease} was revoked by a partial path");
    }

    // revoke-prefix of app revokes app's leases only.
    l.request_as(&token, Operation::Update, "sys/leases/revoke-prefix/database/creds/app", json!({})).unwrap();
    l.rt().block_on(l.engine().recover()).unwrap();
    for (lease, user) in &app {
        assert!(!live(&l, lease), "{lease} survived revoke-prefix of its role");
        assert!(!role_exists(&db, user), "{user} still in pg_roles");
    }
    for (lease, user) in &others {
        assert!(live(&l, lease), "{lease} of another role was revoked");
        assert!(role_exists(&db, user), "{user} was dropped");
    }
    // The token cannot reach app2 by spelling it differently.
    let e = l.request_as(&token, Operation::Update, "sys/leases/revoke-prefix/database/creds/app2", json!({}));
    assert_eq!(e.unwrap_err().kind(), ErrorKind::PermissionDenied);

    // An exact lease id (no trailing slash) revokes that lease.
    let (one, _) = &others[0];
    l.write(&format!("sys/leases/revoke-prefix/{one}"), json!({}));
    l.rt().block_on(l.engine().recover()).unwrap();
    assert!(!live(&l, one));
    assert!(live(&l, &others[1].0));
}

#[test]
fn revoke_force_drops_a_healthy_user_and_forgets_only_what_the_database_refuses() {
    let db = pg::database("force");
    let l = Lessor::new();
    l.connect(&db, "force", "");
    l.write("database/roles/healthy", json!({ "db_name": "pg", "creation_statements": CREATION }));
    l.write(
        "database/roles/stuck",
        json!({
            "db_name": "pg",
            "creation_statements": CREATION,
            "revocation_statements": "DO $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;",
        }),
    );
    let (healthy, healthy_user) = issue(&l, "healthy");
    let (stuck, stuck_user) = issue(&l, "stuck");

    // A healthy lease: force runs the revocation; the user is gone.
    let r = l.write(&format!("sys/leases/revoke-force/{healthy}"), json!({}));
    assert!(r.warnings.is_none(), "{:?}", r.warnings);
    assert!(!live(&l, &healthy));
    assert!(!role_exists(&db, &healthy_user), "revoke-force left a healthy user able to log in");

    // A lease the database refuses: forgotten, and the reply says the user may remain.
    let r = l.write("sys/leases/revoke-force/database/creds/stuck", json!({}));
    let warnings = r.warnings.expect("a forced lease is reported");
    assert!(warnings[0].contains(&stuck) && warnings[0].contains("may still log in"), "{warnings:?}");
    assert!(!live(&l, &stuck));
    assert!(role_exists(&db, &stuck_user), "the test's refusal did not hold");

    // The audit tells the two apart.
    let dir = l.dir.path();
    let healthy_life = audit::who_had(dir, &healthy_user, None, None).unwrap();
    assert_eq!(healthy_life[0].ended.as_ref().unwrap().how, "revoked (forced)");
    let stuck_life = audit::who_had(dir, &stuck_user, None, None).unwrap();
    let how = &stuck_life[0].ended.as_ref().unwrap().how;
    assert!(how.starts_with("revoke forced") && how.contains("refused by the test"), "{how}");
    let window = audit::diff(dir, 0, i64::MAX, audit::ReplayOptions::default(), None).unwrap();
    let revoked: Vec<_> = window.revoked.iter().map(|r| (r.username.as_str(), r.reason, r.forced)).collect();
    assert!(revoked.contains(&(healthy_user.as_str(), "forced", false)), "{revoked:?}");
    assert!(revoked.contains(&(stuck_user.as_str(), "forced", true)), "{revoked:?}");
    let stuck_row = window.revoked.iter().find(|r| r.username == stuck_user).unwrap();
    assert!(stuck_row.refusal.as_deref().unwrap().contains("refused by the test"));
    db.admin_execute(&format!("DROP ROLE \"{stuck_user}\""));
}
