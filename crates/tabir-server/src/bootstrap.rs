//! The server's own signing key (it signs the audit log) and the first custodian.
//!
//! On first start the server creates its signing key in the data folder (mode 0600). A fresh
//! server has no custodian, and only a custodian can register domains and devices, so either
//! the operator names the custodian's public key by flag (`--custodian-key`), or the server
//! makes a one-time token (written to a 0600 file, never to stdout or a log); the custodian's
//! tool presents it once (`POST /v1/bootstrap`) to register its key. The store keeps only the
//! token's SHA-256 and its expiry (an hour by default), so the token works at any replica,
//! once: redeeming it registers the custodian and voids every other token in one transaction.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{Act, AppState};
use crate::StartError;
use ed25519_dalek::SigningKey;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::messages::CustodianBootstrap;
use tabir_proto::signing;
use tabir_proto::{ErrorCode, Role};
use tabir_store::{Change, KeyRecord};
use zeroize::Zeroizing;

/// The signing key's file name inside the data folder.
pub const SERVER_KEY_FILE: &str = "server-signing.key";

/// The server's Ed25519 signing key and the file it came from.
pub struct ServerKeyFile {
    key: SigningKey,
    pub path: PathBuf,
}

impl ServerKeyFile {
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Hex public key (what auditors verify the log with).
    pub fn public_key_hex(&self) -> String {
        tabir_proto::hex::encode(self.key.verifying_key().as_bytes())
    }
}

/// Load the key from `path`, or create it there (0600, written to a temporary file first and
/// renamed, so a crash cannot leave half a key).
pub fn load_or_create_server_key(path: &Path) -> Result<ServerKeyFile, StartError> {
    let fail = |reason: String| StartError::ServerKey {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let bytes = tabir_proto::hex::decode::<32>(text.trim())
                .map(Zeroizing::new)
                .ok_or_else(|| fail("not a hex Ed25519 secret key (64 hex characters)".into()))?;
            Ok(ServerKeyFile {
                key: SigningKey::from_bytes(&bytes),
                path: path.to_owned(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(seed.as_mut());
            let key = SigningKey::from_bytes(&seed);
            let text = Zeroizing::new(tabir_proto::hex::encode(seed.as_ref()));
            write_secret_file(path, text.as_bytes()).map_err(|e| fail(e.to_string()))?;
            Ok(ServerKeyFile {
                key,
                path: path.to_owned(),
            })
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Write a secret file readable by its owner only, atomically.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("tmp");
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
    std::fs::rename(&temporary, path)
}

/// A one-time bootstrap token and when it stops working.
pub struct BootstrapToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BootstrapToken(<secret>, expires at {})",
            self.expires_at
        )
    }
}

fn token_digest(token: &str) -> String {
    tabir_proto::hex::encode(&Sha256::digest(token.trim().as_bytes()))
}

/// Register the custodian key given by flag, or make a bootstrap token when no custodian
/// exists yet. Returns the token (for the operator's 0600 file).
pub async fn prepare_custodian(
    state: &Arc<AppState>,
    custodian_key: Option<String>,
) -> Result<Option<BootstrapToken>, StartError> {
    let keys = on_store(state, |state| state.store.keys(None)).await?;
    let has_custodian = keys
        .iter()
        .any(|k| k.role == Role::Custodian && k.revoked_at.is_none());
    if let Some(public_key) = custodian_key {
        let record = custodian_record(&public_key, "custodian (--custodian-key)")
            .map_err(|e| StartError::CustodianKey(e.into()))?;
        if keys.iter().any(|k| k.key_id == record.key_id) {
            return Ok(None);
        }
        let event =
            Act::new(Action::BootstrapCustodian, None).event(&server_caller(), Outcome::Done);
        on_store(state, move |state| {
            state.store.commit(
                Change::PutKey {
                    record,
                    sealed_share: None,
                },
                event,
                &state.server_key,
            )
        })
        .await?;
        return Ok(None);
    }
    if has_custodian {
        return Ok(None);
    }
    let mut token_bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(token_bytes.as_mut());
    let token = tabir_proto::hex::encode(token_bytes.as_ref());
    let expires_at = crate::time::unix_now() + state.config.bootstrap_token_secs;
    let digest = token_digest(&token);
    on_store(state, move |state| {
        state.store.add_bootstrap_token(&digest, expires_at)
    })
    .await?;
    Ok(Some(BootstrapToken { token, expires_at }))
}

/// A store call at start-up, on a blocking thread (the PostgreSQL client must not run on the
/// async runtime), keeping the store's own error for the operator.
async fn on_store<T, F>(state: &Arc<AppState>, call: F) -> Result<T, StartError>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> Result<T, tabir_store::StoreError> + Send + 'static,
{
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || call(&state))
        .await
        .map_err(|e| StartError::Startup(e.to_string()))?
        .map_err(StartError::Store)
}

/// The server acting on its own behalf (flag-given custodian).
fn server_caller() -> Caller {
    Caller {
        key_id: "server".into(),
        role: Role::Custodian,
        domain: None,
    }
}

fn custodian_record(public_key: &str, label: &str) -> Result<KeyRecord, &'static str> {
    let key = signing::parse_public_key(public_key)
        .ok_or("not an Ed25519 public key (64 hex characters)")?;
    Ok(KeyRecord {
        key_id: signing::key_id(&key),
        public_key: tabir_proto::hex::encode(key.as_bytes()),
        domain: None,
        role: Role::Custodian,
        label: label.to_owned(),
        registered_at: crate::time::rfc3339_now(),
        revoked_at: None,
        holds_share: false,
    })
}

/// `POST /v1/bootstrap`: register the first custodian with a one-time token (checked in the
/// store: unexpired, unused, and no custodian yet; any replica, once).
pub async fn redeem(
    state: &Arc<AppState>,
    presented_token: &str,
    request: CustodianBootstrap,
) -> Result<KeyRecord, ApiError> {
    let registration = tabir_proto::messages::DeviceRegistration {
        label: request.label,
        public_key: request.public_key,
        role: Role::Custodian,
        share_delta: None,
    };
    registration
        .validate()
        .map_err(|_| ApiError::new(ErrorCode::BadRequest))?;
    let record = custodian_record(&registration.public_key, &registration.label)
        .map_err(|_| ApiError::new(ErrorCode::BadRequest))?;
    let act = Act::new(Action::BootstrapCustodian, None);
    let caller = Caller {
        key_id: record.key_id.clone(),
        role: Role::Custodian,
        domain: None,
    };
    state
        .commit(
            Change::RedeemBootstrap {
                token_digest: token_digest(presented_token),
                now: crate::time::unix_now(),
                record: record.clone(),
            },
            act.event(&caller, Outcome::Done),
        )
        .await
        .map_err(|error| match error.code {
            ErrorCode::Internal => error,
            _ => ApiError::new(ErrorCode::Unauthenticated),
        })?;
    Ok(record)
}
