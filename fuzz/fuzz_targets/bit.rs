//! Encrypted decision bits: what a device receives for a verification or an identification
//! (identification results are encrypted bits too; there is no separate result type) and an
//! auditor for a re-share (`tabir_crypto::EncryptedBit::from_bytes`), and the escrowed bits
//! the server reads back from its store (`tabir_crypto::EscrowedBit::from_bytes`).
//!
//! A bit that decodes is then used as its receiver uses it: an escrowed bit gets a server
//! share applied, an encrypted bit is opened with a decryption share.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabir_crypto::{EncryptedBit, EscrowedBit, ServerShare, ShareKind, ShareValues};
use tabir_device_crypto::DecryptionShare;
use tabir_fuzz::{config, decode_in_its_domain};
use zeroize::Zeroizing;

fn share_values(bit_domain: tabir_crypto::KeyFingerprint) -> ShareValues {
    let count = config().params.lattice().big_lwe_dimension().0;
    let values = (0..count).map(|i| (i * 37 % 1024) as u16).collect();
    ShareValues::from_values(bit_domain, Zeroizing::new(values), &config())
        .expect("a share of the right length")
}

fuzz_target!(|data: &[u8]| {
    let config = config();
    if let Ok(bit) = decode_in_its_domain(|domain| EncryptedBit::from_bytes(data, &config, domain))
    {
        let again = EncryptedBit::from_bytes(&bit.to_bytes(), &config, bit.fingerprint())
            .expect("a decoded bit re-encodes to a valid blob");
        assert_eq!(again.mask_and_body(), bit.mask_and_body());
        let values = share_values(bit.fingerprint());
        let share = DecryptionShare::import_secret(
            &values.encode(ShareKind::Decryption),
            &config,
            bit.fingerprint(),
        )
        .expect("an encoded share imports");
        let _ = share.decrypt(&bit).expect("same domain");
    }
    if let Ok(bit) = decode_in_its_domain(|domain| EscrowedBit::from_bytes(data, &config, domain)) {
        let encoded = bit.to_bytes();
        let again = EscrowedBit::from_bytes(&encoded, &config, bit.fingerprint())
            .expect("a decoded bit re-encodes to a valid blob");
        assert_eq!(again.to_bytes(), encoded);
        let server = ServerShare::new(share_values(bit.fingerprint()));
        let applied = server.apply(&bit).expect("same domain");
        assert!(EncryptedBit::from_bytes(&applied.to_bytes(), &config, bit.fingerprint()).is_ok());
    }
});
