//! # tabir-device-crypto
//!
//! Everything in Tabir that touches a secret, and nothing the server runs:
//! - the custodian's key ceremony ([`generate_key_domain`]): keys generated, the domain's
//!   secret key split into a reference share pair, and wiped; and [`CustodianShare::issue`],
//!   a share pair for each new device or auditor;
//! - the office device's public-key encryption of templates and probes ([`Encryptor`]);
//! - decryption of results with a device's or auditor's own share ([`DecryptionShare`]);
//! - quantisation of embeddings ([`quantize`]) and the plaintext twin ([`twin`]) for tests
//!   and benchmarks.
//!
//! The server's build does not contain this crate (checked by tabir-server's tests/blind.rs).
//! See `docs/key-custody.md` for who holds what.

#![forbid(unsafe_code)]

pub mod encrypt;
pub mod keygen;
pub mod quantize;
pub mod shares;
pub mod twin;

pub use encrypt::Encryptor;
pub use keygen::{generate_key_domain, KeyDomain};
pub use quantize::{domain_config, identify_threshold, quantise, QuantisedEmbedding};
pub use shares::{CustodianShare, DecryptionShare};
pub use tabir_crypto::Decision;

#[cfg(test)]
mod tests;
