//! Key-domain blobs: the evaluation keys a custodian registers and a custodian reads back
//! (`EvaluationKeys::from_bytes`), the domain public key a device loads
//! (`DomainPublicKey::from_bytes`, then `Encryptor::new` as the device does) and the
//! registration blob the server receives (`DomainRegistration::from_bytes`).
//!
//! Honest evaluation keys are 30 MB, so the seeds are structurally valid blobs with tiny key
//! shapes, truncated prefixes of real ones and a real public key (see fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabir_crypto::{DomainPublicKey, DomainRegistration, EvaluationKeys};
use tabir_device_crypto::Encryptor;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = EvaluationKeys::from_bytes(data) {
        let bytes = keys.to_bytes();
        let again = EvaluationKeys::from_bytes(&bytes).expect("decoded keys re-encode validly");
        assert_eq!(again.fingerprint(), keys.fingerprint());
        let _ = keys.public_key();
    }
    if let Ok(public_key) = DomainPublicKey::from_bytes(data) {
        let again = DomainPublicKey::from_bytes(&public_key.to_bytes())
            .expect("a decoded public key re-encodes validly");
        assert_eq!(again.fingerprint(), public_key.fingerprint());
        let _ = Encryptor::new(&public_key).expect("a validated public key gives an encryptor");
    }
    if let Ok(registration) = DomainRegistration::from_bytes(data) {
        let again = DomainRegistration::from_bytes(&registration.to_bytes())
            .expect("a decoded registration re-encodes validly");
        assert_eq!(
            again.evaluation_keys.fingerprint(),
            registration.evaluation_keys.fingerprint()
        );
    }
});
