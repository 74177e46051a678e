//! Every decoder refuses bad blobs with its typed error and never panics.

use super::{domain128, other_domain128, random_quantised};
use crate::shares::{CustodianShare, DecryptionShare};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tabir_crypto::ciphertexts::{EncryptedBit, EscrowedBit, Probe, Template, PROBE_LIMIT};
use tabir_crypto::evaluation_keys::{DomainPublicKey, EvaluationKeys};
use tabir_crypto::registration::DomainRegistration;
use tabir_crypto::shares::{ServerShare, ShareDelta};
use tabir_crypto::CryptoError;

struct Blobs {
    probe: Vec<u8>,
    template: Vec<u8>,
    escrowed: Vec<u8>,
    bit: Vec<u8>,
    share: Vec<u8>,
}

fn blobs() -> Blobs {
    let domain = domain128();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let probe = domain.probe(&random_quantised(&mut rng, &domain.config));
    let template = domain.template(&random_quantised(&mut rng, &domain.config));
    let escrowed = domain.server.verify(&probe, &template).unwrap();
    Blobs {
        probe: probe.to_bytes(),
        template: template.to_bytes(),
        bit: domain.for_device(&escrowed).to_bytes(),
        escrowed: escrowed.to_bytes(),
        share: domain.device.export_secret().to_vec(),
    }
}

/// Decode `bytes` as every wire type; only the error matters, a panic fails the test.
fn decode_all(bytes: &[u8]) -> Vec<Result<(), CryptoError>> {
    let domain = domain128();
    let (config, fp) = (&domain.config, domain.encryptor.fingerprint());
    vec![
        Probe::from_bytes(bytes, config, fp).map(drop),
        Template::from_bytes(bytes, config, fp).map(drop),
        EscrowedBit::from_bytes(bytes, config, fp).map(drop),
        EncryptedBit::from_bytes(bytes, config, fp).map(drop),
        EvaluationKeys::from_bytes(bytes).map(drop),
        DomainPublicKey::from_bytes(bytes).map(drop),
        DomainRegistration::from_bytes(bytes).map(drop),
        DecryptionShare::import_secret(bytes, config, fp).map(drop),
        CustodianShare::import_secret(bytes, config, fp).map(drop),
        ServerShare::import_secret(bytes, config, fp).map(drop),
        ShareDelta::from_bytes(bytes, config, fp).map(drop),
    ]
}

#[test]
fn valid_blobs_round_trip_at_their_documented_sizes() {
    let b = blobs();
    let domain = domain128();
    let (config, fp) = (&domain.config, domain.encryptor.fingerprint());
    assert!(Probe::from_bytes(&b.probe, config, fp).is_ok());
    assert!(Template::from_bytes(&b.template, config, fp).is_ok());
    let escrowed = EscrowedBit::from_bytes(&b.escrowed, config, fp).unwrap();
    let bit = EncryptedBit::from_bytes(&b.bit, config, fp).unwrap();
    assert_eq!(domain.device.decrypt(&bit).unwrap(), domain.open(&escrowed));
    assert!(DecryptionShare::import_secret(&b.share, config, fp).is_ok());
    // docs/crypto.md: probe 48 KiB, template 11.5 KiB, result 2.5 KiB, share 2.5 KiB.
    assert!(
        b.probe.len() <= 64 * 1024 && b.probe.len() > 48 * 1024,
        "{}",
        b.probe.len()
    );
    assert!(b.template.len() <= 12 * 1024, "{}", b.template.len());
    assert!(b.bit.len() <= 3 * 1024 && b.escrowed.len() <= 3 * 1024);
    assert!(b.share.len() <= 3 * 1024);
}

#[test]
fn truncated_blobs_are_malformed() {
    let b = blobs();
    let domain = domain128();
    let (config, fp) = (&domain.config, domain.encryptor.fingerprint());
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
    let err =
        Template::from_bytes(&bytes, &domain.config, domain.encryptor.fingerprint()).unwrap_err();
    assert!(matches!(err, CryptoError::Malformed { .. }), "{err}");
}

#[test]
fn oversized_blobs_are_refused_before_decoding() {
    let domain = domain128();
    let bytes = vec![0u8; PROBE_LIMIT as usize + 1];
    let err =
        Probe::from_bytes(&bytes, &domain.config, domain.encryptor.fingerprint()).unwrap_err();
    assert!(
        matches!(err, CryptoError::TooLarge { kind: "probe", .. }),
        "{err}"
    );
}

#[test]
fn a_blob_of_another_type_is_wrong_type() {
    let b = blobs();
    let domain = domain128();
    let (config, fp) = (&domain.config, domain.encryptor.fingerprint());
    let err = Probe::from_bytes(&b.template, config, fp).unwrap_err();
    assert!(
        matches!(&err, CryptoError::WrongType { expected: "tabir::Probe/2", got } if got == "tabir::Template/2"),
        "{err}"
    );
    // An escrowed bit is not an encrypted bit, and the other way round.
    let err = EncryptedBit::from_bytes(&b.escrowed, config, fp).unwrap_err();
    assert!(matches!(err, CryptoError::WrongType { .. }), "{err}");
    let err = EscrowedBit::from_bytes(&b.bit, config, fp).unwrap_err();
    assert!(matches!(err, CryptoError::WrongType { .. }), "{err}");
}

#[test]
fn blobs_of_symmetric_key_domains_are_refused_with_their_own_error() {
    // The first version's blobs carried these names (tfhe's header, then the payload).
    let domain = domain128();
    let (config, fp) = (&domain.config, domain.encryptor.fingerprint());
    for (legacy, current) in [
        ("tabir::Template", "tabir::Template/2"),
        ("tabir::Probe", "tabir::Probe/2"),
    ] {
        let b = blobs();
        let blob = if current.contains("Template") {
            b.template
        } else {
            b.probe
        };
        let renamed = rename_header(&blob, current, legacy);
        let err = if current.contains("Template") {
            Template::from_bytes(&renamed, config, fp).map(drop)
        } else {
            Probe::from_bytes(&renamed, config, fp).map(drop)
        }
        .unwrap_err();
        assert!(
            matches!(err, CryptoError::SymmetricKeyDomain { .. }),
            "{legacy}: {err}"
        );
        assert!(err
            .to_string()
            .contains("create a new key domain and re-enrol"));
    }
    let renamed = rename_header(
        &super::legacy_domain128().evaluation_key_bytes,
        "tabir::EvaluationKeys/2",
        "tabir::EvaluationKeys",
    );
    assert!(matches!(
        EvaluationKeys::from_bytes(&renamed),
        Err(CryptoError::SymmetricKeyDomain { .. })
    ));
}

/// The blob with its type name replaced (bincode writes a length-prefixed string).
pub(super) fn rename_header(blob: &[u8], from: &str, to: &str) -> Vec<u8> {
    let mut needle = (from.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(from.as_bytes());
    let at = blob
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("the name is in the header");
    let mut out = blob[..at].to_vec();
    out.extend_from_slice(&(to.len() as u64).to_le_bytes());
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&blob[at + needle.len()..]);
    out
}

#[test]
fn a_ciphertext_of_another_domain_is_refused() {
    let b = blobs();
    let other = other_domain128();
    let (config, fp) = (&other.config, other.encryptor.fingerprint());
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
        EscrowedBit::from_bytes(&b.escrowed, config, fp)
            .map(drop)
            .unwrap_err(),
        DecryptionShare::import_secret(&b.share, config, fp)
            .map(drop)
            .unwrap_err(),
    ] {
        assert!(matches!(err, CryptoError::WrongKeyDomain { .. }), "{err}");
    }
    // And the matcher and the shares refuse to mix domains even with decoded values in hand.
    let domain = domain128();
    let probe =
        Probe::from_bytes(&b.probe, &domain.config, domain.encryptor.fingerprint()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let foreign = other.template(&random_quantised(&mut rng, &other.config));
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
    let escrowed =
        EscrowedBit::from_bytes(&b.escrowed, &domain.config, domain.encryptor.fingerprint())
            .unwrap();
    assert!(matches!(
        other.device_server_share.apply(&escrowed),
        Err(CryptoError::WrongKeyDomain { .. })
    ));
    let bit = domain.for_device(&escrowed);
    assert!(matches!(
        other.device.decrypt(&bit),
        Err(CryptoError::WrongKeyDomain { .. })
    ));
}

#[test]
fn coefficients_out_of_range_are_shape_mismatches() {
    let domain = domain128();
    let (config, fp) = (&domain.config, domain.encryptor.fingerprint());
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let template = domain.template(&random_quantised(&mut rng, config));
    let mut wide = template.coefficients().to_vec();
    wide[0] |= 1 << 40;
    assert!(matches!(
        Template::from_rounded(fp, wide, config),
        Err(CryptoError::ShapeMismatch {
            kind: "template",
            ..
        })
    ));
    let short = template.coefficients()[1..].to_vec();
    assert!(matches!(
        Template::from_rounded(fp, short, config),
        Err(CryptoError::ShapeMismatch { .. })
    ));
    let probe = domain.probe(&random_quantised(&mut rng, config));
    let mut wide = probe.coefficients().to_vec();
    wide[7] = u64::MAX;
    assert!(matches!(
        Probe::from_rounded(fp, wide, config),
        Err(CryptoError::ShapeMismatch { kind: "probe", .. })
    ));
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for _ in 0..2000 {
        let len = rng.gen_range(0..600);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        assert!(decode_all(&bytes).iter().all(Result::is_err));
    }
}

#[test]
fn mutated_valid_blobs_never_panic() {
    let b = blobs();
    let mut rng = ChaCha20Rng::seed_from_u64(100);
    for original in [&b.probe, &b.template, &b.bit, &b.escrowed, &b.share] {
        for _ in 0..100 {
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
