//! Unauthenticated: readiness and metrics.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tabir_proto::ErrorCode;

/// 200 when the store answers; 503 otherwise.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.with_store(|store| store.audit_page(0, 1)).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => crate::error::ApiError::new(ErrorCode::Unavailable).into_response(),
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(
        state.pool.in_flight(),
        state.pool.capacity(),
        state.pool.rejected(),
        state.domains.held(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
