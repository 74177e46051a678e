//! # tabir-store
//!
//! Where the server keeps key domains (with their evaluation keys), device keys, encrypted
//! templates and the audit log. Every change is written in one transaction together with its
//! audit entry, so an acknowledged write and its audit record are both durable, or neither is.
//!
//! [`Store`] is the interface; [`sqlite::SqliteStore`] is the embedded default (WAL,
//! synchronous=FULL); [`postgres::PostgresStore`] serves several replicas sharing a database.
//! The store holds ciphertexts as opaque bytes: it never decodes them and has no key.

#![forbid(unsafe_code)]

pub mod postgres;
pub mod sqlite;

use tabir_proto::audit::{Action, AuditEntry, AuditEvent, ReportedDecision};
use tabir_proto::routes::Role;
use tabir_proto::SubjectId;

/// A registered key domain.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainRecord {
    pub name: String,
    /// Hex key fingerprint, computed by the server from the keys.
    pub fingerprint: String,
    pub params: String,
    pub dim: u32,
    pub threshold_cosine: f32,
    pub threshold_score: i32,
    /// The evaluation keys as uploaded (tens of MiB).
    pub evaluation_keys: Vec<u8>,
    pub registered_at: String,
}

/// A registered signing key (device, auditor or custodian).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    /// Hex SHA-256 of the public key.
    pub key_id: String,
    /// Hex Ed25519 public key.
    pub public_key: String,
    /// The domain a device acts in; None for keys not bound to one domain.
    pub domain: Option<String>,
    pub role: Role,
    pub label: String,
    pub registered_at: String,
    pub revoked_at: Option<String>,
    /// Whether a decryption share is stored for this key (read only; set by `PutKey`).
    pub holds_share: bool,
}

/// A result kept in escrow with the audit entry of the verification or identification that
/// produced it, and the decision its device reported, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct EscrowRecord {
    /// The audit entry's sequence number.
    pub seq: u64,
    pub domain: String,
    /// The device that asked.
    pub key_id: String,
    pub action: Action,
    /// The escrowed bit (a `tabir-crypto` blob, under the whole domain key).
    pub result: Vec<u8>,
    /// The report's audit entry and the decision it states.
    pub report: Option<(u64, ReportedDecision)>,
}

/// A change to the stored state, applied atomically with its audit entry.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Change {
    /// Nothing but the audit entry (refusals, audit reads).
    None,
    /// A new domain with its reference server share, sealed by the server (opaque here).
    PutDomain {
        record: DomainRecord,
        sealed_server_share: Vec<u8>,
    },
    /// A new key; devices and auditors come with their server share, sealed by the server.
    PutKey {
        record: KeyRecord,
        sealed_share: Option<Vec<u8>>,
    },
    /// Revocation: the key is refused from now on and its server share is deleted.
    RevokeKey {
        key_id: String,
        at: String,
    },
    /// Keep a verification's or identification's result in escrow under the sequence number
    /// of the audit entry committed with it.
    Escrow {
        domain: String,
        key_id: String,
        action: Action,
        result: Vec<u8>,
    },
    /// Record a device's report of the decision it read from escrowed result `seq`. Only the
    /// device that asked may report, once.
    ReportDecision {
        domain: String,
        key_id: String,
        seq: u64,
        decision: ReportedDecision,
    },
    PutTemplate {
        domain: String,
        subject: SubjectId,
        template: Vec<u8>,
        at: String,
    },
    DeleteTemplate {
        domain: String,
        subject: SubjectId,
    },
}

/// Seals an audit event after the last entry (chains and signs it: the server's key).
pub trait AuditSealer {
    fn seal(&self, event: AuditEvent, previous: Option<&AuditEntry>) -> AuditEntry;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("a key domain named {0} already exists")]
    DomainExists(String),
    #[error("no key domain named {0}")]
    UnknownDomain(String),
    #[error("the key is already registered")]
    KeyExists,
    #[error("no such key, or it is already revoked")]
    UnknownKey,
    #[error("no enrolment for this subject")]
    UnknownSubject,
    #[error("no escrowed result of this domain and device has this sequence number")]
    UnknownEscrow,
    #[error("a decision was already reported for this result")]
    AlreadyReported,
    #[error("the stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage failed: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How an enum with a snake_case serde name (a role, an action...) is written in a database
/// column: its protocol name.
pub(crate) fn enum_name<T: serde::Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

pub(crate) fn parse_enum<T: serde::de::DeserializeOwned>(name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("unknown value {name:?}")))
}

/// The report columns of an escrow row.
pub(crate) fn parse_report(
    report_seq: Option<i64>,
    reported: Option<String>,
) -> Result<Option<(u64, ReportedDecision)>> {
    match (report_seq, reported) {
        (Some(seq), Some(decision)) => Ok(Some((seq as u64, parse_enum(&decision)?))),
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt("half-written escrow report".into())),
    }
}

/// The storage interface of the server. Implementations are safe to share between threads.
pub trait Store: Send + Sync {
    /// Apply `change` and append the audit entry for `event`, in one transaction. Returns the
    /// sealed entry. A change that cannot apply (unknown domain...) writes nothing at all.
    fn commit(
        &self,
        change: Change,
        event: AuditEvent,
        sealer: &dyn AuditSealer,
    ) -> Result<AuditEntry>;

    fn domain(&self, name: &str) -> Result<Option<DomainRecord>>;
    /// The domain's reference server share as sealed by the server; None for an unknown
    /// domain, or a symmetric one from before shares (Some(empty) never happens).
    fn domain_share(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// A key's server share as sealed by the server; None once revoked or for custodians.
    fn key_share(&self, key_id: &str) -> Result<Option<Vec<u8>>>;
    /// Escrowed results of `domain` with `from <= seq <= to`, at most `limit`, in order.
    fn escrow_page(
        &self,
        domain: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<EscrowRecord>>;
    /// All domains, without their evaluation keys (left empty), by name.
    fn domains(&self) -> Result<Vec<DomainRecord>>;
    fn key(&self, key_id: &str) -> Result<Option<KeyRecord>>;
    fn keys(&self, domain: Option<&str>) -> Result<Vec<KeyRecord>>;
    fn template(&self, domain: &str, subject: &SubjectId) -> Result<Option<Vec<u8>>>;
    /// The domain's gallery, in enrolment order.
    fn templates(&self, domain: &str) -> Result<Vec<(SubjectId, Vec<u8>)>>;
    /// Audit entries with `seq > after`, at most `limit`, in order.
    fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Record a request nonce of `key_id`, kept until `expires_at` (Unix seconds); false when
    /// it is already recorded (a replay). Nonces past `now` are forgotten. Shared by replicas
    /// and kept across restarts, so a request is accepted once, anywhere.
    fn remember_nonce(&self, key_id: &str, nonce: &str, expires_at: u64, now: u64) -> Result<bool>;
}
