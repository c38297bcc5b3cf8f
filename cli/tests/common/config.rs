//! `lessor server -config=FILE` in a temporary directory: a config file, its
//! data directory, and a way to watch a server's stderr or see it refuse to start.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::LESSOR;
use super::server::ServerProcess;

/// A config file and the data directory it names, in a private temporary directory.
pub struct Setup {
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub data_dir: PathBuf,
}

impl Setup {
    /// Plain HTTP on a free port; `listener` adds settings to `listener "tcp"`.
    pub fn plain(listener: &str) -> Setup {
        Setup::with_listener(&format!("tls_disable = true\n{listener}"))
    }

    /// `listener "tcp"` with exactly `settings` (and a free port).
    pub fn with_listener(settings: &str) -> Setup {
        let tmp = tempfile::Builder::new().prefix("lessor-server-test-").tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let setup = Setup { config: tmp.path().join("server.hcl"), data_dir, tmp };
        setup.write(settings);
        setup
    }

    /// Rewrites the config file with `settings` in its listener.
    pub fn write(&self, settings: &str) {
        let text = format!(
            "storage \"file\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n{settings}\n}}\n",
            self.data_dir.display()
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `lessor server -config=…` with the access log off.
    pub fn start(&self) -> ServerProcess {
        ServerProcess::with_config(&self.config, &["-access-log=off"])
    }

    /// The same, its stderr read line by line into the returned channel.
    pub fn start_watched(&self, extra: &[&str]) -> (ServerProcess, Stderr) {
        let mut command = Command::new(LESSOR);
        command.arg("server").arg(format!("-config={}", self.config.display())).args(extra).stderr(Stdio::piped());
        spawn_watched(command)
    }

    /// Runs `lessor server -config=…`, which must exit non-zero at start;
    /// returns what it printed.
    pub fn refused(&self) -> String {
        let mut command = Command::new(LESSOR);
        command.arg("server").arg(format!("-config={}", self.config.display())).arg("-access-log=off");
        refused(command)
    }
}

/// A server's stderr, line by line.
pub struct Stderr(pub mpsc::Receiver<String>);

impl Stderr {
    /// Waits (up to 30 s) for a line containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with {needle:?} within 30 s: {e}"),
            }
        }
    }

    /// Everything printed so far (and until the pipe closes, if `to_end`).
    pub fn drain(&self, to_end: bool) -> String {
        let mut text = String::new();
        loop {
            let next = if to_end { self.0.recv_timeout(Duration::from_secs(30)).ok() } else { self.0.try_recv().ok() };
            match next {
                Some(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                None => return text,
            }
        }
    }
}

pub fn spawn_watched(mut command: Command) -> (ServerProcess, Stderr) {
    command.stderr(Stdio::piped());
    let mut server = ServerProcess::spawn(command);
    let stderr = server.child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (server, Stderr(rx))
}

/// Runs `command` (a `lessor server` that must refuse to start) with a deadline;
/// returns its stdout and stderr.
pub fn refused(mut command: Command) -> String {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start lessor server");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            kill(&mut child);
            panic!("lessor server did not refuse to start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect the output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "lessor server started where it should refuse: {text}");
    assert!(!text.contains("listening on"), "it listened: {text}");
    text
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Mode bits of a path (not following a link).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}
