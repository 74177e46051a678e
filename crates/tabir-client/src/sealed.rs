//! Secrets at rest: a key file is sealed with a passphrase (Argon2id stretches it into a
//! 256-bit key; XChaCha20-Poly1305 encrypts and authenticates). The header (format, purpose,
//! KDF cost, salt, nonce) is authenticated too, so no byte of the file can change unnoticed.
//!
//! A short check value derived from the stretched key lets a wrong passphrase be told apart
//! from an altered file. It gives a guesser nothing the ciphertext's tag would not: each guess
//! still costs one Argon2id evaluation.
//!
//! A SHA-256 digest at the end tells an altered or damaged file apart from a wrong passphrase
//! before any key is derived (it is integrity only; authenticity comes from the AEAD).
//!
//! Layout: `TABIRSEAL1` | purpose length (1 byte) | purpose | m_cost, t_cost, p_cost (u32 LE)
//! | salt (16) | check (16) | nonce (24) | ciphertext and tag | SHA-256 of all before (32).

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

const MAGIC: &[u8] = b"TABIRSEAL1";
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const DIGEST_LEN: usize = 32;
/// Argon2id cost: 64 MiB, 3 passes, 1 lane (about half a second here).
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;
/// Refuse to spend more than this on a file's declared KDF cost (a hostile file could ask
/// for gigabytes).
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;
/// Shortest passphrase accepted when sealing.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("{path}: wrong passphrase")]
    WrongPassphrase { path: String },
    #[error("{path}: the sealed file was altered or is damaged; restore it from a backup")]
    Tampered { path: String },
    #[error("{path}: not a Tabir sealed file")]
    NotSealed { path: String },
    #[error("{path}: holds a {found}, not a {expected}")]
    WrongPurpose {
        path: String,
        expected: String,
        found: String,
    },
    #[error("the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// A passphrase, wiped from memory when dropped; never printed.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// From an environment variable, if set and not empty.
    pub fn from_env(variable: &str) -> Option<Self> {
        std::env::var(variable)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Self::new)
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

fn stretch(
    passphrase: &Passphrase,
    salt: &[u8],
    cost: [u32; 3],
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let params = Params::new(cost[0], cost[1], cost[2], Some(32))
        .map_err(|e| SealError::Kdf(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.bytes(), salt, key.as_mut())
        .map_err(|e| SealError::Kdf(e.to_string()))?;
    Ok(key)
}

fn check_value(key: &[u8; 32]) -> [u8; CHECK_LEN] {
    let digest = Sha256::new()
        .chain_update(b"tabir-seal-check-v1\0")
        .chain_update(key)
        .finalize();
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(&digest[..CHECK_LEN]);
    check
}

/// Seal `secret` for `purpose` (e.g. `domain-secret`), naming `path` in errors.
pub fn seal(secret: &[u8], purpose: &str, passphrase: &Passphrase) -> Result<Vec<u8>, SealError> {
    if passphrase.0.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(SealError::WeakPassphrase);
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cost = [M_COST_KIB, T_COST, P_COST];
    let key = stretch(passphrase, &salt, cost)?;
    let mut header = Vec::with_capacity(128);
    header.extend_from_slice(MAGIC);
    header
        .push(u8::try_from(purpose.len()).map_err(|_| SealError::Kdf("purpose too long".into()))?);
    header.extend_from_slice(purpose.as_bytes());
    for value in cost {
        header.extend_from_slice(&value.to_le_bytes());
    }
    header.extend_from_slice(&salt);
    header.extend_from_slice(&check_value(&key));
    header.extend_from_slice(&nonce);
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &header,
            },
        )
        .map_err(|_| SealError::Kdf("encryption failed".into()))?;
    header.extend_from_slice(&ciphertext);
    let digest = Sha256::digest(&header);
    header.extend_from_slice(&digest);
    Ok(header)
}

/// Open a sealed blob; `path` only names it in errors.
pub fn unseal(
    blob: &[u8],
    purpose: &str,
    passphrase: &Passphrase,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let name = path.display().to_string();
    let not_sealed = || SealError::NotSealed { path: name.clone() };
    let body = blob.strip_prefix(MAGIC).ok_or_else(not_sealed)?;
    if body.len() < DIGEST_LEN {
        return Err(SealError::Tampered { path: name });
    }
    let (blob, digest) = blob.split_at(blob.len() - DIGEST_LEN);
    if Sha256::digest(blob).as_slice() != digest {
        return Err(SealError::Tampered { path: name });
    }
    let rest = &blob[MAGIC.len()..];
    let (&purpose_len, rest) = rest.split_first().ok_or_else(not_sealed)?;
    let purpose_len = usize::from(purpose_len);
    if rest.len() < purpose_len + 12 + SALT_LEN + CHECK_LEN + NONCE_LEN {
        return Err(SealError::Tampered { path: name });
    }
    let (found, rest) = rest.split_at(purpose_len);
    if found != purpose.as_bytes() {
        return Err(SealError::WrongPurpose {
            path: name,
            expected: purpose.to_owned(),
            found: String::from_utf8_lossy(found).into_owned(),
        });
    }
    let (cost_bytes, rest) = rest.split_at(12);
    let mut cost = [0u32; 3];
    for (value, chunk) in cost.iter_mut().zip(cost_bytes.chunks_exact(4)) {
        let mut le = [0u8; 4];
        le.copy_from_slice(chunk);
        *value = u32::from_le_bytes(le);
    }
    if cost[0] > MAX_M_COST_KIB || cost[1] > MAX_T_COST || cost[2] == 0 || cost[2] > 16 {
        return Err(SealError::Tampered { path: name });
    }
    let (salt, rest) = rest.split_at(SALT_LEN);
    let (check, rest) = rest.split_at(CHECK_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let header = &blob[..blob.len() - ciphertext.len()];
    let key = stretch(passphrase, salt, cost)?;
    if check_value(&key) != check {
        return Err(SealError::WrongPassphrase { path: name });
    }
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: header,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Tampered { path: name })
}

fn io_error(path: &Path, error: std::io::Error) -> SealError {
    SealError::Io {
        path: path.display().to_string(),
        detail: error.to_string(),
    }
}

/// Seal and write to `path` with mode 0600 (through a temporary file and a rename, so a crash
/// leaves the old file or the new one, never half of one).
pub fn write_sealed(
    path: &Path,
    secret: &[u8],
    purpose: &str,
    passphrase: &Passphrase,
) -> Result<(), SealError> {
    let mut blob = seal(secret, purpose, passphrase)?;
    let result = write_private(path, &blob).map_err(|e| io_error(path, e));
    blob.zeroize();
    result
}

/// The largest sealed file read (a domain secret key is about 24 KiB).
const MAX_SEALED_BYTES: u64 = 1024 * 1024;

/// Read and open a sealed file.
pub fn read_sealed(
    path: &Path,
    purpose: &str,
    passphrase: &Passphrase,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let size = std::fs::metadata(path)
        .map_err(|e| io_error(path, e))?
        .len();
    if size > MAX_SEALED_BYTES {
        return Err(SealError::NotSealed {
            path: path.display().to_string(),
        });
    }
    let blob = std::fs::read(path).map_err(|e| io_error(path, e))?;
    unseal(&blob, purpose, passphrase, path)
}

/// Write a file only its owner can read, atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary: PathBuf = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename is durable only once the folder is synced (a power cut could lose it).
    #[cfg(unix)]
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn round_trip_wrong_passphrase_tampering_and_purpose() {
        let right = Passphrase::new("correct horse battery".into());
        let path = Path::new("test.sealed");
        let blob = seal(b"the secret", "domain-secret", &right).unwrap();
        assert!(!blob.windows(10).any(|w| w == b"the secret"));
        assert_eq!(
            unseal(&blob, "domain-secret", &right, path)
                .unwrap()
                .as_slice(),
            b"the secret"
        );
        let wrong = Passphrase::new("wrong horse battery".into());
        assert!(matches!(
            unseal(&blob, "domain-secret", &wrong, path),
            Err(SealError::WrongPassphrase { .. })
        ));
        // Flip one bit anywhere after the magic: refused as altered, never opened.
        for position in [11, 20, 40, 60, 80, blob.len() - 40, blob.len() - 1] {
            let mut altered = blob.clone();
            altered[position] ^= 1;
            assert!(
                matches!(
                    unseal(&altered, "domain-secret", &right, path),
                    Err(SealError::Tampered { .. })
                ),
                "byte {position}"
            );
        }
        // An alteration that also fixes the digest is still caught, by the AEAD tag.
        let mut forged = blob[..blob.len() - DIGEST_LEN].to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let digest = Sha256::digest(&forged);
        forged.extend_from_slice(&digest);
        assert!(matches!(
            unseal(&forged, "domain-secret", &right, path),
            Err(SealError::Tampered { .. })
        ));
        assert!(matches!(
            unseal(&blob[..20], "domain-secret", &right, path),
            Err(SealError::Tampered { .. })
        ));
        assert!(matches!(
            unseal(&blob, "device-key", &right, path),
            Err(SealError::WrongPurpose { .. })
        ));
        assert!(matches!(
            unseal(b"plain text", "domain-secret", &right, path),
            Err(SealError::NotSealed { .. })
        ));
        assert!(matches!(
            seal(b"x", "domain-secret", &Passphrase::new("short".into())),
            Err(SealError::WeakPassphrase)
        ));
        assert_eq!(format!("{right:?}"), "Passphrase(<redacted>)");
    }
}
