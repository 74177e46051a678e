//! # tabir-crypto
//!
//! The public side of Tabir's encrypted matching, shared by devices and the server: the
//! vetted parameter set, the wire types (probe, template, escrowed and encrypted bits, keys,
//! shares) with size limits and shape checks, the matcher (one external product, one
//! keyswitch and one programmable bootstrap per decision) and the server's half of the
//! share-based decryption. There is no key generation, encryption or decryption here: those
//! are in `tabir-device-crypto`, a crate the server does not depend on.
//! See `docs/crypto.md` and `docs/key-custody.md`.
//!
//! Module map:
//! - [`params`]: the vetted parameter set (stable wire id) and a key domain's configuration;
//! - [`evaluation_keys`]: the keys the server evaluates with and the public key devices
//!   encrypt with; [`registration`]: what the custodian uploads;
//! - [`ciphertexts`]: probes, templates, escrowed and encrypted bits;
//! - [`server`]: the matcher; [`shares`]: additive key shares modulo 2^10 and their server
//!   half.

#![forbid(unsafe_code)]

pub mod ciphertexts;
pub mod error;
pub mod evaluation_keys;
pub mod fingerprint;
mod packing;
pub mod params;
pub mod registration;
pub mod server;
pub mod shares;
mod wire;

pub use ciphertexts::{EncryptedBit, EscrowedBit, Probe, ShardBit, Template};
pub use error::{CryptoError, Result};
pub use evaluation_keys::{DomainPublicKey, EvaluationKeys};
pub use fingerprint::KeyFingerprint;
pub use params::{DomainConfig, ParamSetId, Threshold};
pub use registration::DomainRegistration;
pub use server::{CandidateBits, Identification, SearchProbe, ServerKeys, DEFAULT_SHARD_TEMPLATES};
pub use shares::{ServerShare, ShareDelta, ShareKind, ShareValues};

/// The decision a bit encrypts, as the device reads it after decryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Match,
    NoMatch,
}

impl Decision {
    pub fn is_match(self) -> bool {
        self == Decision::Match
    }

    /// The stable name: `match` or `no_match`.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Match => "match",
            Decision::NoMatch => "no_match",
        }
    }
}
