//! Key shares, every kind: the server share in a domain registration or sealed at rest
//! (`ServerShare::import_secret`), the share delta of a device registration
//! (`ShareDelta::from_bytes`), a device's or auditor's decryption share and the custodian's
//! reference share read from their sealed files (`DecryptionShare::import_secret`,
//! `CustodianShare::import_secret` in tabir-device-crypto), and `ShareValues::decode` for each
//! `ShareKind`. A share that decodes must re-encode to a blob that decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabir_crypto::{ServerShare, ShareDelta, ShareKind, ShareValues};
use tabir_device_crypto::{CustodianShare, DecryptionShare};
use tabir_fuzz::{config, decode_in_its_domain};

fuzz_target!(|data: &[u8]| {
    let config = config();
    if let Ok(share) = decode_in_its_domain(|d| ServerShare::import_secret(data, &config, d)) {
        let bytes = share.export_secret();
        assert!(ServerShare::import_secret(&bytes, &config, share.fingerprint()).is_ok());
        if let Ok(delta) = ShareDelta::from_bytes(data, &config, share.fingerprint()) {
            let _ = share.derive(&delta);
        }
    }
    if let Ok(delta) = decode_in_its_domain(|d| ShareDelta::from_bytes(data, &config, d)) {
        let values =
            decode_in_its_domain(|d| ShareValues::decode(data, ShareKind::Delta, &config, d))
                .expect("a blob that decodes as a delta decodes as delta values");
        assert!(ShareDelta::from_bytes(&delta.to_bytes(), &config, values.fingerprint()).is_ok());
    }
    if let Ok(share) = decode_in_its_domain(|d| DecryptionShare::import_secret(data, &config, d)) {
        let bytes = share.export_secret();
        assert!(DecryptionShare::import_secret(&bytes, &config, share.fingerprint()).is_ok());
    }
    if let Ok(share) = decode_in_its_domain(|d| CustodianShare::import_secret(data, &config, d)) {
        let bytes = share.export_secret();
        assert!(CustodianShare::import_secret(&bytes, &config, share.fingerprint()).is_ok());
        let _ = share.issue(&config).expect("issuing from a valid share");
    }
    for kind in [
        ShareKind::Server,
        ShareKind::Delta,
        ShareKind::Decryption,
        ShareKind::CustodianReference,
    ] {
        if let Ok(values) = decode_in_its_domain(|d| ShareValues::decode(data, kind, &config, d)) {
            let again =
                ShareValues::decode(&values.encode(kind), kind, &config, values.fingerprint())
                    .expect("a decoded share re-encodes to a valid blob");
            assert_eq!(again.values(), values.values());
        }
    }
});
