//! Who may append to a stream, and the append itself, fenced in its own
//! transaction (`docs/DESIGN.md` §11).
//!
//! A stream's row in `lessor_stream` names its owner and epoch and how long the
//! owner's lease runs, on the database's clock. [`claim`] takes a stream that is
//! free or whose lease has lapsed (epoch + 1); [`renew`] extends the lease while
//! the epoch is still the caller's; [`append`] inserts one batch's records only
//! if, in the same statement, the stream row still names the caller's epoch
//! with a lease running — holding that row `FOR SHARE` until the commit, so a
//! take-over waits for appends in flight and every append after it inserts
//! nothing. The primary key refuses a second record at an LSN and the
//! predecessor check a gap, so a stream is one linear chain whoever writes.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::connect::error_text;

/// Longest lease an owner may take (`lease_ms`): a lapsed owner's stream is
/// unavailable for at most this long.
pub const LEASE_MS_MAX: u64 = 10 * 60 * 1000;
/// Shortest lease: renewals must fit inside it with room to spare.
pub const LEASE_MS_MIN: u64 = 100;
/// Most records one append may carry (one batch; the writer's own limit is lower).
pub const APPEND_RECORDS_MAX: usize = 65_536;

/// One record as a row: the file format's fields, byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    pub lsn: u64,
    pub ts_ms: i64,
    pub kind: u16,
    pub payload: Vec<u8>,
    pub chain: [u8; 32],
    pub crc: u32,
}

/// The stream's owner as the database records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Who appends: the engine's owner id, empty when released.
    pub owner: String,
    pub epoch: i64,
    /// Where the owner serves (`api_addr`), for "standby; active is X".
    pub api_addr: String,
    /// Whether the owner's lease is still running on the database's clock.
    pub live: bool,
}

/// Why a claim, renewal or append did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Another engine holds the stream, its lease running: this one is a standby.
    #[error("standby: stream {stream} is held by {} (epoch {}){}", .active.owner, .active.epoch, at(&.active.api_addr))]
    Held { stream: String, active: Owner },
    /// The caller's epoch is not the stream's any more, or its lease lapsed: it
    /// was taken over (or could be at any moment) and must acknowledge nothing.
    #[error(
        "fenced: stream {stream} is no longer this engine's (epoch {epoch}); now {} (epoch {}){}",
        .now.owner, .now.epoch, at(&.now.api_addr)
    )]
    Fenced { stream: String, epoch: i64, now: Owner },
    /// A record is already at this LSN: another writer got there first.
    #[error("stream {stream} already has a record at LSN {lsn}: another writer appended it")]
    LsnTaken { stream: String, lsn: u64 },
    /// The batch does not follow the stream's last record.
    #[error("stream {stream}: a batch starting at LSN {first_lsn} does not follow its last record (LSN {last_lsn})")]
    Gap { stream: String, first_lsn: u64, last_lsn: u64 },
    /// A stream that was never created, or a malformed request.
    #[error("stream {stream}: {reason}")]
    Invalid { stream: String, reason: String },
    /// The database failed or could not be reached.
    #[error("the log's database: {0}")]
    Database(String),
}

fn at(api_addr: &str) -> String {
    if api_addr.is_empty() { String::new() } else { format!(" at {api_addr}") }
}

fn db(e: tokio_postgres::Error) -> StreamError {
    StreamError::Database(error_text(e))
}

fn lease_interval(lease: Duration) -> Result<String, String> {
    let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    if !(LEASE_MS_MIN..=LEASE_MS_MAX).contains(&ms) {
        return Err(format!("a lease of {ms} ms: it must be {LEASE_MS_MIN}..={LEASE_MS_MAX} ms"));
    }
    Ok(format!("{ms} milliseconds"))
}

/// The stream's owner row, if the stream exists.
pub async fn owner(client: &Client, stream: &str) -> Result<Option<Owner>, StreamError> {
    let row = client
        .query_opt(
            "SELECT owner, epoch, api_addr, valid_until > now() FROM lessor_stream WHERE stream = $1",
            &[&stream],
        )
        .await
        .map_err(db)?;
    Ok(row.map(|r| Owner { owner: r.get(0), epoch: r.get(1), api_addr: r.get(2), live: r.get(3) }))
}

/// Takes `stream` for `me` (creating its row if there is none) when it is free,
/// its owner's lease has lapsed or its owner's database session is gone (no
/// backend with the owner's `application_name`, `lessor/<owner>`: an engine
/// keeps one open while it owns the stream) — or when `me` holds it already,
/// which ends that earlier run's epoch too. Returns the new epoch; a live owner's stream
/// is refused with [`StreamError::Held`].
pub async fn claim(
    client: &Client,
    stream: &str,
    me: &str,
    api_addr: &str,
    lease: Duration,
) -> Result<i64, StreamError> {
    let interval = lease_interval(lease).map_err(|reason| StreamError::Invalid { stream: stream.into(), reason })?;
    client
        .execute("INSERT INTO lessor_stream (stream) VALUES ($1) ON CONFLICT (stream) DO NOTHING", &[&stream])
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == SqlState::CHECK_VIOLATION => StreamError::Invalid {
                stream: stream.into(),
                reason: "a stream name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
                    .into(),
            },
            _ => db(e),
        })?;
    let row = client
        .query_opt(
            "UPDATE lessor_stream
                SET owner = $2, api_addr = $3, epoch = epoch + 1, valid_until = now() + $4::text::interval
              WHERE stream = $1
                AND (owner = '' OR owner = $2 OR valid_until <= now()
                     -- The owner's session is gone (it died): no need to wait out
                     -- its lease. A wrong guess is harmless: its next append is fenced.
                     OR NOT EXISTS (SELECT 1 FROM pg_stat_activity
                                     WHERE application_name = left('lessor/' || lessor_stream.owner, 63)))
             RETURNING epoch",
            &[&stream, &me, &api_addr, &interval],
        )
        .await
        .map_err(db)?;
    match row {
        Some(row) => Ok(row.get(0)),
        None => {
            let active = owner(client, stream).await?.ok_or_else(|| StreamError::Invalid {
                stream: stream.into(),
                reason: "its row vanished while it was being claimed".into(),
            })?;
            Err(StreamError::Held { stream: stream.into(), active })
        }
    }
}

/// Extends `me`'s lease on `stream` at `epoch` by `lease` from now on the
/// database's clock; [`StreamError::Fenced`] once the epoch is not `me`'s or
/// its lease already lapsed (a lapsed lease is never revived: a standby may
/// have judged it gone).
pub async fn renew(client: &Client, stream: &str, me: &str, epoch: i64, lease: Duration) -> Result<(), StreamError> {
    let interval = lease_interval(lease).map_err(|reason| StreamError::Invalid { stream: stream.into(), reason })?;
    let renewed = client
        .execute(
            "UPDATE lessor_stream SET valid_until = now() + $4::text::interval
              WHERE stream = $1 AND owner = $2 AND epoch = $3 AND valid_until > now()",
            &[&stream, &me, &epoch, &interval],
        )
        .await
        .map_err(db)?;
    if renewed == 1 { Ok(()) } else { Err(fenced(client, stream, epoch).await) }
}

/// Gives `stream` up (a clean close), so a standby may claim it at once.
pub async fn release(client: &Client, stream: &str, me: &str, epoch: i64) -> Result<(), StreamError> {
    client
        .execute(
            "UPDATE lessor_stream SET owner = '', valid_until = '-infinity'
              WHERE stream = $1 AND owner = $2 AND epoch = $3",
            &[&stream, &me, &epoch],
        )
        .await
        .map_err(db)?;
    Ok(())
}

async fn fenced(client: &Client, stream: &str, epoch: i64) -> StreamError {
    match owner(client, stream).await {
        Ok(Some(now)) => StreamError::Fenced { stream: stream.into(), epoch, now },
        Ok(None) => StreamError::Invalid { stream: stream.into(), reason: "no such stream".into() },
        Err(e) => e,
    }
}

/// Appends `records` (one batch: consecutive LSNs) to `stream` as `me` at
/// `epoch`, in one transaction that inserts nothing unless the stream row still
/// names that epoch with its lease running, and the batch follows the stream's
/// last record. Durable once this returns `Ok` (the commit).
pub async fn append(
    client: &mut Client,
    stream: &str,
    me: &str,
    epoch: i64,
    records: &[RecordRow],
) -> Result<(), StreamError> {
    let invalid = |reason: String| StreamError::Invalid { stream: stream.into(), reason };
    let Some(first) = records.first() else { return Ok(()) };
    if records.len() > APPEND_RECORDS_MAX {
        return Err(invalid(format!("{} records in one append; at most {APPEND_RECORDS_MAX}", records.len())));
    }
    if records.windows(2).any(|w| w[1].lsn != w[0].lsn + 1) || first.lsn == 0 || first.lsn > i64::MAX as u64 {
        return Err(invalid("a batch's LSNs must be consecutive, from 1".into()));
    }
    let first_lsn = first.lsn as i64;
    let lsns: Vec<i64> = records.iter().map(|r| r.lsn as i64).collect();
    let ts: Vec<i64> = records.iter().map(|r| r.ts_ms).collect();
    let kinds: Vec<i32> = records.iter().map(|r| i32::from(r.kind)).collect();
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    let chains: Vec<&[u8]> = records.iter().map(|r| r.chain.as_slice()).collect();
    let crcs: Vec<i64> = records.iter().map(|r| i64::from(r.crc)).collect();

    let tx = client.transaction().await.map_err(db)?;
    let inserted = tx
        .execute(
            "INSERT INTO lessor_log (stream, lsn, ts_ms, kind, payload, chain, crc, epoch)
             SELECT $1, r.lsn, r.ts_ms, r.kind, r.payload, r.chain, r.crc, $3
               FROM unnest($4::bigint[], $5::bigint[], $6::integer[], $7::bytea[], $8::bytea[], $9::bigint[])
                    AS r (lsn, ts_ms, kind, payload, chain, crc)
              WHERE EXISTS (SELECT 1 FROM lessor_stream s
                             WHERE s.stream = $1 AND s.owner = $2 AND s.epoch = $3 AND s.valid_until > now()
                               FOR SHARE)
                AND ($10::bigint = 1
                     OR EXISTS (SELECT 1 FROM lessor_log p WHERE p.stream = $1 AND p.lsn = $10::bigint - 1))",
            &[&stream, &me, &epoch, &lsns, &ts, &kinds, &payloads, &chains, &crcs, &first_lsn],
        )
        .await;
    let inserted = match inserted {
        Ok(n) => n,
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(StreamError::LsnTaken { stream: stream.into(), lsn: first.lsn });
        }
        Err(e) => return Err(db(e)),
    };
    if inserted == records.len() as u64 {
        return tx.commit().await.map_err(db);
    }
    tx.rollback().await.map_err(db)?;
    if inserted != 0 {
        // The fence and the gap check hold for the whole batch or for none of it.
        return Err(StreamError::Database(format!("inserted {inserted} of {} records; rolled back", records.len())));
    }
    // Nothing went in: say why.
    let last_lsn: i64 = client
        .query_one("SELECT coalesce(max(lsn), 0) FROM lessor_log WHERE stream = $1", &[&stream])
        .await
        .map_err(db)?
        .get(0);
    match owner(client, stream).await? {
        Some(now) if now.owner == me && now.epoch == epoch && now.live => {
            Err(StreamError::Gap { stream: stream.into(), first_lsn: first.lsn, last_lsn: last_lsn as u64 })
        }
        Some(now) => Err(StreamError::Fenced { stream: stream.into(), epoch, now }),
        None => Err(invalid("no such stream: claim it first".into())),
    }
}

/// Up to `limit` records of `stream` after `after_lsn`, in LSN order: what a
/// standby tails and an open replays.
pub async fn read_after(
    client: &Client,
    stream: &str,
    after_lsn: u64,
    limit: usize,
) -> Result<Vec<RecordRow>, StreamError> {
    let after = i64::try_from(after_lsn).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit.min(APPEND_RECORDS_MAX)).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT lsn, ts_ms, kind, payload, chain, crc FROM lessor_log
              WHERE stream = $1 AND lsn > $2 ORDER BY lsn LIMIT $3",
            &[&stream, &after, &limit],
        )
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            let (lsn, kind, crc): (i64, i32, i64) = (r.get(0), r.get(2), r.get(5));
            let chain: Vec<u8> = r.get(4);
            let bad = |what: &str| StreamError::Invalid {
                stream: stream.into(),
                reason: format!("the row at LSN {lsn} has a bad {what}"),
            };
            Ok(RecordRow {
                lsn: u64::try_from(lsn).map_err(|_| bad("lsn"))?,
                ts_ms: r.get(1),
                kind: u16::try_from(kind).map_err(|_| bad("kind"))?,
                payload: r.get(3),
                chain: chain.as_slice().try_into().map_err(|_| bad("chain"))?,
                crc: u32::try_from(crc).map_err(|_| bad("crc"))?,
            })
        })
        .collect()
}
