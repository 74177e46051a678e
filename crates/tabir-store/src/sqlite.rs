//! The embedded default: one SQLite file under the server's data folder, in WAL mode with
//! `synchronous = FULL`, so a committed transaction survives a crash or power loss. One
//! connection writes (SQLite has one writer at a time anyway); reads go through a pool of
//! read-only connections (r2d2), so they never wait behind a write. `secure_delete` overwrites
//! deleted rows.

use crate::jobs::{collect_bits, new_job, shard_ranges};
use crate::{
    enum_name, parse_enum, parse_report, AuditSealer, Change, DomainRecord, EscrowRecord,
    JobRecord, JobState, KeyRecord, QuotaCheck, QuotaDecision, RequestRecord, Result, ShardOutcome,
    ShardRange, Store, StoreError, StoredAnswer,
};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use tabir_proto::audit::{Action, AuditEntry, AuditEvent};
use tabir_proto::routes::Role;
use tabir_proto::SubjectTag;

/// File name of the database inside the data folder.
pub const DATABASE_FILE: &str = "tabir.sqlite3";

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE domains (
        name             TEXT PRIMARY KEY,
        fingerprint      TEXT NOT NULL UNIQUE,
        params           TEXT NOT NULL,
        dim              INTEGER NOT NULL,
        threshold_cosine REAL NOT NULL,
        threshold_score  INTEGER NOT NULL,
        evaluation_keys  BLOB NOT NULL,
        registered_at    TEXT NOT NULL
    );
    CREATE TABLE keys (
        key_id        TEXT PRIMARY KEY,
        public_key    TEXT NOT NULL,
        domain        TEXT REFERENCES domains(name),
        role          TEXT NOT NULL,
        label         TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        revoked_at    TEXT
    );
    CREATE TABLE templates (
        domain      TEXT NOT NULL REFERENCES domains(name),
        subject     TEXT NOT NULL,
        template    BLOB NOT NULL,
        enrolled_at TEXT NOT NULL,
        position    INTEGER NOT NULL,
        PRIMARY KEY (domain, subject)
    );
    CREATE TABLE audit (
        seq   INTEGER PRIMARY KEY,
        hash  TEXT NOT NULL,
        entry TEXT NOT NULL
    );
"#,
    r#"
    CREATE TABLE nonces (
        key_id     TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (key_id, nonce)
    );
    CREATE INDEX nonces_expiry ON nonces (expires_at);
"#,
    // Key custody with shares: the server's reference share per domain (NULL marks a symmetric
    // domain from before shares), one server share per device or auditor key, and the escrow.
    r#"
    ALTER TABLE domains ADD COLUMN server_share BLOB;
    CREATE TABLE shares (
        key_id TEXT PRIMARY KEY REFERENCES keys(key_id),
        sealed BLOB NOT NULL
    );
    CREATE TABLE escrow (
        seq        INTEGER PRIMARY KEY,
        domain     TEXT NOT NULL REFERENCES domains(name),
        key_id     TEXT NOT NULL,
        action     TEXT NOT NULL,
        result     BLOB NOT NULL,
        report_seq INTEGER,
        reported   TEXT
    );
    CREATE INDEX escrow_by_domain ON escrow (domain, seq);
"#,
    // Hardening: sliding-window quotas, request ids answered once, one-time bootstrap tokens
    // shared by replicas. Templates are keyed by a subject's keyed tag from now on.
    r#"
    CREATE TABLE quota_events (
        scope TEXT NOT NULL,
        at    INTEGER NOT NULL
    );
    CREATE INDEX quota_events_by_scope ON quota_events (scope, at);
    CREATE TABLE requests (
        key_id       TEXT NOT NULL,
        request_id   TEXT NOT NULL,
        expires_at   INTEGER NOT NULL,
        status       INTEGER,
        content_type TEXT,
        audit_seq    INTEGER,
        body         BLOB,
        PRIMARY KEY (key_id, request_id)
    );
    CREATE INDEX requests_expiry ON requests (expires_at);
    CREATE TABLE bootstrap_tokens (
        digest     TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL,
        used       INTEGER NOT NULL DEFAULT 0
    );
"#,
    // Identification jobs: a probe searched against a domain's gallery in shards of template
    // positions, each shard's encrypted bit kept until the job ends (then probe and shards are
    // deleted). Workers read the gallery by position range.
    r#"
    CREATE TABLE identify_jobs (
        job_id       TEXT PRIMARY KEY,
        domain       TEXT NOT NULL REFERENCES domains(name),
        key_id       TEXT NOT NULL,
        probe        BLOB,
        state        TEXT NOT NULL,
        gallery_size INTEGER NOT NULL,
        shards_total INTEGER NOT NULL,
        shards_done  INTEGER NOT NULL,
        error        TEXT,
        audit_seq    INTEGER,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX identify_jobs_by_state ON identify_jobs (state);
    CREATE TABLE identify_shards (
        job_id         TEXT NOT NULL REFERENCES identify_jobs(job_id),
        shard          INTEGER NOT NULL,
        first_position INTEGER NOT NULL,
        last_position  INTEGER NOT NULL,
        bit            BLOB,
        PRIMARY KEY (job_id, shard)
    );
    CREATE INDEX templates_by_position ON templates (domain, position);
"#,
    // 1:N with a threshold of its own (NULL: a domain registered before, searched with its
    // 1:1 threshold).
    r#"
    ALTER TABLE domains ADD COLUMN identify_cosine REAL;
    ALTER TABLE domains ADD COLUMN identify_score INTEGER;
"#,
];

/// The columns of an `identify_jobs` row read by [`job_from_row`], in its order.
const JOB_COLUMNS: &str = "job_id, domain, key_id, state, gallery_size, shards_total, \
                           shards_done, error, audit_seq, created_at, updated_at";

/// A `requests` row: status, content type, audit entry, body (all NULL while in progress).
type RequestRow = (Option<i64>, Option<String>, Option<i64>, Option<Vec<u8>>);

/// Read-only connections per store (requests read in parallel; one writer).
const READERS: u32 = 4;

pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: r2d2::Pool<ReadOnly>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

/// Opens the read-only connections of the pool.
#[derive(Debug)]
struct ReadOnly {
    path: PathBuf,
}

impl r2d2::ManageConnection for ReadOnly {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> std::result::Result<Connection, rusqlite::Error> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
        Ok(connection)
    }

    fn is_valid(&self, connection: &mut Connection) -> std::result::Result<(), rusqlite::Error> {
        connection.execute_batch("")
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

fn backend(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        // Another connection held the database past the busy timeout.
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

fn parse_subject(text: &str) -> Result<SubjectTag> {
    SubjectTag::parse(text).ok_or_else(|| StoreError::Corrupt("a stored subject tag".into()))
}

impl SqliteStore {
    /// Open (creating if needed) the database in `data_dir` and bring its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", data_dir.display())))?;
        let path = data_dir.join(DATABASE_FILE);
        let mut connection = Connection::open(&path).map_err(backend)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA secure_delete = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(backend)?;
        migrate(&mut connection)?;
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(ReadOnly { path })
            .map_err(|e| StoreError::Backend(format!("read connections: {e}")))?;
        Ok(Self {
            writer: Mutex::new(connection),
            readers,
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.writer
            .lock()
            .map_err(|_| StoreError::Backend("a previous store operation panicked".into()))
    }

    fn reader(&self) -> Result<r2d2::PooledConnection<ReadOnly>> {
        self.readers
            .get()
            .map_err(|e| StoreError::Unavailable(format!("read connection: {e}")))
    }
}

fn migrate(connection: &mut Connection) -> Result<()> {
    let done: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    let done = usize::try_from(done).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {done}, newer than this build ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = connection.transaction().map_err(backend)?;
        tx.execute_batch(migration).map_err(backend)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

/// Apply `change` in `tx`; `seq` is the sequence number of the audit entry committed with it,
/// `at` the time of its event.
fn apply(tx: &Transaction<'_>, change: Change, seq: u64, at: &str) -> Result<()> {
    match change {
        Change::None => Ok(()),
        Change::PutDomain {
            record: d,
            sealed_server_share,
        } => {
            let exists: bool = tx
                .query_row("SELECT 1 FROM domains WHERE name = ?1", [&d.name], |_| {
                    Ok(true)
                })
                .optional()
                .map_err(backend)?
                .unwrap_or(false);
            if exists {
                return Err(StoreError::DomainExists(d.name));
            }
            tx.execute(
                "INSERT INTO domains (name, fingerprint, params, dim, threshold_cosine,
                     threshold_score, evaluation_keys, registered_at, server_share,
                         identify_cosine, identify_score)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    d.name,
                    d.fingerprint,
                    d.params,
                    d.dim,
                    f64::from(d.threshold_cosine),
                    d.threshold_score,
                    d.evaluation_keys,
                    d.registered_at,
                    sealed_server_share,
                    d.identify_threshold.map(|(cosine, _)| f64::from(cosine)),
                    d.identify_threshold.map(|(_, score)| score)
                ],
            )
            .map_err(backend)?;
            Ok(())
        }
        Change::PutKey {
            record: k,
            sealed_share,
        } => {
            if let Some(domain) = &k.domain {
                require_domain(tx, domain)?;
            }
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO keys (key_id, public_key, domain, role, label,
                         registered_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                    params![
                        k.key_id,
                        k.public_key,
                        k.domain,
                        enum_name(k.role),
                        k.label,
                        k.registered_at
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::KeyExists);
            }
            if let Some(sealed) = sealed_share {
                tx.execute(
                    "INSERT INTO shares (key_id, sealed) VALUES (?1, ?2)",
                    params![k.key_id, sealed],
                )
                .map_err(backend)?;
            }
            Ok(())
        }
        Change::RevokeKey { key_id, at } => {
            let updated = tx
                .execute(
                    "UPDATE keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL",
                    params![key_id, at],
                )
                .map_err(backend)?;
            if updated == 0 {
                return Err(StoreError::UnknownKey);
            }
            tx.execute("DELETE FROM shares WHERE key_id = ?1", [&key_id])
                .map_err(backend)?;
            Ok(())
        }
        Change::Escrow {
            domain,
            key_id,
            action,
            result,
        } => {
            require_domain(tx, &domain)?;
            tx.execute(
                "INSERT INTO escrow (seq, domain, key_id, action, result) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq as i64, domain, key_id, enum_name(action), result],
            )
            .map_err(backend)?;
            Ok(())
        }
        Change::ReportDecision {
            domain,
            key_id,
            seq: escrowed,
            decision,
        } => {
            let reported: Option<Option<i64>> = tx
                .query_row(
                    "SELECT report_seq FROM escrow WHERE seq = ?1 AND domain = ?2 AND key_id = ?3",
                    params![escrowed as i64, domain, key_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            match reported {
                None => return Err(StoreError::UnknownEscrow),
                Some(Some(_)) => return Err(StoreError::AlreadyReported),
                Some(None) => {}
            }
            tx.execute(
                "UPDATE escrow SET report_seq = ?2, reported = ?3 WHERE seq = ?1",
                params![escrowed as i64, seq as i64, enum_name(decision)],
            )
            .map_err(backend)?;
            Ok(())
        }
        Change::PutTemplate {
            domain,
            subject,
            template,
            at,
        } => {
            require_domain(tx, &domain)?;
            let position: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM templates WHERE domain = ?1",
                    [&domain],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            // A replacement keeps the subject's place in the gallery.
            tx.execute(
                "INSERT INTO templates (domain, subject, template, enrolled_at, position)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (domain, subject) DO UPDATE
                     SET template = excluded.template, enrolled_at = excluded.enrolled_at",
                params![domain, subject.as_str(), template, at, position],
            )
            .map_err(backend)?;
            Ok(())
        }
        Change::RedeemBootstrap {
            token_digest,
            now,
            record,
        } => {
            let custodians: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM keys WHERE role = ?1 AND revoked_at IS NULL",
                    [enum_name(Role::Custodian)],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            let used = tx
                .execute(
                    "UPDATE bootstrap_tokens SET used = 1
                     WHERE digest = ?1 AND used = 0 AND expires_at > ?2",
                    params![token_digest, now as i64],
                )
                .map_err(backend)?;
            if custodians > 0 || used == 0 {
                return Err(StoreError::BootstrapRefused);
            }
            // Every other outstanding token is void once a custodian exists.
            tx.execute("UPDATE bootstrap_tokens SET used = 1", [])
                .map_err(backend)?;
            apply(
                tx,
                Change::PutKey {
                    record,
                    sealed_share: None,
                },
                seq,
                at,
            )
        }
        Change::DeleteTemplate { domain, subject } => {
            let deleted = tx
                .execute(
                    "DELETE FROM templates WHERE domain = ?1 AND subject = ?2",
                    params![domain, subject.as_str()],
                )
                .map_err(backend)?;
            if deleted == 0 {
                return Err(StoreError::UnknownSubject);
            }
            Ok(())
        }
        Change::FinishJob { job_id, result } => {
            let (domain, key_id) = running_job(tx, &job_id)?;
            tx.execute(
                "INSERT INTO escrow (seq, domain, key_id, action, result) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq as i64, domain, key_id, enum_name(Action::Identify), result],
            )
            .map_err(backend)?;
            end_job(tx, &job_id, JobState::Done, None, Some(seq), at)
        }
        Change::FailJob { job_id, error } => {
            running_job(tx, &job_id)?;
            end_job(tx, &job_id, JobState::Failed, Some(&error), None, at)
        }
        Change::CancelJob { job_id, key_id } => {
            let state: String = tx
                .query_row(
                    "SELECT state FROM identify_jobs WHERE job_id = ?1 AND key_id = ?2",
                    params![job_id, key_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::UnknownJob)?;
            if parse_enum::<JobState>(&state)? != JobState::Running {
                return Err(StoreError::JobNotRunning);
            }
            end_job(tx, &job_id, JobState::Cancelled, None, None, at)
        }
    }
}

/// The domain and device of job `job_id`; [`StoreError::JobNotRunning`] unless it is running.
fn running_job(tx: &Transaction<'_>, job_id: &str) -> Result<(String, String)> {
    let found: Option<(String, String, String)> = tx
        .query_row(
            "SELECT state, domain, key_id FROM identify_jobs WHERE job_id = ?1",
            [job_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    match found {
        Some((state, domain, key_id)) if parse_enum::<JobState>(&state)? == JobState::Running => {
            Ok((domain, key_id))
        }
        _ => Err(StoreError::JobNotRunning),
    }
}

/// End a running job in `state`: its probe and shards (with their bits) are deleted.
fn end_job(
    tx: &Transaction<'_>,
    job_id: &str,
    state: JobState,
    error: Option<&str>,
    audit_seq: Option<u64>,
    at: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE identify_jobs SET state = ?2, error = ?3, audit_seq = ?4, probe = NULL,
             updated_at = ?5
         WHERE job_id = ?1",
        params![
            job_id,
            enum_name(state),
            error,
            audit_seq.map(|s| s as i64),
            at
        ],
    )
    .map_err(backend)?;
    tx.execute("DELETE FROM identify_shards WHERE job_id = ?1", [job_id])
        .map_err(backend)?;
    Ok(())
}

/// An `identify_jobs` row read as [`JOB_COLUMNS`]; the inner result is the state's parse.
fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<JobRecord>> {
    let state: String = row.get(3)?;
    let record = JobRecord {
        job_id: row.get(0)?,
        domain: row.get(1)?,
        key_id: row.get(2)?,
        state: JobState::Running,
        gallery_size: row.get::<_, i64>(4)? as u64,
        shards_total: row.get::<_, i64>(5)? as u32,
        shards_done: row.get::<_, i64>(6)? as u32,
        error: row.get(7)?,
        audit_seq: row.get::<_, Option<i64>>(8)?.map(|s| s as u64),
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
    };
    Ok(parse_enum(&state).map(|state| JobRecord { state, ..record }))
}

fn shard_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ShardRange> {
    Ok(ShardRange {
        shard: row.get::<_, i64>(0)? as u32,
        first_position: row.get(1)?,
        last_position: row.get(2)?,
    })
}

fn require_domain(tx: &Transaction<'_>, domain: &str) -> Result<()> {
    tx.query_row(
        "SELECT 1 FROM domains WHERE name = ?1",
        [domain],
        |_| Ok(()),
    )
    .optional()
    .map_err(backend)?
    .ok_or_else(|| StoreError::UnknownDomain(domain.to_owned()))
}

/// A domains row: the columns in the order of the queries above, the keys last when asked.
fn domain_from_row(row: &rusqlite::Row<'_>, with_keys: bool) -> rusqlite::Result<DomainRecord> {
    Ok(DomainRecord {
        name: row.get(0)?,
        fingerprint: row.get(1)?,
        params: row.get(2)?,
        dim: row.get(3)?,
        threshold_cosine: row.get::<_, f64>(4)? as f32,
        threshold_score: row.get(5)?,
        identify_threshold: match (
            row.get::<_, Option<f64>>("identify_cosine")?,
            row.get::<_, Option<i32>>("identify_score")?,
        ) {
            (Some(cosine), Some(score)) => Some((cosine as f32, score)),
            _ => None,
        },
        registered_at: row.get(6)?,
        evaluation_keys: if with_keys {
            row.get("evaluation_keys")?
        } else {
            Vec::new()
        },
    })
}

fn last_audit_entry(tx: &Transaction<'_>) -> Result<Option<AuditEntry>> {
    let text: Option<String> = tx
        .query_row(
            "SELECT entry FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

impl Store for SqliteStore {
    fn commit(
        &self,
        change: Change,
        event: AuditEvent,
        sealer: &dyn AuditSealer,
    ) -> Result<AuditEntry> {
        let mut connection = self.lock()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let previous = last_audit_entry(&tx)?;
        let seq = previous.as_ref().map_or(1, |p| p.seq + 1);
        apply(&tx, change, seq, &event.time)?;
        let entry = sealer.seal(event, previous.as_ref());
        if entry.seq != seq {
            return Err(StoreError::Corrupt("the sealer broke the sequence".into()));
        }
        let text = serde_json::to_string(&entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO audit (seq, hash, entry) VALUES (?1, ?2, ?3)",
            params![entry.seq as i64, entry.hash, text],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(entry)
    }

    fn domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        let connection = self.reader()?;
        connection
            .query_row(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, identify_cosine, identify_score, evaluation_keys
                 FROM domains WHERE name = ?1",
                [name],
                |row| domain_from_row(row, true),
            )
            .optional()
            .map_err(backend)
    }

    fn domain_info(&self, name: &str) -> Result<Option<DomainRecord>> {
        let connection = self.reader()?;
        connection
            .query_row(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, identify_cosine, identify_score
                 FROM domains WHERE name = ?1",
                [name],
                |row| domain_from_row(row, false),
            )
            .optional()
            .map_err(backend)
    }

    fn domain_share(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let connection = self.reader()?;
        let share: Option<Option<Vec<u8>>> = connection
            .query_row(
                "SELECT server_share FROM domains WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok(share.flatten())
    }

    fn key_share(&self, key_id: &str) -> Result<Option<Vec<u8>>> {
        let connection = self.reader()?;
        connection
            .query_row(
                "SELECT sealed FROM shares WHERE key_id = ?1",
                [key_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
    }

    fn escrow_page(
        &self,
        domain: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<EscrowRecord>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare(
                "SELECT seq, domain, key_id, action, result, report_seq, reported FROM escrow
                 WHERE domain = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(
                params![
                    domain,
                    from.min(i64::MAX as u64) as i64,
                    to.min(i64::MAX as u64) as i64,
                    limit as i64
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Vec<u8>>(4)?,
                        row.get::<_, Option<i64>>(5)?,
                        row.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, domain, key_id, action, result, report_seq, reported) =
                row.map_err(backend)?;
            out.push(EscrowRecord {
                seq: seq as u64,
                domain,
                key_id,
                action: parse_enum(&action)?,
                result,
                report: parse_report(report_seq, reported)?,
            });
        }
        Ok(out)
    }

    fn domains(&self) -> Result<Vec<DomainRecord>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, identify_cosine, identify_score
                 FROM domains ORDER BY name",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| domain_from_row(row, false))
            .map_err(backend)?;
        rows.collect::<std::result::Result<_, _>>().map_err(backend)
    }

    fn key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        Ok(self.keys_where("key_id = ?1", key_id)?.into_iter().next())
    }

    fn keys(&self, domain: Option<&str>) -> Result<Vec<KeyRecord>> {
        match domain {
            Some(domain) => self.keys_where("domain = ?1", domain),
            None => self.keys_where("?1 = ?1", ""),
        }
    }

    fn template(&self, domain: &str, subject: &SubjectTag) -> Result<Option<Vec<u8>>> {
        let connection = self.reader()?;
        connection
            .query_row(
                "SELECT template FROM templates WHERE domain = ?1 AND subject = ?2",
                params![domain, subject.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
    }

    fn templates(&self, domain: &str) -> Result<Vec<(SubjectTag, Vec<u8>)>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare("SELECT subject, template FROM templates WHERE domain = ?1 ORDER BY position")
            .map_err(backend)?;
        let rows = statement
            .query_map([domain], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (subject, template) = row.map_err(backend)?;
            out.push((parse_subject(&subject)?, template));
        }
        Ok(out)
    }

    fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare("SELECT entry FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(backend)?;
        let rows = statement
            .query_map(params![after as i64, limit as i64], |row| {
                row.get::<_, String>(0)
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let text = row.map_err(backend)?;
            out.push(serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    fn remember_nonce(&self, key_id: &str, nonce: &str, expires_at: u64, now: u64) -> Result<bool> {
        let mut connection = self.lock()?;
        let tx = connection.transaction().map_err(backend)?;
        tx.execute(
            "DELETE FROM nonces WHERE expires_at < ?1",
            params![now as i64],
        )
        .map_err(backend)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO nonces (key_id, nonce, expires_at) VALUES (?1, ?2, ?3)",
                params![key_id, nonce, expires_at as i64],
            )
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(inserted == 1)
    }

    fn take_quota(&self, checks: &[QuotaCheck], now: u64) -> Result<QuotaDecision> {
        let mut connection = self.lock()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let longest = checks.iter().map(|c| c.window_secs).max().unwrap_or(0);
        tx.execute(
            "DELETE FROM quota_events WHERE at <= ?1",
            params![now.saturating_sub(longest) as i64],
        )
        .map_err(backend)?;
        for (index, check) in checks.iter().enumerate() {
            let since = now.saturating_sub(check.window_secs) as i64;
            let (count, oldest): (i64, Option<i64>) = tx
                .query_row(
                    "SELECT COUNT(*), MIN(at) FROM quota_events WHERE scope = ?1 AND at > ?2",
                    params![check.scope, since],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(backend)?;
            if count >= i64::from(check.limit) {
                let leaves = oldest.map_or(now, |at| at as u64 + check.window_secs);
                return Ok(QuotaDecision::Exceeded {
                    check: index,
                    retry_after_secs: leaves.saturating_sub(now).max(1),
                });
            }
        }
        let mut scopes: Vec<&str> = checks.iter().map(|c| c.scope.as_str()).collect();
        scopes.sort_unstable();
        scopes.dedup();
        for scope in scopes {
            tx.execute(
                "INSERT INTO quota_events (scope, at) VALUES (?1, ?2)",
                params![scope, now as i64],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(QuotaDecision::Granted)
    }

    fn begin_request(
        &self,
        key_id: &str,
        request_id: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<RequestRecord> {
        let mut connection = self.lock()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        tx.execute(
            "DELETE FROM requests WHERE expires_at < ?1",
            params![now as i64],
        )
        .map_err(backend)?;
        let found: Option<RequestRow> = tx
            .query_row(
                "SELECT status, content_type, audit_seq, body FROM requests
                 WHERE key_id = ?1 AND request_id = ?2",
                params![key_id, request_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
            .map_err(backend)?;
        let record = match found {
            Some((Some(status), content_type, audit_seq, body)) => {
                RequestRecord::Answered(StoredAnswer {
                    status: status as u16,
                    content_type: content_type.unwrap_or_default(),
                    audit_seq: audit_seq.map(|s| s as u64),
                    body: body.unwrap_or_default(),
                })
            }
            Some(_) => RequestRecord::InProgress,
            None => {
                tx.execute(
                    "INSERT INTO requests (key_id, request_id, expires_at) VALUES (?1, ?2, ?3)",
                    params![key_id, request_id, expires_at as i64],
                )
                .map_err(backend)?;
                RequestRecord::New
            }
        };
        tx.commit().map_err(backend)?;
        Ok(record)
    }

    fn finish_request(&self, key_id: &str, request_id: &str, answer: &StoredAnswer) -> Result<()> {
        self.lock()?
            .execute(
                "UPDATE requests SET status = ?3, content_type = ?4, audit_seq = ?5, body = ?6
                 WHERE key_id = ?1 AND request_id = ?2",
                params![
                    key_id,
                    request_id,
                    i64::from(answer.status),
                    answer.content_type,
                    answer.audit_seq.map(|s| s as i64),
                    answer.body
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn abandon_request(&self, key_id: &str, request_id: &str) -> Result<()> {
        self.lock()?
            .execute(
                "DELETE FROM requests WHERE key_id = ?1 AND request_id = ?2",
                params![key_id, request_id],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn add_bootstrap_token(&self, token_digest: &str, expires_at: u64) -> Result<()> {
        self.lock()?
            .execute(
                "INSERT INTO bootstrap_tokens (digest, expires_at) VALUES (?1, ?2)",
                params![token_digest, expires_at as i64],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn create_job(
        &self,
        job_id: &str,
        domain: &str,
        key_id: &str,
        probe: &[u8],
        shard_templates: usize,
        now: &str,
    ) -> Result<(JobRecord, Vec<ShardRange>)> {
        let mut connection = self.lock()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        require_domain(&tx, domain)?;
        let positions: Vec<i64> = {
            let mut statement = tx
                .prepare("SELECT position FROM templates WHERE domain = ?1 ORDER BY position")
                .map_err(backend)?;
            let rows = statement
                .query_map([domain], |row| row.get(0))
                .map_err(backend)?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(backend)?
        };
        let shards = shard_ranges(&positions, shard_templates)?;
        let record = new_job(job_id, domain, key_id, positions.len(), shards.len(), now);
        tx.execute(
            "INSERT INTO identify_jobs (job_id, domain, key_id, probe, state, gallery_size,
                 shards_total, shards_done, error, audit_seq, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, NULL, NULL, ?8, ?8)",
            params![
                job_id,
                domain,
                key_id,
                probe,
                enum_name(JobState::Running),
                record.gallery_size as i64,
                i64::from(record.shards_total),
                now
            ],
        )
        .map_err(backend)?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO identify_shards (job_id, shard, first_position, last_position)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(backend)?;
            for shard in &shards {
                insert
                    .execute(params![
                        job_id,
                        i64::from(shard.shard),
                        shard.first_position,
                        shard.last_position
                    ])
                    .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)?;
        Ok((record, shards))
    }

    fn job(&self, job_id: &str) -> Result<Option<JobRecord>> {
        let connection = self.reader()?;
        connection
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM identify_jobs WHERE job_id = ?1"),
                [job_id],
                job_from_row,
            )
            .optional()
            .map_err(backend)?
            .transpose()
    }

    fn job_probe(&self, job_id: &str) -> Result<Option<Vec<u8>>> {
        let connection = self.reader()?;
        let probe: Option<Option<Vec<u8>>> = connection
            .query_row(
                "SELECT probe FROM identify_jobs WHERE job_id = ?1 AND state = ?2",
                params![job_id, enum_name(JobState::Running)],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok(probe.flatten())
    }

    fn pending_shards(&self, job_id: &str) -> Result<Vec<ShardRange>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare(
                "SELECT s.shard, s.first_position, s.last_position
                 FROM identify_shards s JOIN identify_jobs j ON j.job_id = s.job_id
                 WHERE s.job_id = ?1 AND j.state = ?2 AND s.bit IS NULL
                 ORDER BY s.shard",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(
                params![job_id, enum_name(JobState::Running)],
                shard_from_row,
            )
            .map_err(backend)?;
        rows.collect::<std::result::Result<_, _>>().map_err(backend)
    }

    fn running_jobs(&self) -> Result<Vec<JobRecord>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM identify_jobs WHERE state = ?1
                 ORDER BY created_at, job_id"
            ))
            .map_err(backend)?;
        let rows = statement
            .query_map([enum_name(JobState::Running)], job_from_row)
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(backend)??);
        }
        Ok(out)
    }

    fn templates_in_range(
        &self,
        domain: &str,
        first_position: i64,
        last_position: i64,
    ) -> Result<Vec<Vec<u8>>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare(
                "SELECT template FROM templates
                 WHERE domain = ?1 AND position >= ?2 AND position <= ?3 ORDER BY position",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![domain, first_position, last_position], |row| {
                row.get(0)
            })
            .map_err(backend)?;
        rows.collect::<std::result::Result<_, _>>().map_err(backend)
    }

    /// A shard number the running job does not have is refused with
    /// [`StoreError::UnknownJob`] (no such shard of the job); nothing changes.
    fn finish_shard(
        &self,
        job_id: &str,
        shard: u32,
        bit: &[u8],
        now: &str,
    ) -> Result<ShardOutcome> {
        let mut connection = self.lock()?;
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let job: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT state, shards_done, shards_total FROM identify_jobs WHERE job_id = ?1",
                [job_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(backend)?;
        let Some((state, done, total)) = job else {
            return Ok(ShardOutcome::JobNotRunning);
        };
        if parse_enum::<JobState>(&state)? != JobState::Running {
            return Ok(ShardOutcome::JobNotRunning);
        }
        let (done, total) = (done as u32, total as u32);
        let has_bit: Option<bool> = tx
            .query_row(
                "SELECT bit IS NOT NULL FROM identify_shards WHERE job_id = ?1 AND shard = ?2",
                params![job_id, i64::from(shard)],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?;
        match has_bit {
            None => return Err(StoreError::UnknownJob),
            Some(true) => return Ok(ShardOutcome::AlreadyDone { done, total }),
            Some(false) => {}
        }
        tx.execute(
            "UPDATE identify_shards SET bit = ?3 WHERE job_id = ?1 AND shard = ?2",
            params![job_id, i64::from(shard), bit],
        )
        .map_err(backend)?;
        tx.execute(
            "UPDATE identify_jobs SET shards_done = shards_done + 1, updated_at = ?2
             WHERE job_id = ?1",
            params![job_id, now],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(ShardOutcome::Recorded {
            done: done + 1,
            total,
        })
    }

    fn shard_bits(&self, job_id: &str) -> Result<Option<Vec<Vec<u8>>>> {
        let connection = self.reader()?;
        // One statement, so one snapshot: the job's state and all its bits.
        let mut statement = connection
            .prepare(
                "SELECT j.shards_total, s.bit
                 FROM identify_jobs j LEFT JOIN identify_shards s ON s.job_id = j.job_id
                 WHERE j.job_id = ?1 AND j.state = ?2
                 ORDER BY s.shard",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![job_id, enum_name(JobState::Running)], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Option<Vec<u8>>>(1)?))
            })
            .map_err(backend)?;
        let rows: Vec<(i64, Option<Vec<u8>>)> = rows
            .collect::<std::result::Result<_, _>>()
            .map_err(backend)?;
        collect_bits(rows)
    }
}

impl SqliteStore {
    fn keys_where(&self, condition: &str, value: &str) -> Result<Vec<KeyRecord>> {
        let connection = self.reader()?;
        let mut statement = connection
            .prepare(&format!(
                "SELECT key_id, public_key, domain, role, label, registered_at, revoked_at,
                        EXISTS (SELECT 1 FROM shares WHERE shares.key_id = keys.key_id)
                 FROM keys WHERE {condition} ORDER BY registered_at, key_id"
            ))
            .map_err(backend)?;
        let rows = statement
            .query_map([value], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, bool>(7)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (key_id, public_key, domain, role, label, registered_at, revoked_at, holds_share) =
                row.map_err(backend)?;
            out.push(KeyRecord {
                key_id,
                public_key,
                domain,
                role: parse_enum(&role)?,
                label,
                registered_at,
                revoked_at,
                holds_share,
            });
        }
        Ok(out)
    }
}
