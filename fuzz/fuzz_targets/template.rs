//! Templates as the server receives and stores them (`PUT .../subjects/{subject}`):
//! `tabir_crypto::Template::from_bytes`. A template that decodes must re-encode to a blob that
//! decodes to the same coefficients.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabir_crypto::Template;
use tabir_fuzz::{config, decode_in_its_domain};

fuzz_target!(|data: &[u8]| {
    let config = config();
    if let Ok(template) = decode_in_its_domain(|domain| Template::from_bytes(data, &config, domain))
    {
        let again = Template::from_bytes(&template.to_bytes(), &config, template.fingerprint())
            .expect("a decoded template re-encodes to a valid blob");
        assert_eq!(again.coefficients(), template.coefficients());
        assert!(Template::from_rounded(
            template.fingerprint(),
            template.coefficients().to_vec(),
            &config
        )
        .is_ok());
    }
});
