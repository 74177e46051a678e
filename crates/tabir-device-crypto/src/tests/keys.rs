//! Key domains: serialization round trips, fingerprints, the public key, share encodings,
//! secret hygiene.

use super::{domain128, random_quantised};
use crate::encrypt::Encryptor;
use crate::shares::{CustodianShare, DecryptionShare};
use crate::twin;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tabir_crypto::evaluation_keys::{DomainPublicKey, EvaluationKeys};
use tabir_crypto::registration::DomainRegistration;
use tabir_crypto::server::ServerKeys;
use tabir_crypto::shares::{ServerShare, ShareDelta};
use tabir_crypto::CryptoError;

#[test]
fn evaluation_keys_round_trip_with_a_stable_fingerprint() {
    let domain = domain128();
    let keys = EvaluationKeys::from_bytes(&domain.evaluation_key_bytes).unwrap();
    assert_eq!(keys.fingerprint(), domain.encryptor.fingerprint());
    assert_eq!(
        keys.to_bytes(),
        domain.evaluation_key_bytes,
        "serialization is canonical"
    );
    assert_eq!(keys.config(), &domain.config);

    // Keys prepared from the decoded bytes evaluate correctly, with a public key decoded from
    // its own blob.
    let public_key = DomainPublicKey::from_bytes(&keys.public_key().to_bytes()).unwrap();
    assert_eq!(public_key.fingerprint(), keys.fingerprint());
    let encryptor = Encryptor::new(&public_key).unwrap();
    let server = ServerKeys::prepare(keys).unwrap();
    assert_eq!(server.fingerprint(), domain.encryptor.fingerprint());
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let v = random_quantised(&mut rng, &domain.config);
    let bit = server
        .verify(
            &encryptor.encrypt_probe_quantised(&v).unwrap(),
            &encryptor.encrypt_template_quantised(&v).unwrap(),
        )
        .unwrap();
    assert!(domain.open(&bit).is_match());
    assert!(twin::plaintext_match(&domain.config, &v, &v));
}

#[test]
fn the_public_key_is_small_and_checked() {
    let domain = domain128();
    let keys = EvaluationKeys::from_bytes(&domain.evaluation_key_bytes).unwrap();
    let bytes = keys.public_key().to_bytes();
    assert!(bytes.len() < 17 * 1024, "public key {} bytes", bytes.len());
    assert!(DomainPublicKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(matches!(
        DomainPublicKey::from_bytes(&domain.evaluation_key_bytes),
        Err(CryptoError::TooLarge { .. } | CryptoError::WrongType { .. })
    ));
}

#[test]
fn shares_round_trip_through_their_sealed_encodings() {
    let domain = domain128();
    let (config, fp) = (domain.config, domain.encryptor.fingerprint());
    let device =
        DecryptionShare::import_secret(&domain.device.export_secret(), &config, fp).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let v = random_quantised(&mut rng, &config);
    let escrowed = domain
        .server
        .verify(&domain.probe(&v), &domain.template(&v))
        .unwrap();
    assert!(device
        .decrypt(&domain.for_device(&escrowed))
        .unwrap()
        .is_match());

    let custodian =
        CustodianShare::import_secret(&domain.custodian.export_secret(), &config, fp).unwrap();
    assert_eq!(custodian.values(), domain.custodian.values());
    let server =
        ServerShare::import_secret(&domain.device_server_share.export_secret(), &config, fp)
            .unwrap();
    assert!(domain
        .device
        .decrypt(&server.apply(&escrowed).unwrap())
        .unwrap()
        .is_match());

    // One kind of share cannot be read as another.
    let err = ServerShare::import_secret(&domain.device.export_secret(), &config, fp).unwrap_err();
    assert!(matches!(err, CryptoError::InvalidShare { .. }), "{err}");
    // Nor for another domain.
    let other = super::other_domain128();
    let err = DecryptionShare::import_secret(
        &domain.device.export_secret(),
        &config,
        other.encryptor.fingerprint(),
    )
    .unwrap_err();
    assert!(matches!(err, CryptoError::WrongKeyDomain { .. }), "{err}");
}

#[test]
fn a_registration_carries_the_keys_and_the_server_share() {
    let domain = domain128();
    let keys = EvaluationKeys::from_bytes(&domain.evaluation_key_bytes).unwrap();
    let share = ServerShare::import_secret(
        &domain.server_reference.export_secret(),
        &domain.config,
        keys.fingerprint(),
    )
    .unwrap();
    let registration = DomainRegistration {
        evaluation_keys: keys,
        server_share: share,
        identify_threshold: crate::quantize::identify_threshold(&domain.config, 0.5).unwrap(),
    };
    let bytes = registration.to_bytes();
    let decoded = DomainRegistration::from_bytes(&bytes).unwrap();
    assert_eq!(
        decoded.evaluation_keys.to_bytes(),
        domain.evaluation_key_bytes
    );
    // The decoded reference share derives the same device share as the original.
    let (device, delta) = domain.custodian.issue(&domain.config).unwrap();
    let delta = ShareDelta::from_bytes(
        &delta.to_bytes(),
        &domain.config,
        decoded.server_share.fingerprint(),
    )
    .unwrap();
    let device_server = decoded.server_share.derive(&delta).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let v = random_quantised(&mut rng, &domain.config);
    let escrowed = domain
        .server
        .verify(&domain.probe(&v), &domain.template(&v))
        .unwrap();
    assert!(device
        .decrypt(&device_server.apply(&escrowed).unwrap())
        .unwrap()
        .is_match());
    assert!(DomainRegistration::from_bytes(&bytes[..bytes.len() - 10]).is_err());
}

#[test]
fn debug_output_carries_no_key_material() {
    let domain = domain128();
    for shown in [
        format!("{:?}", domain.device),
        format!("{:?}", domain.custodian),
        format!("{:?}", domain.server_reference),
        format!("{:?}", domain.encryptor),
        format!("{:?}", domain.server),
    ] {
        assert!(shown.len() < 140, "Debug must not dump a key: {shown}");
    }
    let shown = format!("{:?}", domain.device);
    assert!(shown.contains("<secret>"), "{shown}");
}
