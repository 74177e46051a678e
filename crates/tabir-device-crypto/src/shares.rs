//! The shares held outside the server: the custodian's reference share S1_ref, from which it
//! issues a share pair for every device and auditor, and the decryption share S1_j a device or
//! auditor opens its results with. See `tabir_crypto::shares` for the construction.

use rand::rngs::OsRng;
use rand::RngCore;
use tabir_crypto::ciphertexts::EncryptedBit;
use tabir_crypto::error::Result;
use tabir_crypto::fingerprint::KeyFingerprint;
use tabir_crypto::params::{DomainConfig, RESULT_MODULUS_LOG};
use tabir_crypto::shares::{ShareDelta, ShareKind, ShareValues, SHARE_MODULUS};
use tabir_crypto::{CryptoError, Decision};
use zeroize::Zeroizing;

/// S1_j: a device's or auditor's half of its share pair. Opens the results the server
/// prepared for this key id, and nothing else. Secret: wiped on drop, no Debug content.
#[derive(Debug)]
pub struct DecryptionShare(ShareValues);

/// S1_ref: the custodian's reference share. Worthless alone; with it the custodian issues
/// share pairs for new devices without anyone rebuilding the domain key.
#[derive(Debug)]
pub struct CustodianShare(ShareValues);

/// Uniform values modulo 2^10 from the operating system's randomness.
pub(crate) fn random_share(
    fingerprint: KeyFingerprint,
    config: &DomainConfig,
) -> Result<ShareValues> {
    let count = config.params.lattice().big_lwe_dimension().0;
    let mut bytes = Zeroizing::new(vec![0u8; 2 * count]);
    OsRng.fill_bytes(&mut bytes);
    // 2^10 divides 2^16: masking keeps the values uniform.
    let values = Zeroizing::new(
        bytes
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]) & (SHARE_MODULUS - 1))
            .collect::<Vec<u16>>(),
    );
    ShareValues::from_values(fingerprint, values, config)
}

impl DecryptionShare {
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.0.fingerprint()
    }

    #[cfg(test)]
    pub(crate) fn values(&self) -> &[u16] {
        self.0.values()
    }

    /// Open a bit the server prepared for this share: phase = b' - <a, S1_j> (mod 2^10); the
    /// bit encrypts 0 (no match) or a quarter of the modulus (match), so decide by the nearer.
    pub fn decrypt(&self, bit: &EncryptedBit) -> Result<Decision> {
        if bit.fingerprint() != self.fingerprint() {
            return Err(CryptoError::WrongKeyDomain {
                kind: "encrypted bit",
                expected: self.fingerprint(),
                got: bit.fingerprint(),
            });
        }
        let (mask, body) = bit.mask_and_body();
        let phase = body.wrapping_sub(self.0.dot(mask)) & (SHARE_MODULUS - 1);
        Ok(decision_of_phase(phase))
    }

    /// The bytes to seal in a bundle. Secret.
    pub fn export_secret(&self) -> Zeroizing<Vec<u8>> {
        self.0.encode(ShareKind::Decryption)
    }

    pub fn import_secret(
        bytes: &[u8],
        config: &DomainConfig,
        domain: KeyFingerprint,
    ) -> Result<Self> {
        ShareValues::decode(bytes, ShareKind::Decryption, config, domain).map(Self)
    }
}

/// Match iff the phase (at modulus 2^10) is nearer q/4 than 0: it lies in [q/8, 5q/8).
pub(crate) fn decision_of_phase(phase: u16) -> Decision {
    let quarter = 1u16 << (RESULT_MODULUS_LOG - 2);
    if (quarter / 2..quarter / 2 + 2 * quarter).contains(&phase) {
        Decision::Match
    } else {
        Decision::NoMatch
    }
}

impl CustodianShare {
    pub(crate) fn new(values: ShareValues) -> Self {
        Self(values)
    }

    pub fn fingerprint(&self) -> KeyFingerprint {
        self.0.fingerprint()
    }

    #[cfg(test)]
    pub(crate) fn values(&self) -> &[u16] {
        self.0.values()
    }

    /// A new share pair for a device or auditor: its decryption share S1_j (fresh, uniform)
    /// and the delta S1_ref - S1_j the server needs to derive S2_j = S2_ref + delta.
    pub fn issue(&self, config: &DomainConfig) -> Result<(DecryptionShare, ShareDelta)> {
        let device = random_share(self.fingerprint(), config)?;
        let delta = self.0.minus(&device)?;
        Ok((DecryptionShare(device), ShareDelta::new(delta)))
    }

    /// The bytes to seal in the custodian's key folder. Secret.
    pub fn export_secret(&self) -> Zeroizing<Vec<u8>> {
        self.0.encode(ShareKind::CustodianReference)
    }

    pub fn import_secret(
        bytes: &[u8],
        config: &DomainConfig,
        domain: KeyFingerprint,
    ) -> Result<Self> {
        ShareValues::decode(bytes, ShareKind::CustodianReference, config, domain).map(Self)
    }
}
