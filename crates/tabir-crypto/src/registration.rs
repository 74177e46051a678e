//! What the custodian uploads to register a key domain: the public evaluation keys (with the
//! public key) and the server's reference share S2_ref. Secret in transit because of the share:
//! it travels only inside a signed custodian request over TLS, and the server seals the share
//! under its master key before storing it.

use crate::error::Result;
use crate::evaluation_keys::{EvaluationKeys, EVALUATION_KEYS_LIMIT};
use crate::params::Threshold;
use crate::shares::{ServerShare, SHARE_LIMIT};
use crate::wire;
use serde::{Deserialize, Serialize};
use std::fmt;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};
use zeroize::{Zeroize, Zeroizing};

/// Size limit of a registration blob (the keys, the share, and their length prefixes).
pub const REGISTRATION_LIMIT: u64 = EVALUATION_KEYS_LIMIT + SHARE_LIMIT + 1024;

pub struct DomainRegistration {
    pub evaluation_keys: EvaluationKeys,
    /// S2_ref, the server's half of the reference share pair.
    pub server_share: ServerShare,
    /// The threshold 1:N searches use (stricter than the 1:1 one in the keys' configuration:
    /// a search makes one comparison per enrolled template). Checked against the domain's
    /// plaintext scaling.
    pub identify_threshold: Threshold,
}

impl fmt::Debug for DomainRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DomainRegistration(domain {}, <server share>)",
            self.server_share.fingerprint()
        )
    }
}

/// The registration: the evaluation keys travel as their own canonical blob (either form), so
/// this wrapper does not depend on their type. (The form before it, "/2", embedded the 64-bit
/// keys; it was only ever an upload, never stored, so it is not read any more: a client that
/// old gets a typed wrong-type error.)
#[derive(Serialize, Deserialize, Versionize)]
#[versionize(RegistrationWireVersions)]
struct RegistrationWire {
    evaluation_keys: Vec<u8>,
    server_share: Vec<u8>,
    identify_threshold: Threshold,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
enum RegistrationWireVersions {
    V0(RegistrationWire),
}

impl Named for RegistrationWire {
    const NAME: &'static str = "tabir::DomainRegistration/3";
}

impl DomainRegistration {
    /// The blob to upload. Secret (it holds the server's share).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let share = self.server_share.export_secret();
        let mut wire = RegistrationWire {
            evaluation_keys: self.evaluation_keys.to_bytes(),
            server_share: Vec::with_capacity(share.len()),
            identify_threshold: self.identify_threshold,
        };
        wire.server_share.extend_from_slice(&share);
        let bytes = wire::encode_secret(&wire, REGISTRATION_LIMIT);
        wire.server_share.zeroize();
        bytes
    }

    /// Decode, checking the keys' shapes and that the share belongs to these keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut wire: RegistrationWire =
            wire::decode(bytes, "domain registration", REGISTRATION_LIMIT)?;
        let share = Zeroizing::new(std::mem::take(&mut wire.server_share));
        let evaluation_keys = EvaluationKeys::from_bytes(&wire.evaluation_keys)?;
        evaluation_keys
            .config()
            .check_threshold(&wire.identify_threshold)?;
        let server_share = ServerShare::import_secret(
            &share,
            evaluation_keys.config(),
            evaluation_keys.fingerprint(),
        )?;
        Ok(Self {
            evaluation_keys,
            server_share,
            identify_threshold: wire.identify_threshold,
        })
    }
}
