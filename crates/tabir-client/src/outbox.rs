//! The office device's enrolment queue: enrolments made while the server cannot be reached wait
//! here, on disk, and are sent when it answers again.
//!
//! A queued enrolment is the subject's NIK and the template encrypted with the domain's public
//! key (nothing on the device can decrypt that). The NIK is personal data, so each entry is
//! sealed: ChaCha20-Poly1305 under a queue key, which is itself sealed with the operator's
//! passphrase (Argon2id, `queue.key`), stretched once when the queue is opened rather than once
//! per entry. An entry's file name (its id) is authenticated with it, so entries cannot be
//! swapped. Entries are written through a temporary file and a rename: a crash leaves an entry
//! whole or absent, never half of one. An entry the server refused is kept (renamed
//! `.refused`) with the reason until the operator removes it: nothing is dropped silently.

use crate::error::{ClientError, Result};
use crate::office::{EnrolOutcome, OfficeClient};
use crate::sealed::{read_sealed, write_private, write_sealed, Passphrase};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tabir_proto::SubjectId;
use zeroize::Zeroizing;

const KEY_FILE: &str = "queue.key";
const KEY_PURPOSE: &str = "enrolment-queue-key";
const QUEUED: &str = "enrol";
const REFUSED: &str = "refused";
const ENTRY_MAGIC: &[u8] = b"TABIRQ1";
const NONCE_LEN: usize = 24;
/// An entry is a NIK and one template (about 12 KB); anything far larger is not one.
const MAX_ENTRY_BYTES: u64 = 4 * 1024 * 1024;

/// Where an entry stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum EntryState {
    /// Waiting for the server.
    Queued,
    /// The server refused it (retrying will not help); kept for the operator to see.
    Refused { reason: String },
    /// The file cannot be opened with this queue's key (damaged, or not from this queue);
    /// kept, never sent.
    Damaged,
}

/// One queued enrolment as the operator sees it: no NIK, only its masked form.
#[derive(Clone, Debug, Serialize)]
pub struct QueuedEntry {
    pub id: String,
    /// The NIK masked (`32**********0001`).
    pub subject: String,
    /// Unix seconds.
    pub queued_at: u64,
    #[serde(flatten)]
    pub state: EntryState,
}

/// What one pass over the queue did.
#[derive(Debug, Default, Serialize)]
pub struct DrainReport {
    pub sent: Vec<SentEntry>,
    pub refused: usize,
    /// Entries that cannot be opened (listed as damaged, kept on disk).
    pub damaged: usize,
    /// The server could not be reached: the pass stopped and the rest stay queued.
    pub unreachable: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SentEntry {
    pub id: String,
    pub subject: String,
    pub audit_seq: u64,
    pub replaced: bool,
}

/// The queue in one folder.
pub struct Outbox {
    dir: PathBuf,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path, error: std::io::Error) -> ClientError {
    ClientError::Config(format!("enrolment queue {}: {error}", path.display()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Outbox {
    /// Open the queue in `dir` (created, mode 0700, with a new queue key on first use). A wrong
    /// passphrase fails here, before anything is queued.
    pub fn open(dir: &Path, passphrase: &Passphrase) -> Result<Self> {
        create_private_dir(dir).map_err(|e| io(dir, e))?;
        let key_path = dir.join(KEY_FILE);
        let mut key = Zeroizing::new([0u8; 32]);
        if key_path.exists() {
            let opened = read_sealed(&key_path, KEY_PURPOSE, passphrase)?;
            if opened.len() != key.len() {
                return Err(ClientError::Config(format!(
                    "{} is not a queue key",
                    key_path.display()
                )));
            }
            key.copy_from_slice(&opened);
        } else {
            // Entries without their key would all be unreadable: never make a new key over them.
            let orphans = std::fs::read_dir(dir)
                .map_err(|e| io(dir, e))?
                .filter_map(|e| e.ok())
                .any(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == QUEUED || x == REFUSED)
                });
            if orphans {
                return Err(ClientError::Config(format!(
                    "{} holds queued enrolments but its key file {KEY_FILE} is missing: restore \
                     it from a backup (a new key would leave them unreadable)",
                    dir.display()
                )));
            }
            rand::rngs::OsRng.fill_bytes(key.as_mut());
            write_sealed(&key_path, key.as_ref(), KEY_PURPOSE, passphrase)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            key,
        })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    fn path(&self, id: &str, extension: &str) -> PathBuf {
        self.dir.join(format!("{id}.{extension}"))
    }

    /// Queue an enrolment; returns its id. The entry is on disk (synced) when this returns.
    pub fn push(&self, subject: &SubjectId, template: &[u8]) -> Result<String> {
        let mut random = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut random);
        // Ids sort in the order entries were queued.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let id = format!("{millis:013}-{}", tabir_proto::hex::encode(&random));
        let mut plain = Zeroizing::new(Vec::with_capacity(template.len() + 32));
        plain.extend_from_slice(&now().to_le_bytes());
        // A NIK is 16 digits: its length fits a byte.
        plain.push(u8::try_from(subject.as_str().len()).unwrap_or(u8::MAX));
        plain.extend_from_slice(subject.as_str().as_bytes());
        plain.extend_from_slice(template);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| ClientError::Config("sealing a queued enrolment failed".into()))?;
        let mut file = Vec::with_capacity(ENTRY_MAGIC.len() + NONCE_LEN + sealed.len());
        file.extend_from_slice(ENTRY_MAGIC);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&sealed);
        let path = self.path(&id, QUEUED);
        write_private(&path, &file).map_err(|e| io(&path, e))?;
        Ok(id)
    }

    /// Open entry `id`: its subject, template and queue time.
    fn open_entry(&self, path: &Path, id: &str) -> Result<(SubjectId, Vec<u8>, u64)> {
        let damaged = || ClientError::Config(format!("{} is damaged", path.display()));
        let size = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
        if size > MAX_ENTRY_BYTES {
            return Err(damaged());
        }
        let file = std::fs::read(path).map_err(|e| io(path, e))?;
        let body = file.strip_prefix(ENTRY_MAGIC).ok_or_else(damaged)?;
        if body.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: id.as_bytes(),
                    },
                )
                .map_err(|_| damaged())?,
        );
        let (time, rest) = plain.split_at_checked(8).ok_or_else(damaged)?;
        let queued_at = u64::from_le_bytes(time.try_into().map_err(|_| damaged())?);
        let (&length, rest) = rest.split_first().ok_or_else(damaged)?;
        let (nik, template) = rest
            .split_at_checked(usize::from(length))
            .ok_or_else(damaged)?;
        let nik = std::str::from_utf8(nik).map_err(|_| damaged())?;
        let subject = SubjectId::parse(nik).map_err(|_| damaged())?;
        Ok((subject, template.to_vec(), queued_at))
    }

    /// Every entry, queued and refused, oldest first.
    pub fn list(&self) -> Result<Vec<QueuedEntry>> {
        let mut entries = Vec::new();
        for (id, extension, path) in self.files()? {
            let Ok((subject, _, queued_at)) = self.open_entry(&path, &id) else {
                entries.push(QueuedEntry {
                    id,
                    subject: String::new(),
                    queued_at: 0,
                    state: EntryState::Damaged,
                });
                continue;
            };
            let state = if extension == QUEUED {
                EntryState::Queued
            } else {
                let reason = std::fs::read_to_string(self.path(&id, "reason"))
                    .unwrap_or_else(|_| "refused by the server".into());
                EntryState::Refused { reason }
            };
            entries.push(QueuedEntry {
                id,
                subject: subject.to_string(),
                queued_at,
                state,
            });
        }
        Ok(entries)
    }

    /// How many entries wait for the server.
    pub fn queued(&self) -> Result<usize> {
        Ok(self
            .files()?
            .iter()
            .filter(|(_, extension, _)| extension == QUEUED)
            .count())
    }

    /// (id, extension, path) of every entry file, oldest first.
    fn files(&self) -> Result<Vec<(String, String, PathBuf)>> {
        let mut files = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))? {
            let path = item.map_err(|e| io(&self.dir, e))?.path();
            let (Some(stem), Some(extension)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            if extension == QUEUED || extension == REFUSED {
                files.push((stem.to_owned(), extension.to_owned(), path.clone()));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Remove an entry (sent, or a refused one the operator has dealt with).
    pub fn remove(&self, id: &str) -> Result<()> {
        if !is_entry_id(id) {
            return Err(ClientError::Config("no such queued enrolment".into()));
        }
        let mut removed = false;
        for extension in [QUEUED, REFUSED, "reason"] {
            let path = self.path(id, extension);
            match std::fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
        if removed {
            Ok(())
        } else {
            Err(ClientError::Config("no such queued enrolment".into()))
        }
    }

    /// Put a refused entry back in the queue (the cause was fixed: a device re-registered, a
    /// clock set right).
    pub fn requeue(&self, id: &str) -> Result<()> {
        let from = self.path(id, REFUSED);
        if !is_entry_id(id) || !from.exists() {
            return Err(ClientError::Config("no such refused enrolment".into()));
        }
        std::fs::rename(&from, self.path(id, QUEUED)).map_err(|e| io(&from, e))?;
        let _ = std::fs::remove_file(self.path(id, "reason"));
        Ok(())
    }

    fn mark_refused(&self, id: &str, reason: &str) -> Result<()> {
        let reason_path = self.path(id, "reason");
        write_private(&reason_path, reason.as_bytes()).map_err(|e| io(&reason_path, e))?;
        let from = self.path(id, QUEUED);
        std::fs::rename(&from, self.path(id, REFUSED)).map_err(|e| io(&from, e))
    }

    /// Send every queued entry in order through `client`. Stops at the first failure to reach
    /// the server (the rest stay queued); an entry the server refuses is kept as refused.
    pub async fn drain(&self, client: &OfficeClient) -> Result<DrainReport> {
        let mut report = DrainReport::default();
        for (id, extension, path) in self.files()? {
            if extension != QUEUED {
                continue;
            }
            let Ok((subject, template, _)) = self.open_entry(&path, &id) else {
                report.damaged += 1;
                continue;
            };
            match client.send_template(&subject, template).await {
                Ok(EnrolOutcome {
                    audit_seq,
                    replaced,
                    ..
                }) => {
                    self.remove(&id)?;
                    report.sent.push(SentEntry {
                        id,
                        subject: subject.to_string(),
                        audit_seq,
                        replaced,
                    });
                }
                Err(error) if is_transient(&error) => {
                    report.unreachable = Some(error.to_string());
                    break;
                }
                Err(error) => {
                    self.mark_refused(&id, &error.to_string())?;
                    report.refused += 1;
                }
            }
        }
        Ok(report)
    }
}

/// The server did not answer (down, unreachable, busy through every retry, or a proxy in front
/// of it answering 5xx): worth queueing and trying again later, unlike a refusal.
pub fn is_unreachable(error: &ClientError) -> bool {
    match error {
        ClientError::Network { .. } | ClientError::Overloaded { .. } => true,
        ClientError::Refused { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Not a verdict on the enrolment itself: the server is away, or refused the request for this
/// device's clock (`stale_request`), which the operator can fix. Such an entry stays queued.
pub fn is_transient(error: &ClientError) -> bool {
    is_unreachable(error) || error.refusal_code() == Some(tabir_proto::ErrorCode::StaleRequest)
}

fn is_entry_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b.is_ascii_digit())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn passphrase() -> Passphrase {
        Passphrase::new("queue test passphrase".into())
    }

    #[test]
    fn entries_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let subject = SubjectId::parse("3201014101900001").unwrap();
        let outbox = Outbox::open(dir.path(), &passphrase()).unwrap();
        let first = outbox.push(&subject, b"template one").unwrap();
        let second = outbox.push(&subject, b"template two").unwrap();
        assert_eq!(outbox.queued().unwrap(), 2);
        // Nothing on disk carries the NIK or the template in the clear.
        for item in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(item.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("3201014101900001"));
            assert!(!text.contains("template"));
        }
        drop(outbox);
        let reopened = Outbox::open(dir.path(), &passphrase()).unwrap();
        let listed = reopened.list().unwrap();
        assert_eq!(
            listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            [first.as_str(), second.as_str()]
        );
        assert_eq!(listed[0].subject, "32**********0001");
        assert_eq!(listed[0].state, EntryState::Queued);
        let path = reopened.path(&second, QUEUED);
        let (opened, template, _) = reopened.open_entry(&path, &second).unwrap();
        assert_eq!(opened.as_str(), "3201014101900001");
        assert_eq!(template, b"template two");
        reopened.remove(&first).unwrap();
        assert_eq!(reopened.queued().unwrap(), 1);
        assert!(reopened.remove(&first).is_err());
        assert!(reopened.remove("../queue").is_err());
        // Refused, then put back.
        reopened.mark_refused(&second, "revoked").unwrap();
        assert_eq!(reopened.queued().unwrap(), 0);
        assert!(matches!(
            &reopened.list().unwrap()[0].state,
            EntryState::Refused { reason } if reason == "revoked"
        ));
        reopened.requeue(&second).unwrap();
        assert_eq!(reopened.queued().unwrap(), 1);
        // The key file gone: no new key is made over the entries.
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(Outbox::open(dir.path(), &passphrase()).is_err());
    }

    #[test]
    fn a_wrong_passphrase_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        Outbox::open(dir.path(), &passphrase()).unwrap();
        let wrong = Passphrase::new("another passphrase here".into());
        assert!(Outbox::open(dir.path(), &wrong).is_err());
    }

    #[test]
    fn swapped_or_damaged_entries_are_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), &passphrase()).unwrap();
        let subject = SubjectId::parse("3201014101900001").unwrap();
        let a = outbox.push(&subject, b"a").unwrap();
        let b = outbox.push(&subject, b"b").unwrap();
        // Entry b's bytes under a's name: the id is authenticated.
        std::fs::copy(outbox.path(&b, QUEUED), outbox.path(&a, QUEUED)).unwrap();
        assert!(outbox.open_entry(&outbox.path(&a, QUEUED), &a).is_err());
        let mut bytes = std::fs::read(outbox.path(&b, QUEUED)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(outbox.path(&b, QUEUED), bytes).unwrap();
        assert!(outbox.open_entry(&outbox.path(&b, QUEUED), &b).is_err());
        // Both are listed as damaged, neither is lost.
        let listed = outbox.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|e| e.state == EntryState::Damaged));
    }
}
