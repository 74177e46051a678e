//! Request authentication: every route except health, metrics and the one-time bootstrap
//! carries an Ed25519 signature by a registered key over method, path, body digest,
//! timestamp and nonce (`tabir_proto::signing`).
//!
//! Two steps, so a stranger cannot make the server read a large body: [`precheck`] looks only
//! at the headers (known, unrevoked key; fresh timestamp; well-formed nonce); after the body
//! is read within the route's limit, [`Pending::finish`] checks the signature and then
//! records the nonce in the store, so a replay inside the freshness window is refused by
//! every replica, and after a restart too.

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{HeaderMap, Method, Uri};
use ed25519_dalek::VerifyingKey;
use std::sync::Arc;
use tabir_proto::signing::{
    self, RequestSignature, FRESHNESS_WINDOW_SECS, HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
};
use tabir_proto::{ErrorCode, Role};

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    /// The key domain a device acts in.
    pub domain: Option<String>,
}

impl Caller {
    /// Refuse (403) unless the caller has one of `roles` and, for a device, acts in `domain`.
    pub fn require(&self, roles: &[Role], domain: Option<&str>) -> Result<(), ApiError> {
        if !roles.contains(&self.role) {
            return Err(ErrorCode::Forbidden.into());
        }
        if self.role == Role::Device && domain.is_some() && self.domain.as_deref() != domain {
            return Err(ErrorCode::Forbidden.into());
        }
        Ok(())
    }
}

/// Headers checked, signature not yet.
pub struct Pending {
    caller: Caller,
    public_key: VerifyingKey,
    signature: RequestSignature,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::new(ErrorCode::Unauthenticated))
}

/// Check the authentication headers against the key registry and the clock.
pub async fn precheck(state: &Arc<AppState>, headers: &HeaderMap) -> Result<Pending, ApiError> {
    let unauthenticated = ApiError::new(ErrorCode::Unauthenticated);
    let key_id = header(headers, HEADER_KEY_ID)?.to_owned();
    let timestamp: u64 = header(headers, HEADER_TIMESTAMP)?
        .parse()
        .map_err(|_| unauthenticated)?;
    let nonce = header(headers, HEADER_NONCE)?.to_owned();
    let signature = header(headers, HEADER_SIGNATURE)?.to_owned();
    if key_id.len() != 64 || !signing::nonce_is_well_formed(&nonce) {
        return Err(unauthenticated);
    }
    if !signing::is_fresh(timestamp, crate::time::unix_now()) {
        return Err(ErrorCode::StaleRequest.into());
    }
    let lookup = key_id.clone();
    let record = state
        .with_store(move |store| store.key(&lookup))
        .await?
        .filter(|record| record.revoked_at.is_none())
        .ok_or(unauthenticated)?;
    let public_key = signing::parse_public_key(&record.public_key).ok_or(unauthenticated)?;
    Ok(Pending {
        caller: Caller {
            key_id: record.key_id,
            role: record.role,
            domain: record.domain,
        },
        public_key,
        signature: RequestSignature {
            key_id,
            timestamp,
            nonce,
            signature,
        },
    })
}

impl Pending {
    /// Check the signature over this request and use up its nonce. Nonces are kept in the
    /// store, so a request is accepted once whichever replica gets it, restarts included.
    pub async fn finish(
        self,
        state: &Arc<AppState>,
        method: &Method,
        uri: &Uri,
        body: &[u8],
    ) -> Result<Caller, ApiError> {
        let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        if !self
            .signature
            .is_valid_for(&self.public_key, method.as_str(), path, body)
        {
            return Err(ErrorCode::Unauthenticated.into());
        }
        let now = crate::time::unix_now();
        // Kept until the request's timestamp leaves the window on either side.
        let expires_at = self.signature.timestamp.max(now) + FRESHNESS_WINDOW_SECS;
        let RequestSignature { key_id, nonce, .. } = self.signature;
        let first_use = state
            .with_store(move |store| store.remember_nonce(&key_id, &nonce, expires_at, now))
            .await?;
        if !first_use {
            return Err(ErrorCode::ReplayedRequest.into());
        }
        Ok(self.caller)
    }
}
