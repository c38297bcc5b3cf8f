//! New segments, allocated at their full size before a record goes into them
//! (`docs/DESIGN.md`, §6.7): the writer then writes each batch at an offset
//! inside the file, never growing it, so the `fdatasync` after a batch has no
//! file size (inode) to write.
//!
//! A new segment is made under a temporary name, `spare-<n>.tmp`, allocated,
//! given its header (made durable), and only then renamed to
//! `<first LSN>.log` — never over an existing file ([`Storage::rename_new`]) —
//! and the directory synced before any record in it is acknowledged. So a
//! segment's name never points at a file without a whole header; a temporary
//! file a crash leaves behind is no segment, and the next open removes it.
//!
//! The next segment is prepared ahead, on a thread of its own ([`Spares`]),
//! once the active one is half full: blocks reserved (`fallocate`), then zeros
//! written over the whole file and made durable, so that later writes into it
//! overwrite written blocks and change no metadata at all (a block that is
//! only reserved is marked written by its first write, which an `fdatasync`
//! has to record). A seal then costs the header, its `fdatasync`, the rename
//! and the directory's sync, as before, and no allocation. When no spare is
//! ready (the thread is still writing zeros, or preallocation failed), the
//! writer makes the segment itself with reserved blocks only; preallocation is
//! an optimization, and failing at it never fails an append.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use crate::log::FsyncPolicy;
use crate::log::format::{SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::log::storage::{Allocation, Storage, StorageFile};

const SPARE_PREFIX: &str = "spare-";
const SPARE_SUFFIX: &str = ".tmp";

/// Zeros written (and synced) per step while a spare is prepared: the
/// thread checks between steps whether the log is closing, and the disk gets
/// the zeros in bounded bursts.
const ZERO_STEP_BYTES: u64 = 4 << 20;

/// The temporary name of the `seq`-th segment file this writer makes.
fn spare_name(seq: u64) -> String {
    format!("{SPARE_PREFIX}{seq:020}{SPARE_SUFFIX}")
}

/// Whether `name` is a segment file prepared under a temporary name.
pub(crate) fn is_spare_name(name: &str) -> bool {
    name.strip_prefix(SPARE_PREFIX)
        .and_then(|n| n.strip_suffix(SPARE_SUFFIX))
        .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes what an earlier run left under temporary names: files no segment
/// name points to, so nothing of the log. Called before the writer starts.
pub(crate) fn remove_leftovers(storage: &dyn Storage) -> std::io::Result<()> {
    for name in storage.list()?.into_iter().filter(|n| is_spare_name(n)) {
        match storage.remove(&name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A segment file under its temporary name, allocated (or not), holding only zeros.
#[derive(Debug)]
pub(crate) struct NewSegment {
    pub(crate) file: Box<dyn StorageFile>,
    /// Its temporary name.
    pub(crate) temp_name: String,
    /// Bytes allocated ahead (0 if the file system would not).
    pub(crate) allocated: u64,
    /// Zeros were written over it and synced ([`Allocation::Zeroed`]).
    pub(crate) zeroed: bool,
}

impl NewSegment {
    /// Gives the file its header, durable (under [`FsyncPolicy::Always`])
    /// before the file gets its segment name: the first step of putting it in
    /// place; then [`NewSegment::rename`].
    pub(crate) fn write_header(&mut self, header: &SegmentHeader, fsync: FsyncPolicy) -> std::io::Result<()> {
        // Before: the file is one of ours, fresh, nothing in it but zeros (it
        // was never named as a segment, so it holds no record).
        assert!(is_spare_name(&self.temp_name), "a segment file not made under a temporary name");
        self.file.write_all_at(&header.encode(), 0)?;
        if fsync == FsyncPolicy::Always {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Renames the file to `name`, which must not exist. The directory must be
    /// synced before a record in it is acknowledged.
    pub(crate) fn rename(&self, storage: &dyn Storage, name: &str) -> std::io::Result<()> {
        assert!(crate::log::format::parse_segment_name(name).is_some(), "not a segment name: {name}");
        storage.rename_new(&self.temp_name, name)
    }
}

fn note_allocation_failure(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::Unsupported {
        tracing::debug!(error = %e, "segment not preallocated: the file system cannot");
    } else {
        tracing::warn!(error = %e, "cannot preallocate a log segment; it grows with each append instead");
    }
}

/// Prepares the next segment file on a thread of its own, one at a time:
/// [`Spares::request`] asks for one (the writer does once the active segment
/// is half full), [`Spares::take`] takes it if it is ready. Dropping it stops
/// the thread (between two steps of zeros) and removes an unused spare.
#[derive(Debug)]
pub(crate) struct Spares {
    storage: Arc<dyn Storage>,
    /// Bytes of a spare: the segment size.
    len: u64,
    /// Whether segment files are allocated ahead at all: only in a log whose
    /// batches end in a proof. A crash during a batch's `fdatasync` may
    /// persist a later page of it and not an earlier one, and recovery can
    /// tell that from damage only by the batch's proof (row 14); without
    /// proofs, segments grow with each append, whose file size the file
    /// system orders behind the data.
    preallocate: bool,
    /// The thread: off under [`FsyncPolicy::Never`], where no fsync is ever
    /// waited for, so there is nothing for zeros written ahead to save.
    enabled: bool,
    /// Numbers the temporary names, the writer's and the thread's alike.
    seq: Arc<AtomicU64>,
    ready: Arc<Mutex<Option<NewSegment>>>,
    stop: Arc<AtomicBool>,
    tx: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// A spare was asked for since the active segment started.
    requested: bool,
}

impl Spares {
    /// `preallocate`: the log's batches end in proofs (see the field).
    pub(crate) fn new(storage: Arc<dyn Storage>, len: u64, fsync: FsyncPolicy, preallocate: bool) -> Spares {
        Spares {
            storage,
            len,
            preallocate,
            enabled: preallocate && fsync == FsyncPolicy::Always,
            seq: Arc::default(),
            ready: Arc::default(),
            stop: Arc::default(),
            tx: None,
            thread: None,
            requested: false,
        }
    }

    /// Makes a segment file now, on the caller's thread: created under a
    /// temporary name and its blocks reserved, best-effort (if at all).
    pub(crate) fn create_now(&self) -> std::io::Result<NewSegment> {
        let temp_name = spare_name(self.seq.fetch_add(1, Ordering::Relaxed));
        let mut file = self.storage.create_new(&temp_name)?;
        let allocated = match self.preallocate.then(|| file.allocate(0..self.len, Allocation::Reserved)) {
            Some(Ok(())) => self.len,
            Some(Err(e)) => {
                note_allocation_failure(&e);
                0
            }
            None => 0,
        };
        Ok(NewSegment { file, temp_name, allocated, zeroed: false })
    }

    /// Allocates a segment file again from `len` (where its data ends, the
    /// file cut there) to the segment size, best-effort (if at all): after a
    /// cut, so that the appends that follow still do not grow the file.
    pub(crate) fn reallocate(&self, file: &mut dyn StorageFile, len: u64) {
        if self.preallocate
            && len < self.len
            && let Err(e) = file.allocate(len..self.len, Allocation::Reserved)
        {
            tracing::debug!(error = %e, "log segment not preallocated again after a cut; it grows with each append");
        }
    }

    /// Asks for a spare, once per active segment; the thread starts with the
    /// first request.
    pub(crate) fn request(&mut self) {
        if !self.enabled || std::mem::replace(&mut self.requested, true) {
            return;
        }
        if self.tx.is_none() {
            let (tx, rx) = mpsc::channel();
            let worker = Worker {
                storage: self.storage.clone(),
                len: self.len,
                seq: self.seq.clone(),
                ready: self.ready.clone(),
                stop: self.stop.clone(),
            };
            match std::thread::Builder::new().name("lessor-log-spare".into()).spawn(move || worker.run(rx)) {
                Ok(thread) => {
                    self.thread = Some(thread);
                    self.tx = Some(tx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the thread that prepares log segments; the writer makes them");
                    self.enabled = false;
                    return;
                }
            }
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(());
        }
    }

    /// The spare, if one is ready; the next request is for the segment after.
    pub(crate) fn take(&mut self) -> Option<NewSegment> {
        self.requested = false;
        self.ready.lock().expect("spare lock").take()
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the thread that prepares log segments panicked");
        }
        let unused = match self.ready.lock() {
            Ok(mut ready) => ready.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(unused) = unused {
            drop(unused.file);
            let _ = self.storage.remove(&unused.temp_name);
        }
    }
}

/// The thread's half of [`Spares`].
struct Worker {
    storage: Arc<dyn Storage>,
    len: u64,
    seq: Arc<AtomicU64>,
    ready: Arc<Mutex<Option<NewSegment>>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(self, rx: mpsc::Receiver<()>) {
        while rx.recv().is_ok() {
            if self.ready.lock().expect("spare lock").is_some() {
                continue;
            }
            // A name of its own: the writer may be renaming the previous spare
            // right now, and must never rename one this thread is still making.
            let temp_name = spare_name(self.seq.fetch_add(1, Ordering::Relaxed));
            match self.prepare(&temp_name) {
                Ok(spare) => {
                    let mut ready = self.ready.lock().expect("spare lock");
                    assert!(ready.is_none(), "two spares at once");
                    *ready = Some(spare);
                }
                Err(e) => {
                    let _ = self.storage.remove(&temp_name);
                    if !self.stop.load(Ordering::Relaxed) {
                        tracing::warn!(error = %e, "cannot prepare the next log segment; the writer makes it at the seal");
                    }
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// Creates `temp_name`, reserves its blocks, then writes zeros over it a
    /// step at a time, each step synced.
    fn prepare(&self, temp_name: &str) -> std::io::Result<NewSegment> {
        let mut file = self.storage.create_new(temp_name)?;
        // Best-effort: a file system that cannot reserve gets the zeros only.
        let _ = file.allocate(0..self.len, Allocation::Reserved);
        let mut at = 0;
        while at < self.len {
            if self.stop.load(Ordering::Relaxed) {
                return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "the log is closing"));
            }
            let end = (at + ZERO_STEP_BYTES).min(self.len);
            file.allocate(at..end, Allocation::Zeroed)?;
            at = end;
        }
        // After: the whole segment is there, and nothing in it but zeros.
        assert!(self.len >= SEGMENT_HEADER_BYTES as u64);
        Ok(NewSegment { file, temp_name: temp_name.to_string(), allocated: self.len, zeroed: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_names_are_no_segment_names() {
        let name = spare_name(7);
        assert_eq!(name, "spare-00000000000000000007.tmp");
        assert!(is_spare_name(&name));
        assert!(crate::log::format::parse_segment_name(&name).is_none());
        for other in ["spare-7.tmp", "00000000000000000007.log", "snap-00000000000000000007.bin.tmp", "LOCK"] {
            assert!(!is_spare_name(other), "{other}");
        }
    }
}
