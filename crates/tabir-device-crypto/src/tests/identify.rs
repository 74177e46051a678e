//! 1:N identification across several packed GLWEs, and the any-match bit.

use super::{domain128, random_quantised, with_exact_score};
use crate::twin;
use crate::{Decision, QuantisedEmbedding};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tabir_crypto::server::CandidateBits;

/// A gallery of `size` templates whose scores with the probe are all far from the threshold;
/// the entries in `matching` score above it.
fn gallery(
    seed: u64,
    size: usize,
    matching: &[usize],
) -> (QuantisedEmbedding, Vec<QuantisedEmbedding>) {
    let config = domain128().config;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let probe = random_quantised(&mut rng, &config);
    let theta = i64::from(config.threshold.score);
    let margin = 3 * twin::decision_band(&config) as i64;
    let templates = (0..size)
        .map(|j| {
            let target = if matching.contains(&j) {
                theta + margin + j as i64
            } else {
                theta - margin - j as i64
            };
            loop {
                let candidate = random_quantised(&mut rng, &config);
                if let Some(t) = with_exact_score(&probe, &candidate, target) {
                    break t;
                }
            }
        })
        .collect();
    (probe, templates)
}

struct Outcome {
    any_match: Decision,
    candidates: Vec<Decision>,
}

fn run(
    probe: &QuantisedEmbedding,
    templates: &[QuantisedEmbedding],
    bits: CandidateBits,
) -> Outcome {
    let domain = domain128();
    let probe_ct = domain.probe(probe);
    let gallery: Vec<_> = templates.iter().map(|t| domain.template(t)).collect();
    let result = domain
        .server
        .identify(&probe_ct, &gallery, bits, 1000)
        .unwrap();
    Outcome {
        any_match: domain.open(&result.any_match),
        candidates: result
            .candidates
            .iter()
            .map(|bit| domain.open(bit))
            .collect(),
    }
}

#[test]
fn forty_templates_over_three_glwes_every_bit_correct() {
    // 40 templates: 16 + 16 + 8 per GLWE; matches in the first, middle and last chunk.
    let matching = [0, 17, 39];
    let (probe, templates) = gallery(11, 40, &matching);
    let decision = run(&probe, &templates, CandidateBits::Reveal);
    assert!(decision.any_match.is_match());
    assert_eq!(decision.candidates.len(), 40);
    for (j, got) in decision.candidates.iter().enumerate() {
        assert_eq!(got.is_match(), matching.contains(&j), "candidate {j}");
    }
}

#[test]
fn no_match_in_a_gallery_gives_no_match() {
    let (probe, templates) = gallery(12, 20, &[]);
    let decision = run(&probe, &templates, CandidateBits::Reveal);
    assert!(!decision.any_match.is_match());
    assert!(decision.candidates.iter().all(|d| !d.is_match()));
}

#[test]
fn many_matches_still_give_one_any_match_bit() {
    // More matches than one "any match" group holds (15): the OR must not wrap around.
    let matching: Vec<usize> = (0..20).collect();
    let (probe, templates) = gallery(13, 20, &matching);
    let decision = run(&probe, &templates, CandidateBits::Withhold);
    assert!(decision.any_match.is_match());
    assert!(
        decision.candidates.is_empty(),
        "withheld bits must not be returned"
    );
}

#[test]
fn empty_gallery_gives_no_match() {
    let decision = run(&gallery(14, 0, &[]).0, &[], CandidateBits::Reveal);
    assert!(!decision.any_match.is_match());
    assert!(decision.candidates.is_empty());
}

#[test]
fn gallery_over_the_limit_is_refused() {
    let domain = domain128();
    let (probe, templates) = gallery(15, 3, &[]);
    let probe_ct = domain.probe(&probe);
    let gallery: Vec<_> = templates.iter().map(|t| domain.template(t)).collect();
    let error = domain
        .server
        .identify(&probe_ct, &gallery, CandidateBits::Reveal, 2)
        .unwrap_err();
    assert!(matches!(
        error,
        tabir_crypto::CryptoError::GalleryTooLarge { got: 3, limit: 2 }
    ));
}
