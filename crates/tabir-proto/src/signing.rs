//! What a device, custodian or auditor signs with its Ed25519 key on every request.
//!
//! The signed message binds the method, the path (with query), the SHA-256 of the body, the
//! timestamp and a nonce, so a signature cannot be moved to another request, body or time, and
//! a captured request cannot be replayed (the server remembers nonces for the freshness window).

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

#[cfg(test)]
mod tests {
    use super::*;

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
