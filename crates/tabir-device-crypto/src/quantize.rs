//! From an L2-normalised float embedding to the small signed integers the circuit works on,
//! and from a cosine policy to an integer score threshold.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::fmt;
use tabir_crypto::error::{CryptoError, Result};
use tabir_crypto::params::{DomainConfig, ParamSetId, Threshold, QUANT_BITS};
use zeroize::{Zeroize, ZeroizeOnDrop};

pub use tabir_crypto::params::NORM_TOLERANCE;

/// A configuration for dimension `dim` whose threshold is the cosine policy `cosine`,
/// calibrated to a score threshold (see [`calibrate_score_threshold`]).
pub fn domain_config(dim: u32, cosine: f32) -> Result<DomainConfig> {
    let scale = DomainConfig::default_scale(dim);
    let score = calibrate_score_threshold(dim, scale, cosine)?;
    let config = DomainConfig {
        params: ParamSetId::DEFAULT,
        dim,
        quant_bits: QUANT_BITS,
        scale,
        threshold: Threshold { cosine, score },
    };
    config.validate()?;
    Ok(config)
}

/// The 1:N threshold for `config`'s domain at cosine `cosine`: calibrated like the domain's
/// own, and checked to fit the domain's plaintext scaling.
pub fn identify_threshold(config: &DomainConfig, cosine: f32) -> Result<Threshold> {
    let score = calibrate_score_threshold(config.dim, config.scale, cosine)?;
    let threshold = Threshold { cosine, score };
    config.check_threshold(&threshold)?;
    Ok(threshold)
}

const QUANT_MIN: i32 = -8;
const QUANT_MAX: i32 = 7;

/// A quantised embedding: biometric data. Wiped on drop; Debug shows only its length.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct QuantisedEmbedding(Vec<i8>);

impl QuantisedEmbedding {
    pub fn coordinates(&self) -> &[i8] {
        &self.0
    }

    pub fn dim(&self) -> usize {
        self.0.len()
    }

    /// Inner product S = sum p_i t_i, the score the encrypted circuit thresholds.
    pub fn score(&self, other: &QuantisedEmbedding) -> i64 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(&a, &b)| i64::from(a) * i64::from(b))
            .sum()
    }

    /// Build from already-quantised coordinates (tests and tools), checking the range.
    pub fn from_coordinates(coordinates: Vec<i8>) -> Result<Self> {
        if coordinates
            .iter()
            .any(|&c| !(QUANT_MIN..=QUANT_MAX).contains(&i32::from(c)))
        {
            return Err(CryptoError::InvalidEmbedding {
                reason: "quantised coordinate outside -8..=7",
            });
        }
        Ok(Self(coordinates))
    }
}

impl fmt::Debug for QuantisedEmbedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuantisedEmbedding(d={}, <redacted>)", self.0.len())
    }
}

/// q_i = clamp(round(e_i * s), -8, 7), after checking length, finiteness and unit norm.
pub fn quantise(embedding: &[f32], config: &DomainConfig) -> Result<QuantisedEmbedding> {
    let expected = config.dim as usize;
    if embedding.len() != expected {
        return Err(CryptoError::DimensionMismatch {
            expected,
            got: embedding.len(),
        });
    }
    if embedding.iter().any(|x| !x.is_finite()) {
        return Err(CryptoError::InvalidEmbedding {
            reason: "embedding contains a value that is not finite",
        });
    }
    let norm = embedding
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if (norm - 1.0).abs() > f64::from(NORM_TOLERANCE) {
        return Err(CryptoError::InvalidEmbedding {
            reason: "embedding is not L2-normalised",
        });
    }
    Ok(quantise_unchecked(embedding, config.scale))
}

fn quantise_unchecked(embedding: &[f32], scale: f32) -> QuantisedEmbedding {
    QuantisedEmbedding(
        embedding
            .iter()
            .map(|&x| ((x * scale).round() as i32).clamp(QUANT_MIN, QUANT_MAX) as i8)
            .collect(),
    )
}

/// Samples used to calibrate a threshold; the seed is fixed so that calibration is reproducible.
const CALIBRATION_PAIRS: usize = 2001;
const CALIBRATION_SEED: u64 = 0x7461_6269_725f_6361; // "tabir_ca"

/// Map a cosine policy threshold to an integer score threshold theta.
///
/// Quantisation does not preserve inner products exactly (rounding, and clipping shortens
/// vectors), so theta is not simply s^2 * cosine: it is the median quantised score of random
/// pairs of unit vectors whose cosine is exactly the policy value. A pair then matches when
/// S >= theta. The sampling is seeded, so the same (dim, scale, cosine) always gives the same
/// theta, and the custodian records it in the domain configuration.
pub fn calibrate_score_threshold(dim: u32, scale: f32, cosine: f32) -> Result<i32> {
    if dim == 0 || !cosine.is_finite() || cosine.abs() > 1.0 || !scale.is_finite() || scale <= 0.0 {
        return Err(CryptoError::InvalidConfig {
            reason: "calibration needs dim > 0, a positive scale and a cosine in [-1, 1]",
        });
    }
    let mut rng = ChaCha20Rng::seed_from_u64(CALIBRATION_SEED ^ u64::from(dim));
    let mut scores: Vec<i64> = (0..CALIBRATION_PAIRS)
        .map(|_| {
            let (a, b) = synthetic_pair(&mut rng, dim as usize, cosine);
            quantise_unchecked(&a, scale).score(&quantise_unchecked(&b, scale))
        })
        .collect();
    scores.sort_unstable();
    let median = scores[scores.len() / 2];
    i32::try_from(median).map_err(|_| CryptoError::InvalidConfig {
        reason: "calibrated threshold does not fit the score range",
    })
}

/// A random unit vector, and a second one at exactly the given cosine from it
/// (synthetic embeddings for calibration, tests and benchmarks).
pub fn synthetic_pair<R: Rng>(rng: &mut R, dim: usize, cosine: f32) -> (Vec<f32>, Vec<f32>) {
    let a = random_unit_vector(rng, dim);
    let b = vector_at_cosine(rng, &a, cosine);
    (a, b)
}

/// A random unit vector whose cosine with the unit vector `anchor` is exactly `cosine`.
pub fn vector_at_cosine<R: Rng>(rng: &mut R, anchor: &[f32], cosine: f32) -> Vec<f32> {
    // w: a random direction orthogonal to the anchor.
    let mut w = random_unit_vector(rng, anchor.len());
    let along: f32 = w.iter().zip(anchor).map(|(x, y)| x * y).sum();
    w.iter_mut().zip(anchor).for_each(|(x, y)| *x -= along * y);
    normalise(&mut w);
    let sine = (1.0 - cosine * cosine).max(0.0).sqrt();
    let mut b: Vec<f32> = anchor
        .iter()
        .zip(&w)
        .map(|(x, y)| cosine * x + sine * y)
        .collect();
    normalise(&mut b);
    b
}

/// A uniformly random unit vector.
pub fn random_unit_vector<R: Rng>(rng: &mut R, dim: usize) -> Vec<f32> {
    loop {
        let mut v: Vec<f32> = (0..dim).map(|_| standard_normal(rng)).collect();
        if normalise(&mut v) {
            return v;
        }
    }
}

/// Box-Muller; good enough for calibration and test data.
fn standard_normal<R: Rng>(rng: &mut R) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn normalise(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if norm < 1e-9 {
        return false;
    }
    v.iter_mut()
        .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(dim: u32) -> DomainConfig {
        domain_config(dim, 0.363).unwrap()
    }

    #[test]
    fn delta_matches_the_design_for_128_and_512() {
        // New domains (the KS32 set) leave room for any threshold: Delta 2^51 and 2^49.
        let c128 = config(128);
        assert_eq!(c128.delta_log().unwrap(), 51);
        assert_eq!(c128.templates_per_glwe(), 16);
        assert_eq!(config(512).delta_log().unwrap(), 49);
    }

    #[test]
    fn refuses_wrong_length_non_finite_and_unnormalised() {
        let c = config(128);
        assert!(matches!(
            quantise(&[0.0; 64], &c),
            Err(CryptoError::DimensionMismatch {
                expected: 128,
                got: 64
            })
        ));
        let mut v = vec![0.0f32; 128];
        v[0] = f32::NAN;
        assert!(matches!(
            quantise(&v, &c),
            Err(CryptoError::InvalidEmbedding { .. })
        ));
        v[0] = 2.0;
        assert!(matches!(
            quantise(&v, &c),
            Err(CryptoError::InvalidEmbedding { .. })
        ));
    }

    #[test]
    fn debug_does_not_print_coordinates() {
        let q = QuantisedEmbedding::from_coordinates(vec![7, -3, 5]).unwrap();
        let shown = format!("{q:?}");
        assert!(!shown.contains('7') && !shown.contains("-3"), "{shown}");
    }

    #[test]
    fn calibration_is_reproducible_and_monotone() {
        let s = DomainConfig::default_scale(128);
        let a = calibrate_score_threshold(128, s, 0.363).unwrap();
        assert_eq!(a, calibrate_score_threshold(128, s, 0.363).unwrap());
        let lower = calibrate_score_threshold(128, s, 0.2).unwrap();
        let higher = calibrate_score_threshold(128, s, 0.6).unwrap();
        assert!(lower < a && a < higher, "{lower} {a} {higher}");
        // Quantisation shrinks scores a little below s^2 * cosine, never above it by much.
        let ideal = (s * s * 0.363) as i32;
        assert!(a <= ideal + 5 && a > ideal / 2, "theta {a}, ideal {ideal}");
    }

    proptest! {
        #[test]
        fn quantised_norm_respects_the_bound(seed in any::<u64>(), big in any::<bool>()) {
            let dim = if big { 512 } else { 128 };
            let c = config(dim);
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let v = random_unit_vector(&mut rng, dim as usize);
            let q = quantise(&v, &c).unwrap();
            prop_assert!(q.coordinates().iter().all(|&x| (-8..=7).contains(&x)));
            prop_assert!(q.score(&q) as u64 <= c.score_bound());
        }
    }
}
