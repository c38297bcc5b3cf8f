//! Statistics: a phase's latencies into a measurement, measurements into summaries.

use std::collections::BTreeMap;
use std::time::Duration;

use super::phase::PhaseResult;
use super::report::{Measurement, Phase, Summary, System};

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
            let of = |s: System| ms.iter().filter(move |m| m.system == s).copied().collect::<Vec<_>>();
            let (raw, les) = (of(System::Raw), of(System::Lessor));
            let ratios: Vec<f64> = raw
                .iter()
                .zip(&les)
                .filter(|(r, _)| r.throughput() > 0.0)
                .map(|(r, l)| l.throughput() / r.throughput())
                .collect();
            let med = |v: &[&Measurement], f: fn(&Measurement) -> f64| median(v.iter().map(|m| f(m)).collect());
            let max = |v: &[&Measurement]| v.iter().map(|m| m.max_ms).fold(0.0, f64::max);
            Summary {
                set: key.0.clone(),
                phase: key.1,
                concurrency: key.2,
                raw_per_s: med(&raw, Measurement::throughput),
                lessor_per_s: med(&les, Measurement::throughput),
                ratio: median(ratios.clone()),
                ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratio_max: ratios.iter().copied().fold(0.0, f64::max),
                raw_p50_ms: med(&raw, |m| m.p50_ms),
                raw_p99_ms: med(&raw, |m| m.p99_ms),
                raw_max_ms: max(&raw),
                lessor_p50_ms: med(&les, |m| m.p50_ms),
                lessor_p99_ms: med(&les, |m| m.p99_ms),
                lessor_max_ms: max(&les),
                events_per_fsync: med(&les, |m| m.events_per_fsync.unwrap_or(0.0)),
                raw_cpu_us: med(&raw, |m| m.cpu_us_per_op),
                lessor_cpu_us: med(&les, |m| m.cpu_us_per_op),
                failed: ms.iter().map(|m| m.failed).sum(),
            }
        })
        .collect()
}
