//! The auditors' escrow check: every verification and identification result is escrowed by
//! the server with its audit entry, and the device reports the decision it read. An auditor
//! asks the server to re-share a range of escrowed results to the auditor's own share, opens
//! them, and compares with the reports found in the (chain-verified) audit log: a mismatch is
//! a device that reported something else than it read; a missing report is visible too.

use crate::admin::AdminClient;
use crate::error::{ClientError, Result};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use std::collections::HashMap;
use tabir_crypto::ciphertexts::EncryptedBit;
use tabir_crypto::{Decision, DomainConfig, KeyFingerprint};
use tabir_device_crypto::DecryptionShare;
use tabir_proto::audit::{verify_log, Action, AuditEntry, Outcome, ReportedDecision};

/// One escrowed result that did not check out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The verification's or identification's audit entry.
    pub seq: u64,
    /// The device's key id.
    pub device: String,
    pub action: Action,
    /// What the escrowed result says (opened with the auditor's share).
    pub escrowed: Decision,
    /// What the device reported, if it did.
    pub reported: Option<Decision>,
}

/// The outcome of a check over a range of the audit log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DecisionCheck {
    pub from: u64,
    pub to: u64,
    /// Escrowed results opened and compared.
    pub checked: usize,
    /// Reported decisions equal to the escrowed result.
    pub matching: usize,
    pub mismatched: Vec<Finding>,
    pub unreported: Vec<Finding>,
    /// Completed verifications and identifications in the log for which the server returned no
    /// escrowed result (the server's own failure to keep its escrow).
    pub missing_escrow: Vec<u64>,
    /// The audit entries that record this check's requests.
    pub request_entries: Vec<u64>,
}

impl DecisionCheck {
    /// True when every result in the range was reported and matches.
    pub fn is_clean(&self) -> bool {
        self.mismatched.is_empty() && self.unreported.is_empty() && self.missing_escrow.is_empty()
    }
}

fn decision(reported: ReportedDecision) -> Decision {
    match reported {
        ReportedDecision::Match => Decision::Match,
        ReportedDecision::NoMatch => Decision::NoMatch,
    }
}

/// What the auditor needs: its client, its share and the domain's parameters.
pub struct Auditor<'a> {
    pub admin: &'a AdminClient,
    pub domain: &'a str,
    pub share: &'a DecryptionShare,
    pub config: &'a DomainConfig,
    pub fingerprint: KeyFingerprint,
    /// The server's audit-signing key: the log must verify under it.
    pub server_key: &'a VerifyingKey,
}

impl Auditor<'_> {
    /// Check the escrowed results of entries `from..=to` (`to` None: to the end of the log).
    /// `progress` is told what is being done.
    pub async fn check_decisions(
        &self,
        from: u64,
        to: Option<u64>,
        mut progress: impl FnMut(&str),
    ) -> Result<DecisionCheck> {
        let from = from.max(1);
        progress("downloading the audit log");
        // From the entry before `from`, so the downloaded run links to a verified predecessor.
        let mut entries = self
            .admin
            .export_audit_after(from.saturating_sub(2), |_| {})
            .await?;
        let previous = if from > 1 && !entries.is_empty() {
            Some(entries.remove(0))
        } else {
            None
        };
        verify_log(&entries, previous.as_ref(), self.server_key)
            .map_err(|e| ClientError::BadAnswer(format!("the audit log does not verify: {e}")))?;
        let to = to.unwrap_or_else(|| entries.last().map_or(from, |e| e.seq()));
        let in_domain = |e: &&AuditEntry| e.event.domain.as_deref() == Some(self.domain);

        // What the log says was answered, and what the devices reported.
        let mut answered: HashMap<u64, &AuditEntry> = HashMap::new();
        let mut reports: HashMap<(u64, &str), Decision> = HashMap::new();
        for entry in entries.iter().filter_map(|e| e.full()).filter(in_domain) {
            let event = &entry.event;
            match (event.action, &event.outcome) {
                (Action::Verify | Action::Identify, Outcome::Done)
                    if (from..=to).contains(&entry.seq) =>
                {
                    answered.insert(entry.seq, entry);
                }
                (Action::ReportDecision, Outcome::Done) => {
                    if let (Some(range), Some(reported)) = (event.refers_to, event.reported) {
                        reports.insert((range.from, event.actor.as_str()), decision(reported));
                    }
                }
                _ => {}
            }
        }

        let mut check = DecisionCheck {
            from,
            to,
            ..DecisionCheck::default()
        };
        let mut next = Some(from);
        while let Some(start) = next.filter(|s| *s <= to) {
            progress(&format!("opening escrowed results from entry {start}"));
            let page = self.admin.reshare(self.domain, start, to).await?;
            check.request_entries.push(page.audit_seq);
            for result in page.results {
                let bytes = tabir_proto::hex::decode_vec(&result.bit)
                    .ok_or_else(|| ClientError::BadAnswer("a re-shared bit is not hex".into()))?;
                let bit = EncryptedBit::from_bytes(&bytes, self.config, self.fingerprint)
                    .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
                let escrowed = self.share.decrypt(&bit)?;
                answered.remove(&result.seq);
                check.checked += 1;
                let reported = reports.get(&(result.seq, result.actor.as_str())).copied();
                let finding = Finding {
                    seq: result.seq,
                    device: result.actor,
                    action: result.action,
                    escrowed,
                    reported,
                };
                match reported {
                    Some(r) if r == escrowed => check.matching += 1,
                    Some(_) => check.mismatched.push(finding),
                    None => check.unreported.push(finding),
                }
            }
            next = page.next_from;
        }
        check.missing_escrow = answered.into_keys().collect();
        check.missing_escrow.sort_unstable();
        Ok(check)
    }
}
