//! The walkthrough of `server_bao.rs`, through Python's hvac (from PyPI, as
//! installed by `scripts/setup`) against `lessor server -dev` and a real
//! PostgreSQL: hvac's own methods, not hand-made requests. `server_hvac.py`
//! runs one step at a time and prints what hvac returned; this side checks it
//! and looks at PostgreSQL between the steps.

mod common;

use std::path::Path;
use std::process::Command;

use common::server::{ServerProcess, python_bin};
use lessor_pgtemp as pg;
use serde_json::{Value, json};

const ROOT: &str = "root-hvac";

/// Runs `server_hvac.py step args` and parses the JSON it prints.
fn step(step: &str, args: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/server_hvac.py");
    let out = Command::new(python_bin())
        .arg(&script)
        .arg(step)
        .arg(args.to_string())
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hvac step {step}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("step {step} printed no JSON ({e}): {stdout}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap_or_else(|| panic!("not a list: {value}")).iter().map(|v| v.as_str().unwrap()).collect()
}

#[test]
fn the_walkthrough_through_hvac() {
    let db = pg::database("server_hvac");
    let server = ServerProcess::dev(ROOT, &["-access-log=off"]);
    let base = json!({ "url": server.url, "token": ROOT });
    let with = |extra: Value| {
        let mut args = base.clone();
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        args
    };

    // is_authenticated, enable, configure, create_role, generate, renew
    let out = step(
        "issue",
        &with(json!({
            "connection_url": db.url_template(),
            "username": db.admin_username(),
            "password": db.admin_password(),
        })),
    );
    assert_eq!(out["authenticated"], true);
    assert_eq!(out["enable_status"], 204);
    assert!(strings(&out["mounts"]).contains(&"database/"), "{}", out["mounts"]);
    assert_eq!(out["configure_status"], 204);
    // The article's GRANT … ON ALL TABLES draws lessor's warning: a 200 carrying it.
    let warnings = strings(&out["role_reply"]["warnings"]);
    assert!(warnings.iter().any(|w| w.contains("ON ALL TABLES")), "{warnings:?}");
    assert_eq!(out["role"]["db_name"], "my-postgresql");
    assert_eq!(out["role"]["default_ttl"], 3600);
    assert_eq!(out["role"]["max_ttl"], 86400);
    let issued = &out["issued"];
    let lease_id = issued["lease_id"].as_str().expect("lease_id").to_string();
    assert!(lease_id.starts_with("database/creds/app-readonly/"), "{lease_id}");
    assert_eq!(issued["lease_duration"], 3600);
    assert_eq!(issued["renewable"], true);
    let user = issued["data"]["username"].as_str().expect("username").to_string();
    let pass = issued["data"]["password"].as_str().expect("password").to_string();
    assert!(db.can_login(&user, &pass), "the issued user cannot log in");
    let renewed = &out["renewed"];
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    assert_eq!(renewed["lease_duration"], 7200);
    assert_eq!(renewed["renewable"], true);
    assert_eq!(out["looked_up"]["id"], lease_id.as_str());
    assert!(out["looked_up"]["last_renewal"].is_string(), "{}", out["looked_up"]);

    // create_or_update_policy (legacy sys/policy), a token holding it, its reach
    let out = step("policy", &base);
    assert_eq!(out["policy_status"], 204);
    assert_eq!(out["policy_read"]["name"], "app-readonly");
    assert!(out["policy_read"]["rules"].as_str().unwrap().contains("database/creds/app-readonly"), "{out}");
    assert!(strings(&out["policies"]["policies"]).contains(&"app-readonly"), "{}", out["policies"]);
    let created = &out["created"];
    assert!(strings(&created["policies"]).contains(&"app-readonly"), "{created}");
    assert_eq!(created["renewable"], true);
    assert_eq!(out["app_authenticated"], true);
    assert_eq!(out["app_self"]["id"], created["client_token"]);
    assert_eq!(out["app_self"]["display_name"], "token-app-A");
    let app_user = out["app_issued"]["data"]["username"].as_str().unwrap().to_string();
    assert!(db.role_exists(&app_user));
    assert_eq!(out["denied_read_role"], "Forbidden");
    assert_eq!(out["denied_configure"], "Forbidden");
    assert_eq!(out["denied_policy"], "Forbidden");
    assert_eq!(out["unknown_token"], false);

    // revoke_lease: synchronous, the role is gone when it answers
    let out = step("revoke", &with(json!({ "lease_id": lease_id })));
    assert_eq!(out["revoke_status"], 204);
    // A lease that is gone: 400 on lookup, as Vault ("invalid lease"), which
    // hvac raises as InvalidRequest; revoking it again succeeds.
    assert_eq!(out["lookup_after"], "InvalidRequest", "{out}");
    assert_eq!(out["revoke_again_status"], 204, "{out}");
    assert!(!db.role_exists(&user), "a synchronous revoke drops the user before it answers");
    assert!(!db.can_login(&user, &pass));

    // rotate_root_credentials; health (HEAD, hvac's default) and seal status
    let out = step("rotate", &base);
    assert_eq!(out["rotate_status"], 204);
    assert!(!db.can_login(db.admin_username(), db.admin_password()), "the old admin password still works");
    assert!(db.role_exists(out["issued"]["data"]["username"].as_str().unwrap()));
    assert_eq!(out["health_head_status"], 200);
    assert_eq!(out["health_head_body"], "");
    assert_eq!(out["health_get"]["initialized"], true);
    assert_eq!(out["health_get"]["sealed"], false);
    assert_eq!(out["health_get"]["standby"], false);
    let seal = &out["seal_status"];
    assert_eq!(seal["sealed"], false);
    assert_eq!(seal["initialized"], true);
    let version = seal["version"].as_str().unwrap();
    assert_eq!(version.split('.').filter(|p| p.parse::<u64>().is_ok()).count(), 3, "semver: {version}");
    assert_eq!(out["is_initialized"], true);
    assert_eq!(out["is_sealed"], false);
    server.stop();
}
