//! PostgreSQL, for several server replicas sharing one database. Same semantics as the
//! embedded store: each change and its audit entry in one transaction; appends to the audit
//! chain are serialised across replicas with a transaction-scoped advisory lock.

use crate::{
    enum_name, parse_enum, parse_report, AuditSealer, Change, DomainRecord, EscrowRecord,
    KeyRecord, Result, Store, StoreError,
};
use postgres::{Client, NoTls, Transaction};
use std::sync::{Mutex, MutexGuard};
use tabir_proto::audit::{AuditEntry, AuditEvent};
use tabir_proto::SubjectId;

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
];

/// Advisory lock id serialising audit appends (any constant shared by all replicas).
const AUDIT_LOCK: i64 = 0x7461_6269_725f_6175; // "tabir_au"

pub struct PostgresStore {
    client: Mutex<Connection>,
}

/// The blocking client, closed on a plain thread when dropped: closing runs the client's own
/// small runtime, which must not start on a thread of an async runtime (a server drops its
/// store on one).
struct Connection(Option<Client>);

impl std::ops::Deref for Connection {
    type Target = Client;
    fn deref(&self) -> &Client {
        match &self.0 {
            Some(client) => client,
            None => unreachable!("the client is taken only on drop"),
        }
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        match &mut self.0 {
            Some(client) => client,
            None => unreachable!("the client is taken only on drop"),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

fn backend(error: postgres::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl PostgresStore {
    /// Connect with a `postgres://` URL and bring the schema up to date. `schema` selects a
    /// PostgreSQL schema (created if missing); None uses the connection's default.
    pub fn connect(url: &str, schema: Option<&str>) -> Result<Self> {
        let mut client = Client::connect(url, NoTls).map_err(backend)?;
        if let Some(schema) = schema {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::Backend("schema names are [a-z0-9_]".into()));
            }
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
                ))
                .map_err(backend)?;
        }
        migrate(&mut client)?;
        Ok(Self {
            client: Mutex::new(Connection(Some(client))),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.client
            .lock()
            .map_err(|_| StoreError::Backend("a previous store operation panicked".into()))
    }
}

fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction().map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&(AUDIT_LOCK + 1)])
        .map_err(backend)?;
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

/// Apply `change` in `tx`; `seq` is the sequence number of the audit entry committed with it.
fn apply(tx: &mut Transaction<'_>, change: Change, seq: u64) -> Result<()> {
    match change {
        Change::None => Ok(()),
        Change::PutDomain {
            record: d,
            sealed_server_share,
        } => {
            let inserted = tx
                .execute(
                    "INSERT INTO domains (name, fingerprint, params, dim, threshold_cosine,
                         threshold_score, evaluation_keys, registered_at, server_share)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
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
        evaluation_keys: if with_keys { row.get(7) } else { Vec::new() },
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
        let mut client = self.lock()?;
        let mut tx = client.transaction().map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .map_err(backend)?;
        let previous = tx
            .query_opt("SELECT entry FROM audit ORDER BY seq DESC LIMIT 1", &[])
            .map_err(backend)?
            .map(|row| parse_entry(&row.get::<_, String>(0)))
            .transpose()?;
        let seq = previous.as_ref().map_or(1, |p| p.seq + 1);
        apply(&mut tx, change, seq)?;
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
            .lock()?
            .query_opt(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, evaluation_keys
                 FROM domains WHERE name = $1",
                &[&name],
            )
            .map_err(backend)?;
        Ok(row.map(|r| domain_from_row(&r, true)))
    }

    fn domain_share(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .lock()?
            .query_opt("SELECT server_share FROM domains WHERE name = $1", &[&name])
            .map_err(backend)?;
        Ok(row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }

    fn key_share(&self, key_id: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .lock()?
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
            .lock()?
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

    fn domains(&self) -> Result<Vec<DomainRecord>> {
        let rows = self
            .lock()?
            .query(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at
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

    fn template(&self, domain: &str, subject: &SubjectId) -> Result<Option<Vec<u8>>> {
        let row = self
            .lock()?
            .query_opt(
                "SELECT template FROM templates WHERE domain = $1 AND subject = $2",
                &[&domain, &subject.as_str()],
            )
            .map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn templates(&self, domain: &str) -> Result<Vec<(SubjectId, Vec<u8>)>> {
        let rows = self
            .lock()?
            .query(
                "SELECT subject, template FROM templates WHERE domain = $1 ORDER BY position",
                &[&domain],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let subject: String = r.get(0);
                SubjectId::parse(&subject)
                    .map(|s| (s, r.get(1)))
                    .map_err(|e| StoreError::Corrupt(format!("stored subject id: {e}")))
            })
            .collect()
    }

    fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let rows = self
            .lock()?
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
        let mut client = self.lock()?;
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
}

impl PostgresStore {
    fn keys_where(&self, condition: &str, value: Option<&str>) -> Result<Vec<KeyRecord>> {
        let sql = format!(
            "SELECT key_id, public_key, domain, role, label, registered_at, revoked_at,
                    EXISTS (SELECT 1 FROM shares WHERE shares.key_id = keys.key_id)
             FROM keys WHERE {condition} ORDER BY registered_at, key_id"
        );
        let mut client = self.lock()?;
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
