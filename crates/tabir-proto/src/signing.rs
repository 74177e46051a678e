//! What a device, custodian or auditor signs with its Ed25519 key on every request.
//!
//! The signed message binds the method, the path (with query), the SHA-256 of the body, the
//! timestamp and a nonce, so a signature cannot be moved to another request, body or time, and
//! a captured request cannot be replayed (the server remembers nonces for the freshness window).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Header carrying the signer's key id (the hex SHA-256 of its Ed25519 public key).
pub const HEADER_KEY_ID: &str = "x-tabir-key-id";
/// Header carrying the request time, seconds since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "x-tabir-timestamp";
/// Header carrying a fresh random nonce, 32 hex characters.
pub const HEADER_NONCE: &str = "x-tabir-nonce";
/// Header carrying the Ed25519 signature of [`signed_message`], hex.
pub const HEADER_SIGNATURE: &str = "x-tabir-signature";

/// A request older or newer than this many seconds is refused as stale.
pub const FRESHNESS_WINDOW_SECS: u64 = 300;

const DOMAIN_SEPARATOR: &str = "tabir-request-v1";

/// The exact bytes that are signed: one field per line, the body as its SHA-256.
pub fn signed_message(
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
) -> Vec<u8> {
    let digest = crate::hex::encode(&Sha256::digest(body));
    format!(
        "{DOMAIN_SEPARATOR}\n{}\n{path}\n{digest}\n{timestamp}\n{nonce}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// A nonce is 32 lower-case hex characters (128 random bits).
pub fn nonce_is_well_formed(nonce: &str) -> bool {
    nonce.len() == 32
        && nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `timestamp` lies within the freshness window around `now`.
pub fn is_fresh(timestamp: u64, now: u64) -> bool {
    timestamp.abs_diff(now) <= FRESHNESS_WINDOW_SECS
}

/// The key id of a public key: hex SHA-256 of its 32 bytes. Registries and the audit log name
/// keys by it.
pub fn key_id(public_key: &VerifyingKey) -> String {
    crate::hex::encode(&Sha256::digest(public_key.as_bytes()))
}

/// Parse a hex Ed25519 public key (64 characters).
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes = crate::hex::decode::<32>(text)?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// The four authentication headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSignature {
    pub key_id: String,
    pub timestamp: u64,
    pub nonce: String,
    /// Hex Ed25519 signature of [`signed_message`].
    pub signature: String,
}

impl RequestSignature {
    /// Sign a request. `nonce` must be fresh for every request (see [`nonce_is_well_formed`]).
    pub fn sign(
        key: &SigningKey,
        method: &str,
        path: &str,
        body: &[u8],
        timestamp: u64,
        nonce: String,
    ) -> Self {
        let message = signed_message(method, path, body, timestamp, &nonce);
        Self {
            key_id: key_id(&key.verifying_key()),
            timestamp,
            signature: crate::hex::encode(&key.sign(&message).to_bytes()),
            nonce,
        }
    }

    /// The headers to send, as (name, value) pairs.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_KEY_ID, self.key_id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }

    /// Whether the signature is `public_key`'s over this request. Ed25519 verification does
    /// not branch on secret data; the comparison inside is constant-time.
    pub fn is_valid_for(
        &self,
        public_key: &VerifyingKey,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> bool {
        let Some(bytes) = crate::hex::decode::<64>(&self.signature) else {
            return false;
        };
        let signature = Signature::from_bytes(&bytes);
        let message = signed_message(method, path, body, self.timestamp, &self.nonce);
        public_key.verify_strict(&message, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_own_request_and_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let nonce = "0123456789abcdef0123456789abcdef".to_owned();
        let signed = RequestSignature::sign(&key, "POST", "/v1/x", b"body", 100, nonce);
        let public = key.verifying_key();
        assert_eq!(signed.key_id, key_id(&public));
        assert!(signed.is_valid_for(&public, "POST", "/v1/x", b"body"));
        assert!(!signed.is_valid_for(&public, "POST", "/v1/x", b"bodz"));
        assert!(!signed.is_valid_for(&public, "PUT", "/v1/x", b"body"));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(!signed.is_valid_for(&other, "POST", "/v1/x", b"body"));
        let mut garbled = signed.clone();
        garbled.signature = "zz".into();
        assert!(!garbled.is_valid_for(&public, "POST", "/v1/x", b"body"));
        assert_eq!(
            parse_public_key(&crate::hex::encode(public.as_bytes())),
            Some(public)
        );
        assert_eq!(parse_public_key("00"), None);
    }

    #[test]
    fn every_field_changes_the_message() {
        let nonce = "0123456789abcdef0123456789abcdef";
        let base = signed_message("post", "/v1/x", b"body", 100, nonce);
        assert_eq!(base, signed_message("POST", "/v1/x", b"body", 100, nonce));
        for other in [
            signed_message("PUT", "/v1/x", b"body", 100, nonce),
            signed_message("POST", "/v1/y", b"body", 100, nonce),
            signed_message("POST", "/v1/x", b"bodz", 100, nonce),
            signed_message("POST", "/v1/x", b"body", 101, nonce),
            signed_message(
                "POST",
                "/v1/x",
                b"body",
                100,
                "f123456789abcdef0123456789abcdef",
            ),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn nonce_and_freshness_rules() {
        assert!(nonce_is_well_formed("0123456789abcdef0123456789abcdef"));
        assert!(!nonce_is_well_formed("0123456789ABCDEF0123456789abcdef"));
        assert!(!nonce_is_well_formed("short"));
        assert!(is_fresh(1_000, 1_300));
        assert!(!is_fresh(1_000, 1_301));
        assert!(is_fresh(1_300, 1_000));
    }
}
