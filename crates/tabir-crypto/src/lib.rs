//! # tabir-crypto
//!
//! Encrypted face-template matching with TFHE: the device encrypts, the server compares
//! ciphertexts and returns one encrypted bit, `score >= threshold`, and only the device can
//! read it. One external product, one keyswitch and one programmable bootstrap per decision.
//! See `docs/crypto.md` for the circuit, the parameters, the noise budget and the limits.
//!
//! Module map:
//! - [`params`]: the vetted parameter set (stable wire id) and a key domain's configuration;
//! - [`quantize`]: embedding quantisation and threshold calibration;
//! - [`client`] (feature `client`): key generation, encryption, decryption;
//! - [`evaluation_keys`], [`server`]: what the server holds and computes;
//! - [`ciphertexts`]: the wire types, with size limits and shape checks;
//! - [`twin`]: the plaintext twin used by tests and the benchmark.

#![forbid(unsafe_code)]

pub mod ciphertexts;
#[cfg(feature = "client")]
pub mod client;
pub mod error;
pub mod evaluation_keys;
pub mod fingerprint;
pub mod params;
pub mod quantize;
pub mod server;
pub mod twin;
mod wire;

pub use ciphertexts::{EncryptedBit, IdentifyResult, Probe, Template};
#[cfg(feature = "client")]
pub use client::{generate_key_domain, ClientKey, Decision, ExportedSecret, IdentifyDecision};
pub use error::{CryptoError, Result};
pub use evaluation_keys::EvaluationKeys;
pub use fingerprint::KeyFingerprint;
pub use params::{DomainConfig, ParamSetId, Threshold};
pub use quantize::{quantise, QuantisedEmbedding};
pub use server::{CandidateBits, ServerKeys};

#[cfg(all(test, feature = "client"))]
mod tests;
