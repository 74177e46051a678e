//! The key-custody registry: key domains, device keys, the first custodian, the server's
//! public key and the audit log.

use super::{audited, policy, Signed};
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Instant;
use tabir_crypto::registration::DomainRegistration;
use tabir_crypto::server::ServerKeys;
use tabir_crypto::shares::ShareDelta;
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::audit::{Checkpoint, LogEntry};
use tabir_proto::messages::{
    AuditPage, CustodianBootstrap, DeviceInfo, DeviceRegistration, DomainInfo, ServerInfo,
};
use tabir_proto::routes::{self, AUDIT_PAGE_MAX, LIMIT_JSON};
use tabir_proto::{signing, ErrorCode, Role};
use tabir_store::{Change, DomainRecord, KeyRecord};

/// At start: refuse a master key that does not open the stored shares (a wrong key file or
/// environment secret), rather than failing every verification later.
pub async fn check_master_key(state: &Arc<AppState>) -> Result<(), crate::StartError> {
    let store = Arc::clone(&state.store);
    let stored = tokio::task::spawn_blocking(move || {
        let domains = store.domains()?;
        for domain in domains {
            if let Some(sealed) = store.domain_share(&domain.name)? {
                return Ok(Some((domain.name, sealed)));
            }
        }
        Ok::<_, tabir_store::StoreError>(None)
    })
    .await
    .map_err(|e| crate::StartError::Startup(e.to_string()))??;
    match stored {
        Some((domain, sealed)) if !crate::shares::master_key_opens(state, &domain, &sealed) => {
            Err(crate::StartError::WrongMasterKey(format!(
                "the share of key domain {domain} does not open; start with the master key this                  database was written with"
            )))
        }
        _ => Ok(()),
    }
}

/// The one place a stored domain becomes its registry entry.
fn domain_info(record: &DomainRecord) -> DomainInfo {
    DomainInfo {
        name: record.name.clone(),
        fingerprint: record.fingerprint.clone(),
        params: record.params.clone(),
        dim: record.dim,
        threshold_cosine: record.threshold_cosine,
        threshold_score: record.threshold_score,
        identify_threshold_cosine: record
            .identify_threshold
            .map_or(record.threshold_cosine, |(cosine, _)| cosine),
        identify_threshold_score: record
            .identify_threshold
            .map_or(record.threshold_score, |(_, score)| score),
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
        holds_share: record.holds_share,
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::new(ErrorCode::BadRequest))
}

/// `POST /v1/bootstrap` with `Authorization: Bearer <token>`: register the first custodian.
/// Without a token the request is refused before its body is read, like any unauthenticated
/// request.
pub async fn bootstrap(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.trim().is_empty())
        .ok_or(ApiError::new(ErrorCode::Unauthenticated))?
        .to_owned();
    let body = tokio::time::timeout(
        state.config.limits.body_timeout,
        axum::body::to_bytes(body, LIMIT_JSON as usize),
    )
    .await
    .map_err(|_| ApiError::new(ErrorCode::RequestTimeout))?
    .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))?;
    let request: CustodianBootstrap = parse_json(&body)?;
    let record = crate::bootstrap::redeem(&state, &token, request).await?;
    Ok((StatusCode::CREATED, Json(device_info(&record))).into_response())
}

/// `GET /v1/server`: the audit-signing public key (any registered key).
pub async fn server_info(
    State(state): State<Arc<AppState>>,
    _signed: Signed<policy::ServerInfo>,
) -> Result<Response, ApiError> {
    Ok(Json(ServerInfo {
        audit_public_key: state.server_key.public_key_hex(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: 1,
    })
    .into_response())
}

/// `PUT /v1/domains/{domain}` (custodian): register a domain: its evaluation keys and public
/// key, and the server's reference share (sealed under the master key before it is stored).
pub async fn register_domain(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<policy::DomainRegistration>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let mut act = signed.act;
    // The name first; then the registration is decoded once (tens of MiB, on a blocking
    // thread), and the audit entry carries the keys' fingerprint from then on.
    let checked = async {
        if !routes::domain_name_is_valid(&domain) {
            return Err(ApiError::new(ErrorCode::BadRequest));
        }
        let body = signed.body;
        tokio::task::spawn_blocking(move || {
            let registration = DomainRegistration::from_bytes(&body)?;
            let keys_blob = registration.evaluation_keys.to_bytes();
            Ok::<_, tabir_crypto::CryptoError>((registration, keys_blob))
        })
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal))?
        .map_err(ApiError::from)
    }
    .await;
    let (registration, keys_blob) = match checked {
        Ok(decoded) => decoded,
        Err(error) => return Ok(state.refuse(&caller, &act, error).await.into_response()),
    };
    let DomainRegistration {
        evaluation_keys,
        server_share,
        identify_threshold,
    } = registration;
    act.key_fingerprint = Some(evaluation_keys.fingerprint().to_hex());
    Ok(audited(&state, &caller, &act, async {
        let config = *evaluation_keys.config();
        let fingerprint = evaluation_keys.fingerprint().to_hex();
        let sealed_server_share = crate::shares::seal_reference(&state, &domain, &server_share)?;
        drop(server_share);
        let started = Instant::now();
        let prepared = state
            .pool
            .run(move || ServerKeys::prepare(evaluation_keys))
            .await??;
        state.metrics.fhe_job("prepare_keys", started.elapsed());
        let record = DomainRecord {
            name: domain.clone(),
            fingerprint,
            params: config.params.name().to_owned(),
            dim: config.dim,
            threshold_cosine: config.threshold.cosine,
            threshold_score: config.threshold.score,
            identify_threshold: Some((identify_threshold.cosine, identify_threshold.score)),
            evaluation_keys: keys_blob,
            registered_at: crate::time::rfc3339_now(),
        };
        let info = domain_info(&record);
        state
            .commit(
                Change::PutDomain {
                    record,
                    sealed_server_share,
                },
                act.event(&caller, Outcome::Done),
            )
            .await?;
        state.domains.insert(&domain, Arc::new(prepared))?;
        Ok((StatusCode::CREATED, Json(info)).into_response())
    })
    .await)
}

/// `GET /v1/domains` (custodian: all; auditor: the domain it is registered for).
pub async fn list_domains(
    State(state): State<Arc<AppState>>,
    signed: Signed<policy::DomainList>,
) -> Result<Response, ApiError> {
    let domains = state.with_store(|store| store.domains()).await?;
    Ok(Json(
        domains
            .iter()
            .filter(|d| signed.caller.sees_domain(Some(&d.name)))
            .map(domain_info)
            .collect::<Vec<_>>(),
    )
    .into_response())
}

/// `GET /v1/domains/{domain}`: any role; a device or auditor only its own domain. Reads the
/// registry entry, never the key blob.
pub async fn get_domain(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    _signed: Signed<policy::DomainRead>,
) -> Result<Response, ApiError> {
    let record = state
        .with_store(move |store| store.domain_info(&domain))
        .await?
        .ok_or(ApiError::new(ErrorCode::UnknownDomain))?;
    Ok(Json(domain_info(&record)).into_response())
}

/// `POST /v1/domains/{domain}/devices` (custodian): register a device or auditor key with the
/// delta its server share is derived from.
pub async fn register_device(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<policy::KeyRegistration>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let act = signed.act;
    Ok(audited(&state, &caller, &act, async {
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
        let key_id = signing::key_id(&public_key);
        // Devices and auditors come with a share delta (validate() checked it is there).
        let delta_hex = zeroize::Zeroizing::new(registration.share_delta.unwrap_or_default());
        let delta_bytes = zeroize::Zeroizing::new(
            tabir_proto::hex::decode_vec(&delta_hex).ok_or(ApiError::new(ErrorCode::BadRequest))?,
        );
        let keys = state.domains.get(&state, &domain).await?;
        let delta = ShareDelta::from_bytes(&delta_bytes, keys.config(), keys.fingerprint())?;
        let sealed_share =
            crate::shares::derive_key_share(&state, &domain, &keys, &key_id, &delta).await?;
        let record = KeyRecord {
            key_id,
            public_key: tabir_proto::hex::encode(public_key.as_bytes()),
            domain: Some(domain.clone()),
            role: registration.role,
            label: registration.label,
            registered_at: crate::time::rfc3339_now(),
            revoked_at: None,
            holds_share: true,
        };
        let info = device_info(&record);
        state
            .commit(
                Change::PutKey {
                    record,
                    sealed_share: Some(sealed_share),
                },
                act.event(&caller, Outcome::Done),
            )
            .await?;
        Ok((StatusCode::CREATED, Json(info)).into_response())
    })
    .await)
}

/// `GET /v1/domains/{domain}/devices` (custodian, the domain's auditors): the domain's keys,
/// revoked ones included.
pub async fn list_devices(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    _signed: Signed<policy::KeyList>,
) -> Result<Response, ApiError> {
    let lookup = domain.clone();
    if state
        .with_store(move |store| store.domain_info(&lookup))
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
    signed: Signed<policy::KeyRevocation>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let act = signed.act;
    Ok(audited(&state, &caller, &act, async {
        let lookup = key_id.clone();
        let record = state
            .with_store(move |store| store.key(&lookup))
            .await?
            .filter(|k| k.domain.as_deref() == Some(domain.as_str()) && k.revoked_at.is_none())
            .ok_or(ApiError::new(ErrorCode::UnknownKey))?;
        let at = crate::time::rfc3339_now();
        // The key is refused from now on, and its server share is deleted with it.
        state
            .commit(
                Change::RevokeKey {
                    key_id: key_id.clone(),
                    at: at.clone(),
                },
                act.event(&caller, Outcome::Done),
            )
            .await?;
        // Its running searches stop too: their results could never be read or reported.
        let revoked = key_id.clone();
        let jobs = state
            .with_store(move |store| store.running_jobs())
            .await?
            .into_iter()
            .filter(|job| job.key_id == revoked);
        for job in jobs {
            let cancel = Act::new(Action::CancelIdentification, Some(&domain));
            let change = Change::CancelJob {
                job_id: job.job_id,
                key_id: key_id.clone(),
            };
            if let Err(error) = state
                .commit(change, cancel.event(&caller, Outcome::Done))
                .await
            {
                tracing::warn!(code = %error.code, "could not cancel a revoked key's search");
            }
        }
        let mut info = device_info(&record);
        info.revoked_at = Some(at);
        info.holds_share = false;
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

/// `GET /v1/audit?after=N&limit=M` (auditor, custodian). Reading is itself audited. An auditor
/// sees its own domain's entries whole and the others redacted (their content digest in place
/// of their content), so the chain still verifies.
pub async fn audit_page(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
    signed: Signed<policy::AuditRead>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let act = Act::new(Action::ReadAudit, caller.domain.as_deref());
    Ok(audited(&state, &caller, &act, async {
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
        let entries = entries
            .into_iter()
            .map(|entry| {
                if caller.sees_domain(entry.event.domain.as_deref()) {
                    LogEntry::Full(entry)
                } else {
                    LogEntry::Redacted(entry.redacted())
                }
            })
            .collect();
        Ok(Json(AuditPage {
            entries,
            next_after,
        })
        .into_response())
    })
    .await)
}

/// `GET /v1/audit/checkpoint` (auditor, custodian): the log's newest entry number and hash,
/// with the time, signed by the server. Auditors keep it; a later log must extend it (a
/// shorter log was truncated, another hash at that number is a fork).
pub async fn checkpoint(
    State(state): State<Arc<AppState>>,
    signed: Signed<policy::AuditRead>,
) -> Result<Response, ApiError> {
    let caller = signed.caller;
    let act = Act::new(Action::ReadAudit, caller.domain.as_deref());
    Ok(audited(&state, &caller, &act, async {
        // The read is recorded first: the checkpoint covers its own entry.
        let entry = state
            .commit(Change::None, act.event(&caller, Outcome::Done))
            .await?;
        let checkpoint = Checkpoint::sign(
            entry.seq,
            entry.hash,
            crate::time::rfc3339_now(),
            state.server_key.signing_key(),
        );
        Ok(Json(checkpoint).into_response())
    })
    .await)
}
