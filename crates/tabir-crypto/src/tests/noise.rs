//! The noise budget of docs/crypto.md, measured: the error after the external product, after
//! the keyswitch, and after the modulus switch that feeds the bootstrap.

use super::{domain128, random_quantised, with_exact_score};
use tfhe::core_crypto::prelude::*;

fn signed(x: u64) -> f64 {
    x as i64 as f64
}

fn std_dev(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn noise_budget_matches_the_design() {
    use rand::SeedableRng;
    let domain = domain128();
    let config = *domain.client.config();
    let delta_log = config.delta_log().unwrap();
    let theta = i64::from(config.threshold.score);
    let (glwe_key, lwe_key) = domain.client.secret_keys();
    let big_key = glwe_key.as_lwe_secret_key();
    let log_2n = CiphertextModulusLog(12);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(77);
    let (mut after_product, mut after_keyswitch, mut after_switch) = (vec![], vec![], vec![]);
    for i in 0..48 {
        let probe = random_quantised(&mut rng, &config);
        let template = random_quantised(&mut rng, &config);
        // Scores spread over +-300 units around theta.
        let Some(template) = with_exact_score(&probe, &template, theta - 300 + 13 * i) else {
            continue;
        };
        let score = probe.score(&template);
        let expected = ((score - theta) as u64)
            .wrapping_shl(delta_log)
            .wrapping_add(1u64 << (delta_log - 1));
        let (big, small) = domain.server.intermediates(
            &domain.client.encrypt_probe_quantised(&probe).unwrap(),
            &domain.client.encrypt_template_quantised(&template).unwrap(),
        );
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
        after_switch.len() >= 30,
        "too few pairs reached their target score"
    );
    let (ep, ks) = (std_dev(&after_product), std_dev(&after_keyswitch));
    let ms_units = std_dev(&after_switch);
    let score_unit = 2f64.powi(delta_log as i32);
    eprintln!(
        "noise over {} decisions: external product 2^{:.1} ({:.3} score units), keyswitch 2^{:.1} \
         ({:.2} units), after the modulus switch {:.2} score units",
        after_switch.len(),
        ep.log2(),
        ep / score_unit,
        ks.log2(),
        ks / score_unit,
        ms_units * 2f64.powi(52) / score_unit
    );
    // The design's figures are 2^49, 2^53 and 4.4-5 units; allow a factor of two.
    assert!(
        ep < 2f64.powi(50),
        "external product noise 2^{:.1}",
        ep.log2()
    );
    assert!(ks < 2f64.powi(54), "keyswitch noise 2^{:.1}", ks.log2());
    assert!(ms_units < 10.0, "modulus-switch noise {ms_units} units");
    // And the twin's band (23 units) is at least 4 sigma of the measured decision noise.
    assert!(crate::twin::decision_band(&config) >= 4.0 * ms_units * 2f64.powi(52) / score_unit);
}
