//! The one way an authenticated route gets its request: [`Signed<P>`], an extractor that does
//! everything the route's [`Policy`] asks **before reading the body** (signature over the
//! claimed digest, nonce, role, the caller's domain, the body limit, a slot for large bodies,
//! the request id), then reads the body within a deadline, hashing it as it arrives, and
//! refuses it unless it is the body that was signed.
//!
//! Refusals after the caller is authenticated are audited (for routes that change state or
//! disclose escrow), with what the route had learnt (domain, subject tag).

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{header, request::Parts};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tabir_proto::audit::Action;
use tabir_proto::{ErrorCode, Role, SubjectId};
use tabir_store::RequestRecord;

/// What a route allows: who, how large a body, and what a refusal is recorded as.
pub trait Policy: Send + Sync + 'static {
    const ROLES: &'static [Role];
    /// Body limit in bytes.
    const LIMIT: u64;
    /// The action an authenticated caller's refusal is audited as; None: not audited (reads
    /// of the registry).
    const ACTION: Option<Action>;
}

/// Bodies over this size count against the server's slots for large bodies (only domain
/// registration, by custodians, sends one).
pub const LARGE_BODY: u64 = 1024 * 1024;

/// An authenticated request with its body.
pub struct Signed<P: Policy> {
    pub caller: Caller,
    pub body: Bytes,
    /// The audit record so far: the route's action, its domain and subject tag.
    pub act: Act,
    _policy: PhantomData<P>,
}

/// Set by [`remember_answers`] on every request: the request id the extractor recorded as in
/// progress, if any, so the answer can be kept for retries.
#[derive(Clone, Default)]
pub struct RequestSlot(Arc<Mutex<Option<(String, String)>>>);

/// The path's `{domain}` and `{subject}` parameters, if the route has them.
async fn path_params(parts: &mut Parts, state: &Arc<AppState>) -> (Option<String>, Option<String>) {
    let (mut domain, mut subject) = (None, None);
    if let Ok(params) = RawPathParams::from_request_parts(parts, state).await {
        for (name, value) in params.iter() {
            match name {
                "domain" => domain = Some(value.to_owned()),
                "subject" => subject = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    (domain, subject)
}

/// The answer to a refused, authenticated caller: audited when the route's refusals are.
async fn refuse<P: Policy>(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &Act,
    error: ApiError,
) -> Response {
    match P::ACTION {
        Some(_) => state.refuse(caller, act, error).await.into_response(),
        None => error.into_response(),
    }
}

impl<P: Policy> FromRequest<Arc<AppState>> for Signed<P> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let authenticated = auth::authenticate(state, &parts.method, &parts.uri, &parts.headers)
            .await
            .map_err(IntoResponse::into_response)?;
        let caller = authenticated.caller;
        let (domain, subject) = path_params(&mut parts, state).await;
        let mut act = Act::new(P::ACTION.unwrap_or(Action::ReadAudit), domain.as_deref());
        if let Some(subject) = &subject {
            match SubjectId::parse(subject) {
                Ok(nik) => act.subject = domain.as_deref().map(|d| state.subject_tag(d, &nik)),
                Err(_) => {
                    return Err(refuse::<P>(
                        state,
                        &caller,
                        &act,
                        ErrorCode::InvalidSubjectId.into(),
                    )
                    .await)
                }
            }
        }
        if let Err(error) = caller.require(P::ROLES, domain.as_deref()) {
            return Err(refuse::<P>(state, &caller, &act, error).await);
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > P::LIMIT) {
            return Err(refuse::<P>(state, &caller, &act, ErrorCode::PayloadTooLarge.into()).await);
        }
        // Only a custodian's domain registration may send a large body, and a few at a time.
        let _large_body_slot = if P::LIMIT > LARGE_BODY && declared.is_none_or(|l| l > LARGE_BODY) {
            match Arc::clone(&state.large_bodies).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return Err(refuse::<P>(
                        state,
                        &caller,
                        &act,
                        ApiError {
                            code: ErrorCode::Overloaded,
                            retry_after: Some(state.config.retry_after_secs),
                        },
                    )
                    .await)
                }
            }
        } else {
            None
        };
        // A request id seen before is answered from the record, not run twice.
        if let Some(request_id) = &authenticated.signature.request_id {
            let request_id = request_record_id(
                request_id,
                parts.method.as_str(),
                parts.uri.path(),
                &authenticated.signature.content_sha256,
            );
            let (key_id, id) = (caller.key_id.clone(), request_id.clone());
            let now = crate::time::unix_now();
            let expires_at = now + state.config.limits.request_record_secs;
            let record = state
                .with_store(move |store| store.begin_request(&key_id, &id, expires_at, now))
                .await
                .map_err(IntoResponse::into_response)?;
            match record {
                RequestRecord::Answered(answer) => return Err(replay(answer)),
                RequestRecord::InProgress => {
                    return Err(ApiError {
                        code: ErrorCode::RequestInProgress,
                        retry_after: Some(1),
                    }
                    .into_response())
                }
                RequestRecord::New => {
                    if let Some(slot) = parts.extensions.get::<RequestSlot>() {
                        if let Ok(mut slot) = slot.0.lock() {
                            *slot = Some((caller.key_id.clone(), request_id.clone()));
                        }
                    }
                }
            }
        }
        let deadline = body_deadline(state, declared.unwrap_or(P::LIMIT).min(P::LIMIT));
        let body = match tokio::time::timeout(deadline, read_body(body, P::LIMIT)).await {
            Ok(Ok((bytes, digest))) if authenticated.signature.body_matches(&digest) => bytes,
            Ok(Ok(_)) => {
                return Err(refuse::<P>(state, &caller, &act, ErrorCode::BodyMismatch.into()).await)
            }
            Ok(Err(error)) => return Err(refuse::<P>(state, &caller, &act, error).await),
            Err(_) => {
                return Err(
                    refuse::<P>(state, &caller, &act, ErrorCode::RequestTimeout.into()).await,
                )
            }
        };
        Ok(Self {
            caller,
            body,
            act,
            _policy: PhantomData,
        })
    }
}

/// What an answer is kept under: the request id bound to the request itself, so an id reused
/// (by mistake) for another request runs that request instead of replaying another answer.
fn request_record_id(request_id: &str, method: &str, path: &str, content_sha256: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [request_id, method, path, content_sha256] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    tabir_proto::hex::encode(&hasher.finalize())
}

/// How long a body of `length` bytes may take to arrive: a fixed allowance plus the time at
/// the minimum rate a real link sustains.
fn body_deadline(state: &AppState, length: u64) -> Duration {
    let limits = &state.config.limits;
    limits.body_timeout
        + Duration::from_secs_f64(length as f64 / limits.min_body_bytes_per_sec.max(1) as f64)
}

/// Read at most `limit` bytes, hashing them as they arrive.
async fn read_body(body: Body, limit: u64) -> Result<(Bytes, [u8; 32]), ApiError> {
    let mut body = body;
    let mut hasher = Sha256::new();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::new(ErrorCode::BadRequest))?;
        if let Ok(data) = frame.into_data() {
            if (bytes.len() + data.len()) as u64 > limit {
                return Err(ErrorCode::PayloadTooLarge.into());
            }
            hasher.update(&data);
            bytes.extend_from_slice(&data);
        }
    }
    Ok((Bytes::from(bytes), hasher.finalize().into()))
}

/// A kept answer, sent again.
fn replay(answer: tabir_store::StoredAnswer) -> Response {
    let status = axum::http::StatusCode::from_u16(answer.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, answer.content_type.clone())],
        answer.body,
    )
        .into_response();
    if let Some(seq) = answer.audit_seq {
        response.headers_mut().insert(
            tabir_proto::routes::HEADER_AUDIT_SEQ,
            axum::http::HeaderValue::from(seq),
        );
    }
    response
}

/// Middleware: give each request a [`RequestSlot`]; when the extractor recorded a request id
/// as in progress, keep the answer for retries (or forget the id when the answer is worth
/// retrying: overload, timeouts, server failures).
pub async fn remember_answers(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let slot = RequestSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let recorded = slot.0.lock().ok().and_then(|mut s| s.take());
    let Some((key_id, request_id)) = recorded else {
        return response;
    };
    let status = response.status().as_u16();
    let retryable = status == 408 || status == 429 || status >= 500;
    if retryable {
        let _ = state
            .with_store(move |store| store.abandon_request(&key_id, &request_id))
            .await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let _ = state
                .with_store(move |store| store.abandon_request(&key_id, &request_id))
                .await;
            return ApiError::new(ErrorCode::Internal).into_response();
        }
    };
    let answer = tabir_store::StoredAnswer {
        status,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        audit_seq: parts
            .headers
            .get(tabir_proto::routes::HEADER_AUDIT_SEQ)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        body: bytes.to_vec(),
    };
    if let Err(error) = state
        .with_store(move |store| store.finish_request(&key_id, &request_id, &answer))
        .await
    {
        tracing::warn!(code = %error.code, "could not keep an answer for retries");
    }
    Response::from_parts(parts, Body::from(bytes))
}
