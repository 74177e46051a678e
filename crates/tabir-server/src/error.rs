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

/// How a decoding or evaluation error of the crypto core answers a caller.
impl From<&tabir_crypto::CryptoError> for ApiError {
    fn from(error: &tabir_crypto::CryptoError) -> Self {
        use tabir_crypto::CryptoError as E;
        let code = match error {
            E::Malformed { .. } | E::UnknownParameterSet { .. } => ErrorCode::MalformedBlob,
            E::WrongType { .. } => ErrorCode::WrongBlobType,
            E::ShapeMismatch { .. }
            | E::InvalidConfig { .. }
            | E::DimensionMismatch { .. }
            | E::InvalidShare { .. } => ErrorCode::ParameterMismatch,
            E::WrongKeyDomain { .. } => ErrorCode::WrongKeyDomain,
            E::SymmetricKeyDomain { .. } => ErrorCode::LegacyKeyDomain,
            E::TooLarge { .. } | E::GalleryTooLarge { .. } => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::Internal,
        };
        Self::new(code)
    }
}

impl From<tabir_crypto::CryptoError> for ApiError {
    fn from(error: tabir_crypto::CryptoError) -> Self {
        Self::from(&error)
    }
}

/// What a 503 `storage_unavailable` asks the caller to wait: a database restart or failover
/// takes seconds.
const STORAGE_RETRY_AFTER_SECS: u64 = 2;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let code = match &error {
            StoreError::DomainExists(_) => ErrorCode::DomainExists,
            StoreError::UnknownDomain(_) => ErrorCode::UnknownDomain,
            StoreError::KeyExists => ErrorCode::KeyExists,
            StoreError::UnknownKey => ErrorCode::UnknownKey,
            StoreError::UnknownSubject => ErrorCode::UnknownSubject,
            StoreError::UnknownEscrow => ErrorCode::UnknownEscrow,
            StoreError::AlreadyReported => ErrorCode::AlreadyReported,
            StoreError::BootstrapRefused => ErrorCode::Unauthenticated,
            StoreError::UnknownJob => ErrorCode::UnknownJob,
            StoreError::JobNotRunning => ErrorCode::JobEnded,
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "database unavailable");
                return Self {
                    code: ErrorCode::StorageUnavailable,
                    retry_after: Some(STORAGE_RETRY_AFTER_SECS),
                };
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_errors_map_to_protocol_codes() {
        let wrong_type = tabir_crypto::CryptoError::WrongType {
            expected: "tabir::Probe/2",
            got: "tabir::Template/2".into(),
        };
        assert_eq!(ApiError::from(&wrong_type).code, ErrorCode::WrongBlobType);
        let too_large = tabir_crypto::CryptoError::TooLarge {
            kind: "probe",
            got: 1 << 20,
            limit: 1 << 16,
        };
        assert_eq!(ApiError::from(&too_large).code.status(), 413);
        let legacy = tabir_crypto::CryptoError::SymmetricKeyDomain { kind: "template" };
        assert_eq!(ApiError::from(&legacy).code, ErrorCode::LegacyKeyDomain);
    }
}
