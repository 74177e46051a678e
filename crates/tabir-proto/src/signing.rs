//! What a device, custodian or auditor signs with its Ed25519 key on every request.
//!
//! The signed message binds the method, the path (with query), the SHA-256 of the body, the
//! request id (when the request carries one), the timestamp and a nonce, so a signature cannot
//! be moved to another request, body or time, and a captured request cannot be replayed (the
//! server remembers nonces for the freshness window).
//!
//! The body's digest also travels in a header, so the server checks the signature, the key's
//! role and the route's body limit **before** it reads a byte of the body; it then hashes the
//! body while reading it and refuses the request if the body is not the one signed.

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
/// Header carrying the hex SHA-256 of the body (of the empty string when there is none).
pub const HEADER_CONTENT_SHA256: &str = "x-tabir-content-sha256";
/// Header carrying a request id, 32 hex characters: the same for every retry of one request,
/// so the server does the work once and answers retries from its record.
pub const HEADER_REQUEST_ID: &str = "x-tabir-request-id";

/// A request older or newer than this many seconds is refused as stale.
pub const FRESHNESS_WINDOW_SECS: u64 = 300;

const DOMAIN_SEPARATOR: &str = "tabir-request-v2";

/// Hex SHA-256 of a body.
pub fn body_digest(body: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(body))
}

/// The exact bytes that are signed: one field per line, the body as its hex SHA-256, the
/// request id or an empty line.
pub fn signed_message(
    method: &str,
    path: &str,
    body_sha256: &str,
    request_id: Option<&str>,
    timestamp: u64,
    nonce: &str,
) -> Vec<u8> {
    format!(
        "{DOMAIN_SEPARATOR}\n{}\n{path}\n{body_sha256}\n{}\n{timestamp}\n{nonce}",
        method.to_ascii_uppercase(),
        request_id.unwrap_or("")
    )
    .into_bytes()
}

/// 32 lower-case hex characters (128 random bits): the shape of nonces and request ids.
pub fn is_token_hex(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A nonce is 32 lower-case hex characters (128 random bits).
pub fn nonce_is_well_formed(nonce: &str) -> bool {
    is_token_hex(nonce)
}

/// A body digest is 64 lower-case hex characters.
pub fn digest_is_well_formed(digest: &str) -> bool {
    digest.len() == 64
        && digest
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

/// The authentication headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSignature {
    pub key_id: String,
    pub timestamp: u64,
    pub nonce: String,
    /// Hex SHA-256 of the body the signer sent.
    pub content_sha256: String,
    /// The request id, the same on every retry of one request.
    pub request_id: Option<String>,
    /// Hex Ed25519 signature of [`signed_message`].
    pub signature: String,
}

impl RequestSignature {
    /// Sign a request. `nonce` must be fresh for every attempt (see [`nonce_is_well_formed`]);
    /// `request_id`, when given, is the same for every retry of the request.
    pub fn sign(
        key: &SigningKey,
        method: &str,
        path: &str,
        body: &[u8],
        timestamp: u64,
        nonce: String,
        request_id: Option<String>,
    ) -> Self {
        let content_sha256 = body_digest(body);
        let message = signed_message(
            method,
            path,
            &content_sha256,
            request_id.as_deref(),
            timestamp,
            &nonce,
        );
        Self {
            key_id: key_id(&key.verifying_key()),
            timestamp,
            signature: crate::hex::encode(&key.sign(&message).to_bytes()),
            content_sha256,
            request_id,
            nonce,
        }
    }

    /// The headers to send, as (name, value) pairs.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (HEADER_KEY_ID, self.key_id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_CONTENT_SHA256, self.content_sha256.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ];
        if let Some(id) = &self.request_id {
            headers.push((HEADER_REQUEST_ID, id.clone()));
        }
        headers
    }

    /// Whether the signature is `public_key`'s over this request, taking the body digest from
    /// the header: the body itself is checked against it while it is read
    /// ([`RequestSignature::body_matches`]). Ed25519 verification does not branch on secret
    /// data; the comparison inside is constant-time.
    pub fn is_valid_for(&self, public_key: &VerifyingKey, method: &str, path: &str) -> bool {
        let Some(bytes) = crate::hex::decode::<64>(&self.signature) else {
            return false;
        };
        if !digest_is_well_formed(&self.content_sha256)
            || self
                .request_id
                .as_deref()
                .is_some_and(|id| !is_token_hex(id))
        {
            return false;
        }
        let signature = Signature::from_bytes(&bytes);
        let message = signed_message(
            method,
            path,
            &self.content_sha256,
            self.request_id.as_deref(),
            self.timestamp,
            &self.nonce,
        );
        public_key.verify_strict(&message, &signature).is_ok()
    }

    /// Whether a body's SHA-256 is the one signed.
    pub fn body_matches(&self, digest: &[u8; 32]) -> bool {
        crate::hex::encode(digest) == self.content_sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signature_holds_only_for_its_own_request_and_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signed =
            RequestSignature::sign(&key, "POST", "/v1/x", b"body", 100, NONCE.into(), None);
        let public = key.verifying_key();
        assert_eq!(signed.key_id, key_id(&public));
        assert!(signed.is_valid_for(&public, "POST", "/v1/x"));
        assert!(signed.body_matches(&Sha256::digest(b"body").into()));
        assert!(!signed.body_matches(&Sha256::digest(b"bodz").into()));
        assert!(!signed.is_valid_for(&public, "PUT", "/v1/x"));
        assert!(!signed.is_valid_for(&public, "POST", "/v1/y"));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(!signed.is_valid_for(&other, "POST", "/v1/x"));
        let mut garbled = signed.clone();
        garbled.signature = "zz".into();
        assert!(!garbled.is_valid_for(&public, "POST", "/v1/x"));
        // The digest header is signed: swapping it for another body's breaks the signature.
        let mut swapped = signed.clone();
        swapped.content_sha256 = body_digest(b"other");
        assert!(!swapped.is_valid_for(&public, "POST", "/v1/x"));
        // So is the request id.
        let mut with_id = signed.clone();
        with_id.request_id = Some(NONCE.into());
        assert!(!with_id.is_valid_for(&public, "POST", "/v1/x"));
        assert_eq!(
            parse_public_key(&crate::hex::encode(public.as_bytes())),
            Some(public)
        );
        assert_eq!(parse_public_key("00"), None);
    }

    #[test]
    fn every_field_changes_the_message() {
        let digest = body_digest(b"body");
        let base = signed_message("post", "/v1/x", &digest, None, 100, NONCE);
        assert_eq!(
            base,
            signed_message("POST", "/v1/x", &digest, None, 100, NONCE)
        );
        for other in [
            signed_message("PUT", "/v1/x", &digest, None, 100, NONCE),
            signed_message("POST", "/v1/y", &digest, None, 100, NONCE),
            signed_message("POST", "/v1/x", &body_digest(b"bodz"), None, 100, NONCE),
            signed_message("POST", "/v1/x", &digest, Some(NONCE), 100, NONCE),
            signed_message("POST", "/v1/x", &digest, None, 101, NONCE),
            signed_message(
                "POST",
                "/v1/x",
                &digest,
                None,
                100,
                "f123456789abcdef0123456789abcdef",
            ),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn nonce_and_freshness_rules() {
        assert!(nonce_is_well_formed(NONCE));
        assert!(!nonce_is_well_formed("0123456789ABCDEF0123456789abcdef"));
        assert!(!nonce_is_well_formed("short"));
        assert!(digest_is_well_formed(&body_digest(b"")));
        assert!(!digest_is_well_formed("abc"));
        assert!(is_fresh(1_000, 1_300));
        assert!(!is_fresh(1_000, 1_301));
        assert!(is_fresh(1_300, 1_000));
    }
}
