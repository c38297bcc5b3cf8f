//! What a run reports: per-phase measurements, per-concurrency summaries, the
//! printed table and the CSV.

use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    Raw,
    Lessor,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::Lessor => "lessor",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Issue,
    Revoke,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Issue => "issue",
            Phase::Revoke => "revoke",
        }
    }
}

/// One measured phase: one system, one round.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub set: String,
    pub phase: Phase,
    pub concurrency: usize,
    pub system: System,
    pub round: usize,
    pub ok: usize,
    pub failed: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// lessor only: log events written per fdatasync during the phase.
    pub events_per_fsync: Option<f64>,
    /// Retries of colliding transactions (raw only: lessor's are inside the plugin).
    pub retries: u64,
    /// CPU time of this whole process (user + system) per operation, in µs: the
    /// client side of raw, the engine plus its client side for lessor.
    pub cpu_us_per_op: f64,
    /// The first error of the phase, if any.
    pub first_error: Option<String>,
}

impl Measurement {
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 { self.ok as f64 / self.seconds } else { 0.0 }
    }
}

/// Summary of one (set, phase, concurrency) across its rounds.
#[derive(Clone, Debug)]
pub struct Summary {
    pub set: String,
    pub phase: Phase,
    pub concurrency: usize,
    /// Median throughput over rounds.
    pub raw_per_s: f64,
    pub lessor_per_s: f64,
    /// lessor/raw of each round pair: median, min, max.
    pub ratio: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// Medians over rounds of each round's percentiles; max is the max of all.
    pub raw_p50_ms: f64,
    pub raw_p99_ms: f64,
    pub raw_max_ms: f64,
    pub lessor_p50_ms: f64,
    pub lessor_p99_ms: f64,
    pub lessor_max_ms: f64,
    pub events_per_fsync: f64,
    pub raw_cpu_us: f64,
    pub lessor_cpu_us: f64,
    pub failed: usize,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub measurements: Vec<Measurement>,
    pub summaries: Vec<Summary>,
    /// Server version, settings and machine, for the record.
    pub conditions: String,
    /// Roles of this run still present after cleanup (should be empty).
    pub leftover_roles: Vec<String>,
    pub csv_path: PathBuf,
    pub svg_path: PathBuf,
}

impl Report {
    /// The table `lessor-bench` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.conditions);
        let _ = writeln!(
            out,
            "{:<11} {:<6} {:>2} | {:>8} {:>8} | {:>5} {:>11} | {:>6} {:>6} {:>7} | {:>6} {:>6} {:>7} | {:>6} | {:>6} {:>6} | {:>4}",
            "set",
            "phase",
            "c",
            "raw/s",
            "lessor/s",
            "ratio",
            "(min–max)",
            "raw50",
            "raw99",
            "rawmax",
            "les50",
            "les99",
            "lesmax",
            "ev/fs",
            "rawCPU",
            "lesCPU",
            "fail"
        );
        for s in &self.summaries {
            let _ = writeln!(
                out,
                "{:<11} {:<6} {:>2} | {:>8.1} {:>8.1} | {:>5.3} {:>11} | {:>6.2} {:>6.2} {:>7.2} | {:>6.2} {:>6.2} {:>7.2} | {:>6.2} | {:>6.0} {:>6.0} | {:>4}",
                truncate(&s.set, 11),
                s.phase.name(),
                s.concurrency,
                s.raw_per_s,
                s.lessor_per_s,
                s.ratio,
                format!("{:.3}–{:.3}", s.ratio_min, s.ratio_max),
                s.raw_p50_ms,
                s.raw_p99_ms,
                s.raw_max_ms,
                s.lessor_p50_ms,
                s.lessor_p99_ms,
                s.lessor_max_ms,
                s.events_per_fsync,
                s.raw_cpu_us,
                s.lessor_cpu_us,
                s.failed
            );
        }
        let _ = writeln!(
            out,
            "latencies in ms (median over rounds of each round's p50/p99; max of all); ev/fs = lessor log events per \
             fdatasync; CPU = this process's µs per operation (client side for raw; engine + client for lessor)"
        );
        out
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One line per measured phase.
pub fn csv(measurements: &[Measurement]) -> String {
    let mut out = String::from(
        "set,phase,concurrency,system,round,ok,failed,seconds,per_second,p50_ms,p99_ms,max_ms,events_per_fsync,retries,cpu_us_per_op\n",
    );
    for m in measurements {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.4},{:.2},{:.3},{:.3},{:.3},{},{},{:.1}",
            m.set,
            m.phase.name(),
            m.concurrency,
            m.system.name(),
            m.round,
            m.ok,
            m.failed,
            m.seconds,
            m.throughput(),
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.events_per_fsync.map_or(String::new(), |e| format!("{e:.2}")),
            m.retries,
            m.cpu_us_per_op
        );
    }
    out
}
