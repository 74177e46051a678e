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

mod jobs;
pub mod postgres;
pub mod sqlite;

use tabir_proto::audit::{Action, AuditEntry, AuditEvent, ReportedDecision};
use tabir_proto::routes::Role;
use tabir_proto::SubjectTag;

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
    /// The 1:N threshold (cosine, score) registered with the domain; None for domains
    /// registered before 1:N had its own (they search with the 1:1 threshold).
    pub identify_threshold: Option<(f32, i32)>,
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
/// Where an identification job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Shards are waiting for or being evaluated by workers.
    Running,
    /// Every shard is done and the result is escrowed (`audit_seq`).
    Done,
    /// A shard could not be evaluated (see `error`); nothing more runs.
    Failed,
    /// The device that asked cancelled it; nothing more runs.
    Cancelled,
}

/// An identification job: a probe searched against a domain's gallery in shards.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub job_id: String,
    pub domain: String,
    /// The device that asked (only it may read or cancel the job).
    pub key_id: String,
    pub state: JobState,
    /// Templates in the gallery when the job was created (the search covers exactly those
    /// positions; later enrolments are not searched).
    pub gallery_size: u64,
    pub shards_total: u32,
    pub shards_done: u32,
    /// Error code when failed (an [`tabir_proto::ErrorCode`] name).
    pub error: Option<String>,
    /// The audit entry escrowing the result, when done.
    pub audit_seq: Option<u64>,
    pub created_at: String,
    pub updated_at: String,
}

/// One shard of a job: the templates whose positions lie in `first_position..=last_position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardRange {
    pub shard: u32,
    pub first_position: i64,
    pub last_position: i64,
}

/// What recording a shard's bit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardOutcome {
    /// Recorded; `done` of `total` shards now have their bit.
    Recorded { done: u32, total: u32 },
    /// The shard already had its bit (a redelivered task): nothing changed.
    AlreadyDone { done: u32, total: u32 },
    /// The job is no longer running (cancelled, failed, done, or gone): nothing changed.
    JobNotRunning,
}

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
    /// Enrol (or replace) the template of a subject, named by its keyed tag (the store never
    /// holds a NIK).
    PutTemplate {
        domain: String,
        subject: SubjectTag,
        template: Vec<u8>,
        at: String,
    },
    DeleteTemplate {
        domain: String,
        subject: SubjectTag,
    },
    /// Register the first custodian with a one-time bootstrap token: valid only when the token
    /// (its SHA-256, hex) is outstanding, unexpired and unused, and no custodian exists yet. It
    /// is then used up, on every replica.
    RedeemBootstrap {
        token_digest: String,
        now: u64,
        record: KeyRecord,
    },
    /// The end of an identification job: escrow its result (as [`Change::Escrow`] with the
    /// job's domain, device and `Action::Identify`), mark the job done with this audit entry,
    /// and delete its probe and shard bits. Refused with [`StoreError::JobNotRunning`] when
    /// the job is not running (so a result is escrowed at most once).
    FinishJob {
        job_id: String,
        result: Vec<u8>,
    },
    /// A job that cannot finish: mark it failed with `error` and delete its probe and shard
    /// bits. Refused with [`StoreError::JobNotRunning`] when it is not running.
    FailJob {
        job_id: String,
        error: String,
    },
    /// The asking device cancels its job: mark it cancelled, delete probe and shard bits.
    /// [`StoreError::UnknownJob`] when no such job belongs to `key_id`;
    /// [`StoreError::JobNotRunning`] when it already ended.
    CancelJob {
        job_id: String,
        key_id: String,
    },
}

/// One quota to check: at most `limit` events of `scope` within the last `window_secs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaCheck {
    /// What is counted, e.g. `subject:<domain>:<tag>` or `device:<key id>`.
    pub scope: String,
    pub window_secs: u64,
    pub limit: u32,
}

/// The answer to [`Store::take_quota`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Within every quota; the event was counted.
    Granted,
    /// Over quota `check` (an index into the checks given); nothing was counted. The oldest
    /// event in that window leaves it in `retry_after_secs`.
    Exceeded { check: usize, retry_after_secs: u64 },
}

/// An answer kept for a request id, so a retry gets it again instead of a second execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub content_type: String,
    /// The audit entry named in the answer's header, if any.
    pub audit_seq: Option<u64>,
    pub body: Vec<u8>,
}

/// What [`Store::begin_request`] found for a request id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestRecord {
    /// Unseen: recorded as in progress; run it, then `finish_request` or `abandon_request`.
    New,
    /// Another attempt of it is still running.
    InProgress,
    /// Done before: answer this again.
    Answered(StoredAnswer),
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
    #[error("the bootstrap token is unknown, used, expired, or a custodian exists already")]
    BootstrapRefused,
    #[error("no such identification job")]
    UnknownJob,
    #[error("the identification job has already ended")]
    JobNotRunning,
    #[error("the stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database is unreachable, restarting or busy (a lock or statement timeout): the same
    /// call may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
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

    /// A domain with its evaluation keys (tens of MiB).
    fn domain(&self, name: &str) -> Result<Option<DomainRecord>>;
    /// A domain's registry entry without its keys (never reads the key blob).
    fn domain_info(&self, name: &str) -> Result<Option<DomainRecord>>;
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
    fn template(&self, domain: &str, subject: &SubjectTag) -> Result<Option<Vec<u8>>>;
    /// The domain's gallery, in enrolment order.
    fn templates(&self, domain: &str) -> Result<Vec<(SubjectTag, Vec<u8>)>>;
    /// Audit entries with `seq > after`, at most `limit`, in order.
    fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Record a request nonce of `key_id`, kept until `expires_at` (Unix seconds); false when
    /// it is already recorded (a replay). Nonces past `now` are forgotten. Shared by replicas
    /// and kept across restarts, so a request is accepted once, anywhere.
    fn remember_nonce(&self, key_id: &str, nonce: &str, expires_at: u64, now: u64) -> Result<bool>;

    /// Count one event against every check's scope, atomically, if none is over its limit at
    /// `now` (Unix seconds); otherwise count nothing. Shared by replicas.
    fn take_quota(&self, checks: &[QuotaCheck], now: u64) -> Result<QuotaDecision>;

    /// Record that `key_id` started request `request_id` (kept until `expires_at`), or find
    /// what became of it. Shared by replicas and kept across restarts.
    fn begin_request(
        &self,
        key_id: &str,
        request_id: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<RequestRecord>;
    /// Keep the answer to a request started with `begin_request`.
    fn finish_request(&self, key_id: &str, request_id: &str, answer: &StoredAnswer) -> Result<()>;
    /// Forget a request that failed in a way worth retrying (a new attempt runs it again).
    fn abandon_request(&self, key_id: &str, request_id: &str) -> Result<()>;

    /// Keep a one-time bootstrap token's SHA-256 (hex) until `expires_at`.
    fn add_bootstrap_token(&self, token_digest: &str, expires_at: u64) -> Result<()>;

    // Identification jobs. The probe and shard bits are ciphertexts, opaque here.

    /// Create a running job over the domain's gallery as it is now: the templates' positions,
    /// in order, cut into shards of at most `shard_templates`. Returns the job and its shards
    /// (none for an empty gallery). `job_id` is chosen by the caller (random).
    fn create_job(
        &self,
        job_id: &str,
        domain: &str,
        key_id: &str,
        probe: &[u8],
        shard_templates: usize,
        now: &str,
    ) -> Result<(JobRecord, Vec<ShardRange>)>;
    fn job(&self, job_id: &str) -> Result<Option<JobRecord>>;
    /// The job's probe, while it is running.
    fn job_probe(&self, job_id: &str) -> Result<Option<Vec<u8>>>;
    /// Shards of a running job that have no bit yet.
    fn pending_shards(&self, job_id: &str) -> Result<Vec<ShardRange>>;
    /// Jobs still running (to resume after a restart).
    fn running_jobs(&self) -> Result<Vec<JobRecord>>;
    /// Templates of `domain` with positions in the range, in position order (deleted ones are
    /// simply absent).
    fn templates_in_range(
        &self,
        domain: &str,
        first_position: i64,
        last_position: i64,
    ) -> Result<Vec<Vec<u8>>>;
    /// Record a shard's encrypted bit (idempotent: see [`ShardOutcome`]).
    fn finish_shard(&self, job_id: &str, shard: u32, bit: &[u8], now: &str)
        -> Result<ShardOutcome>;
    /// Every shard's bit, in shard order, once all are done (None while some are missing or
    /// the job is not running).
    fn shard_bits(&self, job_id: &str) -> Result<Option<Vec<Vec<u8>>>>;
}
