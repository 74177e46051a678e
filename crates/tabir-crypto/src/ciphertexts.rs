//! The ciphertexts that travel and are stored: probe, template, the escrowed result of a
//! match, and the encrypted bit a caller receives.
//!
//! In memory each holds plain coefficient vectors and the fingerprint of its key domain. On
//! the wire each is a versioned, `Named` blob (tfhe's safe serialization with a size limit)
//! around the coefficients bit-packed at exactly the precision the circuit uses. `from_bytes`
//! applies the size limit, checks the domain, then unpacks against the domain's parameters:
//! a wrong length, a non-canonical packing or another domain is a typed error, never a panic.
//!
//! Everything here is public-key material: there is no key in this module and nothing here can
//! decrypt.

use crate::error::{CryptoError, Result};
use crate::fingerprint::KeyFingerprint;
use crate::packing::{pack, unpack};
use crate::params::{DomainConfig, LatticeParams, PROBE_BITS, RESULT_MODULUS_LOG, TEMPLATE_BITS};
use crate::wire;
use serde::{Deserialize, Serialize};
use std::fmt;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

/// Size limits when decoding. Each is comfortably above the honest size (noted alongside).
pub const PROBE_LIMIT: u64 = 64 * 1024; // 48 KiB: GGSW, 4 x 2048 coefficients x 48 bits
pub const TEMPLATE_LIMIT: u64 = 16 * 1024; // 11.5 KiB: GLWE, 2 x 2048 coefficients x 23 bits
pub const BIT_LIMIT: u64 = 4 * 1024; // 2.5 KiB: LWE, 2049 coefficients x 10 bits
pub const SHARD_BIT_LIMIT: u64 = 20 * 1024; // 16 KiB: LWE, 2049 coefficients x 64 bits

/// A probe: the GGSW encryption of P(X) = sum p_i X^(-i) under the domain's public key, as
/// tfhe lays a GGSW out (levels, then rows, then polynomials), each coefficient rounded to its
/// top [`PROBE_BITS`] bits.
#[derive(Clone)]
pub struct Probe {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) coefficients: Vec<u64>,
}

/// An enrolled template: the GLWE encryption of Delta * T(X), T(X) = sum t_i X^i, under the
/// domain's public key (mask, then body), each coefficient rounded to the top
/// `base_log * level` = 23 bits that the external product's decomposition keeps. Not 24: an
/// extra bit leaves exact ties that the decomposer always breaks one way, a measurable bias.
#[derive(Clone)]
pub struct Template {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) coefficients: Vec<u64>,
}

/// An LWE ciphertext of one decision bit (0 or q/4) under the domain's key read as an LWE key,
/// modulus-switched to 2^10: mask then body, each below 2^10.
#[derive(Clone)]
pub(crate) struct ResultLwe(pub(crate) Vec<u16>);

/// A match result as the server keeps it in escrow: the bit under the whole domain key, before
/// any share is applied. It never leaves the server as is; only a share-applied
/// [`EncryptedBit`] does.
#[derive(Clone)]
pub struct EscrowedBit {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) lwe: ResultLwe,
}

/// A decision bit as a caller receives it: the escrowed bit with the server's share for that
/// caller applied, so only the caller's own decryption share opens it.
#[derive(Clone)]
pub struct EncryptedBit {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) lwe: ResultLwe,
}

/// One shard's encrypted any-match bit inside the server: an LWE under the whole domain key
/// at the full modulus 2^64 (the internal scale, 0 or q/64). Workers store it between shards
/// so that any worker can combine them; it is never returned to anyone and no share applies
/// to it.
#[derive(Clone)]
pub struct ShardBit {
    pub(crate) fingerprint: KeyFingerprint,
    pub(crate) lwe: tfhe::core_crypto::prelude::LweCiphertextOwned<u64>,
}

impl ShardBit {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(
            &ShardBitWire {
                fingerprint: self.fingerprint,
                packed: pack(self.lwe.as_ref().iter().copied(), 64),
            },
            SHARD_BIT_LIMIT,
        )
    }

    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        use tfhe::core_crypto::prelude::*;
        let wire: ShardBitWire = wire::decode(bytes, "shard bit", SHARD_BIT_LIMIT)?;
        expect_domain("shard bit", domain, wire.fingerprint)?;
        let p = config.params.lattice();
        let values = unpacked("shard bit", &wire.packed, 64, result_len(&p))?;
        Ok(Self {
            fingerprint: wire.fingerprint,
            lwe: LweCiphertext::from_container(values, p.ciphertext_modulus),
        })
    }
}

/// The wire form shared by every packed ciphertext.
macro_rules! wire_type {
    ($wire:ident, $versions:ident, $name:literal) => {
        #[derive(Serialize, Deserialize, Versionize)]
        #[versionize($versions)]
        struct $wire {
            fingerprint: KeyFingerprint,
            packed: Vec<u8>,
        }

        #[derive(VersionsDispatch)]
        #[allow(dead_code)]
        enum $versions {
            V0($wire),
        }

        impl Named for $wire {
            const NAME: &'static str = $name;
        }
    };
}

wire_type!(ProbeWire, ProbeWireVersions, "tabir::Probe/2");
wire_type!(TemplateWire, TemplateWireVersions, "tabir::Template/2");
wire_type!(
    EscrowedBitWire,
    EscrowedBitWireVersions,
    "tabir::EscrowedBit/2"
);
wire_type!(
    EncryptedBitWire,
    EncryptedBitWireVersions,
    "tabir::EncryptedBit/2"
);
wire_type!(ShardBitWire, ShardBitWireVersions, "tabir::ShardBit/1");

fn unpacked(kind: &'static str, packed: &[u8], bits: u32, count: usize) -> Result<Vec<u64>> {
    unpack(packed, bits, count).ok_or(CryptoError::ShapeMismatch {
        kind,
        detail: "packed length or padding does not match the parameter set",
    })
}

/// Number of coefficients of a probe GGSW: levels x (k+1) rows x (k+1) polynomials x N.
pub(crate) fn probe_len(p: &LatticeParams) -> usize {
    p.pbs_level.0 * p.glwe_size().0 * p.glwe_size().0 * p.polynomial_size.0
}

/// Number of coefficients of a template GLWE: (k+1) polynomials x N.
pub(crate) fn template_len(p: &LatticeParams) -> usize {
    p.glwe_size().0 * p.polynomial_size.0
}

/// Number of coefficients of a result LWE: k N mask coefficients and the body.
pub(crate) fn result_len(p: &LatticeParams) -> usize {
    p.big_lwe_dimension().0 + 1
}

impl Probe {
    /// Wrap coefficients already rounded to [`PROBE_BITS`] bits (the device's encryptor).
    pub fn from_rounded(
        fingerprint: KeyFingerprint,
        coefficients: Vec<u64>,
        config: &DomainConfig,
    ) -> Result<Self> {
        let probe = Self {
            fingerprint,
            coefficients,
        };
        probe.check_shape(&config.params.lattice())?;
        Ok(probe)
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// The rounded coefficients, in tfhe's GGSW layout (public ciphertext data).
    pub fn coefficients(&self) -> &[u64] {
        &self.coefficients
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(
            &ProbeWire {
                fingerprint: self.fingerprint,
                packed: pack(self.coefficients.iter().copied(), PROBE_BITS),
            },
            PROBE_LIMIT,
        )
    }

    /// Decode and check against the key domain's configuration and fingerprint.
    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        let wire: ProbeWire = wire::decode(bytes, "probe", PROBE_LIMIT)?;
        expect_domain("probe", domain, wire.fingerprint)?;
        let lattice = config.params.lattice();
        Ok(Self {
            fingerprint: wire.fingerprint,
            coefficients: unpacked("probe", &wire.packed, PROBE_BITS, probe_len(&lattice))?,
        })
    }

    pub(crate) fn check(&self, config: &DomainConfig, domain: KeyFingerprint) -> Result<()> {
        expect_domain("probe", domain, self.fingerprint)?;
        self.check_shape(&config.params.lattice())
    }

    fn check_shape(&self, p: &LatticeParams) -> Result<()> {
        shape(
            "probe",
            self.coefficients.len() == probe_len(p)
                && self.coefficients.iter().all(|&c| c >> PROBE_BITS == 0),
            "coefficient count or precision",
        )
    }
}

impl Template {
    /// Wrap coefficients already rounded to the template precision (the device's encryptor).
    pub fn from_rounded(
        fingerprint: KeyFingerprint,
        coefficients: Vec<u64>,
        config: &DomainConfig,
    ) -> Result<Self> {
        let template = Self {
            fingerprint,
            coefficients,
        };
        template.check_shape(&config.params.lattice())?;
        Ok(template)
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// The rounded coefficients, mask then body (public ciphertext data).
    pub fn coefficients(&self) -> &[u64] {
        &self.coefficients
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(
            &TemplateWire {
                fingerprint: self.fingerprint,
                packed: pack(self.coefficients.iter().copied(), TEMPLATE_BITS),
            },
            TEMPLATE_LIMIT,
        )
    }

    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        let wire: TemplateWire = wire::decode(bytes, "template", TEMPLATE_LIMIT)?;
        expect_domain("template", domain, wire.fingerprint)?;
        let lattice = config.params.lattice();
        Ok(Self {
            fingerprint: wire.fingerprint,
            coefficients: unpacked(
                "template",
                &wire.packed,
                TEMPLATE_BITS,
                template_len(&lattice),
            )?,
        })
    }

    pub(crate) fn check(&self, config: &DomainConfig, domain: KeyFingerprint) -> Result<()> {
        expect_domain("template", domain, self.fingerprint)?;
        self.check_shape(&config.params.lattice())
    }

    fn check_shape(&self, p: &LatticeParams) -> Result<()> {
        shape(
            "template",
            self.coefficients.len() == template_len(p)
                && self.coefficients.iter().all(|&c| c >> TEMPLATE_BITS == 0),
            "coefficient count or precision",
        )
    }
}

impl ResultLwe {
    fn to_packed(&self) -> Vec<u8> {
        pack(
            self.0.iter().map(|&c| u64::from(c)),
            RESULT_MODULUS_LOG as u32,
        )
    }

    fn from_packed(kind: &'static str, packed: &[u8], p: &LatticeParams) -> Result<Self> {
        let values = unpacked(kind, packed, RESULT_MODULUS_LOG as u32, result_len(p))?;
        // Each value is below 2^10 by construction of the unpacking.
        Ok(Self(values.into_iter().map(|v| v as u16).collect()))
    }

    /// The mask coefficients a_1..a_kN.
    pub(crate) fn mask(&self) -> &[u16] {
        &self.0[..self.0.len() - 1]
    }

    pub(crate) fn body_mut(&mut self) -> &mut u16 {
        let last = self.0.len() - 1;
        &mut self.0[last]
    }

    pub(crate) fn body(&self) -> u16 {
        self.0[self.0.len() - 1]
    }
}

impl EscrowedBit {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(
            &EscrowedBitWire {
                fingerprint: self.fingerprint,
                packed: self.lwe.to_packed(),
            },
            BIT_LIMIT,
        )
    }

    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        let wire: EscrowedBitWire = wire::decode(bytes, "escrowed bit", BIT_LIMIT)?;
        expect_domain("escrowed bit", domain, wire.fingerprint)?;
        Ok(Self {
            fingerprint: wire.fingerprint,
            lwe: ResultLwe::from_packed("escrowed bit", &wire.packed, &config.params.lattice())?,
        })
    }
}

impl EncryptedBit {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(
            &EncryptedBitWire {
                fingerprint: self.fingerprint,
                packed: self.lwe.to_packed(),
            },
            BIT_LIMIT,
        )
    }

    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        let wire: EncryptedBitWire = wire::decode(bytes, "encrypted bit", BIT_LIMIT)?;
        expect_domain("encrypted bit", domain, wire.fingerprint)?;
        Ok(Self {
            fingerprint: wire.fingerprint,
            lwe: ResultLwe::from_packed("encrypted bit", &wire.packed, &config.params.lattice())?,
        })
    }

    /// The mask and body at modulus 2^10, for decryption with a share on the device.
    pub fn mask_and_body(&self) -> (&[u16], u16) {
        (self.lwe.mask(), self.lwe.body())
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
redacted_debug!(Probe, Template, EscrowedBit, EncryptedBit, ShardBit);

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

pub(crate) fn shape(kind: &'static str, ok: bool, detail: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(CryptoError::ShapeMismatch { kind, detail })
    }
}
