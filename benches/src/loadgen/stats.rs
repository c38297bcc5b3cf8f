//! Statistics: a phase's latencies into a measurement, measurements into summaries.

use std::collections::BTreeMap;
use std::time::Duration;

use super::phase::PhaseResult;
use super::report::{Measurement, Phase, RATIOS, RatioSummary, Summary, System, SystemSummary};

pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn measurement(
    set: &str,
    phase: Phase,
    concurrency: usize,
    system: System,
    round: usize,
    mut r: PhaseResult,
    events_per_fsync: Option<f64>,
    retries: u64,
    server_cpu: Option<Duration>,
) -> (Measurement, Vec<String>) {
    r.latencies.sort_unstable();
    let ops = (r.latencies.len() + r.failed).max(1);
    let m = Measurement {
        set: set.to_string(),
        phase,
        concurrency,
        system,
        round,
        ok: r.latencies.len(),
        failed: r.failed,
        seconds: r.elapsed.as_secs_f64(),
        p50_ms: percentile_ms(&r.latencies, 0.50),
        p99_ms: percentile_ms(&r.latencies, 0.99),
        max_ms: r.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        events_per_fsync,
        retries,
        cpu_us_per_op: r.cpu.as_secs_f64() * 1e6 / ops as f64,
        server_cpu_us_per_op: server_cpu.map(|c| c.as_secs_f64() * 1e6 / ops as f64),
        first_error: r.first_error,
    };
    (m, r.handles)
}

pub(crate) fn summarize(measurements: &[Measurement]) -> Vec<Summary> {
    let mut groups: BTreeMap<(String, Phase, usize), Vec<&Measurement>> = BTreeMap::new();
    let mut order = Vec::new();
    for m in measurements {
        let key = (m.set.clone(), m.phase, m.concurrency);
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(m);
    }
    order.sort_by(|a, b| (a.1, &a.0, a.2).cmp(&(b.1, &b.0, b.2)));
    order
        .into_iter()
        .map(|key| {
            let ms = &groups[&key];
            let of = |s: System| {
                let mut v = ms.iter().filter(move |m| m.system == s).copied().collect::<Vec<_>>();
                v.sort_by_key(|m| m.round);
                v
            };
            let med = |v: &[&Measurement], f: fn(&Measurement) -> f64| median(v.iter().map(|m| f(m)).collect());
            let systems: Vec<SystemSummary> = System::ALL
                .into_iter()
                .map(|system| (system, of(system)))
                .filter(|(_, v)| !v.is_empty())
                .map(|(system, v)| SystemSummary {
                    system,
                    per_s: med(&v, Measurement::throughput),
                    min_per_s: v.iter().map(|m| m.throughput()).fold(f64::INFINITY, f64::min),
                    p50_ms: med(&v, |m| m.p50_ms),
                    p99_ms: med(&v, |m| m.p99_ms),
                    max_ms: v.iter().map(|m| m.max_ms).fold(0.0, f64::max),
                    cpu_us: med(&v, Measurement::total_cpu_us_per_op),
                    events_per_fsync: (system == System::Lessor)
                        .then(|| med(&v, |m| m.events_per_fsync.unwrap_or(0.0))),
                    failed: v.iter().map(|m| m.failed).sum(),
                })
                .collect();
            let ratios: Vec<RatioSummary> = RATIOS
                .into_iter()
                .filter_map(|(numerator, denominator)| {
                    let (num, den) = (of(numerator), of(denominator));
                    // Rounds paired by their number: the two ran next to each other.
                    let per_round: Vec<f64> = num
                        .iter()
                        .filter_map(|n| den.iter().find(|d| d.round == n.round).map(|d| (n, d)))
                        .filter(|(_, d)| d.throughput() > 0.0)
                        .map(|(n, d)| n.throughput() / d.throughput())
                        .collect();
                    (!per_round.is_empty()).then(|| RatioSummary {
                        numerator,
                        denominator,
                        median: median(per_round.clone()),
                        min: per_round.iter().copied().fold(f64::INFINITY, f64::min),
                        max: per_round.iter().copied().fold(0.0, f64::max),
                    })
                })
                .collect();
            let field = |system: System, f: fn(&SystemSummary) -> f64| {
                systems.iter().find(|s| s.system == system).map_or(0.0, f)
            };
            let lessor_raw = ratios.iter().find(|r| (r.numerator, r.denominator) == (System::Lessor, System::Raw));
            Summary {
                set: key.0.clone(),
                phase: key.1,
                concurrency: key.2,
                raw_per_s: field(System::Raw, |s| s.per_s),
                lessor_per_s: field(System::Lessor, |s| s.per_s),
                ratio: lessor_raw.map_or(0.0, |r| r.median),
                ratio_min: lessor_raw.map_or(0.0, |r| r.min),
                ratio_max: lessor_raw.map_or(0.0, |r| r.max),
                raw_p50_ms: field(System::Raw, |s| s.p50_ms),
                raw_p99_ms: field(System::Raw, |s| s.p99_ms),
                raw_max_ms: field(System::Raw, |s| s.max_ms),
                lessor_p50_ms: field(System::Lessor, |s| s.p50_ms),
                lessor_p99_ms: field(System::Lessor, |s| s.p99_ms),
                lessor_max_ms: field(System::Lessor, |s| s.max_ms),
                events_per_fsync: field(System::Lessor, |s| s.events_per_fsync.unwrap_or(0.0)),
                raw_cpu_us: field(System::Raw, |s| s.cpu_us),
                lessor_cpu_us: field(System::Lessor, |s| s.cpu_us),
                failed: ms.iter().map(|m| m.failed).sum(),
                systems,
                ratios,
            }
        })
        .collect()
}
