//! Prepared evaluation keys, one per key domain, made once per process and kept.
//!
//! Preparing a domain's keys (decompressing them and converting the bootstrapping key to the
//! Fourier domain) takes about a second; every match needs them. A domain's keys never change
//! once registered (its name is bound to its fingerprint), so the cache never goes stale;
//! replicas sharing a database each prepare a domain on its first use.

use crate::error::ApiError;
use crate::state::AppState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tabir_crypto::evaluation_keys::EvaluationKeys;
use tabir_crypto::server::ServerKeys;
use tabir_proto::ErrorCode;
use tokio::sync::OnceCell;

type Slot = Arc<OnceCell<Arc<ServerKeys>>>;

#[derive(Default)]
pub struct DomainCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl DomainCache {
    fn slot(&self, domain: &str) -> Result<Slot, ApiError> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| ApiError::new(ErrorCode::Internal))?;
        Ok(Arc::clone(slots.entry(domain.to_owned()).or_default()))
    }

    /// Keep keys that were just prepared (at registration).
    pub fn insert(&self, domain: &str, keys: Arc<ServerKeys>) -> Result<(), ApiError> {
        let slot = self.slot(domain)?;
        let _ = slot.set(keys);
        Ok(())
    }

    /// The domain's prepared keys: from the cache, or loaded from the store and prepared once
    /// (concurrent first requests wait for the same preparation).
    pub async fn get(
        &self,
        state: &Arc<AppState>,
        domain: &str,
    ) -> Result<Arc<ServerKeys>, ApiError> {
        let slot = self.slot(domain)?;
        let name = domain.to_owned();
        let keys = slot
            .get_or_try_init(|| async move {
                let record = state
                    .with_store(move |store| store.domain(&name))
                    .await?
                    .ok_or(ApiError::new(ErrorCode::UnknownDomain))?;
                let blob = record.evaluation_keys;
                let prepared = tokio::task::spawn_blocking(move || {
                    EvaluationKeys::from_bytes(&blob).and_then(ServerKeys::prepare)
                })
                .await
                .map_err(|_| ApiError::new(ErrorCode::Internal))?
                .map_err(|e| match e {
                    // A domain registered by the first, symmetric version: refused, with the
                    // way forward in the error's message.
                    tabir_crypto::CryptoError::SymmetricKeyDomain { .. } => {
                        ApiError::new(ErrorCode::LegacyKeyDomain)
                    }
                    _ => {
                        // The store held keys the server itself accepted: this is corruption.
                        tracing::error!(error = %e, "stored evaluation keys do not load");
                        ApiError::new(ErrorCode::Internal)
                    }
                })?;
                Ok::<_, ApiError>(Arc::new(prepared))
            })
            .await?;
        Ok(Arc::clone(keys))
    }
}
