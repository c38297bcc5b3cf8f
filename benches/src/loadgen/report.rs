//! What a run reports: per-phase measurements, per-concurrency summaries, the
//! printed table and the CSVs.

use std::fmt::Write as _;
use std::path::PathBuf;

/// A system under test. The order is the canonical one: columns, and the first
/// half of each ABBA pair of rounds, go in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum System {
    /// The statements run straight at PostgreSQL (`--raw-client`).
    Raw,
    /// lessor's engine in this process (`Engine::issue`, `Engine::revoke`).
    Lessor,
    /// OpenBao (`bao server`, raft, started here) or any running Vault or OpenBao
    /// (`--vault-addr`), through its HTTP API.
    #[value(name = "openbao", alias = "bao", alias = "vault")]
    OpenBao,
    /// `lessor server -config`, started here, through the same HTTP API.
    #[value(name = "lessor-http")]
    LessorHttp,
}

impl System {
    pub const ALL: [System; 4] = [System::Raw, System::Lessor, System::OpenBao, System::LessorHttp];

    pub fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::Lessor => "lessor",
            System::OpenBao => "openbao",
            System::LessorHttp => "lessor-http",
        }
    }

    /// Whether it is reached over Vault's HTTP API.
    pub fn over_http(self) -> bool {
        matches!(self, System::OpenBao | System::LessorHttp)
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
    /// client side of raw, the engine plus its client side for lessor, the HTTP
    /// clients for the systems over HTTP.
    pub cpu_us_per_op: f64,
    /// CPU of the server process per operation, in µs, for a server this run
    /// started (OpenBao, `lessor server`); `None` otherwise.
    pub server_cpu_us_per_op: Option<f64>,
    /// The first error of the phase, if any.
    pub first_error: Option<String>,
}

impl Measurement {
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 { self.ok as f64 / self.seconds } else { 0.0 }
    }

    /// CPU per operation outside PostgreSQL that the run can see: this process's,
    /// plus the server's when it started one.
    pub fn total_cpu_us_per_op(&self) -> f64 {
        self.cpu_us_per_op + self.server_cpu_us_per_op.unwrap_or(0.0)
    }
}

/// One system's figures for one (set, phase, concurrency), over its rounds.
#[derive(Clone, Debug)]
pub struct SystemSummary {
    pub system: System,
    /// Median throughput over rounds.
    pub per_s: f64,
    /// Lowest throughput of a round.
    pub min_per_s: f64,
    /// Medians over rounds of each round's percentiles; max is the max of all.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Median of [`Measurement::total_cpu_us_per_op`].
    pub cpu_us: f64,
    pub events_per_fsync: Option<f64>,
    pub failed: usize,
}

/// A throughput ratio of two systems, from the rounds paired by their number.
#[derive(Clone, Debug)]
pub struct RatioSummary {
    pub numerator: System,
    pub denominator: System,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl RatioSummary {
    /// `lessor/raw`, …
    pub fn name(&self) -> String {
        format!("{}/{}", self.numerator.name(), self.denominator.name())
    }
}

/// The ratios a report shows, when both systems were measured.
pub const RATIOS: [(System, System); 4] = [
    (System::Lessor, System::Raw),
    (System::Lessor, System::OpenBao),
    (System::LessorHttp, System::OpenBao),
    (System::LessorHttp, System::Raw),
];

/// Summary of one (set, phase, concurrency) across its rounds.
#[derive(Clone, Debug)]
pub struct Summary {
    pub set: String,
    pub phase: Phase,
    pub concurrency: usize,
    /// Every measured system, in [`System`] order.
    pub systems: Vec<SystemSummary>,
    /// The [`RATIOS`] whose two systems were measured.
    pub ratios: Vec<RatioSummary>,
    // The raw and lessor figures again, as fields (0 when not measured).
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
    /// Failed operations of every system.
    pub failed: usize,
}

impl Summary {
    pub fn system(&self, system: System) -> Option<&SystemSummary> {
        self.systems.iter().find(|s| s.system == system)
    }

    pub fn ratio_of(&self, numerator: System, denominator: System) -> Option<&RatioSummary> {
        self.ratios.iter().find(|r| r.numerator == numerator && r.denominator == denominator)
    }
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
    /// One line per (set, phase, concurrency, system): the medians and ratios.
    pub summary_csv_path: PathBuf,
    pub svg_path: PathBuf,
}

impl Report {
    /// The systems measured, in [`System`] order.
    pub fn systems(&self) -> Vec<System> {
        let mut systems: Vec<System> = self.measurements.iter().map(|m| m.system).collect();
        systems.sort_unstable();
        systems.dedup();
        systems
    }

    /// The table `lessor-bench` prints: throughput and ratios, then latencies and CPU.
    pub fn table(&self) -> String {
        let systems = self.systems();
        let ratios: Vec<(System, System)> =
            RATIOS.into_iter().filter(|(n, d)| systems.contains(n) && systems.contains(d)).collect();
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.conditions);
        let _ = write!(out, "{:<11} {:<6} {:>2} |", "set", "phase", "c");
        for s in &systems {
            let _ = write!(out, " {:>13}", format!("{}/s", s.name()));
        }
        let _ = write!(out, " |");
        for (n, d) in &ratios {
            let _ = write!(out, " {:>24}", format!("{}/{}", n.name(), d.name()));
        }
        let _ = writeln!(out, " | {:>4}", "fail");
        for s in &self.summaries {
            let _ = write!(out, "{:<11} {:<6} {:>2} |", truncate(&s.set, 11), s.phase.name(), s.concurrency);
            for &system in &systems {
                let cell = s.system(system).map_or("—".to_string(), |x| format!("{:.1}", x.per_s));
                let _ = write!(out, " {cell:>13}");
            }
            let _ = write!(out, " |");
            for &(n, d) in &ratios {
                let cell = s
                    .ratio_of(n, d)
                    .map_or("—".to_string(), |r| format!("{:.3} ({:.3}–{:.3})", r.median, r.min, r.max));
                let _ = write!(out, " {cell:>24}");
            }
            let _ = writeln!(out, " | {:>4}", s.failed);
        }
        let _ = writeln!(
            out,
            "per second: median over rounds; ratio = median of the per-round ratios (rounds paired by number), \
             (min–max)"
        );
        let _ = writeln!(out);
        let _ = write!(out, "{:<11} {:<6} {:>2} |", "set", "phase", "c");
        for s in &systems {
            let _ = write!(out, " {:>20}", format!("{} p50/p99/max", short(*s)));
        }
        let _ = write!(out, " | {:>6} |", "ev/fs");
        for s in &systems {
            let _ = write!(out, " {:>9}", format!("{}CPU", short(*s)));
        }
        let _ = writeln!(out);
        for s in &self.summaries {
            let _ = write!(out, "{:<11} {:<6} {:>2} |", truncate(&s.set, 11), s.phase.name(), s.concurrency);
            for &system in &systems {
                let cell = s
                    .system(system)
                    .map_or("—".to_string(), |x| format!("{:.2}/{:.2}/{:.2}", x.p50_ms, x.p99_ms, x.max_ms));
                let _ = write!(out, " {cell:>20}");
            }
            let evfs = s.system(System::Lessor).and_then(|x| x.events_per_fsync);
            let _ = write!(out, " | {:>6} |", evfs.map_or("—".to_string(), |e| format!("{e:.2}")));
            for &system in &systems {
                let cell = s.system(system).map_or("—".to_string(), |x| format!("{:.0}", x.cpu_us));
                let _ = write!(out, " {cell:>9}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "latencies in ms (median over rounds of each round's p50/p99; max of all); ev/fs = lessor log events per \
             fdatasync; CPU = µs per operation of this process (client side for raw and over HTTP; engine + client \
             for lessor; with --rtt-ms this process also runs the proxy) plus, for a server this run started, that \
             server's process"
        );
        out
    }
}

/// A short column name for a system.
fn short(system: System) -> &'static str {
    match system {
        System::Raw => "raw",
        System::Lessor => "lessor",
        System::OpenBao => "openbao",
        System::LessorHttp => "l-http",
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
        "set,phase,concurrency,system,round,ok,failed,seconds,per_second,p50_ms,p99_ms,max_ms,events_per_fsync,retries,cpu_us_per_op,server_cpu_us_per_op\n",
    );
    for m in measurements {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.4},{:.2},{:.3},{:.3},{:.3},{},{},{:.1},{}",
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
            m.cpu_us_per_op,
            m.server_cpu_us_per_op.map_or(String::new(), |c| format!("{c:.1}")),
        );
    }
    out
}

/// One line per (set, phase, concurrency, system): the medians over rounds, and
/// the system's ratios to the others (median, min, max over paired rounds).
pub fn summary_csv(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "set,phase,concurrency,system,per_second_median,per_second_min,p50_ms,p99_ms,max_ms,cpu_us_per_op,events_per_fsync,failed",
    );
    for (n, d) in RATIOS {
        let name = format!("{}_over_{}", n.name(), d.name()).replace('-', "_");
        let _ = write!(out, ",{name},{name}_min,{name}_max");
    }
    out.push('\n');
    for s in summaries {
        for x in &s.systems {
            let _ = write!(
                out,
                "{},{},{},{},{:.2},{:.2},{:.3},{:.3},{:.3},{:.1},{},{}",
                s.set,
                s.phase.name(),
                s.concurrency,
                x.system.name(),
                x.per_s,
                x.min_per_s,
                x.p50_ms,
                x.p99_ms,
                x.max_ms,
                x.cpu_us,
                x.events_per_fsync.map_or(String::new(), |e| format!("{e:.2}")),
                x.failed
            );
            for (n, d) in RATIOS {
                // The ratio goes on its numerator's line.
                match s.ratio_of(n, d).filter(|_| n == x.system) {
                    Some(r) => {
                        let _ = write!(out, ",{:.4},{:.4},{:.4}", r.median, r.min, r.max);
                    }
                    None => out.push_str(",,,"),
                }
            }
            out.push('\n');
        }
    }
    out
}
