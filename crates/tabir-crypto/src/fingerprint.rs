//! Key fingerprints: which key domain a ciphertext belongs to.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use tfhe_versionable::{Versionize, VersionsDispatch};

/// SHA-256 of the canonical bytes of a key domain's evaluation keys (domain-separated).
///
/// Every template, probe and result carries the fingerprint of the domain it was made under,
/// so that a ciphertext from another domain is refused instead of being evaluated into noise.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Versionize)]
#[versionize(KeyFingerprintVersions)]
pub struct KeyFingerprint([u8; 32]);

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub enum KeyFingerprintVersions {
    V0(KeyFingerprint),
}

const DOMAIN_SEPARATOR: &[u8] = b"tabir/evaluation-keys/v1\0";

impl KeyFingerprint {
    /// Fingerprint of the canonical serialization of a domain's evaluation keys.
    pub(crate) fn of_canonical_bytes(bytes: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN_SEPARATOR);
        hasher.update(bytes);
        Self(hasher.finalize().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parse 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

/// Short form for people: the first 16 hex characters.
impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex()[..16])
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_text() {
        let fp = KeyFingerprint::of_canonical_bytes(b"abc");
        assert_eq!(KeyFingerprint::from_hex(&fp.to_hex()), Some(fp));
        assert_eq!(KeyFingerprint::from_hex("zz"), None);
        assert_eq!(KeyFingerprint::from_hex(&"g".repeat(64)), None);
        assert_eq!(fp.to_string().len(), 16);
    }

    #[test]
    fn fingerprint_is_domain_separated_sha256() {
        let plain: [u8; 32] = Sha256::digest(b"abc").into();
        assert_ne!(
            KeyFingerprint::of_canonical_bytes(b"abc").as_bytes(),
            &plain
        );
    }
}
