//! Small helpers.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::{PgBin, RunAs, Switch};
use crate::{ENV_PG_BINDIR, ENV_PG_TMPDIR, INSTALL_HINT};

/// `/dev/shm` is used for the clusters only with at least this much room.
const SHM_MIN_FREE: u64 = 2 << 30;

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random number generator");
    buf.iter().fold(String::with_capacity(bytes * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `t_<hint>_<random>_<n>`: at most 63 bytes, lowercase, unique per process and run.
pub(crate) fn database_name(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut clean: String =
        hint.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(40).collect();
    if clean.is_empty() {
        clean.push_str("db");
    }
    format!("t_{clean}_{}_{n}", random_hex(4))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL userinfo).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

pub(crate) fn url_host(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

pub(crate) fn redact_url(url: &str) -> String {
    // postgresql://user:secret@host → postgresql://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn quote_conf(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Removes the PG* variables (PGHOST, PGPORT, PGDATA, PGSSLMODE, …) that would steer
/// the tools elsewhere, and fixes the locale.
pub(crate) fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command.env("LC_ALL", "C");
}

/// Runs a command with a timeout; its output is the error on failure.
pub(crate) fn run(command: &mut Command, what: &str, timeout: Duration) -> Result<String, String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{what}: waiting for it: {e}")),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{what} failed ({status}):\n{}{}", out.trim_end(), err.trim_end()))
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .map_err(|e| format!("cannot bind 127.0.0.1:0 to pick a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("local_addr: {e}"))
}

/// Alive and not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|s| s != "Z"),
        Err(_) => false,
    }
}

/// Whether a process is alive (not gone, not a zombie). For tests of teardown.
pub fn pid_alive(pid: u32) -> bool {
    process_alive(pid)
}

fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    for extra in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    dirs
}

pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    search_path().into_iter().map(|dir| dir.join(name)).find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The highest-version directory holding both `initdb` and `pg_ctl`: from
/// `LESSOR_TEST_PG_BINDIR` if set, else from `PATH` and `/usr/lib/postgresql/*/bin`.
pub(crate) fn find_binaries() -> Result<&'static PgBin, String> {
    static BIN: OnceLock<Result<PgBin, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os(ENV_PG_BINDIR).filter(|d| !d.is_empty()) {
            candidates.push(PathBuf::from(dir));
        } else {
            candidates.extend(search_path());
            if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
                candidates.extend(entries.flatten().map(|e| e.path().join("bin")));
            }
        }
        let mut best: Option<PgBin> = None;
        let mut seen = Vec::new();
        for dir in candidates {
            let (initdb, pg_ctl) = (dir.join("initdb"), dir.join("pg_ctl"));
            if !is_executable(&initdb) || !is_executable(&pg_ctl) {
                continue;
            }
            // Resolve symlinks (Debian's /usr/local/bin links) to the real directory.
            let Some(real_dir) = fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_path_buf)) else {
                continue;
            };
            if seen.contains(&real_dir) || !is_executable(&real_dir.join("pg_ctl")) {
                continue;
            }
            seen.push(real_dir.clone());
            let mut version_cmd = Command::new(real_dir.join("initdb"));
            version_cmd.arg("--version");
            clean_env(&mut version_cmd);
            let Ok(output) = run(&mut version_cmd, "initdb --version", Duration::from_secs(10)) else {
                continue;
            };
            // "initdb (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
            let version = output.split("(PostgreSQL)").nth(1).and_then(|v| v.split_whitespace().next()).unwrap_or("0");
            let mut parts = version.split('.').map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>());
            let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let bin = PgBin { dir: real_dir, version: version.to_owned(), sort_key: (major, minor) };
            if best.as_ref().is_none_or(|b| bin.sort_key > b.sort_key) {
                best = Some(bin);
            }
        }
        best.ok_or_else(|| {
            let mut message = String::from("PostgreSQL's initdb and pg_ctl were not found");
            if let Some(dir) = std::env::var_os(ENV_PG_BINDIR).filter(|d| !d.is_empty()) {
                let _ = write!(message, " in {ENV_PG_BINDIR}={}", PathBuf::from(dir).display());
            } else {
                message.push_str(" on PATH or in /usr/lib/postgresql/*/bin");
            }
            let _ = write!(message, ": {INSTALL_HINT}");
            message
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// Root must hand the server to an unprivileged user: `postgres` (Debian's package
/// creates it), else `nobody`.
pub(crate) fn run_as() -> Result<RunAs, String> {
    if effective_uid() != 0 {
        return Ok(RunAs::Current);
    }
    let switch = if let Some(runuser) = find_program("runuser") {
        Switch::Runuser(runuser)
    } else if let Some(su) = find_program("su") {
        Switch::Su(su)
    } else {
        return Err("running as root, PostgreSQL must run as another user, but neither runuser nor su was found".into());
    };
    for name in ["postgres", "nobody"] {
        let id = |flag: &str| -> Option<u32> {
            let mut command = Command::new(find_program("id")?);
            command.arg(flag).arg(name);
            run(&mut command, "id", Duration::from_secs(10)).ok()?.trim().parse().ok()
        };
        if let (Some(uid), Some(gid)) = (id("-u"), id("-g"))
            && uid != 0
        {
            return Ok(RunAs::User { name: name.to_owned(), uid, gid, switch });
        }
    }
    Err(format!(
        "running as root, PostgreSQL must run as an unprivileged user, but there is no `postgres` \
         (nor `nobody`) user: {INSTALL_HINT} (the package creates the user)"
    ))
}

/// A fresh directory with a short name (the socket path must stay under ~100 bytes) in
/// `$LESSOR_TEST_PG_TMPDIR`, else in `/dev/shm` when it has room (tmpfs: `CREATE
/// DATABASE` is ~5x faster than on a disk), else in the system temp dir.
pub(crate) fn make_root_dir() -> Result<PathBuf, String> {
    let base = match std::env::var_os(ENV_PG_TMPDIR).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None if free_bytes(Path::new("/dev/shm")).is_some_and(|free| free >= SHM_MIN_FREE) => PathBuf::from("/dev/shm"),
        None => {
            let tmp = std::env::temp_dir();
            if tmp.as_os_str().len() > 60 { PathBuf::from("/tmp") } else { tmp }
        }
    };
    let root = base.join(format!("lessor-pg-{}-{}", std::process::id(), random_hex(4)));
    fs::create_dir(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", root.display()))?;
    let sock = root.join("sock");
    fs::create_dir(&sock).map_err(|e| format!("create {}: {e}", sock.display()))?;
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", sock.display()))?;
    Ok(root)
}

/// Free bytes for an unprivileged user on the filesystem holding `path`.
#[allow(clippy::useless_conversion, reason = "the field types are u32 on some targets")]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable
    // memory for one `statvfs`, which the call fills in when it returns 0.
    if unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialized `stat`.
    let stat = unsafe { stat.assume_init() };
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}
