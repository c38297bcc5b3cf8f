//! ACL checks: `Acl::capabilities` over a token holding 100 policies × 50 path
//! rules (exact paths, `prefix/*` globs, `+` patterns), for paths that hit an
//! exact rule, a glob, a `+` pattern, or nothing. Budget: ≤ 2 µs per check.
//! Also: compiling those policies into an `Acl`, and parsing one policy.
//!
//! Run: `cargo bench -p lessor-benches --bench auth`

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lessor_benches as _; // the allocator every bench runs on
use lessor_engine::auth::policy::{Acl, Capabilities, Policy, parse_policy};

const POLICIES: usize = 100;
const RULES_PER_POLICY: usize = 50;

/// Policy `p`: 30 exact paths, 14 globs, 5 `+` patterns and one shared glob
/// deny, rendered as HCL. Deterministic.
fn policy_text(p: usize) -> String {
    let caps =
        ["\"read\"", "\"read\", \"list\"", "\"create\", \"update\"", "\"update\"", "\"read\", \"update\", \"sudo\""];
    let mut text = String::new();
    for r in 0..RULES_PER_POLICY {
        let pattern = match r {
            0..10 => format!("database/creds/app-{p}-{r}"),
            10..20 => format!("kv/data/team-{p}/svc-{r}"),
            20..30 => format!("sys/leases/lookup/database/creds/app-{p}-{r}"),
            30..37 => format!("kv/data/team-{p}/proj-{r}/*"),
            37..41 => format!("database-{}/creds/role-{r}*", p % 10),
            41..44 => format!("secret/team-{p}/{r}/*"),
            44 => format!("secret/team-{p}/*"),
            45 | 46 => format!("kv/+/team-{p}/shared-{r}"),
            47 => format!("database/+/app-{p}-{r}"),
            48 => format!("secret/+/team-{p}/+/cfg-{r}"),
            _ => format!("transit/+/key-{}/*", p % 20),
        };
        let caps = if r == 44 && p.is_multiple_of(10) { "\"deny\"" } else { caps[(p + r) % caps.len()] };
        text.push_str(&format!("path \"{pattern}\" {{\n  capabilities = [{caps}]\n}}\n\n"));
    }
    text
}

fn policies() -> Vec<Policy> {
    (0..POLICIES).map(|p| parse_policy(&format!("policy-{p}"), &policy_text(p)).expect("bench policy parses")).collect()
}

/// Request paths of each kind, spread over the policies.
fn paths(kind: &str) -> Vec<String> {
    (0..POLICIES)
        .map(|p| {
            let r = p % 10;
            match kind {
                "exact" => format!("database/creds/app-{p}-{r}"),
                "glob" => format!("kv/data/team-{p}/proj-{}/deep/path/x", 30 + r % 7),
                "plus" => format!("secret/ns-{r}/team-{p}/env-{r}/cfg-48"),
                "miss" => match p % 3 {
                    0 => format!("kv/data/team-{p}/other/x"),
                    1 => format!("database/creds/unknown-{p}"),
                    _ => format!("nothing/here/{p}"),
                },
                _ => unreachable!(),
            }
        })
        .collect()
}

fn capabilities(c: &mut Criterion) {
    let policies = policies();
    let acl = Acl::new(&policies);
    let kinds = ["exact", "glob", "plus", "miss"];
    // The generator must produce what the kinds claim.
    for kind in kinds {
        for path in paths(kind) {
            let granted = acl.capabilities(&path);
            assert_eq!(granted.is_empty(), kind == "miss", "{kind} {path}: {granted}");
        }
    }
    let mut mix: Vec<String> = kinds.iter().flat_map(|k| paths(k)).collect();
    // Interleave kinds so the mix is not four sorted runs.
    mix.sort_by_key(|p| p.len() * 31 % 97);

    let mut g = c.benchmark_group("acl_capabilities");
    g.throughput(Throughput::Elements(1));
    for kind in kinds.iter().copied().chain(["mix"]) {
        let paths = if kind == "mix" { mix.clone() } else { paths(kind) };
        g.bench_function(BenchmarkId::new(format!("{POLICIES}x{RULES_PER_POLICY}"), kind), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % paths.len();
                black_box(acl.capabilities(black_box(&paths[i])))
            })
        });
    }
    g.finish();

    // A plain figure alongside criterion's, for the README.
    let rounds = 20_000;
    let start = Instant::now();
    let mut denied = 0usize;
    for _ in 0..rounds {
        for path in &mix {
            denied += usize::from(!acl.allows(black_box(path), Capabilities::READ));
        }
    }
    let per_check = start.elapsed().as_nanos() as f64 / (rounds * mix.len()) as f64;
    black_box(denied);
    println!(
        "acl: {POLICIES} policies x {RULES_PER_POLICY} rules, mixed paths: {per_check:.0} ns per check (budget 2000 ns)"
    );
}

fn compile(c: &mut Criterion) {
    let policies = policies();
    let mut g = c.benchmark_group("acl_compile");
    g.sample_size(20).throughput(Throughput::Elements((POLICIES * RULES_PER_POLICY) as u64));
    g.bench_function(BenchmarkId::new("rules", POLICIES * RULES_PER_POLICY), |b| {
        b.iter(|| Acl::new(black_box(&policies)))
    });
    g.finish();

    let text = policy_text(7);
    let mut g = c.benchmark_group("policy_parse");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function(BenchmarkId::new("hcl_rules", RULES_PER_POLICY), |b| {
        b.iter(|| parse_policy("p", black_box(&text)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, capabilities, compile);
criterion_main!(benches);
