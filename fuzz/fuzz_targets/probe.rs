//! Probes as the server receives them (`POST .../verifications`, `.../identifications`):
//! `tabir_crypto::Probe::from_bytes`. A probe that decodes must re-encode to a blob that
//! decodes to the same coefficients.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabir_crypto::Probe;
use tabir_fuzz::{config, decode_in_its_domain};

fuzz_target!(|data: &[u8]| {
    let config = config();
    if let Ok(probe) = decode_in_its_domain(|domain| Probe::from_bytes(data, &config, domain)) {
        let again = Probe::from_bytes(&probe.to_bytes(), &config, probe.fingerprint())
            .expect("a decoded probe re-encodes to a valid blob");
        assert_eq!(again.coefficients(), probe.coefficients());
        assert!(
            Probe::from_rounded(probe.fingerprint(), probe.coefficients().to_vec(), &config)
                .is_ok()
        );
    }
});
