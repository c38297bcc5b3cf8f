//! Builds a log and replays it repeatedly: a target for `perf record`.
//!
//! `cargo run --release -p lessor-benches --example replay_profile -- 500000 5`
fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let tmp = tempfile::tempdir().expect("tempdir");
    lessor_benches::build_log(tmp.path(), events, None);
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let engine = lessor_engine::Engine::open(tmp.path(), lessor_benches::bench_options()).expect("open");
        let secs = start.elapsed().as_secs_f64();
        println!("replayed {} events in {secs:.3} s: {:.0} events/s", engine.last_lsn(), events as f64 / secs);
        engine.close();
    }
}
