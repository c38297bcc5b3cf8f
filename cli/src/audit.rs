//! `lessor audit …`: forensic tools over the log. They need no master key (except
//! `audit hash`, `audit log --token-secret` and `audit checkpoint --head`, which
//! use the engine's key) and never take the directory lock, so they run beside a
//! live engine. Long scans show a progress bar when stderr is a terminal.

use std::io::{BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lessor_engine::LogStore;
use lessor_engine::audit::{self, Filter, ReplayOptions, SignedCheckpoint, VerifyOptions};
use lessor_engine::event::Outcome;

use crate::session::Location;
use crate::term::{self, errln};

/// Forensic replay over a data directory.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// An instant: RFC 3339 (`2026-11-25T10:00:00Z`) or Unix seconds.
fn instant(text: &str) -> Result<i64, String> {
    audit::time::parse_instant(text).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk every segment: crcs, the hash chain, every signed checkpoint. Exits 2
    /// on any damage, naming the file, byte offset and LSN.
    Verify {
        /// A checkpoint exported earlier (`audit checkpoint`): prove the history up
        /// to it is unchanged.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The engine's public key, kept off the host (`audit checkpoint
        /// --public-key` prints it; hex or the verifier key): the log must be
        /// signed by it, so a log rewritten whole under another key fails.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the latest signed checkpoint (C2SP tlog-checkpoint) to keep off the host.
    Checkpoint {
        /// Write it to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the checkpoint public key (signed-note verifier key and hex) instead.
        #[arg(long)]
        public_key: bool,
        /// Sign the log's current head now instead (needs the master key).
        #[arg(long, conflicts_with = "public_key")]
        head: bool,
    },
    /// The timeline of matching events, one per line.
    Log(LogArgs),
    /// The leases live at an instant: owner, role, username, expiry.
    State {
        /// The instant: RFC 3339 or Unix seconds.
        #[arg(long, value_name = "T", value_parser = instant)]
        at: i64,
        #[arg(long)]
        json: bool,
        /// Replay from the log alone, ignoring snapshots.
        #[arg(long)]
        no_snapshots: bool,
    },
    /// What was issued, renewed, revoked and expired between two instants, and
    /// which roles and policies changed.
    Diff {
        /// The start (exclusive): RFC 3339 or Unix seconds.
        #[arg(value_name = "T1", value_parser = instant)]
        from: i64,
        /// The end (inclusive).
        #[arg(value_name = "T2", value_parser = instant)]
        to: i64,
        #[arg(long)]
        json: bool,
        /// Replay from the log alone, ignoring snapshots.
        #[arg(long)]
        no_snapshots: bool,
    },
    /// The lease, token, role and lifetime behind a database username.
    WhoHad {
        username: String,
        /// Only the lease that held it at this instant.
        #[arg(long, value_name = "T", value_parser = instant)]
        at: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// The `hmac-sha256:` form of a value under the engine's key, to search exports.
    Hash { value: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutcomeArg {
    Ok,
    Denied,
    Invalid,
    Error,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Events at or after T (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T", value_parser = instant)]
    since: Option<i64>,
    /// Events at or before T.
    #[arg(long, value_name = "T", value_parser = instant)]
    until: Option<i64>,
    /// A role (`app`) or mount and role (`database/app`).
    #[arg(long, value_name = "R")]
    role: Option<String>,
    /// One lease's events.
    #[arg(long, value_name = "ID")]
    lease: Option<String>,
    /// The leases that created this database username.
    #[arg(long, value_name = "U")]
    username: Option<String>,
    /// A token's events, requests and leases, by accessor.
    #[arg(long, value_name = "A")]
    accessor: Option<String>,
    /// The same by token secret, hashed here with the master key (never sent or
    /// stored). Not `--token`: that is the global flag for authenticating.
    #[arg(long, value_name = "T", hide_env_values = true)]
    token_secret: Option<String>,
    /// A path and what is below it (`database/roles`), or a prefix ending in `*`.
    #[arg(long, value_name = "P")]
    path: Option<String>,
    /// Only requests with this outcome.
    #[arg(long, value_enum, value_name = "O")]
    outcome: Option<OutcomeArg>,
    /// JSON lines: `lsn`, `ts`, `chain`, `kind`, `event`.
    #[arg(long)]
    jsonl: bool,
}

/// Runs one audit command against `data_dir`. `master_key_file` is the
/// `LESSOR_MASTER_KEY_FILE` the user gave, if any. `format_json` (the global
/// `-format=json`) means `--json`, and `--jsonl` for `audit log`.
pub fn run(location: &Location, format_json: bool, args: AuditArgs) -> Result<ExitCode, String> {
    let (data_dir, master_key_file) = (location.data_dir.as_path(), location.key_file.as_deref());
    let mut out = Out::new();
    let mut command = args.command;
    if format_json {
        match &mut command {
            AuditCommand::Verify { json, .. }
            | AuditCommand::State { json, .. }
            | AuditCommand::Diff { json, .. }
            | AuditCommand::WhoHad { json, .. } => *json = true,
            AuditCommand::Log(log) => log.jsonl = true,
            AuditCommand::Checkpoint { .. } | AuditCommand::Hash { .. } => {}
        }
    }
    if matches!(location.log_store, LogStore::PostgreSql(_)) && !matches!(command, AuditCommand::Verify { .. }) {
        return Err("with -log-url, only `lessor audit verify` reads a log in PostgreSQL so far; the other audit \
                    commands read a data directory's log"
            .into());
    }
    let result = match command {
        AuditCommand::Verify { checkpoint, public_key, json } => {
            verify(&mut out, location, checkpoint.as_deref(), public_key.as_deref(), json)
        }
        AuditCommand::Checkpoint { out: file, public_key, head } => {
            checkpoint(&mut out, data_dir, master_key_file, file.as_deref(), public_key, head)
        }
        AuditCommand::Log(log) => timeline(&mut out, data_dir, master_key_file, log),
        AuditCommand::State { at, json, no_snapshots } => state(&mut out, data_dir, at, json, no_snapshots),
        AuditCommand::Diff { from, to, json, no_snapshots } => diff(&mut out, data_dir, from, to, json, no_snapshots),
        AuditCommand::WhoHad { username, at, json } => who_had(&mut out, data_dir, &username, at, json),
        AuditCommand::Hash { value } => match audit::load_keys(data_dir, master_key_file) {
            Ok(keys) => out.line(&audit::hash_value(&keys, &value)).map(|()| ExitCode::SUCCESS),
            Err(e) => Err(Stop::Fail(format!("audit hash: {e}"))),
        },
    };
    match result.and_then(|code| out.flush().map(|()| code)) {
        Ok(code) => Ok(code),
        // A reader that stopped early (`| head`) is not an error.
        Err(Stop::Closed) => Ok(ExitCode::SUCCESS),
        Err(Stop::Fail(message)) => Err(message),
    }
}

/// Why a command stopped before its end.
#[derive(Debug)]
enum Stop {
    /// stdout was closed by the reader.
    Closed,
    Fail(String),
}

impl From<&str> for Stop {
    fn from(message: &str) -> Stop {
        Stop::Fail(message.to_string())
    }
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::Fail(message)
    }
}

/// Buffered stdout that tells a closed pipe from a real error. Everything in the
/// log was written by some caller, so no line reaches the terminal raw.
struct Out {
    w: BufWriter<std::io::Stdout>,
}

impl Out {
    fn new() -> Out {
        Out { w: BufWriter::with_capacity(1 << 16, std::io::stdout()) }
    }

    /// One line of text, escaped ([`term::escape`]): a value holding a newline,
    /// ESC or a bidi override shows as `\n`, `\x1b`, `\u{202e}`.
    fn line(&mut self, text: &str) -> Result<(), Stop> {
        writeln!(self.w, "{}", term::escape(text)).map_err(stop)
    }

    /// JSON text (one JSON line, or a pretty document), kept valid JSON
    /// ([`term::json_safe`]).
    fn json(&mut self, text: String) -> Result<(), Stop> {
        writeln!(self.w, "{}", term::json_safe(text)).map_err(stop)
    }

    fn flush(&mut self) -> Result<(), Stop> {
        self.w.flush().map_err(stop)
    }
}

fn stop(e: std::io::Error) -> Stop {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        term::stdout_closed();
        Stop::Closed
    } else {
        Stop::Fail(format!("cannot write: {e}"))
    }
}

/// A byte progress bar on stderr, only when stderr is a terminal.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(what: &'static str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        // Hidden until the first report brings the total, so it never flashes 0/0.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what);
        Bar(Some(bar))
    }

    fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            if bar.length().is_none() {
                bar.set_length(total);
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            bar.set_position(done);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn ts(ms: i64) -> String {
    audit::time::rfc3339_ms(ms)
}

fn json_line(out: &mut Out, value: &impl serde::Serialize) -> Result<ExitCode, Stop> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Stop::Fail(e.to_string()))?;
    out.json(text).map(|()| ExitCode::SUCCESS)
}

fn verify(
    out: &mut Out,
    location: &Location,
    checkpoint: Option<&Path>,
    public_key: Option<&str>,
    json: bool,
) -> Result<ExitCode, Stop> {
    let public_key = public_key
        .map(|text| audit::checkpoint::parse_public_key(text).map_err(|e| format!("--public-key: {e}")))
        .transpose()?;
    let exported = match checkpoint {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the checkpoint {}: {e}", file.display()))?;
            Some(SignedCheckpoint::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?)
        }
        None => None,
    };
    let bar = Bar::new("verifying");
    let mut progress = |done, total| bar.update(done, total);
    let options = VerifyOptions { exported: exported.as_ref(), public_key, progress: Some(&mut progress) };
    let result = match &location.log_store {
        // The stream's rows, read without taking the stream.
        LogStore::PostgreSql(pg) => {
            let storage =
                lessor_engine::log::postgres::open_reader(&pg.url, &pg.stream).map_err(|e| format!("-log-url: {e}"))?;
            audit::verify_storage(storage, &format!("stream {}", pg.stream), options)
        }
        _ => audit::verify(&location.data_dir, options),
    };
    drop(bar);
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            if json {
                json_line(out, &serde_json::json!({ "ok": false, "error": e.to_string() }))?;
            }
            out.flush()?;
            errln!("FAILED: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if json {
        let mut value = serde_json::to_value(&report).map_err(|e| Stop::Fail(e.to_string()))?;
        value["ok"] = true.into();
        return json_line(out, &value);
    }
    let mib = report.bytes as f64 / (1024.0 * 1024.0);
    out.line(&format!(
        "OK: {} segments, {} records, {} signed checkpoints, {mib:.1} MiB: every crc, the hash chain and every \
         checkpoint signature verify",
        report.segments, report.records, report.checkpoints
    ))?;
    if let Some(last) = report.last_ts_ms {
        out.line(&format!("last record: LSN {} at {}, chain {}", report.last_lsn, ts(last), hex(&report.last_chain)))?;
    }
    if let Some(key) = report.public_key {
        out.line(&format!("checkpoint key: {}", audit::checkpoint::verifier_key(&key)))?;
    }
    if let Some(latest) = &report.latest_checkpoint {
        out.line(&format!("latest checkpoint: LSN {} at {}", latest.lsn, ts(latest.ts_ms)))?;
    }
    match report.proven_lsn {
        Some(lsn) => out.line(&format!(
            "batch proof: LSN {lsn} verifies{}: every record up to it was written by the key holder",
            if public_key.is_some() { " under the pinned key" } else { "" }
        ))?,
        None => out.line("batch proof: none (a log written before format 2): only checkpoints sign its history")?,
    }
    if let Some(mac_lsn) = report.mac_lsn {
        out.line(&format!(
            "unsigned: {} record(s) up to LSN {mac_lsn} carry batch MACs only the master key checks (the engine's \
             next open does); the engine signs them within its signature interval, and at a clean close",
            report.unsigned_records
        ))?;
    }
    if let Some(m) = &report.exported {
        out.line(&format!(
            "exported checkpoint: LSN {} at {} matches ({} byte {}): the history up to it is unchanged",
            m.lsn,
            ts(m.ts_ms),
            m.file,
            m.offset
        ))?;
    }
    if let Some(from) = report.unproven_from_lsn {
        out.flush()?;
        errln!(
            "warning: {} record(s) from LSN {from} on carry no batch proof: a batch a crash cut short, or records \
             appended without the master key; the engine never applies them and cuts them at its next open",
            report.unproven_records
        );
    }
    if let Some(torn) = &report.torn_tail {
        out.flush()?;
        errln!(
            "warning: {} bytes at the end of {} (byte {}) are not a whole record: a write in progress, or a torn \
             write the next open cuts off",
            torn.bytes,
            torn.file,
            torn.offset
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn hex(chain: &[u8; 32]) -> String {
    chain.iter().map(|b| format!("{b:02x}")).collect()
}

fn checkpoint(
    out: &mut Out,
    dir: &Path,
    key_file: Option<&Path>,
    file: Option<&Path>,
    public_key: bool,
    head: bool,
) -> Result<ExitCode, Stop> {
    if public_key {
        let key = audit::public_key(dir)
            .map_err(|e| e.to_string())?
            .ok_or("the log has no EngineInitialized record: this directory was never initialized with a key")?;
        out.line(&format!("verifier key: {}", audit::checkpoint::verifier_key(&key)))?;
        out.line(&format!("public key:   {}", key.iter().map(|b| format!("{b:02x}")).collect::<String>()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let keys = if head { Some(audit::load_keys(dir, key_file).map_err(|e| e.to_string())?) } else { None };
    let bar = Bar::new("verifying");
    let mut progress = |done, total| bar.update(done, total);
    let report = audit::verify(dir, VerifyOptions { progress: Some(&mut progress), ..VerifyOptions::default() })
        .map_err(|e| format!("the log does not verify, so no checkpoint of it is exported: {e}"))?;
    drop(bar);
    let signed = match keys {
        Some(keys) => {
            let ts_ms = report.last_ts_ms.ok_or("the log holds no records to sign")?;
            SignedCheckpoint::sign(&keys, report.last_lsn, &report.last_chain, ts_ms)
        }
        None => report.latest_checkpoint.ok_or(
            "no checkpoint is logged yet (the engine logs one at every segment seal and every 10 minutes of \
             activity): `lessor audit checkpoint --head` signs the current head with the master key",
        )?,
    };
    let text = signed.to_text();
    match file {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            errln!("checkpoint for LSN {} ({}) written to {}", signed.lsn, ts(signed.ts_ms), path.display());
        }
        None => {
            out.w.write_all(term::escape_text(&text).as_bytes()).map_err(stop)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn timeline(out: &mut Out, dir: &Path, key_file: Option<&Path>, args: LogArgs) -> Result<ExitCode, Stop> {
    let token_hash = match &args.token_secret {
        Some(secret) => Some(
            audit::load_keys(dir, key_file)
                .map_err(|e| format!("--token-secret is hashed with the master key: {e}"))?
                .hash_token(secret),
        ),
        None => None,
    };
    let filter = Filter {
        since_ms: args.since,
        until_ms: args.until,
        role: args.role,
        lease_id: args.lease,
        username: args.username,
        accessor: args.accessor,
        token_hash,
        path: args.path,
        outcome: args.outcome.map(|o| match o {
            OutcomeArg::Ok => Outcome::Ok,
            OutcomeArg::Denied => Outcome::Denied,
            OutcomeArg::Invalid => Outcome::Invalid,
            OutcomeArg::Error => Outcome::Error,
        }),
    };
    let bar = Bar::new("scanning");
    let mut progress = |done, total| bar.update(done, total);
    let mut failed = None;
    let stats = audit::timeline(dir, &filter, Some(&mut progress), &mut |entry, chain| {
        let written = if args.jsonl {
            out.json(audit::event_json_line(entry, chain))
        } else {
            out.line(&audit::event_text(entry, chain))
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    drop(bar);
    if let Some(e) = failed {
        return Err(e);
    }
    let stats = stats.map_err(|e| e.to_string())?;
    if std::io::stderr().is_terminal() {
        out.flush()?;
        errln!("{} of {} events matched", stats.matched, stats.scanned);
    }
    Ok(ExitCode::SUCCESS)
}

fn replay_options(no_snapshots: bool) -> ReplayOptions {
    ReplayOptions { use_snapshots: !no_snapshots }
}

/// Prints rows as left-aligned columns under a header; cells are escaped first, so
/// the columns line up with what the terminal shows.
fn table(out: &mut Out, header: &[&str], rows: &[Vec<String>]) -> Result<(), Stop> {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|cell| term::escape(cell).into_owned()).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        line
    };
    out.line(&render(header.to_vec()))?;
    for row in &rows {
        out.line(&render(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn state(out: &mut Out, dir: &Path, at: i64, json: bool, no_snapshots: bool) -> Result<ExitCode, Stop> {
    let bar = Bar::new("replaying");
    let mut progress = |done, total| bar.update(done, total);
    let s = audit::state_at(dir, at, replay_options(no_snapshots), Some(&mut progress)).map_err(|e| e.to_string())?;
    drop(bar);
    if json {
        return json_line(out, &s);
    }
    let source = match &s.snapshot {
        Some(name) => format!("snapshot {name} + {} events replayed", s.events_replayed),
        None => format!("{} events replayed", s.events_replayed),
    };
    out.line(&format!("state at {} (up to LSN {}, {source})", ts(at), s.lsn))?;
    let rows: Vec<Vec<String>> = s
        .leases
        .iter()
        .map(|l| {
            let mut status = l.status.to_string();
            if let Some(why) = l.revoke_reason {
                status = format!("{status} ({why})");
            }
            if l.irrevocable {
                status.push_str(" irrevocable");
            }
            if l.status == "active" && l.expire_time_ms <= at {
                status.push_str(" overdue");
            }
            vec![
                l.lease_id.clone(),
                l.role.clone(),
                l.username.clone(),
                l.accessor.clone(),
                l.display_name.clone().unwrap_or_else(|| "-".into()),
                ts(l.expire_time_ms),
                status,
            ]
        })
        .collect();
    table(out, &["LEASE", "ROLE", "USERNAME", "ACCESSOR", "DISPLAY NAME", "EXPIRES", "STATUS"], &rows)?;
    out.line(&format!("{} live", crate::term::count(s.leases.len(), "lease", "leases")))?;
    Ok(ExitCode::SUCCESS)
}

fn diff(out: &mut Out, dir: &Path, from: i64, to: i64, json: bool, no_snapshots: bool) -> Result<ExitCode, Stop> {
    let bar = Bar::new("replaying");
    let mut progress = |done, total| bar.update(done, total);
    let d = audit::diff(dir, from, to, replay_options(no_snapshots), Some(&mut progress)).map_err(|e| e.to_string())?;
    drop(bar);
    if json {
        return json_line(out, &d);
    }
    out.line(&format!("changes after {} up to {} (LSN {}..={})", ts(from), ts(to), d.from_lsn + 1, d.to_lsn))?;
    out.line(&format!("issued ({}):", d.issued.len()))?;
    for x in &d.issued {
        let who = x.display_name.as_deref().unwrap_or("-");
        out.line(&format!(
            "  {}  {}  role={} username={} accessor={} ({who}) expires={}",
            ts(x.ts_ms),
            x.lease_id,
            x.role,
            x.username,
            x.accessor,
            ts(x.expire_time_ms)
        ))?;
    }
    out.line(&format!("renewed ({}):", d.renewed.len()))?;
    for x in &d.renewed {
        out.line(&format!(
            "  {}  {}  username={} expires {} -> {}",
            ts(x.ts_ms),
            x.lease_id,
            x.username,
            ts(x.previous_expire_time_ms),
            ts(x.expire_time_ms)
        ))?;
    }
    out.line(&format!("revoked ({}):", d.revoked.len()))?;
    for x in &d.revoked {
        let forced = if x.forced { " forced" } else { "" };
        out.line(&format!(
            "  {}  {}  role={} username={} reason={}{forced}",
            ts(x.ts_ms),
            x.lease_id,
            x.role,
            x.username,
            x.reason
        ))?;
    }
    out.line(&format!("expired ({}):", d.expired.len()))?;
    for x in &d.expired {
        let revoked = x.revoked_ms.map_or("not revoked in the window".to_string(), |r| format!("revoked {}", ts(r)));
        out.line(&format!(
            "  {}  {}  role={} username={} {revoked}",
            ts(x.expire_time_ms),
            x.lease_id,
            x.role,
            x.username
        ))?;
    }
    out.line(&format!("roles ({}):", d.roles.len()))?;
    for x in &d.roles {
        out.line(&format!("  {}  {}roles/{}  {}", ts(x.ts_ms), x.mount, x.name, x.change))?;
    }
    out.line(&format!("policies ({}):", d.policies.len()))?;
    for x in &d.policies {
        out.line(&format!("  {}  sys/policy/{}  {}", ts(x.ts_ms), x.name, x.change))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn who_had(out: &mut Out, dir: &Path, username: &str, at: Option<i64>, json: bool) -> Result<ExitCode, Stop> {
    let bar = Bar::new("scanning");
    let mut progress = |done, total| bar.update(done, total);
    let lives = audit::who_had(dir, username, at, Some(&mut progress)).map_err(|e| e.to_string())?;
    drop(bar);
    if json {
        return json_line(out, &lives);
    }
    if lives.is_empty() {
        let when = at.map(|t| format!(" at {}", ts(t))).unwrap_or_default();
        out.line(&format!("no lease created database user {username}{when}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    for (i, l) in lives.iter().enumerate() {
        if i > 0 {
            out.line("")?;
        }
        let field = |k: &str, v: String| format!("{k:<13}{v}");
        out.line(&field("lease", l.lease_id.clone()))?;
        out.line(&field("username", l.username.clone()))?;
        out.line(&field("role", format!("{}{} (connection {})", l.mount, l.role, l.connection)))?;
        let name = l.display_name.as_deref().unwrap_or("(token creation not in the log)");
        out.line(&field("token", format!("accessor {} display name {name}", l.accessor)))?;
        if !l.token_policies.is_empty() {
            out.line(&field("policies", l.token_policies.join(", ")))?;
        }
        out.line(&field("requested", format!("{} (LSN {})", ts(l.requested_ms), l.requested_lsn)))?;
        out.line(&field("issued", l.issued_ms.map_or("no (no outcome logged)".into(), ts)))?;
        for r in &l.renewals {
            out.line(&field("renewed", format!("{} -> expires {}", ts(r.ts_ms), ts(r.expire_time_ms))))?;
        }
        out.line(&field("expires", format!("{} (at most {})", ts(l.expire_time_ms), ts(l.expire_time_max_ms))))?;
        if let (Some(why), Some(at)) = (l.revoke_reason, l.revoke_started_ms) {
            let irrevocable = if l.irrevocable { ", irrevocable so far" } else { "" };
            out.line(&field("revocation", format!("started {} ({why}{irrevocable})", ts(at))))?;
        }
        let ended = match &l.ended {
            Some(e) => format!("{} {} (LSN {})", ts(e.ts_ms), e.how, e.lsn),
            None => "still live at the end of the log".into(),
        };
        out.line(&field("ended", ended))?;
    }
    Ok(ExitCode::SUCCESS)
}
