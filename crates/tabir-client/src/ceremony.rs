//! The custodian's ceremonies, each a key-folder step and a server step that must succeed or
//! fail together: creating a key domain (the server's share travels only in the registration,
//! never to disk), issuing a device or auditor (a bundle whose share pairs with the server's
//! half, or no bundle at all), and revoking one (the server deletes its half).

use crate::admin::AdminClient;
use crate::custody::{remove_bundle, Custody, DomainManifest, IssuedKey, Registration};
use crate::error::{ClientError, Result};
use crate::sealed::Passphrase;
use std::path::Path;
use tabir_crypto::params::{DomainConfig, Threshold};
use tabir_proto::messages::DeviceInfo;
use tabir_proto::Role;

/// Where a domain's creation is, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitStage {
    /// Generating the keys and splitting the secret (a second or two).
    Generating,
    /// Uploading the registration (about 30 MB).
    Registering { bytes: usize },
}

/// Create key domain `name`: generate its keys, split and wipe its secret, register the
/// evaluation keys, public key and the server's reference share with the server behind
/// `admin`, and keep the custodian's reference share (sealed) and the public keys in the key
/// folder. If the registration fails nothing is kept.
pub async fn init_domain(
    custody: &Custody,
    admin: &AdminClient,
    name: &str,
    config: DomainConfig,
    identify_threshold: Threshold,
    passphrase: &Passphrase,
    mut progress: impl FnMut(InitStage),
) -> Result<DomainManifest> {
    progress(InitStage::Generating);
    let pending = custody.prepare_domain(name, config, identify_threshold, passphrase)?;
    progress(InitStage::Registering {
        bytes: pending.registration().len(),
    });
    let info = match admin.register_domain(name, pending.registration()).await {
        Ok(info) if info.fingerprint == pending.fingerprint() => info,
        Ok(info) => {
            let message = format!(
                "the server computed fingerprint {}, the keys generated here have {}",
                info.fingerprint,
                pending.fingerprint()
            );
            custody.abandon(pending);
            return Err(ClientError::BadAnswer(message));
        }
        Err(error) => {
            custody.abandon(pending);
            return Err(error);
        }
    };
    custody
        .commit_domain(
            pending,
            Registration {
                server: admin.transport().server().to_owned(),
                at: info.registered_at,
            },
        )
        .map_err(|e| {
            ClientError::Config(format!(
                "the server registered domain {name}, but the custodian's files could not be \
                 written: {e}; without the custodian's share no device can be issued, so create \
                 another domain"
            ))
        })
}

/// What to issue: a device's or auditor's key and share pair.
pub struct Issue<'a> {
    pub domain: &'a str,
    pub label: &'a str,
    pub role: Role,
    /// The server URL written into the bundle's tabir.toml.
    pub server: &'a str,
    pub out: &'a Path,
    pub custodian_passphrase: &'a Passphrase,
    pub bundle_passphrase: &'a Passphrase,
}

/// Issue a device or auditor: write its bundle (signing key and decryption share, sealed; the
/// domain's public key; tabir.toml), register its key and share delta with the server, and
/// record it in the domain's manifest. A failed registration leaves no bundle: its share
/// would pair with nothing.
pub async fn issue_key(
    custody: &Custody,
    admin: &AdminClient,
    issue: Issue<'_>,
) -> Result<(DeviceInfo, IssuedKey)> {
    if issue.role == Role::Custodian {
        return Err(ClientError::Config(
            "custodians are registered by the server's bootstrap, not issued".into(),
        ));
    }
    let mut manifest = custody.manifest(issue.domain)?;
    let issued = custody.issue_bundle(
        issue.domain,
        issue.server,
        issue.out,
        issue.custodian_passphrase,
        issue.bundle_passphrase,
    )?;
    let info = match admin
        .register_key(
            issue.domain,
            issue.label,
            &issued.public_key,
            issue.role,
            Some(&issued.share_delta),
        )
        .await
    {
        Ok(info) => info,
        Err(error) => {
            remove_bundle(issue.out);
            return Err(error);
        }
    };
    let record = IssuedKey {
        key_id: info.key_id.clone(),
        label: issue.label.to_owned(),
        role: issue.role,
        issued_at: info.registered_at.clone(),
        bundle: issue.out.to_owned(),
        revoked_at: None,
    };
    manifest.devices.push(record.clone());
    custody.save_manifest(&manifest)?;
    Ok((info, record))
}

/// Revoke a key: the server refuses it from now on and deletes its half of the share pair;
/// the manifest records the time.
pub async fn revoke_key(
    custody: &Custody,
    admin: &AdminClient,
    domain: &str,
    key_id: &str,
) -> Result<DeviceInfo> {
    let mut manifest = custody.manifest(domain)?;
    let info = admin.revoke_key(domain, key_id).await?;
    for device in manifest.devices.iter_mut().filter(|d| d.key_id == key_id) {
        device.revoked_at = info.revoked_at.clone();
    }
    custody.save_manifest(&manifest)?;
    Ok(info)
}
