//! `lessor server` over TLS with a self-signed certificate made here by
//! `openssl`: Vault's clients verify it (bao with `BAO_CACERT`, hvac with
//! `verify=CA`), a client that does not trust it fails, and SIGHUP swaps in a
//! renewed certificate for new connections — or keeps the one in use when the
//! new files are bad.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::config::{Setup, spawn_watched};
use common::server::python_bin;

/// A self-signed certificate for 127.0.0.1 and localhost, and its key.
fn make_cert(cert: &Path, key: &Path) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=lessor-test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (scripts/setup requires it)");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
}

/// The SHA-256 fingerprint openssl prints for a PEM certificate.
fn fingerprint_pem(pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), pem).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl x509: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The fingerprint of the certificate a new connection to `addr` is served.
fn served_fingerprint(addr: std::net::SocketAddr) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-servername", "localhost"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run openssl s_client");
    fingerprint_pem(&out.stdout)
}

#[test]
fn tls_with_a_self_signed_certificate_the_clients_verify_and_sighup_reloads() {
    let setup = Setup::with_listener("");
    let (cert, key) = (setup.path("tls.crt"), setup.path("tls.key"));
    make_cert(&cert, &key);
    setup.write(&format!("tls_cert_file = \"{}\"\ntls_key_file = \"{}\"", cert.display(), key.display()));
    let (server, stderr) = setup.start_watched(&["-access-log=off"]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let first = fingerprint_pem(&std::fs::read(&cert).unwrap());
    assert_eq!(served_fingerprint(server.addr), first);

    // Initialized through TLS, verifying the certificate.
    let ca = cert.to_str().unwrap().to_string();
    let out = server.bao("").env("BAO_CACERT", &ca).args(["operator", "init", "-format=json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["root_token"].as_str().unwrap().to_string();
    let status = server.bao(&root).env("BAO_CACERT", &ca).args(["status", "-format=json"]).output().unwrap();
    assert!(status.status.success(), "bao status with BAO_CACERT: {}", String::from_utf8_lossy(&status.stderr));

    // bao without the CA: the certificate is not trusted.
    let untrusted = server.bao(&root).env_remove("BAO_CACERT").env_remove("BAO_SKIP_VERIFY").arg("status").output();
    let untrusted = untrusted.unwrap();
    assert!(!untrusted.status.success(), "bao trusted a self-signed certificate it was not given");
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(said.contains("certificate"), "{said}");

    // hvac verifying against the CA; and refusing without it.
    let script = r#"
import sys, hvac, requests
url, token, ca = sys.argv[1], sys.argv[2], sys.argv[3]
client = hvac.Client(url=url, token=token, verify=ca)
assert client.is_authenticated()
print(client.sys.read_health_status(method="GET")["initialized"])
try:
    hvac.Client(url=url, token=token, verify=True).sys.read_health_status(method="GET")
    print("untrusted accepted")
except requests.exceptions.SSLError:
    print("untrusted refused")
"#;
    let out = Command::new(python_bin()).args(["-c", script, &server.url, &root, &ca]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hvac: {said}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(said.lines().collect::<Vec<_>>(), ["True", "untrusted refused"], "{said}");

    // SIGHUP with a renewed certificate (a new key too): new connections get it.
    let (cert2, key2) = (setup.path("tls2.crt"), setup.path("tls2.key"));
    make_cert(&cert2, &key2);
    let second = fingerprint_pem(&std::fs::read(&cert2).unwrap());
    assert_ne!(first, second);
    std::fs::copy(&key2, &key).unwrap();
    std::fs::copy(&cert2, &cert).unwrap();
    hangup(&server);
    stderr.wait_for("SIGHUP: reloaded the TLS certificates");
    assert_eq!(served_fingerprint(server.addr), second);
    let status = server.bao(&root).env("BAO_CACERT", &ca).arg("status").output().unwrap();
    assert!(status.status.success(), "bao with the renewed CA: {}", String::from_utf8_lossy(&status.stderr));

    // Bad files: the reload is refused and the certificate in use is kept.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    hangup(&server);
    let line = stderr.wait_for("SIGHUP: kept the TLS certificates in use");
    assert!(line.contains("tls_cert_file"), "{line}");
    assert_eq!(served_fingerprint(server.addr), second);
    // A key that does not match the certificate: refused too.
    std::fs::copy(&cert2, &cert).unwrap();
    let other_key = setup.path("tls3.key");
    make_cert(&setup.path("tls3.crt"), &other_key);
    std::fs::copy(&other_key, &key).unwrap();
    hangup(&server);
    stderr.wait_for("SIGHUP: kept the TLS certificates in use");
    assert_eq!(served_fingerprint(server.addr), second);
    let status = server.bao(&root).env("BAO_CACERT", &cert2).arg("status").output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    server.stop();
}

fn hangup(server: &common::server::ServerProcess) {
    // SAFETY: kill(2) with the pid of a child this process started and has not reaped.
    let rc = unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

#[test]
fn a_plain_listener_without_tls_disable_is_refused_and_dev_mode_is_plain() {
    let setup = Setup::with_listener("");
    let out = setup.refused();
    assert!(out.contains("tls_disable"), "{out}");
    // -dev is plain HTTP on purpose, as Vault's.
    let mut command = Command::new(common::LESSOR);
    command.args(["server", "-dev", "-dev-listen-address=127.0.0.1:0", "-access-log=off"]);
    let (server, _stderr) = spawn_watched(command);
    assert!(server.url.starts_with("http://"), "{}", server.url);
    assert_eq!(common::http::once(server.addr, "GET", "/v1/sys/health", None, None).status, 200);
    server.stop();
}
