//! Enrolment, deletion and the encrypted matches. Ciphertexts are decoded and checked
//! against the domain (parameters, shapes, key fingerprint) before anything is stored or
//! evaluated; verifications count against the quotas first; evaluation runs on the bounded FHE
//! pool; every outcome is audited. Subjects are named by their keyed tag throughout: the NIK
//! in the path is turned into a tag by the extractor and goes no further.
//!
//! Each route gets its authenticated request from [`Signed`] (which already checked role,
//! domain and subject), then runs its `*_checked` function, which fills in the audit record
//! (`Act`) as it learns more; a refusal is audited with whatever it had learnt.

use super::policy;
use super::{blob_response, conclude, Signed};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Instant;
use tabir_crypto::ciphertexts::{EncryptedBit, EscrowedBit, Probe, Template};
use tabir_crypto::server::ServerKeys;
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::messages::{DeletionReceipt, EnrolmentReceipt};
use tabir_proto::routes::HEADER_AUDIT_SEQ;
use tabir_proto::{ErrorCode, SubjectTag};
use tabir_store::{Change, QuotaCheck, QuotaDecision};

/// The domain's prepared keys, with their fingerprint noted in the audit record.
pub(super) async fn domain_keys(
    state: &Arc<AppState>,
    act: &mut Act,
    domain: &str,
) -> Result<Arc<ServerKeys>, ApiError> {
    let keys = state.domains.get(state, domain).await?;
    act.key_fingerprint = Some(keys.fingerprint().to_hex());
    Ok(keys)
}

/// The subject the extractor checked and tagged.
fn subject(act: &Act) -> Result<SubjectTag, ApiError> {
    act.subject
        .clone()
        .ok_or(ApiError::new(ErrorCode::InvalidSubjectId))
}

/// Count one verification (of `subject`, when there is one) against the quotas, or refuse
/// with 429 `quota_exceeded` and the time until the window frees a slot.
pub(super) async fn take_quota(
    state: &Arc<AppState>,
    caller: &Caller,
    domain: &str,
    subject: Option<&SubjectTag>,
) -> Result<(), ApiError> {
    let quotas = &state.config.quotas;
    let device = format!("device:{}", caller.key_id);
    let mut checks = Vec::new();
    let mut scopes = Vec::new();
    if let (Some(subject), true) = (subject, quotas.subject_per_day > 0) {
        checks.push(QuotaCheck {
            scope: format!("subject:{domain}:{subject}"),
            window_secs: 24 * 3600,
            limit: quotas.subject_per_day,
        });
        scopes.push("subject");
    }
    for (window_secs, limit) in [
        (3600, quotas.device_per_hour),
        (24 * 3600, quotas.device_per_day),
    ] {
        if limit > 0 {
            checks.push(QuotaCheck {
                scope: device.clone(),
                window_secs,
                limit,
            });
            scopes.push("device");
        }
    }
    if checks.is_empty() {
        return Ok(());
    }
    let now = crate::time::unix_now();
    match state
        .with_store(move |store| store.take_quota(&checks, now))
        .await?
    {
        QuotaDecision::Granted => Ok(()),
        QuotaDecision::Exceeded {
            check,
            retry_after_secs,
        } => {
            state
                .metrics
                .quota_exceeded(scopes.get(check).copied().unwrap_or("device"));
            Err(ApiError {
                code: ErrorCode::QuotaExceeded,
                retry_after: Some(retry_after_secs),
            })
        }
    }
}

/// `PUT /v1/domains/{domain}/subjects/{subject}` (device): enrol, or replace a template.
pub async fn enrol(
    State(state): State<Arc<AppState>>,
    Path((domain, _)): Path<(String, String)>,
    signed: Signed<policy::Enrolment>,
) -> Response {
    let Signed {
        caller,
        body,
        mut act,
        ..
    } = signed;
    let result = enrol_checked(&state, &caller, &mut act, &domain, body).await;
    conclude(&state, &caller, &act, result).await
}

async fn enrol_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = domain_keys(state, act, domain).await?;
    let subject = subject(act)?;
    Template::from_bytes(&body, keys.config(), keys.fingerprint())?;
    let lookup = (domain.to_owned(), subject.clone());
    let replaced = state
        .with_store(move |store| store.template(&lookup.0, &lookup.1))
        .await?
        .is_some();
    if replaced {
        act.action = Action::ReplaceEnrolment;
    }
    let entry = state
        .commit(
            Change::PutTemplate {
                domain: domain.to_owned(),
                subject,
                template: body.to_vec(),
                at: crate::time::rfc3339_now(),
            },
            act.event(caller, Outcome::Done),
        )
        .await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let receipt = EnrolmentReceipt {
        replaced,
        audit_seq: entry.seq,
    };
    Ok((status, Json(receipt)).into_response())
}

/// `DELETE /v1/domains/{domain}/subjects/{subject}` (device): the template is deleted; the
/// audit log keeps the event (under the subject's tag: nothing readable is left).
pub async fn delete_enrolment(
    State(state): State<Arc<AppState>>,
    Path((domain, _)): Path<(String, String)>,
    signed: Signed<policy::Deletion>,
) -> Response {
    let Signed {
        caller, mut act, ..
    } = signed;
    let result = delete_checked(&state, &caller, &mut act, &domain).await;
    conclude(&state, &caller, &act, result).await
}

async fn delete_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
) -> Result<Response, ApiError> {
    domain_keys(state, act, domain).await?;
    let subject = subject(act)?;
    let entry = state
        .commit(
            Change::DeleteTemplate {
                domain: domain.to_owned(),
                subject,
            },
            act.event(caller, Outcome::Done),
        )
        .await?;
    Ok(Json(DeletionReceipt {
        audit_seq: entry.seq,
    })
    .into_response())
}

/// Escrow the result with the request's audit entry, then answer with the caller's copy: the
/// bit with the caller's server share applied, and the entry's sequence number (the device's
/// decision report refers to it). The answer leaves only once both are durable.
pub(super) async fn escrow_and_answer(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &Act,
    domain: &str,
    escrowed: EscrowedBit,
    for_caller: EncryptedBit,
) -> Result<Response, ApiError> {
    let entry = state
        .commit(
            Change::Escrow {
                domain: domain.to_owned(),
                key_id: caller.key_id.clone(),
                action: act.action,
                result: escrowed.to_bytes(),
            },
            act.event(caller, Outcome::Done),
        )
        .await?;
    let mut response = blob_response(for_caller.to_bytes());
    response
        .headers_mut()
        .insert(HEADER_AUDIT_SEQ, axum::http::HeaderValue::from(entry.seq));
    Ok(response)
}

/// `POST /v1/domains/{domain}/subjects/{subject}/verifications` (device): probe in, encrypted
/// bit out.
pub async fn verify(
    State(state): State<Arc<AppState>>,
    Path((domain, _)): Path<(String, String)>,
    signed: Signed<policy::Verification>,
) -> Response {
    let Signed {
        caller,
        body,
        mut act,
        ..
    } = signed;
    let result = verify_checked(&state, &caller, &mut act, &domain, body).await;
    conclude(&state, &caller, &act, result).await
}

async fn verify_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = domain_keys(state, act, domain).await?;
    let subject = subject(act)?;
    let probe = Probe::from_bytes(&body, keys.config(), keys.fingerprint())?;
    let share = crate::shares::key_share(state, &caller.key_id, &keys).await?;
    let lookup = (domain.to_owned(), subject.clone());
    let stored = state
        .with_store(move |store| store.template(&lookup.0, &lookup.1))
        .await?
        .ok_or(ApiError::new(ErrorCode::UnknownSubject))?;
    let template = Template::from_bytes(&stored, keys.config(), keys.fingerprint())
        .map_err(|_| ApiError::new(ErrorCode::Internal))?;
    // A place in the pool first: a request the pool turns away must not count.
    let admission = state.pool.admit()?;
    take_quota(state, caller, domain, Some(&subject)).await?;
    let started = Instant::now();
    let escrowed = admission
        .run(move || keys.verify(&probe, &template))
        .await??;
    state.metrics.fhe_job("verify", started.elapsed());
    let for_caller = share.apply(&escrowed)?;
    escrow_and_answer(state, caller, act, domain, escrowed, for_caller).await
}
