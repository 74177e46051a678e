//! Key domains: serialization round trips, fingerprints, secret hygiene.

use super::{domain128, random_quantised};
use crate::client::ClientKey;
use crate::evaluation_keys::EvaluationKeys;
use crate::server::ServerKeys;
use crate::twin;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn evaluation_keys_round_trip_with_a_stable_fingerprint() {
    let domain = domain128();
    let keys = EvaluationKeys::from_bytes(&domain.evaluation_key_bytes).unwrap();
    assert_eq!(keys.fingerprint(), domain.client.fingerprint());
    assert_eq!(
        keys.to_bytes(),
        domain.evaluation_key_bytes,
        "serialization is canonical"
    );
    assert_eq!(keys.config(), domain.client.config());

    // Keys prepared from the decoded bytes evaluate correctly.
    let server = ServerKeys::prepare(keys).unwrap();
    assert_eq!(server.fingerprint(), domain.client.fingerprint());
    let config = *domain.client.config();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let probe = random_quantised(&mut rng, &config);
    let template = probe.clone();
    let bit = server
        .verify(
            &domain.client.encrypt_probe_quantised(&probe).unwrap(),
            &domain.client.encrypt_template_quantised(&template).unwrap(),
        )
        .unwrap();
    assert!(domain.client.decrypt(&bit).unwrap().is_match());
    assert!(twin::plaintext_match(&config, &probe, &template));
}

#[test]
fn secret_key_export_round_trips() {
    let domain = domain128();
    let exported = domain.client.export_secret();
    let imported = ClientKey::import_secret(exported.expose()).unwrap();
    assert_eq!(imported.fingerprint(), domain.client.fingerprint());
    assert_eq!(imported.config(), domain.client.config());

    // The imported key decrypts what the original's domain produces.
    let config = *domain.client.config();
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let v = random_quantised(&mut rng, &config);
    let bit = domain
        .server
        .verify(
            &imported.encrypt_probe_quantised(&v).unwrap(),
            &domain.client.encrypt_template_quantised(&v).unwrap(),
        )
        .unwrap();
    assert!(imported.decrypt(&bit).unwrap().is_match());
}

#[test]
fn secret_import_refuses_tampered_shapes() {
    let domain = domain128();
    let exported = domain.client.export_secret();
    let bytes = exported.expose();
    assert!(ClientKey::import_secret(&bytes[..bytes.len() - 8]).is_err());
    let mut non_binary = bytes.to_vec();
    let last = non_binary.len() - 1;
    non_binary[last] = 5; // a key coefficient that is not 0 or 1
    assert!(ClientKey::import_secret(&non_binary).is_err());
}

#[test]
fn debug_output_carries_no_key_material() {
    let domain = domain128();
    let shown = format!("{:?}", domain.client);
    assert!(shown.contains("<secret>"), "{shown}");
    assert!(shown.len() < 120, "Debug must not dump the key: {shown}");
    let exported = format!("{:?}", domain.client.export_secret());
    assert!(
        exported.contains("<secret>") && exported.len() < 80,
        "{exported}"
    );
    let server = format!("{:?}", domain.server);
    assert!(server.len() < 120, "{server}");
}
