//! JSON metadata messages of protocol version 1.

use crate::routes::Role;
use serde::{Deserialize, Serialize};

/// What the registry says about a key domain (`GET /v1/domains`, and the answer to a
/// registration). The fingerprint is computed by the server from the uploaded keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DomainInfo {
    pub name: String,
    /// Hex SHA-256 key fingerprint (64 characters).
    pub fingerprint: String,
    /// Stable parameter-set name, e.g. `tfhe-1.8/PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`.
    pub params: String,
    pub dim: u32,
    /// The 1:1 policy (verifications) and the integer score it was calibrated to.
    pub threshold_cosine: f32,
    pub threshold_score: i32,
    /// The 1:N policy (identifications): stricter, since a search makes one comparison per
    /// enrolled template. Domains registered before it existed search at the 1:1 threshold.
    pub identify_threshold_cosine: f32,
    pub identify_threshold_score: i32,
    /// RFC 3339 time of registration.
    pub registered_at: String,
}

/// Registering a device or auditor key for a domain (custodian only).
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRegistration {
    /// Human label, e.g. the office and counter.
    pub label: String,
    /// Ed25519 public key, 64 hex characters.
    pub public_key: String,
    pub role: Role,
    /// Hex of the share delta S1_ref - S1_j (a `tabir-crypto` share blob): the server derives
    /// this key's server share from it. Required for devices and auditors. Secret in transit.
    #[serde(default)]
    pub share_delta: Option<String>,
}

impl std::fmt::Debug for DeviceRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRegistration")
            .field("label", &self.label)
            .field("public_key", &self.public_key)
            .field("role", &self.role)
            .field(
                "share_delta",
                &self.share_delta.as_ref().map(|_| "<secret>"),
            )
            .finish()
    }
}

/// Longest share delta accepted, in hex characters (a 2.6 KiB blob).
pub const SHARE_DELTA_HEX_MAX: usize = 8 * 1024;

/// A registered key as the registry shows it (never a secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeviceInfo {
    pub key_id: String,
    pub label: String,
    pub role: Role,
    pub domain: String,
    pub registered_at: String,
    pub revoked_at: Option<String>,
    /// Whether the server holds a decryption share for this key (devices and auditors until
    /// revoked; the share is deleted at revocation).
    #[serde(default)]
    pub holds_share: bool,
}

/// A device's report of the decision it read (`POST .../decisions/{seq}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionReport {
    pub decision: crate::audit::ReportedDecision,
}

/// The answer to a decision report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportReceipt {
    /// Sequence number of the audit entry that records the report.
    pub audit_seq: u64,
}

/// An auditor's request for escrowed results (`POST .../escrow/reshare`), both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReshareRequest {
    pub from: u64,
    pub to: u64,
}

/// One escrowed result, re-shared to the asking auditor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResharedResult {
    /// Sequence number of the verification's or identification's audit entry.
    pub seq: u64,
    /// Key id of the device that asked for it.
    pub actor: String,
    pub action: crate::audit::Action,
    /// Hex of the encrypted bit (a `tabir-crypto` blob) that only the auditor's share opens.
    pub bit: String,
}

/// The answer to a re-share request: at most [`crate::routes::RESHARE_PAGE_MAX`] results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResharePage {
    /// The audit entry that records this request.
    pub audit_seq: u64,
    pub results: Vec<ResharedResult>,
    /// Ask again from here for the rest of the range; None when the range is done.
    pub next_from: Option<u64>,
}

/// Where an identification job stands (`POST .../identifications`, `GET .../{job_id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentificationJob {
    /// Random id (32 hex digits); only the device that submitted the job can read it.
    pub job_id: String,
    pub state: JobStatus,
    /// Templates searched: the gallery when the job was submitted.
    pub gallery_size: u64,
    pub shards_total: u32,
    pub shards_done: u32,
    /// When failed: the error code (e.g. `shard_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When done: the audit entry escrowing the result (fetch it from `.../result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<u64>,
}

/// The states of an identification job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl IdentificationJob {
    /// True once nothing more will happen to the job.
    pub fn ended(&self) -> bool {
        self.state != JobStatus::Running
    }
}

/// The answer to an enrolment (`PUT .../subjects/{subject}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnrolmentReceipt {
    /// True when an earlier template of the subject was replaced.
    pub replaced: bool,
    /// Sequence number of the audit entry that records it.
    pub audit_seq: u64,
}

/// The answer to a deletion (`DELETE .../subjects/{subject}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeletionReceipt {
    /// Sequence number of the audit entry that records it.
    pub audit_seq: u64,
}

/// A page of the audit log (`GET /v1/audit`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditPage {
    /// Whole entries, or (for an auditor, entries of other domains) redacted ones.
    pub entries: Vec<crate::audit::LogEntry>,
    /// Pass as `after` for the next page; None at the end of the log.
    pub next_after: Option<u64>,
}

/// What the server says about itself (`GET /v1/server`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerInfo {
    /// Hex Ed25519 public key that signs the audit log.
    pub audit_public_key: String,
    pub version: String,
    pub protocol: u32,
}

/// The one-time custodian bootstrap (`POST /v1/bootstrap`, bearer token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustodianBootstrap {
    pub label: String,
    /// Ed25519 public key, 64 hex characters.
    pub public_key: String,
}

impl DeviceRegistration {
    /// Checks that the public key is 64 hex characters, the label is short and printable, and
    /// that devices and auditors come with a share delta of plausible size.
    pub fn validate(&self) -> Result<(), &'static str> {
        match (&self.role, &self.share_delta) {
            (Role::Custodian, Some(_)) => return Err("a custodian key takes no share delta"),
            (Role::Device | Role::Auditor, None) => {
                return Err("devices and auditors need a share_delta")
            }
            (_, Some(delta))
                if delta.len() > SHARE_DELTA_HEX_MAX
                    || !delta.len().is_multiple_of(2)
                    || !delta.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                return Err("share_delta must be hex of at most 8 KiB")
            }
            _ => {}
        }
        if self.public_key.len() != 64 || !self.public_key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("public_key must be 64 hex characters (an Ed25519 public key)");
        }
        if self.label.is_empty()
            || self.label.len() > 128
            || self.label.chars().any(char::is_control)
        {
            return Err("label must be 1-128 printable characters");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_validated_and_unknown_fields_refused() {
        let ok = DeviceRegistration {
            label: "Kantor Desa Sukamaju, loket 1".into(),
            public_key: "ab".repeat(32),
            role: Role::Device,
            share_delta: Some("00ff".into()),
        };
        assert!(ok.validate().is_ok());
        assert!(DeviceRegistration {
            public_key: "xyz".into(),
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(DeviceRegistration {
            label: "a\nb".into(),
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(DeviceRegistration {
            share_delta: None,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(DeviceRegistration {
            share_delta: Some("xyz".into()),
            ..ok.clone()
        }
        .validate()
        .is_err());
        let shown = format!("{ok:?}");
        assert!(!shown.contains("00ff"), "{shown}");
        let json = r#"{"label":"x","public_key":"00","role":"device","admin":true}"#;
        assert!(serde_json::from_str::<DeviceRegistration>(json).is_err());
        let role: Role = serde_json::from_str("\"custodian\"").unwrap();
        assert_eq!(role, Role::Custodian);
    }
}
