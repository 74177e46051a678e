//! The embedded default: one SQLite file under the server's data folder, in WAL mode with
//! `synchronous = FULL`, so a committed transaction survives a crash or power loss.

use crate::{
    enum_name, parse_enum, parse_report, AuditSealer, Change, DomainRecord, EscrowRecord,
    KeyRecord, Result, Store, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use tabir_proto::audit::{AuditEntry, AuditEvent};
use tabir_proto::SubjectId;

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
];

#[derive(Debug)]
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn parse_subject(text: &str) -> Result<SubjectId> {
    SubjectId::parse(text).map_err(|e| StoreError::Corrupt(format!("stored subject id: {e}")))
}

impl SqliteStore {
    /// Open (creating if needed) the database in `data_dir` and bring its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", data_dir.display())))?;
        let mut connection = Connection::open(data_dir.join(DATABASE_FILE)).map_err(backend)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(backend)?;
        migrate(&mut connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.connection
            .lock()
            .map_err(|_| StoreError::Backend("a previous store operation panicked".into()))
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

/// Apply `change` in `tx`; `seq` is the sequence number of the audit entry committed with it.
fn apply(tx: &Transaction<'_>, change: Change, seq: u64) -> Result<()> {
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
                     threshold_score, evaluation_keys, registered_at, server_share)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    d.name,
                    d.fingerprint,
                    d.params,
                    d.dim,
                    f64::from(d.threshold_cosine),
                    d.threshold_score,
                    d.evaluation_keys,
                    d.registered_at,
                    sealed_server_share
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
    }
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
        registered_at: row.get(6)?,
        evaluation_keys: if with_keys { row.get(7)? } else { Vec::new() },
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
        apply(&tx, change, seq)?;
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
        let connection = self.lock()?;
        connection
            .query_row(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at, evaluation_keys
                 FROM domains WHERE name = ?1",
                [name],
                |row| domain_from_row(row, true),
            )
            .optional()
            .map_err(backend)
    }

    fn domain_share(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let connection = self.lock()?;
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
        let connection = self.lock()?;
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
        let connection = self.lock()?;
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
        let connection = self.lock()?;
        let mut statement = connection
            .prepare(
                "SELECT name, fingerprint, params, dim, threshold_cosine, threshold_score,
                        registered_at
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

    fn template(&self, domain: &str, subject: &SubjectId) -> Result<Option<Vec<u8>>> {
        let connection = self.lock()?;
        connection
            .query_row(
                "SELECT template FROM templates WHERE domain = ?1 AND subject = ?2",
                params![domain, subject.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
    }

    fn templates(&self, domain: &str) -> Result<Vec<(SubjectId, Vec<u8>)>> {
        let connection = self.lock()?;
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
        let connection = self.lock()?;
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
}

impl SqliteStore {
    fn keys_where(&self, condition: &str, value: &str) -> Result<Vec<KeyRecord>> {
        let connection = self.lock()?;
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
