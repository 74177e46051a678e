//! Enrol and verify in one process, without a server or a camera, with every party's part
//! spelled out: the custodian generates the keys and splits the secret, the device encrypts
//! with the public key, the "server" (evaluation keys and its share only) decides and applies
//! its share, the device opens the bit with its own share.
//!
//! Run: cargo run --release -p tabir-device-crypto --example encrypted_match

use rand::SeedableRng;
use tabir_crypto::{DomainRegistration, EvaluationKeys, ServerKeys, ShareDelta, Template};
use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_device_crypto::{domain_config, generate_key_domain, Encryptor};

fn main() -> Result<(), tabir_crypto::CryptoError> {
    // Custodian: a key domain for 128-d SFace embeddings at cosine 0.363. The secret key is
    // split into the custodian's and the server's reference shares and wiped.
    let config = domain_config(128, 0.363)?;
    let domain = generate_key_domain(config)?;
    let public_key = domain.evaluation_keys.public_key();
    println!(
        "key domain {} (theta = {})",
        public_key.fingerprint(),
        config.threshold.score
    );
    // A device is issued its own decryption share; the server gets the matching delta.
    let (device_share, delta) = domain.custodian_share.issue(&config)?;

    // Server: receives the registration (evaluation keys and its reference share) and the
    // delta as bytes, prepares the keys once, derives the device's server share.
    let registration = DomainRegistration {
        evaluation_keys: domain.evaluation_keys,
        server_share: domain.server_share,
        identify_threshold: tabir_device_crypto::identify_threshold(&config, 0.5)?,
    };
    let received = DomainRegistration::from_bytes(&registration.to_bytes())?;
    let fingerprint = received.evaluation_keys.fingerprint();
    let server_share_for_device = received.server_share.derive(&ShareDelta::from_bytes(
        &delta.to_bytes(),
        &config,
        fingerprint,
    )?)?;
    let server = ServerKeys::prepare(EvaluationKeys::from_bytes(
        &received.evaluation_keys.to_bytes(),
    )?)?;

    // Device: encrypts with the public key only.
    let device = Encryptor::new(&public_key)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let enrolled = random_unit_vector(&mut rng, 128);
    let same_person = vector_at_cosine(&mut rng, &enrolled, 0.7);
    let someone_else = vector_at_cosine(&mut rng, &enrolled, 0.05);

    // Enrolment: the template travels and is stored as bytes.
    let template_bytes = device.encrypt_template(&enrolled)?.to_bytes();
    let template = Template::from_bytes(&template_bytes, server.config(), server.fingerprint())?;

    for (label, face) in [
        ("same person", &same_person),
        ("someone else", &someone_else),
    ] {
        let probe = device.encrypt_probe(face)?;
        let escrowed = server.verify(&probe, &template)?;
        let bit = server_share_for_device.apply(&escrowed)?;
        println!(
            "{label:>12}: {:?} (probe {} B, template {} B, result {} B)",
            device_share.decrypt(&bit)?,
            probe.to_bytes().len(),
            template_bytes.len(),
            bit.to_bytes().len()
        );
    }
    Ok(())
}
