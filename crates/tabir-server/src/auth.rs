//! Request authentication from the headers alone: every route except health, metrics, the
//! OpenAPI document and the one-time bootstrap carries an Ed25519 signature by a registered key
//! over method, path, the body's digest (also sent as a header), request id, timestamp and
//! nonce (`tabir_proto::signing`).
//!
//! [`authenticate`] checks the headers, the key (known, not revoked), the signature over the
//! claimed digest and the nonce (used up in the store, so a replay is refused by every replica,
//! and after a restart too) before a byte of the body is read; the body is then hashed while
//! it is read and must be the one signed (`api::signed`).

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{HeaderMap, Method, Uri};
use std::sync::Arc;
use tabir_proto::signing::{
    self, RequestSignature, FRESHNESS_WINDOW_SECS, HEADER_CONTENT_SHA256, HEADER_KEY_ID,
    HEADER_NONCE, HEADER_REQUEST_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use tabir_proto::{ErrorCode, Role};

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    /// The key domain a device or auditor is registered for.
    pub domain: Option<String>,
}

impl Caller {
    /// Refuse (403) unless the caller has one of `roles` and, for a device or auditor, acts in
    /// `domain` (when the route names one).
    pub fn require(&self, roles: &[Role], domain: Option<&str>) -> Result<(), ApiError> {
        if !roles.contains(&self.role) {
            return Err(ErrorCode::Forbidden.into());
        }
        let bound = matches!(self.role, Role::Device | Role::Auditor);
        if bound && domain.is_some() && self.domain.as_deref() != domain {
            return Err(ErrorCode::Forbidden.into());
        }
        Ok(())
    }

    /// Whether an auditor (or device) may see what concerns `domain`; custodians see all.
    pub fn sees_domain(&self, domain: Option<&str>) -> bool {
        self.role == Role::Custodian || (domain.is_some() && self.domain.as_deref() == domain)
    }
}

/// An authenticated request, before its body is read.
pub struct Authenticated {
    pub caller: Caller,
    pub signature: RequestSignature,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .ok_or(ApiError::new(ErrorCode::Unauthenticated))
}

/// Check the authentication headers against the key registry, the clock and the nonces.
pub async fn authenticate(
    state: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Authenticated, ApiError> {
    let unauthenticated = ApiError::new(ErrorCode::Unauthenticated);
    let signature = RequestSignature {
        key_id: header(headers, HEADER_KEY_ID)?.to_owned(),
        timestamp: header(headers, HEADER_TIMESTAMP)?
            .parse()
            .map_err(|_| unauthenticated)?,
        nonce: header(headers, HEADER_NONCE)?.to_owned(),
        content_sha256: header(headers, HEADER_CONTENT_SHA256)?.to_owned(),
        request_id: headers
            .get(HEADER_REQUEST_ID)
            .map(|v| v.to_str().map(str::to_owned))
            .transpose()
            .map_err(|_| unauthenticated)?,
        signature: header(headers, HEADER_SIGNATURE)?.to_owned(),
    };
    if signature.key_id.len() != 64 || !signing::nonce_is_well_formed(&signature.nonce) {
        return Err(unauthenticated);
    }
    if !signing::is_fresh(signature.timestamp, crate::time::unix_now()) {
        return Err(ErrorCode::StaleRequest.into());
    }
    let lookup = signature.key_id.clone();
    let record = state
        .with_store(move |store| store.key(&lookup))
        .await?
        .filter(|record| record.revoked_at.is_none())
        .ok_or(unauthenticated)?;
    let public_key = signing::parse_public_key(&record.public_key).ok_or(unauthenticated)?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if !signature.is_valid_for(&public_key, method.as_str(), path) {
        return Err(unauthenticated);
    }
    // The nonce is used up now: kept until the request's timestamp leaves the window on
    // either side.
    let now = crate::time::unix_now();
    let expires_at = signature.timestamp.max(now) + FRESHNESS_WINDOW_SECS;
    let (key_id, nonce) = (signature.key_id.clone(), signature.nonce.clone());
    let first_use = state
        .with_store(move |store| store.remember_nonce(&key_id, &nonce, expires_at, now))
        .await?;
    if !first_use {
        return Err(ErrorCode::ReplayedRequest.into());
    }
    Ok(Authenticated {
        caller: Caller {
            key_id: record.key_id,
            role: record.role,
            domain: record.domain,
        },
        signature,
    })
}
