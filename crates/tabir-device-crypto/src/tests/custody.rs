//! Custody: the shares add up to the key, share decryption equals full-key decryption, and no
//! share alone (a device's, the custodian's, the server's) opens a template, a probe, or a
//! result prepared for someone else: decryption with it gives noise, checked statistically.

use super::{domain128, random_quantised, MODULUS_MASK};
use crate::quantize::QuantisedEmbedding;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tabir_crypto::params::{PROBE_BITS, TEMPLATE_BITS};
use tfhe::core_crypto::algorithms::polynomial_algorithms::polynomial_wrapping_add_mul_assign;
use tfhe::core_crypto::prelude::*;

fn full_key() -> Vec<u64> {
    domain128().secrets.glwe.as_ref().to_vec()
}

fn as_key(values: &[u16]) -> Vec<u64> {
    values.iter().map(|&v| u64::from(v)).collect()
}

fn server_share_key(share: &tabir_crypto::ServerShare) -> Vec<u64> {
    as_key(&super::server_share_values(share))
}

/// body - mask * key (negacyclic, mod 2^64) of one GLWE row given as 64-bit coefficients.
fn glwe_phase(mask: &[u64], body: &[u64], key: &[u64]) -> Vec<u64> {
    let n = body.len();
    let mut product = Polynomial::new(0u64, PolynomialSize(n));
    polynomial_wrapping_add_mul_assign(
        &mut product,
        &Polynomial::from_container(mask),
        &Polynomial::from_container(key),
    );
    body.iter()
        .zip(product.as_ref())
        .map(|(b, p)| b.wrapping_sub(*p))
        .collect()
}

/// Read signed integers at scale 2^scale_log from phases (rounding).
fn read(phases: &[u64], scale_log: u32) -> Vec<i64> {
    phases
        .iter()
        .map(|&p| (p.wrapping_add(1u64 << (scale_log - 1)) as i64) >> scale_log)
        .collect()
}

/// How many of the first d coordinates decrypt to the true values.
fn agreement(recovered: &[i64], truth: &[i8]) -> usize {
    recovered
        .iter()
        .zip(truth)
        .filter(|(r, t)| **r == i64::from(**t))
        .count()
}

fn template_agreement(q: &QuantisedEmbedding, key: &[u64]) -> usize {
    let domain = domain128();
    let template = domain.template(q);
    let shift = 64 - TEMPLATE_BITS;
    let full: Vec<u64> = template
        .coefficients()
        .iter()
        .map(|&c| c << shift)
        .collect();
    let n = full.len() / 2;
    let phases = glwe_phase(&full[..n], &full[n..], key);
    agreement(
        &read(&phases, domain.config.delta_log().unwrap()),
        q.coordinates(),
    )
}

fn probe_agreement(q: &QuantisedEmbedding, key: &[u64]) -> usize {
    let domain = domain128();
    let probe = domain.probe(q);
    let shift = 64 - PROBE_BITS;
    let full: Vec<u64> = probe.coefficients().iter().map(|&c| c << shift).collect();
    let n = full.len() / 4;
    // The last row (mask, body) encrypts P(X) q/B in its body: P = p_0 - sum p_i X^(N-i).
    let phases = glwe_phase(&full[2 * n..3 * n], &full[3 * n..], key);
    let values = read(&phases, 41);
    let recovered: Vec<i64> = (0..q.dim())
        .map(|i| if i == 0 { values[0] } else { -values[n - i] })
        .collect();
    agreement(&recovered, q.coordinates())
}

#[test]
fn shares_add_up_to_the_key() {
    let domain = domain128();
    let key = full_key();
    let reference: Vec<u64> = domain
        .custodian
        .values()
        .iter()
        .zip(server_share_key(&domain.server_reference))
        .map(|(&a, b)| (u64::from(a) + b) & u64::from(MODULUS_MASK))
        .collect();
    assert_eq!(reference, key, "S1_ref + S2_ref = S (mod 2^10)");
    let device: Vec<u64> = domain
        .device
        .values()
        .iter()
        .zip(server_share_key(&domain.device_server_share))
        .map(|(&a, b)| (u64::from(a) + b) & u64::from(MODULUS_MASK))
        .collect();
    assert_eq!(device, key, "S1_j + S2_j = S (mod 2^10)");
    // And the device's share is not the custodian's.
    assert_ne!(domain.device.values(), domain.custodian.values());
}

#[test]
fn share_decryption_equals_full_key_decryption() {
    let domain = domain128();
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    for i in 0..24 {
        let p = random_quantised(&mut rng, &domain.config);
        let t = if i % 2 == 0 {
            p.clone()
        } else {
            random_quantised(&mut rng, &domain.config)
        };
        let escrowed = domain
            .server
            .verify(&domain.probe(&p), &domain.template(&t))
            .unwrap();
        assert_eq!(domain.open(&escrowed), domain.open_with_full_key(&escrowed));
    }
}

#[test]
fn the_whole_key_opens_templates_and_probes_and_no_share_does() {
    let domain = domain128();
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let d = domain.config.dim as usize;
    let shares = [
        ("the custodian's share", as_key(domain.custodian.values())),
        ("a device's share", as_key(domain.device.values())),
        (
            "the server's reference share",
            server_share_key(&domain.server_reference),
        ),
        (
            "the server's share for a device",
            server_share_key(&domain.device_server_share),
        ),
    ];
    for _ in 0..3 {
        let q = random_quantised(&mut rng, &domain.config);
        // Sanity: the method reads the data with the whole key (which nobody holds).
        assert_eq!(template_agreement(&q, &full_key()), d);
        assert_eq!(probe_agreement(&q, &full_key()), d);
        for (who, key) in &shares {
            // A random 64-bit phase read at this scale hits the right small integer with
            // probability about 2^-11: expect 0, allow a handful.
            let t = template_agreement(&q, key);
            let p = probe_agreement(&q, key);
            assert!(t <= 4, "{who} recovered {t} of {d} template coordinates");
            assert!(p <= 4, "{who} recovered {p} of {d} probe coordinates");
        }
    }
}

#[test]
fn a_share_opens_only_results_prepared_for_it() {
    // Device A is issued a share pair, then (say) revoked; the server keeps answering device B.
    // A's share, applied to what B receives or to the escrowed bits, is a coin toss.
    let domain = domain128();
    let (device_a, _delta_a) = domain.custodian.issue(&domain.config).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(33);
    let rounds = 40;
    let (mut b_right, mut a_right_on_b, mut a_right_on_escrow) = (0, 0, 0);
    for i in 0..rounds {
        let p = random_quantised(&mut rng, &domain.config);
        let (t, truth) = if i % 2 == 0 {
            (p.clone(), true)
        } else {
            (random_quantised(&mut rng, &domain.config), false)
        };
        let escrowed = domain
            .server
            .verify(&domain.probe(&p), &domain.template(&t))
            .unwrap();
        let for_b = domain.for_device(&escrowed);
        b_right += usize::from(domain.device.decrypt(&for_b).unwrap().is_match() == truth);
        a_right_on_b += usize::from(device_a.decrypt(&for_b).unwrap().is_match() == truth);
        let unshared = domain.server_reference.apply(&escrowed).unwrap();
        a_right_on_escrow += usize::from(device_a.decrypt(&unshared).unwrap().is_match() == truth);
    }
    assert_eq!(b_right, rounds, "device B reads every result");
    // Binomial(40, 1/2): outside 8..=32 with probability about 1e-4.
    for (what, right) in [
        ("B's results", a_right_on_b),
        ("results under the reference share", a_right_on_escrow),
    ] {
        assert!(
            (8..=32).contains(&right),
            "device A's share read {right} of {rounds} of {what} correctly"
        );
    }
}
