//! The plaintext twin of the matcher: the same decision computed in the clear from the
//! quantised vectors. For tests and the agreement benchmark only; a deployment never has both
//! vectors in the clear in one place.

use crate::quantize::QuantisedEmbedding;
use tabir_crypto::params::DomainConfig;

/// Twin of one encrypted decision: S >= theta.
pub fn plaintext_match(
    config: &DomainConfig,
    probe: &QuantisedEmbedding,
    template: &QuantisedEmbedding,
) -> bool {
    probe.score(template) >= i64::from(config.threshold.score)
}

/// Distance of a pair's score from the decision boundary (theta - 1/2), in score units.
/// Pairs closer than the documented band may legitimately disagree with the encrypted bit.
pub fn distance_from_boundary(
    config: &DomainConfig,
    probe: &QuantisedEmbedding,
    template: &QuantisedEmbedding,
) -> f64 {
    (probe.score(template) as f64 - f64::from(config.threshold.score) + 0.5).abs()
}

/// The band, in score units, outside of which the encrypted decision must equal the twin's
/// (flip probability below 1e-6: about 5 sigma of the measured decision noise). The noise is
/// fixed in units of q/2N, so the band in score units scales with 2^(52 - delta_log).
pub fn decision_band(config: &DomainConfig) -> f64 {
    const BAND_AT_DELTA_2_52: f64 = 23.0;
    let delta_log = config.delta_log().unwrap_or(52);
    BAND_AT_DELTA_2_52 * 2f64.powi(52 - delta_log as i32)
}
