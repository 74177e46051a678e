//! A key domain's public evaluation keys: what the custodian registers with the server.

use crate::ciphertexts::check_seed;
use crate::error::{CryptoError, Result};
use crate::fingerprint::KeyFingerprint;
use crate::params::DomainConfig;
use crate::wire;
use serde::{Deserialize, Serialize};
use std::fmt;
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limit when decoding evaluation keys (honest size: 28.7 MiB BSK + 64 KiB KSK).
pub const EVALUATION_KEYS_LIMIT: u64 = 40 * 1024 * 1024;

/// The seeded bootstrapping key (small LWE key -> GLWE key) and seeded keyswitching key
/// (GLWE key read as LWE -> small LWE key), with the domain configuration they were made for.
/// Public: holding them lets one evaluate, never decrypt.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(EvaluationKeysVersions)]
pub struct EvaluationKeys {
    pub(crate) config: DomainConfig,
    pub(crate) bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    pub(crate) keyswitch_key: SeededLweKeyswitchKeyOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum EvaluationKeysVersions {
    V0(EvaluationKeys),
}

impl Named for EvaluationKeys {
    const NAME: &'static str = "tabir::EvaluationKeys";
}

impl fmt::Debug for EvaluationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluationKeys")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EvaluationKeys {
    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    /// Canonical bytes: the same keys always serialize to the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self, EVALUATION_KEYS_LIMIT)
    }

    /// The key fingerprint: SHA-256 (domain-separated) of the canonical bytes.
    pub fn fingerprint(&self) -> KeyFingerprint {
        KeyFingerprint::of_canonical_bytes(&self.to_bytes())
    }

    /// Decode and check every shape against the embedded configuration's parameter set.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let keys: Self = wire::decode(bytes, "evaluation keys", EVALUATION_KEYS_LIMIT)?;
        keys.check()?;
        Ok(keys)
    }

    fn check(&self) -> Result<()> {
        self.config.validate()?;
        let p = self.config.params.lattice();
        let bsk = &self.bootstrap_key;
        let kind = "bootstrapping key";
        let ok = bsk.glwe_size() == p.glwe_size()
            && bsk.polynomial_size() == p.polynomial_size
            && bsk.decomposition_base_log() == p.pbs_base_log
            && bsk.decomposition_level_count() == p.pbs_level
            && bsk.ciphertext_modulus().is_native_modulus()
            && bsk.as_ref().len()
                == p.lwe_dimension.0 * p.pbs_level.0 * p.glwe_size().0 * p.polynomial_size.0;
        if !ok {
            return Err(CryptoError::ShapeMismatch {
                kind,
                detail: "dimensions do not match the parameter set",
            });
        }
        check_seed(kind, bsk.compression_seed())?;

        let ksk = &self.keyswitch_key;
        let kind = "keyswitching key";
        let ok = ksk.decomposition_base_log() == p.ks_base_log
            && ksk.decomposition_level_count() == p.ks_level
            && ksk.output_lwe_size() == p.lwe_dimension.to_lwe_size()
            && ksk.ciphertext_modulus().is_native_modulus()
            && ksk.as_ref().len() == p.big_lwe_dimension().0 * p.ks_level.0;
        if !ok {
            return Err(CryptoError::ShapeMismatch {
                kind,
                detail: "dimensions do not match the parameter set",
            });
        }
        check_seed(kind, ksk.compression_seed())
    }
}
