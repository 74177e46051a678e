//! A device's or auditor's configuration: a TOML file (written by `tabir custody device add`)
//! with environment variables taking precedence.
//!
//! ```toml
//! server = "https://tabir.example:8443"
//! domain = "jabar-bansos"
//! fingerprint = "9f3c..."            # the domain's key fingerprint, checked with the server
//! device_key = "device.sealed"        # paths relative to this file
//! secret_key = "domain-secret.sealed" # devices only
//! tls_root = "ca.pem"                 # optional extra certificate to trust
//! ```
//! Environment: `TABIR_SERVER`, `TABIR_DOMAIN`, `TABIR_DEVICE_KEY`, `TABIR_SECRET_KEY`,
//! `TABIR_TLS_ROOT`; the passphrase comes from `TABIR_PASSPHRASE` or a prompt.

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_root: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ClientConfig {
    /// Read `path` (if given) and apply the environment. Relative key paths in the file are
    /// taken relative to the file's folder.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
                let mut config: ClientConfig = toml::from_str(&text)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
                let base = path.parent().unwrap_or(Path::new("."));
                config.device_key = base.join(&config.device_key);
                config.secret_key = config.secret_key.map(|p| base.join(p));
                config.tls_root = config.tls_root.map(|p| base.join(p));
                config
            }
            None => ClientConfig {
                server: String::new(),
                domain: String::new(),
                fingerprint: None,
                device_key: PathBuf::new(),
                secret_key: None,
                tls_root: None,
            },
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
        if let Some(key) = env("TABIR_SECRET_KEY") {
            config.secret_key = Some(PathBuf::from(key));
        }
        if let Some(root) = env("TABIR_TLS_ROOT") {
            config.tls_root = Some(PathBuf::from(root));
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
