//! Key domains on the first parameter set (wire id 1, 64-bit keyswitch) stay readable and
//! usable now that new domains get the 32-bit keyswitch (wire id 2): their evaluation keys keep
//! their type name, their bytes and so their fingerprint, and the circuit still decides right.

use super::{domain128, legacy_domain128, random_quantised, with_exact_score};
use crate::twin;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use tabir_crypto::evaluation_keys::EvaluationKeys;
use tabir_crypto::params::{DomainConfig, ParamSetId};
use tabir_crypto::server::{CandidateBits, ServerKeys};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

/// The evaluation keys' struct exactly as the first release declared it (64-bit keyswitching
/// key, no generics): what is on disk and in databases today.
#[derive(Serialize, Deserialize, Versionize)]
#[versionize(FirstReleaseKeysVersions)]
struct FirstReleaseKeys {
    config: DomainConfig,
    bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    keyswitch_key: SeededLweKeyswitchKeyOwned<u64>,
    public_key: SeededGlweCiphertextOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
enum FirstReleaseKeysVersions {
    V0(FirstReleaseKeys),
}

impl Named for FirstReleaseKeys {
    const NAME: &'static str = "tabir::EvaluationKeys/2";
}

#[test]
fn first_release_key_bytes_decode_and_re_encode_to_the_same_bytes() {
    let domain = legacy_domain128();
    assert_eq!(
        domain.config.params,
        ParamSetId::TfheV1_8Msg2Carry2KsPbsTUniform2M128
    );
    // Decode the keys with the first release's struct: the bytes are that struct's bytes.
    let old: FirstReleaseKeys = tfhe::safe_serialization::safe_deserialize(
        &mut domain.evaluation_key_bytes.as_slice(),
        1 << 26,
    )
    .expect("the first release's struct reads today's 64-bit keys");
    let mut written_by_first_release = Vec::new();
    tfhe::safe_serialization::safe_serialize(&old, &mut written_by_first_release, 1 << 26).unwrap();
    assert_eq!(written_by_first_release, domain.evaluation_key_bytes);
    // And today's code reads those bytes back to the same fingerprint.
    let keys = EvaluationKeys::from_bytes(&written_by_first_release).unwrap();
    assert_eq!(keys.to_bytes(), written_by_first_release);
    assert_eq!(keys.fingerprint(), domain.encryptor.fingerprint());
}

#[test]
fn first_release_domains_still_decide_and_identify() {
    let domain = legacy_domain128();
    let config = domain.config;
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let theta = i64::from(config.threshold.score);
    let margin = 2 * twin::decision_band(&config) as i64;
    let probe = random_quantised(&mut rng, &config);
    let mut checked = 0;
    while checked < 6 {
        let above = checked % 2 == 0;
        let target = if above {
            theta + margin
        } else {
            theta - margin
        };
        let candidate = random_quantised(&mut rng, &config);
        let Some(template) = with_exact_score(&probe, &candidate, target) else {
            continue;
        };
        assert_eq!(domain.decide(&probe, &template), above, "score {target}");
        checked += 1;
    }
    // 1:N over two any-match groups with one match.
    let mut gallery = Vec::new();
    let mut matching = None;
    while gallery.len() < 40 {
        let target = if gallery.len() == 33 {
            theta + margin
        } else {
            theta - margin
        };
        let candidate = random_quantised(&mut rng, &config);
        if let Some(template) = with_exact_score(&probe, &candidate, target) {
            if target > theta {
                matching = Some(gallery.len());
            }
            gallery.push(domain.template(&template));
        }
    }
    let result = domain
        .server
        .identify(&domain.probe(&probe), &gallery, CandidateBits::Reveal, 100)
        .unwrap();
    assert!(domain.open(&result.any_match).is_match());
    for (j, bit) in result.candidates.iter().enumerate() {
        assert_eq!(domain.open(bit).is_match(), Some(j) == matching, "{j}");
    }
}

#[test]
fn a_key_blob_whose_name_lies_about_its_keyswitch_is_refused() {
    // 32-bit keys renamed to the 64-bit form's type: refused with a typed error, no panic.
    let ks32 = &domain128().evaluation_key_bytes;
    let renamed = super::wire::rename_header(
        ks32,
        "tabir::EvaluationKeysKs32/1",
        "tabir::EvaluationKeys/2",
    );
    assert!(EvaluationKeys::from_bytes(&renamed).is_err());
    // A 64-bit key blob whose configuration is edited to claim the 32-bit set.
    let legacy = legacy_domain128();
    let keys = EvaluationKeys::from_bytes(&legacy.evaluation_key_bytes).unwrap();
    assert!(matches!(
        keys.config().params.lattice().keyswitch,
        tabir_crypto::params::KeyswitchKind::Native64 { .. }
    ));
    let mut old: FirstReleaseKeys = tfhe::safe_serialization::safe_deserialize(
        &mut legacy.evaluation_key_bytes.as_slice(),
        1 << 26,
    )
    .unwrap();
    old.config.params = ParamSetId::TfheV1_8Msg2Carry2Ks32PbsTUniform2M128;
    let mut lying = Vec::new();
    tfhe::safe_serialization::safe_serialize(&old, &mut lying, 1 << 26).unwrap();
    let error = EvaluationKeys::from_bytes(&lying).unwrap_err();
    assert!(
        error.to_string().contains("scalar width"),
        "unexpected error: {error}"
    );
}

#[test]
fn both_forms_prepare_to_keys_of_the_expected_size() {
    let ks32 =
        ServerKeys::prepare(EvaluationKeys::from_bytes(&domain128().evaluation_key_bytes).unwrap())
            .unwrap();
    let ks64 = ServerKeys::prepare(
        EvaluationKeys::from_bytes(&legacy_domain128().evaluation_key_bytes).unwrap(),
    )
    .unwrap();
    // The 32-bit keyswitching key is half the 64-bit one (2048 x 4 x 919 words).
    let keyswitch_words = 2048 * 4 * 919;
    assert_eq!(
        ks64.memory_bytes() - ks32.memory_bytes(),
        keyswitch_words * 4
    );
}
