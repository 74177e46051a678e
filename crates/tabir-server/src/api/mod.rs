//! The HTTP surface: the router, the middleware every request passes (metrics and log line,
//! the whole-request deadline, answers kept for request ids), and the helpers the routes share.
//! Authentication and body reading are the [`Signed`] extractor's (`signed.rs`), with each
//! route's [`policy`].

mod escrow;
mod health;
mod identification;
mod matching;
mod openapi;
pub(crate) mod policy;
pub(crate) mod registry;
mod signed;

pub use signed::Signed;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{Act, AppState};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tabir_proto::routes;
use tabir_proto::ErrorCode;

pub fn router(state: Arc<AppState>) -> Router {
    use routes::templates;
    Router::new()
        .route(routes::HEALTH, get(health::healthz))
        .route(routes::METRICS, get(health::metrics))
        .route(routes::OPENAPI, get(openapi::document))
        .route(routes::BOOTSTRAP, post(registry::bootstrap))
        .route(routes::SERVER_INFO, get(registry::server_info))
        .route(routes::DOMAINS, get(registry::list_domains))
        .route(
            templates::DOMAIN,
            put(registry::register_domain).get(registry::get_domain),
        )
        .route(
            templates::DEVICES,
            post(registry::register_device).get(registry::list_devices),
        )
        .route(templates::DEVICE, delete(registry::revoke_device))
        .route(
            templates::ENROLMENT,
            put(matching::enrol).delete(matching::delete_enrolment),
        )
        .route(templates::VERIFICATIONS, post(matching::verify))
        .route(templates::IDENTIFICATIONS, post(identification::submit))
        .route(
            templates::IDENTIFICATION_JOB,
            get(identification::status).delete(identification::cancel),
        )
        .route(
            templates::IDENTIFICATION_RESULT,
            get(identification::result),
        )
        .route(templates::DECISION, post(escrow::report_decision))
        .route(templates::ESCROW_RESHARE, post(escrow::reshare))
        .route(routes::AUDIT, get(registry::audit_page))
        .route(routes::AUDIT_CHECKPOINT, get(registry::checkpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by each route with its own limit (see `Signed`).
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            signed::remember_answers,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), deadline))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// The whole request, from its headers to its answer, within the configured time.
async fn deadline(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(ErrorCode::RequestTimeout).into_response(),
    }
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

pub fn blob_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, routes::CONTENT_TYPE_BLOB)], bytes).into_response()
}
