//! Resident memory of an engine holding live leases: builds a log of N live
//! leases (in a child process, so building leaves nothing behind in this one),
//! opens it, re-arms every lease in the expirer's wheel, and reads VmRSS.
//!
//! `cargo run --release -p lessor-benches --example lease_memory -- 1000000`
//!
//! Prints the resident size before opening, after opening (state folded from the
//! log), and after the expirer armed every lease, and the difference per lease.

use std::sync::Arc;

fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("build") {
        let leases: usize = args.next().and_then(|a| a.parse().ok()).expect("lease count");
        let dir = args.next().expect("directory");
        // A snapshot 10,000 leases before the end: open = snapshot + a short tail.
        lessor_benches::build_live_leases(std::path::Path::new(&dir), leases, 10_000);
        return;
    }
    let leases: usize = first.and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("build")
        .arg(leases.to_string())
        .arg(tmp.path())
        .status()
        .expect("building the log in a child process");
    assert!(status.success(), "building the log failed");

    let base = vm_kib("VmRSS:");
    let engine = Arc::new(lessor_engine::Engine::open(tmp.path(), lessor_benches::bench_options()).expect("open"));
    let opened = vm_kib("VmRSS:");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let report = rt.block_on(engine.expire_due()).expect("arm the wheel");
    assert_eq!(report.revoked, 0);
    let armed = vm_kib("VmRSS:");
    assert_eq!(engine.with_state(|s| s.leases.len()), leases);
    let mib = |k: u64| k as f64 / 1024.0;
    println!("live leases: {leases}");
    println!("VmRSS before open: {:.1} MiB", mib(base));
    println!("VmRSS after open (state folded): {:.1} MiB", mib(opened));
    println!("VmRSS with every lease armed in the wheel: {:.1} MiB", mib(armed));
    println!("VmHWM (peak, includes replay buffers): {:.1} MiB", mib(vm_kib("VmHWM:")));
    println!("per lease: {:.0} bytes", (armed.saturating_sub(base) * 1024) as f64 / leases as f64);
}
