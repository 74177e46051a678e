//! A key domain's public keys: the evaluation keys the custodian registers with the server,
//! and the public key devices encrypt with. Holding them lets one encrypt and evaluate, never
//! decrypt.

use crate::error::{CryptoError, Result};
use crate::fingerprint::KeyFingerprint;
use crate::params::{DomainConfig, KeyswitchKind};
use crate::wire;
use serde::{Deserialize, Serialize};
use std::fmt;
use tfhe::core_crypto::commons::math::random::CompressionSeed;
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_csprng::generators::aes_ctr::{AesCtrParams, TableIndex};
use tfhe_csprng::seeders::SeedKind;
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limit when decoding evaluation keys (honest size: 28.7 MiB BSK + 64 KiB KSK, or 32 KiB
/// for the 32-bit form, + 16 KiB public key).
pub const EVALUATION_KEYS_LIMIT: u64 = 40 * 1024 * 1024;
/// Size limit of a domain public key (honest size: 16 KiB).
pub const PUBLIC_KEY_LIMIT: u64 = 32 * 1024;

/// The seeded bootstrapping key (small LWE key -> GLWE key), the seeded keyswitching key (GLWE
/// key read as LWE -> small LWE key) and the public key (A, B = A S + E) of the GLWE key S,
/// with the domain configuration they were made for. The fingerprint covers all of it.
///
/// The keyswitching key is on 64 or 32 bits depending on the parameter set; each form is its
/// own blob type, so the bytes (and fingerprints) of domains made before the 32-bit form
/// existed are unchanged.
#[derive(Clone)]
pub struct EvaluationKeys(Keys);

#[derive(Clone)]
enum Keys {
    Ks64(KeysWith<u64>),
    Ks32(KeysWith<u32>),
}

/// The serialized evaluation keys, generic over the keyswitching key's scalar.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(KeysWithVersions)]
pub(crate) struct KeysWith<KsScalar: UnsignedInteger> {
    pub(crate) config: DomainConfig,
    pub(crate) bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    pub(crate) keyswitch_key: SeededLweKeyswitchKeyOwned<KsScalar>,
    pub(crate) public_key: SeededGlweCiphertextOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub(crate) enum KeysWithVersions<KsScalar: UnsignedInteger> {
    V0(KeysWith<KsScalar>),
}

/// The 64-bit form keeps the name it always had.
impl Named for KeysWith<u64> {
    const NAME: &'static str = "tabir::EvaluationKeys/2";
}

impl Named for KeysWith<u32> {
    const NAME: &'static str = "tabir::EvaluationKeysKs32/1";
}

/// The keyswitching key of a domain, in the form its parameter set asks for.
pub enum SeededKeyswitchKey {
    Ks64(SeededLweKeyswitchKeyOwned<u64>),
    Ks32(SeededLweKeyswitchKeyOwned<u32>),
}

/// The keyswitching key decompressed for use by the server.
pub(crate) enum KeyswitchKey {
    Ks64(LweKeyswitchKeyOwned<u64>),
    Ks32(LweKeyswitchKeyOwned<u32>),
}

/// The parts [`crate::server::ServerKeys::prepare`] takes apart.
pub(crate) struct KeyParts {
    pub(crate) config: DomainConfig,
    pub(crate) bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    pub(crate) keyswitch_key: KeyswitchKey,
}

impl fmt::Debug for EvaluationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvaluationKeys")
            .field("config", self.config())
            .finish_non_exhaustive()
    }
}

/// What a device needs to encrypt: the domain's public key, configuration and fingerprint
/// (about 16 KiB). Public.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(DomainPublicKeyVersions)]
pub struct DomainPublicKey {
    pub(crate) config: DomainConfig,
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) public_key: SeededGlweCiphertextOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum DomainPublicKeyVersions {
    V0(DomainPublicKey),
}

impl Named for DomainPublicKey {
    const NAME: &'static str = "tabir::DomainPublicKey/2";
}

impl fmt::Debug for DomainPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainPublicKey(domain {})", self.fingerprint)
    }
}

impl EvaluationKeys {
    /// Assemble freshly generated keys (the custodian's key generation), checking their shapes
    /// and that the keyswitching key has the form the parameter set asks for.
    pub fn from_parts(
        config: DomainConfig,
        bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
        keyswitch_key: SeededKeyswitchKey,
        public_key: SeededGlweCiphertextOwned<u64>,
    ) -> Result<Self> {
        let keys = Self(match keyswitch_key {
            SeededKeyswitchKey::Ks64(keyswitch_key) => Keys::Ks64(KeysWith {
                config,
                bootstrap_key,
                keyswitch_key,
                public_key,
            }),
            SeededKeyswitchKey::Ks32(keyswitch_key) => Keys::Ks32(KeysWith {
                config,
                bootstrap_key,
                keyswitch_key,
                public_key,
            }),
        });
        keys.check()?;
        Ok(keys)
    }

    pub fn config(&self) -> &DomainConfig {
        match &self.0 {
            Keys::Ks64(k) => &k.config,
            Keys::Ks32(k) => &k.config,
        }
    }

    fn public_key_glwe(&self) -> &SeededGlweCiphertextOwned<u64> {
        match &self.0 {
            Keys::Ks64(k) => &k.public_key,
            Keys::Ks32(k) => &k.public_key,
        }
    }

    /// Canonical bytes: the same keys always serialize to the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Keys::Ks64(k) => wire::encode(k, EVALUATION_KEYS_LIMIT),
            Keys::Ks32(k) => wire::encode(k, EVALUATION_KEYS_LIMIT),
        }
    }

    /// The key fingerprint: SHA-256 (domain-separated) of the canonical bytes.
    pub fn fingerprint(&self) -> KeyFingerprint {
        KeyFingerprint::of_canonical_bytes(&self.to_bytes())
    }

    /// The public key devices encrypt with.
    pub fn public_key(&self) -> DomainPublicKey {
        DomainPublicKey {
            config: *self.config(),
            fingerprint: self.fingerprint(),
            public_key: self.public_key_glwe().clone(),
        }
    }

    /// Decode either form and check every shape against the embedded configuration's
    /// parameter set.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        const KIND: &str = "evaluation keys";
        let keys = if wire::names(bytes, <KeysWith<u32> as Named>::NAME) {
            Self(Keys::Ks32(wire::decode(
                bytes,
                KIND,
                EVALUATION_KEYS_LIMIT,
            )?))
        } else {
            Self(Keys::Ks64(wire::decode(
                bytes,
                KIND,
                EVALUATION_KEYS_LIMIT,
            )?))
        };
        keys.check()?;
        Ok(keys)
    }

    /// Take the keys apart for the server's preparation, decompressing the keyswitching key.
    pub(crate) fn into_parts(self) -> KeyParts {
        match self.0 {
            Keys::Ks64(k) => KeyParts {
                config: k.config,
                bootstrap_key: k.bootstrap_key,
                keyswitch_key: KeyswitchKey::Ks64(
                    k.keyswitch_key.par_decompress_into_lwe_keyswitch_key(),
                ),
            },
            Keys::Ks32(k) => KeyParts {
                config: k.config,
                bootstrap_key: k.bootstrap_key,
                keyswitch_key: KeyswitchKey::Ks32(
                    k.keyswitch_key.par_decompress_into_lwe_keyswitch_key(),
                ),
            },
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let config = self.config();
        config.validate()?;
        let p = config.params.lattice();
        let (bootstrap_key, keyswitch_ok, keyswitch_seed) = match (&self.0, p.keyswitch) {
            (Keys::Ks64(k), KeyswitchKind::Native64 { .. }) => (
                &k.bootstrap_key,
                keyswitch_shape_ok(&k.keyswitch_key, &p),
                k.keyswitch_key.compression_seed(),
            ),
            (Keys::Ks32(k), KeyswitchKind::Native32 { .. }) => (
                &k.bootstrap_key,
                keyswitch_shape_ok(&k.keyswitch_key, &p),
                k.keyswitch_key.compression_seed(),
            ),
            _ => {
                return Err(CryptoError::ShapeMismatch {
                    kind: "keyswitching key",
                    detail: "its scalar width is not the one the parameter set asks for",
                })
            }
        };
        let bsk = bootstrap_key;
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

        let kind = "keyswitching key";
        if !keyswitch_ok {
            return Err(CryptoError::ShapeMismatch {
                kind,
                detail: "dimensions do not match the parameter set",
            });
        }
        check_seed(kind, keyswitch_seed)?;
        check_public_key(self.public_key_glwe(), config)
    }
}

fn keyswitch_shape_ok<Scalar: UnsignedInteger>(
    ksk: &SeededLweKeyswitchKeyOwned<Scalar>,
    p: &crate::params::LatticeParams,
) -> bool {
    ksk.decomposition_base_log() == p.ks_base_log
        && ksk.decomposition_level_count() == p.ks_level
        && ksk.output_lwe_size() == p.lwe_dimension.to_lwe_size()
        && ksk.ciphertext_modulus().is_native_modulus()
        && ksk.as_ref().len() == p.big_lwe_dimension().0 * p.ks_level.0
}

impl DomainPublicKey {
    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// The public key as a GLWE ciphertext of zero: mask A, body B = A S + E.
    pub fn decompressed(&self) -> GlweCiphertextOwned<u64> {
        self.public_key.clone().decompress_into_glwe_ciphertext()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self, PUBLIC_KEY_LIMIT)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key: Self = wire::decode(bytes, "public key", PUBLIC_KEY_LIMIT)?;
        key.config.validate()?;
        check_public_key(&key.public_key, &key.config)?;
        Ok(key)
    }
}

fn check_public_key(pk: &SeededGlweCiphertextOwned<u64>, config: &DomainConfig) -> Result<()> {
    let p = config.params.lattice();
    let kind = "public key";
    let ok = pk.glwe_size() == p.glwe_size()
        && pk.polynomial_size() == p.polynomial_size
        && pk.as_ref().len() == p.polynomial_size.0
        && pk.ciphertext_modulus().is_native_modulus();
    if !ok {
        return Err(CryptoError::ShapeMismatch {
            kind,
            detail: "dimensions do not match the parameter set",
        });
    }
    check_seed(kind, pk.compression_seed())
}

/// Seeded entities must use a plain AES-CTR seed starting at the first table index; any other
/// value could make decompression read past the generator's table.
pub(crate) fn check_seed(kind: &'static str, seed: CompressionSeed) -> Result<()> {
    let params: AesCtrParams = seed.into();
    crate::ciphertexts::shape(
        kind,
        matches!(params.seed, SeedKind::Ctr(_)) && params.first_index == TableIndex::FIRST,
        "unsupported compression seed",
    )
}
