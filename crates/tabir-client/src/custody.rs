//! Key custody on the custodian's machine: a folder per key domain holding the sealed secret
//! key, the public evaluation keys and a manifest (fingerprint, policy, devices issued and
//! revoked, with times), plus the custodian's own sealed signing key; and the bundles handed
//! to office devices and auditors.
//!
//! ```text
//! keys/custodian.sealed                the custodian's Ed25519 signing key (sealed)
//! keys/<domain>/domain.json            manifest: fingerprint, policy, registrations, devices
//! keys/<domain>/domain-secret.sealed   the domain's secret key (sealed)
//! keys/<domain>/evaluation.keys        the evaluation keys (public; uploaded to the server)
//! <bundle>/tabir.toml                  a device's or auditor's configuration
//! <bundle>/device.sealed               its Ed25519 signing key (sealed)
//! <bundle>/domain-secret.sealed        devices only: the domain's secret key (sealed)
//! ```
//! Secret files are written with mode 0600, atomically. Nothing here ever prints a secret.

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::sealed::{self, Passphrase};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tabir_crypto::client::{generate_key_domain, ClientKey};
use tabir_crypto::evaluation_keys::EvaluationKeys;
use tabir_crypto::params::DomainConfig;
use tabir_proto::Role;
use zeroize::Zeroizing;

pub const CUSTODIAN_KEY_FILE: &str = "custodian.sealed";
pub const MANIFEST_FILE: &str = "domain.json";
pub const DOMAIN_SECRET_FILE: &str = "domain-secret.sealed";
pub const EVALUATION_KEYS_FILE: &str = "evaluation.keys";
pub const DEVICE_KEY_FILE: &str = "device.sealed";
pub const CONFIG_FILE: &str = "tabir.toml";

/// Purposes written into sealed files, so one cannot be opened as another.
pub const PURPOSE_DOMAIN_SECRET: &str = "domain-secret";
pub const PURPOSE_SIGNING_KEY: &str = "signing-key";

/// What the custodian's records say about one key domain (public facts only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainManifest {
    pub name: String,
    pub fingerprint: String,
    pub params: String,
    pub dim: u32,
    pub threshold_cosine: f32,
    pub threshold_score: i32,
    pub created_at: String,
    #[serde(default)]
    pub registrations: Vec<Registration>,
    #[serde(default)]
    pub devices: Vec<IssuedKey>,
}

/// The domain's keys were registered with a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub server: String,
    pub at: String,
}

/// A device or auditor key issued for the domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IssuedKey {
    pub key_id: String,
    pub label: String,
    pub role: Role,
    pub issued_at: String,
    /// Where its bundle was written.
    pub bundle: PathBuf,
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

/// Open a sealed domain secret key.
pub fn read_domain_secret(path: &Path, passphrase: &Passphrase) -> Result<ClientKey> {
    let bytes = sealed::read_sealed(path, PURPOSE_DOMAIN_SECRET, passphrase)?;
    Ok(ClientKey::import_secret(&bytes)?)
}

/// A secret file that exists, for status reports (its path and size, never its contents).
#[derive(Clone, Debug, Serialize)]
pub struct SecretFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Unix permission bits, e.g. "600".
    pub mode: String,
}

fn secret_file(path: &Path) -> Option<SecretFile> {
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
    })
}

/// One domain in a status report.
#[derive(Clone, Debug, Serialize)]
pub struct DomainStatus {
    #[serde(flatten)]
    pub manifest: DomainManifest,
    pub secret_files: Vec<SecretFile>,
}

/// What `tabir custody status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct CustodyStatus {
    pub keys_dir: PathBuf,
    pub custodian_key: Option<SecretFile>,
    pub domains: Vec<DomainStatus>,
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

    /// Create a key domain: generate its keys, seal the secret key, write the evaluation keys
    /// and the manifest. Refuses to overwrite an existing domain.
    pub fn create_domain(
        &self,
        name: &str,
        config: DomainConfig,
        passphrase: &Passphrase,
    ) -> Result<DomainManifest> {
        if !tabir_proto::routes::domain_name_is_valid(name) {
            return Err(ClientError::Config(format!(
                "{name:?} is not a valid domain name: 1-64 lower-case letters, digits and '-', starting with a letter"
            )));
        }
        let dir = self.domain_dir(name);
        if dir.join(MANIFEST_FILE).exists() || dir.join(DOMAIN_SECRET_FILE).exists() {
            return Err(ClientError::Config(format!(
                "{}: a key domain named {name} already exists here",
                dir.display()
            )));
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let (client_key, evaluation_keys) = generate_key_domain(config)?;
        let secret = client_key.export_secret();
        sealed::write_sealed(
            &dir.join(DOMAIN_SECRET_FILE),
            secret.expose(),
            PURPOSE_DOMAIN_SECRET,
            passphrase,
        )?;
        let keys_path = dir.join(EVALUATION_KEYS_FILE);
        sealed::write_private(&keys_path, &evaluation_keys.to_bytes())
            .map_err(|e| io(&keys_path, e))?;
        let manifest = DomainManifest {
            name: name.to_owned(),
            fingerprint: client_key.fingerprint().to_hex(),
            params: config.params.name().to_owned(),
            dim: config.dim,
            threshold_cosine: config.threshold.cosine,
            threshold_score: config.threshold.score,
            created_at: now_rfc3339(),
            registrations: Vec::new(),
            devices: Vec::new(),
        };
        self.save_manifest(&manifest)?;
        Ok(manifest)
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

    /// The domain's evaluation keys, checked against the manifest's fingerprint.
    pub fn evaluation_keys(&self, domain: &str) -> Result<Vec<u8>> {
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
        Ok(bytes)
    }

    /// Write a device's or auditor's bundle to `out`: its sealed signing key, the domain's
    /// sealed secret key (devices only) and its configuration. Returns the new signing key's
    /// public half, for registration.
    pub fn issue_bundle(
        &self,
        domain: &str,
        role: Role,
        server: &str,
        out: &Path,
        custodian_passphrase: &Passphrase,
        bundle_passphrase: &Passphrase,
    ) -> Result<ed25519_dalek::VerifyingKey> {
        let manifest = self.manifest(domain)?;
        if out.join(DEVICE_KEY_FILE).exists() {
            return Err(ClientError::Config(format!(
                "{}: a bundle already exists there",
                out.display()
            )));
        }
        std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
        let key = new_signing_key();
        write_signing_key(&out.join(DEVICE_KEY_FILE), &key, bundle_passphrase)?;
        let secret_key = if role == Role::Device {
            let secret = read_domain_secret(
                &self.domain_dir(domain).join(DOMAIN_SECRET_FILE),
                custodian_passphrase,
            )?;
            sealed::write_sealed(
                &out.join(DOMAIN_SECRET_FILE),
                secret.export_secret().expose(),
                PURPOSE_DOMAIN_SECRET,
                bundle_passphrase,
            )?;
            Some(PathBuf::from(DOMAIN_SECRET_FILE))
        } else {
            None
        };
        let config = ClientConfig {
            server: server.to_owned(),
            domain: domain.to_owned(),
            fingerprint: Some(manifest.fingerprint.clone()),
            device_key: PathBuf::from(DEVICE_KEY_FILE),
            secret_key,
            tls_root: None,
        };
        config.save(&out.join(CONFIG_FILE))?;
        Ok(key.verifying_key())
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
                let mut secret_files: Vec<SecretFile> =
                    secret_file(&self.domain_dir(&name).join(DOMAIN_SECRET_FILE))
                        .into_iter()
                        .collect();
                for device in &manifest.devices {
                    for file in [DEVICE_KEY_FILE, DOMAIN_SECRET_FILE] {
                        secret_files.extend(secret_file(&device.bundle.join(file)));
                    }
                }
                domains.push(DomainStatus {
                    manifest,
                    secret_files,
                });
            }
        }
        Ok(CustodyStatus {
            keys_dir: self.root.clone(),
            custodian_key: secret_file(&self.custodian_key_path()),
            domains,
        })
    }
}
