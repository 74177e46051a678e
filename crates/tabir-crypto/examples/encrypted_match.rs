//! Enrol and verify in one process, without a server or a camera: the device side encrypts,
//! the "server" side (holding only evaluation keys) decides, the device decrypts the bit.
//!
//! Run: cargo run --release -p tabir-crypto --example encrypted_match

use rand::SeedableRng;
use tabir_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_crypto::{generate_key_domain, DomainConfig, EvaluationKeys, ServerKeys, Template};

fn main() -> Result<(), tabir_crypto::CryptoError> {
    // The custodian creates a key domain for 128-d SFace embeddings at cosine 0.363.
    let config = DomainConfig::with_cosine_threshold(128, 0.363)?;
    let (client, evaluation_keys) = generate_key_domain(config)?;
    println!(
        "key domain {} (theta = {})",
        client.fingerprint(),
        config.threshold.score
    );

    // The server receives the evaluation keys as bytes and prepares them once.
    let server = ServerKeys::prepare(EvaluationKeys::from_bytes(&evaluation_keys.to_bytes())?)?;

    // Stand-ins for SFace embeddings: an enrolled face, the same person again, someone else.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let enrolled = random_unit_vector(&mut rng, 128);
    let same_person = vector_at_cosine(&mut rng, &enrolled, 0.7);
    let someone_else = vector_at_cosine(&mut rng, &enrolled, 0.05);

    // Enrolment: the template travels and is stored as bytes.
    let template_bytes = client.encrypt_template(&enrolled)?.to_bytes();
    let template = Template::from_bytes(&template_bytes, server.config(), server.fingerprint())?;

    for (label, face) in [
        ("same person", &same_person),
        ("someone else", &someone_else),
    ] {
        let probe = client.encrypt_probe(face)?;
        let bit = server.verify(&probe, &template)?;
        println!(
            "{label:>12}: {:?} (probe {} B, result {} B)",
            client.decrypt(&bit)?,
            probe.to_bytes().len(),
            bit.to_bytes().len()
        );
    }
    Ok(())
}
