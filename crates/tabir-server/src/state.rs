//! What every request handler shares: the store, the audit key, the domain-key cache, the
//! FHE pool and the metrics.

use crate::auth::Caller;
use crate::bootstrap::{BootstrapToken, ServerKeyFile};
use crate::domains::DomainCache;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pool::FhePool;
use crate::vault::MasterKey;
use std::sync::Arc;
use tabir_proto::audit::{
    self, Action, AuditEntry, AuditEvent, Outcome, ReportedDecision, SeqRange,
};
use tabir_proto::{ErrorCode, SubjectId};
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
    /// The largest gallery one identification scans.
    pub max_gallery: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            fhe_workers: cores,
            fhe_queue: 4 * cores,
            retry_after_secs: 1,
            max_gallery: 4096,
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub server_key: ServerKeyFile,
    pub master_key: MasterKey,
    pub domains: DomainCache,
    pub pool: FhePool,
    pub metrics: Metrics,
    pub bootstrap: BootstrapToken,
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
    pub subject: Option<SubjectId>,
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
            domains: DomainCache::default(),
            pool: FhePool::new(
                config.fhe_workers,
                config.fhe_queue,
                config.retry_after_secs,
            ),
            metrics: Metrics::default(),
            bootstrap: BootstrapToken::default(),
            config,
        })
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
