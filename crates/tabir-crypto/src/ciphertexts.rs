//! The ciphertexts that travel: probe, template, encrypted bit, identification result.
//!
//! Each is a versioned, `Named` wrapper around tfhe entities plus the fingerprint of the key
//! domain it belongs to. `from_bytes` applies the size limit, then checks every shape field
//! against the domain's parameters before anything else touches the data: tfhe's own code
//! assumes well-formed entities and would panic (or compute garbage) on a forged one.

use crate::error::{CryptoError, Result};
use crate::fingerprint::KeyFingerprint;
use crate::params::{DomainConfig, LatticeParams, RESULT_MODULUS_LOG};
use crate::wire;
use serde::{Deserialize, Serialize};
use std::fmt;
use tfhe::conformance::ParameterSetConformant;
use tfhe::core_crypto::commons::math::random::CompressionSeed;
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_csprng::generators::aes_ctr::{AesCtrParams, TableIndex};
use tfhe_csprng::seeders::SeedKind;
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limits when decoding. Each is comfortably above the honest size (noted alongside).
pub const PROBE_LIMIT: u64 = 64 * 1024; // 32 KiB seeded GGSW
pub const TEMPLATE_LIMIT: u64 = 32 * 1024; // 16 KiB seeded GLWE
pub const BIT_LIMIT: u64 = 8 * 1024; // 2.5 KiB compressed LWE
/// Per candidate, for identification results (plus one for the any-match bit).
const IDENTIFY_PER_BIT_LIMIT: u64 = 4 * 1024;

/// A probe: the seeded GGSW encryption of P(X) = sum p_i X^(-i). Produced by the device.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(ProbeVersions)]
pub struct Probe {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) ggsw: SeededGgswCiphertextOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum ProbeVersions {
    V0(Probe),
}

impl Named for Probe {
    const NAME: &'static str = "tabir::Probe";
}

/// An enrolled template: the seeded GLWE encryption of Delta * T(X), T(X) = sum t_i X^i.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(TemplateVersions)]
pub struct Template {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) glwe: SeededGlweCiphertextOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum TemplateVersions {
    V0(Template),
}

impl Named for Template {
    const NAME: &'static str = "tabir::Template";
}

/// One encrypted decision bit (0 or q/4), modulus-switched to 2^10 and bit-packed.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(EncryptedBitVersions)]
pub struct EncryptedBit {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) lwe: CompressedModulusSwitchedLweCiphertext<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum EncryptedBitVersions {
    V0(EncryptedBit),
}

impl Named for EncryptedBit {
    const NAME: &'static str = "tabir::EncryptedBit";
}

/// The answer to a 1:N identification: an encrypted "any match" bit and, where the server's
/// policy allows, one encrypted bit per candidate in gallery order.
#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(IdentifyResultVersions)]
pub struct IdentifyResult {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) any_match: CompressedModulusSwitchedLweCiphertext<u64>,
    pub(crate) candidates: Vec<CompressedModulusSwitchedLweCiphertext<u64>>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum IdentifyResultVersions {
    V0(IdentifyResult),
}

impl Named for IdentifyResult {
    const NAME: &'static str = "tabir::IdentifyResult";
}

impl Probe {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self, PROBE_LIMIT)
    }

    /// Decode and check against the key domain's configuration and fingerprint.
    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        let probe: Self = wire::decode(bytes, "probe", PROBE_LIMIT)?;
        probe.check(config, domain)?;
        Ok(probe)
    }

    pub(crate) fn check(&self, config: &DomainConfig, domain: KeyFingerprint) -> Result<()> {
        expect_domain("probe", domain, self.fingerprint)?;
        check_probe_shape(&self.ggsw, &config.params.lattice())
    }
}

impl Template {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self, TEMPLATE_LIMIT)
    }

    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        let template: Self = wire::decode(bytes, "template", TEMPLATE_LIMIT)?;
        template.check(config, domain)?;
        Ok(template)
    }

    pub(crate) fn check(&self, config: &DomainConfig, domain: KeyFingerprint) -> Result<()> {
        expect_domain("template", domain, self.fingerprint)?;
        check_template_shape(&self.glwe, &config.params.lattice())
    }
}

impl EncryptedBit {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self, BIT_LIMIT)
    }

    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        let bit: Self = wire::decode(bytes, "encrypted bit", BIT_LIMIT)?;
        expect_domain("encrypted bit", domain, bit.fingerprint)?;
        check_result_shape(&bit.lwe, &config.params.lattice())?;
        Ok(bit)
    }
}

impl IdentifyResult {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// Number of per-candidate bits (0 when the server's policy withholds them).
    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }

    fn limit(max_candidates: usize) -> u64 {
        IDENTIFY_PER_BIT_LIMIT.saturating_mul(max_candidates as u64 + 1)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self, Self::limit(self.candidates.len()))
    }

    /// Decode, refusing more than `max_candidates` per-candidate bits.
    pub fn from_bytes(
        bytes: &[u8],
        config: &DomainConfig,
        domain: KeyFingerprint,
        max_candidates: usize,
    ) -> Result<Self> {
        let result: Self = wire::decode(bytes, "identify result", Self::limit(max_candidates))?;
        expect_domain("identify result", domain, result.fingerprint)?;
        let lattice = config.params.lattice();
        check_result_shape(&result.any_match, &lattice)?;
        if result.candidates.len() > max_candidates {
            return Err(CryptoError::GalleryTooLarge {
                got: result.candidates.len(),
                limit: max_candidates,
            });
        }
        for bit in &result.candidates {
            check_result_shape(bit, &lattice)?;
        }
        Ok(result)
    }
}

macro_rules! redacted_debug {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "(domain {}, <ciphertext>)"), self.fingerprint)
            }
        }
    )*};
}
redacted_debug!(Probe, Template, EncryptedBit, IdentifyResult);

pub(crate) fn expect_domain(
    kind: &'static str,
    expected: KeyFingerprint,
    got: KeyFingerprint,
) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(CryptoError::WrongKeyDomain {
            kind,
            expected,
            got,
        })
    }
}

fn shape(kind: &'static str, ok: bool, detail: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(CryptoError::ShapeMismatch { kind, detail })
    }
}

/// Seeded entities must use a plain AES-CTR seed starting at the first table index; any other
/// value could make decompression read past the generator's table.
pub(crate) fn check_seed(kind: &'static str, seed: CompressionSeed) -> Result<()> {
    let params: AesCtrParams = seed.into();
    shape(
        kind,
        matches!(params.seed, SeedKind::Ctr(_)) && params.first_index == TableIndex::FIRST,
        "unsupported compression seed",
    )
}

fn check_probe_shape(ggsw: &SeededGgswCiphertextOwned<u64>, p: &LatticeParams) -> Result<()> {
    let kind = "probe";
    shape(kind, ggsw.glwe_size() == p.glwe_size(), "GLWE size")?;
    shape(
        kind,
        ggsw.polynomial_size() == p.polynomial_size,
        "polynomial size",
    )?;
    shape(
        kind,
        ggsw.decomposition_base_log() == p.pbs_base_log,
        "decomposition base",
    )?;
    shape(
        kind,
        ggsw.ciphertext_modulus().is_native_modulus(),
        "ciphertext modulus",
    )?;
    // Seeded GGSW: per level, one body polynomial per row, glwe_size rows.
    let expected = p.pbs_level.0 * p.glwe_size().0 * p.polynomial_size.0;
    shape(kind, ggsw.as_ref().len() == expected, "container length")?;
    shape(
        kind,
        ggsw.decomposition_level_count() == p.pbs_level,
        "decomposition levels",
    )?;
    check_seed(kind, ggsw.compression_seed())
}

fn check_template_shape(glwe: &SeededGlweCiphertextOwned<u64>, p: &LatticeParams) -> Result<()> {
    let kind = "template";
    shape(kind, glwe.glwe_size() == p.glwe_size(), "GLWE size")?;
    // A seeded GLWE stores only its body: exactly one polynomial.
    shape(
        kind,
        glwe.as_ref().len() == p.polynomial_size.0,
        "polynomial size",
    )?;
    shape(
        kind,
        glwe.ciphertext_modulus().is_native_modulus(),
        "ciphertext modulus",
    )?;
    check_seed(kind, glwe.compression_seed())
}

fn check_result_shape(
    lwe: &CompressedModulusSwitchedLweCiphertext<u64>,
    p: &LatticeParams,
) -> Result<()> {
    let big = p.big_lwe_dimension();
    let conformance = CompressedModulusSwitchedLweCiphertextConformanceParams {
        ct_params: LweCiphertextConformanceParams {
            lwe_dim: big,
            ct_modulus: p.ciphertext_modulus,
        },
        ms_decompression_type: MsDecompressionType::ClassicPbs {
            br_input_modulus_log: CiphertextModulusLog(RESULT_MODULUS_LOG),
            br_input_lwe_dim: big,
        },
    };
    shape(
        "encrypted bit",
        lwe.is_conformant(&conformance),
        "dimension or packing",
    )
}
