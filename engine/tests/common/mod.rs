//! Helpers the engine's integration tests share: the log's files as the tests
//! look at them, the fault-injecting storage, and a small event. Each test
//! binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use lessor_engine::event::{Event, EventKind, Lsn};
use lessor_engine::log::format;
use lessor_engine::log::read_entries;
use lessor_engine::log::storage::{FaultInjectingStorage, FsStorage, ReadOnlyDir};
use lessor_engine::testing::sample;

/// The segment file names in `dir`, in LSN order.
pub fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| format::parse_segment_name(n).is_some())
        .collect();
    names.sort();
    names
}

/// `(offset, lsn, size)` of every record in a segment's bytes, up to the zeros
/// a segment allocated ahead ends in.
pub fn records(bytes: &[u8]) -> Vec<(usize, Lsn, usize)> {
    let mut out = Vec::new();
    let mut at = format::SEGMENT_HEADER_BYTES;
    while at < bytes.len() && !zeros_from(bytes, at) {
        let r = format::read_record(&bytes[at..]).unwrap();
        out.push((at, r.lsn, r.size));
        at += r.size;
    }
    out
}

/// Whether `bytes` holds nothing but zeros from `at` on.
pub fn zeros_from(bytes: &[u8], at: usize) -> bool {
    bytes[at..].iter().all(|&b| b == 0)
}

/// Where a segment's data ends: its header and whole records, without the
/// zeros after them.
pub fn data_len(bytes: &[u8]) -> usize {
    records(bytes).last().map_or(format::SEGMENT_HEADER_BYTES, |&(at, _, size)| at + size)
}

/// The byte offset of every record in a segment's bytes.
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    records(bytes).into_iter().map(|(offset, _, _)| offset).collect()
}

/// Every event in `dir`'s log, read without opening an engine.
pub fn events_in(dir: &Path) -> Vec<Event> {
    read_entries(&ReadOnlyDir::new(dir)).unwrap().0.into_iter().map(|e| e.event).collect()
}

/// A fault-injecting storage over `dir` (a test double: it injects faults).
pub fn faulty(dir: &Path) -> FaultInjectingStorage {
    FaultInjectingStorage::new(Arc::new(FsStorage::open(dir).unwrap()))
}

/// A small event told apart by `i`: a policy named `p{i}`.
pub fn ev(i: u64) -> Event {
    let mut e = sample(EventKind::PolicyWritten);
    if let Event::PolicyWritten(p) = &mut e {
        p.name = format!("p{i}");
    }
    e
}
