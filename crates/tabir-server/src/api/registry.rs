//! The key-custody registry: key domains, device keys, the first custodian, the server's
//! public key and the audit log.

use super::{audited, Signed};
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Instant;
use tabir_crypto::evaluation_keys::EvaluationKeys;
use tabir_crypto::server::ServerKeys;
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::messages::{
    AuditPage, CustodianBootstrap, DeviceInfo, DeviceRegistration, DomainInfo, ServerInfo,
};
use tabir_proto::routes::{self, AUDIT_PAGE_MAX, LIMIT_EVALUATION_KEYS, LIMIT_JSON};
use tabir_proto::{signing, ErrorCode, Role};
use tabir_store::{Change, DomainRecord, KeyRecord};

/// The one place a stored domain becomes its registry entry.
fn domain_info(record: &DomainRecord) -> DomainInfo {
    DomainInfo {
        name: record.name.clone(),
        fingerprint: record.fingerprint.clone(),
        params: record.params.clone(),
        dim: record.dim,
        threshold_cosine: record.threshold_cosine,
        threshold_score: record.threshold_score,
        registered_at: record.registered_at.clone(),
    }
}

fn device_info(record: &KeyRecord) -> DeviceInfo {
    DeviceInfo {
        key_id: record.key_id.clone(),
        label: record.label.clone(),
        role: record.role,
        domain: record.domain.clone().unwrap_or_default(),
        registered_at: record.registered_at.clone(),
        revoked_at: record.revoked_at.clone(),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::new(ErrorCode::BadRequest))
}

/// `POST /v1/bootstrap` with `Authorization: Bearer <token>`: register the first custodian.
pub async fn bootstrap(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let body = axum::body::to_bytes(body, LIMIT_JSON as usize)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))?;
    let request: CustodianBootstrap = parse_json(&body)?;
    let record = crate::bootstrap::redeem(&state, token, request).await?;
    Ok((StatusCode::CREATED, Json(device_info(&record))).into_response())
}

/// `GET /v1/server`: the audit-signing public key (any registered key).
pub async fn server_info(
    State(state): State<Arc<AppState>>,
    _signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    Ok(Json(ServerInfo {
        audit_public_key: state.server_key.public_key_hex(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: 1,
    })
    .into_response())
}

/// `PUT /v1/domains/{domain}` (custodian): register a domain's evaluation keys.
pub async fn register_domain(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<{ LIMIT_EVALUATION_KEYS }>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let mut act = Act::new(Action::RegisterDomain, Some(&domain));
    // Role and name first; then the keys are decoded once (tens of MiB, on a blocking
    // thread), and the audit entry carries their fingerprint from then on.
    let checked = async {
        caller.require(&[Role::Custodian], None)?;
        if !routes::domain_name_is_valid(&domain) {
            return Err(ApiError::new(ErrorCode::BadRequest));
        }
        let blob = signed.body.to_vec();
        tokio::task::spawn_blocking(move || {
            EvaluationKeys::from_bytes(&blob).map(|decoded| (blob, decoded))
        })
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal))?
        .map_err(ApiError::from)
    }
    .await;
    let (blob, decoded) = match checked {
        Ok(decoded) => decoded,
        Err(error) => return Ok(state.refuse(&caller, &act, error).await.into_response()),
    };
    act.key_fingerprint = Some(decoded.fingerprint().to_hex());
    Ok(audited(&state, &caller, &act, async {
        let config = *decoded.config();
        let fingerprint = decoded.fingerprint().to_hex();
        let started = Instant::now();
        let prepared = state
            .pool
            .run(move || ServerKeys::prepare(decoded))
            .await??;
        state.metrics.fhe_job("prepare_keys", started.elapsed());
        let record = DomainRecord {
            name: domain.clone(),
            fingerprint,
            params: config.params.name().to_owned(),
            dim: config.dim,
            threshold_cosine: config.threshold.cosine,
            threshold_score: config.threshold.score,
            evaluation_keys: blob,
            registered_at: crate::time::rfc3339_now(),
        };
        let info = domain_info(&record);
        state
            .commit(Change::PutDomain(record), act.event(&caller, Outcome::Done))
            .await?;
        state.domains.insert(&domain, Arc::new(prepared))?;
        Ok((StatusCode::CREATED, Json(info)).into_response())
    })
    .await)
}

/// `GET /v1/domains` (auditor, custodian).
pub async fn list_domains(
    State(state): State<Arc<AppState>>,
    signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    signed
        .caller
        .require(&[Role::Auditor, Role::Custodian], None)?;
    let domains = state.with_store(|store| store.domains()).await?;
    Ok(Json(domains.iter().map(domain_info).collect::<Vec<_>>()).into_response())
}

/// `GET /v1/domains/{domain}`: any role; a device only its own domain.
pub async fn get_domain(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    signed.caller.require(
        &[Role::Device, Role::Auditor, Role::Custodian],
        Some(&domain),
    )?;
    let record = state
        .with_store(move |store| store.domain(&domain))
        .await?
        .ok_or(ApiError::new(ErrorCode::UnknownDomain))?;
    Ok(Json(domain_info(&record)).into_response())
}

/// `POST /v1/domains/{domain}/devices` (custodian): register a device or auditor key.
pub async fn register_device(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let act = Act::new(Action::RegisterDevice, Some(&domain));
    Ok(audited(&state, &caller, &act, async {
        caller.require(&[Role::Custodian], None)?;
        let registration: DeviceRegistration = parse_json(&signed.body)?;
        registration
            .validate()
            .map_err(|_| ApiError::new(ErrorCode::BadRequest))?;
        // Custodians are made by the bootstrap only.
        if registration.role == Role::Custodian {
            return Err(ErrorCode::BadRequest.into());
        }
        let public_key = signing::parse_public_key(&registration.public_key)
            .ok_or(ApiError::new(ErrorCode::BadRequest))?;
        let record = KeyRecord {
            key_id: signing::key_id(&public_key),
            public_key: tabir_proto::hex::encode(public_key.as_bytes()),
            domain: Some(domain.clone()),
            role: registration.role,
            label: registration.label,
            registered_at: crate::time::rfc3339_now(),
            revoked_at: None,
        };
        let info = device_info(&record);
        state
            .commit(Change::PutKey(record), act.event(&caller, Outcome::Done))
            .await?;
        Ok((StatusCode::CREATED, Json(info)).into_response())
    })
    .await)
}

/// `GET /v1/domains/{domain}/devices` (custodian, auditor): the domain's keys, revoked ones
/// included.
pub async fn list_devices(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    signed
        .caller
        .require(&[Role::Auditor, Role::Custodian], None)?;
    let lookup = domain.clone();
    if state
        .with_store(move |store| store.domain(&lookup))
        .await?
        .is_none()
    {
        return Err(ErrorCode::UnknownDomain.into());
    }
    let keys = state
        .with_store(move |store| store.keys(Some(&domain)))
        .await?;
    Ok(Json(keys.iter().map(device_info).collect::<Vec<_>>()).into_response())
}

/// `DELETE /v1/domains/{domain}/devices/{key_id}` (custodian): revoke at once.
pub async fn revoke_device(
    State(state): State<Arc<AppState>>,
    Path((domain, key_id)): Path<(String, String)>,
    signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let act = Act::new(Action::RevokeDevice, Some(&domain));
    Ok(audited(&state, &caller, &act, async {
        caller.require(&[Role::Custodian], None)?;
        let lookup = key_id.clone();
        let record = state
            .with_store(move |store| store.key(&lookup))
            .await?
            .filter(|k| k.domain.as_deref() == Some(domain.as_str()) && k.revoked_at.is_none())
            .ok_or(ApiError::new(ErrorCode::UnknownKey))?;
        let at = crate::time::rfc3339_now();
        state
            .commit(
                Change::RevokeKey {
                    key_id,
                    at: at.clone(),
                },
                act.event(&caller, Outcome::Done),
            )
            .await?;
        let mut info = device_info(&record);
        info.revoked_at = Some(at);
        Ok(Json(info).into_response())
    })
    .await)
}

#[derive(serde::Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /v1/audit?after=N&limit=M` (auditor, custodian). Reading is itself audited.
pub async fn audit_page(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
    signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let act = Act::new(Action::ReadAudit, None);
    Ok(audited(&state, &caller, &act, async {
        caller.require(&[Role::Auditor, Role::Custodian], None)?;
        let Ok(Query(query)) = query else {
            return Err(ErrorCode::BadRequest.into());
        };
        let limit = query
            .limit
            .unwrap_or(AUDIT_PAGE_MAX)
            .clamp(1, AUDIT_PAGE_MAX);
        let after = query.after;
        state
            .commit(Change::None, act.event(&caller, Outcome::Done))
            .await?;
        let entries = state
            .with_store(move |store| store.audit_page(after, limit))
            .await?;
        let next_after = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq))
            .flatten();
        Ok(Json(AuditPage {
            entries,
            next_after,
        })
        .into_response())
    })
    .await)
}
