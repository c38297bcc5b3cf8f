//! The storage seam: every byte the log and snapshots touch goes through [`Storage`].
//!
//! [`FsStorage`] is the real directory (and holds its exclusive lock).
//! [`FaultInjectingStorage`] is a test double that tears a write at a chosen byte or
//! fails a `write`/`fsync` on a countdown, so crash and I/O-error paths are tested
//! without a real crash (redb's crash backend is the model).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The name of the lock file inside a data directory.
pub const LOCK_FILE: &str = "LOCK";

/// A directory of named files.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Names of the regular files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// The whole content of a file into `buf` (cleared first), reusing its memory:
    /// a scan reads segment after segment into one buffer.
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        *buf = self.read(name)?;
        Ok(())
    }
    /// A file open for reading from its start, for what is too big to hold whole.
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(name)?)))
    }
    /// Creates a file that must not exist yet, open for appending.
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Cuts a file to `len` bytes and makes the new length durable.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals in the directory durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// A file open for appending.
pub trait StorageFile: Send + fmt::Debug {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A real directory, locked exclusively for as long as this value lives.
#[derive(Debug)]
pub struct FsStorage {
    dir: PathBuf,
    canonical: PathBuf,
    // Held for its lock; released when dropped (also when the process dies).
    _lock: File,
}

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error("data directory {dir} is in use by process {holder}; stop that process or use another directory")]
    Held { dir: PathBuf, holder: String },
    #[error("cannot open data directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Directories this process holds, so a second open in the same process is told
/// so at once, and a lock briefly shared with a forked child (between its fork and
/// exec, the child holds a copy of every descriptor) is waited out, not reported.
static HELD_HERE: Mutex<std::collections::BTreeSet<PathBuf>> = Mutex::new(std::collections::BTreeSet::new());

/// How long a lock that names this very process (yet is not held by it) is retried.
const LOCK_FORK_WAIT_MS_MAX: u64 = 2_000;

impl FsStorage {
    /// Opens (creating if missing) `dir` and takes its exclusive lock.
    pub fn open(dir: &Path) -> Result<FsStorage, LockError> {
        let io_err = |source| LockError::Io { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let canonical = dir.canonicalize().map_err(io_err)?;
        let held_by_us =
            || LockError::Held { dir: dir.to_path_buf(), holder: format!("{} (this process)", std::process::id()) };
        if HELD_HERE.lock().expect("lock registry").contains(&canonical) {
            return Err(held_by_us());
        }
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io_err)?;
        let mut waited_ms = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = lock.read_to_string(&mut holder);
                    let ours = holder.split(' ').next() == Some(std::process::id().to_string().as_str());
                    if ours && waited_ms < LOCK_FORK_WAIT_MS_MAX {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        waited_ms += 5;
                        continue;
                    }
                    return Err(LockError::Held { dir: dir.to_path_buf(), holder: describe_holder(holder.trim()) });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        if !HELD_HERE.lock().expect("lock registry").insert(canonical.clone()) {
            return Err(held_by_us());
        }
        // Record who holds the lock so a second opener can name us.
        let record = (|| {
            lock.set_len(0)?;
            let exe =
                std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            writeln!(lock, "{} {}", std::process::id(), exe.unwrap_or_default())
        })();
        let storage = FsStorage { dir: dir.to_path_buf(), canonical, _lock: lock };
        record.map_err(io_err)?;
        Ok(storage)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        debug_assert!(!name.contains('/'), "storage names are flat");
        self.dir.join(name)
    }
}

impl Drop for FsStorage {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD_HERE.lock() {
            held.remove(&self.canonical);
        }
    }
}

fn describe_holder(content: &str) -> String {
    let mut parts = content.splitn(2, ' ');
    match (parts.next(), parts.next()) {
        (Some(pid), Some(exe)) if !pid.is_empty() && !exe.is_empty() => format!("{pid} ({exe})"),
        (Some(pid), _) if !pid.is_empty() => pid.to_string(),
        _ => "unknown (lock file empty)".to_string(),
    }
}

/// Read-only listing and reading of a directory without taking its lock: what the
/// forensic tools use, so an auditor can read a directory a server holds.
#[derive(Debug, Clone)]
pub struct ReadOnlyDir {
    dir: PathBuf,
}

impl ReadOnlyDir {
    pub fn new(dir: &Path) -> ReadOnlyDir {
        ReadOnlyDir { dir: dir.to_path_buf() }
    }
}

fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file()
            && let Ok(name) = entry.file_name().into_string()
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn read_only(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("{what} on a read-only view of the data directory"))
}

impl Storage for ReadOnlyDir {
    fn list(&self) -> io::Result<Vec<String>> {
        list_dir(&self.dir)
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(name))
    }
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        read_file_into(&self.dir.join(name), buf)
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.dir.join(name))?))
    }
    fn create_new(&self, _: &str) -> io::Result<Box<dyn StorageFile>> {
        Err(read_only("create"))
    }
    fn open_append(&self, _: &str) -> io::Result<Box<dyn StorageFile>> {
        Err(read_only("append"))
    }
    fn truncate(&self, _: &str, _: u64) -> io::Result<()> {
        Err(read_only("truncate"))
    }
    fn rename(&self, _: &str, _: &str) -> io::Result<()> {
        Err(read_only("rename"))
    }
    fn remove(&self, _: &str) -> io::Result<()> {
        Err(read_only("remove"))
    }
    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct FsFile(File);

impl StorageFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

fn read_file_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_end(buf)?;
    Ok(())
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        list_dir(&self.dir)
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(name))
    }
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        read_file_into(&self.path(name), buf)
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.path(name))?))
    }
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new().append(true).create_new(true).open(self.path(name))?;
        Ok(Box::new(FsFile(f)))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new().append(true).open(self.path(name))?;
        Ok(Box::new(FsFile(f)))
    }
    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(name))?;
        f.set_len(len)?;
        f.sync_all()
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// What [`FaultInjectingStorage`] will do to upcoming writes and syncs.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Fail the n-th `write_all` from now (1 = the next one).
    pub fail_write_in: Option<u64>,
    /// Keep this many bytes of the failing write on disk before reporting the error
    /// (a torn write). `None` writes nothing.
    pub tear_keep_bytes: Option<usize>,
    /// Fail the n-th `sync_data` / `sync_dir` from now.
    pub fail_sync_in: Option<u64>,
    /// Silently flip one bit of the n-th `write_all` from now: `(n, byte index in
    /// that write, bit)`. The write reports success (a lying disk).
    pub flip_bit_in: Option<(u64, usize, u8)>,
    /// Once a fault fired, every later write and sync fails too (a dead disk).
    pub sticky: bool,
    /// Set when a fault has fired.
    pub fired: bool,
}

/// **Test double**: wraps a real [`Storage`] and injects faults on command.
#[derive(Debug, Clone)]
pub struct FaultInjectingStorage {
    inner: Arc<dyn Storage>,
    faults: Arc<Mutex<Faults>>,
}

impl FaultInjectingStorage {
    pub fn new(inner: Arc<dyn Storage>) -> FaultInjectingStorage {
        FaultInjectingStorage { inner, faults: Arc::default() }
    }

    /// Arms faults; applies to files opened before and after this call.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().expect("fault lock") = faults;
    }

    pub fn fired(&self) -> bool {
        self.faults.lock().expect("fault lock").fired
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

/// Counts one operation against a countdown; true when this one must fail.
fn countdown(counter: &mut Option<u64>) -> bool {
    match counter {
        Some(1) => {
            *counter = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

impl Faults {
    /// The byte and bit to flip in this write, if this is the write to damage.
    fn flip_for_this_write(&mut self) -> Option<(usize, u8)> {
        let (n, byte, bit) = self.flip_bit_in?;
        if n <= 1 {
            self.flip_bit_in = None;
            self.fired = true;
            Some((byte, bit))
        } else {
            self.flip_bit_in = Some((n - 1, byte, bit));
            None
        }
    }

    fn on_write(&mut self) -> Option<Option<usize>> {
        if (self.sticky && self.fired) || countdown(&mut self.fail_write_in) {
            self.fired = true;
            return Some(self.tear_keep_bytes.take());
        }
        None
    }

    fn on_sync(&mut self) -> bool {
        if (self.sticky && self.fired) || countdown(&mut self.fail_sync_in) {
            self.fired = true;
            return true;
        }
        false
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn StorageFile>,
    faults: Arc<Mutex<Faults>>,
}

impl StorageFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let (action, flip) = {
            let mut faults = self.faults.lock().expect("fault lock");
            (faults.on_write(), faults.flip_for_this_write())
        };
        if let (None, Some((byte, bit))) = (&action, flip)
            && byte < buf.len()
        {
            let mut damaged = buf.to_vec();
            damaged[byte] ^= 1 << (bit % 8);
            return self.inner.write_all(&damaged);
        }
        match action {
            None => self.inner.write_all(buf),
            Some(keep) => {
                if let Some(keep) = keep {
                    self.inner.write_all(&buf[..keep.min(buf.len())])?;
                }
                Err(injected("write"))
            }
        }
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.faults.lock().expect("fault lock").on_sync() {
            return Err(injected("fsync"));
        }
        self.inner.sync_data()
    }
}

impl Storage for FaultInjectingStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        self.inner.read_into(name, buf)
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        self.inner.open_read(name)
    }
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FaultyFile { inner: self.inner.create_new(name)?, faults: self.faults.clone() }))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FaultyFile { inner: self.inner.open_append(name)?, faults: self.faults.clone() }))
    }
    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.inner.truncate(name, len)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn sync_dir(&self) -> io::Result<()> {
        if self.faults.lock().expect("fault lock").on_sync() {
            return Err(injected("directory fsync"));
        }
        self.inner.sync_dir()
    }
}

/// An in-memory directory: for fuzzing and deterministic simulation. Writes are
/// "durable" as soon as they return.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    files: Arc<Mutex<std::collections::BTreeMap<String, Vec<u8>>>>,
}

impl MemStorage {
    /// Replaces a file's content.
    pub fn put(&self, name: &str, bytes: Vec<u8>) {
        self.files.lock().expect("mem storage lock").insert(name.to_string(), bytes);
    }
}

#[derive(Debug)]
struct MemFile {
    name: String,
    files: Arc<Mutex<std::collections::BTreeMap<String, Vec<u8>>>>,
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl StorageFile for MemFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem storage lock");
        files.get_mut(&self.name).ok_or_else(|| not_found(&self.name))?.extend_from_slice(buf);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.files.lock().expect("mem storage lock").keys().cloned().collect())
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.files.lock().expect("mem storage lock").get(name).cloned().ok_or_else(|| not_found(name))
    }
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut files = self.files.lock().expect("mem storage lock");
        if files.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name} exists")));
        }
        files.insert(name.to_string(), Vec::new());
        Ok(Box::new(MemFile { name: name.to_string(), files: self.files.clone() }))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        if !self.files.lock().expect("mem storage lock").contains_key(name) {
            return Err(not_found(name));
        }
        Ok(Box::new(MemFile { name: name.to_string(), files: self.files.clone() }))
    }
    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem storage lock");
        files.get_mut(name).ok_or_else(|| not_found(name))?.truncate(len as usize);
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem storage lock");
        let bytes = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_string(), bytes);
        Ok(())
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.files.lock().expect("mem storage lock").remove(name).map(|_| ()).ok_or_else(|| not_found(name))
    }
    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}
