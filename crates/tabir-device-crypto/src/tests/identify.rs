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
    // A full "any match" group of 31 matches (the largest sum, 31 q/64 - q/128, must stay
    // below q/2) and 4 more in a second group.
    let matching: Vec<usize> = (0..35).collect();
    let (probe, templates) = gallery(13, 35, &matching);
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

#[test]
fn a_search_split_into_shards_gives_the_same_bit_however_it_is_split() {
    let domain = domain128();
    let (probe, templates) = gallery(16, 40, &[38]);
    let encrypted: Vec<_> = templates.iter().map(|t| domain.template(t)).collect();
    let search = domain
        .server
        .prepare_search(&domain.probe(&probe), &domain.config.threshold)
        .unwrap();
    for shard_size in [7, 16, 40] {
        let shards: Vec<_> = encrypted
            .chunks(shard_size)
            .map(|shard| domain.server.search_shard(&search, shard).unwrap())
            .collect();
        // The shards without the match say no match, the one with it says match.
        for (i, shard) in shards.iter().enumerate() {
            let alone = domain
                .server
                .combine_shards(std::slice::from_ref(shard))
                .unwrap();
            let holds_match = (i * shard_size..(i + 1) * shard_size).contains(&38);
            assert_eq!(domain.open(&alone).is_match(), holds_match, "shard {i}");
        }
        let combined = domain.server.combine_shards(&shards).unwrap();
        assert!(domain.open(&combined).is_match(), "shards of {shard_size}");
    }
    // Shards of no match combine to no match; no shard at all is no match.
    let (probe, templates) = gallery(17, 20, &[]);
    let search = domain
        .server
        .prepare_search(&domain.probe(&probe), &domain.config.threshold)
        .unwrap();
    let encrypted: Vec<_> = templates.iter().map(|t| domain.template(t)).collect();
    let shards: Vec<_> = encrypted
        .chunks(6)
        .map(|shard| domain.server.search_shard(&search, shard).unwrap())
        .collect();
    assert!(!domain
        .open(&domain.server.combine_shards(&shards).unwrap())
        .is_match());
    assert!(!domain
        .open(&domain.server.combine_shards(&[]).unwrap())
        .is_match());
}

#[test]
fn shards_and_searches_of_another_domain_are_refused() {
    let (domain, other) = (domain128(), super::other_domain128());
    let (probe, templates) = gallery(18, 3, &[]);
    let search = other
        .server
        .prepare_search(&other.probe(&probe), &other.config.threshold)
        .unwrap();
    let encrypted: Vec<_> = templates.iter().map(|t| domain.template(t)).collect();
    assert!(matches!(
        domain.server.search_shard(&search, &encrypted),
        Err(tabir_crypto::CryptoError::WrongKeyDomain { .. })
    ));
    let other_gallery: Vec<_> = templates.iter().map(|t| other.template(t)).collect();
    let foreign = other.server.search_shard(&search, &other_gallery).unwrap();
    assert!(matches!(
        domain.server.combine_shards(&[foreign]),
        Err(tabir_crypto::CryptoError::WrongKeyDomain { .. })
    ));
}

#[test]
fn a_search_decides_at_its_own_threshold() {
    // A template scoring between the 1:1 threshold and a stricter 1:N one matches 1:1 and
    // not in the search.
    let domain = domain128();
    let config = domain.config;
    let strict = crate::quantize::identify_threshold(&config, 0.5).unwrap();
    assert!(strict.score > config.threshold.score + 60);
    let band = twin::decision_band(&config) as i64;
    let between = (i64::from(config.threshold.score) + i64::from(strict.score)) / 2;
    assert!(between - band > i64::from(config.threshold.score));
    assert!(between + band < i64::from(strict.score));
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let probe = random_quantised(&mut rng, &config);
    let template = loop {
        let candidate = random_quantised(&mut rng, &config);
        if let Some(t) = with_exact_score(&probe, &candidate, between) {
            break t;
        }
    };
    assert!(
        domain.decide(&probe, &template),
        "1:1 at the domain's threshold"
    );
    let encrypted = [domain.template(&template)];
    let probe_ct = domain.probe(&probe);
    for (threshold, expected) in [(config.threshold, true), (strict, false)] {
        let search = domain.server.prepare_search(&probe_ct, &threshold).unwrap();
        let shard = domain.server.search_shard(&search, &encrypted).unwrap();
        let bit = domain.server.combine_shards(&[shard]).unwrap();
        assert_eq!(domain.open(&bit).is_match(), expected, "{threshold:?}");
    }
    // A threshold outside the score range is refused, not wrapped.
    let beyond = tabir_crypto::Threshold {
        cosine: 1.0,
        score: config.score_bound() as i32 + 1,
    };
    assert!(domain.server.prepare_search(&probe_ct, &beyond).is_err());
}
