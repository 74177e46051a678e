//! The server's halves of the decryption shares: the reference share S2_ref of each domain and
//! the share S2_j of each device and auditor, sealed under the master key in the store and
//! opened only for the moment one is used. The server applies a caller's share to the results
//! it computed for that caller; there is no route that applies a share to a ciphertext a caller
//! sends.

use crate::error::ApiError;
use crate::state::AppState;
use crate::vault::Sealed;
use std::sync::Arc;
use tabir_crypto::server::ServerKeys;
use tabir_crypto::shares::{ServerShare, ShareDelta};
use tabir_proto::ErrorCode;

/// The reference share sealed for storage with its domain.
pub fn seal_reference(
    state: &AppState,
    domain: &str,
    share: &ServerShare,
) -> Result<Vec<u8>, ApiError> {
    state
        .master_key
        .seal(Sealed::ReferenceShare, domain, &share.export_secret())
}

/// S2_j = S2_ref + delta_j for a key the custodian just issued, sealed for storage.
pub async fn derive_key_share(
    state: &Arc<AppState>,
    domain: &str,
    keys: &ServerKeys,
    key_id: &str,
    delta: &ShareDelta,
) -> Result<Vec<u8>, ApiError> {
    let lookup = domain.to_owned();
    let sealed = state
        .with_store(move |store| store.domain_share(&lookup))
        .await?
        .ok_or(ApiError::new(ErrorCode::LegacyKeyDomain))?;
    let reference = open(state, Sealed::ReferenceShare, domain, &sealed, keys)?;
    let derived = reference.derive(delta)?;
    state
        .master_key
        .seal(Sealed::KeyShare, key_id, &derived.export_secret())
}

/// The server share of a registered device or auditor. A key without one (revoked meanwhile,
/// or a custodian) cannot receive results.
pub async fn key_share(
    state: &Arc<AppState>,
    key_id: &str,
    keys: &ServerKeys,
) -> Result<ServerShare, ApiError> {
    let lookup = key_id.to_owned();
    let sealed = state
        .with_store(move |store| store.key_share(&lookup))
        .await?
        .ok_or(ApiError::new(ErrorCode::Forbidden))?;
    open(state, Sealed::KeyShare, key_id, &sealed, keys)
}

fn open(
    state: &AppState,
    what: Sealed,
    owner: &str,
    sealed: &[u8],
    keys: &ServerKeys,
) -> Result<ServerShare, ApiError> {
    let bytes = state.master_key.open(what, owner, sealed).ok_or_else(|| {
        tracing::error!(
            ?what,
            "a stored share does not open with this master key (wrong key, or an altered row)"
        );
        ApiError::new(ErrorCode::Internal)
    })?;
    ServerShare::import_secret(&bytes, keys.config(), keys.fingerprint()).map_err(|e| {
        tracing::error!(error = %e, "a stored share does not fit its domain");
        ApiError::new(ErrorCode::Internal)
    })
}

/// Whether this master key opens the stored reference shares (checked at start, so a wrong
/// key is a clear start-up error instead of failures at the first verification).
pub fn master_key_opens(state: &AppState, domain: &str, sealed: &[u8]) -> bool {
    state
        .master_key
        .open(Sealed::ReferenceShare, domain, sealed)
        .is_some()
}
