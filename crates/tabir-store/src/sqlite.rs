//! The embedded default: one SQLite file under the server's data folder, in WAL mode with
//! `synchronous = FULL`, so a committed transaction survives a crash or power loss.

use crate::{
    parse_role, role_name, AuditSealer, Change, DomainRecord, KeyRecord, Result, Store, StoreError,
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

fn apply(tx: &Transaction<'_>, change: Change) -> Result<()> {
    match change {
        Change::None => Ok(()),
        Change::PutDomain(d) => {
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
                     threshold_score, evaluation_keys, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    d.name,
                    d.fingerprint,
                    d.params,
                    d.dim,
                    f64::from(d.threshold_cosine),
                    d.threshold_score,
                    d.evaluation_keys,
                    d.registered_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        }
        Change::PutKey(k) => {
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
                        role_name(k.role),
                        k.label,
                        k.registered_at
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::KeyExists);
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
        apply(&tx, change)?;
        let previous = last_audit_entry(&tx)?;
        let entry = sealer.seal(event, previous.as_ref());
        if entry.seq != previous.as_ref().map_or(1, |p| p.seq + 1) {
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
                "SELECT key_id, public_key, domain, role, label, registered_at, revoked_at
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
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (key_id, public_key, domain, role, label, registered_at, revoked_at) =
                row.map_err(backend)?;
            out.push(KeyRecord {
                key_id,
                public_key,
                domain,
                role: parse_role(&role)?,
                label,
                registered_at,
                revoked_at,
            });
        }
        Ok(out)
    }
}
