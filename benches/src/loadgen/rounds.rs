//! The measured rounds: per statement set and concurrency a warm-up, then rounds
//! of both systems in ABBA order.

use std::path::Path;
use std::sync::Arc;

use lessor_engine::plugin::postgres::{PasswordAuthentication, PostgresPlugin};
use lessor_engine::text::password::PasswordPolicy;
use lessor_engine::{EXPIRER_GRACE_DEFAULT, Engine, EngineOptions, Expirer};

use super::args::LoadgenArgs;
use super::lessor::{Lessor, configure, log_counts, plugin_factory, plugin_settings};
use super::phase::run_phase;
use super::raw::Raw;
use super::report::{Measurement, Phase, System};
use super::server::{Server, connect, prepare};
use super::statements::StatementSet;
use super::stats::measurement;

pub(crate) async fn run_sets(
    args: &LoadgenArgs,
    server: &Server,
    run_id: &str,
    sets: &[StatementSet],
    data_dir: &Path,
    workers: usize,
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
    let mut options = EngineOptions::default();
    if args.grants == "retry" || args.intent_overlap == "off" {
        options.plugin_factory = Some(plugin_factory(server, workers, mode, args)?);
    }
    let (engine, root) =
        Engine::init(data_dir, options).map_err(|e| format!("lessor init in {}: {e}", data_dir.display()))?;
    let engine = Arc::new(engine);
    let expirer = Expirer::spawn(engine.clone(), &tokio::runtime::Handle::current(), None);
    let root = root.expose().to_string();
    let result = async {
        let app_token = configure(&engine, &root, server, run_id, sets, workers, args).await?;
        let progress = progress_bar(args, sets.len());
        let mut measurements = Vec::new();
        // One plugin (one pool) for the run, as lessor has one connection for it.
        let raw_plugin = Arc::new(
            PostgresPlugin::new(&plugin_settings(server, workers, mode, args)?)
                .map_err(|e| format!("raw: building the PostgreSQL plugin: {e}"))?,
        );
        for set in sets {
            let raw = Arc::new(Raw {
                plugin: raw_plugin.clone(),
                set: set.clone(),
                run_id: run_id.to_string(),
                policy: PasswordPolicy::default(),
            });
            let lessor = Arc::new(Lessor {
                engine: engine.clone(),
                token: app_token.clone(),
                creds_path: format!("database/creds/{}", set.name),
            });
            for &c in &args.concurrency {
                // Warm-up, not measured: lessor's pool opens its connections, caches fill.
                for system in [System::Raw, System::Lessor] {
                    let n = 2 * c;
                    let issued = match system {
                        System::Raw => run_phase(&raw, Phase::Issue, c, n, Vec::new(), &progress).await,
                        System::Lessor => run_phase(&lessor, Phase::Issue, c, n, Vec::new(), &progress).await,
                    };
                    if let Some(e) = &issued.first_error {
                        return Err(format!("{} {} warm-up issue failed: {e}", set.name, system.name()));
                    }
                    let handles = issued.handles;
                    let revoked = match system {
                        System::Raw => run_phase(&raw, Phase::Revoke, c, handles.len(), handles, &progress).await,
                        System::Lessor => run_phase(&lessor, Phase::Revoke, c, handles.len(), handles, &progress).await,
                    };
                    if let Some(e) = &revoked.first_error {
                        return Err(format!("{} {} warm-up revoke failed: {e}", set.name, system.name()));
                    }
                }
                for round in 0..args.rounds {
                    // ABBA: raw first in even pairs of slots, lessor first in odd ones.
                    let order =
                        if round % 2 == 0 { [System::Raw, System::Lessor] } else { [System::Lessor, System::Raw] };
                    for system in order {
                        progress.set_message(format!("{} c={c} round {} {}", set.name, round + 1, system.name()));
                        let retries_before = raw.retries();
                        let log_before = log_counts(&engine);
                        let issued = match system {
                            System::Raw => {
                                run_phase(&raw, Phase::Issue, c, args.per_round, Vec::new(), &progress).await
                            }
                            System::Lessor => {
                                run_phase(&lessor, Phase::Issue, c, args.per_round, Vec::new(), &progress).await
                            }
                        };
                        let log_mid = log_counts(&engine);
                        let retries_mid = raw.retries();
                        let per_fsync = |(e0, s0): (u64, u64), (e1, s1): (u64, u64)| {
                            (system == System::Lessor && s1 > s0).then(|| (e1 - e0) as f64 / (s1 - s0) as f64)
                        };
                        let (m, handles) = measurement(
                            &set.name,
                            Phase::Issue,
                            c,
                            system,
                            round,
                            issued,
                            per_fsync(log_before, log_mid),
                            retries_mid - retries_before,
                        );
                        measurements.push(m);
                        let revoked = match system {
                            System::Raw => run_phase(&raw, Phase::Revoke, c, handles.len(), handles, &progress).await,
                            System::Lessor => {
                                run_phase(&lessor, Phase::Revoke, c, handles.len(), handles, &progress).await
                            }
                        };
                        let log_after = log_counts(&engine);
                        let retries_after = raw.retries();
                        let (m, _) = measurement(
                            &set.name,
                            Phase::Revoke,
                            c,
                            system,
                            round,
                            revoked,
                            per_fsync(log_mid, log_after),
                            retries_after - retries_mid,
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
    expirer.stop(EXPIRER_GRACE_DEFAULT).await;
    match Arc::into_inner(engine) {
        Some(engine) => engine.close(),
        None => return Err("the engine is still in use after the run".into()),
    }
    let conditions = format!(
        "PostgreSQL {version} (fsync {fsync}); {} CPUs; {} per round, {} rounds per system (ABBA); password_authentication {}{}; grants: {}; intent overlap {}; lessor log in {}",
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
        args.intent_overlap,
        data_dir.display()
    );
    result.map(|m| (m, conditions))
}

fn progress_bar(args: &LoadgenArgs, sets: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if args.no_progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let warmup: usize = args.concurrency.iter().map(|c| 2 * 2 * 2 * c).sum();
    let total = sets * (warmup + args.concurrency.len() * args.rounds * 2 * 2 * args.per_round);
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ops, {per_sec}, eta {eta}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
