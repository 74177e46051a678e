//! Enrol and verify in one process, without a server: the face pipeline on the bundled
//! photos, a fresh key domain, the encrypted 1:1 match evaluated on evaluation keys only, and
//! the decrypted bit.
//!
//! Run: `cargo run -p tabir-client --example local_match` (after `scripts/setup-ort.sh`).

use std::path::Path;
use tabir_crypto::ciphertexts::EncryptedBit;
use tabir_crypto::client::generate_key_domain;
use tabir_crypto::params::DomainConfig;
use tabir_crypto::server::ServerKeys;
use tabir_face::{FacePipeline, DEFAULT_COSINE_THRESHOLD};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/images");
    let face = FacePipeline::load(&Default::default())?;
    let embed = |name: &str| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let bytes = std::fs::read(photos.join(name))?;
        Ok(face.embed_photo(&bytes)?.embedding.as_slice().to_vec())
    };

    // The custodian's side: one key domain. The secret key stays here.
    let config = DomainConfig::with_cosine_threshold(128, DEFAULT_COSINE_THRESHOLD)?;
    let (client_key, evaluation_keys) = generate_key_domain(config)?;
    // The server's side: evaluation keys only.
    let server = ServerKeys::prepare(evaluation_keys)?;

    let template = client_key.encrypt_template(&embed("obama.jpg")?)?;
    println!(
        "enrolled obama.jpg: {} bytes of encrypted template",
        template.to_bytes().len()
    );
    for (photo, expected) in [("obama2.jpg", true), ("biden.jpg", false)] {
        let probe = client_key.encrypt_probe(&embed(photo)?)?;
        // What travels: the probe to the server, the encrypted bit back (as bytes, checked).
        let bit_bytes = server.verify(&probe, &template)?.to_bytes();
        let bit =
            EncryptedBit::from_bytes(&bit_bytes, client_key.config(), client_key.fingerprint())?;
        let decision = client_key.decrypt(&bit)?;
        println!(
            "{photo}: {} ({} bytes sent, {} bytes back)",
            if decision.is_match() {
                "match"
            } else {
                "no match"
            },
            probe.to_bytes().len(),
            bit_bytes.len()
        );
        if decision.is_match() != expected {
            return Err(format!("{photo}: unexpected decision").into());
        }
    }
    Ok(())
}
