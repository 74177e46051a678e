//! Enrolment, deletion and the encrypted matches. Ciphertexts are decoded and checked
//! against the domain (parameters, shapes, key fingerprint) before anything is stored or
//! evaluated; evaluation runs on the bounded FHE pool; every outcome is audited.
//!
//! Each route reads and authenticates the request, then runs its `*_checked` function, which
//! fills in the audit record (`Act`) as it learns the subject and key fingerprint; a refusal
//! is audited with whatever it had learnt.

use super::{blob_response, conclude, parse_subject, Signed};
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
use tabir_crypto::ciphertexts::{PROBE_LIMIT, TEMPLATE_LIMIT};
use tabir_crypto::server::{CandidateBits, ServerKeys};
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::messages::{DeletionReceipt, EnrolmentReceipt};
use tabir_proto::routes::{HEADER_AUDIT_SEQ, LIMIT_JSON};
use tabir_proto::{ErrorCode, Role};
use tabir_store::Change;

/// The device's own domain, its prepared keys, and the subject, all checked.
async fn device_context(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    subject: Option<&str>,
) -> Result<Arc<ServerKeys>, ApiError> {
    if let Some(subject) = subject {
        act.subject = Some(parse_subject(subject)?);
    }
    caller.require(&[Role::Device], Some(domain))?;
    let keys = state.domains.get(state, domain).await?;
    act.key_fingerprint = Some(keys.fingerprint().to_hex());
    Ok(keys)
}

/// `PUT /v1/domains/{domain}/subjects/{subject}` (device): enrol, or replace a template.
pub async fn enrol(
    State(state): State<Arc<AppState>>,
    Path((domain, subject)): Path<(String, String)>,
    signed: Signed<{ TEMPLATE_LIMIT }>,
) -> Result<Response, ApiError> {
    let mut act = Act::new(Action::Enrol, Some(&domain));
    let result = enrol_checked(
        &state,
        &signed.caller,
        &mut act,
        &domain,
        &subject,
        signed.body,
    )
    .await;
    Ok(conclude(&state, &signed.caller, &act, result).await)
}

async fn enrol_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    subject: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = device_context(state, caller, act, domain, Some(subject)).await?;
    let subject = act
        .subject
        .clone()
        .ok_or(ApiError::new(ErrorCode::Internal))?;
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
/// audit log keeps the event.
pub async fn delete_enrolment(
    State(state): State<Arc<AppState>>,
    Path((domain, subject)): Path<(String, String)>,
    signed: Signed<{ LIMIT_JSON }>,
) -> Result<Response, ApiError> {
    let mut act = Act::new(Action::DeleteEnrolment, Some(&domain));
    let result = delete_checked(&state, &signed.caller, &mut act, &domain, &subject).await;
    Ok(conclude(&state, &signed.caller, &act, result).await)
}

async fn delete_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    subject: &str,
) -> Result<Response, ApiError> {
    device_context(state, caller, act, domain, Some(subject)).await?;
    let subject = act
        .subject
        .clone()
        .ok_or(ApiError::new(ErrorCode::Internal))?;
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
async fn escrow_and_answer(
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
    Path((domain, subject)): Path<(String, String)>,
    signed: Signed<{ PROBE_LIMIT }>,
) -> Result<Response, ApiError> {
    let mut act = Act::new(Action::Verify, Some(&domain));
    let result = verify_checked(
        &state,
        &signed.caller,
        &mut act,
        &domain,
        &subject,
        signed.body,
    )
    .await;
    Ok(conclude(&state, &signed.caller, &act, result).await)
}

async fn verify_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    subject: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = device_context(state, caller, act, domain, Some(subject)).await?;
    let subject = act
        .subject
        .clone()
        .ok_or(ApiError::new(ErrorCode::Internal))?;
    let probe = Probe::from_bytes(&body, keys.config(), keys.fingerprint())?;
    let share = crate::shares::key_share(state, &caller.key_id, &keys).await?;
    let lookup = domain.to_owned();
    let stored = state
        .with_store(move |store| store.template(&lookup, &subject))
        .await?
        .ok_or(ApiError::new(ErrorCode::UnknownSubject))?;
    let template = Template::from_bytes(&stored, keys.config(), keys.fingerprint())
        .map_err(|_| ApiError::new(ErrorCode::Internal))?;
    let started = Instant::now();
    let escrowed = state
        .pool
        .run(move || keys.verify(&probe, &template))
        .await??;
    state.metrics.fhe_job("verify", started.elapsed());
    let for_caller = share.apply(&escrowed)?;
    escrow_and_answer(state, caller, act, domain, escrowed, for_caller).await
}

/// `POST /v1/domains/{domain}/identifications` (device): probe in, encrypted any-match bit
/// out (an encrypted bit, like a verification's), over the domain's whole gallery.
/// Per-candidate bits are withheld.
pub async fn identify(
    State(state): State<Arc<AppState>>,
    Path(domain): Path<String>,
    signed: Signed<{ PROBE_LIMIT }>,
) -> Result<Response, ApiError> {
    let mut act = Act::new(Action::Identify, Some(&domain));
    let result = identify_checked(&state, &signed.caller, &mut act, &domain, signed.body).await;
    Ok(conclude(&state, &signed.caller, &act, result).await)
}

async fn identify_checked(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &mut Act,
    domain: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = device_context(state, caller, act, domain, None).await?;
    let probe = Probe::from_bytes(&body, keys.config(), keys.fingerprint())?;
    let share = crate::shares::key_share(state, &caller.key_id, &keys).await?;
    let lookup = domain.to_owned();
    let stored = state
        .with_store(move |store| store.templates(&lookup))
        .await?;
    let max_gallery = state.config.max_gallery;
    if stored.len() > max_gallery {
        return Err(ErrorCode::PayloadTooLarge.into());
    }
    let gallery = stored
        .iter()
        .map(|(_, blob)| Template::from_bytes(blob, keys.config(), keys.fingerprint()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::new(ErrorCode::Internal))?;
    drop(stored);
    let started = Instant::now();
    let identification = state
        .pool
        .run(move || keys.identify(&probe, &gallery, CandidateBits::Withhold, max_gallery))
        .await??;
    state.metrics.fhe_job("identify", started.elapsed());
    let escrowed = identification.any_match;
    let for_caller = share.apply(&escrowed)?;
    escrow_and_answer(state, caller, act, domain, escrowed, for_caller).await
}
