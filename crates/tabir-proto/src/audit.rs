//! The audit log's entries and how anyone holding the server's public key checks them.
//!
//! Each entry records who did what, when, in which key domain, under which key fingerprint,
//! to which subject (a keyed tag, never the NIK), and the outcome class: never a ciphertext,
//! image, embedding, score or secret (the types below have no field that could hold one).
//!
//! Entries are hash-chained: an entry's hash covers its sequence number, the digest of its
//! content and the previous entry's hash, and the server signs each hash with its Ed25519 key.
//! Removing, reordering or editing an entry breaks the chain at that entry; [`verify_chain`]
//! names the first bad one. Because the hash covers the content's digest, an entry can be shown
//! [redacted](RedactedEntry) (its digest instead of its content: an auditor of one domain sees
//! other domains' entries that way) and the chain still verifies. Deleting the newest entries
//! leaves a valid but shorter chain: signed [`Checkpoint`]s, kept by auditors, catch that.

use crate::hex;
use crate::routes::Role;
use crate::subject::SubjectTag;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// An identification's result, escrowed when its job finished (or its failure).
    Identify,
    /// A device submitted an identification job.
    SubmitIdentification,
    /// A device cancelled its identification job.
    CancelIdentification,
    ReadAudit,
    /// A device reported the decision it read from an escrowed result.
    ReportDecision,
    /// An auditor asked for a range of escrowed results, re-shared to its own share.
    ReshareEscrow,
}

/// A decision as a device reports it: what it read, not what the server knows (it knows
/// nothing of the bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportedDecision {
    Match,
    NoMatch,
}

/// A range of sequence numbers, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeqRange {
    pub from: u64,
    pub to: u64,
}

/// How it ended, as a class: never the match result (the server does not know it) or a score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The subject's keyed tag (not the NIK).
    pub subject: Option<SubjectTag>,
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// 1 for the first entry, then consecutive.
    pub seq: u64,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over this entry's sequence number, content digest and `prev_hash`.
    pub hash: String,
    /// Hex Ed25519 signature of the hash bytes by the server's key.
    pub signature: String,
}

/// An entry shown without its content: the digest of the content takes its place, so the
/// chain still verifies. Auditors of one key domain see other domains' entries so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactedEntry {
    pub seq: u64,
    /// Hex SHA-256 of the entry's content (what [`AuditEntry::content_digest`] gives).
    pub content_digest: String,
    pub prev_hash: String,
    pub hash: String,
    pub signature: String,
}

/// An entry as a page of the log carries it: whole, or redacted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum LogEntry {
    Full(AuditEntry),
    Redacted(RedactedEntry),
}

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const CONTENT_SEPARATOR: &[u8] = b"tabir-audit-content-v2\0";
const ENTRY_SEPARATOR: &[u8] = b"tabir-audit-entry-v2\0";

/// Digest of an entry's content: the serialization is canonical because serde_json writes
/// struct fields in declaration order (and skips the optional ones that are absent).
fn content_digest(event: &AuditEvent) -> [u8; 32] {
    let content = serde_json::to_vec(event).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(CONTENT_SEPARATOR);
    hasher.update(&content);
    hasher.finalize().into()
}

fn entry_hash(seq: u64, digest: &[u8; 32], prev_hash: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(ENTRY_SEPARATOR);
    hasher.update(seq.to_be_bytes());
    hasher.update(digest);
    hasher.update(prev_hash.as_bytes());
    hasher.finalize().into()
}

impl AuditEntry {
    /// Hex digest of the content, as a redacted copy shows it.
    pub fn content_digest(&self) -> String {
        hex::encode(&content_digest(&self.event))
    }

    /// This entry without its content.
    pub fn redacted(&self) -> RedactedEntry {
        RedactedEntry {
            seq: self.seq,
            content_digest: self.content_digest(),
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
            signature: self.signature.clone(),
        }
    }
}

impl LogEntry {
    pub fn seq(&self) -> u64 {
        match self {
            LogEntry::Full(e) => e.seq,
            LogEntry::Redacted(e) => e.seq,
        }
    }

    pub fn hash(&self) -> &str {
        match self {
            LogEntry::Full(e) => &e.hash,
            LogEntry::Redacted(e) => &e.hash,
        }
    }

    /// The whole entry, unless it is redacted.
    pub fn full(&self) -> Option<&AuditEntry> {
        match self {
            LogEntry::Full(e) => Some(e),
            LogEntry::Redacted(_) => None,
        }
    }

    fn link(&self) -> Link<'_> {
        match self {
            LogEntry::Full(e) => e.link(),
            LogEntry::Redacted(e) => Link {
                seq: e.seq,
                digest: hex::decode::<32>(&e.content_digest),
                prev_hash: &e.prev_hash,
                hash: &e.hash,
                signature: &e.signature,
            },
        }
    }
}

impl From<AuditEntry> for LogEntry {
    fn from(entry: AuditEntry) -> Self {
        LogEntry::Full(entry)
    }
}

/// What the chain check needs of an entry, whole or redacted.
struct Link<'a> {
    seq: u64,
    /// None when a redacted entry's digest is not 64 hex characters.
    digest: Option<[u8; 32]>,
    prev_hash: &'a str,
    hash: &'a str,
    signature: &'a str,
}

impl AuditEntry {
    fn link(&self) -> Link<'_> {
        Link {
            seq: self.seq,
            digest: Some(content_digest(&self.event)),
            prev_hash: &self.prev_hash,
            hash: &self.hash,
            signature: &self.signature,
        }
    }
}

/// Chain `event` after `previous` (None for the first entry) and sign it.
pub fn seal(event: AuditEvent, previous: Option<&AuditEntry>, key: &SigningKey) -> AuditEntry {
    let (seq, prev_hash) = match previous {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let hash = entry_hash(seq, &content_digest(&event), &prev_hash);
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

/// Check a run of consecutive entries, whole or redacted. `previous` is the entry before the
/// first one given (None when the run starts at the beginning of the log).
pub fn verify_log(
    entries: &[LogEntry],
    previous: Option<&LogEntry>,
    server_key: &VerifyingKey,
) -> Result<(), ChainError> {
    verify_links(
        entries.iter().map(LogEntry::link),
        previous.map(|p| (p.seq(), p.hash().to_owned())),
        server_key,
    )
}

/// [`verify_log`] for whole entries.
pub fn verify_chain(
    entries: &[AuditEntry],
    previous: Option<&AuditEntry>,
    server_key: &VerifyingKey,
) -> Result<(), ChainError> {
    verify_links(
        entries.iter().map(AuditEntry::link),
        previous.map(|p| (p.seq, p.hash.clone())),
        server_key,
    )
}

/// Check entries starting right after a known point (`(seq, hash)` of the entry before).
pub fn verify_links_after(
    entries: &[LogEntry],
    after: Option<(u64, String)>,
    server_key: &VerifyingKey,
) -> Result<(), ChainError> {
    verify_links(entries.iter().map(LogEntry::link), after, server_key)
}

fn verify_links<'a>(
    links: impl Iterator<Item = Link<'a>>,
    previous: Option<(u64, String)>,
    server_key: &VerifyingKey,
) -> Result<(), ChainError> {
    // Sequence numbers come from the input: checked arithmetic, so a number at the end of
    // the range is refused instead of overflowing (found by fuzzing).
    let mut expected_seq = previous
        .as_ref()
        .map_or(Some(1), |(seq, _)| seq.checked_add(1));
    let mut expected_prev = previous.map_or(GENESIS_HASH.to_owned(), |(_, hash)| hash);
    for link in links {
        let seq = link.seq;
        let expected = expected_seq.ok_or(ChainError::Sequence {
            seq,
            expected: u64::MAX,
        })?;
        if seq != expected {
            return Err(ChainError::Sequence { seq, expected });
        }
        expected_seq = expected.checked_add(1);
        if link.prev_hash != expected_prev {
            return Err(ChainError::BrokenLink { seq });
        }
        let digest = link.digest.ok_or(ChainError::Tampered { seq })?;
        let hash = entry_hash(seq, &digest, link.prev_hash);
        if hex::encode(&hash) != link.hash {
            return Err(ChainError::Tampered { seq });
        }
        let signature = hex::decode::<64>(link.signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or(ChainError::BadSignature { seq })?;
        server_key
            .verify(&hash, &signature)
            .map_err(|_| ChainError::BadSignature { seq })?;
        expected_prev = link.hash.to_owned();
    }
    Ok(())
}

/// The head of the log at a moment, signed by the server. An auditor keeps it; a later log
/// must extend it: an entry with the same number and hash. A log that is shorter was
/// truncated; one whose entry has another hash was rewritten (a fork).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The newest entry's sequence number (0 for an empty log).
    pub seq: u64,
    /// Its hash (the genesis hash for an empty log).
    pub hash: String,
    /// RFC 3339 UTC time the server signed it.
    pub time: String,
    /// Hex Ed25519 signature by the server's key.
    pub signature: String,
}

const CHECKPOINT_SEPARATOR: &str = "tabir-audit-checkpoint-v1";

fn checkpoint_message(seq: u64, hash: &str, time: &str) -> Vec<u8> {
    format!("{CHECKPOINT_SEPARATOR}\n{seq}\n{hash}\n{time}").into_bytes()
}

impl Checkpoint {
    pub fn sign(seq: u64, hash: String, time: String, key: &SigningKey) -> Self {
        let signature = hex::encode(&key.sign(&checkpoint_message(seq, &hash, &time)).to_bytes());
        Self {
            seq,
            hash,
            time,
            signature,
        }
    }

    /// Whether the server's key signed it.
    pub fn is_signed_by(&self, server_key: &VerifyingKey) -> bool {
        hex::decode::<64>(&self.signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .is_some_and(|signature| {
                server_key
                    .verify_strict(
                        &checkpoint_message(self.seq, &self.hash, &self.time),
                        &signature,
                    )
                    .is_ok()
            })
    }
}

/// Why a log does not extend a checkpoint.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtendError {
    #[error("the checkpoint is not signed by the server's key")]
    NotSigned,
    #[error(
        "the log ends at entry {log_end}, before the checkpoint's entry {checkpoint}: entries were removed (truncated)"
    )]
    Truncated { log_end: u64, checkpoint: u64 },
    #[error(
        "entry {seq} has another hash than the checkpoint says: the log was rewritten (a fork)"
    )]
    Forked { seq: u64 },
    #[error("the log starts after the checkpoint's entry {checkpoint}; export it from there")]
    Missing { checkpoint: u64 },
}

/// Check that a run of entries (verified separately) contains the checkpoint's entry with the
/// checkpoint's hash. `previous` is the entry before the run, when the run does not start at 1.
pub fn check_extends(
    entries: &[LogEntry],
    previous: Option<(u64, &str)>,
    checkpoint: &Checkpoint,
    server_key: &VerifyingKey,
) -> Result<(), ExtendError> {
    if !checkpoint.is_signed_by(server_key) {
        return Err(ExtendError::NotSigned);
    }
    if checkpoint.seq == 0 {
        return Ok(());
    }
    if let Some((seq, hash)) = previous {
        if seq == checkpoint.seq {
            return if hash == checkpoint.hash {
                Ok(())
            } else {
                Err(ExtendError::Forked { seq })
            };
        }
        if seq > checkpoint.seq {
            return Err(ExtendError::Missing {
                checkpoint: checkpoint.seq,
            });
        }
    }
    match entries.iter().find(|e| e.seq() == checkpoint.seq) {
        Some(entry) if entry.hash() == checkpoint.hash => Ok(()),
        Some(_) => Err(ExtendError::Forked {
            seq: checkpoint.seq,
        }),
        None => Err(ExtendError::Truncated {
            log_end: entries
                .last()
                .map_or_else(|| previous.map_or(0, |(seq, _)| seq), LogEntry::seq),
            checkpoint: checkpoint.seq,
        }),
    }
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
            subject: subject.map(|s| SubjectTag::parse(s).unwrap()),
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
                event(action, Some("ab".repeat(32).as_str())),
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
        rehashed[4].hash = hex::encode(&entry_hash(
            5,
            &content_digest(&rehashed[4].event),
            &rehashed[4].prev_hash,
        ));
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

    #[test]
    fn redacted_entries_keep_the_chain_and_their_content_hidden() {
        let entries = log(5);
        let public = key(7).verifying_key();
        let mixed: Vec<LogEntry> = entries
            .iter()
            .map(|e| {
                if e.seq % 2 == 0 {
                    LogEntry::Redacted(e.redacted())
                } else {
                    LogEntry::Full(e.clone())
                }
            })
            .collect();
        assert_eq!(verify_log(&mixed, None, &public), Ok(()));
        let json = serde_json::to_string(&mixed).unwrap();
        let back: Vec<LogEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, mixed);
        assert!(matches!(back[1], LogEntry::Redacted(_)));
        assert!(!json.contains("\"actor\":\"x") && json.matches("\"action\"").count() == 3);
        // A redacted entry with another digest is caught.
        let mut forged = mixed.clone();
        if let LogEntry::Redacted(r) = &mut forged[1] {
            r.content_digest = "00".repeat(32);
        }
        assert_eq!(
            verify_log(&forged, None, &public),
            Err(ChainError::Tampered { seq: 2 })
        );
    }

    #[test]
    fn checkpoints_catch_truncation_and_forks() {
        let server = key(7);
        let public = server.verifying_key();
        let entries: Vec<LogEntry> = log(6).into_iter().map(LogEntry::from).collect();
        let at_5 = Checkpoint::sign(5, entries[4].hash().to_owned(), "t".into(), &server);
        assert!(at_5.is_signed_by(&public));
        assert_eq!(check_extends(&entries, None, &at_5, &public), Ok(()));
        // Drop the last two entries: the chain still verifies, the checkpoint does not.
        let truncated = &entries[..4];
        assert_eq!(verify_log(truncated, None, &public), Ok(()));
        assert_eq!(
            check_extends(truncated, None, &at_5, &public),
            Err(ExtendError::Truncated {
                log_end: 4,
                checkpoint: 5
            })
        );
        // Another history from entry 5 on (signed by the same server): a fork.
        let mut other = log(4);
        let mut forked_event = other[3].event.clone();
        forked_event.action = Action::DeleteEnrolment;
        let fifth = seal(forked_event, other.last(), &server);
        other.push(fifth);
        let other: Vec<LogEntry> = other.into_iter().map(LogEntry::from).collect();
        assert_eq!(verify_log(&other, None, &public), Ok(()));
        assert_eq!(
            check_extends(&other, None, &at_5, &public),
            Err(ExtendError::Forked { seq: 5 })
        );
        // A checkpoint someone else signed is refused.
        let fake = Checkpoint::sign(5, entries[4].hash().to_owned(), "t".into(), &key(8));
        assert_eq!(
            check_extends(&entries, None, &fake, &public),
            Err(ExtendError::NotSigned)
        );
        // Verifying from a checkpoint: the run after it links to the checkpoint's hash.
        let rest = &entries[5..];
        assert_eq!(
            verify_links_after(rest, Some((at_5.seq, at_5.hash.clone())), &public),
            Ok(())
        );
    }
}
