//! One error type for the SDK that keeps apart what the caller must act on differently: a
//! photo to retake, a refusal by the server (do not retry), a network or overload failure
//! (retried already, try later), and local key or configuration problems.

use tabir_face::FaceError;
use tabir_proto::ErrorCode;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The photo was refused on the device; nothing was sent.
    #[error("photo refused: {0}")]
    Photo(FaceError),
    /// The face pipeline could not run (runtime or models missing).
    #[error("face pipeline unavailable: {0}")]
    FacePipeline(FaceError),
    /// The server refused the request; retrying will not help.
    #[error("refused by the server ({status} {code}): {message}")]
    Refused {
        status: u16,
        /// The protocol's error code name (`unknown_subject`, `forbidden`...).
        code: String,
        message: String,
    },
    /// The server stayed busy (429) through every retry.
    #[error("the server is busy; tried {attempts} times, try again later")]
    Overloaded { attempts: u32 },
    /// The server could not be reached, or the connection failed, through every retry.
    #[error("network failure talking to {server}: {detail}")]
    Network { server: String, detail: String },
    /// The server's answer cannot be used (wrong type, another key domain...).
    #[error("unexpected answer from the server: {0}")]
    BadAnswer(String),
    /// The registered domain is not the one this device's key belongs to.
    #[error(
        "key domain mismatch: the server has fingerprint {server}, this device's key is {local}"
    )]
    DomainMismatch { server: String, local: String },
    /// Encrypting or decrypting failed.
    #[error("encryption: {0}")]
    Crypto(#[from] tabir_crypto::CryptoError),
    /// A sealed key file could not be opened.
    #[error(transparent)]
    Sealed(#[from] crate::sealed::SealError),
    /// Configuration or key files are missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The protocol code of a refusal, when the server sent one this build knows.
    pub fn refusal_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused { code, .. } => ErrorCode::from_name(code),
            _ => None,
        }
    }

    /// Stable machine-readable kind, for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Photo(_) => "photo",
            ClientError::FacePipeline(_) => "face_pipeline",
            ClientError::Refused { .. } => "refused",
            ClientError::Overloaded { .. } => "overloaded",
            ClientError::Network { .. } => "network",
            ClientError::BadAnswer(_) => "bad_answer",
            ClientError::DomainMismatch { .. } => "domain_mismatch",
            ClientError::Crypto(_) => "crypto",
            ClientError::Sealed(_) => "sealed_key",
            ClientError::Config(_) => "config",
        }
    }

    /// A stable code for JSON output: the refusal's protocol code, the photo's face code, or
    /// the kind.
    pub fn code(&self) -> String {
        match self {
            ClientError::Refused { code, .. } => code.clone(),
            ClientError::Photo(e) | ClientError::FacePipeline(e) => e.code().to_owned(),
            other => other.kind().to_owned(),
        }
    }
}

impl From<FaceError> for ClientError {
    fn from(error: FaceError) -> Self {
        if error.is_photo_problem() {
            ClientError::Photo(error)
        } else {
            ClientError::FacePipeline(error)
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;
