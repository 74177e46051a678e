//! The one error type of the crypto core.
//!
//! Messages name what was wrong with an input (its kind, its shape, a limit) and never carry
//! key material, plaintext, scores or ciphertext contents.

use crate::fingerprint::KeyFingerprint;

/// Everything that can go wrong in `tabir-crypto`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The parameter-set id on the wire is not one this build knows.
    #[error("unknown parameter set id {id}")]
    UnknownParameterSet { id: u16 },

    /// A domain configuration that cannot be used (bad dimension, scale, threshold...).
    #[error("invalid domain configuration: {reason}")]
    InvalidConfig { reason: &'static str },

    /// An embedding of the wrong length.
    #[error("embedding has {got} dimensions, the key domain expects {expected}")]
    DimensionMismatch { expected: usize, got: usize },

    /// An embedding that is not finite or not L2-normalised.
    #[error("embedding rejected: {reason}")]
    InvalidEmbedding { reason: &'static str },

    /// A blob whose header names another type, or whose header or body cannot be decoded
    /// (truncated, corrupted, wrong version).
    #[error("malformed {kind} blob: {detail}")]
    Malformed { kind: &'static str, detail: String },

    /// A well-formed blob of another type (a template where a probe was expected...).
    #[error("blob holds a {got}, expected a {expected}")]
    WrongType { expected: &'static str, got: String },

    /// A blob larger than the limit for its kind.
    #[error("{kind} blob is {got} bytes, over the limit of {limit} bytes")]
    TooLarge {
        kind: &'static str,
        got: usize,
        limit: u64,
    },

    /// A blob that decoded but whose shape does not fit the key domain's parameters.
    #[error("{kind} does not fit the key domain's parameters: {detail}")]
    ShapeMismatch {
        kind: &'static str,
        detail: &'static str,
    },

    /// A ciphertext produced under another key domain.
    #[error("{kind} belongs to key domain {got}, expected {expected}")]
    WrongKeyDomain {
        kind: &'static str,
        expected: KeyFingerprint,
        got: KeyFingerprint,
    },

    /// A blob of the first Tabir version, whose key domains were symmetric (every device held
    /// the domain's whole secret key). Those domains are refused: create a new one, re-enrol.
    #[error(
        "this {kind} belongs to a symmetric key domain from before key custody shares, which this version refuses: create a new key domain and re-enrol"
    )]
    SymmetricKeyDomain { kind: &'static str },

    /// A share, share delta or result that does not fit the domain (wrong length, values out
    /// of range).
    #[error("{kind} does not fit the key domain: {detail}")]
    InvalidShare {
        kind: &'static str,
        detail: &'static str,
    },

    /// More templates in one request than the caller allowed.
    #[error("gallery of {got} templates is over the limit of {limit}")]
    GalleryTooLarge { got: usize, limit: usize },
}

pub type Result<T> = std::result::Result<T, CryptoError>;
