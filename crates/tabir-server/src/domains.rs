//! Prepared evaluation keys, per key domain, made on first use and kept while there is room.
//!
//! Preparing a domain's keys (decompressing them and converting the bootstrapping key to the
//! Fourier domain) takes about a second of FHE work, and the result holds about 120 MiB. It is
//! done on the FHE pool (so it counts against the pool's capacity and a busy server answers
//! 429 instead of preparing), once per domain however many requests wait for it, and kept in a
//! cache bounded by bytes: past the bound, the least recently used domain's keys are dropped
//! (requests holding them finish first). A domain's keys never change once registered (its
//! name is bound to its fingerprint), so nothing goes stale.

use crate::error::ApiError;
use crate::state::AppState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tabir_crypto::evaluation_keys::EvaluationKeys;
use tabir_crypto::server::ServerKeys;
use tabir_proto::ErrorCode;
use tokio::sync::OnceCell;

type Slot = Arc<OnceCell<Arc<ServerKeys>>>;

pub struct DomainCache {
    capacity_bytes: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    /// Domains whose keys are ready, least recently used first, with their sizes.
    recency: Vec<(String, u64)>,
}

impl Inner {
    /// Mark `domain` used now; drop the least recently used others while over `capacity`.
    fn touch(&mut self, domain: &str, bytes: u64, capacity: u64) {
        self.recency.retain(|(name, _)| name != domain);
        self.recency.push((domain.to_owned(), bytes));
        let mut used: u64 = self.recency.iter().map(|(_, b)| b).sum();
        while used > capacity && self.recency.len() > 1 {
            let (evicted, bytes) = self.recency.remove(0);
            self.slots.remove(&evicted);
            used -= bytes;
            tracing::info!(domain = %evicted, "prepared keys dropped from the cache");
        }
    }
}

impl DomainCache {
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            capacity_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, ApiError> {
        self.inner
            .lock()
            .map_err(|_| ApiError::new(ErrorCode::Internal))
    }

    fn slot(&self, domain: &str) -> Result<Slot, ApiError> {
        Ok(Arc::clone(
            self.lock()?.slots.entry(domain.to_owned()).or_default(),
        ))
    }

    /// Keep keys that were just prepared (at registration).
    pub fn insert(&self, domain: &str, keys: Arc<ServerKeys>) -> Result<(), ApiError> {
        let bytes = keys.memory_bytes() as u64;
        let slot = self.slot(domain)?;
        let _ = slot.set(keys);
        self.lock()?.touch(domain, bytes, self.capacity_bytes);
        Ok(())
    }

    /// Domains whose prepared keys are held now.
    pub fn held(&self) -> usize {
        self.lock().map_or(0, |inner| inner.recency.len())
    }

    /// The domain's prepared keys: from the cache, or loaded from the store and prepared once
    /// on the FHE pool (concurrent first requests wait for the same preparation).
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
                let started = Instant::now();
                let prepared = state
                    .pool
                    .run(move || EvaluationKeys::from_bytes(&blob).and_then(ServerKeys::prepare))
                    .await?
                    .map_err(|e| match e {
                        // A domain registered by the first, symmetric version: refused, with
                        // the way forward in the error's message.
                        tabir_crypto::CryptoError::SymmetricKeyDomain { .. } => {
                            ApiError::new(ErrorCode::LegacyKeyDomain)
                        }
                        _ => {
                            // The store held keys the server itself accepted: corruption.
                            tracing::error!(error = %e, "stored evaluation keys do not load");
                            ApiError::new(ErrorCode::Internal)
                        }
                    })?;
                state.metrics.fhe_job("prepare_keys", started.elapsed());
                Ok::<_, ApiError>(Arc::new(prepared))
            })
            .await?;
        let keys = Arc::clone(keys);
        self.lock()?
            .touch(domain, keys.memory_bytes() as u64, self.capacity_bytes);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_domain_is_dropped_past_the_bound() {
        let mut inner = Inner::default();
        for name in ["a", "b", "c"] {
            inner.slots.insert(name.into(), Slot::default());
        }
        inner.touch("a", 100, 250);
        inner.touch("b", 100, 250);
        inner.touch("a", 100, 250); // a is the most recent now
        inner.touch("c", 100, 250); // 300 > 250: b goes
        assert!(inner.slots.contains_key("a") && inner.slots.contains_key("c"));
        assert!(!inner.slots.contains_key("b"));
        // One domain larger than the bound still stays (it is in use).
        inner.touch("d", 1000, 250);
        assert_eq!(inner.recency.len(), 1);
    }
}
