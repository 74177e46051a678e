//! Enrol and verify in one process, without a server: the face pipeline on the bundled
//! photos, a fresh key domain split into shares, public-key encryption on the "device", the
//! encrypted 1:1 match evaluated with evaluation keys only, the server's share applied, and
//! the device opening the bit with its own share.
//!
//! Run: `cargo run -p tabir-client --example local_match` (after `scripts/setup-ort.sh`).

use std::path::Path;
use tabir_crypto::ciphertexts::EncryptedBit;
use tabir_crypto::server::ServerKeys;
use tabir_device_crypto::{domain_config, generate_key_domain, Encryptor};
use tabir_face::{FacePipeline, DEFAULT_COSINE_THRESHOLD};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/images");
    let face = FacePipeline::load(&Default::default())?;
    let embed = |name: &str| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let bytes = std::fs::read(photos.join(name))?;
        Ok(face.embed_photo(&bytes)?.embedding.as_slice().to_vec())
    };

    // The custodian: one key domain; its secret is split and wiped. A device is issued a share.
    let config = domain_config(128, DEFAULT_COSINE_THRESHOLD)?;
    let domain = generate_key_domain(config)?;
    let (device_share, delta) = domain.custodian_share.issue(&config)?;
    let device = Encryptor::new(&domain.evaluation_keys.public_key())?;
    // The server: evaluation keys, and its half of the device's share pair.
    let server_share = domain.server_share.derive(&delta)?;
    let server = ServerKeys::prepare(domain.evaluation_keys)?;

    let template = device.encrypt_template(&embed("obama.jpg")?)?;
    println!(
        "enrolled obama.jpg: {} bytes of encrypted template",
        template.to_bytes().len()
    );
    for (photo, expected) in [("obama2.jpg", true), ("biden.jpg", false)] {
        let probe = device.encrypt_probe(&embed(photo)?)?;
        // What travels: the probe to the server, the encrypted bit back (as bytes, checked).
        let bit_bytes = server_share
            .apply(&server.verify(&probe, &template)?)?
            .to_bytes();
        let bit = EncryptedBit::from_bytes(&bit_bytes, device.config(), device.fingerprint())?;
        let decision = device_share.decrypt(&bit)?;
        println!(
            "{photo}: {} ({} bytes sent, {} bytes back)",
            decision.name().replace('_', " "),
            probe.to_bytes().len(),
            bit_bytes.len()
        );
        if decision.is_match() != expected {
            return Err(format!("{photo}: unexpected decision").into());
        }
    }
    Ok(())
}
