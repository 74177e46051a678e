//! Routes of protocol version 1 and the role allowed on each. Ciphertexts and keys travel as
//! the raw blobs of `tabir-crypto` (`application/octet-stream`); metadata and errors as JSON.
//! The body limit of each blob route is the blob's own size limit, applied by the server.

pub const API_PREFIX: &str = "/v1";
pub const CONTENT_TYPE_BLOB: &str = "application/octet-stream";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Who may call a route.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
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

/// Body limit of the JSON routes (bytes). A device registration carries a share delta
/// (2.5 KiB, 5 KiB as hex).
pub const LIMIT_JSON: u64 = 16 * 1024;

/// Response header of a verification or identification: the sequence number of the audit
/// entry that escrows its result, which the device's decision report refers to.
pub const HEADER_AUDIT_SEQ: &str = "tabir-audit-seq";

/// `POST`: the one-time custodian bootstrap (bearer token, not a signature).
pub const BOOTSTRAP: &str = "/v1/bootstrap";
/// `GET`: the server's audit-signing public key and version.
pub const SERVER_INFO: &str = "/v1/server";
/// `GET`: all key domains with their fingerprints.
pub const DOMAINS: &str = "/v1/domains";
/// `GET ?after=N&limit=M`: a page of the audit log.
pub const AUDIT: &str = "/v1/audit";
/// `GET`: the log's head, signed by the server (a checkpoint to keep).
pub const AUDIT_CHECKPOINT: &str = "/v1/audit/checkpoint";
/// `GET`, unauthenticated: the protocol as an OpenAPI 3.1 document.
pub const OPENAPI: &str = "/v1/openapi.json";
/// Unauthenticated: 200 when ready.
pub const HEALTH: &str = "/healthz";
/// Unauthenticated: Prometheus text.
pub const METRICS: &str = "/metrics";

/// Route templates with their path parameters, as the server's router and its OpenAPI
/// document both name them (the functions below fill them in).
pub mod templates {
    pub const DOMAIN: &str = "/v1/domains/{domain}";
    pub const DEVICES: &str = "/v1/domains/{domain}/devices";
    pub const DEVICE: &str = "/v1/domains/{domain}/devices/{key_id}";
    pub const ENROLMENT: &str = "/v1/domains/{domain}/subjects/{subject}";
    pub const VERIFICATIONS: &str = "/v1/domains/{domain}/subjects/{subject}/verifications";
    pub const IDENTIFICATIONS: &str = "/v1/domains/{domain}/identifications";
    pub const IDENTIFICATION_JOB: &str = "/v1/domains/{domain}/identifications/{job_id}";
    pub const IDENTIFICATION_RESULT: &str = "/v1/domains/{domain}/identifications/{job_id}/result";
    pub const DECISION: &str = "/v1/domains/{domain}/decisions/{seq}";
    pub const ESCROW_RESHARE: &str = "/v1/domains/{domain}/escrow/reshare";
}

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

/// `POST` a probe blob -> 202 [`crate::messages::IdentificationJob`]: the search runs as a
/// job, in shards.
pub fn identification(domain: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/identifications")
}

/// `GET` a job's [`crate::messages::IdentificationJob`]; `DELETE` cancels it.
pub fn identification_job(domain: &str, job_id: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/identifications/{job_id}")
}

/// `GET` a finished job's encrypted any-match bit (blob, with the caller's share applied).
pub fn identification_result(domain: &str, job_id: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/identifications/{job_id}/result")
}

/// `POST` a [`crate::messages::DeviceRegistration`]; `DELETE .../{device}` revokes.
pub fn devices(domain: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/devices")
}

/// `DELETE` revokes a registered key of the domain.
pub fn device(domain: &str, key_id: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/devices/{key_id}")
}

/// `POST` a [`crate::messages::DecisionReport`]: the decision the device read from the result
/// escrowed with audit entry `seq`.
pub fn decision_report(domain: &str, seq: u64) -> String {
    format!("{API_PREFIX}/domains/{domain}/decisions/{seq}")
}

/// `POST` a [`crate::messages::ReshareRequest`] (auditor): the escrowed results of a range of
/// the log, re-shared to the auditor's share.
pub fn escrow_reshare(domain: &str) -> String {
    format!("{API_PREFIX}/domains/{domain}/escrow/reshare")
}

/// Most escrowed results one re-share answer carries.
pub const RESHARE_PAGE_MAX: usize = 256;

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
