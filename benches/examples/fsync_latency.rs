//! `fdatasync` latency of one small write at a time through the log's storage
//! seam, into a file that grows with each write, one whose blocks are only
//! reserved (`fallocate`), and one allocated with zeros written and synced (what
//! the spare thread prepares): the cost preallocated segments save on each
//! batch (`docs/DESIGN.md`, §6.7). The three are alternated round by round, on
//! the disk of the directory given (default: the system's temporary directory).
//!
//! Run: `cargo run --release -p lessor-benches --example fsync_latency -- [DIR] [WRITES] [ROUNDS]`

use std::time::Instant;

use lessor_engine::log::storage::{Allocation, FsStorage, Storage};

const RECORD_BYTES: usize = 300;
const FILE_BYTES: u64 = 64 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let writes: usize = args.next().map(|s| s.parse().expect("WRITES")).unwrap_or(300);
    let rounds: usize = args.next().map(|s| s.parse().expect("ROUNDS")).unwrap_or(3);
    let dir = tempfile::tempdir_in(&base).expect("temporary directory");
    let storage = FsStorage::open(dir.path()).expect("storage");
    let modes: [(&str, Option<Allocation>); 3] =
        [("growing", None), ("reserved", Some(Allocation::Reserved)), ("zeroed", Some(Allocation::Zeroed))];
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let record = [0x5a; RECORD_BYTES];
    for round in 0..rounds {
        for (m, (name, how)) in modes.iter().enumerate() {
            let file_name = format!("{name}-{round}");
            let mut file = storage.create_new(&file_name).expect("create");
            if let Some(how) = how {
                file.allocate(0..FILE_BYTES, Allocation::Reserved).expect("fallocate");
                if *how == Allocation::Zeroed {
                    file.allocate(0..FILE_BYTES, Allocation::Zeroed).expect("zeros");
                }
                file.sync_data().expect("sync");
            }
            let mut lat = Vec::with_capacity(writes);
            for i in 0..writes {
                let start = Instant::now();
                file.write_all_at(&record, (i * RECORD_BYTES) as u64).expect("write");
                file.sync_data().expect("fdatasync");
                lat.push(start.elapsed().as_secs_f64() * 1e3);
            }
            drop(file);
            storage.remove(&file_name).expect("remove");
            println!("round {round} {name:>8}: {}", summary(&mut lat));
            all[m].extend(lat);
        }
    }
    for (m, (name, _)) in modes.iter().enumerate() {
        println!("all     {name:>8}: {}", summary(&mut all[m]));
    }
}

/// p50, p90 and p99 of `lat` (milliseconds), and the share under 1 ms: this
/// machine's virtual disk throttles flushes to a 4 ms tick when busy, so the
/// share of fsyncs that get through at once says as much as the median.
fn summary(lat: &mut [f64]) -> String {
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let fast = lat.iter().filter(|&&ms| ms < 1.0).count() as f64 / lat.len() as f64;
    format!(
        "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  mean {:.3} ms  under 1 ms {:.0}%  ({} writes of {RECORD_BYTES} B + fdatasync)",
        at(0.5),
        at(0.9),
        at(0.99),
        lat.iter().sum::<f64>() / lat.len() as f64,
        fast * 100.0,
        lat.len()
    )
}
