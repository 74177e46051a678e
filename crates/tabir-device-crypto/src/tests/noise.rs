//! The noise budget of docs/crypto.md with public-key probes and templates, measured: the error
//! after the external product, after the keyswitch, and after the modulus switch that feeds
//! the bootstrap. Run with `-- --nocapture` to see the figures.

use super::{domain128, legacy_domain128, random_quantised, with_exact_score, TestDomain};
use tfhe::core_crypto::prelude::*;

fn signed(x: u64) -> f64 {
    x as i64 as f64
}

/// Decisions measured per parameter set.
const SAMPLES: i64 = 240;

fn mean_and_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn noise_budget_matches_the_design() {
    check_noise_budget("KS32 (default)", domain128());
}

#[test]
fn noise_budget_matches_the_design_with_the_64_bit_keyswitch() {
    check_noise_budget("KS64 (wire id 1)", legacy_domain128());
}

fn check_noise_budget(label: &str, domain: &TestDomain) {
    use rand::SeedableRng;
    let config = domain.config;
    let delta_log = config.delta_log().unwrap();
    let theta = i64::from(config.threshold.score);
    let big_key = domain.secrets.glwe.as_lwe_secret_key();
    let lwe_key = &domain.secrets.lwe;
    let log_2n = CiphertextModulusLog(12);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(77);
    let (mut after_product, mut after_keyswitch, mut after_switch) = (vec![], vec![], vec![]);
    // Enough decisions that the standard deviation is known within about 5% (64 were too
    // few: one run in several read 5.9 units for a true 4.5).
    for i in 0..SAMPLES {
        let probe = random_quantised(&mut rng, &config);
        let template = random_quantised(&mut rng, &config);
        // Scores spread over +-300 units around theta.
        let Some(template) = with_exact_score(&probe, &template, theta - 300 + 600 * i / SAMPLES)
        else {
            continue;
        };
        let score = probe.score(&template);
        let expected = ((score - theta) as u64)
            .wrapping_shl(delta_log)
            .wrapping_add(1u64 << (delta_log - 1));
        let (big, small) = domain
            .server
            .intermediates(&domain.probe(&probe), &domain.template(&template));
        let phase_big = decrypt_lwe_ciphertext(&big_key, &big).0;
        after_product.push(signed(phase_big.wrapping_sub(expected)));
        let phase_small = decrypt_lwe_ciphertext(lwe_key, &small).0;
        after_keyswitch.push(signed(phase_small.wrapping_sub(expected)));

        let switched =
            lwe_ciphertext_centered_binary_modulus_switch::<u64, usize, _>(small.as_view(), log_2n);
        let mask_dot_key = switched
            .mask()
            .zip(lwe_key.as_ref())
            .fold(0usize, |acc, (a, &s)| acc.wrapping_add(a * s as usize));
        let phase_units = (switched.body().wrapping_sub(mask_dot_key) & 4095) as f64;
        // The centred switch shifts by half a step; the expected phase in units of q/2N:
        let expected_units = expected as f64 / 2f64.powi(52) - 0.5;
        let mut error = phase_units - expected_units;
        error -= 4096.0 * (error / 4096.0).round();
        after_switch.push(error);
    }
    assert!(
        after_switch.len() as i64 >= SAMPLES * 2 / 3,
        "too few pairs reached their target score"
    );
    let ((ep_mean, ep), (_, ks)) = (mean_and_std(&after_product), mean_and_std(&after_keyswitch));
    let (ms_mean, ms_units) = mean_and_std(&after_switch);
    let score_unit = 2f64.powi(delta_log as i32);
    let to_score = 2f64.powi(52) / score_unit;
    eprintln!(
        "{label}: noise over {} decisions (public-key probe and 23-bit template): external product \
         2^{:.1} ({:.3} score units, mean {:.3}), keyswitch 2^{:.1} ({:.2} units), after the \
         modulus switch {:.2} score units (mean {:.2}; {:.2} units of q/2N), Delta 2^{delta_log}",
        after_switch.len(),
        ep.log2(),
        ep / score_unit,
        ep_mean / score_unit,
        ks.log2(),
        ks / score_unit,
        ms_units * to_score,
        ms_mean * to_score,
        ms_units,
    );
    // The design's figures: 2^49.6-2^49.7 after the external product with public-key probes
    // and 23-bit templates, 2^53 after the keyswitch, 4.4-5 units after the switch.
    assert!(
        ep < 2f64.powi(51),
        "external product noise 2^{:.1}",
        ep.log2()
    );
    // No bias from the template rounding (a 24-bit template showed -1.1 units).
    assert!(
        (ep_mean / score_unit).abs() < 0.5,
        "external product bias {:.2} units",
        ep_mean / score_unit
    );
    assert!(ks < 2f64.powi(54), "keyswitch noise 2^{:.1}", ks.log2());
    // In units of q/2N (independent of Delta: at Delta = 2^51 a score unit is half of one).
    assert!(
        ms_units < 10.0,
        "modulus-switch noise {ms_units} units of q/2N"
    );
    // And the twin's band (23 score units at Delta = 2^52, scaled with Delta) holds the
    // decision noise: about 4.8 units of q/2N measured over many runs, so the band is 4.8
    // sigma. One run's estimate from 240 decisions is within 5%
    // (one standard error), so 3.5 sigma of the estimate can only fail on a real regression.
    assert!(
        crate::twin::decision_band(&config) >= 3.5 * ms_units * to_score,
        "band {} score units against a decision noise of {:.2}",
        crate::twin::decision_band(&config),
        ms_units * to_score
    );
}
