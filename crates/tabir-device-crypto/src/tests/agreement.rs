//! The encrypted decision equals the plaintext twin outside the documented band.

use super::{domain128, domain512, random_quantised, with_exact_score, TestDomain};
use crate::quantize::{quantise, synthetic_pair};
use crate::twin;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn encrypted_decision(
    domain: &TestDomain,
    probe: &crate::QuantisedEmbedding,
    template: &crate::QuantisedEmbedding,
) -> bool {
    domain.decide(probe, template)
}

fn check_pair(domain: &TestDomain, seed: u64, cosine: f32) -> Result<(), TestCaseError> {
    let config = domain.config;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (a, b) = synthetic_pair(&mut rng, config.dim as usize, cosine);
    let (template, probe) = (
        quantise(&a, &config).unwrap(),
        quantise(&b, &config).unwrap(),
    );
    let expected = twin::plaintext_match(&config, &probe, &template);
    let got = encrypted_decision(domain, &probe, &template);
    if twin::distance_from_boundary(&config, &probe, &template) > twin::decision_band(&config) {
        prop_assert_eq!(got, expected, "score {}", probe.score(&template));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_and_correlated_pairs_d128(seed in any::<u64>(), cosine in prop_oneof![
        -0.2f32..0.2,   // impostor-like
        0.45f32..0.8,   // genuine-like
        0.25f32..0.5,   // around the threshold
    ]) {
        check_pair(domain128(), seed, cosine)?;
    }

    #[test]
    fn pairs_just_outside_the_band_d128(seed in any::<u64>(), above in any::<bool>(), extra in 1i64..12) {
        let domain = domain128();
        let config = domain.config;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let probe = random_quantised(&mut rng, &config);
        let template = random_quantised(&mut rng, &config);
        let band = twin::decision_band(&config).ceil() as i64;
        let theta = i64::from(config.threshold.score);
        // S >= theta matches: theta + band is a match, theta - 1 - band is not.
        let target = if above { theta + band + extra } else { theta - 1 - band - extra };
        if let Some(template) = with_exact_score(&probe, &template, target) {
            prop_assert_eq!(encrypted_decision(domain, &probe, &template), above);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_and_correlated_pairs_d512(seed in any::<u64>(), cosine in prop_oneof![
        -0.2f32..0.2,
        0.45f32..0.8,
        0.25f32..0.5,
    ]) {
        check_pair(domain512(), seed, cosine)?;
    }
}

#[test]
fn extreme_scores_do_not_wrap() {
    // The largest possible honest scores, both signs: identical and opposite vectors.
    let domain = domain128();
    let config = domain.config;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let v = crate::quantize::random_unit_vector(&mut rng, config.dim as usize);
    let neg: Vec<f32> = v.iter().map(|x| -x).collect();
    let q = quantise(&v, &config).unwrap();
    let q_neg = quantise(&neg, &config).unwrap();
    assert!(encrypted_decision(domain, &q, &q));
    assert!(!encrypted_decision(domain, &q, &q_neg));
}
