//! The HTTP surface: the router, and the steps every authenticated route takes (headers
//! checked, body read within the route's limit, signature checked, refusals audited).

mod escrow;
mod health;
mod matching;
pub(crate) mod registry;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tabir_proto::routes;
use tabir_proto::{ErrorCode, SubjectId};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(routes::HEALTH, get(health::healthz))
        .route(routes::METRICS, get(health::metrics))
        .route(routes::BOOTSTRAP, post(registry::bootstrap))
        .route(routes::SERVER_INFO, get(registry::server_info))
        .route(routes::DOMAINS, get(registry::list_domains))
        .route(
            "/v1/domains/{domain}",
            put(registry::register_domain).get(registry::get_domain),
        )
        .route(
            "/v1/domains/{domain}/devices",
            post(registry::register_device).get(registry::list_devices),
        )
        .route(
            "/v1/domains/{domain}/devices/{key_id}",
            axum::routing::delete(registry::revoke_device),
        )
        .route(
            "/v1/domains/{domain}/subjects/{subject}",
            put(matching::enrol).delete(matching::delete_enrolment),
        )
        .route(
            "/v1/domains/{domain}/subjects/{subject}/verifications",
            post(matching::verify),
        )
        .route(
            "/v1/domains/{domain}/identifications",
            post(matching::identify),
        )
        .route(
            "/v1/domains/{domain}/decisions/{seq}",
            post(escrow::report_decision),
        )
        .route("/v1/domains/{domain}/escrow/reshare", post(escrow::reshare))
        .route(routes::AUDIT, get(registry::audit_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by each route with its own limit (see `Signed`).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ErrorCode::NotFound.into()
}

async fn method_not_allowed() -> ApiError {
    ErrorCode::MethodNotAllowed.into()
}

/// Metrics and one log line per request, labelled by the route template (never the concrete
/// path: it holds subject ids).
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .request(method.as_str(), &route, status, elapsed);
    tracing::info!(
        method = %method,
        route = %route,
        status,
        ms = elapsed.as_secs_f64() * 1e3,
        "request"
    );
    response
}

/// An authenticated request: who sent it and its body, read within `LIMIT` bytes. As an
/// extractor (the last argument of a handler) it checks the headers, reads the body within
/// the limit, then checks the signature and uses up the nonce; any failure is the answer.
pub struct Signed<const LIMIT: u64> {
    pub caller: Caller,
    pub body: Bytes,
}

impl<const LIMIT: u64> FromRequest<Arc<AppState>> for Signed<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let pending = auth::precheck(state, &parts.headers).await?;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > LIMIT) {
            return Err(ErrorCode::PayloadTooLarge.into());
        }
        let limit = usize::try_from(LIMIT).unwrap_or(usize::MAX);
        let body = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))?;
        let caller = pending
            .finish(state, &parts.method, &parts.uri, &body)
            .await?;
        Ok(Self { caller, body })
    }
}

/// Run an authenticated action; if it is refused, audit the refusal before answering.
pub async fn audited<F>(state: &Arc<AppState>, caller: &Caller, act: &Act, action: F) -> Response
where
    F: Future<Output = Result<Response, ApiError>>,
{
    conclude(state, caller, act, action.await).await
}

/// Answer with the result, or audit the refusal (with what `act` had learnt) and answer with
/// it.
pub async fn conclude(
    state: &Arc<AppState>,
    caller: &Caller,
    act: &Act,
    result: Result<Response, ApiError>,
) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => state.refuse(caller, act, error).await.into_response(),
    }
}

pub fn parse_subject(text: &str) -> Result<SubjectId, ApiError> {
    SubjectId::parse(text).map_err(|_| ApiError::new(ErrorCode::InvalidSubjectId))
}

pub fn blob_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, routes::CONTENT_TYPE_BLOB)], bytes).into_response()
}
