//! The one table of error codes: stable name, HTTP status and the message a caller sees.
//! Server and client both read it, so a code means the same thing on both sides.
//!
//! JSON errors look like `{"error": {"code": "...", "message": "..."}}`. Messages are fixed
//! per code: they never echo request data, ciphertexts or scores.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! error_codes {
    ($( $variant:ident = ($status:literal, $name:literal, $message:literal), )*) => {
        /// Every error the protocol can return.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $variant, )*
        }

        impl ErrorCode {
            /// All codes, in table order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// HTTP status of the response carrying this code.
            pub fn status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// The stable name on the wire.
            pub fn name(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }

            /// The fixed message for this code.
            pub fn message(self) -> &'static str {
                match self { $( ErrorCode::$variant => $message, )* }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $( $name => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    BadRequest = (400, "bad_request", "the request is not valid"),
    BodyMismatch = (400, "body_mismatch", "the body is not the one the request's signature covers"),
    InvalidSubjectId = (400, "invalid_subject_id", "the subject id must be a valid 16-digit NIK"),
    MalformedBlob = (400, "malformed_blob", "the ciphertext or key blob cannot be decoded"),
    WrongBlobType = (400, "wrong_blob_type", "the blob holds another kind of object than this route takes"),
    ParameterMismatch = (400, "parameter_mismatch", "the blob does not fit the key domain's parameters"),
    WrongKeyDomain = (409, "wrong_key_domain", "the ciphertext was made under another key domain"),
    LegacyKeyDomain = (409, "legacy_key_domain", "the key domain is a symmetric one from before key custody shares; create a new key domain and re-enrol"),
    Unauthenticated = (401, "unauthenticated", "the request is not signed by a known, current key"),
    StaleRequest = (401, "stale_request", "the request timestamp is too old or in the future"),
    ReplayedRequest = (401, "replayed_request", "the request nonce was already used"),
    Forbidden = (403, "forbidden", "this key may not perform this action"),
    NotFound = (404, "not_found", "no such resource"),
    UnknownDomain = (404, "unknown_domain", "no key domain with this name is registered"),
    UnknownSubject = (404, "unknown_subject", "no enrolment for this subject in this key domain"),
    UnknownKey = (404, "unknown_key", "no such registered key, or it is already revoked"),
    UnknownEscrow = (404, "unknown_escrow", "no escrowed result of this key domain has this audit sequence number"),
    MethodNotAllowed = (405, "method_not_allowed", "this route does not take this method"),
    DomainExists = (409, "domain_exists", "a key domain with this name already exists"),
    KeyExists = (409, "key_exists", "this public key is already registered"),
    AlreadyReported = (409, "already_reported", "a decision was already reported for this result"),
    UnknownJob = (404, "unknown_job", "no identification job with this id belongs to this device"),
    JobNotDone = (409, "job_not_done", "the identification job has not finished yet; ask for its state and retry when it is done"),
    JobEnded = (409, "job_ended", "the identification job has already ended"),
    JobCancelled = (410, "job_cancelled", "the identification job was cancelled"),
    ShardFailed = (500, "shard_failed", "a part of the identification could not be evaluated after repeated attempts; the job failed and nothing was decided"),
    PayloadTooLarge = (413, "payload_too_large", "the request body is over the limit for this route"),
    Overloaded = (429, "overloaded", "the server is busy; retry after the indicated delay"),
    QuotaExceeded = (429, "quota_exceeded", "the quota of verifications for this subject or device is used up; retry after the indicated delay"),
    RequestTimeout = (408, "request_timeout", "the request took too long to arrive or to answer"),
    RequestInProgress = (409, "request_in_progress", "a request with this request id is still being processed; retry after the indicated delay"),
    Internal = (500, "internal", "the server failed to process the request"),
    Unavailable = (503, "unavailable", "the server is starting or shutting down"),
    StorageUnavailable = (503, "storage_unavailable", "the server's database is unreachable or busy; retry after the indicated delay"),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            error: ErrorDetail {
                code: code.name().to_owned(),
                message: code.message().to_owned(),
            },
        }
    }

    /// The code, if this build knows it (a newer server may send codes an older client does
    /// not know; the client then falls back on the HTTP status).
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::from_name(&self.error.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_stable_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.name()), "duplicate {}", code.name());
            assert!(code
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(ErrorCode::from_name(code.name()), Some(code));
            assert!((400..600).contains(&code.status()));
            assert!(!code.message().is_empty());
        }
        assert_eq!(ErrorCode::from_name("no_such_code"), None);
    }

    #[test]
    fn json_shape_is_the_documented_one() {
        let body = serde_json::to_value(ErrorBody::new(ErrorCode::Overloaded)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "overloaded", "message": ErrorCode::Overloaded.message()}})
        );
        let parsed: ErrorBody = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.code(), Some(ErrorCode::Overloaded));
        assert_eq!(ErrorCode::Overloaded.status(), 429);
    }
}
