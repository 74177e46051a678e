//! Key custody on the custodian's machine: a folder per key domain holding the custodian's
//! reference share, the public keys and a manifest (fingerprint, policy, registration, devices
//! and auditors with the times their shares were issued and revoked), plus the custodian's own
//! sealed signing key; and the bundles handed to office devices and auditors.
//!
//! No file here, nor any set of files one party holds, contains the domain's secret key: it is
//! split at generation into the custodian's reference share and the server's, and wiped. Each
//! device or auditor gets its own share pair (see `tabir_device_crypto`).
//!
//! ```text
//! keys/custodian.sealed                 the custodian's Ed25519 signing key (sealed)
//! keys/<domain>/domain.json             manifest: fingerprint, policy, registration, devices
//! keys/<domain>/custodian-share.sealed  the reference share S1_ref (sealed; worthless alone)
//! keys/<domain>/evaluation.keys         evaluation keys and public key (public, 30 MB)
//! keys/<domain>/domain.pub              the public key devices encrypt with (public, 16 KiB)
//! <bundle>/tabir.toml                   a device's or auditor's configuration
//! <bundle>/device.sealed                its Ed25519 signing key (sealed)
//! <bundle>/share.sealed                 its decryption share S1_j (sealed)
//! <bundle>/domain.pub                   the domain's public key (and its parameters)
//! ```
//! Secret files are written with mode 0600, atomically. Nothing here ever prints a secret.

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::sealed::{self, Passphrase};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tabir_crypto::evaluation_keys::{DomainPublicKey, EvaluationKeys};
use tabir_crypto::params::{DomainConfig, Threshold};
use tabir_crypto::registration::DomainRegistration;
use tabir_crypto::shares::ShareDelta;
use tabir_device_crypto::{generate_key_domain, CustodianShare, DecryptionShare};
use tabir_proto::Role;
use zeroize::Zeroizing;

pub const CUSTODIAN_KEY_FILE: &str = "custodian.sealed";
pub const MANIFEST_FILE: &str = "domain.json";
pub const CUSTODIAN_SHARE_FILE: &str = "custodian-share.sealed";
pub const EVALUATION_KEYS_FILE: &str = "evaluation.keys";
pub const PUBLIC_KEY_FILE: &str = "domain.pub";
pub const DEVICE_KEY_FILE: &str = "device.sealed";
pub const SHARE_FILE: &str = "share.sealed";
pub const CONFIG_FILE: &str = "tabir.toml";
/// The first version's file holding a domain's whole secret key; found only to be flagged.
pub const LEGACY_SECRET_FILE: &str = "domain-secret.sealed";

/// Purposes written into sealed files, so one cannot be opened as another.
pub const PURPOSE_SIGNING_KEY: &str = "signing-key";
pub const PURPOSE_CUSTODIAN_SHARE: &str = "custodian-share";
pub const PURPOSE_DECRYPTION_SHARE: &str = "decryption-share";

/// Suffix of files written before the server confirmed a registration.
const PENDING: &str = "pending";

/// What the custodian's records say about one key domain (public facts only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainManifest {
    pub name: String,
    pub fingerprint: String,
    pub params: String,
    pub dim: u32,
    pub threshold_cosine: f32,
    pub threshold_score: i32,
    /// The 1:N threshold registered with the domain (absent in manifests of domains made
    /// before 1:N had its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identify_threshold_cosine: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identify_threshold_score: Option<i32>,
    pub created_at: String,
    #[serde(default)]
    pub registrations: Vec<Registration>,
    #[serde(default)]
    pub devices: Vec<IssuedKey>,
}

/// The domain's keys (and the server's reference share) were registered with a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub server: String,
    pub at: String,
}

/// A device or auditor key issued for the domain, with its share pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IssuedKey {
    pub key_id: String,
    pub label: String,
    pub role: Role,
    /// When the key and its share pair were issued (the server's registration time).
    pub issued_at: String,
    /// Where its bundle was written.
    pub bundle: PathBuf,
    /// When it was revoked: the server refuses the key and has deleted its half of the share
    /// pair, so the bundle's share opens nothing the server returns from then on.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// The custodian's key folder.
#[derive(Clone, Debug)]
pub struct Custody {
    pub root: PathBuf,
}

fn io(path: &Path, error: impl std::fmt::Display) -> ClientError {
    ClientError::Config(format!("{}: {error}", path.display()))
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A fresh Ed25519 signing key from the OS's randomness.
pub fn new_signing_key() -> SigningKey {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    SigningKey::from_bytes(&seed)
}

/// Seal a signing key to `path`.
pub fn write_signing_key(path: &Path, key: &SigningKey, passphrase: &Passphrase) -> Result<()> {
    let bytes = Zeroizing::new(key.to_bytes());
    Ok(sealed::write_sealed(
        path,
        bytes.as_ref(),
        PURPOSE_SIGNING_KEY,
        passphrase,
    )?)
}

/// Open a sealed signing key.
pub fn read_signing_key(path: &Path, passphrase: &Passphrase) -> Result<SigningKey> {
    let bytes = sealed::read_sealed(path, PURPOSE_SIGNING_KEY, passphrase)?;
    let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| io(path, "not a signing key"))?,
    );
    Ok(SigningKey::from_bytes(&seed))
}

/// Largest public key file read (honest: about 16 KiB).
const MAX_PUBLIC_KEY_FILE: u64 = 64 * 1024;

/// Read a domain public key file.
pub fn read_public_key(path: &Path) -> Result<DomainPublicKey> {
    let size = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
    if size > MAX_PUBLIC_KEY_FILE {
        return Err(io(path, "too large to be a domain public key"));
    }
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    DomainPublicKey::from_bytes(&bytes).map_err(|e| io(path, e))
}

/// Open a sealed decryption share of the domain `config`/`fingerprint`.
pub fn read_decryption_share(
    path: &Path,
    passphrase: &Passphrase,
    config: &DomainConfig,
    fingerprint: tabir_crypto::KeyFingerprint,
) -> Result<DecryptionShare> {
    let bytes = sealed::read_sealed(path, PURPOSE_DECRYPTION_SHARE, passphrase)?;
    DecryptionShare::import_secret(&bytes, config, fingerprint).map_err(|e| io(path, e))
}

/// A secret file that exists, for status reports (its path and size, never its contents).
#[derive(Clone, Debug, Serialize)]
pub struct SecretFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Unix permission bits, e.g. "600".
    pub mode: String,
    /// What it holds, in words.
    pub holds: &'static str,
}

fn secret_file(path: &Path, holds: &'static str) -> Option<SecretFile> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        format!("{:o}", metadata.permissions().mode() & 0o777)
    };
    #[cfg(not(unix))]
    let mode = String::from("n/a");
    Some(SecretFile {
        path: path.to_owned(),
        bytes: metadata.len(),
        mode,
        holds,
    })
}

/// One domain in a status report.
#[derive(Clone, Debug, Serialize)]
pub struct DomainStatus {
    #[serde(flatten)]
    pub manifest: DomainManifest,
    pub secret_files: Vec<SecretFile>,
    /// Files of the first version that hold a domain's whole secret key: delete them.
    pub legacy_secret_files: Vec<PathBuf>,
}

/// What `tabir custody status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct CustodyStatus {
    pub keys_dir: PathBuf,
    pub custodian_key: Option<SecretFile>,
    pub domains: Vec<DomainStatus>,
}

/// A freshly generated key domain whose files are staged (written under a pending name) and
/// whose registration with the server has not been confirmed yet. Drop it to abandon the
/// domain: [`Custody::abandon`] removes the staged files.
pub struct PendingDomain {
    name: String,
    config: DomainConfig,
    identify_threshold: Threshold,
    fingerprint: String,
    registration: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PendingDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingDomain({}, <registration>)", self.name)
    }
}

impl PendingDomain {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The registration to upload: evaluation keys, public key and the server's reference
    /// share. Secret (the share): send it only to the server, over TLS.
    pub fn registration(&self) -> &[u8] {
        &self.registration
    }
}

/// A device's or auditor's new bundle: its public signing key and the delta the server needs
/// (secret: send it only with the registration request).
#[derive(Debug)]
pub struct IssuedBundle {
    pub public_key: ed25519_dalek::VerifyingKey,
    pub share_delta: ShareDelta,
}

impl Custody {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn domain_dir(&self, domain: &str) -> PathBuf {
        self.root.join(domain)
    }

    pub fn custodian_key_path(&self) -> PathBuf {
        self.root.join(CUSTODIAN_KEY_FILE)
    }

    /// The custodian's signing key: opened, or created when there is none yet.
    pub fn custodian_key(&self, passphrase: &Passphrase) -> Result<(SigningKey, bool)> {
        let path = self.custodian_key_path();
        if path.exists() {
            return Ok((read_signing_key(&path, passphrase)?, false));
        }
        let key = new_signing_key();
        write_signing_key(&path, &key, passphrase)?;
        Ok((key, true))
    }

    fn pending(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".");
        name.push(PENDING);
        PathBuf::from(name)
    }

    /// Generate a key domain's keys and split its secret (the secret is wiped before this
    /// returns), then stage the custodian's files under pending names: the sealed reference
    /// share and the public keys. Nothing counts until [`Custody::commit_domain`] after the
    /// server accepted the registration. Refuses to overwrite an existing domain.
    pub fn prepare_domain(
        &self,
        name: &str,
        config: DomainConfig,
        identify_threshold: Threshold,
        passphrase: &Passphrase,
    ) -> Result<PendingDomain> {
        if !tabir_proto::routes::domain_name_is_valid(name) {
            return Err(ClientError::Config(format!(
                "{name:?} is not a valid domain name: 1-64 lower-case letters, digits and '-', starting with a letter"
            )));
        }
        let dir = self.domain_dir(name);
        if dir.join(MANIFEST_FILE).exists() || dir.join(CUSTODIAN_SHARE_FILE).exists() {
            return Err(ClientError::Config(format!(
                "{}: a key domain named {name} already exists here",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let domain = generate_key_domain(config)?;
        let fingerprint = domain.evaluation_keys.fingerprint().to_hex();
        sealed::write_sealed(
            &Self::pending(&dir.join(CUSTODIAN_SHARE_FILE)),
            &domain.custodian_share.export_secret(),
            PURPOSE_CUSTODIAN_SHARE,
            passphrase,
        )?;
        for (file, bytes) in [
            (EVALUATION_KEYS_FILE, domain.evaluation_keys.to_bytes()),
            (
                PUBLIC_KEY_FILE,
                domain.evaluation_keys.public_key().to_bytes(),
            ),
        ] {
            let path = Self::pending(&dir.join(file));
            sealed::write_private(&path, &bytes).map_err(|e| io(&path, e))?;
        }
        config.check_threshold(&identify_threshold)?;
        let registration = DomainRegistration {
            evaluation_keys: domain.evaluation_keys,
            server_share: domain.server_share,
            identify_threshold,
        }
        .to_bytes();
        Ok(PendingDomain {
            name: name.to_owned(),
            config,
            identify_threshold,
            fingerprint,
            registration,
        })
    }

    /// The server accepted the registration: move the staged files into place and write the
    /// manifest. The server's reference share was never written to disk here.
    pub fn commit_domain(
        &self,
        pending: PendingDomain,
        registration: Registration,
    ) -> Result<DomainManifest> {
        let dir = self.domain_dir(&pending.name);
        for file in [CUSTODIAN_SHARE_FILE, EVALUATION_KEYS_FILE, PUBLIC_KEY_FILE] {
            let path = dir.join(file);
            std::fs::rename(Self::pending(&path), &path).map_err(|e| io(&path, e))?;
        }
        let config = pending.config;
        let manifest = DomainManifest {
            name: pending.name.clone(),
            fingerprint: pending.fingerprint.clone(),
            params: config.params.name().to_owned(),
            dim: config.dim,
            threshold_cosine: config.threshold.cosine,
            threshold_score: config.threshold.score,
            identify_threshold_cosine: Some(pending.identify_threshold.cosine),
            identify_threshold_score: Some(pending.identify_threshold.score),
            created_at: now_rfc3339(),
            registrations: vec![registration],
            devices: Vec::new(),
        };
        self.save_manifest(&manifest)?;
        Ok(manifest)
    }

    /// The registration failed: remove the staged files (the keys are lost; nothing was
    /// enrolled under them).
    pub fn abandon(&self, pending: PendingDomain) {
        let dir = self.domain_dir(&pending.name);
        for file in [CUSTODIAN_SHARE_FILE, EVALUATION_KEYS_FILE, PUBLIC_KEY_FILE] {
            let _ = std::fs::remove_file(Self::pending(&dir.join(file)));
        }
        let _ = std::fs::remove_dir(&dir);
    }

    pub fn manifest(&self, domain: &str) -> Result<DomainManifest> {
        let path = self.domain_dir(domain).join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            io(
                &path,
                format!(
                    "{e} (no key domain named {domain} in {})",
                    self.root.display()
                ),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| io(&path, e))
    }

    pub fn save_manifest(&self, manifest: &DomainManifest) -> Result<()> {
        let path = self.domain_dir(&manifest.name).join(MANIFEST_FILE);
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| io(&path, e))?;
        sealed::write_private(&path, &text).map_err(|e| io(&path, e))
    }

    /// The domain's public key, checked against the manifest's fingerprint.
    pub fn public_key(&self, domain: &str) -> Result<DomainPublicKey> {
        let manifest = self.manifest(domain)?;
        let path = self.domain_dir(domain).join(PUBLIC_KEY_FILE);
        let key = read_public_key(&path)?;
        if key.fingerprint().to_hex() != manifest.fingerprint {
            return Err(ClientError::Config(format!(
                "{}: fingerprint {} does not match the manifest's {}",
                path.display(),
                key.fingerprint().to_hex(),
                manifest.fingerprint
            )));
        }
        Ok(key)
    }

    /// The domain's evaluation keys, checked against the manifest's fingerprint.
    pub fn evaluation_keys(&self, domain: &str) -> Result<EvaluationKeys> {
        let manifest = self.manifest(domain)?;
        let path = self.domain_dir(domain).join(EVALUATION_KEYS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let keys = EvaluationKeys::from_bytes(&bytes)?;
        if keys.fingerprint().to_hex() != manifest.fingerprint {
            return Err(ClientError::Config(format!(
                "{}: fingerprint {} does not match the manifest's {}",
                path.display(),
                keys.fingerprint().to_hex(),
                manifest.fingerprint
            )));
        }
        Ok(keys)
    }

    /// Write a device's or auditor's bundle to `out`: its sealed signing key, its sealed
    /// decryption share (a fresh share pair drawn from the custodian's reference share),
    /// the domain's public key and its configuration. Returns what the server needs
    /// to register it. On failure nothing is left in `out`.
    pub fn issue_bundle(
        &self,
        domain: &str,
        server: &str,
        out: &Path,
        custodian_passphrase: &Passphrase,
        bundle_passphrase: &Passphrase,
    ) -> Result<IssuedBundle> {
        let manifest = self.manifest(domain)?;
        if out.join(DEVICE_KEY_FILE).exists() || out.join(SHARE_FILE).exists() {
            return Err(ClientError::Config(format!(
                "{}: a bundle already exists there",
                out.display()
            )));
        }
        let public_key = self.public_key(domain)?;
        let config = *public_key.config();
        let share_path = self.domain_dir(domain).join(CUSTODIAN_SHARE_FILE);
        let reference = CustodianShare::import_secret(
            &sealed::read_sealed(&share_path, PURPOSE_CUSTODIAN_SHARE, custodian_passphrase)?,
            &config,
            public_key.fingerprint(),
        )
        .map_err(|e| io(&share_path, e))?;
        let (share, share_delta) = reference.issue(&config)?;
        drop(reference);

        std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
        let written = (|| -> Result<ed25519_dalek::VerifyingKey> {
            let key = new_signing_key();
            write_signing_key(&out.join(DEVICE_KEY_FILE), &key, bundle_passphrase)?;
            sealed::write_sealed(
                &out.join(SHARE_FILE),
                &share.export_secret(),
                PURPOSE_DECRYPTION_SHARE,
                bundle_passphrase,
            )?;
            let mut bundle = ClientConfig::new(
                server.to_owned(),
                domain.to_owned(),
                PathBuf::from(DEVICE_KEY_FILE),
            );
            bundle.fingerprint = Some(manifest.fingerprint.clone());
            bundle.share = Some(PathBuf::from(SHARE_FILE));
            // Devices encrypt with it; auditors read the domain's parameters from it.
            let path = out.join(PUBLIC_KEY_FILE);
            sealed::write_private(&path, &public_key.to_bytes()).map_err(|e| io(&path, e))?;
            bundle.public_key = Some(PathBuf::from(PUBLIC_KEY_FILE));
            bundle.save(&out.join(CONFIG_FILE))?;
            Ok(key.verifying_key())
        })();
        match written {
            Ok(public_key) => Ok(IssuedBundle {
                public_key,
                share_delta,
            }),
            Err(error) => {
                remove_bundle(out);
                Err(error)
            }
        }
    }

    /// Domains, fingerprints, devices and the secret files present (never their contents).
    pub fn status(&self) -> Result<CustodyStatus> {
        let mut domains = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join(MANIFEST_FILE).exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            for name in names {
                let manifest = self.manifest(&name)?;
                let dir = self.domain_dir(&name);
                let mut secret_files: Vec<SecretFile> = secret_file(
                    &dir.join(CUSTODIAN_SHARE_FILE),
                    "the custodian's reference share (worthless alone)",
                )
                .into_iter()
                .collect();
                let mut legacy_secret_files: Vec<PathBuf> = Vec::new();
                if dir.join(LEGACY_SECRET_FILE).exists() {
                    legacy_secret_files.push(dir.join(LEGACY_SECRET_FILE));
                }
                for device in &manifest.devices {
                    secret_files.extend(secret_file(
                        &device.bundle.join(DEVICE_KEY_FILE),
                        "a signing key",
                    ));
                    secret_files.extend(secret_file(
                        &device.bundle.join(SHARE_FILE),
                        "a decryption share (opens only what the server prepares for this key)",
                    ));
                    if device.bundle.join(LEGACY_SECRET_FILE).exists() {
                        legacy_secret_files.push(device.bundle.join(LEGACY_SECRET_FILE));
                    }
                }
                domains.push(DomainStatus {
                    manifest,
                    secret_files,
                    legacy_secret_files,
                });
            }
        }
        Ok(CustodyStatus {
            keys_dir: self.root.clone(),
            custodian_key: secret_file(&self.custodian_key_path(), "the custodian's signing key"),
            domains,
        })
    }
}

/// Remove a bundle's files (its registration failed, so its share pairs with nothing).
pub fn remove_bundle(out: &Path) {
    for file in [DEVICE_KEY_FILE, SHARE_FILE, PUBLIC_KEY_FILE, CONFIG_FILE] {
        let _ = std::fs::remove_file(out.join(file));
    }
    let _ = std::fs::remove_dir(out);
}
