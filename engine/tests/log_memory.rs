//! What reading a log costs in memory does not depend on how large its segments
//! are (I7): recovery's scan (what `Engine::open` runs) and `audit verify` stream
//! every segment through the log reader's bounded window, never holding a
//! segment whole. Measured with a counting allocator, so this file holds one
//! test: no other test's allocations run beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use lessor_engine::audit::{self, VerifyOptions};
use lessor_engine::event::{Event, Operation, Outcome, RequestRecorded};
use lessor_engine::log::Log;
use lessor_engine::log::WINDOW_BYTES;
use lessor_engine::log::format::{self, GENESIS_CHAIN, SegmentHeader};
use lessor_engine::log::storage::ReadOnlyDir;

/// Bytes allocated now, and the most allocated at once since the last reset.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn allocated(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(live, Ordering::SeqCst);
}

// SAFETY: every call goes to the system allocator with the caller's arguments
// unchanged; the counters only note sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is System's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            allocated(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            allocated(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from System, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is the caller's to choose.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            allocated(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `f`'s result, and the most bytes it had allocated at once beyond what was
/// allocated before it.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - before)
}

const RECORDS: u64 = 800;
/// Bytes of each record's payload (a request path): 800 of them are 48 MiB.
const PATH_BYTES: usize = 63 << 10;

/// Writes a log of `RECORDS` large records into `dir`, in segments of at most
/// `segment_bytes` (the writer's rule: a record that would pass it starts a new
/// segment), with chains and headers as the writer makes them.
fn write_log(dir: &Path, segment_bytes: usize) {
    let mut chain = GENESIS_CHAIN;
    let mut segment: Option<(u64, Vec<u8>)> = None;
    let flush = |segment: &mut Option<(u64, Vec<u8>)>| {
        if let Some((first, bytes)) = segment.take() {
            std::fs::write(dir.join(format::segment_name(first)), bytes).unwrap();
        }
    };
    for lsn in 1..=RECORDS {
        let event: Event = RequestRecorded {
            request_id: format!("request-{lsn}"),
            accessor: "accessor".into(),
            display_name: "auditor".into(),
            operation: Operation::Read,
            path: format!("sys/{lsn}/{}", "p".repeat(PATH_BYTES)),
            outcome: Outcome::Ok,
            error: None,
        }
        .into();
        let payload = event.encode_payload();
        let size = format::RECORD_OVERHEAD_BYTES + payload.len();
        if segment.as_ref().is_some_and(|(_, bytes)| bytes.len() + size > segment_bytes) {
            flush(&mut segment);
        }
        let (_, bytes) = segment.get_or_insert_with(|| {
            let header = SegmentHeader { version: format::FORMAT_VERSION, first_lsn: lsn, prev_chain: chain };
            (lsn, header.encode().to_vec())
        });
        chain =
            format::encode_record(bytes, &chain, lsn, 1_700_000_000_000 + lsn as i64, event.kind().code(), &payload);
    }
    flush(&mut segment);
}

#[test]
fn recovery_and_audit_verify_hold_a_window_not_a_segment() {
    let small = tempfile::tempdir().unwrap();
    let large = tempfile::tempdir().unwrap();
    write_log(small.path(), 1 << 20);
    write_log(large.path(), 64 << 20);
    let segments = |dir: &Path| std::fs::read_dir(dir).unwrap().count();
    assert!(segments(small.path()) > 40, "many 1 MiB segments");
    assert_eq!(segments(large.path()), 1, "one segment of about 48 MiB");
    let largest = std::fs::metadata(large.path().join(format::segment_name(1))).unwrap().len() as usize;
    assert!(largest > 48 << 20, "{largest}");

    // Recovery holds the reader's window, and a second one while it finds the
    // newest segment's proofs; what else it keeps is small.
    let scan_bound = 2 * WINDOW_BYTES + (256 << 10);
    // `audit verify` holds one window and one decoded event at a time.
    let verify_bound = WINDOW_BYTES + 2 * PATH_BYTES + (256 << 10);
    let mut peaks = Vec::new();
    for dir in [small.path(), large.path()] {
        let (summary, scan_peak) = peak_during(|| Log::recover(&ReadOnlyDir::new(dir), &mut |_, _| Ok(())).unwrap());
        assert_eq!(summary.records, RECORDS);
        assert!(summary.torn_tail.is_none());
        let (report, verify_peak) = peak_during(|| audit::verify(dir, VerifyOptions::default()).unwrap());
        assert_eq!(report.records, RECORDS);
        assert!(scan_peak <= scan_bound, "recovery's scan of {} peaked at {scan_peak} bytes", dir.display());
        assert!(verify_peak <= verify_bound, "audit verify of {} peaked at {verify_peak} bytes", dir.display());
        peaks.push((scan_peak, verify_peak));
    }
    // 48 times the segment size, the same memory (a segment held whole would be
    // 48 MiB more).
    let (small_peaks, large_peaks) = (peaks[0], peaks[1]);
    assert!(large_peaks.0.abs_diff(small_peaks.0) < 1 << 20, "{peaks:?}");
    assert!(large_peaks.1.abs_diff(small_peaks.1) < 1 << 20, "{peaks:?}");
}
