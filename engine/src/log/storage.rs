//! The storage seam: every byte the log and snapshots touch goes through [`Storage`].
//!
//! [`FsStorage`] is the real directory (and holds its exclusive lock),
//! [`ReadOnlyDir`] one read without it, [`MemStorage`] one in memory.
//! `FaultInjectingStorage` (feature `testing`, in `log/faults.rs`) is a test
//! double that tears a write at a chosen byte or fails a `write`/`fsync` on a
//! countdown, so crash and I/O-error paths are tested without a real crash
//! (redb's crash backend is the model).
//!
//! **Writes go to offsets.** A segment is allocated at its full size ahead of
//! time ([`StorageFile::allocate`]) and the writer writes each batch where the
//! last one ended ([`StorageFile::write_all_at`], `pwrite`): the file never
//! grows under an append, so an `fdatasync` has no file size to write
//! (`docs/DESIGN.md`, §6.7). Files are therefore never opened `O_APPEND`.
//!
//! **A data directory is private to the user running lessor.** [`FsStorage::open`]
//! refuses a directory that is a symbolic link, is writable by group or others, or
//! belongs to another user, and one holding a symbolic link or a special file:
//! whoever can change the directory could otherwise make lessor (often run as root)
//! overwrite any file through a planted link. Every file in it is opened with
//! `O_NOFOLLOW` and checked to be a regular file on the opened descriptor; lessor
//! creates the directory 0700 and every file 0600, whatever the umask.

use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[cfg(any(test, feature = "testing"))]
pub use super::faults::{FaultInjectingStorage, Faults};

/// The name of the lock file inside a data directory.
pub const LOCK_FILE: &str = "LOCK";
/// The mode of every file lessor creates in a data directory, whatever the umask.
pub(crate) const FILE_MODE: u32 = 0o600;
/// The mode of a data directory lessor creates, whatever the umask.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The mode of missing parents created on the way to a new data directory: the
/// umask may narrow it, never widen it, so no one else may rename the data
/// directory away and put another in its place.
const PARENT_DIR_MODE: u32 = 0o755;

/// A directory of named files.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Names of the regular files in the directory. Subdirectories are skipped; a
    /// symbolic link or a special file is an error ([`NotRegularFile`]).
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// A file open for reading from its start, for what is too big to hold whole:
    /// segments (the log's reader streams them through a bounded window) and
    /// snapshot bodies.
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(name)?)))
    }
    /// Creates a file that must not exist yet, open for writing.
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for writing at offsets.
    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Cuts a file to `len` bytes and makes the new length durable.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Renames `from` to `to`, which must not exist yet (`AlreadyExists` if it
    /// does; never replaced): how a segment prepared ahead of time under a
    /// temporary name takes its real one, with `create_new`'s guarantee.
    fn rename_new(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals in the directory durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Why this storage takes no more writes for good, if it does not: the log
    /// in PostgreSQL once its stream was lost (fenced, its lease lapsed, or its
    /// connection gone). A host then closes the engine and opens it again. A
    /// directory is never so.
    fn unavailable(&self) -> Option<String> {
        None
    }
}

/// A file open for writing at offsets.
pub trait StorageFile: Send + fmt::Debug {
    /// Writes all of `buf` at byte `offset` (`pwrite`), growing the file only
    /// where `buf` reaches past its end.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Allocates bytes `range` of the file ahead of writes, growing it to
    /// `range.end` if it is shorter, never shrinking it. The range must hold
    /// nothing yet (zeros, or past the end): it reads as zeros afterwards.
    /// Preallocation is an optimization, so callers may go on without it.
    fn allocate(&mut self, range: Range<u64>, how: Allocation) -> io::Result<()>;
}

/// How [`StorageFile::allocate`] allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Allocation {
    /// Blocks reserved (`fallocate`), cheap to make: a full disk is met now,
    /// not in the middle of a segment, and the file size is set. The first
    /// write into each reserved block still changes the file's metadata (the
    /// file system marks the block written), which an `fdatasync` then writes.
    Reserved,
    /// Reserved, and zeros written over the range and made durable
    /// (`fdatasync`): later writes there change data only, so an `fdatasync`
    /// after them writes the data blocks alone. Costs writing the range: done
    /// off the writer thread, for the next segment.
    Zeroed,
}

/// What [`Allocation::Zeroed`] writes, a slice at a time.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// A real directory, locked exclusively for as long as this value lives.
#[derive(Debug)]
pub struct FsStorage {
    dir: PathBuf,
    canonical: PathBuf,
    /// The directory itself, opened without following a link: what `sync_dir` syncs.
    dir_handle: File,
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
    #[error(
        "data directory {dir} is a symbolic link (to {target}); lessor does not follow a link to its data \
         directory: give the directory itself"
    )]
    DirIsSymlink { dir: PathBuf, target: PathBuf },
    #[error("data directory {dir} is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error(
        "data directory {dir} is writable by group or others (mode {mode:o}), who could replace its files; \
         run `chmod 700 {dir}`"
    )]
    DirWritableByOthers { dir: PathBuf, mode: u32 },
    #[error(
        "{path} belongs to uid {owner}, not to uid {uid} that this process runs as, so that user controls \
         this data directory; run `chown -R {uid} {dir}`, or run lessor as uid {owner}"
    )]
    OwnedByOther { dir: PathBuf, path: PathBuf, owner: u32, uid: u32 },
    #[error(
        "{path} has {links} hard links, so writing it would change another file too; remove it (lessor makes a new one)"
    )]
    HardLinked { path: PathBuf, links: u64 },
    #[error(transparent)]
    NotRegularFile(#[from] NotRegularFile),
}

/// A name in a data directory that is not a regular file: a symbolic link, a FIFO,
/// a socket, a device. lessor never follows a link there nor opens anything else,
/// so no link can make it read or write a file outside the directory. Storage
/// operations report it inside their `io::Error` (`get_ref()` downcasts to it).
#[derive(Debug)]
#[non_exhaustive]
pub struct NotRegularFile {
    pub path: PathBuf,
    /// What it is instead, e.g. "a symbolic link".
    pub found: &'static str,
}

impl fmt::Display for NotRegularFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}, not a regular file: lessor opens only regular files in a data directory and never \
             follows links there; put the file itself in its place, or remove it",
            self.path.display(),
            self.found
        )?;
        if self.path.file_name().is_some_and(|n| n == crate::auth::keys::KEY_FILE_NAME) {
            f.write_str(" (a master key kept elsewhere is named with the key_file option, `--master-key-file`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for NotRegularFile {}

/// Directories this process holds, so a second open in the same process is told
/// so at once, and a lock briefly shared with a forked child (between its fork and
/// exec, the child holds a copy of every descriptor) is waited out, not reported.
static HELD_HERE: Mutex<std::collections::BTreeSet<PathBuf>> = Mutex::new(std::collections::BTreeSet::new());

/// How long a lock that names this very process (yet is not held by it) is retried.
const LOCK_FORK_WAIT_MS_MAX: u64 = 2_000;

/// The most of `LOCK` read to name its holder.
const LOCK_HOLDER_BYTES_MAX: usize = 256;

impl FsStorage {
    /// Opens (creating if missing, mode 0700) `dir` and takes its exclusive lock.
    ///
    /// Refuses a directory that is a symbolic link, is writable by group or others,
    /// or belongs to another user than the one this process runs as; a `LOCK` that
    /// is a link, not a regular file, another user's or hard-linked elsewhere; and
    /// a directory holding any symbolic link or special file.
    pub fn open(dir: &Path) -> Result<FsStorage, LockError> {
        // Without a trailing `/`: `link/` would resolve the link even with O_NOFOLLOW.
        let dir: PathBuf = dir.components().collect();
        let dir = dir.as_path();
        let io_err = |source| LockError::Io { dir: dir.to_path_buf(), source };
        let uid = process_uid().map_err(io_err)?;
        let dir_handle = open_data_dir(dir, uid)?;
        let canonical = dir.canonicalize().map_err(io_err)?;
        let held_by_us =
            || LockError::Held { dir: dir.to_path_buf(), holder: format!("{} (this process)", std::process::id()) };
        if HELD_HERE.lock().expect("lock registry").contains(&canonical) {
            return Err(held_by_us());
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = open_regular(
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(FILE_MODE),
            &lock_path,
        )
        .map_err(|e| refusal(dir, e))?;
        // Checked on the open descriptor, before the lock is taken or a byte written.
        let meta = lock.metadata().map_err(io_err)?;
        if meta.uid() != uid {
            return Err(LockError::OwnedByOther { dir: dir.to_path_buf(), path: lock_path, owner: meta.uid(), uid });
        }
        if meta.nlink() > 1 {
            return Err(LockError::HardLinked { path: lock_path, links: meta.nlink() });
        }
        let mut waited_ms = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = read_holder(&lock);
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
        // Record who holds the lock so a second opener can name us: through the
        // descriptor, only now that the lock is held (never by path).
        let record = (|| {
            lock.set_permissions(Permissions::from_mode(FILE_MODE))?; // older versions left it 0644
            let exe =
                std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            let line = format!("{} {}\n", std::process::id(), exe.unwrap_or_default());
            lock.set_len(0)?;
            lock.write_all_at(line.as_bytes(), 0)
        })();
        let storage = FsStorage { dir: dir.to_path_buf(), canonical, dir_handle, _lock: lock };
        record.map_err(io_err)?;
        // Nothing in the directory may be a link or a special file.
        list_dir(dir).map_err(|e| refusal(dir, e))?;
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

/// The uid this process creates and opens files as.
///
/// std has no `geteuid`, and libc's is `unsafe`, which this crate forbids. So: the
/// kernel makes a new pipe's inode owned by the calling process's file-system uid
/// (Linux: `current_fsuid()`, the effective uid unless `setfsuid` changed it; macOS
/// and the BSDs: the effective uid) — the very identity files are created and
/// permission-checked as — and `fstat` on it needs neither /proc nor a writable
/// directory. A unit test checks it against the owner of a file just created.
fn process_uid() -> io::Result<u32> {
    let (reader, _writer) = io::pipe()?;
    Ok(File::from(std::os::fd::OwnedFd::from(reader)).metadata()?.uid())
}

/// Opens the data directory (without following a link), creating it if missing —
/// 0700 and any missing parent 0755, whatever the umask — and refuses one that
/// someone else could change.
fn open_data_dir(dir: &Path, uid: u32) -> Result<File, LockError> {
    let io_err = |source| LockError::Io { dir: dir.to_path_buf(), source };
    let symlinked =
        || LockError::DirIsSymlink { dir: dir.to_path_buf(), target: std::fs::read_link(dir).unwrap_or_default() };
    let mut created = false;
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(symlinked()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::DirBuilder::new().recursive(true).mode(PARENT_DIR_MODE).create(parent).map_err(io_err)?;
            }
            match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
                Ok(()) => created = true,
                // Made meanwhile by someone else: checked below like any existing one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(e) => return Err(io_err(e)),
    }
    let handle =
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY).open(dir).map_err(|e| {
            match std::fs::symlink_metadata(dir) {
                Ok(meta) if meta.file_type().is_symlink() => symlinked(),
                Ok(meta) if !meta.is_dir() => LockError::NotADirectory { dir: dir.to_path_buf() },
                _ => io_err(e),
            }
        })?;
    if created {
        // mkdir's mode was masked by the umask: set it exactly, on what was opened.
        handle.set_permissions(Permissions::from_mode(DIR_MODE)).map_err(io_err)?;
    }
    let meta = handle.metadata().map_err(io_err)?;
    if meta.uid() != uid {
        return Err(LockError::OwnedByOther {
            dir: dir.to_path_buf(),
            path: dir.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(LockError::DirWritableByOthers { dir: dir.to_path_buf(), mode });
    }
    Ok(handle)
}

/// An `io::Error` carrying [`NotRegularFile`] as the [`LockError`] variant, any
/// other as `Io`.
fn refusal(dir: &Path, e: io::Error) -> LockError {
    if e.get_ref().is_some_and(|inner| inner.is::<NotRegularFile>()) {
        let inner = e.into_inner().expect("checked above").downcast::<NotRegularFile>().expect("checked above");
        return LockError::NotRegularFile(*inner);
    }
    LockError::Io { dir: dir.to_path_buf(), source: e }
}

/// The holder `LOCK` names, read from its start whatever the descriptor's offset.
fn read_holder(lock: &File) -> String {
    let mut buf = [0u8; LOCK_HOLDER_BYTES_MAX];
    let n = lock.read_at(&mut buf, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines().next().unwrap_or_default().to_string()
}

fn describe_holder(content: &str) -> String {
    let mut parts = content.splitn(2, ' ');
    match (parts.next(), parts.next()) {
        (Some(pid), Some(exe)) if !pid.is_empty() && !exe.is_empty() => format!("{pid} ({exe})"),
        (Some(pid), _) if !pid.is_empty() => pid.to_string(),
        _ => "unknown (lock file empty)".to_string(),
    }
}

fn found(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else {
        "a special file"
    }
}

fn not_regular(path: &Path, file_type: std::fs::FileType) -> io::Error {
    io::Error::other(NotRegularFile { path: path.to_path_buf(), found: found(file_type) })
}

/// Opens an existing file never through a symbolic link (`O_NOFOLLOW`) nor blocking
/// on a FIFO (`O_NONBLOCK`, which changes nothing for a regular file), and checks on
/// the opened descriptor that it is a regular file ([`NotRegularFile`] if not).
fn open_regular(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = match options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        // ELOOP (Linux, macOS) or EMLINK (FreeBSD) for a link, ENXIO for a FIFO
        // opened to write: say what is there instead.
        Err(e) => {
            return Err(match std::fs::symlink_metadata(path) {
                Ok(meta) if !meta.file_type().is_file() => not_regular(path, meta.file_type()),
                _ => e,
            });
        }
    };
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(not_regular(path, file_type));
    }
    Ok(file)
}

/// `open_regular` for reading: how the auditor's reader opens segments too.
pub(crate) fn open_regular_file(path: &Path) -> io::Result<File> {
    open_regular(OpenOptions::new().read(true), path)
}

/// Creates a file that must not exist (`O_EXCL`: not even as a link), mode 0600
/// whatever the umask, open for writing at offsets (not `O_APPEND`, under which
/// Linux's `pwrite` ignores the offset).
fn create_private(path: &Path) -> io::Result<File> {
    let file =
        OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW).open(path)?;
    // The mode open was given was masked by the umask: set it exactly.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Read-only listing and reading of a directory without taking its lock: what the
/// forensic tools use, so an auditor can read a directory a server holds. It
/// follows no link and opens only regular files, like [`FsStorage`].
#[derive(Debug, Clone)]
pub struct ReadOnlyDir {
    dir: PathBuf,
}

impl ReadOnlyDir {
    pub fn new(dir: &Path) -> ReadOnlyDir {
        ReadOnlyDir { dir: dir.to_path_buf() }
    }
}

/// The regular files of `dir`, sorted; subdirectories are skipped, and a symbolic
/// link or special file is an error: a link is never followed, nor silently
/// ignored (a segment replaced by a link must not just drop out of the log).
fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?; // the entry itself (lstat), not a link's target
        if file_type.is_file() {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        } else if !file_type.is_dir() {
            return Err(not_regular(&entry.path(), file_type));
        }
    }
    names.sort();
    Ok(names)
}

fn read_only(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("{what} on a read-only view of the data directory"))
}

fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    open_regular_file(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

impl Storage for ReadOnlyDir {
    fn list(&self) -> io::Result<Vec<String>> {
        list_dir(&self.dir)
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        read_whole(&self.dir.join(name))
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(open_regular_file(&self.dir.join(name))?))
    }
    fn create_new(&self, _: &str) -> io::Result<Box<dyn StorageFile>> {
        Err(read_only("create"))
    }
    fn open_write(&self, _: &str) -> io::Result<Box<dyn StorageFile>> {
        Err(read_only("write"))
    }
    fn truncate(&self, _: &str, _: u64) -> io::Result<()> {
        Err(read_only("truncate"))
    }
    fn rename(&self, _: &str, _: &str) -> io::Result<()> {
        Err(read_only("rename"))
    }
    fn rename_new(&self, _: &str, _: &str) -> io::Result<()> {
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
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn allocate(&mut self, range: Range<u64>, how: Allocation) -> io::Result<()> {
        assert!(range.start <= range.end, "allocating a backwards range");
        if range.is_empty() {
            return Ok(());
        }
        let len = self.0.metadata()?.len();
        let reserved = if range.end > len { reserve(&self.0, range.clone()) } else { Ok(()) };
        match how {
            Allocation::Reserved => reserved,
            Allocation::Zeroed => {
                // Zeros are written whether or not the file system could
                // reserve the range (some cannot): they allocate it as well.
                let mut at = range.start;
                while at < range.end {
                    let n = (range.end - at).min(ZEROS.len() as u64) as usize;
                    self.0.write_all_at(&ZEROS[..n], at)?;
                    at += n as u64;
                }
                self.0.sync_data()
            }
        }
    }
}

/// `fallocate` over `range` (blocks reserved, the size grown to its end),
/// where the platform has it.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_vendor = "apple"))]
fn reserve(file: &File, range: Range<u64>) -> io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), range.start, range.end - range.start)
        .map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_vendor = "apple")))]
fn reserve(_: &File, _: Range<u64>) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "no fallocate on this platform"))
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        list_dir(&self.dir)
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        read_whole(&self.path(name))
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(open_regular_file(&self.path(name))?))
    }
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FsFile(create_private(&self.path(name))?)))
    }
    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FsFile(open_regular(OpenOptions::new().write(true), &self.path(name))?)))
    }
    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let f = open_regular(OpenOptions::new().write(true), &self.path(name))?;
        f.set_len(len)?;
        f.sync_all()
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        // rename(2) acts on the names themselves, never on what a link points to.
        std::fs::rename(self.path(from), self.path(to))
    }
    fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        debug_assert!(!from.contains('/') && !to.contains('/'), "storage names are flat");
        // Relative to the directory this storage holds open, so the names are
        // resolved in that very directory.
        #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
        {
            use rustix::fs::{RenameFlags, renameat_with};
            match renameat_with(&self.dir_handle, from, &self.dir_handle, to, RenameFlags::NOREPLACE) {
                // A file system without RENAME_NOREPLACE: the link below.
                Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
                other => return other.map_err(io::Error::from),
            }
        }
        // link(2) fails on an existing name and, like rename(2), takes the names
        // themselves (std's hard_link is linkat without AT_SYMLINK_FOLLOW). Once
        // linked, `to` exists: a `from` left behind is only a second name.
        std::fs::hard_link(self.path(from), self.path(to))?;
        let _ = std::fs::remove_file(self.path(from));
        Ok(())
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        // As does unlink(2).
        std::fs::remove_file(self.path(name))
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.dir_handle.sync_all()
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
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem storage lock");
        let bytes = files.get_mut(&self.name).ok_or_else(|| not_found(&self.name))?;
        let (start, end) = (offset as usize, offset as usize + buf.len());
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(buf);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn allocate(&mut self, range: Range<u64>, _: Allocation) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem storage lock");
        let bytes = files.get_mut(&self.name).ok_or_else(|| not_found(&self.name))?;
        if (bytes.len() as u64) < range.end {
            bytes.resize(range.end as usize, 0);
        }
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
    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
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
    fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem storage lock");
        if files.contains_key(to) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{to} exists")));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_uid_is_the_owner_of_a_file_it_creates() {
        let dir = tempfile::tempdir().unwrap();
        let created = create_private(&dir.path().join("f")).unwrap();
        assert_eq!(process_uid().unwrap(), created.metadata().unwrap().uid());
    }

    #[test]
    fn files_are_created_0600_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        create_private(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, FILE_MODE);
        let target = dir.path().join("target");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(create_private(&link).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!target.exists(), "created through a dangling link");
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(open_regular_file(&file).is_ok());
        for (path, found) in [(&link, "a symbolic link"), (&sub, "a directory")] {
            let err = open_regular_file(path).unwrap_err();
            let not_regular = err.get_ref().and_then(|e| e.downcast_ref::<NotRegularFile>()).expect("NotRegularFile");
            assert_eq!((not_regular.path.as_path(), not_regular.found), (path.as_path(), found));
            for options in [OpenOptions::new().append(true), OpenOptions::new().write(true)] {
                let err = open_regular(options, path).unwrap_err();
                assert!(err.get_ref().is_some_and(|e| e.is::<NotRegularFile>()), "{err}");
            }
        }
    }

    /// Writes land at their offset (no `O_APPEND`), allocation grows a file
    /// with zeros and never shrinks it, and `rename_new` never replaces.
    #[test]
    fn writes_go_to_offsets_allocation_reads_as_zeros_and_rename_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::open(dir.path()).unwrap();
        let mut file = storage.create_new("a").unwrap();
        file.write_all_at(b"tail", 8).unwrap();
        file.write_all_at(b"head", 0).unwrap();
        assert_eq!(storage.read("a").unwrap(), b"head\0\0\0\0tail");
        for how in [Allocation::Reserved, Allocation::Zeroed] {
            let mut file = storage.open_write("a").unwrap();
            let len = storage.read("a").unwrap().len() as u64;
            file.allocate(len..len + 10_000, how).unwrap();
            let bytes = storage.read("a").unwrap();
            assert_eq!(bytes.len() as u64, len + 10_000, "{how:?}");
            assert_eq!(&bytes[..12], b"head\0\0\0\0tail", "{how:?}");
            assert!(bytes[12..].iter().all(|&b| b == 0), "{how:?}");
            // A range inside the file (zeros already): nothing changes.
            file.allocate(len..len + 100, how).unwrap();
            assert_eq!(storage.read("a").unwrap(), bytes, "{how:?}");
        }
        assert_eq!(std::fs::metadata(dir.path().join("a")).unwrap().mode() & 0o7777, FILE_MODE);
        storage.create_new("b").unwrap().write_all_at(b"b", 0).unwrap();
        let err = storage.rename_new("a", "b").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(storage.read("b").unwrap(), b"b");
        storage.rename_new("a", "c").unwrap();
        assert!(storage.read("a").is_err());
        assert_eq!(&storage.read("c").unwrap()[..4], b"head");
        // Not through a link at the new name either.
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("d")).unwrap();
        assert_eq!(storage.rename_new("c", "d").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn the_holder_is_read_from_the_start_of_the_lock_file() {
        // Waiting out a forked child reads the holder again and again: each read
        // must see it, whatever an earlier read did to the descriptor's offset.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::write(&path, b"123 lessor\n").unwrap();
        let mut lock = File::open(&path).unwrap();
        let mut all = String::new();
        lock.read_to_string(&mut all).unwrap();
        assert_eq!(read_holder(&lock), "123 lessor");
        assert_eq!(read_holder(&lock), "123 lessor");
        assert_eq!(describe_holder(&read_holder(&lock)), "123 (lessor)");
    }
}
