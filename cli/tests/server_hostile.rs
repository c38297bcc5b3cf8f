//! `lessor server -config=FILE` against hostile and careless clients, and
//! against a careless operator: what it refuses at start, how a directory is
//! initialized through the API, and what its limits answer (Vault's
//! `{"errors": [...]}` with 413 / 429 / 503, a slow head or an idle connection
//! closed). Outcomes are asserted, not timings: deadlines only keep a broken
//! server from hanging the test.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::config::{Setup, mode};
use common::http::{Conn, once};

/// `PUT sys/init` on a fresh directory; returns the root token.
fn init(server: &common::server::ServerProcess) -> String {
    let reply = once(server.addr, "PUT", "/v1/sys/init", None, Some(r#"{"secret_shares":1,"secret_threshold":1}"#));
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["root_token"].as_str().expect("root_token").to_string()
}

/// `{"errors": [...]}` with at least one message containing `needle`.
fn assert_errors(reply: &common::http::Reply, status: u16, needle: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    let body = reply.json();
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors array: {reply:?}"));
    assert!(errors.iter().any(|e| e.as_str().is_some_and(|e| e.contains(needle))), "{needle:?} not in {body}");
}

#[test]
fn refusals_at_start_name_what_is_wrong() {
    // No TLS and no tls_disable: refused, naming tls_disable (as Vault).
    let setup = Setup::with_listener("");
    let out = setup.refused();
    assert!(out.contains("tls_disable"), "{out}");

    // A bad value, an unknown setting, a limit that is not a number: each named.
    for (settings, name) in [
        ("tls_disable = true\nhttp_read_header_timeout = \"soon\"", "http_read_header_timeout"),
        ("tls_disable = true\nmax_request_size = \"big\"", "max_request_size"),
        ("tls_disable = true\nmax_connections_per_address = 0", "max_connections_per_address"),
        ("tls_disable = true\nproxy_protocol_behavior = \"use_always\"", "proxy_protocol_behavior"),
        ("tls_cert_file = \"/nonexistent/cert.pem\"\ntls_key_file = \"/nonexistent/key.pem\"", "tls_cert_file"),
    ] {
        setup.write(settings);
        let out = setup.refused();
        assert!(out.contains(name), "{settings}: {out}");
    }

    // A data directory that is a symbolic link, or writable by others: refused
    // at start (not at the first `sys/init`), as the engine refuses it.
    let setup = Setup::plain("");
    let real = setup.path("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &setup.data_dir).unwrap();
    let out = setup.refused();
    assert!(out.contains("symbolic link"), "{out}");
    std::fs::remove_file(&setup.data_dir).unwrap();
    std::fs::create_dir(&setup.data_dir).unwrap();
    std::fs::set_permissions(&setup.data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = setup.refused();
    assert!(out.contains("writable by group or others"), "{out}");
}

#[test]
fn an_uninitialized_directory_is_initialized_through_the_api_and_stays_so() {
    let setup = Setup::plain("");
    let server = setup.start();
    assert!(server.banner.contains("not initialized"), "{}", server.banner);
    assert!(setup.data_dir.is_dir() && mode(&setup.data_dir) == 0o700, "made private at start");

    // sys/health: 501 until initialized (GET and HEAD), as Vault.
    let health = once(server.addr, "GET", "/v1/sys/health", None, None);
    assert_eq!(health.status, 501, "{health:?}");
    assert_eq!(health.json()["initialized"], false);
    assert_eq!(once(server.addr, "HEAD", "/v1/sys/health", None, None).status, 501);
    // Anything else: not yet.
    assert_errors(&once(server.addr, "GET", "/v1/sys/mounts", Some("x"), None), 503, "not initialized");

    // `bao operator init`, as an operator would.
    let out = server.bao_output("", &["operator", "init", "-format=json"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bao operator init -format=json");
    let root = init["root_token"].as_str().expect("root_token").to_string();
    assert!(!root.is_empty());
    let status: serde_json::Value = serde_json::from_str(&server.bao_ok(&root, &["status", "-format=json"])).unwrap();
    assert_eq!(status["initialized"], true);
    assert_eq!(once(server.addr, "GET", "/v1/sys/health", None, None).status, 200);

    // The root token works; a second init is refused and changes nothing.
    let me = once(server.addr, "GET", "/v1/auth/token/lookup-self", Some(&root), None);
    assert_eq!(me.status, 200, "{me:?}");
    assert!(me.json()["data"]["policies"].to_string().contains("root"), "{me:?}");
    let again = once(server.addr, "PUT", "/v1/sys/init", None, Some(r#"{"secret_shares":1,"secret_threshold":1}"#));
    assert_errors(&again, 400, "already initialized");
    let out = server.bao_output("", &["operator", "init"]);
    assert!(!out.status.success(), "bao operator init twice succeeded");
    let policy = r#"{"policy": "path \"secret/*\" { capabilities = [\"read\"] }"}"#;
    let written = once(server.addr, "PUT", "/v1/sys/policies/acl/kept", Some(&root), Some(policy));
    assert!(written.status == 204 || written.status == 200, "{written:?}");
    server.stop();

    // Restarted on the same directory: initialized, the same root token, the policy.
    let server = setup.start();
    assert!(!server.banner.contains("not initialized"), "{}", server.banner);
    assert_eq!(once(server.addr, "GET", "/v1/sys/health", None, None).status, 200);
    let read = once(server.addr, "GET", "/v1/sys/policies/acl/kept", Some(&root), None);
    assert_eq!(read.status, 200, "{read:?}");
    assert!(read.json()["data"]["policy"].as_str().unwrap().contains("secret/*"), "{read:?}");
    assert_errors(&once(server.addr, "PUT", "/v1/sys/init", None, Some("{}")), 400, "already initialized");
    server.stop();
}

#[test]
fn a_slow_head_is_cut_off_while_other_clients_are_served() {
    let setup = Setup::plain("http_read_header_timeout = \"1s\"\nhttp_idle_timeout = \"1m\"");
    let server = setup.start();

    // A client that connects and says nothing is closed (the first head is due
    // within the header timeout of the connection's start).
    let mut silent = Conn::open(server.addr);
    let started = Instant::now();
    assert!(silent.closed_by_server(), "a silent connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(25), "closed only at the deadline");

    // Slowloris: a head sent a byte every 100 ms (3 s in all, 3× the timeout).
    let head = b"GET /v1/sys/health HTTP/1.1\r\nHost: lessor\r\nX-Slow: 1\r\n\r\n";
    let mut slow = Conn::open(server.addr);
    let mut normal = Conn::open(server.addr);
    let mut served = 0;
    let mut cut_at = None;
    for (i, byte) in head.iter().enumerate() {
        if slow.stream.write_all(&[*byte]).is_err() {
            cut_at = Some(i);
            break;
        }
        if i % 2 == 0 {
            // Meanwhile another client is served, on a keep-alive connection.
            assert_eq!(normal.send("GET", "/v1/sys/health", None, None).status, 501);
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served >= 2, "{served} served; the slow client was cut after {cut_at:?} bytes");
    // The server closed it before the head was whole: no reply, only the close.
    match slow.read_reply(false) {
        Ok(reply) => panic!("the slow client was answered (cut after {cut_at:?} bytes): {reply:?}"),
        Err(e) => {
            assert!(matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset), "{e}")
        }
    }
    // The normal client's connection is still good.
    assert_eq!(normal.send("GET", "/v1/sys/health", None, None).status, 501);
    server.stop();
}

#[test]
fn an_idle_keep_alive_connection_lives_past_the_header_timeout_then_is_closed() {
    // The idle clock is not the header clock: a keep-alive connection idle for
    // longer than the header timeout is still good; idle past the idle timeout
    // it is closed.
    let setup = Setup::plain("http_read_header_timeout = \"1s\"\nhttp_idle_timeout = \"6s\"");
    let server = setup.start();
    let mut conn = Conn::open(server.addr);
    assert_eq!(conn.send("GET", "/v1/sys/health", None, None).status, 501);
    std::thread::sleep(Duration::from_millis(2500));
    let again = conn.try_send("GET", "/v1/sys/health", None, None).expect("idle 2.5 s (> the 1 s header timeout)");
    assert_eq!(again.status, 501);
    let idle_from = Instant::now();
    assert!(conn.closed_by_server(), "an idle connection was not closed");
    assert!(idle_from.elapsed() < Duration::from_secs(25), "closed only at the deadline");
    server.stop();
}

#[test]
fn a_body_over_max_request_size_is_413_and_changes_nothing() {
    let setup = Setup::plain("max_request_size = 1024");
    let server = setup.start();
    let root = init(&server);
    let rules = format!("path \"secret/{}\" {{ capabilities = [\"read\"] }}", "x".repeat(2048));
    let body = serde_json::json!({ "policy": rules }).to_string();
    assert!(body.len() > 2048);
    let reply = once(server.addr, "PUT", "/v1/sys/policies/acl/big", Some(&root), Some(&body));
    assert_errors(&reply, 413, "1024");
    assert_eq!(once(server.addr, "GET", "/v1/sys/policies/acl/big", Some(&root), None).status, 404);
    // The same write, under the cap, goes through.
    let small = serde_json::json!({ "policy": "path \"secret/x\" { capabilities = [\"read\"] }" }).to_string();
    let reply = once(server.addr, "PUT", "/v1/sys/policies/acl/big", Some(&root), Some(&small));
    assert!(reply.status == 204 || reply.status == 200, "{reply:?}");
    assert_eq!(once(server.addr, "GET", "/v1/sys/policies/acl/big", Some(&root), None).status, 200);
    server.stop();
}

#[test]
fn connections_over_the_caps_get_429_and_503() {
    let setup = Setup::plain("max_connections_per_address = 2");
    let server = setup.start();
    let mut held: Vec<Conn> = (0..2).map(|_| Conn::open(server.addr)).collect();
    for conn in &mut held {
        assert_eq!(conn.send("GET", "/v1/sys/health", None, None).status, 501);
    }
    let mut third = Conn::open(server.addr);
    let reply = third.send("GET", "/v1/sys/health", None, None);
    assert_errors(&reply, 429, "too many open connections from this address");
    assert!(third.closed_by_server(), "the refused connection stays open");
    // One closed: a new one is served (once the server has seen the close).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = once(server.addr, "GET", "/v1/sys/health", None, None);
        if reply.status == 501 {
            break;
        }
        assert_eq!(reply.status, 429);
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();

    // The global cap: 503.
    setup.write("tls_disable = true\nmax_connections = 1");
    let server = setup.start();
    let mut first = Conn::open(server.addr);
    assert_eq!(first.send("GET", "/v1/sys/health", None, None).status, 501);
    assert_errors(&once(server.addr, "GET", "/v1/sys/health", None, None), 503, "too many open connections");
    drop(first);
    server.stop();
}

#[test]
fn a_request_over_the_in_flight_cap_gets_503() {
    let setup = Setup::plain("max_requests_in_flight = 1");
    let server = setup.start();
    let root = init(&server);
    // A request held in the server: its head sent with `Expect: 100-continue`,
    // its body not yet. The server's `100 Continue` says it is reading the body,
    // so the only in-flight permit is taken.
    let body = serde_json::json!({ "policy": "path \"secret/held\" { capabilities = [\"read\"] }" }).to_string();
    let mut holder = Conn::open(server.addr);
    let head = format!(
        "PUT /v1/sys/policies/acl/held HTTP/1.1\r\nHost: lessor\r\nX-Vault-Token: {root}\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    holder.stream.write_all(head.as_bytes()).unwrap();
    let continued = holder.read_reply(false).expect("100 Continue");
    assert_eq!(continued.status, 100, "{continued:?}");

    // Another client, another connection: refused at once, not queued.
    let reply = once(server.addr, "GET", "/v1/sys/health", None, None);
    assert_errors(&reply, 503, "requests in flight");
    let reply = once(server.addr, "GET", "/v1/sys/policies/acl/held", Some(&root), None);
    assert_errors(&reply, 503, "requests in flight");

    // The held request finishes; the next is served.
    holder.stream.write_all(body.as_bytes()).unwrap();
    let done = holder.read_reply(false).unwrap();
    assert!(done.status == 204 || done.status == 200, "{done:?}");
    assert_eq!(once(server.addr, "GET", "/v1/sys/policies/acl/held", Some(&root), None).status, 200);
    server.stop();
}

#[test]
fn a_request_longer_than_max_request_duration_gets_504() {
    let setup = Setup::plain("max_request_duration = \"1s\"");
    let server = setup.start();
    let root = init(&server);
    // A body promised and never sent keeps the request from finishing.
    let mut stalled = Conn::open(server.addr);
    let head = format!(
        "PUT /v1/sys/policies/acl/stalled HTTP/1.1\r\nHost: lessor\r\nX-Vault-Token: {root}\r\nContent-Type: \
         application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stalled.stream.write_all(head.as_bytes()).unwrap();
    let reply = stalled.read_reply(false).expect("a reply, not a hang");
    assert_errors(&reply, 504, "max_request_duration");
    drop(stalled);
    // Nothing was written; the server goes on serving.
    assert_eq!(once(server.addr, "GET", "/v1/sys/policies/acl/stalled", Some(&root), None).status, 404);
    server.stop();
}
