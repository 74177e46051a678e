//! Every decoder refuses bad blobs with its typed error and never panics.

use super::{domain128, other_domain128, random_quantised};
use crate::ciphertexts::{EncryptedBit, IdentifyResult, Probe, Template, PROBE_LIMIT};
use crate::error::CryptoError;
use crate::evaluation_keys::EvaluationKeys;
use crate::server::CandidateBits;
use crate::ClientKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tfhe::core_crypto::commons::math::random::CompressionSeed;
use tfhe::core_crypto::prelude::*;
use tfhe_csprng::seeders::Seed;

struct Blobs {
    probe: Vec<u8>,
    template: Vec<u8>,
    bit: Vec<u8>,
    identify: Vec<u8>,
}

fn blobs() -> Blobs {
    let domain = domain128();
    let config = *domain.client.config();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let probe = domain
        .client
        .encrypt_probe_quantised(&random_quantised(&mut rng, &config))
        .unwrap();
    let template = domain
        .client
        .encrypt_template_quantised(&random_quantised(&mut rng, &config))
        .unwrap();
    let bit = domain.server.verify(&probe, &template).unwrap();
    let identify = domain
        .server
        .identify(
            &probe,
            std::slice::from_ref(&template),
            CandidateBits::Reveal,
            10,
        )
        .unwrap();
    Blobs {
        probe: probe.to_bytes(),
        template: template.to_bytes(),
        bit: bit.to_bytes(),
        identify: identify.to_bytes(),
    }
}

/// Decode `bytes` as every wire type; only the error matters, a panic fails the test.
fn decode_all(bytes: &[u8]) -> Vec<Result<(), CryptoError>> {
    let domain = domain128();
    let (config, fp) = (domain.client.config(), domain.client.fingerprint());
    vec![
        Probe::from_bytes(bytes, config, fp).map(drop),
        Template::from_bytes(bytes, config, fp).map(drop),
        EncryptedBit::from_bytes(bytes, config, fp).map(drop),
        IdentifyResult::from_bytes(bytes, config, fp, 100).map(drop),
        EvaluationKeys::from_bytes(bytes).map(drop),
        ClientKey::import_secret(bytes).map(drop),
    ]
}

#[test]
fn valid_blobs_round_trip() {
    let b = blobs();
    let domain = domain128();
    let (config, fp) = (domain.client.config(), domain.client.fingerprint());
    assert!(Probe::from_bytes(&b.probe, config, fp).is_ok());
    assert!(Template::from_bytes(&b.template, config, fp).is_ok());
    let bit = EncryptedBit::from_bytes(&b.bit, config, fp).unwrap();
    domain.client.decrypt(&bit).unwrap();
    let result = IdentifyResult::from_bytes(&b.identify, config, fp, 1).unwrap();
    assert_eq!(result.candidate_count(), 1);
}

#[test]
fn truncated_blobs_are_malformed() {
    let b = blobs();
    let domain = domain128();
    let (config, fp) = (domain.client.config(), domain.client.fingerprint());
    for cut in [0, 1, 10, 40, b.probe.len() / 2, b.probe.len() - 1] {
        let err = Probe::from_bytes(&b.probe[..cut], config, fp).unwrap_err();
        assert!(
            matches!(err, CryptoError::Malformed { kind: "probe", .. }),
            "cut {cut}: {err}"
        );
    }
    let err = Template::from_bytes(&b.template[..b.template.len() - 3], config, fp).unwrap_err();
    assert!(matches!(err, CryptoError::Malformed { .. }), "{err}");
}

#[test]
fn trailing_bytes_are_malformed() {
    let b = blobs();
    let domain = domain128();
    let mut bytes = b.template.clone();
    bytes.extend_from_slice(&[0, 1, 2]);
    let err = Template::from_bytes(&bytes, domain.client.config(), domain.client.fingerprint())
        .unwrap_err();
    assert!(matches!(err, CryptoError::Malformed { .. }), "{err}");
}

#[test]
fn oversized_blobs_are_refused_before_decoding() {
    let domain = domain128();
    let bytes = vec![0u8; PROBE_LIMIT as usize + 1];
    let err =
        Probe::from_bytes(&bytes, domain.client.config(), domain.client.fingerprint()).unwrap_err();
    assert!(
        matches!(err, CryptoError::TooLarge { kind: "probe", .. }),
        "{err}"
    );
}

#[test]
fn a_blob_of_another_type_is_wrong_type() {
    let b = blobs();
    let domain = domain128();
    let (config, fp) = (domain.client.config(), domain.client.fingerprint());
    let err = Probe::from_bytes(&b.template, config, fp).unwrap_err();
    assert!(
        matches!(&err, CryptoError::WrongType { expected: "tabir::Probe", got } if got == "tabir::Template"),
        "{err}"
    );
    let err = Template::from_bytes(&b.bit, config, fp).unwrap_err();
    assert!(matches!(err, CryptoError::WrongType { .. }), "{err}");
}

#[test]
fn a_ciphertext_of_another_domain_is_refused() {
    let b = blobs();
    let other = other_domain128();
    let (config, fp) = (other.client.config(), other.client.fingerprint());
    for err in [
        Probe::from_bytes(&b.probe, config, fp)
            .map(drop)
            .unwrap_err(),
        Template::from_bytes(&b.template, config, fp)
            .map(drop)
            .unwrap_err(),
        EncryptedBit::from_bytes(&b.bit, config, fp)
            .map(drop)
            .unwrap_err(),
    ] {
        assert!(matches!(err, CryptoError::WrongKeyDomain { .. }), "{err}");
    }
    // And the matcher refuses to mix domains even with decoded values in hand.
    let domain = domain128();
    let probe = Probe::from_bytes(
        &b.probe,
        domain.client.config(),
        domain.client.fingerprint(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let foreign = other
        .client
        .encrypt_template_quantised(&random_quantised(&mut rng, other.client.config()))
        .unwrap();
    let err = domain.server.verify(&probe, &foreign).unwrap_err();
    assert!(
        matches!(
            err,
            CryptoError::WrongKeyDomain {
                kind: "template",
                ..
            }
        ),
        "{err}"
    );
    let bit = domain
        .server
        .verify(
            &probe,
            &Template::from_bytes(
                &b.template,
                domain.client.config(),
                domain.client.fingerprint(),
            )
            .unwrap(),
        )
        .unwrap();
    assert!(matches!(
        other.client.decrypt(&bit),
        Err(CryptoError::WrongKeyDomain { .. })
    ));
}

#[test]
fn blobs_with_the_wrong_parameters_are_shape_mismatches() {
    let domain = domain128();
    let (config, fp) = (domain.client.config(), domain.client.fingerprint());
    let seed: CompressionSeed = Seed(42).into();
    let modulus = CiphertextModulus::new_native();

    // A probe with N = 1024 instead of 2048.
    let small_ggsw = SeededGgswCiphertext::new(
        0u64,
        GlweSize(2),
        PolynomialSize(1024),
        DecompositionBaseLog(23),
        DecompositionLevelCount(1),
        seed.clone(),
        modulus,
    );
    let probe = Probe {
        fingerprint: fp,
        ggsw: small_ggsw,
    };
    let err = Probe::from_bytes(&probe.to_bytes(), config, fp).unwrap_err();
    assert!(
        matches!(err, CryptoError::ShapeMismatch { kind: "probe", .. }),
        "{err}"
    );

    // A probe with another decomposition base.
    let deep_ggsw = SeededGgswCiphertext::new(
        0u64,
        GlweSize(2),
        PolynomialSize(2048),
        DecompositionBaseLog(22),
        DecompositionLevelCount(1),
        seed.clone(),
        modulus,
    );
    let probe = Probe {
        fingerprint: fp,
        ggsw: deep_ggsw,
    };
    let err = Probe::from_bytes(&probe.to_bytes(), config, fp).unwrap_err();
    assert!(matches!(err, CryptoError::ShapeMismatch { .. }), "{err}");

    // A template with k = 2.
    let wide_glwe =
        SeededGlweCiphertext::new(0u64, GlweSize(3), PolynomialSize(2048), seed, modulus);
    let template = Template {
        fingerprint: fp,
        glwe: wide_glwe,
    };
    let err = Template::from_bytes(&template.to_bytes(), config, fp).unwrap_err();
    assert!(
        matches!(
            err,
            CryptoError::ShapeMismatch {
                kind: "template",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for _ in 0..3000 {
        let len = rng.gen_range(0..600);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        assert!(decode_all(&bytes).iter().all(Result::is_err));
    }
}

#[test]
fn mutated_valid_blobs_never_panic() {
    let b = blobs();
    let mut rng = ChaCha20Rng::seed_from_u64(100);
    for original in [&b.probe, &b.template, &b.bit, &b.identify] {
        for _ in 0..150 {
            let mut bytes = original.clone();
            // Corrupt the header and length fields more often than the payload.
            let flips = rng.gen_range(1..4);
            for _ in 0..flips {
                let at = if rng.gen_bool(0.7) {
                    rng.gen_range(0..bytes.len().min(160))
                } else {
                    rng.gen_range(0..bytes.len())
                };
                bytes[at] ^= 1 << rng.gen_range(0..8);
            }
            if rng.gen_bool(0.2) {
                let cut = rng.gen_range(0..bytes.len());
                bytes.truncate(cut);
            }
            let _ = decode_all(&bytes);
        }
    }
}

#[test]
fn mutated_evaluation_keys_never_panic() {
    let bytes = &domain128().evaluation_key_bytes;
    let mut rng = ChaCha20Rng::seed_from_u64(101);
    for _ in 0..12 {
        let mut mutated = bytes.clone();
        let at = rng.gen_range(0..300);
        mutated[at] ^= 1 << rng.gen_range(0..8);
        let _ = EvaluationKeys::from_bytes(&mutated);
    }
    let err = EvaluationKeys::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, CryptoError::Malformed { .. }), "{err}");
}
