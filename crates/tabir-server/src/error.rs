//! Every refusal is an [`ApiError`]: one protocol error code, answered as the JSON body
//! `{"error": {"code", "message"}}` with the code's status. Messages are the table's fixed
//! texts; nothing from the request is echoed.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tabir_proto::{ErrorBody, ErrorCode};
use tabir_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    /// Seconds, sent as Retry-After (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            retry_after: None,
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<&tabir_crypto::CryptoError> for ApiError {
    fn from(error: &tabir_crypto::CryptoError) -> Self {
        Self::new(ErrorCode::from(error))
    }
}

impl From<tabir_crypto::CryptoError> for ApiError {
    fn from(error: tabir_crypto::CryptoError) -> Self {
        Self::from(&error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let code = match &error {
            StoreError::DomainExists(_) => ErrorCode::DomainExists,
            StoreError::UnknownDomain(_) => ErrorCode::UnknownDomain,
            StoreError::KeyExists => ErrorCode::KeyExists,
            StoreError::UnknownKey => ErrorCode::UnknownKey,
            StoreError::UnknownSubject => ErrorCode::UnknownSubject,
            _ => {
                // Store errors carry no request data (ciphertexts are opaque bytes to it).
                tracing::error!(error = %error, "storage failed");
                ErrorCode::Internal
            }
        };
        Self::new(code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(ErrorBody::new(self.code))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
