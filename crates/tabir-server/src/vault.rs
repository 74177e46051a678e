//! The server's secret shares at rest: each is sealed (XChaCha20-Poly1305) under the server's
//! master key before it reaches the store, bound to its owner (the domain for the reference
//! share, the key id for a device's or auditor's), so a row moved to another owner does not
//! open. The master key lives outside the database: a file given at start or an environment
//! secret. A copy of the database alone holds nothing that decrypts anything.

use crate::error::ApiError;
use crate::StartError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use tabir_proto::ErrorCode;
use zeroize::Zeroizing;

/// Environment variable that may hold the master key itself (64 hex characters).
pub const MASTER_KEY_ENV: &str = "TABIR_MASTER_KEY";

const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;
const DOMAIN_SEPARATOR: &[u8] = b"tabir/server-share/v1\0";

/// What a sealed value is; part of the associated data.
#[derive(Clone, Copy, Debug)]
pub enum Sealed {
    /// A domain's reference share S2_ref; owner: the domain name.
    ReferenceShare,
    /// A device's or auditor's server share S2_j; owner: its key id.
    KeyShare,
}

impl Sealed {
    fn label(self) -> &'static [u8] {
        match self {
            Sealed::ReferenceShare => b"reference-share",
            Sealed::KeyShare => b"key-share",
        }
    }
}

/// The master key: 32 random bytes, wiped on drop, never printed.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

impl MasterKey {
    /// A fresh random key (tests; `load_or_create` for a server).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// From 64 hex characters (the environment secret).
    pub fn from_hex(text: &str) -> Option<Self> {
        tabir_proto::hex::decode::<32>(text.trim()).map(|bytes| Self(Zeroizing::new(bytes)))
    }

    /// Read the key file at `path`, or create it (0600, atomically) when it does not exist.
    /// Refuses a file inside `data_dir`: a backup of that folder would then hold both the
    /// sealed shares and the key that opens them.
    pub fn load_or_create(path: &Path, data_dir: Option<&Path>) -> Result<Self, StartError> {
        let fail = |reason: String| StartError::MasterKey {
            path: path.to_owned(),
            reason,
        };
        if let Some(data_dir) = data_dir {
            if inside(path, data_dir) {
                return Err(fail(format!(
                    "the master key must not live in the data folder {} (a backup of the folder \
                     would hold both the sealed shares and their key): put it elsewhere, or give \
                     it in {MASTER_KEY_ENV}",
                    data_dir.display()
                )));
            }
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Self::from_hex(&text)
                    .ok_or_else(|| fail("not a master key (64 hex characters)".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let text = Zeroizing::new(tabir_proto::hex::encode(key.0.as_ref()));
                crate::bootstrap::write_secret_file(path, text.as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(key)
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The keyed tag of a subject in a domain: HMAC-SHA256 under a key per domain derived from
    /// the master key (and so never written anywhere). Replicas with the same master key give
    /// the same tags.
    pub fn subject_tag(&self, domain: &str, nik: &str) -> tabir_proto::SubjectTag {
        let domain_key = Zeroizing::new(hmac_sha256(
            self.0.as_ref(),
            &[b"tabir/subject-key/v1\0", domain.as_bytes()],
        ));
        tabir_proto::SubjectTag::from_digest(&hmac_sha256(domain_key.as_ref(), &[nik.as_bytes()]))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC accepts every key length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `path` would sit inside `dir` (compared after resolving what exists).
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| -> PathBuf {
        let absolute = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // The file may not exist yet: resolve its folder.
        match (absolute.parent(), absolute.file_name()) {
            (Some(parent), Some(name)) => std::fs::canonicalize(parent)
                .map(|p| p.join(name))
                .unwrap_or(absolute),
            _ => absolute,
        }
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| resolve(dir));
    resolve(path).starts_with(dir)
}

fn associated_data(what: Sealed, owner: &str) -> Vec<u8> {
    let mut aad = DOMAIN_SEPARATOR.to_vec();
    aad.extend_from_slice(what.label());
    aad.push(0);
    aad.extend_from_slice(owner.as_bytes());
    aad
}

impl MasterKey {
    /// format (1 byte) || nonce (24) || ciphertext with tag.
    pub fn seal(&self, what: Sealed, owner: &str, plaintext: &[u8]) -> Result<Vec<u8>, ApiError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(what, owner);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| ApiError::new(ErrorCode::Internal))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Open a sealed value of `owner`; None when it was sealed under another key, for another
    /// owner or purpose, or altered.
    pub fn open(&self, what: Sealed, owner: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT {
            return None;
        }
        let aad = associated_data(what, owner);
        self.cipher()
            .decrypt(
                XNonce::from_slice(&sealed[1..1 + NONCE_LEN]),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_owner_purpose_and_key() {
        let key = MasterKey::generate();
        let sealed = key
            .seal(Sealed::KeyShare, "device-a", b"share bytes")
            .unwrap();
        assert_eq!(
            key.open(Sealed::KeyShare, "device-a", &sealed)
                .unwrap()
                .as_slice(),
            b"share bytes"
        );
        assert!(key.open(Sealed::KeyShare, "device-b", &sealed).is_none());
        assert!(key
            .open(Sealed::ReferenceShare, "device-a", &sealed)
            .is_none());
        assert!(MasterKey::generate()
            .open(Sealed::KeyShare, "device-a", &sealed)
            .is_none());
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(key.open(Sealed::KeyShare, "device-a", &altered).is_none());
        assert!(key
            .open(Sealed::KeyShare, "device-a", &sealed[..10])
            .is_none());
        assert!(!format!("{key:?}").contains(&tabir_proto::hex::encode(key.0.as_ref())));
    }

    #[test]
    fn the_key_file_is_created_once_and_never_inside_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let first = MasterKey::load_or_create(&path, None).unwrap();
        let again = MasterKey::load_or_create(&path, None).unwrap();
        assert_eq!(first.0.as_ref(), again.0.as_ref());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let err = MasterKey::load_or_create(&data.join("master.key"), Some(&data)).unwrap_err();
        assert!(err.to_string().contains("data folder"), "{err}");
        std::fs::write(dir.path().join("bad.key"), "nope").unwrap();
        assert!(MasterKey::load_or_create(&dir.path().join("bad.key"), None).is_err());
    }
}
