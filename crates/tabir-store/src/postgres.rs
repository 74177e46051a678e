//! PostgreSQL, for several server replicas sharing one database. Same semantics as the
//! embedded store: each change and its audit entry in one transaction; appends to the audit
//! chain are serialised across replicas with a transaction-scoped advisory lock.
//!
//! Connections come from a pool (r2d2) that checks each one before use, so a replica carries
//! on after a database restart without being restarted itself. Every session gets statement,
//! lock and idle-in-transaction timeouts, so one stalled replica (holding the audit lock, say)
//! cannot stop the others for longer than those. Connections to anything but the local host go
//! over TLS (rustls, certificate and host name verified: verify-full); `sslmode=disable` in the
//! URL turns TLS off explicitly.

use crate::jobs::{collect_bits, new_job, shard_ranges};
use crate::{
    enum_name, parse_enum, parse_report, AuditSealer, Change, DomainRecord, EscrowRecord,
    JobRecord, JobState, KeyRecord, QuotaCheck, QuotaDecision, RequestRecord, Result, ShardOutcome,
    ShardRange, Store, StoreError, StoredAnswer,
};
use postgres::config::{Host, SslMode};
use postgres::{Client, NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tabir_proto::audit::{Action, AuditEntry, AuditEvent};
use tabir_proto::routes::Role;
use tabir_proto::SubjectTag;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a server reaches PostgreSQL, beyond the URL.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// A PostgreSQL schema to use (created if missing); None: the connection's default.
    pub schema: Option<String>,
    /// PEM file with the CA certificate(s) that signed the database server's certificate;
    /// None: the system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// Connections per replica.
    pub pool_size: u32,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
    /// How long a request waits for a connection (or for the database to come back).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            ca_file: None,
            pool_size: 8,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Schema migrations, applied in order and recorded in `tabir_schema`.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE domains (
        name             TEXT PRIMARY KEY,
        fingerprint      TEXT NOT NULL UNIQUE,
        params           TEXT NOT NULL,
        dim              INTEGER NOT NULL,
        threshold_cosine DOUBLE PRECISION NOT NULL,
        threshold_score  INTEGER NOT NULL,
        evaluation_keys  BYTEA NOT NULL,
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
        template    BYTEA NOT NULL,
        enrolled_at TEXT NOT NULL,
        position    BIGINT NOT NULL,
        PRIMARY KEY (domain, subject)
    );
    CREATE TABLE audit (
        seq   BIGINT PRIMARY KEY,
        hash  TEXT NOT NULL,
        entry TEXT NOT NULL
    );
"#,
    r#"
    CREATE TABLE nonces (
        key_id     TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (key_id, nonce)
    );
    CREATE INDEX nonces_expiry ON nonces (expires_at);
"#,
    // Key custody with shares: the server's reference share per domain (NULL marks a symmetric
    // domain from before shares), one server share per device or auditor key, and the escrow.
    r#"
    ALTER TABLE domains ADD COLUMN server_share BYTEA;
    CREATE TABLE shares (
        key_id TEXT PRIMARY KEY REFERENCES keys(key_id),
        sealed BYTEA NOT NULL
    );
    CREATE TABLE escrow (
        seq        BIGINT PRIMARY KEY,
        domain     TEXT NOT NULL REFERENCES domains(name),
        key_id     TEXT NOT NULL,
        action     TEXT NOT NULL,
        result     BYTEA NOT NULL,
        report_seq BIGINT,
        reported   TEXT
    );
    CREATE INDEX escrow_by_domain ON escrow (domain, seq);
"#,
    // Hardening: sliding-window quotas, request ids answered once, one-time bootstrap tokens
    // shared by replicas. Templates are keyed by a subject's keyed tag from now on.
    r#"
    CREATE TABLE quota_events (
        scope TEXT NOT NULL,
        at    BIGINT NOT NULL
    );
    CREATE INDEX quota_events_by_scope ON quota_events (scope, at);
    CREATE TABLE requests (
        key_id       TEXT NOT NULL,
        request_id   TEXT NOT NULL,
        expires_at   BIGINT NOT NULL,
        status       INTEGER,
        content_type TEXT,
        audit_seq    BIGINT,
        body         BYTEA,
        PRIMARY KEY (key_id, request_id)
    );
    CREATE INDEX requests_expiry ON requests (expires_at);
    CREATE TABLE bootstrap_tokens (
        digest     TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL,
        used       BOOLEAN NOT NULL DEFAULT FALSE
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
        probe        BYTEA,
        state        TEXT NOT NULL,
        gallery_size BIGINT NOT NULL,
        shards_total INTEGER NOT NULL,
        shards_done  INTEGER NOT NULL,
        error        TEXT,
        audit_seq    BIGINT,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX identify_jobs_by_state ON identify_jobs (state);
    CREATE TABLE identify_shards (
        job_id         TEXT NOT NULL REFERENCES identify_jobs(job_id),
        shard          INTEGER NOT NULL,
        first_position BIGINT NOT NULL,
        last_position  BIGINT NOT NULL,
        bit            BYTEA,
        PRIMARY KEY (job_id, shard)
    );
    CREATE INDEX templates_by_position ON templates (domain, position);
"#,
    // 1:N with a threshold of its own (NULL: a domain registered before, searched with its
    // 1:1 threshold).
    r#"
    ALTER TABLE domains ADD COLUMN identify_cosine DOUBLE PRECISION;
    ALTER TABLE domains ADD COLUMN identify_score INTEGER;
"#,
];

/// The columns of an `identify_jobs` row read by [`job_from_row`], in its order.
const JOB_COLUMNS: &str = "job_id, domain, key_id, state, gallery_size, shards_total, \
                           shards_done, error, audit_seq, created_at, updated_at";

/// Take the transaction-scoped advisory lock named `name` in this store's schema: replicas of
/// one deployment share it, deployments in other schemas of the same database do not. (In
/// `pg_locks` the audit lock is `hashtextextended('tabir:audit:' || schema, 0)`.)
const SCHEMA_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('tabir:' || $1::text || ':' || coalesce(current_schema(), ''), 0))";

type PlainPool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type TlsPool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

enum Pool {
    Plain(PlainPool),
    Tls(TlsPool),
}

/// A pooled connection, plain or over TLS.
enum Connection {
    Plain(r2d2::PooledConnection<PostgresConnectionManager<NoTls>>),
    Tls(r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>),
}

impl std::ops::Deref for Connection {
    type Target = Client;
    fn deref(&self) -> &Client {
        match self {
            Connection::Plain(c) => c,
            Connection::Tls(c) => c,
        }
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        match self {
            Connection::Plain(c) => c,
            Connection::Tls(c) => c,
        }
    }
}

pub struct PostgresStore {
    /// Taken only on drop.
    pool: Option<Pool>,
    /// Whether connections use TLS (for reports).
    tls: bool,
}

/// The pool is closed on a plain thread: closing a blocking client runs its own small runtime,
/// which must not start on a thread of an async runtime (a server drops its store on one).
impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore(tls: {})", self.tls)
    }
}

/// SQLSTATEs after which the same call may well succeed: lock and statement timeouts, a
/// server shutting down or starting, too many connections, serialization failures and
/// deadlocks.
const TRANSIENT_STATES: &[&str] = &[
    "55P03", "57014", "57P01", "57P02", "57P03", "53300", "40001", "40P01",
];

fn backend(error: postgres::Error) -> StoreError {
    let transient = match error.as_db_error() {
        Some(db) => TRANSIENT_STATES.contains(&db.code().code()),
        // No answer from the server at all: the connection broke, or never came up.
        None => {
            error.is_closed()
                || std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>())
        }
    };
    if transient {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Backend(error.to_string())
    }
}

fn pool_error(error: r2d2::Error) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {error}"))
}

/// Whether a configuration asks for TLS: always, unless the URL says `sslmode=disable` or
/// every host is this machine (a Unix socket or a loopback address).
fn wants_tls(config: &postgres::Config) -> bool {
    match config.get_ssl_mode() {
        SslMode::Disable => false,
        SslMode::Require => true,
        _ => !config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"),
            #[cfg(unix)]
            Host::Unix(_) => true,
        }),
    }
}

/// rustls with the given CA file, or the system's roots: certificate chain and host name are
/// verified (libpq's `verify-full`).
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<MakeRustlsConnect> {
    let fail = |detail: String| StoreError::Backend(format!("database TLS: {detail}"));
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
                let certificate =
                    certificate.map_err(|e| fail(format!("{}: {e}", path.display())))?;
                roots
                    .add(certificate)
                    .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
        }
    }
    if roots.is_empty() {
        return Err(fail(
            "no trusted root certificates: give the database's CA with --database-ca".into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Connections checked before each use (a restarted database is noticed and reconnected).
fn pool_builder<M: r2d2::ManageConnection>(options: &PostgresOptions) -> r2d2::Builder<M> {
    r2d2::Pool::builder()
        .max_size(options.pool_size.max(1))
        .min_idle(Some(1))
        .connection_timeout(options.connect_timeout)
        .test_on_check_out(true)
}

impl PostgresStore {
    /// Connect with a `postgres://` URL and bring the schema up to date, with default options
    /// and `schema` (created if missing; None uses the connection's default).
    pub fn connect(url: &str, schema: Option<&str>) -> Result<Self> {
        Self::connect_with(
            url,
            &PostgresOptions {
                schema: schema.map(str::to_owned),
                ..PostgresOptions::default()
            },
        )
    }

    /// Connect a pool with `options` and bring the schema up to date.
    pub fn connect_with(url: &str, options: &PostgresOptions) -> Result<Self> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| StoreError::Backend(format!("database URL: {e}")))?;
        let mut session = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            options.statement_timeout.as_millis(),
            options.lock_timeout.as_millis(),
            options.idle_in_transaction_timeout.as_millis()
        );
        if let Some(schema) = &options.schema {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::Backend("schema names are [a-z0-9_]".into()));
            }
            session.push_str(&format!(" -c search_path={schema}"));
        }
        if let Some(existing) = config.get_options() {
            session = format!("{existing} {session}");
        }
        config.options(&session);
        config.connect_timeout(options.connect_timeout);
        config.keepalives_idle(Duration::from_secs(60));
        let tls = wants_tls(&config);
        if tls {
            config.ssl_mode(SslMode::Require);
        }
        let pool = if tls {
            let connector = tls_connector(options.ca_file.as_deref())?;
            Pool::Tls(
                pool_builder(options)
                    .build(PostgresConnectionManager::new(config, connector))
                    .map_err(pool_error)?,
            )
        } else {
            Pool::Plain(
                pool_builder(options)
                    .build(PostgresConnectionManager::new(config, NoTls))
                    .map_err(pool_error)?,
            )
        };
        let store = Self {
            pool: Some(pool),
            tls,
        };
        {
            let mut connection = store.connection()?;
            if let Some(schema) = &options.schema {
                connection
                    .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .map_err(backend)?;
            }
            migrate(&mut connection)?;
        }
        Ok(store)
    }

    /// Whether connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls
    }

    fn connection(&self) -> Result<Connection> {
        match &self.pool {
            Some(Pool::Plain(pool)) => pool.get().map(Connection::Plain).map_err(pool_error),
            Some(Pool::Tls(pool)) => pool.get().map(Connection::Tls).map_err(pool_error),
            None => Err(StoreError::Backend("the store is closed".into())),
        }
    }
}

fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction().map_err(backend)?;
    tx.execute(SCHEMA_LOCK, &[&"migrate"]).map_err(backend)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS tabir_schema (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let done: i64 = tx
        .query_one("SELECT COUNT(*) FROM tabir_schema", &[])
        .map_err(backend)?
        .get(0);
    let done = usize::try_from(done).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {done}, newer than this build ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.batch_execute(migration).map_err(backend)?;
        tx.execute(
            "INSERT INTO tabir_schema (version) VALUES ($1)",
            &[&((index + 1) as i32)],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

/// Apply `change` in `tx`; `seq` is the sequence number of the audit entry committed with it,
/// `at` the time of its event.
fn apply(tx: &mut Transaction<'_>, change: Change, seq: u64, at: &str) -> Result<()> {
    match change {
        Change::None => Ok(()),
        Change::PutDomain {
            record: d,
            sealed_server_share,
        } => {
            let inserted = tx
                .execute(
                    "INSERT INTO domains (name, fingerprint, params, dim, threshold_cosine,
                         threshold_score, evaluation_keys, registered_at, server_share,
                         identify_cosine, identify_score)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                    &[
                        &d.name,
                        &d.fingerprint,
                        &d.params,
                        &(d.dim as i32),
                        &f64::from(d.threshold_cosine),
                        &d.threshold_score,
                        &d.evaluation_keys,
                        &d.registered_at,
                        &sealed_server_share,
                        &d.identify_threshold.map(|(cosine, _)| f64::from(cosine)),
                        &d.identify_threshold.map(|(_, score)| score),
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::DomainExists(d.name));
            }
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
                    "INSERT INTO keys (key_id, public_key, domain, role, label, registered_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[
                        &k.key_id,
                        &k.public_key,
                        &k.domain,
                        &enum_name(k.role),
                        &k.label,
                        &k.registered_at,
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::KeyExists);
            }
            if let Some(sealed) = sealed_share {
                tx.execute(
                    "INSERT INTO shares (key_id, sealed) VALUES ($1, $2)",
                    &[&k.key_id, &sealed],
                )
                .map_err(backend)?;
            }
            Ok(())
        }
        Change::RevokeKey { key_id, at } => {
            let updated = tx
                .execute(
                    "UPDATE keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
                    &[&key_id, &at],
                )
                .map_err(backend)?;
            if updated == 0 {
                return Err(StoreError::UnknownKey);
            }
            tx.execute("DELETE FROM shares WHERE key_id = $1", &[&key_id])
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
                "INSERT INTO escrow (seq, domain, key_id, action, result)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&(seq as i64), &domain, &key_id, &enum_name(action), &result],
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
            let row = tx
                .query_opt(
                    "SELECT report_seq FROM escrow
                     WHERE seq = $1 AND domain = $2 AND key_id = $3 FOR UPDATE",
                    &[&(escrowed as i64), &domain, &key_id],
                )
                .map_err(backend)?;
            match row.map(|r| r.get::<_, Option<i64>>(0)) {
                None => return Err(StoreError::UnknownEscrow),
                Some(Some(_)) => return Err(StoreError::AlreadyReported),
                Some(None) => {}
            }
            tx.execute(
                "UPDATE escrow SET report_seq = $2, reported = $3 WHERE seq = $1",
                &[&(escrowed as i64), &(seq as i64), &enum_name(decision)],
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
            tx.execute(
                "INSERT INTO templates (domain, subject, template, enrolled_at, position)
                 VALUES ($1, $2, $3, $4,
                     (SELECT COALESCE(MAX(position), 0) + 1 FROM templates WHERE domain = $1))
                 ON CONFLICT (domain, subject) DO UPDATE
                     SET template = excluded.template, enrolled_at = excluded.enrolled_at",
                &[&domain, &subject.as_str(), &template, &at],
            )
            .map_err(backend)?;
            Ok(())
        }
        Change::RedeemBootstrap {
            token_digest,
            now,
            record,
        } => {
            // One redemption at a time across replicas.
            tx.execute(SCHEMA_LOCK, &[&"bootstrap"]).map_err(backend)?;
            let custodians: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM keys WHERE role = $1 AND revoked_at IS NULL",
                    &[&enum_name(Role::Custodian)],
                )
                .map_err(backend)?
                .get(0);
            let used = tx
                .execute(
                    "UPDATE bootstrap_tokens SET used = TRUE
                     WHERE digest = $1 AND NOT used AND expires_at > $2",
                    &[&token_digest, &(now as i64)],
                )
                .map_err(backend)?;
            if custodians > 0 || used == 0 {
                return Err(StoreError::BootstrapRefused);
            }
            tx.execute("UPDATE bootstrap_tokens SET used = TRUE", &[])
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
                    "DELETE FROM templates WHERE domain = $1 AND subject = $2",
                    &[&domain, &subject.as_str()],
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
                "INSERT INTO escrow (seq, domain, key_id, action, result)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &(seq as i64),
                    &domain,
                    &key_id,
                    &enum_name(Action::Identify),
                    &result,
                ],
            )
            .map_err(backend)?;
            end_job(tx, &job_id, JobState::Done, None, Some(seq), at)
        }
        Change::FailJob { job_id, error } => {
            running_job(tx, &job_id)?;
            end_job(tx, &job_id, JobState::Failed, Some(&error), None, at)
        }
        Change::CancelJob { job_id, key_id } => {
            let row = tx
                .query_opt(
                    "SELECT state FROM identify_jobs WHERE job_id = $1 AND key_id = $2
                     FOR UPDATE",
                    &[&job_id, &key_id],
                )
                .map_err(backend)?
                .ok_or(StoreError::UnknownJob)?;
            if parse_enum::<JobState>(&row.get::<_, String>(0))? != JobState::Running {
                return Err(StoreError::JobNotRunning);
            }
            end_job(tx, &job_id, JobState::Cancelled, None, None, at)
        }
    }
}

/// The domain and device of job `job_id`, its row locked until the transaction ends (so no
/// shard is recorded meanwhile); [`StoreError::JobNotRunning`] unless it is running.
fn running_job(tx: &mut Transaction<'_>, job_id: &str) -> Result<(String, String)> {
    let row = tx
        .query_opt(
            "SELECT state, domain, key_id FROM identify_jobs WHERE job_id = $1 FOR UPDATE",
            &[&job_id],
        )
        .map_err(backend)?
        .ok_or(StoreError::JobNotRunning)?;
    if parse_enum::<JobState>(&row.get::<_, String>(0))? != JobState::Running {
        return Err(StoreError::JobNotRunning);
    }
    Ok((row.get(1), row.get(2)))
}

/// End a running job in `state`: its probe and shards (with their bits) are deleted.
fn end_job(
    tx: &mut Transaction<'_>,
    job_id: &str,
    state: JobState,
    error: Option<&str>,
    audit_seq: Option<u64>,
    at: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE identify_jobs SET state = $2, error = $3, audit_seq = $4, probe = NULL,
             updated_at = $5
         WHERE job_id = $1",
        &[
            &job_id,
            &enum_name(state),
            &error,
            &audit_seq.map(|s| s as i64),
            &at,
        ],
    )
    .map_err(backend)?;
    tx.execute("DELETE FROM identify_shards WHERE job_id = $1", &[&job_id])
        .map_err(backend)?;
    Ok(())
}

/// An `identify_jobs` row read as [`JOB_COLUMNS`].
fn job_from_row(row: &postgres::Row) -> Result<JobRecord> {
    Ok(JobRecord {
        job_id: row.get(0),
        domain: row.get(1),
        key_id: row.get(2),
        state: parse_enum(&row.get::<_, String>(3))?,
        gallery_size: row.get::<_, i64>(4) as u64,
        shards_total: row.get::<_, i32>(5) as u32,
        shards_done: row.get::<_, i32>(6) as u32,
        error: row.get(7),
        audit_seq: row.get::<_, Option<i64>>(8).map(|s| s as u64),
        created_at: row.get(9),
        updated_at: row.get(10),
    })
}

fn shard_from_row(row: &postgres::Row) -> ShardRange {
    ShardRange {
        shard: row.get::<_, i32>(0) as u32,
        first_position: row.get(1),
        last_position: row.get(2),
    }
}

fn require_domain(tx: &mut Transaction<'_>, domain: &str) -> Result<()> {
    let found = tx
        .query_opt("SELECT 1 FROM domains WHERE name = $1", &[&domain])
        .map_err(backend)?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::UnknownDomain(domain.to_owned()))
}

fn parse_entry(text: &str) -> Result<AuditEntry> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn domain_from_row(row: &postgres::Row, with_keys: bool) -> DomainRecord {
    DomainRecord {
        name: row.get(0),
        fingerprint: row.get(1),
        params: row.get(2),
        dim: row.get::<_, i32>(3) as u32,
        threshold_cosine: row.get::<_, f64>(4) as f32,
        threshold_score: row.get(5),
        identify_threshold: match (
            row.get::<_, Option<f64>>("identify_cosine"),
            row.get::<_, Option<i32>>("identify_score"),
        ) {
            (Some(cosine), Some(score)) => Some((cosine as f32, score)),
            _ => None,
        },
        evaluation_keys: if with_keys {
            row.get("evaluation_keys")
        } else {
            Vec::new()
        },
        registered_at: row.get(6),
    }
}

impl Store for PostgresStore {
    fn commit(
        &self,
        change: Change,
        event: AuditEvent,
        sealer: &dyn AuditSealer,
    ) -> Result<AuditEntry> {
        let mut client = self.connection()?;
        let mut tx = client.transaction().map_err(backend)?;
        tx.execute(SCHEMA_LOCK, &[&"audit"]).map_err(backend)?;
        let previous = tx
            .query_opt("SELECT entry FROM audit ORDER BY seq DESC LIMIT 1", &[])
            .map_err(backend)?
            .map(|row| parse_entry(&row.get::<_, String>(0)))
            .transpose()?;
        let seq = previous.as_ref().map_or(1, |p| p.seq + 1);
        apply(&mut tx, change, seq, &event.time)?;
        let entry = sealer.seal(event, previous.as_ref());
        if entry.seq != seq {
            return Err(StoreError::Corrupt("the sealer broke the sequence".into()));
        }
        let text = serde_json::to_string(&entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO audit (seq, hash, entry) VALUES ($1, $2, $3)",
            &[&(entry.seq as i64), &entry.hash, &text],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(entry)
    }

    fn domain(&self, name: &str) -> Result<Option<DomainRecord>> {
        let row = self
            .connection()?
            .query_opt(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, identify_cosine, identify_score, evaluation_keys
                 FROM domains WHERE name = $1",
                &[&name],
            )
            .map_err(backend)?;
        Ok(row.map(|r| domain_from_row(&r, true)))
    }

    fn domain_share(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .connection()?
            .query_opt("SELECT server_share FROM domains WHERE name = $1", &[&name])
            .map_err(backend)?;
        Ok(row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }

    fn key_share(&self, key_id: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .connection()?
            .query_opt("SELECT sealed FROM shares WHERE key_id = $1", &[&key_id])
            .map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn escrow_page(
        &self,
        domain: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<EscrowRecord>> {
        let rows = self
            .connection()?
            .query(
                "SELECT seq, domain, key_id, action, result, report_seq, reported FROM escrow
                 WHERE domain = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4",
                &[
                    &domain,
                    &(from.min(i64::MAX as u64) as i64),
                    &(to.min(i64::MAX as u64) as i64),
                    &(limit as i64),
                ],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(EscrowRecord {
                    seq: r.get::<_, i64>(0) as u64,
                    domain: r.get(1),
                    key_id: r.get(2),
                    action: parse_enum(&r.get::<_, String>(3))?,
                    result: r.get(4),
                    report: parse_report(r.get(5), r.get(6))?,
                })
            })
            .collect()
    }

    fn domain_info(&self, name: &str) -> Result<Option<DomainRecord>> {
        let row = self
            .connection()?
            .query_opt(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, identify_cosine, identify_score
                 FROM domains WHERE name = $1",
                &[&name],
            )
            .map_err(backend)?;
        Ok(row.map(|r| domain_from_row(&r, false)))
    }

    fn domains(&self) -> Result<Vec<DomainRecord>> {
        let rows = self
            .connection()?
            .query(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, identify_cosine, identify_score
                 FROM domains ORDER BY name",
                &[],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(|r| domain_from_row(r, false)).collect())
    }

    fn key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        Ok(self
            .keys_where("key_id = $1", Some(key_id))?
            .into_iter()
            .next())
    }

    fn keys(&self, domain: Option<&str>) -> Result<Vec<KeyRecord>> {
        match domain {
            Some(domain) => self.keys_where("domain = $1", Some(domain)),
            None => self.keys_where("TRUE", None),
        }
    }

    fn template(&self, domain: &str, subject: &SubjectTag) -> Result<Option<Vec<u8>>> {
        let row = self
            .connection()?
            .query_opt(
                "SELECT template FROM templates WHERE domain = $1 AND subject = $2",
                &[&domain, &subject.as_str()],
            )
            .map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn templates(&self, domain: &str) -> Result<Vec<(SubjectTag, Vec<u8>)>> {
        let rows = self
            .connection()?
            .query(
                "SELECT subject, template FROM templates WHERE domain = $1 ORDER BY position",
                &[&domain],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let subject: String = r.get(0);
                SubjectTag::parse(&subject)
                    .map(|s| (s, r.get(1)))
                    .ok_or_else(|| StoreError::Corrupt("a stored subject tag".into()))
            })
            .collect()
    }

    fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let rows = self
            .connection()?
            .query(
                "SELECT entry FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&(after as i64), &(limit as i64)],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|r| parse_entry(&r.get::<_, String>(0)))
            .collect()
    }

    fn remember_nonce(&self, key_id: &str, nonce: &str, expires_at: u64, now: u64) -> Result<bool> {
        let mut client = self.connection()?;
        let mut tx = client.transaction().map_err(backend)?;
        tx.execute("DELETE FROM nonces WHERE expires_at < $1", &[&(now as i64)])
            .map_err(backend)?;
        let inserted = tx
            .execute(
                "INSERT INTO nonces (key_id, nonce, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key_id, nonce) DO NOTHING",
                &[&key_id, &nonce, &(expires_at as i64)],
            )
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(inserted == 1)
    }

    fn take_quota(&self, checks: &[QuotaCheck], now: u64) -> Result<QuotaDecision> {
        let mut client = self.connection()?;
        let mut tx = client.transaction().map_err(backend)?;
        // Replicas count one scope at a time: a transaction-scoped lock per scope, taken in
        // sorted order (no deadlocks).
        let mut scopes: Vec<&str> = checks.iter().map(|c| c.scope.as_str()).collect();
        scopes.sort_unstable();
        scopes.dedup();
        for scope in &scopes {
            tx.execute(SCHEMA_LOCK, &[&format!("quota:{scope}")])
                .map_err(backend)?;
        }
        let longest = checks.iter().map(|c| c.window_secs).max().unwrap_or(0);
        tx.execute(
            "DELETE FROM quota_events WHERE scope = ANY($1) AND at <= $2",
            &[&scopes, &(now.saturating_sub(longest) as i64)],
        )
        .map_err(backend)?;
        for (index, check) in checks.iter().enumerate() {
            let since = now.saturating_sub(check.window_secs) as i64;
            let row = tx
                .query_one(
                    "SELECT COUNT(*), MIN(at) FROM quota_events WHERE scope = $1 AND at > $2",
                    &[&check.scope, &since],
                )
                .map_err(backend)?;
            let (count, oldest): (i64, Option<i64>) = (row.get(0), row.get(1));
            if count >= i64::from(check.limit) {
                let leaves = oldest.map_or(now, |at| at as u64 + check.window_secs);
                return Ok(QuotaDecision::Exceeded {
                    check: index,
                    retry_after_secs: leaves.saturating_sub(now).max(1),
                });
            }
        }
        for scope in &scopes {
            tx.execute(
                "INSERT INTO quota_events (scope, at) VALUES ($1, $2)",
                &[scope, &(now as i64)],
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
        let mut client = self.connection()?;
        let mut tx = client.transaction().map_err(backend)?;
        tx.execute(
            "DELETE FROM requests WHERE expires_at < $1",
            &[&(now as i64)],
        )
        .map_err(backend)?;
        let inserted = tx
            .execute(
                "INSERT INTO requests (key_id, request_id, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key_id, request_id) DO NOTHING",
                &[&key_id, &request_id, &(expires_at as i64)],
            )
            .map_err(backend)?;
        let record = if inserted == 1 {
            RequestRecord::New
        } else {
            let row = tx
                .query_one(
                    "SELECT status, content_type, audit_seq, body FROM requests
                     WHERE key_id = $1 AND request_id = $2",
                    &[&key_id, &request_id],
                )
                .map_err(backend)?;
            match row.get::<_, Option<i32>>(0) {
                Some(status) => RequestRecord::Answered(StoredAnswer {
                    status: status as u16,
                    content_type: row.get::<_, Option<String>>(1).unwrap_or_default(),
                    audit_seq: row.get::<_, Option<i64>>(2).map(|s| s as u64),
                    body: row.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
                }),
                None => RequestRecord::InProgress,
            }
        };
        tx.commit().map_err(backend)?;
        Ok(record)
    }

    fn finish_request(&self, key_id: &str, request_id: &str, answer: &StoredAnswer) -> Result<()> {
        self.connection()?
            .execute(
                "UPDATE requests SET status = $3, content_type = $4, audit_seq = $5, body = $6
                 WHERE key_id = $1 AND request_id = $2",
                &[
                    &key_id,
                    &request_id,
                    &i32::from(answer.status),
                    &answer.content_type,
                    &answer.audit_seq.map(|s| s as i64),
                    &answer.body,
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn abandon_request(&self, key_id: &str, request_id: &str) -> Result<()> {
        self.connection()?
            .execute(
                "DELETE FROM requests WHERE key_id = $1 AND request_id = $2",
                &[&key_id, &request_id],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn add_bootstrap_token(&self, token_digest: &str, expires_at: u64) -> Result<()> {
        self.connection()?
            .execute(
                "INSERT INTO bootstrap_tokens (digest, expires_at) VALUES ($1, $2)",
                &[&token_digest, &(expires_at as i64)],
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
        let mut client = self.connection()?;
        let mut tx = client.transaction().map_err(backend)?;
        require_domain(&mut tx, domain)?;
        // One statement, one snapshot of the gallery (enrolments are serialised by the audit
        // lock, so positions are never reused).
        let positions: Vec<i64> = tx
            .query(
                "SELECT position FROM templates WHERE domain = $1 ORDER BY position",
                &[&domain],
            )
            .map_err(backend)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let shards = shard_ranges(&positions, shard_templates)?;
        let record = new_job(job_id, domain, key_id, positions.len(), shards.len(), now);
        tx.execute(
            "INSERT INTO identify_jobs (job_id, domain, key_id, probe, state, gallery_size,
                 shards_total, shards_done, error, audit_seq, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, NULL, NULL, $8, $8)",
            &[
                &job_id,
                &domain,
                &key_id,
                &probe,
                &enum_name(JobState::Running),
                &(record.gallery_size as i64),
                &(record.shards_total as i32),
                &now,
            ],
        )
        .map_err(backend)?;
        // All shards in one round trip.
        let numbers: Vec<i32> = shards.iter().map(|s| s.shard as i32).collect();
        let firsts: Vec<i64> = shards.iter().map(|s| s.first_position).collect();
        let lasts: Vec<i64> = shards.iter().map(|s| s.last_position).collect();
        tx.execute(
            "INSERT INTO identify_shards (job_id, shard, first_position, last_position)
             SELECT $1, s, f, l FROM UNNEST($2::INTEGER[], $3::BIGINT[], $4::BIGINT[]) AS t(s, f, l)",
            &[&job_id, &numbers, &firsts, &lasts],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok((record, shards))
    }

    fn job(&self, job_id: &str) -> Result<Option<JobRecord>> {
        self.connection()?
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM identify_jobs WHERE job_id = $1"),
                &[&job_id],
            )
            .map_err(backend)?
            .map(|r| job_from_row(&r))
            .transpose()
    }

    fn job_probe(&self, job_id: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .connection()?
            .query_opt(
                "SELECT probe FROM identify_jobs WHERE job_id = $1 AND state = $2",
                &[&job_id, &enum_name(JobState::Running)],
            )
            .map_err(backend)?;
        Ok(row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }

    fn pending_shards(&self, job_id: &str) -> Result<Vec<ShardRange>> {
        let rows = self
            .connection()?
            .query(
                "SELECT s.shard, s.first_position, s.last_position
                 FROM identify_shards s JOIN identify_jobs j ON j.job_id = s.job_id
                 WHERE s.job_id = $1 AND j.state = $2 AND s.bit IS NULL
                 ORDER BY s.shard",
                &[&job_id, &enum_name(JobState::Running)],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(shard_from_row).collect())
    }

    fn running_jobs(&self) -> Result<Vec<JobRecord>> {
        let rows = self
            .connection()?
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM identify_jobs WHERE state = $1
                     ORDER BY created_at, job_id"
                ),
                &[&enum_name(JobState::Running)],
            )
            .map_err(backend)?;
        rows.iter().map(job_from_row).collect()
    }

    fn templates_in_range(
        &self,
        domain: &str,
        first_position: i64,
        last_position: i64,
    ) -> Result<Vec<Vec<u8>>> {
        let rows = self
            .connection()?
            .query(
                "SELECT template FROM templates
                 WHERE domain = $1 AND position >= $2 AND position <= $3 ORDER BY position",
                &[&domain, &first_position, &last_position],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Replicas record the shards of one job one at a time: the job's row is locked (`FOR
    /// UPDATE`) until the transaction ends, so the count is exact and exactly one caller sees
    /// the last shard done. A shard number the running job does not have is refused with
    /// [`StoreError::UnknownJob`] (no such shard of the job); nothing changes.
    fn finish_shard(
        &self,
        job_id: &str,
        shard: u32,
        bit: &[u8],
        now: &str,
    ) -> Result<ShardOutcome> {
        let mut client = self.connection()?;
        let mut tx = client.transaction().map_err(backend)?;
        let Some(job) = tx
            .query_opt(
                "SELECT state, shards_done, shards_total FROM identify_jobs
                 WHERE job_id = $1 FOR UPDATE",
                &[&job_id],
            )
            .map_err(backend)?
        else {
            return Ok(ShardOutcome::JobNotRunning);
        };
        if parse_enum::<JobState>(&job.get::<_, String>(0))? != JobState::Running {
            return Ok(ShardOutcome::JobNotRunning);
        }
        let (done, total) = (job.get::<_, i32>(1) as u32, job.get::<_, i32>(2) as u32);
        let shard = i32::try_from(shard).map_err(|_| StoreError::UnknownJob)?;
        let has_bit = tx
            .query_opt(
                "SELECT bit IS NOT NULL FROM identify_shards WHERE job_id = $1 AND shard = $2",
                &[&job_id, &shard],
            )
            .map_err(backend)?
            .map(|r| r.get::<_, bool>(0));
        match has_bit {
            None => return Err(StoreError::UnknownJob),
            Some(true) => return Ok(ShardOutcome::AlreadyDone { done, total }),
            Some(false) => {}
        }
        tx.execute(
            "UPDATE identify_shards SET bit = $3 WHERE job_id = $1 AND shard = $2",
            &[&job_id, &shard, &bit],
        )
        .map_err(backend)?;
        tx.execute(
            "UPDATE identify_jobs SET shards_done = shards_done + 1, updated_at = $2
             WHERE job_id = $1",
            &[&job_id, &now],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(ShardOutcome::Recorded {
            done: done + 1,
            total,
        })
    }

    fn shard_bits(&self, job_id: &str) -> Result<Option<Vec<Vec<u8>>>> {
        // One statement, so one snapshot: the job's state and all its bits.
        let rows = self
            .connection()?
            .query(
                "SELECT j.shards_total::BIGINT, s.bit
                 FROM identify_jobs j LEFT JOIN identify_shards s ON s.job_id = j.job_id
                 WHERE j.job_id = $1 AND j.state = $2
                 ORDER BY s.shard",
                &[&job_id, &enum_name(JobState::Running)],
            )
            .map_err(backend)?;
        collect_bits(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl PostgresStore {
    fn keys_where(&self, condition: &str, value: Option<&str>) -> Result<Vec<KeyRecord>> {
        let sql = format!(
            "SELECT key_id, public_key, domain, role, label, registered_at, revoked_at,
                    EXISTS (SELECT 1 FROM shares WHERE shares.key_id = keys.key_id)
             FROM keys WHERE {condition} ORDER BY registered_at, key_id"
        );
        let mut client = self.connection()?;
        let rows = match value {
            Some(value) => client.query(&sql, &[&value]),
            None => client.query(&sql, &[]),
        }
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(KeyRecord {
                    key_id: r.get(0),
                    public_key: r.get(1),
                    domain: r.get(2),
                    role: parse_enum(&r.get::<_, String>(3))?,
                    label: r.get(4),
                    registered_at: r.get(5),
                    revoked_at: r.get(6),
                    holds_share: r.get(7),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_for(url: &str) -> bool {
        wants_tls(&url.parse::<postgres::Config>().unwrap())
    }

    #[test]
    fn tls_is_used_for_every_host_but_this_machine_unless_turned_off() {
        assert!(tls_for("postgres://tabir@db.example/tabir"));
        assert!(tls_for("postgres://tabir@10.0.0.7:5432/tabir"));
        assert!(tls_for("host=db.example user=tabir"));
        // One remote host among several is enough.
        assert!(tls_for("postgres://tabir@127.0.0.1,db.example/tabir"));
        assert!(!tls_for("postgres://tabir@127.0.0.1:5432/tabir"));
        assert!(!tls_for("postgres://tabir@localhost/tabir"));
        assert!(!tls_for("host=/var/run/postgresql user=tabir"));
        assert!(!tls_for(
            "postgres://tabir@db.example/tabir?sslmode=disable"
        ));
        // Asked for explicitly, even on loopback.
        assert!(tls_for("postgres://tabir@127.0.0.1/tabir?sslmode=require"));
    }

    #[test]
    fn tls_is_never_given_up_for_a_connection_in_the_clear() {
        // The local test server speaks no TLS, or TLS with a certificate no system root signed
        // (Debian's snakeoil): asked for TLS, the store must refuse to connect, neither falling
        // back to the clear nor accepting an unverified certificate.
        let Ok(url) = std::env::var("TABIR_TEST_DATABASE_URL") else {
            eprintln!("TLS refusal on PostgreSQL: skipped, TABIR_TEST_DATABASE_URL is not set");
            return;
        };
        if url.is_empty() {
            return;
        }
        let separator = if url.contains('?') { '&' } else { '?' };
        let forced = format!("{url}{separator}sslmode=require");
        let options = PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        match PostgresStore::connect_with(&forced, &options) {
            Err(StoreError::Unavailable(_) | StoreError::Backend(_)) => {}
            Ok(_) => panic!("connected to a server whose certificate nothing vouches for"),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}
