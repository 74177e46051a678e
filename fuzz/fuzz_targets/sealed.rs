//! Sealed files (passphrase-sealed key files): `tabir_client::sealed::unseal`, then the
//! decoder the purpose implies (a decryption or custodian share, or a 32-byte signing key).
//! The input's first byte is a mode (see `tabir_fuzz::sealed_input`): in one mode the file is
//! given as is, in the other the target appends the SHA-256 digest itself and keeps the
//! declared Argon2id cost cheap, so mutations reach the header parser, the KDF and the AEAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tabir_client::sealed::{unseal, Passphrase};
use tabir_device_crypto::{CustodianShare, DecryptionShare};
use tabir_fuzz::{config, decode_in_its_domain, sealed_input, PASSPHRASE};

fuzz_target!(|data: &[u8]| {
    let Some(input) = sealed_input::parse(data) else {
        return;
    };
    let passphrase = Passphrase::new(PASSPHRASE.to_owned());
    let Ok(secret) = unseal(
        &input.file,
        &input.purpose,
        &passphrase,
        Path::new("fuzz.sealed"),
    ) else {
        return;
    };
    let config = config();
    match input.purpose.as_str() {
        "decryption-share" => {
            let _ = decode_in_its_domain(|d| DecryptionShare::import_secret(&secret, &config, d));
        }
        "custodian-share" => {
            let _ = decode_in_its_domain(|d| CustodianShare::import_secret(&secret, &config, d));
        }
        "signing-key" => {
            if let Ok(seed) = <[u8; 32]>::try_from(secret.as_slice()) {
                let _ = ed25519_dalek::SigningKey::from_bytes(&seed);
            }
        }
        _ => {}
    }
});
