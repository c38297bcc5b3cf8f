//! The two servers under test as child processes: `lessor server -config` on a
//! file data directory and `bao server` on raft storage, each initialized through
//! `PUT sys/init` (OpenBao also unsealed) by the bench itself, both durable, both
//! plain HTTP on 127.0.0.1; and the CPU each process has used.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::args::Side;
use super::client::Conn;

/// A server process, initialized, unsealed and ready.
#[derive(Debug)]
pub struct ServerProcess {
    pub side: Side,
    pub addr: SocketAddr,
    pub root_token: String,
    pub version: String,
    /// Where its data, configuration and logs are.
    pub dir: PathBuf,
    child: Child,
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU of the whole process so far (all its threads, live or
    /// exited), from /proc/<pid>/stat.
    pub fn cpu(&self) -> Result<Duration, String> {
        process_cpu_of(self.pid())
    }

    /// A new connection to it.
    pub fn connect(&self) -> Result<Conn, String> {
        Conn::connect(self.addr).map_err(|e| format!("{}: cannot connect to {}: {e}", self.side.name(), self.addr))
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for it.
    pub fn stop(mut self, grace: Duration) {
        terminate(&mut self.child, grace);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already reaped by `stop`, or stopped here (an error path).
        if let Ok(None) = self.child.try_wait() {
            terminate(&mut self.child, Duration::from_secs(10));
        }
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) with the pid of a child this process started and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// CPU of process `pid` (utime + stime, in clock ticks, of every thread the
/// kernel accounts to it).
pub fn process_cpu_of(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("/proc/<pid>/stat without a command")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).ok_or("/proc/<pid>/stat: short");
    let total = ticks(14)? + ticks(15)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(total * 1_000_000_000 / hz))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn version_of(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, String> {
    let path = dir.join(name);
    std::fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// `lessor server -config=FILE` on a fresh data directory in `dir`, its access
/// log in `dir/access.log` (or off), initialized through `PUT sys/init`.
pub fn start_lessor(bin: &Path, dir: &Path, access_log: bool) -> Result<ServerProcess, String> {
    let data = dir.join("data");
    let config = dir.join("lessor.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"file\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  tls_disable = \
             true\n}}\n",
            data.display()
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let access = if access_log { dir.join("access.log").display().to_string() } else { "off".into() };
    let mut child = Command::new(bin)
        .arg("server")
        .arg(format!("-config={}", config.display()))
        .arg(format!("-access-log={access}"))
        .env_remove("LESSOR_MASTER_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(dir, "server.log")?)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    // The port is the one line we need; the rest of stdout goes nowhere.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(url) = line.trim().strip_prefix("lessor server listening on http://") {
                let _ = tx.send(url.to_string());
                sent = true;
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => addr.parse::<SocketAddr>().map_err(|e| format!("lessor server printed {addr:?}: {e}"))?,
        Err(_) => {
            terminate(&mut child, Duration::from_secs(5));
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("lessor server did not start listening: {}", log.trim()));
        }
    };
    let version = version_of(bin, &["--version"]);
    let mut server =
        ServerProcess { side: Side::Lessor, addr, root_token: String::new(), version, dir: dir.to_path_buf(), child };
    let mut conn = server.connect()?;
    let init = call_json(&mut conn, "PUT", "sys/init", None, &json!({ "secret_shares": 1, "secret_threshold": 1 }))?;
    server.root_token = init["root_token"].as_str().ok_or("lessor: sys/init returned no root_token")?.to_string();
    wait_active(&mut conn, Side::Lessor)?;
    Ok(server)
}

/// `bao server -config=FILE` with raft storage in `dir/raft`, initialized with
/// one key share and unsealed.
pub fn start_bao(bin: &Path, dir: &Path) -> Result<ServerProcess, String> {
    let raft = dir.join("raft");
    std::fs::create_dir_all(&raft).map_err(|e| format!("cannot create {}: {e}", raft.display()))?;
    let (port, cluster_port) = (free_port()?, free_port()?);
    let config = dir.join("bao.hcl");
    std::fs::write(
        &config,
        format!(
            "ui = false\nlog_level = \"warn\"\napi_addr = \"http://127.0.0.1:{port}\"\n\
             cluster_addr = \"http://127.0.0.1:{cluster_port}\"\n\
             storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"bench\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  \
             tls_disable = true\n}}\n",
            raft.display()
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log = log_file(dir, "server.log")?;
    let child = Command::new(bin)
        .arg("server")
        .arg(format!("-config={}", config.display()))
        .env("HOME", dir)
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| format!("server.log: {e}"))?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let version = version_of(bin, &["version"]);
    let mut server =
        ServerProcess { side: Side::Bao, addr, root_token: String::new(), version, dir: dir.to_path_buf(), child };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("bao server exited ({status}) before listening: {}", log.trim()));
        }
        match Conn::connect(addr) {
            Ok(conn) => break conn,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("bao server is not listening on {addr}: {e}")),
        }
    };
    let init = call_json(&mut conn, "PUT", "sys/init", None, &json!({ "secret_shares": 1, "secret_threshold": 1 }))?;
    server.root_token = init["root_token"].as_str().ok_or("bao: sys/init returned no root_token")?.to_string();
    let key = init["keys_base64"][0].as_str().ok_or("bao: sys/init returned no key")?.to_string();
    let unsealed = call_json(&mut conn, "PUT", "sys/unseal", None, &json!({ "key": key }))?;
    if unsealed["sealed"] != json!(false) {
        return Err(format!("bao: still sealed after sys/unseal: {unsealed}"));
    }
    wait_active(&mut conn, Side::Bao)?;
    Ok(server)
}

/// Waits until `sys/health` answers 200 (initialized, unsealed, active: raft has
/// elected this node).
fn wait_active(conn: &mut Conn, side: Side) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply =
            conn.call("GET", "/v1/sys/health", None, None).map_err(|e| format!("{}: sys/health: {e}", side.name()))?;
        if reply.status == 200 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{}: sys/health still {} after 60 s: {}", side.name(), reply.status, reply.text()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `method /v1/path` with a JSON body; the reply's JSON, or an error naming the
/// path for any status but 200/204.
pub fn call_json(
    conn: &mut Conn,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let body = serde_json::to_vec(body).expect("JSON encodes");
    let reply =
        conn.call(method, &format!("/v1/{path}"), token, Some(&body)).map_err(|e| format!("{method} {path}: {e}"))?;
    if !matches!(reply.status, 200 | 204) {
        return Err(format!("{method} {path}: status {}: {}", reply.status, reply.text()));
    }
    reply.json()
}
