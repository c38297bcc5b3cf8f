//! What `lessor-bench http` reports: per-round measurements, per-concurrency
//! summaries (lessor against OpenBao), the HTTP layer's CPU, the table, the CSVs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::args::Side;
use super::overhead::OverheadMeasurement;
use crate::loadgen::stats::median;

/// One measured round: one side, one concurrency.
#[derive(Clone, Debug)]
pub struct HttpMeasurement {
    pub side: Side,
    pub clients: usize,
    pub round: usize,
    pub ok: usize,
    pub failed: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The server process's CPU (user + system) per issue, µs.
    pub server_cpu_us: f64,
    /// Issued usernames not found in pg_roles right after the round (should be 0).
    pub missing_users: usize,
    /// Revocations after the round that failed, and the round's users still
    /// present after them (both should be 0).
    pub revoke_failed: usize,
    pub users_left: usize,
    /// Connections the server closed and the client opened again.
    pub reconnects: usize,
    pub first_error: Option<String>,
}

impl HttpMeasurement {
    pub fn per_s(&self) -> f64 {
        if self.seconds > 0.0 { self.ok as f64 / self.seconds } else { 0.0 }
    }
}

/// One side at one concurrency, over its rounds (medians).
#[derive(Clone, Debug, Default)]
pub struct SideSummary {
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_cpu_us: f64,
}

/// One concurrency.
#[derive(Clone, Debug)]
pub struct HttpSummary {
    pub clients: usize,
    pub lessor: Option<SideSummary>,
    pub bao: Option<SideSummary>,
    /// lessor/bao throughput of each round pair: median, min, max.
    pub ratio: Option<(f64, f64, f64)>,
    pub failed: usize,
}

/// The HTTP layer's CPU on one path at one concurrency.
#[derive(Clone, Debug)]
pub struct OverheadSummary {
    pub path: String,
    pub clients: usize,
    /// Medians over rounds, µs of CPU per request.
    pub in_process_cpu_us: f64,
    pub http_cpu_us: f64,
    /// Median of the per-round-pair differences (http − in-process).
    pub overhead_us: f64,
    pub overhead_min_us: f64,
    pub overhead_max_us: f64,
    pub in_process_per_s: f64,
    pub http_per_s: f64,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct HttpReport {
    pub measurements: Vec<HttpMeasurement>,
    pub summaries: Vec<HttpSummary>,
    pub overhead: Vec<OverheadMeasurement>,
    pub overhead_summaries: Vec<OverheadSummary>,
    /// Versions, settings, machine and load, for the record.
    pub conditions: String,
    /// Roles of this run still present after cleanup (should be empty).
    pub leftover_roles: Vec<String>,
    pub csv_path: PathBuf,
    pub overhead_csv_path: PathBuf,
}

pub(crate) fn summarize(measurements: &[HttpMeasurement]) -> Vec<HttpSummary> {
    let mut by_clients: BTreeMap<usize, Vec<&HttpMeasurement>> = BTreeMap::new();
    for m in measurements {
        by_clients.entry(m.clients).or_default().push(m);
    }
    by_clients
        .into_iter()
        .map(|(clients, ms)| {
            let side = |s: Side| {
                let mut of: Vec<&HttpMeasurement> = ms.iter().copied().filter(|m| m.side == s).collect();
                of.sort_by_key(|m| m.round);
                of
            };
            let (les, bao) = (side(Side::Lessor), side(Side::Bao));
            let summary = |v: &[&HttpMeasurement]| {
                (!v.is_empty()).then(|| SideSummary {
                    per_s: median(v.iter().map(|m| m.per_s()).collect()),
                    p50_ms: median(v.iter().map(|m| m.p50_ms).collect()),
                    p99_ms: median(v.iter().map(|m| m.p99_ms).collect()),
                    server_cpu_us: median(v.iter().map(|m| m.server_cpu_us).collect()),
                })
            };
            let ratios: Vec<f64> =
                les.iter().zip(&bao).filter(|(_, b)| b.per_s() > 0.0).map(|(l, b)| l.per_s() / b.per_s()).collect();
            let ratio = (!ratios.is_empty()).then(|| {
                let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                let max = ratios.iter().copied().fold(0.0, f64::max);
                (median(ratios), min, max)
            });
            HttpSummary {
                clients,
                lessor: summary(&les),
                bao: summary(&bao),
                ratio,
                failed: ms.iter().map(|m| m.failed).sum(),
            }
        })
        .collect()
}

pub(crate) fn summarize_overhead(measurements: &[OverheadMeasurement]) -> Vec<OverheadSummary> {
    let mut groups: BTreeMap<(String, usize), Vec<&OverheadMeasurement>> = BTreeMap::new();
    let mut order = Vec::new();
    for m in measurements {
        let key = (m.path.clone(), m.clients);
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(m);
    }
    order
        .into_iter()
        .map(|key| {
            let ms = &groups[&key];
            let way = |w: &str| {
                let mut v: Vec<&OverheadMeasurement> = ms.iter().copied().filter(|m| m.way == w).collect();
                v.sort_by_key(|m| m.round);
                v
            };
            let (inp, http) = (way("in-process"), way("http"));
            let diffs: Vec<f64> = inp.iter().zip(&http).map(|(i, h)| h.cpu_us - i.cpu_us).collect();
            OverheadSummary {
                path: key.0.clone(),
                clients: key.1,
                in_process_cpu_us: median(inp.iter().map(|m| m.cpu_us).collect()),
                http_cpu_us: median(http.iter().map(|m| m.cpu_us).collect()),
                overhead_us: median(diffs.clone()),
                overhead_min_us: diffs.iter().copied().fold(f64::INFINITY, f64::min),
                overhead_max_us: diffs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                in_process_per_s: median(inp.iter().map(|m| m.per_s()).collect()),
                http_per_s: median(http.iter().map(|m| m.per_s()).collect()),
            }
        })
        .collect()
}

impl HttpReport {
    /// The table `lessor-bench http` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.conditions);
        let _ = writeln!(
            out,
            "{:>2} | {:>8} {:>8} | {:>5} {:>13} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} | {:>4}",
            "c",
            "lessor/s",
            "bao/s",
            "ratio",
            "(min–max)",
            "les50",
            "les99",
            "lesCPU",
            "bao50",
            "bao99",
            "baoCPU",
            "fail"
        );
        let num = |v: Option<f64>, prec: usize| v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"));
        for s in &self.summaries {
            let (l, b) = (s.lessor.as_ref(), s.bao.as_ref());
            let _ = writeln!(
                out,
                "{:>2} | {:>8} {:>8} | {:>5} {:>13} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} | {:>4}",
                s.clients,
                num(l.map(|l| l.per_s), 1),
                num(b.map(|b| b.per_s), 1),
                num(s.ratio.map(|r| r.0), 2),
                s.ratio.map_or_else(|| "-".into(), |r| format!("{:.2}–{:.2}", r.1, r.2)),
                num(l.map(|l| l.p50_ms), 2),
                num(l.map(|l| l.p99_ms), 2),
                num(l.map(|l| l.server_cpu_us), 0),
                num(b.map(|b| b.p50_ms), 2),
                num(b.map(|b| b.p99_ms), 2),
                num(b.map(|b| b.server_cpu_us), 0),
                s.failed
            );
        }
        let _ = writeln!(
            out,
            "issues/s: median over rounds; ratio = lessor/bao per round pair; latencies in ms (median over rounds of \
             each round's p50/p99); CPU = the server process's µs (user + system) per issue"
        );
        if !self.overhead_summaries.is_empty() {
            let _ = writeln!(
                out,
                "\nHTTP layer: CPU per request, in-process (Engine::request) vs through lessor server\n{:<28} {:>2} | \
                 {:>8} {:>8} | {:>8} {:>15} | {:>8} {:>8}",
                "path", "c", "inproc", "http", "overhead", "(min–max)", "inproc/s", "http/s"
            );
            for s in &self.overhead_summaries {
                let _ = writeln!(
                    out,
                    "{:<28} {:>2} | {:>8.1} {:>8.1} | {:>8.1} {:>15} | {:>8.0} {:>8.0}",
                    s.path,
                    s.clients,
                    s.in_process_cpu_us,
                    s.http_cpu_us,
                    s.overhead_us,
                    format!("{:.1}–{:.1}", s.overhead_min_us, s.overhead_max_us),
                    s.in_process_per_s,
                    s.http_per_s
                );
            }
            let _ = writeln!(
                out,
                "µs of CPU per request (medians over rounds): inproc = this process (getrusage), http = the server \
                 process (/proc/<pid>/stat); overhead = http − inproc per round pair"
            );
        }
        out
    }
}

/// One line per measured round.
pub fn csv(measurements: &[HttpMeasurement]) -> String {
    let mut out = String::from(
        "side,clients,round,ok,failed,seconds,per_second,p50_ms,p99_ms,max_ms,server_cpu_us_per_issue,missing_users,\
         revoke_failed,users_left,reconnects,first_error\n",
    );
    for m in measurements {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.4},{:.2},{:.3},{:.3},{:.3},{:.1},{},{},{},{},{}",
            m.side.name(),
            m.clients,
            m.round,
            m.ok,
            m.failed,
            m.seconds,
            m.per_s(),
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.server_cpu_us,
            m.missing_users,
            m.revoke_failed,
            m.users_left,
            m.reconnects,
            m.first_error.as_deref().unwrap_or("").replace([',', '\n'], " ")
        );
    }
    out
}

/// One line per overhead round.
pub fn overhead_csv(measurements: &[OverheadMeasurement]) -> String {
    let mut out = String::from("path,way,clients,round,requests,failed,seconds,per_second,cpu_us_per_request\n");
    for m in measurements {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.4},{:.1},{:.2}",
            m.path,
            m.way,
            m.clients,
            m.round,
            m.requests,
            m.failed,
            m.seconds,
            m.per_s(),
            m.cpu_us
        );
    }
    out
}
