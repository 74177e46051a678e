//! Additive shares of the domain key modulo 2^10, and the server's half of the decryption.
//!
//! The domain key S (binary, k N = 2048 coefficients) is split as S = S1 + S2 (mod 2^10), S1
//! uniform: each half alone is a one-time pad of S. Results are switched to modulus 2^10
//! before they leave the server, so a share pair decrypts them completely:
//! - the server holds S2 for each device and auditor and, per result it returns, subtracts
//!   <a, S2> from the body ([`ServerShare::apply`]);
//! - the caller subtracts <a, S1> with its own share and reads the bit (device side, in
//!   `tabir-device-crypto`).
//!
//! The custodian keeps a reference share S1_ref, the server S2_ref; a new device's pair is
//! derived from them with a delta (S2_j = S2_ref + S1_ref - S1_j) without anyone rebuilding S.
//! See docs/key-custody.md.
//!
//! Every share is secret: wiped on drop, no Debug content, no serde; its bytes come only from
//! an explicit export meant for sealing.

use crate::ciphertexts::{EncryptedBit, EscrowedBit, ResultLwe};
use crate::error::{CryptoError, Result};
use crate::fingerprint::KeyFingerprint;
use crate::packing::{pack, unpack};
use crate::params::{DomainConfig, RESULT_MODULUS_LOG};
use crate::wire;
use serde::{Deserialize, Serialize};
use std::fmt;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};
use zeroize::{Zeroize, Zeroizing};

/// Size limit of an encoded share (honest size: 2,560 bytes of values plus the header).
pub const SHARE_LIMIT: u64 = 4 * 1024;

/// Shares live modulo 2^10, the modulus of the results.
pub const SHARE_MODULUS: u16 = 1 << RESULT_MODULUS_LOG;
const SHARE_MASK: u16 = SHARE_MODULUS - 1;

/// What a share is for; written into its encoding, so one kind cannot be read as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShareKind {
    /// S2 held by the server for one device or auditor (or the reference S2_ref).
    Server,
    /// S1_ref - S1_j, sent by the custodian when issuing device j.
    Delta,
    /// S1_j held by a device or an auditor.
    Decryption,
    /// S1_ref held by the custodian.
    CustodianReference,
}

impl ShareKind {
    fn code(self) -> u8 {
        match self {
            ShareKind::Server => 1,
            ShareKind::Delta => 2,
            ShareKind::Decryption => 3,
            ShareKind::CustodianReference => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ShareKind::Server => "server share",
            ShareKind::Delta => "share delta",
            ShareKind::Decryption => "decryption share",
            ShareKind::CustodianReference => "custodian share",
        }
    }
}

/// k N values modulo 2^10 for one key domain: the body of every kind of share. Secret.
pub struct ShareValues {
    fingerprint: KeyFingerprint,
    values: Zeroizing<Vec<u16>>,
}

impl fmt::Debug for ShareValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareValues(domain {}, <secret>)", self.fingerprint)
    }
}

#[derive(Serialize, Deserialize, Versionize)]
#[versionize(ShareWireVersions)]
struct ShareWire {
    kind: u8,
    fingerprint: KeyFingerprint,
    packed: Vec<u8>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
enum ShareWireVersions {
    V0(ShareWire),
}

impl Named for ShareWire {
    const NAME: &'static str = "tabir::Share/2";
}

impl ShareValues {
    /// Wrap values for `config`'s key length; each must be below 2^10.
    pub fn from_values(
        fingerprint: KeyFingerprint,
        values: Zeroizing<Vec<u16>>,
        config: &DomainConfig,
    ) -> Result<Self> {
        let expected = config.params.lattice().big_lwe_dimension().0;
        if values.len() != expected || values.iter().any(|&v| v >= SHARE_MODULUS) {
            return Err(CryptoError::InvalidShare {
                kind: "share",
                detail: "wrong length, or a value not below 2^10",
            });
        }
        Ok(Self {
            fingerprint,
            values,
        })
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// The values, for share arithmetic and decryption on the device side.
    pub fn values(&self) -> &[u16] {
        &self.values
    }

    /// self + other (mod 2^10), both of the same domain.
    pub fn plus(&self, other: &ShareValues) -> Result<ShareValues> {
        self.combine(other, u16::wrapping_add)
    }

    /// self - other (mod 2^10), both of the same domain.
    pub fn minus(&self, other: &ShareValues) -> Result<ShareValues> {
        self.combine(other, u16::wrapping_sub)
    }

    fn combine(&self, other: &ShareValues, op: fn(u16, u16) -> u16) -> Result<ShareValues> {
        crate::ciphertexts::expect_domain("share", self.fingerprint, other.fingerprint)?;
        let values = self
            .values
            .iter()
            .zip(other.values.iter())
            .map(|(&a, &b)| op(a, b) & SHARE_MASK)
            .collect();
        Ok(Self {
            fingerprint: self.fingerprint,
            values: Zeroizing::new(values),
        })
    }

    /// <mask, values> modulo 2^10.
    pub fn dot(&self, mask: &[u16]) -> u16 {
        mask.iter()
            .zip(self.values.iter())
            .fold(0u16, |acc, (&a, &s)| acc.wrapping_add(a.wrapping_mul(s)))
            & SHARE_MASK
    }

    /// The encoding for sealing or sending: kind, domain, values packed 10 bits each. Secret
    /// bytes: seal them before they touch a disk.
    pub fn encode(&self, kind: ShareKind) -> Zeroizing<Vec<u8>> {
        let mut wire = ShareWire {
            kind: kind.code(),
            fingerprint: self.fingerprint,
            packed: pack(
                self.values.iter().map(|&v| u64::from(v)),
                RESULT_MODULUS_LOG as u32,
            ),
        };
        let bytes = wire::encode_secret(&wire, SHARE_LIMIT);
        wire.packed.zeroize();
        bytes
    }

    /// Decode a share of `kind` for `config` and `domain`.
    pub fn decode(
        bytes: &[u8],
        kind: ShareKind,
        config: &DomainConfig,
        domain: KeyFingerprint,
    ) -> Result<Self> {
        let mut wire: ShareWire = wire::decode(bytes, kind.name(), SHARE_LIMIT)?;
        let decoded = Self::from_wire(&wire, kind, config, domain);
        wire.packed.zeroize();
        decoded
    }

    fn from_wire(
        wire: &ShareWire,
        kind: ShareKind,
        config: &DomainConfig,
        domain: KeyFingerprint,
    ) -> Result<Self> {
        if wire.kind != kind.code() {
            return Err(CryptoError::InvalidShare {
                kind: kind.name(),
                detail: "the blob holds another kind of share",
            });
        }
        crate::ciphertexts::expect_domain(kind.name(), domain, wire.fingerprint)?;
        let count = config.params.lattice().big_lwe_dimension().0;
        let unpacked = Zeroizing::new(
            unpack(&wire.packed, RESULT_MODULUS_LOG as u32, count).ok_or(
                CryptoError::InvalidShare {
                    kind: kind.name(),
                    detail: "packed length or padding does not match the key",
                },
            )?,
        );
        // Each unpacked value has 10 bits.
        let values = Zeroizing::new(unpacked.iter().map(|&v| v as u16).collect::<Vec<u16>>());
        Self::from_values(wire.fingerprint, values, config)
    }
}

/// The server's half S2 of one caller's share pair (or the reference S2_ref). Held only sealed
/// under the server's master key at rest.
#[derive(Debug)]
pub struct ServerShare(ShareValues);

/// S1_ref - S1_j: what the custodian sends when issuing device j, so the server can derive
/// S2_j = S2_ref + delta_j. Secret in transit.
#[derive(Debug)]
pub struct ShareDelta(ShareValues);

impl ServerShare {
    pub fn new(values: ShareValues) -> Self {
        Self(values)
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        self.0.fingerprint
    }

    /// S2_j = S2_ref + delta_j, for a device or auditor the custodian just issued.
    pub fn derive(&self, delta: &ShareDelta) -> Result<ServerShare> {
        Ok(ServerShare(self.0.plus(&delta.0)?))
    }

    /// The server's half of the decryption: b' = b - <a, S2> (mod 2^10). The result opens only
    /// with the caller's own share S1; the server learns nothing (it never sees S1).
    pub fn apply(&self, bit: &EscrowedBit) -> Result<EncryptedBit> {
        crate::ciphertexts::expect_domain("escrowed bit", self.0.fingerprint, bit.fingerprint)?;
        let mut lwe = ResultLwe(bit.lwe.0.clone());
        let dot = self.0.dot(lwe.mask());
        let body = lwe.body_mut();
        *body = body.wrapping_sub(dot) & SHARE_MASK;
        Ok(EncryptedBit {
            fingerprint: bit.fingerprint,
            lwe,
        })
    }

    /// Bytes to seal at rest. Secret.
    pub fn export_secret(&self) -> Zeroizing<Vec<u8>> {
        self.0.encode(ShareKind::Server)
    }

    pub fn import_secret(
        bytes: &[u8],
        config: &DomainConfig,
        domain: KeyFingerprint,
    ) -> Result<Self> {
        ShareValues::decode(bytes, ShareKind::Server, config, domain).map(Self)
    }
}

impl ShareDelta {
    pub fn new(values: ShareValues) -> Self {
        Self(values)
    }

    /// Bytes to send (inside an authenticated, encrypted request). Secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.0.encode(ShareKind::Delta)
    }

    pub fn from_bytes(bytes: &[u8], config: &DomainConfig, domain: KeyFingerprint) -> Result<Self> {
        ShareValues::decode(bytes, ShareKind::Delta, config, domain).map(Self)
    }
}
