//! Request headers and signatures as the server's authentication reads them
//! (tabir-server/src/auth.rs): the `x-tabir-*` headers, one per line (see
//! `tabir_fuzz::RequestInput`), become a `RequestSignature` (the timestamp parsed as the
//! server parses it), which is checked as the server checks it (`nonce_is_well_formed`, the
//! key id's length, `is_fresh`, `is_valid_for` against a fixed device key, `body_matches` with
//! the body's digest). Every header value also goes through the protocol's other text decoders
//! (`hex::decode_vec`, `hex::decode`, `parse_public_key`, `SubjectId::parse`,
//! `SubjectTag::parse`, `digest_is_well_formed`, `KeyFingerprint::from_hex`,
//! `ErrorCode::from_name`, `domain_name_is_valid`). A request signed over the same fields must
//! verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tabir_crypto::KeyFingerprint;
use tabir_fuzz::{device_signing_key, RequestInput, NOW};
use tabir_proto::signing::{self, RequestSignature};
use tabir_proto::{hex, routes, ErrorCode, SubjectId, SubjectTag};

fn text_decoders(text: &str) {
    if let Some(bytes) = hex::decode_vec(text) {
        assert_eq!(hex::encode(&bytes), text.to_ascii_lowercase());
    }
    let _ = hex::decode::<32>(text);
    let _ = hex::decode::<64>(text);
    let _ = signing::parse_public_key(text);
    if let Ok(id) = SubjectId::parse(text) {
        let _ = format!("{id} {id:?}");
    }
    if let Some(tag) = SubjectTag::parse(text) {
        let _ = format!("{tag} {tag:?}");
    }
    let _ = signing::digest_is_well_formed(text);
    let _ = signing::is_token_hex(text);
    let _ = KeyFingerprint::from_hex(text);
    let _ = ErrorCode::from_name(text);
    let _ = routes::domain_name_is_valid(text);
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = RequestInput::parse(data) else {
        return;
    };
    for text in [
        input.method,
        input.path,
        input.key_id,
        input.timestamp,
        input.nonce,
        input.content_sha256,
        input.signature,
    ]
    .into_iter()
    .chain(input.request_id)
    {
        text_decoders(text);
    }
    // The server refuses a timestamp that is not a u64 before it builds the signature.
    let Ok(timestamp) = input.timestamp.parse::<u64>() else {
        return;
    };
    let signature = RequestSignature {
        key_id: input.key_id.to_owned(),
        timestamp,
        nonce: input.nonce.to_owned(),
        content_sha256: input.content_sha256.to_owned(),
        request_id: input.request_id.map(str::to_owned),
        signature: input.signature.to_owned(),
    };
    let _ = signature.key_id.len() == 64 && signing::nonce_is_well_formed(&signature.nonce);
    let _ = signing::is_fresh(signature.timestamp, NOW);
    let _ = signing::is_fresh(signature.timestamp, 0);
    let _ = signing::is_fresh(signature.timestamp, u64::MAX);
    let key = device_signing_key();
    let public = key.verifying_key();
    let _ = signature.is_valid_for(&public, input.method, input.path);
    let digest: [u8; 32] = Sha256::digest(input.body).into();
    let _ = signature.body_matches(&digest);
    let _ = signature.headers();

    let signed = RequestSignature::sign(
        &key,
        input.method,
        input.path,
        input.body,
        timestamp,
        input.nonce.to_owned(),
        input.request_id.map(str::to_owned),
    );
    assert!(signed.body_matches(&digest));
    if input.request_id.is_none_or(signing::is_token_hex) {
        assert!(
            signed.is_valid_for(&public, input.method, input.path),
            "a request signed over these fields does not verify"
        );
    }
});
