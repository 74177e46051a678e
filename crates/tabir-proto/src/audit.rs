//! The audit log's entries and how anyone holding the server's public key checks them.
//!
//! Each entry records who did what, when, in which key domain, under which key fingerprint,
//! to which subject, and the outcome class: never a ciphertext, image, embedding, score or
//! secret (the types below have no field that could hold one). Entries are hash-chained: an
//! entry's hash covers its content and the previous entry's hash, and the server signs each
//! hash with its Ed25519 key. Removing, reordering or editing an entry breaks the chain at that
//! entry; [`verify_chain`] names the first bad one.

use crate::hex;
use crate::routes::Role;
use crate::subject::SubjectId;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// The first custodian key, registered with the server's one-time bootstrap token or flag.
    BootstrapCustodian,
    RegisterDomain,
    RegisterDevice,
    RevokeDevice,
    Enrol,
    ReplaceEnrolment,
    DeleteEnrolment,
    Verify,
    Identify,
    ReadAudit,
    /// A device reported the decision it read from an escrowed result.
    ReportDecision,
    /// An auditor asked for a range of escrowed results, re-shared to its own share.
    ReshareEscrow,
}

/// A decision as a device reports it: what it read, not what the server knows (it knows
/// nothing of the bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedDecision {
    Match,
    NoMatch,
}

/// A range of sequence numbers, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    pub from: u64,
    pub to: u64,
}

/// How it ended, as a class: never the match result (the server does not know it) or a score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "class", content = "code")]
pub enum Outcome {
    /// Done (for verify and identify: an encrypted bit was returned).
    Done,
    /// Refused with this protocol error code (e.g. `wrong_key_domain`).
    Refused(String),
    /// The server failed.
    Failed,
}

/// The content of an entry, before the server chains and signs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// RFC 3339 UTC time.
    pub time: String,
    /// Key id of the caller (hex SHA-256 of its public key), or "server" for its own events.
    pub actor: String,
    pub role: Option<Role>,
    pub domain: Option<String>,
    /// Hex key fingerprint of the domain's evaluation keys, when the action involves them.
    pub key_fingerprint: Option<String>,
    pub action: Action,
    pub subject: Option<SubjectId>,
    pub outcome: Outcome,
    /// The entries this one is about: the verification a report answers, or the range an
    /// auditor asked to re-share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refers_to: Option<SeqRange>,
    /// The decision a device reported ([`Action::ReportDecision`] only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<ReportedDecision>,
}

/// One entry of the log as stored and exported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1 for the first entry, then consecutive.
    pub seq: u64,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over this entry's sequence number, content and `prev_hash`.
    pub hash: String,
    /// Hex Ed25519 signature of the hash bytes by the server's key.
    pub signature: String,
}

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN_SEPARATOR: &[u8] = b"tabir-audit-entry-v1\0";

/// Hash of an entry's content: the serialization of (seq, event, prev_hash) is canonical
/// because serde_json writes struct fields in declaration order.
fn entry_hash(seq: u64, event: &AuditEvent, prev_hash: &str) -> [u8; 32] {
    #[derive(Serialize)]
    struct Hashed<'a> {
        seq: u64,
        event: &'a AuditEvent,
        prev_hash: &'a str,
    }
    let content = serde_json::to_vec(&Hashed {
        seq,
        event,
        prev_hash,
    })
    .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN_SEPARATOR);
    hasher.update(&content);
    hasher.finalize().into()
}

/// Chain `event` after `previous` (None for the first entry) and sign it.
pub fn seal(event: AuditEvent, previous: Option<&AuditEntry>, key: &SigningKey) -> AuditEntry {
    let (seq, prev_hash) = match previous {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let hash = entry_hash(seq, &event, &prev_hash);
    AuditEntry {
        seq,
        event,
        prev_hash,
        hash: hex::encode(&hash),
        signature: hex::encode(&key.sign(&hash).to_bytes()),
    }
}

/// Why a log does not verify, naming the first bad entry.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("entry {seq}: expected sequence number {expected}")]
    Sequence { seq: u64, expected: u64 },
    #[error("entry {seq}: does not link to the previous entry")]
    BrokenLink { seq: u64 },
    #[error("entry {seq}: its content does not match its hash")]
    Tampered { seq: u64 },
    #[error("entry {seq}: the signature is not the server's")]
    BadSignature { seq: u64 },
}

/// Check a run of consecutive entries. `previous` is the entry before the first one given
/// (None when the run starts at the beginning of the log).
pub fn verify_chain(
    entries: &[AuditEntry],
    previous: Option<&AuditEntry>,
    server_key: &VerifyingKey,
) -> Result<(), ChainError> {
    let first_seq = previous.map_or(1, |p| p.seq + 1);
    let mut expected_prev = previous.map_or(GENESIS_HASH.to_owned(), |p| p.hash.clone());
    for (expected_seq, entry) in (first_seq..).zip(entries) {
        let seq = entry.seq;
        if seq != expected_seq {
            return Err(ChainError::Sequence {
                seq,
                expected: expected_seq,
            });
        }
        if entry.prev_hash != expected_prev {
            return Err(ChainError::BrokenLink { seq });
        }
        let hash = entry_hash(seq, &entry.event, &entry.prev_hash);
        if hex::encode(&hash) != entry.hash {
            return Err(ChainError::Tampered { seq });
        }
        let signature = hex::decode::<64>(&entry.signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or(ChainError::BadSignature { seq })?;
        server_key
            .verify(&hash, &signature)
            .map_err(|_| ChainError::BadSignature { seq })?;
        expected_prev = entry.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    fn event(action: Action, subject: Option<&str>) -> AuditEvent {
        AuditEvent {
            time: "2026-11-28T01:00:00Z".into(),
            actor: "ab".repeat(32),
            role: Some(Role::Device),
            domain: Some("jabar-bansos".into()),
            key_fingerprint: Some("cd".repeat(32)),
            action,
            subject: subject.map(|s| SubjectId::parse(s).unwrap()),
            outcome: Outcome::Done,
            refers_to: None,
            reported: None,
        }
    }

    fn log(n: usize) -> Vec<AuditEntry> {
        let server = key(7);
        let mut entries: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let action = if i % 2 == 0 {
                Action::Enrol
            } else {
                Action::Verify
            };
            let entry = seal(
                event(action, Some("3201012501900001")),
                entries.last(),
                &server,
            );
            entries.push(entry);
        }
        entries
    }

    #[test]
    fn an_untouched_log_verifies_whole_and_in_pages() {
        let entries = log(6);
        let public = key(7).verifying_key();
        assert_eq!(verify_chain(&entries, None, &public), Ok(()));
        assert_eq!(
            verify_chain(&entries[3..], Some(&entries[2]), &public),
            Ok(())
        );
        // An exported log (JSON) verifies after the round trip.
        let json = serde_json::to_string(&entries).unwrap();
        let back: Vec<AuditEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(verify_chain(&back, None, &public), Ok(()));
    }

    #[test]
    fn every_kind_of_tampering_names_the_first_bad_entry() {
        let public = key(7).verifying_key();
        let entries = log(6);

        let mut edited = entries.clone();
        edited[3].event.outcome = Outcome::Refused("forbidden".into());
        assert_eq!(
            verify_chain(&edited, None, &public),
            Err(ChainError::Tampered { seq: 4 })
        );

        let mut removed = entries.clone();
        removed.remove(2);
        assert_eq!(
            verify_chain(&removed, None, &public),
            Err(ChainError::Sequence {
                seq: 4,
                expected: 3
            })
        );

        let mut reordered = entries.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            verify_chain(&reordered, None, &public),
            Err(ChainError::Sequence { seq: 3, .. })
        ));

        // Rewriting an entry and re-hashing it consistently still fails: the next entry's
        // link, or (for the last entry) the signature, gives it away.
        let mut rehashed = entries.clone();
        rehashed[4].event.action = Action::DeleteEnrolment;
        rehashed[4].hash = hex::encode(&entry_hash(5, &rehashed[4].event, &rehashed[4].prev_hash));
        assert_eq!(
            verify_chain(&rehashed, None, &public),
            Err(ChainError::BadSignature { seq: 5 })
        );

        // A whole log re-signed by another key is not the server's.
        assert_eq!(
            verify_chain(&entries, None, &key(8).verifying_key()),
            Err(ChainError::BadSignature { seq: 1 })
        );
    }
}
