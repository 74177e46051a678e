//! Tests of the whole circuit against the plaintext twin, of the wire formats, of the keys and
//! of the custody shares. Key generation takes seconds, so every test in this binary shares one
//! key domain per dimension through a `OnceLock`.
//!
//! These tests keep the domain's whole secret key (which key generation otherwise wipes) to
//! measure noise and to compare share decryption with full-key decryption.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agreement;
mod custody;
mod identify;
mod keys;
mod legacy;
mod noise;
mod wire;

use crate::encrypt::Encryptor;
use crate::keygen::{generate_with_secrets, DomainSecrets};
use crate::quantize::{domain_config, QuantisedEmbedding};
use crate::shares::{CustodianShare, DecryptionShare};
use rand::Rng;
use std::sync::OnceLock;
use tabir_crypto::ciphertexts::{EncryptedBit, EscrowedBit, Probe, Template};
use tabir_crypto::params::{DomainConfig, ParamSetId, RESULT_MODULUS_LOG};
use tabir_crypto::server::ServerKeys;
use tabir_crypto::shares::{ServerShare, ShareValues};
use tabir_crypto::Decision;
use zeroize::Zeroizing;

pub(crate) const MODULUS_MASK: u16 = (1 << RESULT_MODULUS_LOG) - 1;

pub(crate) struct TestDomain {
    pub config: DomainConfig,
    pub encryptor: Encryptor,
    pub server: ServerKeys,
    pub evaluation_key_bytes: Vec<u8>,
    pub custodian: CustodianShare,
    pub server_reference: ServerShare,
    /// One device's share pair, issued as the custodian would.
    pub device: DecryptionShare,
    pub device_server_share: ServerShare,
    pub secrets: DomainSecrets,
}

impl TestDomain {
    pub fn probe(&self, q: &QuantisedEmbedding) -> Probe {
        self.encryptor.encrypt_probe_quantised(q).unwrap()
    }

    pub fn template(&self, q: &QuantisedEmbedding) -> Template {
        self.encryptor.encrypt_template_quantised(q).unwrap()
    }

    /// What the device receives for an escrowed result.
    pub fn for_device(&self, escrowed: &EscrowedBit) -> EncryptedBit {
        self.device_server_share.apply(escrowed).unwrap()
    }

    /// The device's decision: server share applied, then the device's own share.
    pub fn open(&self, escrowed: &EscrowedBit) -> Decision {
        self.device.decrypt(&self.for_device(escrowed)).unwrap()
    }

    /// The same result decrypted with the whole key (which no party holds outside tests).
    pub fn open_with_full_key(&self, escrowed: &EscrowedBit) -> Decision {
        let (mask, body) = self.unshared(escrowed);
        let key: Vec<u16> = self
            .secrets
            .glwe
            .as_ref()
            .iter()
            .map(|&s| s as u16)
            .collect();
        let dot = mask
            .iter()
            .zip(&key)
            .fold(0u16, |acc, (&a, &s)| acc.wrapping_add(a.wrapping_mul(s)));
        crate::shares::decision_of_phase(body.wrapping_sub(dot) & MODULUS_MASK)
    }

    /// An escrowed bit's (mask, body) as stored: a share of zero applied leaves it unchanged.
    pub fn unshared(&self, escrowed: &EscrowedBit) -> (Vec<u16>, u16) {
        let zero = ServerShare::new(
            ShareValues::from_values(
                escrowed.fingerprint(),
                Zeroizing::new(vec![
                    0u16;
                    self.config.params.lattice().big_lwe_dimension().0
                ]),
                &self.config,
            )
            .unwrap(),
        );
        let bit = zero.apply(escrowed).unwrap();
        let (mask, body) = bit.mask_and_body();
        (mask.to_vec(), body)
    }

    /// 1:1 decision through the whole pipeline.
    pub fn decide(&self, probe: &QuantisedEmbedding, template: &QuantisedEmbedding) -> bool {
        let escrowed = self
            .server
            .verify(&self.probe(probe), &self.template(template))
            .unwrap();
        self.open(&escrowed).is_match()
    }
}

fn make_domain(dim: u32) -> TestDomain {
    make_domain_with(domain_config(dim, 0.363).expect("valid config"))
}

fn make_domain_with(config: DomainConfig) -> TestDomain {
    let (domain, secrets) = generate_with_secrets(config).expect("key generation");
    let evaluation_key_bytes = domain.evaluation_keys.to_bytes();
    let encryptor = Encryptor::new(&domain.evaluation_keys.public_key()).unwrap();
    let (device, delta) = domain.custodian_share.issue(&config).unwrap();
    let device_server_share = domain.server_share.derive(&delta).unwrap();
    let server = ServerKeys::prepare(domain.evaluation_keys).expect("server keys");
    TestDomain {
        config,
        encryptor,
        server,
        evaluation_key_bytes,
        custodian: domain.custodian_share,
        server_reference: domain.server_share,
        device,
        device_server_share,
        secrets,
    }
}

pub(crate) fn domain128() -> &'static TestDomain {
    static DOMAIN: OnceLock<TestDomain> = OnceLock::new();
    DOMAIN.get_or_init(|| make_domain(128))
}

pub(crate) fn domain512() -> &'static TestDomain {
    static DOMAIN: OnceLock<TestDomain> = OnceLock::new();
    DOMAIN.get_or_init(|| make_domain(512))
}

/// A domain on the parameter set new domains had before the 32-bit keyswitch (wire id 1), which
/// stays readable and usable.
pub(crate) fn legacy_domain128() -> &'static TestDomain {
    static DOMAIN: OnceLock<TestDomain> = OnceLock::new();
    DOMAIN.get_or_init(|| {
        let config = DomainConfig {
            params: ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128,
            ..domain_config(128, 0.363).expect("valid config")
        };
        make_domain_with(config)
    })
}

/// A second, unrelated key domain of the same shape, for wrong-domain tests.
pub(crate) fn other_domain128() -> &'static TestDomain {
    static DOMAIN: OnceLock<TestDomain> = OnceLock::new();
    DOMAIN.get_or_init(|| make_domain(128))
}

/// Random quantised vector of a unit embedding (like a real template would be).
pub(crate) fn random_quantised<R: Rng>(rng: &mut R, config: &DomainConfig) -> QuantisedEmbedding {
    let v = crate::quantize::random_unit_vector(rng, config.dim as usize);
    crate::quantize::quantise(&v, config).expect("unit vector quantises")
}

/// Adjust `template` so that its score with `probe` is exactly `target` (tests of pairs at a
/// chosen distance from the threshold). Returns None when the coordinates cannot reach it.
pub(crate) fn with_exact_score(
    probe: &QuantisedEmbedding,
    template: &QuantisedEmbedding,
    target: i64,
) -> Option<QuantisedEmbedding> {
    let p = probe.coordinates();
    let mut t = template.coordinates().to_vec();
    let mut diff = target - probe.score(template);
    for _pass in 0..16 {
        if diff == 0 {
            break;
        }
        for i in 0..t.len() {
            let weight = i64::from(p[i]);
            if weight == 0 || diff == 0 || weight.abs() > diff.abs() {
                continue;
            }
            let step: i8 = if (diff > 0) == (weight > 0) { 1 } else { -1 };
            let next = t[i] + step;
            if (-8..=7).contains(&next) {
                t[i] = next;
                diff -= weight * i64::from(step);
            }
        }
    }
    (diff == 0).then(|| QuantisedEmbedding::from_coordinates(t).expect("in range"))
}

/// The values of a server share, read back through its sealed-export encoding.
pub(crate) fn server_share_values(share: &ServerShare) -> Vec<u16> {
    let bytes = share.export_secret();
    ShareValues::decode(
        &bytes,
        tabir_crypto::ShareKind::Server,
        &domain128().config,
        share.fingerprint(),
    )
    .unwrap()
    .values()
    .to_vec()
}
