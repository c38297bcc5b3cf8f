//! The measured rounds: per statement set and concurrency a warm-up, then rounds
//! of every selected system, in an order reversed every round (ABBA: A B C D,
//! D C B A, A B C D, …), so a drift over the run falls on all of them alike.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lessor_engine::plugin::postgres::{PasswordAuthentication, PostgresPlugin};
use lessor_engine::text::password::PasswordPolicy;
use lessor_engine::{EXPIRER_GRACE_DEFAULT, Engine, EngineOptions, Expirer};

use super::api::{ApiServer, ApiTarget};
use super::args::LoadgenArgs;
use super::lessor::{Lessor, configure, log_counts, plugin_factory, plugin_settings};
use super::naive::{NaivePool, NaiveRaw};
use super::phase::{Target, run_phase};
use super::raw::Raw;
use super::report::{Measurement, Phase, System};
use super::server::{Server, connect, prepare};
use super::statements::StatementSet;
use super::stats::measurement;

/// A system under test for one statement set.
pub(crate) enum Sut {
    Raw(Raw),
    Naive(NaiveRaw),
    Lessor(Lessor),
    Api(ApiTarget),
}

impl Target for Sut {
    async fn issue(&self) -> Result<String, String> {
        match self {
            Sut::Raw(t) => t.issue().await,
            Sut::Naive(t) => t.issue().await,
            Sut::Lessor(t) => t.issue().await,
            Sut::Api(t) => t.issue().await,
        }
    }

    async fn revoke(&self, handle: String) -> Result<(), String> {
        match self {
            Sut::Raw(t) => t.revoke(handle).await,
            Sut::Naive(t) => t.revoke(handle).await,
            Sut::Lessor(t) => t.revoke(handle).await,
            Sut::Api(t) => t.revoke(handle).await,
        }
    }
}

impl Sut {
    /// Transactions the raw client ran again after a collision, so far.
    fn retries(&self) -> u64 {
        match self {
            Sut::Raw(t) => t.retries(),
            Sut::Naive(t) => t.pool.retries(),
            Sut::Lessor(_) | Sut::Api(_) => 0,
        }
    }

    /// CPU of the server process so far, for a server this run started.
    fn server_cpu(&self) -> Option<Duration> {
        match self {
            Sut::Api(t) => t.server.cpu(),
            _ => None,
        }
    }
}

/// The raw baseline's client, shared by the statement sets.
enum RawClient {
    Plugin(Arc<PostgresPlugin>),
    Naive(Arc<NaivePool>),
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_sets(
    args: &LoadgenArgs,
    systems: &[System],
    server: &Server,
    run_id: &str,
    sets: &[StatementSet],
    data_dir: &Path,
    workers: usize,
    api: &[Arc<ApiServer>],
) -> Result<(Vec<Measurement>, String), String> {
    let admin = connect(&server.config).await?;
    let version = admin
        .query_one("SHOW server_version", &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .map_err(|e| format!("SHOW server_version: {e}"))?;
    let fsync = admin.query_one("SHOW fsync", &[]).await.map(|r| r.get::<_, String>(0)).unwrap_or_else(|_| "?".into());
    prepare(&admin, sets).await?;

    let mode = if args.password_authentication == "scram-sha-256" {
        PasswordAuthentication::ScramSha256
    } else {
        PasswordAuthentication::Password
    };
    // lessor in this process, when measured.
    let lessor = if systems.contains(&System::Lessor) {
        let mut options = EngineOptions::default();
        if args.grants == "retry" || args.intent_overlap == "off" {
            options.plugin_factory = Some(plugin_factory(server, workers, mode, args)?);
        }
        let (engine, root) =
            Engine::init(data_dir, options).map_err(|e| format!("lessor init in {}: {e}", data_dir.display()))?;
        let engine = Arc::new(engine);
        let expirer = Expirer::spawn(engine.clone(), &tokio::runtime::Handle::current(), None);
        Some((engine, expirer, root.expose().to_string()))
    } else {
        None
    };
    let result = async {
        let app_token = match &lessor {
            Some((engine, _, root)) => Some(configure(engine, root, server, run_id, sets, workers, args).await?),
            None => None,
        };
        let progress = progress_bar(args, sets.len(), systems.len());
        let mut measurements = Vec::new();
        // One client (one pool) for the run, as lessor has one connection for it.
        let raw_client = if !systems.contains(&System::Raw) {
            None
        } else if args.raw_client == "naive" {
            let url = server.admin_connection_url()?;
            let serialize = args.grants == "serialize";
            Some(RawClient::Naive(Arc::new(NaivePool::new(&url, workers, serialize, mode, args.scram_iterations)?)))
        } else {
            Some(RawClient::Plugin(Arc::new(
                PostgresPlugin::new(&plugin_settings(server, workers, mode, args)?)
                    .map_err(|e| format!("raw: building the PostgreSQL plugin: {e}"))?,
            )))
        };
        for set in sets {
            let mut targets: Vec<(System, Arc<Sut>)> = Vec::new();
            for &system in systems {
                let sut = match system {
                    System::Raw => match raw_client.as_ref().expect("raw is measured") {
                        RawClient::Plugin(plugin) => Sut::Raw(Raw {
                            plugin: plugin.clone(),
                            set: set.clone(),
                            run_id: run_id.to_string(),
                            policy: PasswordPolicy::default(),
                        }),
                        RawClient::Naive(pool) => Sut::Naive(NaiveRaw {
                            pool: pool.clone(),
                            set: set.clone(),
                            run_id: run_id.to_string(),
                            policy: PasswordPolicy::default(),
                        }),
                    },
                    System::Lessor => Sut::Lessor(Lessor {
                        engine: lessor.as_ref().expect("lessor is measured").0.clone(),
                        token: app_token.clone().expect("lessor is configured"),
                        creds_path: format!("database/creds/{}", set.name),
                    }),
                    System::OpenBao | System::LessorHttp => {
                        let server = api
                            .iter()
                            .find(|s| s.system == system)
                            .ok_or_else(|| format!("{}: no server was started or given for it", system.name()))?;
                        Sut::Api(ApiTarget::new(server.clone(), set))
                    }
                };
                targets.push((system, Arc::new(sut)));
            }
            let engine = lessor.as_ref().map(|(engine, _, _)| engine.clone());
            let log = |system: System| match (&engine, system) {
                (Some(engine), System::Lessor) => Some(log_counts(engine)),
                _ => None,
            };
            for &c in &args.concurrency {
                // Warm-up, not measured: pools open their connections, caches fill.
                for (system, sut) in &targets {
                    let n = 2 * c;
                    let issued = run_phase(sut, Phase::Issue, c, n, Vec::new(), &progress).await;
                    if let Some(e) = &issued.first_error {
                        return Err(format!("{} {} warm-up issue failed: {e}", set.name, system.name()));
                    }
                    let handles = issued.handles;
                    let revoked = run_phase(sut, Phase::Revoke, c, handles.len(), handles, &progress).await;
                    if let Some(e) = &revoked.first_error {
                        return Err(format!("{} {} warm-up revoke failed: {e}", set.name, system.name()));
                    }
                }
                for round in 0..args.rounds {
                    // ABBA: the systems in order in even rounds, reversed in odd ones.
                    let mut order: Vec<&(System, Arc<Sut>)> = targets.iter().collect();
                    if round % 2 == 1 {
                        order.reverse();
                    }
                    for (system, sut) in order {
                        let system = *system;
                        progress.set_message(format!("{} c={c} round {} {}", set.name, round + 1, system.name()));
                        let (retries_before, log_before, cpu_before) = (sut.retries(), log(system), sut.server_cpu());
                        let issued = run_phase(sut, Phase::Issue, c, args.per_round, Vec::new(), &progress).await;
                        let (retries_mid, log_mid, cpu_mid) = (sut.retries(), log(system), sut.server_cpu());
                        let per_fsync = |before: Option<(u64, u64)>, after: Option<(u64, u64)>| match (before, after) {
                            (Some((e0, s0)), Some((e1, s1))) if s1 > s0 => Some((e1 - e0) as f64 / (s1 - s0) as f64),
                            _ => None,
                        };
                        let spent = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
                        let (m, handles) = measurement(
                            &set.name,
                            Phase::Issue,
                            c,
                            system,
                            round,
                            issued,
                            per_fsync(log_before, log_mid),
                            retries_mid - retries_before,
                            spent(cpu_before, cpu_mid),
                        );
                        measurements.push(m);
                        let revoked = run_phase(sut, Phase::Revoke, c, handles.len(), handles, &progress).await;
                        let (retries_after, log_after, cpu_after) = (sut.retries(), log(system), sut.server_cpu());
                        let (m, _) = measurement(
                            &set.name,
                            Phase::Revoke,
                            c,
                            system,
                            round,
                            revoked,
                            per_fsync(log_mid, log_after),
                            retries_after - retries_mid,
                            spent(cpu_mid, cpu_after),
                        );
                        measurements.push(m);
                    }
                }
            }
        }
        progress.finish_and_clear();
        Ok(measurements)
    }
    .await;
    if let Some((engine, expirer, _)) = lessor {
        expirer.stop(EXPIRER_GRACE_DEFAULT).await;
        match Arc::into_inner(engine) {
            Some(engine) => engine.close(),
            None => return Err("the engine is still in use after the run".into()),
        }
    }
    let mut conditions = format!(
        "PostgreSQL {version} (fsync {fsync}); {} CPUs; {} per round, {} rounds per system (ABBA); password_authentication {}{}; grants: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.per_round,
        args.rounds,
        args.password_authentication,
        if mode == PasswordAuthentication::ScramSha256 {
            format!(" ({} iterations)", args.scram_iterations)
        } else {
            String::new()
        },
        args.grants,
    );
    if systems.contains(&System::Raw) {
        conditions.push_str(&format!("; raw client {}", args.raw_client));
    }
    if systems.contains(&System::Lessor) {
        conditions.push_str(&format!("; intent overlap {}; lessor log in {}", args.intent_overlap, data_dir.display()));
    }
    result.map(|m| (m, conditions))
}

fn progress_bar(args: &LoadgenArgs, sets: usize, systems: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if args.no_progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    // Issue and revoke of every system: 2c each at warm-up, per_round per round.
    let warmup: usize = args.concurrency.iter().map(|c| systems * 2 * 2 * c).sum();
    let total = sets * (warmup + args.concurrency.len() * args.rounds * systems * 2 * args.per_round);
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ops, {per_sec}, eta {eta}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
