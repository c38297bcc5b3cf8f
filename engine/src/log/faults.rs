//! The fault-injecting storage (a test double; feature `testing`): wraps a real
//! [`Storage`] and tears a write at a chosen byte, flips a bit, or fails a
//! `write`/`fsync` on a countdown. Named as `log::storage::FaultInjectingStorage`.
//!
//! Preallocation ([`StorageFile::allocate`]) is not counted against the
//! countdowns: the next segment is prepared on a thread of its own, at moments
//! no test can predict, so counting it would make "the n-th write" mean
//! something else from run to run. [`Faults::fail_allocate`] fails it instead
//! (a disk with no room to preallocate), and so does a dead disk (`sticky`).

use std::io::{self, Read};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::storage::{Allocation, Storage, StorageFile};

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
    /// Once a fault fired, every later write and sync fails too (a dead disk),
    /// and so does every allocation.
    pub sticky: bool,
    /// Every [`StorageFile::allocate`] fails, having allocated nothing (a disk
    /// without room to preallocate, or a file system that cannot). Not a
    /// countdown, and it does not count as a fault that fired.
    pub fail_allocate: bool,
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

    fn on_allocate(&self) -> bool {
        self.fail_allocate || (self.sticky && self.fired)
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
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let (action, flip) = {
            let mut faults = self.faults.lock().expect("fault lock");
            (faults.on_write(), faults.flip_for_this_write())
        };
        if let (None, Some((byte, bit))) = (&action, flip)
            && byte < buf.len()
        {
            let mut damaged = buf.to_vec();
            damaged[byte] ^= 1 << (bit % 8);
            return self.inner.write_all_at(&damaged, offset);
        }
        match action {
            None => self.inner.write_all_at(buf, offset),
            Some(keep) => {
                // A torn write: its first bytes reach the disk, where the whole
                // write was to go.
                if let Some(keep) = keep {
                    self.inner.write_all_at(&buf[..keep.min(buf.len())], offset)?;
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
    fn allocate(&mut self, range: Range<u64>, how: Allocation) -> io::Result<()> {
        if self.faults.lock().expect("fault lock").on_allocate() {
            return Err(injected("allocation"));
        }
        self.inner.allocate(range, how)
    }
}

impl Storage for FaultInjectingStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        self.inner.open_read(name)
    }
    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FaultyFile { inner: self.inner.create_new(name)?, faults: self.faults.clone() }))
    }
    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(FaultyFile { inner: self.inner.open_write(name)?, faults: self.faults.clone() }))
    }
    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.inner.truncate(name, len)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename_new(from, to)
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
