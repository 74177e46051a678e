//! A device's or auditor's configuration: a TOML file (written by `tabir custody device add`)
//! with environment variables taking precedence.
//!
//! ```toml
//! server = "https://tabir.example:8443"
//! domain = "jabar-bansos"
//! fingerprint = "9f3c..."            # the domain's key fingerprint, checked with the server
//! device_key = "device.sealed"        # paths relative to this file
//! share = "share.sealed"              # this key's decryption share
//! public_key = "domain.pub"           # the domain's public key and parameters
//! tls_root = "ca.pem"                 # optional extra certificate to trust
//! ```
//! Environment: `TABIR_SERVER`, `TABIR_DOMAIN`, `TABIR_DEVICE_KEY`, `TABIR_SHARE`,
//! `TABIR_PUBLIC_KEY`, `TABIR_TLS_ROOT`; the passphrase comes from `TABIR_PASSPHRASE` or a
//! prompt.
//!
//! A bundle of the first Tabir version (`secret_key = ...`: the domain's whole secret key on
//! the device) is refused with the way forward: a new key domain and re-enrolment.

use crate::error::{ClientError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable holding the passphrase of sealed key files.
pub const PASSPHRASE_ENV: &str = "TABIR_PASSPHRASE";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub server: String,
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub device_key: PathBuf,
    /// This key's decryption share, sealed (devices and auditors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<PathBuf>,
    /// The domain's public key (devices encrypt with it; auditors read the parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_root: Option<PathBuf>,
    /// Allow plain http to a host other than this machine (a protected network only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
    /// Only read, to refuse bundles of the first version that held the whole domain key.
    #[serde(default, skip_serializing)]
    secret_key: Option<PathBuf>,
}

/// Why a first-version bundle is refused.
pub const LEGACY_BUNDLE: &str = "this bundle holds the whole secret key of a symmetric key domain \
     (from before key custody shares), which this version refuses: the custodian creates a new key \
     domain (`tabir custody init`), issues new bundles, and the subjects are re-enrolled; then \
     delete the old bundle's domain-secret.sealed";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ClientConfig {
    /// A configuration with only the required fields.
    pub fn new(server: String, domain: String, device_key: PathBuf) -> Self {
        Self {
            server,
            domain,
            fingerprint: None,
            device_key,
            share: None,
            public_key: None,
            tls_root: None,
            allow_http: false,
            secret_key: None,
        }
    }

    /// A signed transport to this configuration's server with `key`.
    pub fn transport(&self, key: ed25519_dalek::SigningKey) -> Result<crate::Transport> {
        let tls_root = self.tls_root_pem()?;
        if self.allow_http {
            crate::Transport::with_insecure_http(&self.server, key, tls_root.as_deref())
        } else {
            crate::Transport::new(&self.server, key, tls_root.as_deref())
        }
    }

    /// Read `path` (if given) and apply the environment. Relative key paths in the file are
    /// taken relative to the file's folder.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
                let mut config: ClientConfig = toml::from_str(&text)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
                if config.secret_key.is_some() {
                    return Err(ClientError::Config(format!(
                        "{}: {LEGACY_BUNDLE}",
                        path.display()
                    )));
                }
                let base = path.parent().unwrap_or(Path::new("."));
                config.device_key = base.join(&config.device_key);
                config.share = config.share.map(|p| base.join(p));
                config.public_key = config.public_key.map(|p| base.join(p));
                config.tls_root = config.tls_root.map(|p| base.join(p));
                config
            }
            None => ClientConfig::new(String::new(), String::new(), PathBuf::new()),
        };
        if let Some(server) = env("TABIR_SERVER") {
            config.server = server;
        }
        if let Some(domain) = env("TABIR_DOMAIN") {
            config.domain = domain;
        }
        if let Some(key) = env("TABIR_DEVICE_KEY") {
            config.device_key = PathBuf::from(key);
        }
        if env("TABIR_SECRET_KEY").is_some() {
            return Err(ClientError::Config(format!(
                "TABIR_SECRET_KEY is set: {LEGACY_BUNDLE}"
            )));
        }
        if let Some(share) = env("TABIR_SHARE") {
            config.share = Some(PathBuf::from(share));
        }
        if let Some(key) = env("TABIR_PUBLIC_KEY") {
            config.public_key = Some(PathBuf::from(key));
        }
        if let Some(root) = env("TABIR_TLS_ROOT") {
            config.tls_root = Some(PathBuf::from(root));
        }
        if env("TABIR_ALLOW_HTTP").is_some_and(|v| v == "1" || v == "true") {
            config.allow_http = true;
        }
        let missing = |what: &str| {
            ClientError::Config(format!(
                "no {what}: give --config FILE (the tabir.toml written by `tabir custody device add`), or set TABIR_SERVER, TABIR_DOMAIN and TABIR_DEVICE_KEY"
            ))
        };
        if config.server.is_empty() {
            return Err(missing("server URL"));
        }
        if config.domain.is_empty() {
            return Err(missing("key domain"));
        }
        if config.device_key.as_os_str().is_empty() {
            return Err(missing("device key"));
        }
        Ok(config)
    }

    /// Write as TOML (paths as given, normally relative to the file).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
        crate::sealed::write_private(path, text.as_bytes())
            .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }

    /// The extra TLS root, read.
    pub fn tls_root_pem(&self) -> Result<Option<Vec<u8>>> {
        self.tls_root
            .as_ref()
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
            })
            .transpose()
    }
}
