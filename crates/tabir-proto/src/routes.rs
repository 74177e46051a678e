//! Routes of protocol version 1, the role allowed on each, and the body limit of each.
//! Ciphertexts and keys travel as the raw blobs of `tabir-crypto` (`application/octet-stream`);
//! metadata and errors as JSON.

use tabir_crypto::ciphertexts::{PROBE_LIMIT, TEMPLATE_LIMIT};
use tabir_crypto::evaluation_keys::EVALUATION_KEYS_LIMIT;

pub const API_PREFIX: &str = "/v1";
pub const CONTENT_TYPE_BLOB: &str = "application/octet-stream";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// An office device: enrol, verify, identify, delete, in its own key domain only.
    Device,
    /// Reads the registry and the audit log.
    Auditor,
    /// Registers key domains and devices, revokes devices.
    Custodian,
}

/// Body limits (bytes). A probe is tens of KiB; only key registration is tens of MiB.
pub const LIMIT_JSON: u64 = 16 * 1024;
pub const LIMIT_PROBE: u64 = PROBE_LIMIT;
pub const LIMIT_TEMPLATE: u64 = TEMPLATE_LIMIT;
pub const LIMIT_EVALUATION_KEYS: u64 = EVALUATION_KEYS_LIMIT;

// The limits leave room for honest blobs (probe 33,010 B, template 16,605 B, keys 28.75 MiB)
// and not much more; checked when this crate compiles.
const _: () = assert!(LIMIT_PROBE >= 33 * 1024 && LIMIT_PROBE <= 64 * 1024);
const _: () = assert!(LIMIT_TEMPLATE >= 17 * 1024 && LIMIT_TEMPLATE <= 32 * 1024);
const _: () = assert!(LIMIT_EVALUATION_KEYS >= 29 * 1024 * 1024);

/// `POST`: the one-time custodian bootstrap (bearer token, not a signature).
pub const BOOTSTRAP: &str = "/v1/bootstrap";
/// `GET`: the server's audit-signing public key and version.
pub const SERVER_INFO: &str = "/v1/server";
/// `GET`: all key domains with their fingerprints.
pub const DOMAINS: &str = "/v1/domains";
/// `GET ?after=N&limit=M`: a page of the audit log.
pub const AUDIT: &str = "/v1/audit";
/// Unauthenticated: 200 when ready.
pub const HEALTH: &str = "/healthz";
/// Unauthenticated: Prometheus text.
pub const METRICS: &str = "/metrics";

/// `GET` a domain's registry entry; `PUT /v1/domains/{domain}`: evaluation keys (blob) -> [`crate::messages::DomainInfo`].
pub fn domain(domain: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}")
}

/// `PUT` (template blob) / `DELETE` a subject's enrolment.
pub fn enrolment(domain: &str, subject: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/subjects/{subject}")
}

/// `POST` a probe blob -> encrypted bit blob.
pub fn verification(domain: &str, subject: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/subjects/{subject}/verifications")
}

/// `POST` a probe blob -> identification result blob.
pub fn identification(domain: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/identifications")
}

/// `POST` a [`crate::messages::DeviceRegistration`]; `DELETE .../{device}` revokes.
pub fn devices(domain: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/devices")
}

/// `DELETE` revokes a registered key of the domain.
pub fn device(domain: &str, key_id: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/devices/{key_id}")
}

/// `GET` a page of the audit log after sequence number `after`.
pub fn audit_page(after: u64, limit: usize) -> String {
    format!("{AUDIT}?after={after}&limit={limit}")
}

/// Most audit entries one page returns.
pub const AUDIT_PAGE_MAX: usize = 1000;

/// A domain name: 1-64 characters of lower-case ASCII letters, digits and '-', starting with a
/// letter (it appears in paths and in the audit log).
pub fn domain_name_is_valid(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert_eq!(
            verification("jabar-bansos", "3201012501900001"),
            "/v1/domains/jabar-bansos/subjects/3201012501900001/verifications"
        );
        assert!(domain_name_is_valid("jabar-bansos-2026"));
        for bad in ["", "Jabar", "1abc", "a/b", "a b", &"a".repeat(65)] {
            assert!(!domain_name_is_valid(bad), "{bad}");
        }
    }
}
