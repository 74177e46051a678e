//! What every request handler shares: the store, the audit key, the domain-key cache, the
//! FHE pool and the metrics.

use crate::auth::Caller;
use crate::bootstrap::ServerKeyFile;
use crate::domains::DomainCache;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pool::FhePool;
use crate::vault::MasterKey;
use std::sync::Arc;
use std::time::Duration;
use tabir_proto::audit::{
    self, Action, AuditEntry, AuditEvent, Outcome, ReportedDecision, SeqRange,
};
use tabir_proto::{ErrorCode, SubjectId, SubjectTag};
use tabir_store::{AuditSealer, Change, Store, StoreError};

/// Tunables of one server process.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Threads evaluating encrypted matches (default: the machine's cores).
    pub fhe_workers: usize,
    /// Matches that may wait for a worker; beyond workers + queue the server answers 429.
    pub fhe_queue: usize,
    /// Seconds a 429 asks the caller to wait.
    pub retry_after_secs: u64,
    /// The largest gallery one identification job searches.
    pub max_gallery: usize,
    /// How 1:N searches run: threads, shard size, and the queue (in-process or NATS).
    pub search: crate::search::SearchConfig,
    pub limits: Limits,
    pub quotas: Quotas,
    /// Bytes of prepared evaluation keys kept in memory (about 120 MiB a domain); the least
    /// recently used domain's keys are dropped beyond it.
    pub key_cache_bytes: u64,
    /// How long a bootstrap token stays valid.
    pub bootstrap_token_secs: u64,
}

/// What a connection and a request may take: the defences against slow and hostile clients.
#[derive(Clone, Debug)]
pub struct Limits {
    /// To send a request's headers (for a connection's first request, counted from its
    /// opening, TLS handshake included); also how long a kept-alive HTTP/1 connection may
    /// wait between requests.
    pub header_timeout: Duration,
    /// A body's fixed allowance, on top of its size at `min_body_bytes_per_sec`.
    pub body_timeout: Duration,
    pub min_body_bytes_per_sec: u64,
    /// From the headers to the end of the answer.
    pub request_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections; more are closed at once.
    pub max_connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_h2_streams: u32,
    /// Bodies over 1 MiB (domain registrations) read at once.
    pub max_large_bodies: usize,
    /// How long an answer is kept for retries of its request id.
    pub request_record_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            min_body_bytes_per_sec: 256 * 1024,
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(180),
            max_connections: 1024,
            max_h2_streams: 32,
            max_large_bodies: 2,
            request_record_secs: 600,
        }
    }
}

/// Verification quotas over sliding windows, shared by replicas (the store counts). They bound
/// what a registered device can learn through the verify route used as an oracle
/// (docs/threat-model.md). Zero turns a quota off.
#[derive(Clone, Debug)]
pub struct Quotas {
    /// Verifications of one subject, by any device, per 24 hours.
    pub subject_per_day: u32,
    /// Verifications and identifications by one device per hour.
    pub device_per_hour: u32,
    /// ... and per 24 hours.
    pub device_per_day: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            subject_per_day: 10,
            device_per_hour: 200,
            device_per_day: 2000,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            fhe_workers: cores,
            fhe_queue: 4 * cores,
            retry_after_secs: 1,
            max_gallery: 2_000_000,
            search: crate::search::SearchConfig::default(),
            limits: Limits::default(),
            quotas: Quotas::default(),
            key_cache_bytes: 1 << 30,
            bootstrap_token_secs: 3600,
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub server_key: ServerKeyFile,
    pub master_key: MasterKey,
    pub domains: DomainCache,
    pub pool: FhePool,
    /// 1:N searches: their own low-priority threads and their queue.
    pub search: crate::search::SearchService,
    pub metrics: Metrics,
    /// Slots for reading large bodies (domain registrations).
    pub large_bodies: Arc<tokio::sync::Semaphore>,
    pub config: ServerConfig,
}

impl AuditSealer for ServerKeyFile {
    fn seal(&self, event: AuditEvent, previous: Option<&AuditEntry>) -> AuditEntry {
        audit::seal(event, previous, self.signing_key())
    }
}

/// What an audit entry says about one request, before its outcome is known.
#[derive(Clone, Debug)]
pub struct Act {
    pub action: Action,
    pub domain: Option<String>,
    pub key_fingerprint: Option<String>,
    pub subject: Option<SubjectTag>,
    pub refers_to: Option<SeqRange>,
    pub reported: Option<ReportedDecision>,
}

impl Act {
    pub fn new(action: Action, domain: Option<&str>) -> Self {
        Self {
            action,
            domain: domain.map(str::to_owned),
            key_fingerprint: None,
            subject: None,
            refers_to: None,
            reported: None,
        }
    }

    pub fn event(&self, caller: &Caller, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            time: crate::time::rfc3339_now(),
            actor: caller.key_id.clone(),
            role: Some(caller.role),
            domain: self.domain.clone(),
            key_fingerprint: self.key_fingerprint.clone(),
            action: self.action,
            subject: self.subject.clone(),
            outcome,
            refers_to: self.refers_to,
            reported: self.reported,
        }
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        server_key: ServerKeyFile,
        master_key: MasterKey,
        config: ServerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            server_key,
            master_key,
            domains: DomainCache::new(config.key_cache_bytes),
            pool: FhePool::new(
                config.fhe_workers,
                config.fhe_queue,
                config.retry_after_secs,
            ),
            search: crate::search::SearchService::new(config.search.clone()),
            metrics: Metrics::default(),
            large_bodies: Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_large_bodies.max(1),
            )),
            config,
        })
    }

    /// What every record names instead of a NIK: its keyed tag in `domain`.
    pub fn subject_tag(&self, domain: &str, subject: &SubjectId) -> SubjectTag {
        self.master_key.subject_tag(domain, subject.as_str())
    }

    /// Run a store call off the async runtime (the store is synchronous: SQLite or the
    /// blocking PostgreSQL client).
    pub async fn with_store<T, F>(self: &Arc<Self>, call: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || call(state.store.as_ref()))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal))?
            .map_err(ApiError::from)
    }

    /// Apply a change together with its audit entry (one transaction).
    pub async fn commit(
        self: &Arc<Self>,
        change: Change,
        event: AuditEvent,
    ) -> Result<AuditEntry, ApiError> {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || state.store.commit(change, event, &state.server_key))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal))?
            .map_err(ApiError::from)
    }

    /// Record that an authenticated caller was refused, then hand the refusal back. Callers
    /// that could not be authenticated are not logged (anyone could flood the log).
    pub async fn refuse(self: &Arc<Self>, caller: &Caller, act: &Act, error: ApiError) -> ApiError {
        let outcome = if error.code == ErrorCode::Internal {
            Outcome::Failed
        } else {
            Outcome::Refused(error.code.name().to_owned())
        };
        // Overload answers are not audited: they are frequent, carry no decision, and writing
        // them would add load exactly when the server has none to spare.
        if error.code != ErrorCode::Overloaded {
            if let Err(audit_error) = self.commit(Change::None, act.event(caller, outcome)).await {
                tracing::error!(code = %audit_error.code, "could not audit a refusal");
            }
        }
        error
    }
}
