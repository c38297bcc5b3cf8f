//! Vault's wire format, asserted byte by byte: every route of `lessor server
//! -dev`, through a raw HTTP/1.1 client over a `TcpStream` (no HTTP library
//! between the test and the socket), row by row — method, path, token header,
//! body → status, and the body's shape: Vault's envelope for a 200,
//! `{"errors": [...]}` for an error, nothing for a 202 / 204 / HEAD. A
//! refused request changes nothing. The database behind the mount is a real
//! PostgreSQL, configured through the API.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::server::ServerProcess;
use lessor_pgtemp as pg;
use serde_json::{Value, json};

const ROOT: &str = "root-wire";

/// A reply as it came off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Names lowercased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes one request with `Connection: close` and reads the reply to EOF.
fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(String, String)], body: Option<&[u8]>) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the reply");
    parse(&raw, method == "HEAD")
}

fn parse(raw: &[u8], head_only: bool) -> Reply {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no end of headers in {:?}", String::from_utf8_lossy(raw));
    });
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII headers");
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status: u16 = parts.next().unwrap().parse().expect("a status code");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let body = if head_only {
        assert!(rest.is_empty(), "a HEAD reply with a body");
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().unwrap();
        assert_eq!(rest.len(), length, "Content-Length {length}, body {} bytes", rest.len());
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Reply { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// How a request carries its token.
#[derive(Clone, Copy, Debug)]
enum Auth<'a> {
    None,
    Header(&'a str),
    Bearer(&'a str),
}

/// What a reply's body must be.
#[derive(Clone, Copy, Debug)]
enum Shape<'a> {
    /// Vault's response envelope, every field present.
    Envelope,
    /// `{"errors": [...]}` with at least one message, one containing this text.
    Error(&'a str),
    /// `{"errors": []}` (Vault's empty list).
    NoErrors,
    /// No body at all.
    Empty,
    /// A JSON object (the server's own endpoints), with these fields.
    Object(&'a [&'a str]),
    /// Prometheus text containing these names.
    Text(&'a [&'a str]),
}

/// One row of a table.
#[derive(Clone, Debug)]
struct Row<'a> {
    method: &'a str,
    path: String,
    auth: Auth<'a>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    status: u16,
    shape: Shape<'a>,
}

fn row<'a>(method: &'a str, path: impl Into<String>) -> Row<'a> {
    Row {
        method,
        path: path.into(),
        auth: Auth::Header(ROOT),
        headers: Vec::new(),
        body: None,
        status: 0,
        shape: Shape::Empty,
    }
}

impl<'a> Row<'a> {
    fn auth(mut self, auth: Auth<'a>) -> Self {
        self.auth = auth;
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }
    fn json(self, body: Value) -> Self {
        self.body(body.to_string())
    }
    fn expect(mut self, status: u16, shape: Shape<'a>) -> Self {
        self.status = status;
        self.shape = shape;
        self
    }

    /// Sends the row and asserts its status and shape; returns the reply.
    fn check(&self, addr: SocketAddr) -> Reply {
        let mut headers = self.headers.clone();
        match self.auth {
            Auth::None => {}
            Auth::Header(t) => headers.push(("X-Vault-Token".into(), t.into())),
            Auth::Bearer(t) => headers.push(("Authorization".into(), format!("Bearer {t}"))),
        }
        let target = if self.path.starts_with('/') { self.path.clone() } else { format!("/v1/{}", self.path) };
        let reply = send(addr, self.method, &target, &headers, self.body.as_deref().map(str::as_bytes));
        let what = format!("{} {} ({:?}, body {:?})", self.method, target, self.auth, self.body);
        assert_eq!(reply.status, self.status, "{what}: status; body {}", reply.text());
        let content_type = reply.header("content-type").unwrap_or("");
        match self.shape {
            Shape::Empty => assert!(reply.body.is_empty(), "{what}: a body: {}", reply.text()),
            Shape::Envelope => {
                assert_eq!(content_type, "application/json", "{what}");
                assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
                envelope(&reply.json(), &what);
            }
            Shape::Error(needle) => {
                assert_eq!(content_type, "application/json", "{what}");
                let errors = only_errors(&reply.json(), &what);
                assert!(!errors.is_empty(), "{what}: no message");
                assert!(errors.iter().any(|e| e.contains(needle)), "{what}: no error mentions {needle:?}: {errors:?}");
            }
            Shape::NoErrors => {
                assert_eq!(content_type, "application/json", "{what}");
                assert!(only_errors(&reply.json(), &what).is_empty(), "{what}");
            }
            Shape::Object(fields) => {
                assert_eq!(content_type, "application/json", "{what}");
                let body = reply.json();
                for field in fields {
                    assert!(body.get(field).is_some(), "{what}: no \"{field}\" in {body}");
                }
            }
            Shape::Text(names) => {
                assert!(content_type.starts_with("text/plain"), "{what}: {content_type}");
                let text = reply.text();
                for name in names {
                    assert!(text.contains(name), "{what}: no {name} in\n{text}");
                }
            }
        }
        reply
    }
}

/// The envelope's every field, with its type.
fn envelope(body: &Value, what: &str) {
    let object = body.as_object().unwrap_or_else(|| panic!("{what}: not an object: {body}"));
    for field in ["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"] {
        assert!(object.contains_key(field), "{what}: no \"{field}\" in {body}");
    }
    assert!(!body["request_id"].as_str().unwrap_or("").is_empty(), "{what}: request_id");
    assert!(body["lease_id"].is_string(), "{what}: lease_id");
    assert!(body["renewable"].is_boolean(), "{what}: renewable");
    assert!(body["lease_duration"].is_u64(), "{what}: lease_duration");
    assert!(body["wrap_info"].is_null(), "{what}: wrap_info");
    assert!(body["warnings"].is_null() || body["warnings"].is_array(), "{what}: warnings");
    if let Some(auth) = body["auth"].as_object() {
        for field in [
            "client_token",
            "accessor",
            "policies",
            "token_policies",
            "identity_policies",
            "metadata",
            "orphan",
            "entity_id",
            "lease_duration",
            "renewable",
        ] {
            assert!(auth.contains_key(field), "{what}: no auth.{field} in {body}");
        }
    } else {
        assert!(body["auth"].is_null(), "{what}: auth");
    }
}

/// `{"errors": [...]}` and nothing else; the messages.
fn only_errors(body: &Value, what: &str) -> Vec<String> {
    let object = body.as_object().unwrap_or_else(|| panic!("{what}: not an object: {body}"));
    assert_eq!(object.keys().collect::<Vec<_>>(), ["errors"], "{what}: {body}");
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: errors is not a list: {body}"))
        .iter()
        .map(|e| e.as_str().unwrap_or_else(|| panic!("{what}: a message that is not a string: {body}")).to_string())
        .collect()
}

fn run(addr: SocketAddr, rows: &[Row<'_>]) {
    for row in rows {
        row.check(addr);
    }
}

fn semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap();
    core.split('.').count() == 3 && core.split('.').all(|p| p.parse::<u64>().is_ok())
}

fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (text.ends_with('Z') || text.contains('+'))
}

const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
const REVOCATION: &str = "DROP ROLE IF EXISTS \"{{name}}\";";
const APP_POLICY: &str = "path \"database/creds/ro\" { capabilities = [\"read\"] }";

#[test]
fn every_route_on_the_wire() {
    use Auth::{Bearer, Header};
    use Shape::*;

    let db = pg::database("server_wire");
    let server = ServerProcess::dev(ROOT, &["-access-log=off"]);
    let addr = server.addr;

    // The unauthenticated trio (and HEAD health), before any token.
    let health = row("GET", "sys/health")
        .auth(Auth::None)
        .expect(200, Object(&["initialized", "sealed", "standby", "version", "server_time_utc"]))
        .check(addr)
        .json();
    assert_eq!((health["initialized"].clone(), health["sealed"].clone()), (json!(true), json!(false)));
    assert!(semver(health["version"].as_str().unwrap()), "{health}");
    let seal = row("GET", "sys/seal-status")
        .auth(Auth::None)
        .expect(
            200,
            Object(&[
                "type",
                "initialized",
                "sealed",
                "t",
                "n",
                "progress",
                "nonce",
                "version",
                "build_date",
                "migration",
                "cluster_name",
                "cluster_id",
                "recovery_seal",
                "storage_type",
            ]),
        )
        .check(addr)
        .json();
    assert!(semver(seal["version"].as_str().unwrap()), "the Terraform provider parses it: {seal}");
    assert_eq!(seal["sealed"], false);
    let leader = row("GET", "sys/leader")
        .auth(Auth::None)
        .expect(200, Object(&["ha_enabled", "is_self", "leader_address", "leader_cluster_address"]))
        .check(addr)
        .json();
    assert_eq!((leader["ha_enabled"].clone(), leader["is_self"].clone()), (json!(false), json!(true)));
    run(
        addr,
        &[
            row("HEAD", "sys/health").auth(Auth::None).expect(200, Empty),
            row("HEAD", "sys/health?activecode=299").auth(Auth::None).expect(299, Empty),
            row("GET", "sys/health?activecode=203").auth(Auth::None).expect(203, Object(&["initialized"])),
            // initialized: the uninitialized code does not apply
            row("GET", "sys/health?uninitcode=299&standbyok=true")
                .auth(Auth::None)
                .expect(200, Object(&["initialized"])),
            row("GET", "sys/health?activecode=soon").auth(Auth::None).expect(400, Error("activecode")),
            row("PUT", "sys/health").auth(Auth::None).expect(405, Error("GET")),
            row("GET", "sys/init").auth(Auth::None).expect(200, Object(&["initialized"])),
            row("PUT", "sys/init")
                .auth(Auth::None)
                .json(json!({"secret_shares": 1, "secret_threshold": 1}))
                .expect(400, Error("already initialized")),
            // consul-template's probe: a clean 404, with or without a token
            row("GET", "sys/internal/ui/mounts/secret").auth(Auth::None).expect(404, Error("")),
            row("GET", "sys/internal/ui/mounts/secret").expect(404, Error("")),
            row("GET", "/v2/sys/health").auth(Auth::None).expect(404, Error("/v1/")),
        ],
    );

    // Tokens: the header, Bearer, none, unknown; methods and operations.
    let mounts_before = row("GET", "sys/mounts").expect(200, Envelope).check(addr).json()["data"].clone();
    run(
        addr,
        &[
            row("GET", "sys/mounts").auth(Bearer(ROOT)).expect(200, Envelope),
            row("GET", "sys/mounts").header("X-Vault-Request", "true").expect(200, Envelope),
            row("GET", "sys/mounts").auth(Auth::None).expect(403, Error("permission denied")),
            row("GET", "sys/mounts").auth(Header("s.unknown")).expect(403, Error("permission denied")),
            row("GET", "sys/mounts").auth(Bearer("s.unknown")).expect(403, Error("permission denied")),
            row("PATCH", "sys/mounts").expect(405, Error("PATCH")),
            row("PUT", "sys/mounts").json(json!({})).expect(405, Error("unsupported operation")),
            row("GET", "sys/mounts").header("X-Vault-Wrap-TTL", "5m").expect(400, Error("X-Vault-Wrap-TTL")),
            row("HEAD", "sys/mounts").expect(405, Empty),
        ],
    );

    // Enabling the mount: the CLI's trailing slash and body; refused writes change nothing.
    let bao_body = json!({
        "type": "database", "description": "",
        "config": {"default_lease_ttl": "0s", "max_lease_ttl": "0s", "force_no_cache": false},
        "local": false, "seal_wrap": false, "options": null,
    });
    run(
        addr,
        &[
            row("POST", "sys/mounts/db2").body("{\"type\": ").expect(400, Error("not valid JSON")),
            row("POST", "sys/mounts/db2").body("[1]").expect(400, Error("JSON object")),
            row("POST", "sys/mounts/db2").body("type=database").expect(400, Error("JSON")),
            row("POST", "sys/mounts/db2")
                .json(json!({"type": "database", "config": {"default_lease_ttl": "soon"}}))
                .expect(400, Error("default_lease_ttl")),
            row("POST", "sys/mounts/db2").json(json!({"type": "database", "bogus": 1})).expect(400, Error("bogus")),
            row("POST", "sys/mounts/db2").json(json!({"type": "kv"})).expect(400, Error("type")),
            row("POST", "sys/mounts/db2").json(json!({"type": "database"})).auth(Auth::None).expect(403, Error("")),
        ],
    );
    let mounts_after = row("GET", "sys/mounts").expect(200, Envelope).check(addr).json()["data"].clone();
    assert_eq!(mounts_before, mounts_after, "a refused write changed sys/mounts");
    run(
        addr,
        &[
            row("PUT", "sys/mounts/database/").json(bao_body).expect(204, Empty),
            row("GET", "sys/mounts/database").expect(200, Envelope),
            row("GET", "sys/mounts/database/tune").expect(200, Envelope),
            row("LIST", "sys/mounts/database").expect(405, Error("unsupported operation")),
        ],
    );
    let mounts = row("GET", "sys/mounts/").expect(200, Envelope).check(addr).json();
    assert_eq!(mounts["data"]["database/"]["type"], "database", "{mounts}");

    // The connection and roles: LIST and GET ?list=true, PUT ≡ POST, empty lists.
    let connection = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": db.url_template(),
        "username": db.admin_username(),
        "password": db.admin_password(),
        "allowed_roles": ["ro", "ro2"],
    });
    let role = json!({
        "db_name": "pg", "creation_statements": [CREATION], "revocation_statements": [REVOCATION],
        "default_ttl": "1h", "max_ttl": "24h",
    });
    run(
        addr,
        &[
            row("LIST", "database/config").expect(404, NoErrors),
            row("GET", "database/config?list=true").expect(404, NoErrors),
            row("PUT", "database/config/pg").json(connection).expect(204, Empty),
            row("LIST", "database/config").expect(200, Envelope),
            row("GET", "database/config/?list=true").expect(200, Envelope),
            row("GET", "database/config/pg").expect(200, Envelope),
            row("LIST", "database/roles").expect(404, NoErrors),
            row("GET", "database/roles/?list=true").expect(404, NoErrors),
            row("PUT", "database/roles/ro").json(role.clone()).expect(204, Empty),
            row("POST", "database/roles/ro2").json(role.clone()).expect(204, Empty),
            row("LIST", "database/roles/ro").expect(405, Error("unsupported operation")),
            row("GET", "database/roles/nope").expect(404, Error("nope")),
            row("DELETE", "database/creds/ro").expect(405, Error("unsupported operation")),
            row("PUT", "database/creds/ro").json(json!({})).expect(405, Error("unsupported operation")),
            row("GET", "database/rotate-root/pg").expect(405, Error("unsupported operation")),
            row("GET", "database/nothing-here").expect(404, Error("nothing-here")),
        ],
    );
    let ro = row("GET", "database/roles/ro").expect(200, Envelope).check(addr).json()["data"].clone();
    let ro2 = row("GET", "database/roles/ro2").expect(200, Envelope).check(addr).json()["data"].clone();
    assert_eq!(ro, ro2, "PUT and POST wrote the same role");
    let listed = row("LIST", "database/roles/").expect(200, Envelope).check(addr).json();
    assert_eq!(listed["data"]["keys"], json!(["ro", "ro2"]), "{listed}");
    let listed_get = row("GET", "database/roles?list=true").expect(200, Envelope).check(addr).json();
    assert_eq!(listed_get["data"], listed["data"]);
    // A bad role changes nothing.
    let mut bad_role = role.clone();
    bad_role["default_ttl"] = json!("soon");
    run(
        addr,
        &[
            row("POST", "database/roles/ro3").json(bad_role).expect(400, Error("default_ttl")),
            row("GET", "database/roles/ro3").expect(404, Error("ro3")),
        ],
    );
    assert_eq!(row("LIST", "database/roles").expect(200, Envelope).check(addr).json()["data"], listed["data"]);

    // Credentials and their leases.
    let issue = |auth: Auth<'_>| {
        let reply = row("GET", "database/creds/ro").auth(auth).expect(200, Envelope).check(addr).json();
        // A lease never outlives its token: at most the role's 1h.
        let ttl = reply["lease_duration"].as_u64().unwrap();
        assert!((1..=3600).contains(&ttl), "{reply}");
        assert_eq!(reply["renewable"], true);
        assert!(reply["data"]["username"].is_string() && reply["data"]["password"].is_string(), "{reply}");
        assert!(db.can_login(reply["data"]["username"].as_str().unwrap(), reply["data"]["password"].as_str().unwrap()));
        reply["lease_id"].as_str().unwrap().to_string()
    };
    let lease1 = issue(Header(ROOT));
    let first = row("PUT", "sys/leases/lookup").json(json!({"lease_id": lease1})).expect(200, Envelope).check(addr);
    assert!((3590..=3600).contains(&first.json()["data"]["ttl"].as_u64().unwrap()), "the role's default_ttl");
    let lease2 = issue(Bearer(ROOT));
    let lease3 = issue(Header(ROOT));
    let lease4 = issue(Header(ROOT));
    let renewed = row("PUT", "sys/leases/renew")
        .json(json!({"lease_id": lease1, "increment": "3600"}))
        .expect(200, Envelope)
        .check(addr)
        .json();
    assert_eq!(renewed["lease_id"], lease1.as_str());
    assert_eq!(renewed["lease_duration"], 3600);
    assert_eq!(renewed["renewable"], true);
    let renewed = row("POST", "sys/leases/renew/")
        .json(json!({"lease_id": lease1, "increment": 1800}))
        .expect(200, Envelope)
        .check(addr)
        .json();
    assert_eq!(renewed["lease_duration"], 1800);
    let looked =
        row("PUT", "sys/leases/lookup").json(json!({"lease_id": lease1})).expect(200, Envelope).check(addr).json();
    let data = &looked["data"];
    assert_eq!(data["id"], lease1.as_str());
    for field in ["issue_time", "expire_time", "last_renewal"] {
        assert!(is_rfc3339(data[field].as_str().unwrap_or("")), "{field}: {data}");
    }
    assert!(data["ttl"].is_u64() && data["renewable"].is_boolean(), "{data}");
    let prefix = "database/creds/ro/";
    let keys = row("LIST", format!("sys/leases/lookup/{prefix}")).expect(200, Envelope).check(addr).json();
    assert_eq!(keys["data"]["keys"].as_array().unwrap().len(), 4, "{keys}");
    run(
        addr,
        &[
            row("PUT", "sys/leases/renew")
                .json(json!({"lease_id": lease1, "increment": "soon"}))
                .expect(400, Error("increment")),
            row("PUT", "sys/leases/renew").json(json!({"increment": 60})).expect(400, Error("lease_id")),
            row("PUT", "sys/leases/renew")
                .json(json!({"lease_id": "database/creds/ro/nope"}))
                .expect(400, Error("lease not found")),
            row("GET", "sys/leases/lookup").expect(405, Error("unsupported operation")),
            row("GET", "sys/leases/renew").expect(405, Error("unsupported operation")),
            row("LIST", "sys/leases/lookup/database/creds/none/").expect(404, NoErrors),
        ],
    );
    // Revoke: queued (sync false, what the CLI sends) is 202, synchronous 204.
    run(
        addr,
        &[
            row("PUT", "sys/leases/revoke").json(json!({"lease_id": lease1, "sync": false})).expect(202, Empty),
            row("PUT", format!("sys/leases/revoke/{lease2}")).json(json!({"sync": true})).expect(204, Empty),
            row("PUT", format!("sys/leases/revoke/{lease3}")).expect(204, Empty),
            row("PUT", format!("sys/leases/revoke/{lease4}")).json(json!({"sync": false})).expect(202, Empty),
            row("PUT", "sys/leases/revoke")
                .json(json!({"lease_id": lease1, "sync": "maybe"}))
                .expect(400, Error("sync")),
        ],
    );
    // A lease that is gone: 400 on lookup and renew, and a revoke that
    // succeeds with nothing to do (Vault's answers, checked against OpenBao 2.7).
    for gone in [&lease2, &lease3] {
        row("PUT", "sys/leases/lookup").json(json!({"lease_id": gone})).expect(400, Error("lease")).check(addr);
        row("PUT", "sys/leases/renew").json(json!({"lease_id": gone})).expect(400, Error("lease")).check(addr);
    }
    run(
        addr,
        &[
            row("PUT", "sys/leases/revoke").json(json!({"lease_id": lease2, "sync": true})).expect(204, Empty),
            row("PUT", format!("sys/leases/revoke/{lease3}")).expect(204, Empty),
            row("PUT", "sys/leases/revoke").json(json!({"lease_id": lease2, "sync": false})).expect(202, Empty),
            row("PUT", "sys/leases/revoke").json(json!({"lease_id": "database/creds/ro/never"})).expect(204, Empty),
        ],
    );

    // Policies: the legacy path answers `rules`, the new one `policy` (as Vault).
    run(
        addr,
        &[
            row("PUT", "sys/policies/acl/app").json(json!({"policy": APP_POLICY})).expect(204, Empty),
            row("PUT", "sys/policy/legacy").json(json!({"policy": APP_POLICY})).expect(204, Empty),
            row("PUT", "sys/policies/acl/bad").json(json!({"policy": "path {"})).expect(400, Error("policy")),
            row("PUT", "sys/policies/acl/bad").json(json!({})).expect(400, Error("policy")),
            row("LIST", "sys/policies/acl/app").expect(405, Error("unsupported operation")),
            row("GET", "sys/policies/acl/nope").expect(404, Error("nope")),
            row("PUT", "sys/policies/acl/old").json(json!({"rules": APP_POLICY})).expect(400, Error("rules")),
        ],
    );
    let new = row("GET", "sys/policies/acl/legacy").expect(200, Envelope).check(addr).json();
    assert_eq!(new["data"], json!({"name": "legacy", "policy": APP_POLICY}), "{new}");
    let old = row("GET", "sys/policy/app").expect(200, Envelope).check(addr).json();
    assert_eq!(old["data"], json!({"name": "app", "rules": APP_POLICY}), "{old}");
    let new_list = row("LIST", "sys/policies/acl").expect(200, Envelope).check(addr).json();
    assert_eq!(new_list["data"], json!({"keys": ["app", "default", "legacy", "root"]}), "{new_list}");
    let old_list = row("GET", "sys/policy").expect(200, Envelope).check(addr).json();
    assert_eq!(old_list["data"]["keys"], new_list["data"]["keys"]);
    assert_eq!(old_list["data"]["policies"], new_list["data"]["keys"], "{old_list}");
    assert_eq!(
        row("GET", "sys/policies/acl?list=true").expect(200, Envelope).check(addr).json()["data"],
        new_list["data"]
    );
    assert_eq!(row("LIST", "sys/policy/").expect(200, Envelope).check(addr).json()["data"], old_list["data"]);
    // The legacy path still takes `rules`, with Vault's warning.
    let warned =
        row("PUT", "sys/policy/old").json(json!({"rules": APP_POLICY})).expect(200, Envelope).check(addr).json();
    assert!(warned["warnings"][0].as_str().unwrap().contains("'rules' is deprecated"), "{warned}");
    assert_eq!(
        row("GET", "sys/policies/acl/old").expect(200, Envelope).check(addr).json()["data"]["policy"],
        APP_POLICY
    );
    row("DELETE", "sys/policy/legacy").expect(204, Empty).check(addr);
    row("GET", "sys/policies/acl/legacy").expect(404, Error("legacy")).check(addr);

    // Tokens: lookup-self with every field clients read, Terraform's child token.
    let me = row("GET", "auth/token/lookup-self").expect(200, Envelope).check(addr).json();
    let data = &me["data"];
    assert_eq!(data["id"], ROOT);
    assert!(data["ttl"].is_u64() && data["renewable"].is_boolean(), "{data}");
    assert_eq!(data["type"], "service");
    assert!(data["expire_time"].is_null(), "the root token never expires: {data}");
    for field in [
        "accessor",
        "policies",
        "display_name",
        "creation_time",
        "creation_ttl",
        "explicit_max_ttl",
        "num_uses",
        "orphan",
        "path",
        "meta",
        "entity_id",
        "issue_time",
    ] {
        assert!(data.get(field).is_some(), "lookup-self has no {field}: {data}");
    }
    let terraform = row("POST", "auth/token/create")
        .json(json!({"display_name": "terraform", "ttl": "1200s", "explicit_max_ttl": "1200s", "renewable": false}))
        .expect(200, Envelope)
        .check(addr)
        .json();
    let auth = &terraform["auth"];
    assert_eq!(auth["lease_duration"], 1200);
    assert_eq!(auth["renewable"], false);
    assert_eq!(auth["orphan"], false);
    let tf_token = auth["client_token"].as_str().unwrap().to_string();
    let tf = row("GET", "auth/token/lookup-self").auth(Bearer(&tf_token)).expect(200, Envelope).check(addr).json();
    let data = &tf["data"];
    assert_eq!(data["id"], tf_token.as_str());
    assert_eq!(data["display_name"], "token-terraform");
    assert!(is_rfc3339(data["expire_time"].as_str().unwrap_or("")), "{data}");
    let ttl = data["ttl"].as_u64().unwrap();
    assert!((1100..=1200).contains(&ttl), "{data}");
    assert_eq!(data["renewable"], false);
    assert_eq!(data["explicit_max_ttl"], 1200);

    let app = row("POST", "auth/token/create")
        .json(json!({"policies": ["app"], "ttl": "1h"}))
        .expect(200, Envelope)
        .check(addr)
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let renewed = row("PUT", "auth/token/renew-self")
        .auth(Bearer(&app))
        .json(json!({"increment": "30m"}))
        .expect(200, Envelope)
        .check(addr)
        .json();
    assert_eq!(renewed["auth"]["lease_duration"], 1800);
    assert_eq!(renewed["auth"]["client_token"], app.as_str());
    let app_lease = issue(Bearer(&app));
    run(
        addr,
        &[
            row("PUT", "auth/token/renew-self").auth(Header(&tf_token)).expect(400, Error("renewable")),
            row("GET", "database/roles/ro").auth(Bearer(&app)).expect(403, Error("permission denied")),
            row("GET", "sys/mounts").auth(Header(&app)).expect(403, Error("permission denied")),
            row("PUT", "sys/leases/revoke")
                .auth(Header(&app))
                .json(json!({"lease_id": app_lease}))
                .expect(403, Error("")),
            row("POST", "auth/token/create").json(json!({"ttl": "soon"})).expect(400, Error("ttl")),
            row("POST", "auth/token/create")
                .json(json!({"policies": ["root"]}))
                .auth(Header(&app))
                .expect(403, Error("")),
            row("GET", "auth/token/create").expect(405, Error("unsupported operation")),
            row("GET", "auth/token/nope").expect(404, Error("")),
            row("LIST", "auth/token/accessors").expect(200, Envelope),
            row("GET", "auth/token/accessors?list=true").expect(200, Envelope),
            // metrics: a token without read is refused; root gets Prometheus text
            row("GET", "sys/metrics").auth(Auth::None).expect(403, Error("")),
            row("GET", "sys/metrics?format=prometheus").auth(Header(&app)).expect(403, Error("")),
            row("GET", "sys/metrics?format=prometheus").expect(
                200,
                Text(&["lessor_http_requests_total", "lessor_leases_live", "lessor_lease_operation_seconds_bucket"]),
            ),
            row("PUT", "sys/metrics").json(json!({})).expect(405, Error("GET")),
            row("PUT", "auth/token/revoke-self").auth(Header(&tf_token)).expect(204, Empty),
            row("GET", "auth/token/lookup-self").auth(Header(&tf_token)).expect(403, Error("")),
        ],
    );
    server.stop();
}
